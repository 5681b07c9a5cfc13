package handoff_test

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/stratahq/strata/handoff"
	"github.com/stratahq/strata/handoff/internal/testserver"
	"github.com/stratahq/strata/profile"
)

type entry struct {
	name, body, link string
	typ              byte
}

func tarZst(t *testing.T, entries []entry) []byte {
	t.Helper()
	var raw bytes.Buffer
	tw := tar.NewWriter(&raw)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Mode: 0o644, Size: int64(len(e.body)), Typeflag: e.typ, Linkname: e.link, ModTime: time.Unix(1e9, 0)}
		if e.typ == 0 {
			h.Typeflag = tar.TypeReg
		}
		if h.Typeflag != tar.TypeReg {
			h.Size = 0
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		tw.Write([]byte(e.body))
	}
	tw.Close()
	var z bytes.Buffer
	zw, _ := zstd.NewWriter(&z)
	zw.Write(raw.Bytes())
	zw.Close()
	return z.Bytes()
}

func sumOf(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }

// Each hostile input fails with an error naming what and where, leaves
// nothing outside the root, nothing under its final name, and no marker.
func TestHostileInput(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	put := func(rel string, b []byte) {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, rel)), 0o755); err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(dir, rel), b, 0o644)
	}
	escape := tarZst(t, []entry{{name: "ok.txt", body: "fine"}, {name: "../../escaped.txt", body: "evil"}})
	put("escape.tar.zst", escape)
	viaLink := tarZst(t, []entry{{name: "ok.txt", body: "fine"}, {name: "link", typ: tar.TypeSymlink, link: "/"}, {name: "link/etc/escaped.txt", body: "evil"}})
	put("vialink.tar.zst", viaLink)
	good := tarZst(t, []entry{{name: "a.txt", body: "a"}})
	put("good.tar.zst", good)
	put("mismatch/one.txt", []byte("one\n"))
	put("mismatch/two.txt", []byte("two, changed after the manifest was made\n"))
	put("mismatch/SHA256SUMS", []byte(sumOf([]byte("one\n"))+"  one.txt\n"+sumOf([]byte("two\n"))+"  two.txt\n"))
	put("climb/SHA256SUMS", []byte(sumOf([]byte("x"))+"  ok.txt\n"+sumOf([]byte("x"))+"  ../../../etc/shadow\n"))
	put("climb/ok.txt", []byte("x"))
	put("nomanifest/file.txt", []byte("x"))
	server := fileServer(t, dir)
	fx := makeGit(t)
	gitURL := testserver.GitDaemon(t, fx.base)

	root := newRoot(t)
	write(t, filepath.Join(root, "srv/repo/existing.txt"), "was here\n")
	p := &profile.Profile{
		Repos: []profile.Repo{
			{Name: "missing", Type: "git", URL: gitURL + "no-such-repo.git", Path: "/srv/repo"},
			{Name: "nobranch", Type: "git", URL: gitURL + "etc.git", Branch: "no-such-branch", Path: "/srv/nobranch"},
			{Name: "norev", Type: "git", URL: gitURL + "etc.git", Revision: "0123456789abcdef", Path: "/srv/norev"},
		},
		Datasets: []profile.Dataset{
			{Name: "escape", Source: "escape.tar.zst", SHA256: sumOf(escape), Path: "/srv/escape"},
			{Name: "vialink", Source: "vialink.tar.zst", SHA256: sumOf(viaLink), Path: "/srv/vialink"},
			{Name: "badsum", Source: "good.tar.zst", SHA256: strings.Repeat("0", 64), Path: "/srv/badsum"},
			{Name: "mismatch", Source: "mismatch/", Path: "/srv/mismatch"},
			{Name: "climb", Source: "climb/", Path: "/srv/climb"},
			{Name: "nomanifest", Source: "nomanifest/", Path: "/srv/nomanifest"},
			{Name: "escapesel", Kind: "selection", Include: []string{"*.txt"}, Source: "escape.tar.zst", SHA256: sumOf(escape), Path: "/srv/escapesel"},
		},
	}
	r := handOff(t, root, p, handoff.Options{Server: server, Jobs: 3})
	if r.err == nil {
		t.Fatal("hostile input passed")
	}
	if testing.Verbose() {
		t.Logf("errors:\n%v", r.err)
	}
	for name, want := range map[string][]string{
		"missing":    {"git clone " + gitURL + "no-such-repo.git", "no repository at that URL"},
		"nobranch":   {"no-such-branch"},
		"norev":      {`revision "0123456789abcdef" is not a commit`},
		"escape":     {"escape.tar.zst", `"../../escaped.txt"`, "outside the target root"},
		"vialink":    {"vialink.tar.zst", `"link/etc/escaped.txt"`, "outside the target root"},
		"badsum":     {"good.tar.zst", "checksum mismatch"},
		"mismatch":   {"file two.txt", "SHA256SUMS line 2", "checksum mismatch"},
		"climb":      {"climb/SHA256SUMS line 2", `"../../../etc/shadow"`, "leaves the dataset's directory"},
		"escapesel":  {"escape.tar.zst", `"../../escaped.txt"`, "outside the target root"},
		"nomanifest": {"no manifest at " + server + "nomanifest/SHA256SUMS", "needs a sha256sum manifest"},
	} {
		it := r.status(t, name)
		if it.Status != handoff.Failed {
			t.Errorf("%s: %s, want failed", name, it.Status)
			continue
		}
		for _, w := range want {
			if !strings.Contains(it.Err.Error(), w) {
				t.Errorf("%s: error %q lacks %q", name, it.Err, w)
			}
		}
		if marker(t, root, it.Item.Kind, name) != nil {
			t.Errorf("%s: marked done", name)
		}
		if !strings.Contains(r.err.Error(), it.Item.String()+" ("+it.Item.Path+")") {
			t.Errorf("the joined error does not name %s and its path", it.Item)
		}
	}
	// Nothing escaped, nothing half-written carries a final name.
	for _, p := range []string{
		filepath.Join(root, "../escaped.txt"), filepath.Join(root, "../../escaped.txt"), filepath.Join(root, "escaped.txt"),
		"/etc/escaped.txt", filepath.Join(root, "etc/escaped.txt"),
		filepath.Join(root, "srv/escape/ok.txt"), filepath.Join(root, "srv/escapesel/ok.txt"), filepath.Join(root, "srv/vialink/ok.txt"), filepath.Join(root, "srv/badsum/a.txt"),
		filepath.Join(root, "srv/mismatch/two.txt"), filepath.Join(root, "srv/climb/ok.txt"),
	} {
		if exists(p) {
			t.Errorf("%s exists", p)
		}
	}
	for _, d := range []string{"escape", "escapesel", "vialink", "badsum", "mismatch", "climb", "repo"} {
		if exists(filepath.Join(root, "srv", d, ".strata-staging")) {
			t.Errorf("staging of %s left behind", d)
		}
	}
	if got := listing(t, filepath.Join(root, "srv/repo")); !strings.HasPrefix(got, "existing.txt=") || strings.Contains(got, "\n") {
		t.Errorf("a failed clone changed its destination:\n%s", got)
	}
}

