package initramfs

import (
	"bytes"
	"net"
	"net/http"
	"net/http/cgi"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"
	"github.com/u-root/mkuimage/cpio"
)

// writeLayers writes each record list as a cpio, zstd-compressing all but
// the last, concatenated into one file.
func writeLayers(t *testing.T, layers ...[]cpio.Record) string {
	t.Helper()
	var out bytes.Buffer
	for i, recs := range layers {
		recs = withParents(recs)
		var raw bytes.Buffer
		if err := writeCPIO(&raw, recs); err != nil {
			t.Fatal(err)
		}
		if i == len(layers)-1 {
			out.Write(raw.Bytes())
			continue
		}
		// Two frames per layer, with and without checksum, to exercise
		// the frame walker.
		half := raw.Len() / 2
		zw, _ := zstd.NewWriter(&out, zstd.WithEncoderCRC(i%2 == 0))
		zw.Write(raw.Bytes()[:half])
		zw.Close()
		zw, _ = zstd.NewWriter(&out, zstd.WithEncoderCRC(i%2 == 1), zstd.WithEncoderLevel(zstd.SpeedBestCompression))
		zw.Write(raw.Bytes()[half:])
		zw.Close()
		out.Write(make([]byte, 3)) // padding between archives is allowed
	}
	p := filepath.Join(t.TempDir(), "initramfs.cpio.zst")
	if err := os.WriteFile(p, out.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// withParents adds directory records for parents, as mkuimage does: the
// kernel does not create missing directories.
func withParents(recs []cpio.Record) []cpio.Record {
	var out []cpio.Record
	seen := map[string]bool{}
	for _, r := range recs {
		parts := strings.Split(r.Name, "/")
		for i := 1; i < len(parts); i++ {
			d := strings.Join(parts[:i], "/")
			if !seen[d] {
				seen[d] = true
				out = append(out, cpio.Directory(d, 0o755))
			}
		}
		if r.Mode&cpio.S_IFMT == cpio.S_IFDIR {
			if seen[r.Name] {
				continue
			}
			seen[r.Name] = true
		}
		out = append(out, r)
	}
	return out
}

func TestReadArchiveLayersAndSymlinks(t *testing.T) {
	p := writeLayers(t,
		[]cpio.Record{
			cpio.Directory("lib", 0o755),
			cpio.Directory("usr", 0o755),
			cpio.Directory("usr/lib", 0o755),
			cpio.StaticFile("usr/lib/real.so", "v1", 0o644),
			cpio.StaticFile("etc/x", "old", 0o644),
		},
		[]cpio.Record{
			cpio.Symlink("lib64", "usr/lib"),
			cpio.Symlink("usr/lib/link.so", "real.so"),
			cpio.Symlink("abs", "/lib64/link.so"),
			cpio.StaticFile("etc/x", "new", 0o644),
			cpio.Symlink("loop", "loop"),
		},
	)
	a, err := ReadArchive(p)
	if err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]string{"lib64/link.so": "v1", "/abs": "v1", "etc/x": "new"} {
		e, err := a.Resolve(path)
		if err != nil || string(e.Data) != want {
			t.Errorf("Resolve(%s) = %q, %v; want %q", path, e.Data, err, want)
		}
	}
	if _, err := a.Resolve("loop"); err == nil {
		t.Error("symlink loop resolved")
	}
	if a.Exists("usr/lib/missing.so") {
		t.Error("missing file exists")
	}
}

// hostELF returns a dynamically linked host program and its libraries
// (interpreter included) as the dynamic loader lists them.
func hostELF(t *testing.T) (string, []string) {
	t.Helper()
	prog := "/usr/bin/true"
	out, err := exec.Command("/lib64/ld-linux-x86-64.so.2", "--list", prog).Output()
	if err != nil {
		t.Skipf("skipping: cannot list %s's libraries: %v", prog, err)
	}
	var libs []string
	for _, l := range strings.Split(string(out), "\n") {
		f := strings.Fields(l)
		switch {
		case len(f) >= 3 && f[1] == "=>" && strings.HasPrefix(f[2], "/"):
			libs = append(libs, f[2])
		case len(f) >= 1 && strings.HasPrefix(f[0], "/"):
			libs = append(libs, f[0])
		}
	}
	return prog, libs
}

func fileRecord(t *testing.T, host, name string) cpio.Record {
	t.Helper()
	b, err := os.ReadFile(host)
	if err != nil {
		t.Fatal(err)
	}
	return cpio.StaticRecord(b, cpio.Info{Name: name, Mode: cpio.S_IFREG | 0o755})
}

func TestELFDeps(t *testing.T) {
	prog, libs := hostELF(t)
	full := []cpio.Record{fileRecord(t, prog, "usr/bin/true")}
	for _, l := range libs {
		full = append(full, fileRecord(t, l, strings.TrimPrefix(l, "/")))
	}
	a, err := ReadArchive(writeLayers(t, full))
	if err != nil {
		t.Fatal(err)
	}
	found, err := a.ELFDeps("usr/bin/true")
	if err != nil {
		t.Fatalf("complete archive: %v", err)
	}
	if len(found) < 2 {
		t.Errorf("found %v, want libc and the interpreter", found)
	}

	// Drop libc: the check must name it.
	var partial []cpio.Record
	for _, r := range full {
		if !strings.Contains(r.Name, "libc.so") {
			partial = append(partial, r)
		}
	}
	a, err = ReadArchive(writeLayers(t, partial))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.ELFDeps("usr/bin/true"); err == nil || !strings.Contains(err.Error(), "libc.so.6") {
		t.Errorf("archive without libc: ELFDeps = %v, want an error naming libc.so.6", err)
	}
}

func TestFixShebang(t *testing.T) {
	for in, want := range map[string]string{
		"#!/bin/sh -f\necho $1\n": "#!/usr/bin/busybox sh\nset -f\necho $1\n",
		"#!/bin/sh\necho hi\n":    "#!/usr/bin/busybox sh\necho hi\n",
	} {
		if got := string(fixShebang([]byte(in), "/usr/bin/busybox sh")); got != want {
			t.Errorf("fixShebang(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestBzImageVersion(t *testing.T) {
	k, mods, err := CachedKernel(DefaultCacheDir())
	if err != nil {
		t.Skipf("skipping: %v", err)
	}
	v, err := bzImageVersion(k)
	if err != nil {
		t.Fatal(err)
	}
	if v != filepath.Base(mods) {
		t.Errorf("bzImage version %q, modules %q", v, filepath.Base(mods))
	}
	if _, err := bzImageVersion(filepath.Join(mods, "modules.dep")); err == nil {
		t.Error("modules.dep accepted as a bzImage")
	}
}

// go.mod must list every u-root command as a tool: `go mod tidy` keeps the
// requirements only for them.
func TestURootCommandsAreGoModTools(t *testing.T) {
	b, err := os.ReadFile("../go.mod")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range urootPackages() {
		if !strings.Contains(string(b), "\t"+p+"\n") {
			t.Errorf("go.mod has no tool directive for %s (go get -tool %s)", p, p)
		}
	}
}

func TestGeneratedGoMod(t *testing.T) {
	m := string(generatedGoMod("v0.16.0"))
	if !strings.Contains(m, "require github.com/u-root/u-root v0.16.0\n") || !strings.Contains(m, "\tgithub.com/u-root/u-root/cmds/core/gosh\n") {
		t.Errorf("generated go.mod:\n%s", m)
	}
}

func TestFindModulesDir(t *testing.T) {
	root := t.TempDir()
	kdir := filepath.Join(root, "lib", "modules", "6.1.0-test")
	os.MkdirAll(kdir, 0o755)
	os.WriteFile(filepath.Join(kdir, "modules.dep"), nil, 0o644)
	for _, in := range []string{kdir, filepath.Join(root, "lib", "modules"), root} {
		if got, err := findModulesDir(in); err != nil || got != kdir {
			t.Errorf("findModulesDir(%s) = %s, %v; want %s", in, got, err, kdir)
		}
	}
	if _, err := findModulesDir(t.TempDir()); err == nil || !strings.Contains(err.Error(), "depmod") {
		t.Errorf("empty dir: %v, want a hint to run depmod", err)
	}
}

// TestLiveGitSubmoduleAndSSH checks the hand-off's tools in the built image
// (git submodule's script and the shell libraries it sources, gettext and
// envsubst for its messages, the ssh client, each with its libraries), then
// proves them in the image's own environment: chrooted into the unpacked
// image, its git clones a repository over http from a git http-backend on
// the host and checks out its submodule the way handoff/repo does.
func TestLiveGitSubmoduleAndSSH(t *testing.T) {
	res := buildForTest(t)
	root := unpack(t, res)
	for _, f := range []string{"usr/lib/git-core/git-submodule", "usr/lib/git-core/git-sh-setup", "usr/lib/git-core/git-sh-i18n",
		"usr/bin/gettext.sh", "usr/bin/gettext", "usr/bin/envsubst", "usr/bin/ssh", "usr/bin/git", "usr/lib/git-core/git-remote-http"} {
		if _, ok := inRoot(root, f); !ok {
			t.Errorf("%s missing", f)
			continue
		}
		if missing := elfClosure(t, root, f, map[string]bool{}); len(missing) > 0 {
			t.Errorf("%s: missing %s", f, strings.Join(missing, ", "))
		}
	}
	if b, err := os.ReadFile(filepath.Join(root, "usr/lib/git-core/git-submodule")); err != nil || !bytes.HasPrefix(b, []byte("#!/usr/bin/busybox sh\n")) {
		t.Errorf("git-submodule's interpreter: %q (%v)", firstLine(b), err)
	}
	if t.Failed() {
		return
	}

	if os.Geteuid() != 0 {
		t.Skip("skipping the run in the image: chroot needs root (CI runs as root)")
	}
	backend := "/usr/lib/git-core/git-http-backend"
	if _, err := os.Stat(backend); err != nil {
		t.Skipf("skipping the run in the image: no git http-backend on the host: %v", err)
	}
	// Fixture, made with the host's git: etc.git whose main branch has the
	// submodule vendor/sub from sub.git, by relative URL.
	base, work := t.TempDir(), t.TempDir()
	git := func(dir string, args ...string) {
		t.Helper()
		cmd := exec.Command("git", args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.org", "GIT_COMMITTER_NAME=t",
			"GIT_COMMITTER_EMAIL=t@example.org", "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	git(base, "init", "-q", "--bare", "-b", "main", "sub.git")
	git(base, "init", "-q", "--bare", "-b", "main", "etc.git")
	git(work, "clone", "-q", filepath.Join(base, "sub.git"), "sub")
	os.WriteFile(filepath.Join(work, "sub/sub.txt"), []byte("submodule content\n"), 0o644)
	git(filepath.Join(work, "sub"), "add", ".")
	git(filepath.Join(work, "sub"), "commit", "-q", "-m", "sub")
	git(filepath.Join(work, "sub"), "push", "-q", "origin", "main")
	git(work, "clone", "-q", filepath.Join(base, "etc.git"), "etc")
	os.WriteFile(filepath.Join(work, "etc/hosts"), []byte("hosts\n"), 0o644)
	git(filepath.Join(work, "etc"), "-c", "protocol.file.allow=always", "submodule", "add", "-q", "../sub.git", "vendor/sub")
	git(filepath.Join(work, "etc"), "add", ".")
	git(filepath.Join(work, "etc"), "commit", "-q", "-m", "etc")
	git(filepath.Join(work, "etc"), "push", "-q", "origin", "main")

	h := &cgi.Handler{Path: backend, Env: []string{"GIT_PROJECT_ROOT=" + base, "GIT_HTTP_EXPORT_ALL=1"}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h}
	go srv.Serve(ln)
	defer srv.Close()
	url := "http://" + ln.Addr().String() + "/"

	// The live environment's: no user or system git configuration, no
	// prompts; PATH as u-root's init sets it.
	env := []string{"PATH=/ubin:/usr/local/bin:/usr/local/sbin:/usr/bin:/usr/sbin:/bin:/sbin:/bbin", "HOME=/root",
		"GIT_TERMINAL_PROMPT=0", "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null"}
	// With /proc, as u-root's init mounts it (busybox sh runs its applets,
	// sed among them, through /proc/self/exe), in a mount namespace of its
	// own so the mount goes with the command.
	if _, err := exec.LookPath("unshare"); err != nil {
		t.Skipf("skipping the run in the image: %v", err)
	}
	live := func(args ...string) (string, error) {
		cmd := exec.Command("unshare", append([]string{"--mount", "--propagation", "private", "sh", "-c",
			`mount -t proc proc "$0/proc" && exec chroot "$0" "$@"`, root}, args...)...)
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	if out, err := live("/usr/bin/git", "clone", "-q", url+"etc.git", "/tmp/etc"); err != nil {
		t.Fatalf("git clone over http in the image: %v\n%s", err, out)
	}
	if out, err := live("/usr/bin/git", "-C", "/tmp/etc", "submodule", "update", "--quiet", "--init", "--recursive"); err != nil {
		t.Fatalf("git submodule update in the image: %v\n%s", err, out)
	}
	if b, err := os.ReadFile(filepath.Join(root, "tmp/etc/vendor/sub/sub.txt")); err != nil || string(b) != "submodule content\n" {
		t.Errorf("submodule checkout in the image: %q, %v", b, err)
	}
	// Its messages go through gettext.sh and envsubst: the usage names the
	// command, substituted (without envsubst it would be empty).
	if out, err := live("/usr/bin/git", "-C", "/tmp/etc", "submodule", "-h"); err != nil || !strings.HasPrefix(out, "usage: git submodule [--quiet] [--cached]\n") {
		t.Errorf("git submodule -h in the image: %v\n%s", err, out)
	}
	if out, err := live("/usr/bin/ssh", "-V"); err != nil || !strings.Contains(out, "OpenSSH") {
		t.Errorf("ssh -V in the image: %v\n%s", err, out)
	}
}
