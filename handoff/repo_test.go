package handoff_test

import (
	"os"
	"os/user"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stratahq/strata/handoff"
	"github.com/stratahq/strata/handoff/internal/testserver"
	"github.com/stratahq/strata/profile"
)

// gitFixture is a bare repository etc.git with main (two commits, tag v1 on
// the first) and hosts/laptop (a third commit with a submodule vendor/sub
// from sub.git, by relative URL), under base.
type gitFixture struct {
	base                 string
	first, second, third string
}

func makeGit(t *testing.T) gitFixture {
	t.Helper()
	testserver.Need(t, "git")
	base := t.TempDir()
	work := t.TempDir()
	sh(t, base, "git", "init", "-q", "--bare", "-b", "main", "sub.git")
	sh(t, base, "git", "init", "-q", "--bare", "-b", "main", "etc.git")
	sub := filepath.Join(work, "sub")
	sh(t, work, "git", "clone", "-q", filepath.Join(base, "sub.git"), sub)
	write(t, filepath.Join(sub, "sub.txt"), "submodule content\n")
	sh(t, sub, "git", "add", ".")
	sh(t, sub, "git", "commit", "-q", "-m", "sub")
	sh(t, sub, "git", "push", "-q", "origin", "main")

	etc := filepath.Join(work, "etc")
	sh(t, work, "git", "clone", "-q", filepath.Join(base, "etc.git"), etc)
	write(t, filepath.Join(etc, "hosts"), "trunk hosts v1\n")
	write(t, filepath.Join(etc, "fstab"), "# trunk fstab\n")
	write(t, filepath.Join(etc, "ssh/sshd_config"), "PermitRootLogin no\n")
	sh(t, etc, "git", "add", ".")
	sh(t, etc, "git", "commit", "-q", "-m", "first")
	sh(t, etc, "git", "tag", "v1")
	first := sh(t, etc, "git", "rev-parse", "HEAD")
	write(t, filepath.Join(etc, "hosts"), "trunk hosts v2\n")
	sh(t, etc, "git", "commit", "-q", "-am", "second")
	second := sh(t, etc, "git", "rev-parse", "HEAD")
	sh(t, etc, "git", "checkout", "-q", "-b", "hosts/laptop")
	write(t, filepath.Join(etc, "laptop.conf"), "only on the laptop\n")
	sh(t, etc, "git", "-c", "protocol.file.allow=always", "submodule", "add", "-q", "../sub.git", "vendor/sub")
	sh(t, etc, "git", "add", ".")
	sh(t, etc, "git", "commit", "-q", "-m", "laptop")
	third := sh(t, etc, "git", "rev-parse", "HEAD")
	sh(t, etc, "git", "push", "-q", "--tags", "origin", "main", "hosts/laptop")
	return gitFixture{base, first, second, third}
}

