package handoff_test

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stratahq/strata/handoff"
	"github.com/stratahq/strata/handoff/internal/testserver"
	"github.com/stratahq/strata/profile"
	"golang.org/x/sys/unix"
)

// svnInRoot copies the host's svn and the libraries it loads (as ldd lists
// them, with the dynamic loader) into root, as a restored system that
// installed subversion has them.
func svnInRoot(t *testing.T, root string) {
	t.Helper()
	svn, err := exec.LookPath("svn")
	if err != nil {
		t.Skip("skipping: svn is not installed (make deps installs subversion)")
	}
	out, err := exec.Command("ldd", svn).Output()
	if err != nil {
		t.Skipf("skipping: ldd %s: %v", svn, err)
	}
	files := []string{svn}
	for _, l := range strings.Split(string(out), "\n") {
		f := strings.Fields(l)
		switch {
		case len(f) >= 3 && f[1] == "=>" && strings.HasPrefix(f[2], "/"):
			files = append(files, f[2])
		case len(f) >= 1 && strings.HasPrefix(f[0], "/"):
			files = append(files, f[0]) // the loader
		}
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		dst := filepath.Join(root, "usr", strings.TrimPrefix(strings.TrimPrefix(f, "/usr"), "/"))
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dst, b, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// Debian's merged /usr: /lib and /lib64 are links into /usr.
	for _, l := range []string{"lib", "lib64"} {
		if err := os.Symlink("usr/"+l, filepath.Join(root, l)); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range []string{"dev", "proc", "run", "tmp"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// Should a hand-off leave a mount behind (the test then fails), it
	// goes before the test's directories are removed.
	t.Cleanup(func() {
		m := mountsBelow(t, root)
		for i := len(m) - 1; i >= 0; i-- {
			unix.Unmount(m[i], unix.MNT_DETACH)
		}
	})
}

// svnTrunk makes the repository parent/name whose revision 1 is trunk/file
// with text; it returns the repository's path.
func svnTrunk(t *testing.T, parent, name, file, text string) string {
	t.Helper()
	repo := filepath.Join(parent, name)
	sh(t, parent, "svnadmin", "create", repo)
	files := t.TempDir()
	write(t, filepath.Join(files, "f"), text)
	sh(t, files, "svnmucc", "-U", "file://"+repo, "-m", "r1", "mkdir", "trunk", "put", "f", "trunk/"+file)
	return repo
}

// mountsBelow lists the mount points at or below dir.
func mountsBelow(t *testing.T, dir string) []string {
	t.Helper()
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	real, _ := filepath.EvalSymlinks(dir)
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if fs := strings.Fields(sc.Text()); len(fs) > 4 && (fs[4] == real || strings.HasPrefix(fs[4], real+"/")) {
			out = append(out, fs[4])
		}
	}
	return out
}

// TestSVNFromTheRestoredSystem checks out over svn:// (svnserve, with a
// password) and over https (Apache with mod_ssl, a private CA from the
// credentials) with the restored system's own svn, chrooted into it, as
// when the live image has no svn: the checkouts are right, and afterwards
// nothing is mounted in the root, its /run and /etc are as they were, and
// neither the password nor the CA file is anywhere in it. Without svn in
// the root, the error says what to add.
func TestSVNFromTheRestoredSystem(t *testing.T) {
	t.Parallel()
	needRoot(t) // mounts /dev, /proc and a tmpfs in the root
	testserver.Need(t, "svn", "svnadmin", "svnmucc", "svnserve", "ldd", "chroot")
	base := t.TempDir()
	repo := svnTrunk(t, base, "etc", "hosts", "hosts from the target's svn\n")
	testserver.SVNAuth(t, repo, "bob", "chroot-pass-K2")
	svnURL := testserver.SVNServe(t, base) + "etc"
	port := strings.TrimPrefix(strings.TrimSuffix(svnURL, "/etc"), "svn://127.0.0.1:")

	parent := t.TempDir()
	svnTrunk(t, parent, "home", ".profile", "home over https, chrooted\n")
	ca := testserver.NewTLS(t)
	httpsBase := testserver.SVNApacheTLS(t, parent, "carol", "chroot-dav-P5", ca)
	host := strings.TrimSuffix(httpsBase, "svn/")

	p := &profile.Profile{Repos: []profile.Repo{
		{Name: "etc", Type: "svn", URL: svnURL, Branch: "trunk", Path: "/etc"},
		{Name: "home", Type: "svn", URL: httpsBase + "home", Branch: "trunk", Path: "/home/me", Owner: "strata-only"},
	}}
	store := storeOf(t, "svn://127.0.0.1:"+port+"/ basic bob chroot-pass-K2\n"+host+" basic carol chroot-dav-P5\n"+host+" ca-file "+ca.CAFile+"\n")

	root := newRoot(t)
	r := handOff(t, root, p, handoff.Options{Creds: store, SVN: "root"})
	for _, name := range []string{"etc", "home"} {
		if it := r.status(t, name); it.Status != handoff.Failed || !strings.Contains(it.Err.Error(), "add subversion to the profile's packages") {
			t.Errorf("no svn anywhere: %s: %s (%v), want an error that says to add subversion", name, it.Status, it.Err)
		}
	}

	svnInRoot(t, root)
	r = handOff(t, root, p, handoff.Options{Creds: store, SVN: "root"})
	r.mustDone(t, "etc", "home")
	if m := mountsBelow(t, root); len(m) > 0 {
		// (before anything reads the tree: a proc or dev left mounted in it
		// has files without end)
		t.Fatalf("mounts left in the root: %v", m)
	}
	if got := read(t, filepath.Join(root, "etc/hosts")); got != "hosts from the target's svn\n" || r.status(t, "etc").Revision != "1" {
		t.Errorf("svn://: hosts %q at revision %s", got, r.status(t, "etc").Revision)
	}
	if got := read(t, filepath.Join(root, "home/me/.profile")); got != "home over https, chrooted\n" {
		t.Errorf("https: .profile %q", got)
	}
	if got := owner(t, filepath.Join(root, "home/me/.svn")); got != "4242:4343" {
		t.Errorf("the working copy belongs to %s, want the owner from the target's passwd", got)
	}
	if real, _ := filepath.EvalSymlinks(root); !strings.Contains(r.log.String(), "run: chroot "+real+" svn checkout") {
		t.Errorf("svn did not run chrooted:\n%s", r.log)
	}
	// The working copy is one for the restored system's svn (the host's,
	// here): status runs and is clean.
	if st := sh(t, filepath.Join(root, "etc"), "svn", "status", "-q", "--non-interactive"); st != "" {
		t.Errorf("svn status in /etc:\n%s", st)
	}
	if ents, _ := os.ReadDir(filepath.Join(root, "run")); len(ents) > 0 {
		t.Errorf("the root's /run holds %v after the hand-off", ents)
	}
	if exists(filepath.Join(root, "etc/resolv.conf")) {
		t.Error("the resolv.conf made to mount on was left in the root")
	}
	if hits := grepTree(t, root, []string{"chroot-pass-K2", "chroot-dav-P5", ca.CAFile}); len(hits) > 0 {
		t.Errorf("a password or the CA file's path reached the restored system: %v", hits)
	}
	if strings.Contains(r.log.String(), "chroot-pass-K2") || strings.Contains(r.log.String(), "chroot-dav-P5") {
		t.Errorf("a password in the log:\n%s", r.log)
	}
}
