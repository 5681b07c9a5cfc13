package handoff_test

import (
	"context"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stratahq/strata/handoff"
	"github.com/stratahq/strata/handoff/internal/testserver"
	"github.com/stratahq/strata/internal/run"
	"github.com/stratahq/strata/profile"
	"github.com/stratahq/strata/serve"
)

// TestPrivateCA runs git (http-backend behind a Go TLS server), svn (Apache
// with mod_ssl and mod_dav_svn) and strata's own requests (a manifest and an
// archive dataset) over https against servers whose certificate a CA made
// for the test signed. Without that CA in the credentials file (ca-file),
// or with another CA there, each fails and says what to add; with it, each
// is done, and the CA's path reaches neither the restored .git/config nor
// anything else of the restored system.
func TestPrivateCA(t *testing.T) {
	t.Parallel()
	needRoot(t) // the svn repositories are given to Apache's user
	testserver.Need(t, "git", "svn", "svnadmin", "svnmucc", "tar", "zstd")
	ca := testserver.NewTLS(t)

	fx := makeGit(t)
	gitURL := testserver.GitHTTPS(t, fx.base, "alice", "git-tls-pw", ca)

	parent := t.TempDir()
	svnTrunk(t, parent, "home", ".profile", "svn over https\n")
	svnBase := testserver.SVNApacheTLS(t, parent, "carol", "svn-tls-pw", ca)

	dir := t.TempDir()
	src, _ := collection(t, dir)
	arc := filepath.Join(dir, "music.tar.zst")
	sum := tarball(t, src, arc, "zstd -q -1")
	httpsURL := testserver.ServeTLS(t, &http.Server{Handler: serve.Handler(dir, nil)}, ca)

	p := &profile.Profile{
		Repos: []profile.Repo{
			{Name: "etc", Type: "git", URL: gitURL + "etc.git", Branch: "hosts/laptop", Submodules: true, Path: "/etc"},
			{Name: "home", Type: "svn", URL: svnBase + "home", Branch: "trunk", Path: "/home/me"},
		},
		Datasets: []profile.Dataset{
			{Name: "music", Source: httpsURL + "datasets/music/", Path: "/srv/music"},
			{Name: "archive", Source: httpsURL + "music.tar.zst", SHA256: sum, Path: "/srv/archive"},
		},
	}
	svnHost := strings.TrimSuffix(svnBase, "svn/")
	secrets := gitURL + " basic alice git-tls-pw\n" + svnHost + " basic carol svn-tls-pw\n"
	for _, tc := range []struct{ name, cas string }{
		{"no ca-file", ""},
		{"another CA", gitURL + " ca-file " + ca.OtherCA + "\n" + svnHost + " ca-file " + ca.OtherCA + "\n" + httpsURL + " ca-file " + ca.OtherCA + "\n"},
	} {
		root := newRoot(t)
		r := handOff(t, root, p, handoff.Options{Creds: storeOf(t, secrets+tc.cas)})
		for _, name := range []string{"etc", "home", "music", "archive"} {
			it := r.status(t, name)
			if it.Status != handoff.Failed || !strings.Contains(it.Err.Error(), "ca-file /path/ca.pem") {
				t.Errorf("%s: %s: %s (%v), want a failure that says to add a ca-file", tc.name, name, it.Status, it.Err)
			}
		}
	}

	store := storeOf(t, secrets+gitURL+" ca-file "+ca.CAFile+"\n"+svnHost+" ca-file "+ca.CAFile+"\n"+httpsURL+" ca-file "+ca.CAFile+"\n")
	// git as strata runs it here, and without the GIT_SSL_CAINFO this
	// machine's environment may have (as in the live system), where
	// http.<prefix>.sslCAInfo does the work.
	for _, runner := range []run.Runner{nil, dropEnv{"GIT_SSL_CAINFO"}} {
		root := newRoot(t)
		r := handOff(t, root, p, handoff.Options{Creds: store, Runner: runner})
		r.mustDone(t, "etc", "home", "music", "archive")
		if got := read(t, filepath.Join(root, "etc/laptop.conf")); got != "only on the laptop\n" {
			t.Errorf("git over https: laptop.conf %q", got)
		}
		if got := read(t, filepath.Join(root, "etc/vendor/sub/sub.txt")); got != "submodule content\n" {
			t.Errorf("git over https: the submodule's file %q", got)
		}
		if got := read(t, filepath.Join(root, "home/me/.profile")); got != "svn over https\n" {
			t.Errorf("svn over https: .profile %q", got)
		}
		for _, d := range []string{"srv/music", "srv/archive"} {
			if got, want := listing(t, filepath.Join(root, d), "SHA256SUMS"), listing(t, src, "SHA256SUMS"); got != want {
				t.Errorf("%s over https:\n%s\nwant\n%s", d, got, want)
			}
		}
		if hits := grepTree(t, root, []string{ca.CAFile, "git-tls-pw", "svn-tls-pw"}); len(hits) > 0 {
			t.Errorf("the CA file's path or a password reached the restored system: %v", hits)
		}
	}
}

// dropEnv runs commands (through env -u) without the named variables.
type dropEnv []string

func (d dropEnv) Run(ctx context.Context, c run.Cmd) (run.Result, error) {
	args := []string{}
	for _, v := range d {
		args = append(args, "-u", v)
	}
	c.Args = append(append(args, "--", c.Name), c.Args...)
	c.Name = "env"
	return run.Exec{}.Run(ctx, c)
}