func TestGitBranchTagCommitSubmodule(t *testing.T) {
	t.Parallel()
	fx := makeGit(t)
	url := testserver.GitDaemon(t, fx.base)
	root := newRoot(t)
	p := &profile.Profile{Repos: []profile.Repo{
		{Name: "tagged", Type: "git", URL: url + "etc.git", Tag: "v1", Path: "/srv/tagged"},
		{Name: "pinned", Type: "git", URL: url + "etc.git", Revision: fx.first[:12], Path: "/srv/pinned"},
		{Name: "etc", Type: "git", URL: url + "etc.git", Branch: "hosts/laptop", Submodules: true, Path: "/etc"},
		{Name: "main", Type: "git", URL: url + "etc.git", Branch: "main", Revision: fx.second, Path: "/srv/main"},
	}}
	r := handOff(t, root, p, handoff.Options{})
	if r.err != nil {
		t.Fatalf("%v\n%s\n%s", r.err, r.ev, r.log)
	}
	r.mustDone(t, "etc", "tagged", "pinned", "main")
	// /etc goes first: the accounts may come from it.
	if r.rep.Items[0].Item.Name != "etc" {
		t.Errorf("first repo was %s, want etc", r.rep.Items[0].Item.Name)
	}
	etc := filepath.Join(root, "etc")
	for p, want := range map[string]string{
		"laptop.conf":        "only on the laptop\n",
		"hosts":              "trunk hosts v2\n",
		"vendor/sub/sub.txt": "submodule content\n",
		"keep.conf":          "from the base image\n", // overlay: the base image's files stay
	} {
		if got := read(t, filepath.Join(etc, p)); got != want {
			t.Errorf("/etc/%s = %q, want %q", p, got, want)
		}
	}
	if got := read(t, filepath.Join(root, "srv/tagged/hosts")); got != "trunk hosts v1\n" || exists(filepath.Join(root, "srv/tagged/laptop.conf")) {
		t.Errorf("tag v1: hosts %q", got)
	}
	if r.status(t, "tagged").Revision != fx.first || r.status(t, "pinned").Revision != fx.first || r.status(t, "etc").Revision != fx.third {
		t.Errorf("revisions: %+v", r.rep.Items)
	}
	if r.status(t, "main").Revision != fx.second || sh(t, filepath.Join(root, "srv/main"), "git", "rev-parse", "--abbrev-ref", "HEAD") != "main" {
		t.Errorf("branch+revision: %s", r.status(t, "main").Revision)
	}
	// The moved checkout is a working repository, clean apart from the
	// base image's own files.
	status := sh(t, etc, "git", "-c", "safe.directory=*", "status", "--porcelain", "--ignore-submodules=none")
	if status != "?? group\n?? keep.conf\n?? passwd" {
		t.Errorf("git status in /etc:\n%s", status)
	}
	if sub := sh(t, filepath.Join(etc, "vendor/sub"), "git", "-c", "safe.directory=*", "status", "--porcelain"); sub != "" {
		t.Errorf("submodule status: %s", sub)
	}
	if exists(filepath.Join(etc, ".strata-staging")) {
		t.Error("staging left behind")
	}
	m := marker(t, root, "repo", "etc")
	if m == nil || m.Revision != fx.third || m.Source != url+"etc.git" {
		t.Fatalf("marker %+v", m)
	}
	// A re-run skips what is done.
	r = handOff(t, root, p, handoff.Options{})
	for _, it := range r.rep.Items {
		if it.Status != handoff.Skipped {
			t.Errorf("re-run: %s %s", it.Item, it.Status)
		}
	}
	// A changed entry is not done any more.
	p.Repos[0].Tag = ""
	p.Repos[0].Branch = "main"
	r = handOff(t, root, p, handoff.Options{})
	if r.status(t, "tagged").Status != handoff.Done || read(t, filepath.Join(root, "srv/tagged/hosts")) != "trunk hosts v2\n" {
		t.Errorf("changed entry: %s %q", r.status(t, "tagged").Status, read(t, filepath.Join(root, "srv/tagged/hosts")))
	}
}

func TestOverlayAndReplace(t *testing.T) {
	t.Parallel()
	fx := makeGit(t)
	url := "file://" + filepath.Join(fx.base, "etc.git")
	for _, existing := range []string{"overlay", "replace"} {
		t.Run(existing, func(t *testing.T) {
			root := newRoot(t)
			write(t, filepath.Join(root, "etc/ssh/ssh_host_key"), "host key from the base image\n")
			write(t, filepath.Join(root, "etc/ssh/sshd_config"), "base image sshd\n")
			write(t, filepath.Join(root, "etc/nested/data"), "another item's data\n")
			p := &profile.Profile{
				Repos:    []profile.Repo{{Name: "etc", Type: "git", URL: url, Branch: "main", Path: "/etc", Existing: existing}},
				Datasets: []profile.Dataset{{Name: "nested", Kind: "buffer", Path: "/etc/nested"}},
			}
			r := handOff(t, root, p, handoff.Options{})
			r.mustDone(t, "etc", "nested")
			etc := filepath.Join(root, "etc")
			if got := read(t, filepath.Join(etc, "ssh/sshd_config")); got != "PermitRootLogin no\n" {
				t.Errorf("repo file did not win: %q", got)
			}
			if got := read(t, filepath.Join(etc, "hosts")); got != "trunk hosts v2\n" {
				t.Errorf("hosts %q", got)
			}
			if got := read(t, filepath.Join(etc, "nested/data")); got != "another item's data\n" {
				t.Errorf("a nested item's destination was touched: %q", got)
			}
			stays := existing == "overlay"
			for _, f := range []string{"keep.conf", "ssh/ssh_host_key", "passwd"} {
				if exists(filepath.Join(etc, f)) != stays {
					t.Errorf("%s: /etc/%s exists=%v", existing, f, !stays)
				}
			}
			if existing == "replace" {
				ents, _ := os.ReadDir(etc)
				var names []string
				for _, e := range ents {
					names = append(names, e.Name())
				}
				if got := strings.Join(names, " "); got != ".git fstab hosts nested ssh" {
					t.Errorf("replace left: %s", got)
				}
				if st := sh(t, etc, "git", "-c", "safe.directory=*", "status", "--porcelain"); st != "?? nested/" {
					t.Errorf("replace: git status %q", st)
				}
			}
		})
	}
}

