package repo

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stratahq/strata/handoff/creds"
	"github.com/stratahq/strata/internal/run"
	"github.com/stratahq/strata/profile"
)

func argv(steps []Step) string {
	var b strings.Builder
	for _, s := range steps {
		b.WriteString(s.Phase + ": git " + run.Quote(s.Args) + "\n")
	}
	return b.String()
}

func TestGitSteps(t *testing.T) {
	for _, tc := range []struct {
		r    profile.Repo
		url  string
		want string
	}{
		{profile.Repo{Branch: "hosts/laptop", Submodules: true}, "https://h/etc.git", `clone: git clone --quiet --no-checkout --branch hosts/laptop -- https://h/etc.git /s
checkout: git -C /s checkout --quiet --force
submodules: git -C /s submodule update --quiet --init --recursive
head: git -C /s rev-parse HEAD
`},
		{profile.Repo{Tag: "v1"}, "git://h/etc", `clone: git clone --quiet --no-checkout --branch v1 -- git://h/etc /s
checkout: git -C /s checkout --quiet --force
head: git -C /s rev-parse HEAD
`},
		{profile.Repo{Revision: "abc1234"}, "file:///srv/etc.git", `clone: git -c protocol.file.allow=always clone --quiet --no-checkout -- file:///srv/etc.git /s
verify: git -C /s rev-parse --verify --quiet 'abc1234^{commit}'
checkout: git -C /s checkout --quiet --force --detach abc1234
head: git -C /s rev-parse HEAD
`},
		{profile.Repo{Branch: "main", Revision: "abc1234"}, "ssh://git@h/etc.git", `clone: git clone --quiet --no-checkout --branch main -- ssh://git@h/etc.git /s
verify: git -C /s rev-parse --verify --quiet 'abc1234^{commit}'
checkout: git -C /s checkout --quiet --force -B main abc1234
head: git -C /s rev-parse HEAD
`},
	} {
		if got := argv(GitSteps(tc.r, tc.url, "/s")); got != tc.want {
			t.Errorf("%+v:\n got %s\nwant %s", tc.r, got, tc.want)
		}
	}
}

func TestSVNArgs(t *testing.T) {
	got := run.Quote(SVNArgs(profile.Repo{Branch: "branches/laptop", Revision: "7"}, "svn://h/etc/", "/s", "/tmp/c", "bob"))
	want := "checkout --quiet --non-interactive --no-auth-cache --config-dir /tmp/c --username bob --password-from-stdin --ignore-externals -- svn://h/etc/branches/laptop@7 /s"
	if got != want {
		t.Errorf("SVNArgs:\n got %s\nwant %s", got, want)
	}
	got = run.Quote(SVNArgs(profile.Repo{Externals: true}, "file:///srv/svn/etc", "/s", "/tmp/c", ""))
	if got != "checkout --quiet --non-interactive --no-auth-cache --config-dir /tmp/c -- file:///srv/svn/etc@HEAD /s" {
		t.Errorf("SVNArgs anonymous: %s", got)
	}
}

// TestSecretsStayOffArgv runs a checkout against the recording runner with a
// password in the credentials and one in the profile URL: argv holds
// neither, the environment and stdin carry them.
func TestSecretsStayOffArgv(t *testing.T) {
	store, err := creds.Parse("c", strings.NewReader("https://h/ basic alice gitpw\nsvn://h/ basic bob svnpw\nssh://git@h/ ssh-key /keys/id\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range []profile.Repo{
		{Name: "a", Type: "git", URL: "https://h/etc.git", Path: "/etc"},
		{Name: "b", Type: "git", URL: "https://carol:urlpw@h2/etc.git", Path: "/etc"},
		{Name: "c", Type: "svn", URL: "svn://h/etc", Path: "/etc"},
		{Name: "d", Type: "git", URL: "ssh://git@h/etc.git", Path: "/etc"},
	} {
		rec := &run.Recorder{Respond: func(c run.Cmd) (run.Result, error) {
			if c.Args[0] == "clone" || c.Args[0] == "checkout" {
				os.MkdirAll(c.Args[len(c.Args)-1], 0o755) // the stage
			}
			if c.Name == "svn" && c.Args[0] == "info" {
				return run.Result{Stdout: []byte("5\n")}, nil
			}
			return run.Result{Stdout: []byte("0123456789abcdef0123456789abcdef01234567\n")}, nil
		}}
		dest := t.TempDir()
		if _, err := Checkout(context.Background(), r, dest, Options{Runner: rec, Creds: store}); err != nil {
			t.Fatalf("%s: %v", r.Name, err)
		}
		all := rec.Argv()
		for _, secret := range append(store.Secrets(), "urlpw") {
			if strings.Contains(all, secret) {
				t.Errorf("%s: argv holds a secret:\n%s", r.Name, all)
			}
		}
		env := strings.Join(rec.Calls[0].Env, "\n")
		switch r.Name {
		case "a":
			if !strings.Contains(env, "GIT_CONFIG_VALUE_0=Authorization: Basic ") || !strings.Contains(env, "GIT_TERMINAL_PROMPT=0") {
				t.Errorf("git env: %s", env)
			}
		case "b":
			if !strings.Contains(env, "http.https://carol@h2/etc.git.extraHeader") || strings.Contains(all, "carol:") {
				t.Errorf("profile URL password: env %s argv %s", env, all)
			}
		case "c":
			if rec.Stdins[0] != "svnpw\n" || !strings.Contains(all, "--username bob --password-from-stdin") {
				t.Errorf("svn: stdin %q argv %s", rec.Stdins[0], all)
			}
		case "d":
			if !strings.Contains(env, "GIT_SSH_COMMAND=ssh -o BatchMode=yes -i /keys/id") {
				t.Errorf("ssh env: %s", env)
			}
		}
		if _, err := os.Stat(filepath.Join(dest, ".strata-staging")); err == nil {
			t.Errorf("%s: staging left behind", r.Name)
		}
	}
}

func TestSVNServers(t *testing.T) {
	s, err := creds.Parse("c", strings.NewReader("https://files.example.org/svn/ ca-file /media/strata/ca.pem\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	u := "https://files.example.org/svn/etc"
	want := "[groups]\nstrata = files.example.org\n\n[strata]\nssl-authority-files = /media/strata/ca.pem\nssl-trust-default-ca = no\n"
	if got := SVNServers(u, s.Lookup(u)); got != want {
		t.Errorf("SVNServers:\n%s\nwant\n%s", got, want)
	}
	for _, u := range []string{"https://other.example.org/svn/etc", "https://files.example.org:8443/svn/etc", "svn://files.example.org/svn/etc"} {
		if got := SVNServers(u, s.Lookup(u)); got != "" {
			t.Errorf("SVNServers(%s) = %q, want none", u, got)
		}
	}
}
