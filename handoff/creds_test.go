package handoff_test

import (
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stratahq/strata/handoff"
	"github.com/stratahq/strata/handoff/internal/testserver"
	"github.com/stratahq/strata/profile"
	"github.com/stratahq/strata/serve"
)

// TestCredentialsNeverLogged runs a hand-off where every server wants
// credentials (git over http with basic auth, svnserve, an rsync daemon, a
// file server wanting a bearer token) and checks that no secret reaches a
// log line, an event, or the restored system, while everything arrives.
func TestCredentialsNeverLogged(t *testing.T) {
	t.Parallel()
	testserver.Need(t, "git", "svn", "svnadmin", "svnmucc", "svnserve", "rsync")
	const (
		gitPW   = "git-Secret-1 with spaces"
		svnPW   = "svn-Secret-2"
		rsyncPW = "rsync-Secret-3"
		token   = "bearer-Secret-4"
	)
	fx := makeGit(t)
	gitURL := testserver.GitHTTP(t, fx.base, "alice", gitPW)

	svnBase := t.TempDir()
	sh(t, svnBase, "svnadmin", "create", "etc")
	write(t, filepath.Join(svnBase, "f"), "svn file\n")
	sh(t, svnBase, "svnmucc", "-U", "file://"+filepath.Join(svnBase, "etc"), "-m", "r1", "mkdir", "trunk", "put", "f", "trunk/hosts")
	testserver.SVNAuth(t, filepath.Join(svnBase, "etc"), "bob", svnPW)
	svnURL := testserver.SVNServe(t, svnBase)

	dir := t.TempDir()
	src, _ := collection(t, dir)
	rsyncURL, _ := testserver.RsyncDaemon(t, testserver.RsyncModule{Name: "music", Path: src, User: "backup", Password: rsyncPW})
	files := serve.Handler(dir, nil)
	httpURL := testserver.Serve(t, &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+token {
			http.Error(w, "no", http.StatusUnauthorized)
			return
		}
		files.ServeHTTP(w, r)
	})})

	credText := gitURL + " basic alice " + gitPW + "\n" +
		svnURL + " basic bob " + svnPW + "\n" +
		rsyncURL + " basic backup " + rsyncPW + "\n" +
		httpURL + " bearer " + token + "\n"
	store := storeOf(t, credText)
	p := &profile.Profile{
		Repos: []profile.Repo{
			{Name: "etc", Type: "git", URL: gitURL + "etc.git", Branch: "hosts/laptop", Submodules: true, Path: "/etc"},
			{Name: "svn", Type: "svn", URL: svnURL + "etc", Branch: "trunk", Path: "/srv/svn"},
		},
		Datasets: []profile.Dataset{
			{Name: "rsync", Source: rsyncURL + "music", Path: "/srv/rsync"},
			{Name: "http", Kind: "selection", Source: "datasets/music/", Include: []string{"studio/"}, Path: "/srv/http"},
		},
	}
	root := newRoot(t)

	// Without credentials each fails, saying where to put them.
	r := handOff(t, root, p, handoff.Options{Server: httpURL})
	for _, it := range r.rep.Items {
		if it.Status != handoff.Failed {
			t.Errorf("%s without credentials: %s", it.Item, it.Status)
		} else if !strings.Contains(it.Err.Error(), "credentials file") {
			t.Errorf("%s: no hint about credentials: %v", it.Item, it.Err)
		}
	}

	r = handOff(t, root, p, handoff.Options{Server: httpURL, Creds: store, Jobs: 2})
	r.mustDone(t, "etc", "svn", "rsync", "http")
	if read(t, filepath.Join(root, "etc/vendor/sub/sub.txt")) != "submodule content\n" {
		t.Error("the submodule did not come over authenticated http")
	}
	secrets := append(store.Secrets(), gitPW, svnPW, rsyncPW, token)
	log := r.log.String()
	if !strings.Contains(log, "run: git clone") || !strings.Contains(log, "run: svn checkout") || !strings.Contains(log, "run: rsync") {
		t.Fatalf("the runner's log is not the one checked:\n%s", log)
	}
	for _, s := range secrets {
		if strings.Contains(log, s) {
			t.Errorf("secret %q in the log", s)
		}
		if strings.Contains(r.ev.String(), s) {
			t.Errorf("secret %q in an event", s)
		}
	}
	if hits := grepTree(t, root, secrets); len(hits) > 0 {
		t.Errorf("secrets written into the restored system: %v", hits)
	}
	if cfg := read(t, filepath.Join(root, "etc/.git/config")); !strings.Contains(cfg, gitURL+"etc.git") || strings.Contains(cfg, "extraHeader") {
		t.Errorf("restored .git/config:\n%s", cfg)
	}
}