func TestOwnerFromTargetAccounts(t *testing.T) {
	t.Parallel()
	needRoot(t)
	if _, err := user.Lookup("strata-only"); err == nil {
		t.Skip("skipping: this machine has a strata-only user; the test needs a name that only the target knows")
	}
	fx := makeGit(t)
	root := newRoot(t)
	src := t.TempDir()
	write(t, filepath.Join(src, "a/b.txt"), "b\n")
	write(t, filepath.Join(src, "c.txt"), "c\n")
	sha256sums(t, src)
	p := &profile.Profile{
		Repos: []profile.Repo{{Name: "home", Type: "git", URL: "file://" + filepath.Join(fx.base, "etc.git"), Path: "/home/me/config", Owner: "strata-only", Mode: "0750"}},
		Datasets: []profile.Dataset{
			{Name: "docs", Source: "file://" + src + "/", Path: "/home/me/docs", Owner: "strata-only", Group: "strata-media", Mode: "0770"},
			{Name: "inbox", Kind: "buffer", Path: "/home/me/inbox", Owner: "strata-only", Mode: "0700"},
			{Name: "numeric", Kind: "buffer", Path: "/srv/numeric", Owner: "5001", Group: "5002"},
		},
	}
	r := handOff(t, root, p, handoff.Options{})
	r.mustDone(t, "home", "docs", "inbox", "numeric")
	for _, f := range []string{"home/me/config", "home/me/config/hosts", "home/me/config/ssh", "home/me/config/.git", "home/me/config/.git/HEAD", "home/me/inbox", "home/me"} {
		if got := owner(t, filepath.Join(root, f)); got != "4242:4343" {
			t.Errorf("/%s owned by %s, want 4242:4343 (strata-only in the target's passwd)", f, got)
		}
	}
	for _, f := range []string{"home/me/docs", "home/me/docs/a", "home/me/docs/a/b.txt", "home/me/docs/c.txt"} {
		if got := owner(t, filepath.Join(root, f)); got != "4242:4444" {
			t.Errorf("/%s owned by %s, want 4242:4444", f, got)
		}
	}
	if got := owner(t, filepath.Join(root, "srv/numeric")); got != "5001:5002" {
		t.Errorf("numeric owner %s", got)
	}
	for f, want := range map[string]string{"home/me/config": "0750", "home/me/docs": "0770", "home/me/inbox": "0700"} {
		if got := mode(t, filepath.Join(root, f)); got != want {
			t.Errorf("/%s mode %s, want %s", f, got, want)
		}
	}
	// An owner the target does not know is a clear error, and not done.
	p.Datasets[1].Owner = "nobody-anywhere"
	r = handOff(t, root, p, handoff.Options{})
	it := r.status(t, "inbox")
	if it.Status != handoff.Failed || !strings.Contains(it.Err.Error(), `owner "nobody-anywhere"`) || !strings.Contains(it.Err.Error(), filepath.Join(root, "etc/passwd")) {
		t.Errorf("unknown owner: %s %v", it.Status, it.Err)
	}
	if marker(t, root, "dataset", "inbox") != nil {
		t.Error("a failed item kept its done marker")
	}
}

