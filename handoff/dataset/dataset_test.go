package dataset

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stratahq/strata/handoff/creds"
	"github.com/stratahq/strata/handoff/manifest"
	"github.com/stratahq/strata/handoff/pattern"
	"github.com/stratahq/strata/handoff/place"
	"github.com/stratahq/strata/internal/run"
	"github.com/stratahq/strata/profile"
	"golang.org/x/sys/unix"
)

func TestClassify(t *testing.T) {
	for _, tc := range []struct {
		d                     profile.Dataset
		method, source, manif string
		err                   string
	}{
		{d: profile.Dataset{Kind: "buffer"}, method: Buffer},
		{d: profile.Dataset{Source: "datasets/music/"}, method: Manifest, source: "http://srv:8080/datasets/music/", manif: "http://srv:8080/datasets/music/SHA256SUMS"},
		{d: profile.Dataset{Source: "https://h/m/", Manifest: "sums/music.sha256"}, method: Manifest, source: "https://h/m/", manif: "http://srv:8080/sums/music.sha256"},
		{d: profile.Dataset{Source: "https://h/m.tar.zst"}, method: Archive, source: "https://h/m.tar.zst"},
		{d: profile.Dataset{Source: "https://h/m.bin", SHA256: strings.Repeat("a", 64)}, method: Archive, source: "https://h/m.bin"},
		{d: profile.Dataset{Source: "rsync://h/music"}, method: Rsync, source: "rsync://h/music"},
		{d: profile.Dataset{Source: "ssh://me@h:2222/srv/music"}, method: Rsync, source: "ssh://me@h:2222/srv/music"},
		{d: profile.Dataset{Source: "https://u:pw@h/m/"}, method: Manifest, source: "https://u@h/m/", manif: "https://u@h/m/SHA256SUMS"},
		{d: profile.Dataset{Source: "https://h/m"}, err: "not a directory (end it with /) nor a tar archive"},
		{d: profile.Dataset{Source: "https://h/m/", SHA256: strings.Repeat("a", 64)}, err: "sha256 is for an archive"},
		{d: profile.Dataset{Source: "ftp://h/m/"}, err: `scheme "ftp" is not supported`},
	} {
		p, err := Classify(tc.d, "http://srv:8080")
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%+v: err %v, want %q", tc.d, err, tc.err)
			}
			continue
		}
		if err != nil || p.Method != tc.method || p.Source != tc.source || p.Manifest != tc.manif {
			t.Errorf("%+v: got %+v %v, want %s %s %s", tc.d, p, err, tc.method, tc.source, tc.manif)
		}
	}
}

func TestRsyncArgs(t *testing.T) {
	store, _ := creds.Parse("c", strings.NewReader("rsync://h:8873/ basic backup pw\nssh://me@h:2222/ ssh-key /keys/id\n"), nil)
	src, ssh, err := RsyncSource("rsync://h:8873/media/music", store.Lookup("rsync://h:8873/media/music"))
	if err != nil || ssh != nil {
		t.Fatal(err)
	}
	got := run.Quote(RsyncArgs(src, "/mnt/strata/home/me/music", pattern.Set{Include: []string{"favourites/**"}, Exclude: []string{"*.tmp"}}, place.Owner{UID: 1000, GID: 100}, ssh, true, false))
	want := "-rlpt --numeric-ids --chown=1000:100 --partial --partial-dir=.strata-partial --stats '--out-format=strata-done:%i %l %n' --exclude=/.strata-staging --include=/SHA256SUMS '--exclude=*.tmp' '--include=*/' '--include=favourites/**' '--exclude=*' --prune-empty-dirs --password-file=- -- rsync://backup@h:8873/media/music/ /mnt/strata/home/me/music/"
	if got != want {
		t.Errorf("rsync argv:\n got %s\nwant %s", got, want)
	}
	// Into the staging tree: in place, and the tree made the selection.
	got = run.Quote(RsyncArgs(src, "/mnt/strata/home/me/music/.strata-staging/tree", pattern.Set{}, place.Owner{UID: 1000, GID: 100}, ssh, true, true))
	want = "-rlpt --numeric-ids --chown=1000:100 --inplace --delete --delete-excluded --stats '--out-format=strata-done:%i %l %n' --exclude=/.strata-staging --password-file=- -- rsync://backup@h:8873/media/music/ /mnt/strata/home/me/music/.strata-staging/tree/"
	if got != want {
		t.Errorf("staged rsync argv:\n got %s\nwant %s", got, want)
	}
	src, ssh, err = RsyncSource("ssh://me@h:2222/srv/music", store.Lookup("ssh://me@h:2222/srv/music"))
	if err != nil || src != "me@h:/srv/music/" || run.Quote(ssh) != "ssh -o BatchMode=yes -p 2222 -i /keys/id -o IdentitiesOnly=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null" {
		t.Errorf("ssh source %s %q %v", src, ssh, err)
	}
	if a := strings.Join(RsyncArgs(src, "/d", pattern.Set{}, place.Owner{}, ssh, true, false), " "); strings.Contains(a, "password-file") {
		t.Errorf("password file over ssh: %s", a)
	}
}

