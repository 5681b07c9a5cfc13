package handoff_test

import (
	"io/fs"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stratahq/strata/handoff"
	"github.com/stratahq/strata/handoff/internal/testserver"
	"github.com/stratahq/strata/profile"
	"github.com/stratahq/strata/serve"
)

// collection is a small media collection with a manifest made by the real
// sha256sum, under dir/datasets/music.
func collection(t *testing.T, dir string) (src, manifestSum string) {
	t.Helper()
	src = filepath.Join(dir, "datasets/music")
	for i, f := range []string{"favourites/a.flac", "favourites/deep/b.flac", "favourites/c.tmp", "live/1.flac", "studio/2.flac", "studio/3.mp3", "odd name #1?.txt"} {
		randomFile(t, filepath.Join(src, f), 1000+i*777, int64(i))
	}
	return src, sha256sums(t, src)
}

func fileServer(t *testing.T, dir string) string {
	t.Helper()
	srv := httptest.NewServer(serve.Handler(dir, nil))
	t.Cleanup(srv.Close)
	return srv.URL + "/"
}

func TestManifestSelectionBuffer(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	src, msum := collection(t, dir)
	server := fileServer(t, dir)
	root := newRoot(t)
	p := &profile.Profile{Datasets: []profile.Dataset{
		{Name: "full", Source: "datasets/music/", Path: "/srv/music"},
		{Name: "laptop", Kind: "selection", Source: "datasets/music/", Include: []string{"favourites/**", "studio/"}, Exclude: []string{"*.tmp", "*.mp3"}, Path: "/home/me/music"},
		{Name: "inbox", Kind: "buffer", Path: "/home/me/inbox", Mode: "0750"},
	}}
	r := handOff(t, root, p, handoff.Options{Server: server, Jobs: 3})
	r.mustDone(t, "full", "laptop", "inbox")
	if got, want := listing(t, filepath.Join(root, "srv/music")), listing(t, src, "SHA256SUMS"); got != want {
		t.Errorf("full dataset differs from the source:\n%s\nwant\n%s", got, want)
	}
	if exists(filepath.Join(root, "srv/music/SHA256SUMS")) || exists(filepath.Join(root, "srv/music/.strata-staging")) {
		t.Error("manifest or staging left in the destination")
	}
	got := listing(t, filepath.Join(root, "home/me/music"))
	var names []string
	for _, l := range strings.Split(got, "\n") {
		names = append(names, strings.SplitN(l, "=", 2)[0])
	}
	if strings.Join(names, " ") != "favourites/a.flac favourites/deep/b.flac studio/2.flac" {
		t.Errorf("selection took %v", names)
	}
	if ents, err := os.ReadDir(filepath.Join(root, "home/me/inbox")); err != nil || len(ents) != 0 || mode(t, filepath.Join(root, "home/me/inbox")) != "0750" {
		t.Errorf("buffer: %v %v", ents, err)
	}
	m := marker(t, root, "dataset", "full")
	if m == nil || m.Digest != msum || m.Files != 7 || m.Method != "manifest" {
		t.Fatalf("marker %+v, want the manifest's sha256 %s", m, msum)
	}
	if ev := r.ev.last("full"); ev.Type != handoff.Done || !strings.Contains(ev.Detail, "verified by sha256 manifest") {
		t.Errorf("done event %q", ev.Detail)
	}
	if !strings.Contains(r.ev.String(), "dataset laptop: ") {
		t.Errorf("no progress events:\n%s", r.ev)
	}

	// A re-run skips all three.
	r = handOff(t, root, p, handoff.Options{Server: server})
	for _, it := range r.rep.Items {
		if it.Status != handoff.Skipped {
			t.Errorf("re-run: %s %s", it.Item, it.Status)
		}
	}
	// A partial one is finished: what is in place and right is kept, what
	// is missing or wrong is fetched.
	os.Remove(filepath.Join(root, "var/lib/strata/datasets/full"))
	os.Remove(filepath.Join(root, "srv/music/live/1.flac"))
	write(t, filepath.Join(root, "srv/music/studio/2.flac"), "damaged")
	r = handOff(t, root, p, handoff.Options{Server: server})
	r.mustDone(t, "full")
	if got, want := listing(t, filepath.Join(root, "srv/music")), listing(t, src, "SHA256SUMS"); got != want {
		t.Errorf("finished dataset differs:\n%s", got)
	}
	if ev := r.ev.last("full"); !strings.Contains(ev.Detail, "5 already in place") {
		t.Errorf("re-run fetched what was in place: %q", ev.Detail)
	}
}

