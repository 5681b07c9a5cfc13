package drill

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stratahq/strata/profile"
	"github.com/stratahq/strata/serve"
)

func TestMapURL(t *testing.T) {
	d := &drill{url: "http://10.0.2.2:4242/", opt: Options{URLMap: map[string]string{
		"https://files.example.org/":     "/",
		"https://files.example.org/git/": "http://git.lan/repos/",
	}}}
	for in, want := range map[string]string{
		"https://files.example.org/git/etc.git":      "http://git.lan/repos/etc.git", // the longest prefix wins
		"https://files.example.org/datasets/music/":  "http://10.0.2.2:4242/datasets/music/",
		"svn://elsewhere/home":                       "svn://elsewhere/home",
		"https://files.example.org.evil/datasets/x/": "https://files.example.org.evil/datasets/x/",
	} {
		if got := d.mapURL(in); got != want {
			t.Errorf("mapURL(%s) = %s, want %s", in, got, want)
		}
	}
}

// The host reaches the guest's 10.0.2.2 on its loopback, port and all.
func TestHostURL(t *testing.T) {
	d := &drill{url: "http://10.0.2.2:4242/", hostBase: "http://127.0.0.1:4242/"}
	for in, want := range map[string]string{
		"http://10.0.2.2:4242/git/etc.git": "http://127.0.0.1:4242/git/etc.git",
		"svn://10.0.2.2:3690/www/trunk":    "svn://127.0.0.1:3690/www/trunk",
		"svn://10.0.2.2/www":               "svn://127.0.0.1/www",
		"svn://files.example.org/www":      "svn://files.example.org/www",
	} {
		if got := d.hostURL(in); got != want {
			t.Errorf("hostURL(%s) = %s, want %s", in, got, want)
		}
	}
}

func sh(t *testing.T, dir string, argv ...string) string {
	t.Helper()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@t", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@t")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%v: %v\n%s", argv, err, out)
	}
	return strings.TrimSpace(string(out))
}

func write(t *testing.T, p, body string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}

func sum(s string) string { h := sha256.Sum256([]byte(s)); return hex.EncodeToString(h[:]) }

// The hand-off checks run the same shell commands the restored system runs
// (here against directories on the host) and compare with what the served
// copies say: the branch's commit over git's dumb HTTP, and every file the
// manifest selects.
func TestHandoffChecks(t *testing.T) {
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("skipping: git is not installed (make deps installs it)")
	}
	files, work := t.TempDir(), t.TempDir()
	// A bare repo served over git's dumb HTTP protocol by the drill's server.
	bare := filepath.Join(files, "git", "etc.git")
	sh(t, work, "git", "init", "-q", "--bare", bare)
	src := filepath.Join(work, "src")
	sh(t, work, "git", "init", "-q", "-b", "hosts/laptop", src)
	write(t, filepath.Join(src, "motd"), "restored by strata\n")
	sh(t, src, "git", "add", ".")
	sh(t, src, "git", "commit", "-q", "-m", "etc")
	sh(t, src, "git", "push", "-q", bare, "hosts/laptop")
	sh(t, bare, "git", "update-server-info")
	head := sh(t, src, "git", "rev-parse", "HEAD")
	// A dataset directory with its manifest.
	music := map[string]string{"favourites/a.flac": "aaa", "favourites/deep/b.flac": "bbb", "other/c.flac": "ccc"}
	var sums strings.Builder
	for rel, body := range music {
		write(t, filepath.Join(files, "datasets", "music", rel), body)
		sums.WriteString(sum(body) + "  " + rel + "\n")
	}
	write(t, filepath.Join(files, "datasets", "music", "SHA256SUMS"), sums.String())

	srvDir := t.TempDir()
	if err := serveFiles(files, srvDir); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(serve.Handler(srvDir, t.Logf))
	defer srv.Close()

	// What the restored system has: a clone of the branch, and the selection.
	etc, dest := filepath.Join(work, "etc"), filepath.Join(work, "music")
	sh(t, work, "git", "clone", "-q", "-b", "hosts/laptop", bare, etc)
	write(t, filepath.Join(dest, "favourites/a.flac"), "aaa")
	write(t, filepath.Join(dest, "favourites/deep/b.flac"), "bbb")
	user := sh(t, work, "id", "-un")

	p := &profile.Profile{
		Repos: []profile.Repo{{Name: "etc", Type: "git", URL: "https://files.example.org/git/etc.git", Branch: "hosts/laptop", Path: etc}},
		Datasets: []profile.Dataset{{Name: "music", Kind: "selection", Source: "https://files.example.org/datasets/music/",
			Include: []string{"favourites/**"}, Path: dest, Owner: user}},
	}
	d := &drill{p: p, url: "http://10.0.2.2:1/", hostBase: srv.URL + "/", opt: Options{Log: t.Logf,
		URLMap: map[string]string{"https://files.example.org/": "/"}}}
	d.adaptHandoff(p)
	if p.Repos[0].URL != "http://10.0.2.2:1/git/etc.git" {
		t.Fatalf("repo URL not mapped: %s", p.Repos[0].URL)
	}
	check := func() []Check {
		t.Helper()
		out := sh(t, work, "sh", "-c", "M=STRATA-HANDOFF; echo $M-BEGIN; "+handoffCommands(p)+"echo $M-END")
		inv, err := parseHandoff("noise\r\n" + out + "\r\n")
		if err != nil {
			t.Fatal(err)
		}
		return d.checkHandoff(context.Background(), inv)
	}
	for _, c := range check() {
		if !c.Pass {
			t.Errorf("%s failed on a good restore: %s", c.Name, c.Detail)
		}
	}
	if got := check(); len(got) != 2 || !strings.Contains(got[0].Detail, head[:12]) || !strings.Contains(got[1].Detail, "2 files verified") {
		t.Errorf("checks = %+v", got)
	}

	// A wrong file, a missing one and a checkout behind the server all fail.
	write(t, filepath.Join(dest, "favourites/a.flac"), "tampered")
	write(t, filepath.Join(src, "motd"), "newer\n")
	sh(t, src, "git", "commit", "-q", "-am", "newer")
	sh(t, src, "git", "push", "-q", bare, "hosts/laptop")
	sh(t, bare, "git", "update-server-info")
	if err := os.Remove(filepath.Join(dest, "favourites/deep/b.flac")); err != nil {
		t.Fatal(err)
	}
	got := check()
	if got[0].Pass || !strings.Contains(got[0].Detail, "is at "+head) {
		t.Errorf("stale checkout passed: %+v", got[0])
	}
	if got[1].Pass || !strings.Contains(got[1].Detail, "favourites/a.flac differs") || !strings.Contains(got[1].Detail, "favourites/deep/b.flac missing") {
		t.Errorf("bad dataset passed: %+v", got[1])
	}
	// An owner other than the profile's fails.
	p.Datasets[0].Owner = "nobody-" + user
	if got := check(); got[1].Pass || !strings.Contains(got[1].Detail, "belongs to "+user) {
		t.Errorf("wrong owner passed: %+v", got[1])
	}
}

