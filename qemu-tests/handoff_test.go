package qemutests

// The live image's hand-off tools, booted: its git clones a repository over
// http from the host (QEMU's user network: the host is 10.0.2.2) and checks
// out its submodule the way handoff/repo does (git submodule is a shell
// script in Debian 12's git, run by the image's busybox sh), and its ssh
// client runs.

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/cgi"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/stratahq/strata/initramfs"
	"github.com/stratahq/strata/qemu-tests/vm"
)

func TestLiveGitSubmoduleOverHTTP(t *testing.T) {
	t.Parallel() // VM tests share the machine's VM slots (qemu-tests/vm)
	backend := "/usr/lib/git-core/git-http-backend"
	if _, err := os.Stat(backend); err != nil {
		t.Skipf("skipping: no git http-backend on the host: %v", err)
	}
	liveImage(t) // the skips: -short, no QEMU, no cached kernel
	base, work := t.TempDir(), t.TempDir()
	git(t, base, "init", "-q", "--bare", "-b", "main", "sub.git")
	git(t, base, "init", "-q", "--bare", "-b", "main", "etc.git")
	git(t, work, "clone", "-q", filepath.Join(base, "sub.git"), "sub")
	if err := os.WriteFile(filepath.Join(work, "sub/sub.txt"), []byte("submodule content\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	git(t, filepath.Join(work, "sub"), "add", ".")
	git(t, filepath.Join(work, "sub"), "commit", "-q", "-m", "sub")
	git(t, filepath.Join(work, "sub"), "push", "-q", "origin", "main")
	git(t, work, "clone", "-q", filepath.Join(base, "etc.git"), "etc")
	git(t, filepath.Join(work, "etc"), "-c", "protocol.file.allow=always", "submodule", "add", "-q", "../sub.git", "vendor/sub")
	git(t, filepath.Join(work, "etc"), "commit", "-q", "-m", "etc")
	git(t, filepath.Join(work, "etc"), "push", "-q", "origin", "main")

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: &cgi.Handler{Path: backend, Env: []string{"GIT_PROJECT_ROOT=" + base, "GIT_HTTP_EXPORT_ALL=1"}}}
	go srv.Serve(ln)
	defer srv.Close()
	url := fmt.Sprintf("http://10.0.2.2:%d/", ln.Addr().(*net.TCPAddr).Port)

	script := "export HOME=/root GIT_TERMINAL_PROMPT=0 GIT_CONFIG_NOSYSTEM=1 GIT_CONFIG_GLOBAL=/dev/null\n" +
		"run clone /usr/bin/git clone -q " + url + "etc.git /tmp/hoff/etc\n" +
		"run submodules /usr/bin/git -C /tmp/hoff/etc submodule update --quiet --init --recursive\n" +
		"run content busybox cat /tmp/hoff/etc/vendor/sub/sub.txt\n" +
		"run ssh /usr/bin/ssh -V\n"
	secs := handoffScript(t, script, 10*time.Minute)
	need(t, secs, "clone", 0)
	need(t, secs, "submodules", 0)
	need(t, secs, "content", 0, "submodule content")
	need(t, secs, "ssh", 0, "OpenSSH")
}

// handoffImage is the live image for this test, built from this tree into a
// directory of its own: the shared test images are rebuilt by whichever
// test binary boots them, possibly from another tree.
func handoffImage(t *testing.T) initramfs.Result {
	t.Helper()
	img, err := initramfs.Build(context.Background(), initramfs.Options{
		Out: filepath.Join(initramfs.DefaultCacheDir(), "test-live-handoff"),
		Log: func(string, ...any) {},
	})
	if err != nil {
		t.Fatalf("build live image: %v", err)
	}
	return img
}

// handoffScript runs script in the live shell of handoffImage, as
// runScript does with the restore tests' image, and returns its sections.
func handoffScript(t *testing.T, script string, timeout time.Duration) map[string]section {
	t.Helper()
	files, n := scriptDisk(t, script)
	img := handoffImage(t)
	v := vm.StartT(t, vm.Config{
		Name: t.Name(), Kernel: img.Kernel, Initrd: img.Initramfs, Append: "console=ttyS0 panic=-1 strata.rescue=none strata.wizard=off",
		Disks: []vm.Disk{files}, Net: &vm.Net{}, MemoryMB: 2048, CPUs: 2, Timeout: timeout + 5*time.Minute, NoReboot: true,
	})
	if err := v.WaitPrompt(vm.LivePrompt, 3*time.Minute); err != nil {
		t.Fatal(err)
	}
	before := len(v.Console().Output())
	if err := v.TypeLine("busybox head -c "+n+" /dev/vda > /tmp/t.sh; FILES=/dev/vda busybox sh /tmp/t.sh", 30*time.Second); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Expect("@@done@@", timeout); err != nil {
		t.Fatalf("the script did not finish: %v\n%s", err, v.Tail(60))
	}
	secs := map[string]section{}
	for _, m := range regexp.MustCompile(`(?s)@@start (\S+)@@\n(.*?)@@rc (\S+) (\d+)@@`).FindAllStringSubmatch(v.Console().Output()[before:], -1) {
		rc, _ := strconv.Atoi(m[4])
		secs[m[1]] = section{out: m[2], rc: rc}
	}
	_ = v.Send("poweroff\r")
	return secs
}