// TestRsyncManifestThroughSymlink: an rsync source whose manifest lists a
// file below a symlinked directory (a -> a directory outside the dataset)
// must not have strata hash, trust or remove the file the link leads to.
func TestRsyncManifestThroughSymlink(t *testing.T) {
	t.Parallel()
	outside := t.TempDir()
	victim := filepath.Join(outside, "victim.txt")
	write(t, victim, "not part of the dataset\n")
	again := filepath.Join(outside, "same.txt")
	write(t, again, "x")
	src := filepath.Join(t.TempDir(), "set")
	write(t, filepath.Join(src, "ok.txt"), "x")
	write(t, filepath.Join(src, "2024/in.txt"), "x")
	if err := os.Symlink("2024", filepath.Join(src, "latest")); err != nil { // stays inside: fine
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(src, "a")); err != nil {
		t.Fatal(err)
	}
	// a/victim.txt's sum is wrong (a mismatch removes the file it reached);
	// a/same.txt's is right (a match would vouch for bytes outside).
	write(t, filepath.Join(src, "SHA256SUMS"), sumOf([]byte("x"))+"  ok.txt\n"+strings.Repeat("0", 64)+"  a/victim.txt\n"+sumOf([]byte("x"))+"  a/same.txt\n"+sumOf([]byte("x"))+"  latest/in.txt\n")
	url, _ := testserver.RsyncDaemon(t, testserver.RsyncModule{Name: "set", Path: src})
	root := newRoot(t)
	r := handOff(t, root, &profile.Profile{Datasets: []profile.Dataset{{Name: "set", Source: url + "set", Path: "/srv/set"}}}, handoff.Options{})
	if r.err == nil {
		t.Fatal("a manifest through a symlink passed")
	}
	it := r.status(t, "set")
	t.Logf("error: %v", it.Err)
	for _, w := range []string{"a/victim.txt", "a/same.txt", "manifest line 2", "manifest line 3", "symlink"} {
		if !strings.Contains(it.Err.Error(), w) {
			t.Errorf("error %q lacks %q", it.Err, w)
		}
	}
	if strings.Contains(it.Err.Error(), "latest/in.txt") {
		t.Error("a symlink that stays inside the dataset was refused")
	}
	if marker(t, root, it.Item.Kind, "set") != nil {
		t.Error("marked done")
	}
	for _, p := range []string{victim, again} {
		if !exists(p) {
			t.Errorf("%s, outside the dataset, was removed", p)
		}
	}
}
