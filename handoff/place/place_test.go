package place

import (
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

func write(t *testing.T, p, s string) {
	t.Helper()
	os.MkdirAll(filepath.Dir(p), 0o755)
	if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

func read(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		return "<" + err.Error() + ">"
	}
	return string(b)
}

func TestInRootStaysInside(t *testing.T) {
	outer := t.TempDir()
	root := filepath.Join(outer, "root")
	os.MkdirAll(filepath.Join(root, "var/home"), 0o755)
	// Fedora-style /home -> /var/home: absolute, must resolve inside root.
	os.Symlink("/var/home", filepath.Join(root, "home"))
	// A hostile link that climbs out.
	os.Symlink("../../..", filepath.Join(root, "up"))
	got, err := InRoot(root, "/home/me/music", &Owner{1234, 5678})
	if err != nil {
		t.Fatal(err)
	}
	real, _ := filepath.EvalSymlinks(root)
	if got != filepath.Join(real, "var/home/me/music") {
		t.Errorf("InRoot = %s", got)
	}
	if st, err := os.Stat(got); err != nil || !st.IsDir() {
		t.Fatal("not created")
	}
	if os.Geteuid() == 0 {
		st, _ := os.Stat(filepath.Join(root, "var/home/me"))
		if uid, gid := owner(st); uid != 1234 || gid != 5678 {
			t.Errorf("created parent owned %d:%d", uid, gid)
		}
	}
	got, err = InRoot(root, "/up/escape", nil)
	if err != nil || !strings.HasPrefix(got, real+"/") {
		t.Errorf("climbing link: %s %v (must stay inside %s)", got, err, real)
	}
	if _, err := os.Stat(filepath.Join(outer, "escape")); err == nil {
		t.Error("created a directory outside the root")
	}
}

func tree(t *testing.T, dir string) string {
	var out []string
	filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err != nil || p == dir {
			return nil
		}
		rel, _ := filepath.Rel(dir, p)
		switch {
		case info.Mode()&os.ModeSymlink != 0:
			l, _ := os.Readlink(p)
			out = append(out, rel+"->"+l)
		case info.IsDir():
			out = append(out, rel+"/")
		default:
			out = append(out, rel+"="+read(t, p))
		}
		return nil
	})
	sort.Strings(out)
	return strings.Join(out, " ")
}

func setup(t *testing.T) (stage, dest string) {
	dest = t.TempDir()
	write(t, filepath.Join(dest, "keep.conf"), "mine")
	write(t, filepath.Join(dest, "hosts"), "old")
	write(t, filepath.Join(dest, "ssh/local"), "local")
	write(t, filepath.Join(dest, "ssh/sshd_config"), "old")
	write(t, filepath.Join(dest, "nested/data"), "other item")
	write(t, filepath.Join(dest, ".git/HEAD"), "old head")
	write(t, filepath.Join(dest, ".git/stale"), "stale")
	os.Symlink("/outside", filepath.Join(dest, "link"))
	stage = filepath.Join(dest, StagingName)
	write(t, filepath.Join(stage, "hosts"), "new")
	write(t, filepath.Join(stage, "ssh/sshd_config"), "new")
	write(t, filepath.Join(stage, "link/inside"), "a dir now")
	write(t, filepath.Join(stage, ".git/HEAD"), "new head")
	return stage, dest
}

func TestMergeOverlay(t *testing.T) {
	stage, dest := setup(t)
	if err := Merge(stage, dest, MergeOptions{Whole: []string{".git"}}); err != nil {
		t.Fatal(err)
	}
	os.Remove(stage)
	want := ".git/ .git/HEAD=new head hosts=new keep.conf=mine link/ link/inside=a dir now nested/ nested/data=other item ssh/ ssh/local=local ssh/sshd_config=new"
	if got := tree(t, dest); got != want {
		t.Errorf("overlay:\n got %s\nwant %s", got, want)
	}
}

func TestMergeReplace(t *testing.T) {
	stage, dest := setup(t)
	if err := Merge(stage, dest, MergeOptions{Replace: true, Keep: []string{"nested"}, Whole: []string{".git"}}); err != nil {
		t.Fatal(err)
	}
	os.Remove(stage)
	want := ".git/ .git/HEAD=new head hosts=new link/ link/inside=a dir now nested/ nested/data=other item ssh/ ssh/sshd_config=new"
	if got := tree(t, dest); got != want {
		t.Errorf("replace:\n got %s\nwant %s", got, want)
	}
}

func TestFileReplacesSymlinkedDirs(t *testing.T) {
	dest := t.TempDir()
	outside := t.TempDir()
	os.Symlink(outside, filepath.Join(dest, "a"))
	staged := filepath.Join(dest, "staged")
	write(t, staged, "content")
	if err := File(staged, dest, "a/b/c", nil); err != nil {
		t.Fatal(err)
	}
	if read(t, filepath.Join(dest, "a/b/c")) != "content" {
		t.Error("not placed")
	}
	if ents, _ := os.ReadDir(outside); len(ents) != 0 {
		t.Error("wrote through a symlink")
	}
}

func TestInRootRelativeRoot(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	os.Mkdir("root", 0o755)
	got, err := InRoot("root", "/srv/music", nil)
	real, _ := filepath.EvalSymlinks(dir)
	if err != nil || got != filepath.Join(real, "root/srv/music") {
		t.Errorf("relative root: %s %v", got, err)
	}
}
