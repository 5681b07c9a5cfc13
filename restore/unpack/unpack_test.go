package unpack

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
	"golang.org/x/sys/unix"
)

type ent struct {
	h    tar.Header
	body string
}

func mkTar(t *testing.T, ents []ent) []byte {
	t.Helper()
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for _, e := range ents {
		h := e.h
		if h.Typeflag == tar.TypeReg && h.Size == 0 {
			h.Size = int64(len(e.body))
		}
		if h.Format == tar.FormatUnknown {
			h.Format = tar.FormatPAX
		}
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatal(err)
		}
		if e.body != "" {
			if _, err := io.WriteString(tw, e.body); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func needRoot(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: extraction sets owners and makes device nodes (CI runs as root)")
	}
}

var mtime = time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC)

func systemTar(t *testing.T) []byte {
	big := strings.Repeat("\x00", 8<<20) + "end"
	return mkTar(t, []ent{
		{h: tar.Header{Name: "./", Typeflag: tar.TypeDir, Mode: 0o755, ModTime: mtime}},
		{h: tar.Header{Name: "etc/", Typeflag: tar.TypeDir, Mode: 0o755, ModTime: mtime}},
		{h: tar.Header{Name: "etc/passwd", Typeflag: tar.TypeReg, Mode: 0o644, ModTime: mtime}, body: "root:x:0:0::/root:/bin/sh\nme:x:1000:1000::/home/me:/bin/sh\n"},
		{h: tar.Header{Name: "etc/group", Typeflag: tar.TypeReg, Mode: 0o644, ModTime: mtime}, body: "root:x:0:\nme:x:1000:\n"},
		{h: tar.Header{Name: "etc/shadow", Typeflag: tar.TypeReg, Mode: 0o640, Uid: 0, Gid: 42, ModTime: mtime}, body: "root:*:1::::::\n"},
		{h: tar.Header{Name: "usr/bin/su", Typeflag: tar.TypeReg, Mode: 0o4755, ModTime: mtime}, body: "ELF"},
		{h: tar.Header{Name: "usr/bin/ping", Typeflag: tar.TypeReg, Mode: 0o755, ModTime: mtime, PAXRecords: map[string]string{
			"SCHILY.xattr.security.capability": "\x01\x00\x00\x02\x00\x20\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00",
			"SCHILY.xattr.user.origin":         "strata-test"}}, body: "ELF"},
		{h: tar.Header{Name: "usr/bin/sudoedit", Typeflag: tar.TypeLink, Linkname: "usr/bin/su"}},
		{h: tar.Header{Name: "bin", Typeflag: tar.TypeSymlink, Linkname: "usr/bin", ModTime: mtime}},
		{h: tar.Header{Name: "dev/null", Typeflag: tar.TypeChar, Mode: 0o666, Devmajor: 1, Devminor: 3, ModTime: mtime}},
		{h: tar.Header{Name: "run/initctl", Typeflag: tar.TypeFifo, Mode: 0o600, ModTime: mtime}},
		{h: tar.Header{Name: "home/me/", Typeflag: tar.TypeDir, Mode: 0o750, Uid: 1000, Gid: 1000, ModTime: mtime, PAXRecords: map[string]string{
			"SCHILY.acl.access": "user::rwx,user:me:r-x,group::r-x,mask::r-x,other::---"}}},
		{h: tar.Header{Name: "var/lib/sparse.img", Typeflag: tar.TypeReg, Mode: 0o600, ModTime: mtime}, body: big},
		{h: tar.Header{Name: "tmp/", Typeflag: tar.TypeDir, Mode: 0o1777, ModTime: mtime}},
	})
}