// Progress comes from rsync's per-item lines: a received file counts once
// the next one starts (or rsync ends well), the file being received counts
// as far as it is written, and the generator's lines (directories,
// symlinks, deletions) count for nothing.
func TestRsyncProgress(t *testing.T) {
	var got []Progress
	var started []string
	written := int64(0)
	w := &progressWriter{
		report: func(p Progress) { got = append(got, p) },
		done:   func(size int64, name string) { started = append(started, fmt.Sprint(size, " ", name)) },
		live:   func(name string) int64 { return written },
		stats:  rsyncStats{bytes: 100, done: 1}, // an earlier attempt's
	}
	last := func() Progress {
		t.Helper()
		if len(got) == 0 {
			t.Fatal("no progress reported")
		}
		return got[len(got)-1]
	}
	w.Write([]byte(doneMarker + "*deleting   0 old/\n" + doneMarker + "cd+++++++++ 4,096 sub/\n" +
		doneMarker + ">f+++++++++ 1,000 sub/a b\n" + doneMarker + "cL+++++++++ 1 lnk\n"))
	if p := last(); p.Bytes != 100 || p.Files != 1 || p.TotalBytes != -1 || p.TotalFiles != -1 {
		t.Errorf("while sub/a b is received: %+v", p)
	}
	w.reported = time.Time{} // (reports are spaced by progressEvery)
	w.Write([]byte(doneMarker + ">f+++++++++ 5,000,000 big\n"))
	if p := last(); p.Bytes != 1100 || p.Files != 2 {
		t.Errorf("sub/a b complete: %+v", p)
	}
	written = 2_000_000
	w.reported = time.Time{}
	w.Write([]byte("\r")) // (any output, or a tick)
	if p := last(); p.Bytes != 2_001_100 || p.Files != 2 {
		t.Errorf("big written to 2 MB: %+v", p)
	}
	written = 0 // (a look that misses the file: reports never go back)
	w.reported = time.Time{}
	w.Write([]byte("\n"))
	if p := last(); p.Bytes != 2_001_100 {
		t.Errorf("progress went back: %+v", p)
	}
	w.Write([]byte("\nNumber of files: 4 (reg: 2, dir: 1, link: 1)\nTotal file size: 5,001,001 bytes\n"))
	w.flush(true)
	if p := last(); p.Bytes != 5_001_100 || p.Files != 3 {
		t.Errorf("at the end: %+v", p)
	}
	if w.stats.files != 2 || w.stats.size != 5001001 {
		t.Errorf("stats %+v", w.stats)
	}
	if want := []string{"1000 sub/a b", "5000000 big"}; !slices.Equal(started, want) {
		t.Errorf("files started %q, want %q", started, want)
	}
	// Cut while receiving: the file being received is not complete.
	w = &progressWriter{report: func(p Progress) { got = append(got, p) }}
	w.Write([]byte(doneMarker + ">f+++++++++ 10 x\n"))
	w.flush(false)
	if p := last(); p.Files != 0 || p.Bytes != 0 {
		t.Errorf("after a cut: %+v", p)
	}
	// The manifest that comes with the transfer is not one of the files.
	w = &progressWriter{report: func(p Progress) { got = append(got, p) }, uncounted: DefaultManifest}
	w.Write([]byte(doneMarker + ">f+++++++++ 700 SHA256SUMS\n" + doneMarker + ">f+++++++++ 10 x\n"))
	w.flush(true)
	if p := last(); p.Files != 1 || p.Bytes != 10 {
		t.Errorf("with the manifest: %+v", p)
	}
}

func testTree(t *testing.T, dir string) tree {
	t.Helper()
	tr, err := openTree(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tr.close)
	return tr
}

