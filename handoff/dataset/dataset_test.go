package dataset

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stratahq/strata/handoff/creds"
	"github.com/stratahq/strata/handoff/manifest"
	"github.com/stratahq/strata/handoff/pattern"
	"github.com/stratahq/strata/handoff/place"
	"github.com/stratahq/strata/internal/run"
	"github.com/stratahq/strata/profile"
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
	want := "-rlpt --numeric-ids --chown=1000:100 --partial --partial-dir=.strata-partial --timeout=120 --info=progress2 --no-inc-recursive --stats '--out-format=strata-done:%l %n' --exclude=/.strata-staging --include=/SHA256SUMS '--exclude=*.tmp' '--include=*/' '--include=favourites/**' '--exclude=*' --prune-empty-dirs --password-file=- -- rsync://backup@h:8873/media/music/ /mnt/strata/home/me/music/"
	if got != want {
		t.Errorf("rsync argv:\n got %s\nwant %s", got, want)
	}
	// Into the staging tree: in place, and the tree made the selection.
	got = run.Quote(RsyncArgs(src, "/mnt/strata/home/me/music/.strata-staging/tree", pattern.Set{}, place.Owner{UID: 1000, GID: 100}, ssh, true, true))
	want = "-rlpt --numeric-ids --chown=1000:100 --inplace --delete --delete-excluded --timeout=120 --info=progress2 --no-inc-recursive --stats '--out-format=strata-done:%l %n' --exclude=/.strata-staging --password-file=- -- rsync://backup@h:8873/media/music/ /mnt/strata/home/me/music/.strata-staging/tree/"
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

func TestRsyncProgress(t *testing.T) {
	var got []Progress
	w := &progressWriter{report: func(p Progress) { got = append(got, p) }, base: 100}
	w.Write([]byte("      32,768   1%    0.00kB/s    0:00:00 (xfr#0, to-chk=9/10)\r  3,276,800  50%  100.00MB/s    0:00:01 (xfr#4, to-chk=5/10)\n\nNumber of files: 11 (reg: 10, dir: 1)\nTotal file size: 6,553,600 bytes\n"))
	w.flush()
	if len(got) != 2 || got[1].Bytes != 3276900 || got[1].TotalBytes != 100+6553600 || got[1].Files != 5 || got[1].TotalFiles != 10 {
		t.Errorf("progress %+v", got)
	}
	if w.stats.files != 10 || w.stats.size != 6553600 {
		t.Errorf("stats %+v", w.stats)
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
// file is renamed into place by then), and verify trusts an early sum
// only while the file is the same inode, ctime and size.
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
	for _, l := range []string{"7 a", "4,096 sub/", "1 b"} {
		e.add(l)
	}
	early := e.stop()
	if _, ok := early["a"]; !ok || len(early) != 1 {
		t.Fatalf("early sums %v, want a only (b was the last line)", early)
	}
	if early["a"].sum != sumA {
		t.Errorf("early sum of a %s, want %s", early["a"].sum, sumA)
	}
	// a replaced after it was hashed: its early sum must not count.
	sumA2 := write("a", "second a")
	entries := []manifest.Entry{{Path: "a", SHA256: sumA2, Line: 1}, {Path: "b", SHA256: sumB, Line: 2}}
	if n, _, _, err := tr.verify(context.Background(), entries, 2, early); err != nil || n != 2 {
		t.Fatalf("a replaced after its early hash: %d, %v", n, err)
	}
	// An early sum for the file as it is now is used without reading it.
	id, _ := tr.stat("b")
	early = map[string]earlySum{"b": {hashed{strings.Repeat("0", 64), id.size}, id.ino, id.ctimeNs}}
	if _, _, _, err := tr.verify(context.Background(), entries[1:], 2, early); err == nil || !strings.Contains(err.Error(), "checksum mismatch") {
		t.Fatalf("an early sum for the file in place was not used: %v", err)
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
		e.add(fmt.Sprintf("%d big", len(data)))
		tmp := filepath.Join(dest, ".big.Ab12Cd")
		f, err := os.Create(tmp)
		if err != nil {
			t.Fatal(err)
		}
		for off := 0; off < len(data); off += 1 << 20 {
			f.Write(data[off:min(off+1<<20, len(data))])
			time.Sleep(time.Millisecond)
			if early && off == 4<<20 {
				e.add("4096 sub/") // a line before the file is complete
			}
		}
		f.Close()
		if err := os.Rename(tmp, filepath.Join(dest, "big")); err != nil {
			t.Fatal(err)
		}
		e.add("10 next")
		sums := e.stop()
		entries := []manifest.Entry{{Path: "big", SHA256: hex.EncodeToString(want[:]), Line: 1}}
		if n, _, _, err := tr.verify(context.Background(), entries, 1, sums); err != nil || n != 1 {
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