// tarball makes an archive of src with the real tar and a compressor.
func tarball(t *testing.T, src, out, compress string) string {
	t.Helper()
	cmd := "tar -C " + src + " --owner=1234 --group=1234 -cf - . "
	if compress != "" {
		cmd += "| " + compress
	}
	sh(t, src, "sh", "-c", cmd+" > "+out)
	return fileSum(t, out)
}

func TestArchiveDataset(t *testing.T) {
	t.Parallel()
	testserver.Need(t, "tar", "zstd", "xz", "gzip")
	dir := t.TempDir()
	src := filepath.Join(t.TempDir(), "photos")
	randomFile(t, filepath.Join(src, "2023/a.jpg"), 300000, 1)
	randomFile(t, filepath.Join(src, "2024/b.jpg"), 200000, 2)
	write(t, filepath.Join(src, "docs/readme.txt"), "readme\n")
	write(t, filepath.Join(src, "bin/tool"), "#!/bin/sh\n")
	os.Chmod(filepath.Join(src, "bin/tool"), 0o755)
	os.Symlink("2023/a.jpg", filepath.Join(src, "latest.jpg"))
	os.MkdirAll(filepath.Join(dir, "archives"), 0o755)
	sums := map[string]string{
		"zst": tarball(t, src, filepath.Join(dir, "archives/photos.tar.zst"), "zstd -q -3"),
		"xz":  tarball(t, src, filepath.Join(dir, "archives/photos.tar.xz"), "xz -1"),
		"gz":  tarball(t, src, filepath.Join(dir, "archives/photos.tar.gz"), "gzip -1"),
	}
	tarball(t, src, filepath.Join(dir, "archives/other.tar"), "")
	sh(t, filepath.Join(dir, "archives"), "sh", "-c", "sha256sum other.tar > SHA256SUMS")
	server := fileServer(t, dir)
	root := newRoot(t)
	write(t, filepath.Join(root, "srv/zst/mine.txt"), "already there\n")
	p := &profile.Profile{Datasets: []profile.Dataset{
		{Name: "zst", Source: "archives/photos.tar.zst", SHA256: sums["zst"], Path: "/srv/zst"},
		{Name: "xz", Source: server + "archives/photos.tar.xz", SHA256: sums["xz"], Path: "/srv/xz"},
		{Name: "gz", Source: "archives/photos.tar.gz", SHA256: sums["gz"], Path: "/srv/gz", Owner: "strata-only"},
		{Name: "plain", Source: "archives/other.tar", Path: "/srv/plain"}, // sha256 from SHA256SUMS next to it
		{Name: "sel", Kind: "selection", Source: "archives/photos.tar.zst", SHA256: sums["zst"], Include: []string{"2024/", "docs/**"}, Path: "/srv/sel"},
	}}
	r := handOff(t, root, p, handoff.Options{Server: server, Jobs: 4})
	r.mustDone(t, "zst", "xz", "gz", "plain", "sel")
	want := listing(t, src)
	for _, d := range []string{"zst", "xz", "gz", "plain"} {
		if got := listing(t, filepath.Join(root, "srv", d), "mine.txt"); got != want {
			t.Errorf("%s: differs from the source:\n%s", d, got)
		}
	}
	if l, _ := os.Readlink(filepath.Join(root, "srv/zst/latest.jpg")); l != "2023/a.jpg" {
		t.Errorf("symlink %q", l)
	}
	if mode(t, filepath.Join(root, "srv/zst/bin/tool")) != "0755" {
		t.Error("archive modes not kept")
	}
	if read(t, filepath.Join(root, "srv/zst/mine.txt")) != "already there\n" {
		t.Error("a file already in the destination was lost")
	}
	if owner(t, filepath.Join(root, "srv/zst/2023/a.jpg")) != "0:0" {
		t.Error("archive owners used instead of the dataset's")
	}
	// A dataset owner (known only to the target) owns all of an archive.
	for _, f := range []string{"srv/gz", "srv/gz/2023", "srv/gz/2023/a.jpg", "srv/gz/latest.jpg", "srv/gz/bin/tool"} {
		if o := owner(t, filepath.Join(root, f)); o != "4242:4343" {
			t.Errorf("/%s owned by %s, want the dataset's 4242:4343", f, o)
		}
	}
	if mode(t, filepath.Join(root, "srv/gz/bin/tool")) != "0755" {
		t.Error("archive modes not kept under a dataset owner")
	}
	if n := strings.Count(want, "\n") + 1; r.status(t, "gz").Files != int64(n) || r.status(t, "zst").Files != int64(n) {
		t.Errorf("files reported: gz %d, zst %d; the archive has %d", r.status(t, "gz").Files, r.status(t, "zst").Files, n)
	}
	if got := listing(t, filepath.Join(root, "srv/sel")); !strings.HasPrefix(got, "2024/b.jpg=") || !strings.Contains(got, "docs/readme.txt=") || strings.Count(got, "\n") != 1 {
		t.Errorf("archive selection took:\n%s", got)
	}
	if m := marker(t, root, "dataset", "zst"); m == nil || m.Digest != sums["zst"] || m.Method != "archive" {
		t.Errorf("marker %+v", m)
	}
}