// The early hasher takes a file once rsync has printed the next line (the
// file is renamed into place by then), and a sum counts only as of the
// file's last line: a file printed again (rsync's redo) is hashed again.
// verify takes an early sum as it is, or with confirm only while the file
// is the same inode, ctime and size.
func TestEarlyHashes(t *testing.T) {
	dest := t.TempDir()
	tr := testTree(t, dest)
	write := func(name, content string) string {
		t.Helper()
		tmp := filepath.Join(dest, ".tmp-"+name)
		if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, filepath.Join(dest, name)); err != nil { // as rsync does
			t.Fatal(err)
		}
		s := sha256.Sum256([]byte(content))
		return hex.EncodeToString(s[:])
	}
	sumA := write("a", "first a")
	sumB := write("b", "b")
	e := newEarlyHasher(tr)
	e.add(7, "a")
	e.add(1, "b")
	early, _ := e.stop()
	if _, ok := early["a"]; !ok || len(early) != 1 {
		t.Fatalf("early sums %v, want a only (b was the last line)", early)
	}
	if early["a"].sum != sumA {
		t.Errorf("early sum of a %s, want %s", early["a"].sum, sumA)
	}
	entries := []manifest.Entry{{Path: "a", SHA256: sumA, Line: 1}, {Path: "b", SHA256: sumB, Line: 2}}
	if n, _, fromEarly, err := tr.verify(context.Background(), entries, 2, early, false); err != nil || n != 2 || fromEarly != 1 {
		t.Fatalf("verify: %d files, %d from early sums, %v", n, fromEarly, err)
	}

	// rsync's redo: a is hashed, then written again and printed again; the
	// run ends before the hasher takes it again. The first sum must not
	// count (it is a's old content).
	e = newEarlyHasher(tr)
	e.add(7, "a")
	e.add(1, "b")
	e.hand()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		e.mu.Lock()
		_, ok := e.sums["a"]
		e.mu.Unlock()
		if ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("a was never hashed")
		}
	}
	sumA2 := write("a", "second a")
	e.add(8, "a")
	early, _ = e.stop()
	if s, ok := early["a"]; ok {
		t.Fatalf("a's sum from before its second line counts: %+v", s)
	}
	entries[0].SHA256 = sumA2
	if n, _, _, err := tr.verify(context.Background(), entries, 2, early, false); err != nil || n != 2 {
		t.Fatalf("after the redo: %d, %v", n, err)
	}

	// a replaced without a line (which rsync does not do): an early sum is
	// taken as it is, unless confirmed by the file's identity.
	stale := map[string]earlySum{"a": {hashed{sumA, 7}, 0, 0, 1}}
	if _, _, _, err := tr.verify(context.Background(), entries[:1], 1, stale, false); err == nil || !strings.Contains(err.Error(), "checksum mismatch") {
		t.Fatalf("an early sum was not taken as it is: %v", err)
	}
	write("a", "second a") // (the mismatch removed it)
	if n, _, fromEarly, err := tr.verify(context.Background(), entries[:1], 1, stale, true); err != nil || n != 1 || fromEarly != 0 {
		t.Fatalf("confirm took an early sum for another inode: %d from early, %v", fromEarly, err)
	}
	id, _ := tr.stat("b")
	early = map[string]earlySum{"b": {hashed{strings.Repeat("0", 64), id.size}, id.ino, id.ctimeNs, 1}}
	if _, _, _, err := tr.verify(context.Background(), entries[1:], 2, early, true); err == nil || !strings.Contains(err.Error(), "checksum mismatch") {
		t.Fatalf("an early sum for the file in place was not used: %v", err)
	}
}