// The hand-off inventory as a restored laptop printed it (serial line
// endings and all) parses into the commit, the marker, the top directories
// and the files.
func TestParseRecordedHandoff(t *testing.T) {
	b, err := os.ReadFile("testdata/laptop-handoff-console.txt")
	if err != nil {
		t.Fatal(err)
	}
	inv, err := parseHandoff(string(b))
	if err != nil {
		t.Fatal(err)
	}
	etc, music, inbox := inv["repo etc"], inv["dataset music"], inv["dataset inbox"]
	if etc == nil || music == nil || inbox == nil {
		t.Fatalf("items: %v", inv)
	}
	if etc.Head != "dc74f1123831f5b9e70b193a94f9595b853d6067" || !strings.Contains(etc.Marker, `"revision": "dc74f112`) {
		t.Errorf("repo etc: head %q marker %q", etc.Head, etc.Marker)
	}
	if len(music.Files) != 2 || music.Files["favourites/live/two.flac"] != "0a3c065425848b8a81be87a4c48ec717358ffdb252f080c7973958e967d98db9" {
		t.Errorf("dataset music files: %v", music.Files)
	}
	if strings.Join(inbox.Top, " ") != "me me 750" || len(inbox.Files) != 0 {
		t.Errorf("dataset inbox: %+v", inbox)
	}
}

// An svn checkout passes at the server's youngest revision (or the pinned
// one) as its done marker records it, and fails behind it or without one.
func TestSVNCheck(t *testing.T) {
	for _, prog := range []string{"svn", "svnadmin"} {
		if _, err := exec.LookPath(prog); err != nil {
			t.Skipf("skipping: %s is not installed (make deps installs subversion)", prog)
		}
	}
	work := t.TempDir()
	repo := filepath.Join(work, "repo")
	sh(t, work, "svnadmin", "create", repo)
	url := "file://" + repo
	src := filepath.Join(work, "src")
	write(t, filepath.Join(src, "trunk", "index.html"), "one\n")
	sh(t, work, "svn", "import", "-q", "-m", "one", src, url)
	sh(t, work, "svn", "mkdir", "-q", "-m", "two", url+"/trunk/img")
	d := &drill{url: "http://10.0.2.2:1/", opt: Options{Log: t.Logf}}
	r := profile.Repo{Name: "www", Type: "svn", URL: url + "/trunk", Path: "/srv/www"}
	for _, c := range []struct {
		pinned, marker string
		pass           bool
		detail         string
	}{
		{"", `{"kind":"repo","revision":"2"}`, true, "/srv/www at revision 2"},
		{"", `{"kind":"repo","revision":"1"}`, false, "is at revision 1, want 2"},
		{"1", `{"kind":"repo","revision":"1"}`, true, "at revision 1"},
		{"", ``, false, "no done marker"},
	} {
		r.Revision = c.pinned
		ok, detail := d.checkSVN(context.Background(), r, c.marker)
		if ok != c.pass || !strings.Contains(detail, c.detail) {
			t.Errorf("pinned %q, marker %s: %v %q, want %v %q", c.pinned, c.marker, ok, detail, c.pass, c.detail)
		}
	}
}

// A repo's top directory is checked against the profile's owner, group and
// mode like a dataset's.
func TestOwnerMismatch(t *testing.T) {
	top := []string{"www-data", "www-data", "755"}
	for _, c := range []struct{ owner, group, mode, want string }{
		{"www-data", "www-data", "0755", ""},
		{"", "", "", ""},
		{"root", "", "", "belongs to www-data, the profile says root"},
		{"", "adm", "", "has group www-data"},
		{"", "", "0750", "has mode 755, the profile says 0750"},
	} {
		got := ownerMismatch("/srv/www", c.owner, c.group, c.mode, top)
		if (c.want == "") != (got == "") || !strings.Contains(got, c.want) {
			t.Errorf("%+v: %q", c, got)
		}
	}
}