func TestRsyncDaemon(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	src, msum := collection(t, dir)
	plain := filepath.Join(t.TempDir(), "plain")
	randomFile(t, filepath.Join(plain, "x/y.bin"), 5000, 9)
	url, _ := testserver.RsyncDaemon(t,
		testserver.RsyncModule{Name: "music", Path: src, User: "backup", Password: "rsync-pw-Z1"},
		testserver.RsyncModule{Name: "plain", Path: plain})
	root := newRoot(t)
	store := storeOf(t, strings.TrimSuffix(url, "/")+"/music basic backup rsync-pw-Z1\n")
	sel := profile.Dataset{Name: "sel", Kind: "selection", Source: url + "music", Include: []string{"favourites/**", "studio/"}, Exclude: []string{"*.tmp", "*.mp3"}, Path: "/home/me/music", Owner: "strata-only"}
	p := &profile.Profile{Datasets: []profile.Dataset{
		{Name: "full", Source: url + "music/", Path: "/srv/music"},
		sel,
		{Name: "plain", Source: url + "plain", Path: "/srv/plain"},
	}}
	write(t, filepath.Join(root, "srv/plain/SHA256SUMS"), "the owner's own file\n")
	// (Every progress report as an event: the dataset's last one is checked.)
	r := handOff(t, root, p, handoff.Options{Creds: store, Jobs: 3, ProgressInterval: time.Nanosecond})
	r.mustDone(t, "full", "sel", "plain")
	if got := read(t, filepath.Join(root, "srv/plain/SHA256SUMS")); got != "the owner's own file\n" {
		t.Errorf("a SHA256SUMS the source does not have was not left alone: %q", got)
	}
	if exists(filepath.Join(root, "home/me/music/SHA256SUMS")) {
		t.Error("the manifest stayed in a selection that does not take it")
	}
	if strings.Count(r.log.String(), "run: rsync -rlpt") != 3 {
		t.Errorf("want one rsync connection per dataset:\n%s", r.log)
	}
	if got, want := listing(t, filepath.Join(root, "srv/music")), listing(t, src); got != want {
		t.Errorf("rsync full differs:\n%s\nwant\n%s", got, want)
	}
	// Progress in bytes and files as rsync's lines come (the totals only
	// with the hand-off's last report), never going back, up to every file
	// the manifest lists (SHA256SUMS itself is not counted).
	var files, size int64
	filepath.WalkDir(src, func(_ string, d fs.DirEntry, _ error) error {
		if info, err := d.Info(); err == nil && info.Mode().IsRegular() && d.Name() != "SHA256SUMS" {
			files, size = files+1, size+info.Size()
		}
		return nil
	})
	var prev handoff.Counts
	during, all := false, false
	for _, ev := range r.ev.all {
		if ev.Item.Name != "full" || ev.Type != handoff.Progress {
			continue
		}
		c := ev.Counts
		if c.Bytes < prev.Bytes || c.Files < prev.Files {
			t.Errorf("progress went back: %v after %v", c, prev)
		}
		during = during || c.TotalBytes == -1 && c.Files > 0 && c.Bytes > 0
		all = all || c.TotalBytes == -1 && c.Files == files && c.Bytes == size
		prev = c
	}
	if !during || !all || files != 7 {
		t.Errorf("progress during the transfer (%v), to all %d files (%v):\n%s", during, files, all, r.ev)
	}
	// The same selection over http picks the same files.
	server := fileServer(t, dir)
	hsel := sel
	hsel.Name, hsel.Source, hsel.Path = "hsel", server+"datasets/music/", "/srv/hsel"
	r2 := handOff(t, root, &profile.Profile{Datasets: []profile.Dataset{hsel}}, handoff.Options{})
	r2.mustDone(t, "hsel")
	if a, b := listing(t, filepath.Join(root, "home/me/music")), listing(t, filepath.Join(root, "srv/hsel")); a != b || a == "" {
		t.Errorf("rsync and http selections differ:\n%s\n--\n%s", a, b)
	}
	if m := marker(t, root, "dataset", "full"); m == nil || m.Digest != msum || !strings.Contains(m.Verified, "sha256 manifest") {
		t.Errorf("rsync marker %+v (want the source's SHA256SUMS %s)", m, msum)
	}
	if m := marker(t, root, "dataset", "plain"); m == nil || m.Files != 1 || m.Digest != "" {
		t.Errorf("plain rsync marker %+v", m)
	}
	if os.Geteuid() == 0 {
		if o := owner(t, filepath.Join(root, "home/me/music/favourites/a.flac")); o != "4242:4343" {
			t.Errorf("rsync owner %s", o)
		}
	}
	if strings.Contains(r.log.String(), "rsync-pw-Z1") {
		t.Error("rsync password in the log")
	}
	// A file that does not match the manifest fails the dataset, and is
	// removed so a re-run fetches it again.
	bad := filepath.Join(t.TempDir(), "bad")
	write(t, filepath.Join(bad, "good.txt"), "good\n")
	write(t, filepath.Join(bad, "bad.txt"), "original\n")
	sha256sums(t, bad)
	write(t, filepath.Join(bad, "bad.txt"), "tampered\n")
	burl, _ := testserver.RsyncDaemon(t, testserver.RsyncModule{Name: "bad", Path: bad})
	r = handOff(t, root, &profile.Profile{Datasets: []profile.Dataset{{Name: "bad", Source: burl + "bad", Path: "/srv/bad"}}}, handoff.Options{})
	it := r.status(t, "bad")
	if it.Status != handoff.Failed || !strings.Contains(it.Err.Error(), "file bad.txt (manifest line 1): checksum mismatch") {
		t.Errorf("tampered rsync file: %s %v", it.Status, it.Err)
	}
	if exists(filepath.Join(root, "srv/bad/bad.txt")) || marker(t, root, "dataset", "bad") != nil {
		t.Error("a mismatching file stayed in place, or the dataset was marked done")
	}
	// The profile's manifest, over http, vouches for the bytes whatever
	// the rsync source's SHA256SUMS says: the tampered file fails against
	// one made before, and passes against one made of what is served now.
	pinned := t.TempDir()
	write(t, filepath.Join(pinned, "before"), sumOf([]byte("good\n"))+"  good.txt\n"+sumOf([]byte("original\n"))+"  bad.txt\n")
	write(t, filepath.Join(pinned, "now"), sumOf([]byte("good\n"))+"  good.txt\n"+sumOf([]byte("tampered\n"))+"  bad.txt\n")
	murl := fileServer(t, pinned)
	r = handOff(t, root, &profile.Profile{Datasets: []profile.Dataset{
		{Name: "before", Source: burl + "bad", Path: "/srv/before", Manifest: murl + "before"},
		{Name: "now", Source: burl + "bad", Path: "/srv/now", Manifest: murl + "now"},
	}}, handoff.Options{})
	if it := r.status(t, "before"); it.Status != handoff.Failed || !strings.Contains(it.Err.Error(), "file bad.txt (manifest line 2): checksum mismatch") {
		t.Errorf("rsync file against the profile's manifest: %s %v", it.Status, it.Err)
	}
	r.mustDone(t, "now")
	if m := marker(t, root, "dataset", "now"); m == nil || m.Verified != "sha256 manifest "+murl+"now" || m.Files != 2 {
		t.Errorf("marker %+v, want verified by the profile's manifest", m)
	}
}