func TestArchiveKeepsSystemMetadata(t *testing.T) {
	needRoot(t)
	root := t.TempDir()
	st, err := Archive(context.Background(), bytes.NewReader(systemTar(t)), root, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if st.Entries != 14 || st.HardLinks != 1 || st.Devices != 2 {
		t.Errorf("stats %+v", st)
	}
	check := func(rel string, mode os.FileMode, uid, gid int) {
		t.Helper()
		fi, err := os.Lstat(filepath.Join(root, rel))
		if err != nil {
			t.Error(err)
			return
		}
		s := fi.Sys().(*syscall.Stat_t)
		if fi.Mode() != mode || int(s.Uid) != uid || int(s.Gid) != gid {
			t.Errorf("%s: mode %v uid %d gid %d, want %v %d %d", rel, fi.Mode(), s.Uid, s.Gid, mode, uid, gid)
		}
		if fi.Mode()&os.ModeSymlink == 0 && !fi.ModTime().Equal(mtime) {
			t.Errorf("%s: mtime %v, want %v", rel, fi.ModTime(), mtime)
		}
	}
	check("etc/shadow", 0o640, 0, 42)
	check("usr/bin/su", 0o755|os.ModeSetuid, 0, 0)
	check("home/me", 0o750|os.ModeDir, 1000, 1000)
	check("tmp", 0o777|os.ModeDir|os.ModeSticky, 0, 0)
	check("etc", 0o755|os.ModeDir, 0, 0)
	check("dev/null", 0o666|os.ModeDevice|os.ModeCharDevice, 0, 0)
	check("run/initctl", 0o600|os.ModeNamedPipe, 0, 0)
	if l, _ := os.Readlink(filepath.Join(root, "bin")); l != "usr/bin" {
		t.Errorf("bin -> %q", l)
	}
	var a, b unix.Stat_t
	_ = unix.Stat(filepath.Join(root, "usr/bin/su"), &a)
	_ = unix.Stat(filepath.Join(root, "usr/bin/sudoedit"), &b)
	if a.Ino != b.Ino || a.Nlink != 2 {
		t.Errorf("hard link not kept: inodes %d %d nlink %d", a.Ino, b.Ino, a.Nlink)
	}
	var d unix.Stat_t
	_ = unix.Stat(filepath.Join(root, "dev/null"), &d)
	if unix.Major(d.Rdev) != 1 || unix.Minor(d.Rdev) != 3 {
		t.Errorf("dev/null is %d:%d", unix.Major(d.Rdev), unix.Minor(d.Rdev))
	}
	buf := make([]byte, 64)
	if n, err := unix.Getxattr(filepath.Join(root, "usr/bin/ping"), "user.origin", buf); err != nil || string(buf[:n]) != "strata-test" {
		t.Errorf("user xattr: %q %v", buf[:n], err)
	}
	if _, err := unix.Getxattr(filepath.Join(root, "usr/bin/ping"), "security.capability", buf); err != nil {
		t.Errorf("file capability lost: %v", err)
	}
	n, err := unix.Getxattr(filepath.Join(root, "home/me"), "system.posix_acl_access", buf)
	if err != nil {
		t.Errorf("ACL lost: %v", err)
	} else if want, _ := aclXattr("user::rwx,user:1000:r-x,group::r-x,mask::r-x,other::---", &idMap{}); !bytes.Equal(buf[:n], want) {
		t.Errorf("ACL %x, want %x", buf[:n], want)
	}
	var sp unix.Stat_t
	_ = unix.Stat(filepath.Join(root, "var/lib/sparse.img"), &sp)
	if sp.Size != 8<<20+3 || sp.Blocks*512 > 1<<20 {
		t.Errorf("sparse file: size %d, %d bytes allocated (want < 1 MiB)", sp.Size, sp.Blocks*512)
	}
}

func TestArchiveCompressions(t *testing.T) {
	raw := mkTar(t, []ent{{h: tar.Header{Name: "hello", Typeflag: tar.TypeReg, Mode: 0o644}, body: "world"}})
	var gz, xzb, zs bytes.Buffer
	gw := gzip.NewWriter(&gz)
	gw.Write(raw)
	gw.Close()
	xw, _ := xz.NewWriter(&xzb)
	xw.Write(raw)
	xw.Close()
	zw, _ := zstd.NewWriter(&zs)
	zw.Write(raw)
	zw.Close()
	for name, data := range map[string][]byte{"none": raw, "gzip": gz.Bytes(), "xz": xzb.Bytes(), "zstd": zs.Bytes()} {
		t.Run(name, func(t *testing.T) {
			_, kind, err := Decompress(bytes.NewReader(data))
			if err != nil || kind != name {
				t.Fatalf("detected %q, %v", kind, err)
			}
			root := t.TempDir()
			if _, err := Archive(context.Background(), bytes.NewReader(data), root, Options{NoOwners: true}); err != nil {
				t.Fatal(err)
			}
			if b, _ := os.ReadFile(filepath.Join(root, "hello")); string(b) != "world" {
				t.Errorf("content %q", b)
			}
		})
	}
}

func TestArchiveRefusesEscapes(t *testing.T) {
	for name, ents := range map[string][]ent{
		"dotdot":   {{h: tar.Header{Name: "../evil", Typeflag: tar.TypeReg, Mode: 0o644}, body: "x"}},
		"nested":   {{h: tar.Header{Name: "a/../../evil", Typeflag: tar.TypeReg, Mode: 0o644}, body: "x"}},
		"absolute": {{h: tar.Header{Name: "/evil", Typeflag: tar.TypeReg, Mode: 0o644}, body: "x"}},
		"symlink-absolute": {
			{h: tar.Header{Name: "link", Typeflag: tar.TypeSymlink, Linkname: "/"}},
			{h: tar.Header{Name: "link/evil", Typeflag: tar.TypeReg, Mode: 0o644}, body: "x"}},
		"symlink-relative": {
			{h: tar.Header{Name: "up", Typeflag: tar.TypeSymlink, Linkname: "../.."}},
			{h: tar.Header{Name: "up/evil", Typeflag: tar.TypeReg, Mode: 0o644}, body: "x"}},
		"hardlink-out": {{h: tar.Header{Name: "hl", Typeflag: tar.TypeLink, Linkname: "../outside"}}},
		// The extractor keeps the last parent directory open: a symlink it
		// was entered through, swapped for one leading out, must not keep
		// the old way in, nor let the new one out.
		"symlink-swapped": {
			{h: tar.Header{Name: "real/", Typeflag: tar.TypeDir, Mode: 0o755}},
			{h: tar.Header{Name: "link", Typeflag: tar.TypeSymlink, Linkname: "real"}},
			{h: tar.Header{Name: "link/f", Typeflag: tar.TypeReg, Mode: 0o644}, body: "x"},
			{h: tar.Header{Name: "link", Typeflag: tar.TypeSymlink, Linkname: "/"}},
			{h: tar.Header{Name: "link/evil", Typeflag: tar.TypeReg, Mode: 0o644}, body: "x"}},
		"symlink-swapped-above": {
			{h: tar.Header{Name: "real/sub/", Typeflag: tar.TypeDir, Mode: 0o755}},
			{h: tar.Header{Name: "link", Typeflag: tar.TypeSymlink, Linkname: "real"}},
			{h: tar.Header{Name: "link/sub/f", Typeflag: tar.TypeReg, Mode: 0o644}, body: "x"},
			{h: tar.Header{Name: "link", Typeflag: tar.TypeSymlink, Linkname: "../.."}},
			{h: tar.Header{Name: "link/sub/evil", Typeflag: tar.TypeReg, Mode: 0o644}, body: "x"}},
	} {
		t.Run(name, func(t *testing.T) {
			outer := t.TempDir()
			root := filepath.Join(outer, "a", "root")
			os.MkdirAll(root, 0o755)
			os.WriteFile(filepath.Join(outer, "a", "outside"), []byte("keep"), 0o644)
			_, err := Archive(context.Background(), bytes.NewReader(mkTar(t, ents)), root, Options{NoOwners: true})
			if !errors.Is(err, ErrEscape) {
				t.Fatalf("want ErrEscape, got %v", err)
			}
			for _, p := range []string{filepath.Join(outer, "evil"), filepath.Join(outer, "a", "evil"), "/evil", filepath.Join(root, "real", "evil"), filepath.Join(root, "real", "sub", "evil")} {
				if _, err := os.Lstat(p); err == nil {
					t.Errorf("%s was written outside the root", p)
				}
			}
		})
	}
}

// A symlink already on disk (from an earlier restore) is replaced, not written through.
func TestArchiveReplacesExistingSymlink(t *testing.T) {
	outer := t.TempDir()
	root := filepath.Join(outer, "root")
	os.MkdirAll(filepath.Join(root, "etc"), 0o755)
	victim := filepath.Join(outer, "victim")
	os.WriteFile(victim, []byte("keep"), 0o644)
	os.Symlink(victim, filepath.Join(root, "etc", "passwd"))
	data := mkTar(t, []ent{{h: tar.Header{Name: "etc/passwd", Typeflag: tar.TypeReg, Mode: 0o644}, body: "new"}})
	if _, err := Archive(context.Background(), bytes.NewReader(data), root, Options{NoOwners: true}); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(victim); string(b) != "keep" {
		t.Errorf("wrote through a symlink: victim now %q", b)
	}
	if b, _ := os.ReadFile(filepath.Join(root, "etc", "passwd")); string(b) != "new" {
		t.Errorf("etc/passwd = %q", b)
	}
}

// A path that was a symlink to a directory and is now a file is not a way
// into that directory any more (the kept parent descriptor is dropped).
func TestArchiveSymlinkReplacedByFile(t *testing.T) {
	root := t.TempDir()
	data := mkTar(t, []ent{
		{h: tar.Header{Name: "real/", Typeflag: tar.TypeDir, Mode: 0o755}},
		{h: tar.Header{Name: "link", Typeflag: tar.TypeSymlink, Linkname: "real"}},
		{h: tar.Header{Name: "link/f", Typeflag: tar.TypeReg, Mode: 0o644}, body: "via link"},
		{h: tar.Header{Name: "link", Typeflag: tar.TypeReg, Mode: 0o644}, body: "now a file"},
		{h: tar.Header{Name: "link/g", Typeflag: tar.TypeReg, Mode: 0o644}, body: "x"},
	})
	_, err := Archive(context.Background(), bytes.NewReader(data), root, Options{NoOwners: true})
	if !errors.Is(err, unix.ENOTDIR) || !strings.Contains(err.Error(), `"link/g"`) {
		t.Fatalf("want ENOTDIR for link/g, got %v", err)
	}
	if b, _ := os.ReadFile(filepath.Join(root, "real", "f")); string(b) != "via link" {
		t.Errorf("real/f = %q", b)
	}
	if _, err := os.Lstat(filepath.Join(root, "real", "g")); err == nil {
		t.Error("link/g went into real/ through a stale directory")
	}
}

// Modes come out exact whether the file is created with them or chmod'ed
// (the umask takes 0o022 from 0o666; set-id bits need chmod).
func TestArchiveModesUnderUmask(t *testing.T) {
	old := unix.Umask(0o022)
	defer unix.Umask(old)
	root := t.TempDir()
	modes := map[string]int64{"a": 0o666, "b": 0o600, "c": 0o755, "d": 0o4755, "e": 0o640, "f": 0o1777}
	var ents []ent
	for _, n := range []string{"a", "b", "c", "d", "e", "f"} {
		ents = append(ents, ent{h: tar.Header{Name: "dir/" + n, Typeflag: tar.TypeReg, Mode: modes[n], ModTime: mtime}, body: n})
	}
	if _, err := Archive(context.Background(), bytes.NewReader(mkTar(t, ents)), root, Options{NoOwners: true}); err != nil {
		t.Fatal(err)
	}
	for n, m := range modes {
		var st unix.Stat_t
		if err := unix.Lstat(filepath.Join(root, "dir", n), &st); err != nil {
			t.Fatal(err)
		}
		if got := int64(st.Mode & 0o7777); got != m {
			t.Errorf("%s: mode %04o, want %04o", n, got, m)
		}
		if st.Mtim.Sec != mtime.Unix() {
			t.Errorf("%s: mtime %d, want %d", n, st.Mtim.Sec, mtime.Unix())
		}
	}
}

// A second extraction over the first replaces every kind of entry (the
// create-first, replace-on-EEXIST path) and keeps hard links linked.
func TestArchiveTwiceOverItself(t *testing.T) {
	needRoot(t)
	root := t.TempDir()
	data := systemTar(t)
	for i := 0; i < 2; i++ {
		if _, err := Archive(context.Background(), bytes.NewReader(data), root, Options{}); err != nil {
			t.Fatalf("extraction %d: %v", i+1, err)
		}
	}
	var a, b unix.Stat_t
	_ = unix.Stat(filepath.Join(root, "usr/bin/su"), &a)
	_ = unix.Stat(filepath.Join(root, "usr/bin/sudoedit"), &b)
	if a.Ino != b.Ino || a.Nlink != 2 || a.Mode&0o7777 != 0o4755 {
		t.Errorf("after two extractions: inodes %d %d, nlink %d, mode %o", a.Ino, b.Ino, a.Nlink, a.Mode&0o7777)
	}
	if l, _ := os.Readlink(filepath.Join(root, "bin")); l != "usr/bin" {
		t.Errorf("bin -> %q", l)
	}
	if b, _ := os.ReadFile(filepath.Join(root, "etc/group")); string(b) != "root:x:0:\nme:x:1000:\n" {
		t.Errorf("etc/group = %q", b)
	}
}

func TestArchiveTruncated(t *testing.T) {
	data := mkTar(t, []ent{{h: tar.Header{Name: "f", Typeflag: tar.TypeReg, Mode: 0o644}, body: strings.Repeat("x", 10000)}})
	_, err := Archive(context.Background(), bytes.NewReader(data[:3000]), t.TempDir(), Options{NoOwners: true})
	if err == nil || !strings.Contains(err.Error(), `"f"`) {
		t.Fatalf("want an error naming the entry, got %v", err)
	}
}

// smallFiles is a tar of n files of 4 KiB, 100 per directory (the shape of
// the hand-off benchmark's small-files dataset).
func smallFiles(b *testing.B, n int) []byte {
	var ents []ent
	for i := range n {
		if i%100 == 0 {
			ents = append(ents, ent{h: tar.Header{Name: "d" + strconv.Itoa(i/100) + "/", Typeflag: tar.TypeDir, Mode: 0o755}})
		}
		ents = append(ents, ent{h: tar.Header{Name: "d" + strconv.Itoa(i/100) + "/f" + strconv.Itoa(i), Typeflag: tar.TypeReg, Mode: 0o644, ModTime: mtime}, body: strings.Repeat(string(rune('a'+i%26)), 4096)})
	}
	return mkTar(&testing.T{}, ents)
}

// BenchmarkArchive extracts 10,000 small files; BenchmarkGNUTar does the
// same with tar -x (same data, same run: compare the two, not across runs;
// TMPDIR=/dev/shm compares the extractors rather than the disk).
func BenchmarkArchive(b *testing.B) {
	benchExtract(b, func(data []byte, root string) error {
		_, err := Archive(context.Background(), bytes.NewReader(data), root, Options{NoOwners: true})
		return err
	})
}

func BenchmarkGNUTar(b *testing.B) {
	if _, err := exec.LookPath("tar"); err != nil {
		b.Skip("skipping: no tar")
	}
	benchExtract(b, func(data []byte, root string) error {
		cmd := exec.Command("tar", "-x", "-C", root)
		cmd.Stdin = bytes.NewReader(data)
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("tar: %w: %s", err, out)
		}
		return nil
	})
}