// The manifest coming with the transfer is read as soon as it is in place
// (not hashed), and what was read says which inode it was, so a manifest
// replaced afterwards is read again.
func TestEarlyReadsManifest(t *testing.T) {
	dest := t.TempDir()
	tr := testTree(t, dest)
	sum := sha256.Sum256([]byte("a"))
	m := hex.EncodeToString(sum[:]) + "  a\n"
	for name, content := range map[string]string{"SHA256SUMS": m, "a": "a", "b": "b"} {
		if err := os.WriteFile(filepath.Join(dest, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	e := newEarlyHasher(tr)
	e.manifest, e.manifestSrc = DefaultManifest, "rsync://h/m/SHA256SUMS"
	e.add(int64(len(m)), "SHA256SUMS")
	e.add(1, "a")
	e.add(1, "b")
	sums, read := e.stop()
	if read == nil || len(read.entries) != 1 || read.entries[0].Path != "a" || read.size != int64(len(m)) || read.digest != digest([]byte(m)) {
		t.Fatalf("manifest read during the transfer: %+v", read)
	}
	if _, ok := sums["SHA256SUMS"]; ok || sums["a"].sum != hex.EncodeToString(sum[:]) {
		t.Errorf("early sums %v: want a's, not the manifest's", sums)
	}
	if id, err := tr.stat("SHA256SUMS"); err != nil || id != read.id {
		t.Errorf("identity %+v, read %+v (%v)", id, read.id, err)
	}
	time.Sleep(10 * time.Millisecond) // (a ctime the kernel can tell apart)
	if err := os.WriteFile(filepath.Join(dest, "SHA256SUMS.new"), []byte(m+m), 0o644); err != nil {
		t.Fatal(err)
	}
	os.Rename(filepath.Join(dest, "SHA256SUMS.new"), filepath.Join(dest, "SHA256SUMS"))
	if id, _ := tr.stat("SHA256SUMS"); id == read.id {
		t.Error("a replaced manifest has the identity of the one read")
	}
	// One that does not parse is left for the check after the transfer.
	os.WriteFile(filepath.Join(dest, "SHA256SUMS"), []byte("not a manifest\n"), 0o644)
	e = newEarlyHasher(tr)
	e.manifest = DefaultManifest
	e.add(15, "SHA256SUMS")
	e.add(1, "a")
	if _, read := e.stop(); read != nil {
		t.Errorf("a manifest that does not parse was taken: %+v", read)
	}
	// After the transfer: none is ENOENT (rsync's checksums then); one that
	// is a symlink is refused, not followed out of the dataset.
	if _, err := tr.readManifest("none", "m"); !errors.Is(err, unix.ENOENT) {
		t.Errorf("no manifest: %v", err)
	}
	os.Symlink("/etc/hostname", filepath.Join(dest, "link"))
	if m, err := tr.readManifest("link", "m"); err == nil || !strings.Contains(err.Error(), "symlink") {
		t.Errorf("a symlinked manifest: %+v, %v", m, err)
	}
}

// The live size of a file rsync is receiving into a destination with files
// is its temporary file's (.NAME.XXXXXX next to it); none is 0.
func TestTempSize(t *testing.T) {
	dest := t.TempDir()
	tr := testTree(t, dest)
	os.MkdirAll(filepath.Join(dest, "sub"), 0o755)
	os.WriteFile(filepath.Join(dest, "sub", ".big.Ab12Cd"), make([]byte, 12345), 0o600)
	os.WriteFile(filepath.Join(dest, "sub", ".big.toolong"), make([]byte, 99), 0o600)
	if n := tr.tempSize("sub/big"); n != 12345 {
		t.Errorf("tempSize(sub/big) = %d, want 12345", n)
	}
	if n := tr.tempSize("sub/other"); n != 0 {
		t.Errorf("tempSize of a file with no temporary file = %d", n)
	}
}

// A large file is hashed as rsync writes it: its temporary file is followed
// until rsync moves on, and the sum recorded with the final inode.
func TestEarlyHashFollowsTempFile(t *testing.T) {
	dest := t.TempDir()
	tr := testTree(t, dest)
	data := make([]byte, followMin+3<<20)
	for i := range data {
		data[i] = byte(i * 7)
	}
	want := sha256.Sum256(data)
	for _, early := range []bool{false, true} {
		os.Remove(filepath.Join(dest, "big"))
		e := newEarlyHasher(tr)
		e.add(int64(len(data)), "big")
		tmp := filepath.Join(dest, ".big.Ab12Cd")
		f, err := os.Create(tmp)
		if err != nil {
			t.Fatal(err)
		}
		for off := 0; off < len(data); off += 1 << 20 {
			f.Write(data[off:min(off+1<<20, len(data))])
			time.Sleep(time.Millisecond)
			if early && off == 4<<20 {
				e.add(10, "next0") // a wrong guess (rsync's receiver takes one file at a time)
			}
		}
		f.Close()
		if err := os.Rename(tmp, filepath.Join(dest, "big")); err != nil {
			t.Fatal(err)
		}
		e.add(10, "next")
		sums, _ := e.stop()
		entries := []manifest.Entry{{Path: "big", SHA256: hex.EncodeToString(want[:]), Line: 1}}
		if n, _, _, err := tr.verify(context.Background(), entries, 1, sums, true); err != nil || n != 1 {
			t.Fatalf("early=%v: verify: %d, %v", early, n, err)
		}
		if early {
			continue // the early line may or may not leave a usable sum; the verdict is what counts
		}
		s, ok := sums["big"]
		id, _ := tr.stat("big")
		if !ok || s.sum != hex.EncodeToString(want[:]) || s.ino != id.ino || s.ctimeNs != id.ctimeNs {
			t.Errorf("followed sum %+v (ok %v), file %+v", s, ok, id)
		}
	}
}

func TestDirURL(t *testing.T) {
	for in, want := range map[string]string{
		"http://h:1/video.tar.zst":    "http://h:1/",
		"http://h/a/b.tar?x=1":        "http://h/a/",
		"http://h/a/":                 "http://h/a/",
		"file:///srv/data/x.tar.zst":  "file:///srv/data/",
		"https://h/a%20b/c.tar.zst#f": "https://h/a%20b/",
	} {
		if got := dirURL(in); got != want {
			t.Errorf("dirURL(%q) = %q, want %q", in, got, want)
		}
	}
}