func TestSVNRevisionExternals(t *testing.T) {
	t.Parallel()
	testserver.Need(t, "svn", "svnadmin", "svnmucc", "svnserve")
	base := t.TempDir()
	repo := filepath.Join(base, "etc")
	sh(t, base, "svnadmin", "create", repo)
	u := "file://" + repo
	files := t.TempDir()
	write(t, filepath.Join(files, "h1"), "svn hosts r1\n")
	write(t, filepath.Join(files, "h2"), "svn hosts r2\n")
	write(t, filepath.Join(files, "h3"), "svn hosts r3\n")
	write(t, filepath.Join(files, "shared"), "shared by externals\n")
	// r1: layout; r2: the laptop branch changes hosts and pulls ^/shared in
	// as an external; r3: a later change the profile does not want.
	sh(t, files, "svnmucc", "-U", u, "-m", "r1", "mkdir", "trunk", "mkdir", "branches", "mkdir", "branches/laptop", "mkdir", "shared",
		"put", "h1", "trunk/hosts", "put", "h1", "branches/laptop/hosts", "put", "shared", "shared/shared.txt")
	sh(t, files, "svnmucc", "-U", u, "-m", "r2", "put", "h2", "branches/laptop/hosts", "propset", "svn:externals", "^/shared ext", "branches/laptop")
	sh(t, files, "svnmucc", "-U", u, "-m", "r3", "put", "h3", "branches/laptop/hosts")
	testserver.SVNAuth(t, repo, "bob", "svn-pass-Q7")
	url := testserver.SVNServe(t, base) + "etc"
	root := newRoot(t)
	p := &profile.Profile{Repos: []profile.Repo{
		{Name: "etc", Type: "svn", URL: url, Branch: "branches/laptop", Revision: "2", Externals: true, Path: "/etc"},
		{Name: "noext", Type: "svn", URL: url, Branch: "branches/laptop", Path: "/srv/noext"},
		{Name: "local", Type: "svn", URL: u, Branch: "trunk", Path: "/srv/trunk"},
	}}
	r := handOff(t, root, p, handoff.Options{Creds: storeOf(t, "svn://127.0.0.1/ basic bob svn-pass-Q7\n")})
	if r.err == nil || r.status(t, "etc").Status != handoff.Failed || !strings.Contains(r.status(t, "etc").Err.Error(), "credentials file") {
		// The prefix above lacks the port: nothing matches, svnserve refuses.
		t.Fatalf("a wrong credentials prefix did not fail with a hint: %v", r.err)
	}
	r.mustDone(t, "local") // file:// needs no credentials
	port := strings.TrimPrefix(strings.TrimSuffix(url, "/etc"), "svn://127.0.0.1:")
	store := storeOf(t, "svn://127.0.0.1:"+port+"/ basic bob svn-pass-Q7\n")
	r = handOff(t, root, p, handoff.Options{Creds: store})
	r.mustDone(t, "etc", "noext")
	etc := filepath.Join(root, "etc")
	if got := read(t, filepath.Join(etc, "hosts")); got != "svn hosts r2\n" {
		t.Errorf("revision 2: hosts %q", got)
	}
	if got := read(t, filepath.Join(etc, "ext/shared.txt")); got != "shared by externals\n" {
		t.Errorf("externals: %q", got)
	}
	if got := read(t, filepath.Join(etc, "keep.conf")); got != "from the base image\n" {
		t.Errorf("overlay lost keep.conf: %q", got)
	}
	if r.status(t, "etc").Revision != "2" || r.status(t, "noext").Revision != "3" {
		t.Errorf("revisions %s %s", r.status(t, "etc").Revision, r.status(t, "noext").Revision)
	}
	if exists(filepath.Join(root, "srv/noext/ext")) || read(t, filepath.Join(root, "srv/noext/hosts")) != "svn hosts r3\n" {
		t.Error("externals fetched without externals: true, or not the newest revision")
	}
	if got := read(t, filepath.Join(root, "srv/trunk/hosts")); got != "svn hosts r1\n" {
		t.Errorf("file:// trunk %q", got)
	}
	// The moved working copy works and is clean.
	if st := sh(t, etc, "svn", "status", "-q", "--non-interactive"); st != "" {
		t.Errorf("svn status in /etc:\n%s", st)
	}
	if strings.Contains(r.log.String(), "svn-pass-Q7") {
		t.Errorf("svn password in the log:\n%s", r.log)
	}
	if hits := grepTree(t, root, []string{"svn-pass-Q7"}); len(hits) > 0 {
		t.Errorf("svn password written into the restored system: %v", hits)
	}
	if _, err := os.Stat(filepath.Join(root, "root/.subversion")); err == nil {
		t.Error("svn wrote a config into the restored root")
	}
}