func benchExtract(b *testing.B, extract func(data []byte, root string) error) {
	data := smallFiles(b, 10000)
	b.SetBytes(int64(len(data)))
	dir := b.TempDir()
	i := 0
	for b.Loop() {
		root := filepath.Join(dir, strconv.Itoa(i))
		i++
		if err := os.Mkdir(root, 0o755); err != nil {
			b.Fatal(err)
		}
		if err := extract(data, root); err != nil {
			b.Fatal(err)
		}
	}
}

// Options.Owner gives every entry one owner as it is made, keeping set-id
// bits (which chown clears), and Stats count the regular files.
func TestArchiveOwnerOverride(t *testing.T) {
	needRoot(t)
	root := t.TempDir()
	st, err := Archive(context.Background(), bytes.NewReader(systemTar(t)), root, Options{Owner: &Owner{UID: 4242, GID: 4343}})
	if err != nil {
		t.Fatal(err)
	}
	// etc/passwd, group, shadow, su, ping, sudoedit (a hard link), sparse.img
	if st.Files != 7 || st.Size != int64(len("root:x:0:0::/root:/bin/sh\nme:x:1000:1000::/home/me:/bin/sh\n")+len("root:x:0:\nme:x:1000:\n")+len("root:*:1::::::\n")+3+3+3+8<<20+3) {
		t.Errorf("stats %+v", st)
	}
	for _, rel := range []string{".", "etc", "etc/shadow", "usr/bin/su", "bin", "dev/null", "home/me", "var/lib/sparse.img"} {
		var s unix.Stat_t
		if err := unix.Lstat(filepath.Join(root, rel), &s); err != nil {
			t.Fatal(err)
		}
		if s.Uid != 4242 || s.Gid != 4343 {
			t.Errorf("%s owned by %d:%d, want 4242:4343", rel, s.Uid, s.Gid)
		}
	}
	var su unix.Stat_t
	_ = unix.Lstat(filepath.Join(root, "usr/bin/su"), &su)
	if su.Mode&0o7777 != 0o4755 {
		t.Errorf("su mode %o after chown, want 4755", su.Mode&0o7777)
	}
}