// TestSVNOverHTTP checks out and updates a repository from a real Apache
// with mod_dav_svn, with basic auth from the credentials file.
func TestSVNOverHTTP(t *testing.T) {
	t.Parallel()
	needRoot(t) // the repositories are given to Apache's user
	testserver.Need(t, "svn", "svnadmin", "svnmucc")
	parent := t.TempDir()
	repo := filepath.Join(parent, "etc")
	sh(t, parent, "svnadmin", "create", repo)
	files := t.TempDir()
	write(t, filepath.Join(files, "h1"), "http hosts r1\n")
	write(t, filepath.Join(files, "h2"), "http hosts r2\n")
	sh(t, files, "svnmucc", "-U", "file://"+repo, "-m", "r1", "mkdir", "trunk", "put", "h1", "trunk/hosts", "put", "h1", "trunk/motd")
	base := testserver.SVNApache(t, parent, "carol", "dav-pass-Z3")
	url := base + "etc"
	root := newRoot(t)
	p := &profile.Profile{Repos: []profile.Repo{{Name: "etc", Type: "svn", URL: url, Branch: "trunk", Revision: "1", Path: "/etc"}}}

	r := handOff(t, root, p, handoff.Options{})
	if it := r.status(t, "etc"); it.Status != handoff.Failed || !strings.Contains(it.Err.Error(), "credentials file") {
		t.Fatalf("without credentials: %s %v, want a failure pointing at the credentials file\n%s", it.Status, it.Err, r.log)
	}
	store := storeOf(t, strings.TrimSuffix(base, "svn/")+" basic carol dav-pass-Z3\n")
	r = handOff(t, root, p, handoff.Options{Creds: store})
	r.mustDone(t, "etc")
	etc := filepath.Join(root, "etc")
	if got := read(t, filepath.Join(etc, "hosts")); got != "http hosts r1\n" || r.status(t, "etc").Revision != "1" {
		t.Errorf("r1: hosts %q, revision %s", got, r.status(t, "etc").Revision)
	}
	if got := read(t, filepath.Join(etc, "keep.conf")); got != "from the base image\n" {
		t.Errorf("overlay lost keep.conf: %q", got)
	}

	// A commit over http (DAV writes through Apache), then the profile
	// follows trunk: the re-run brings revision 2.
	sh(t, files, "svnmucc", "-U", url, "--username", "carol", "--password", "dav-pass-Z3", "--non-interactive", "--no-auth-cache",
		"--config-dir", t.TempDir(), "-m", "r2", "put", "h2", "trunk/hosts")
	p.Repos[0].Revision = ""
	r = handOff(t, root, p, handoff.Options{Creds: store})
	r.mustDone(t, "etc")
	if got := read(t, filepath.Join(etc, "hosts")); got != "http hosts r2\n" || r.status(t, "etc").Revision != "2" {
		t.Errorf("after the update: hosts %q, revision %s", got, r.status(t, "etc").Revision)
	}
	// The working copy in place talks to the server: clean, at HEAD.
	cfg := t.TempDir()
	if st := sh(t, etc, "svn", "status", "-u", "--non-interactive", "--no-auth-cache", "--config-dir", cfg, "--username", "carol", "--password", "dav-pass-Z3"); !strings.Contains(st, "Status against revision:      2") || strings.Contains(st, "*") {
		t.Errorf("svn status -u in /etc:\n%s", st)
	}
	if strings.Contains(r.log.String(), "dav-pass-Z3") {
		t.Errorf("password in the log:\n%s", r.log)
	}
	if hits := grepTree(t, root, []string{"dav-pass-Z3"}); len(hits) > 0 {
		t.Errorf("password written into the restored system: %v", hits)
	}
}
