package creds

import (
	"errors"
	"strings"
	"testing"
)

const file = `# strata credentials
https://files.example.org/          basic   alice  outer secret
https://files.example.org/git/      basic   alice  inner  secret with  spaces
https://files.example.org/data/     bearer  tok-123
svn://files.example.org/            basic   bob    svnpw
ssh://git@files.example.org/        ssh-key /media/strata/keys/id_ed25519
ssh://git@files.example.org/        known-hosts /media/strata/keys/known_hosts
https://ask.example.org/            basic   carol
https://files.example.org/          ca-file /media/strata/ca.pem
`

func TestParseAndLookup(t *testing.T) {
	var asked []string
	s, err := Parse("creds", strings.NewReader(file), func(prefix, user string) (string, error) {
		asked = append(asked, prefix+" "+user)
		return "typed", nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(asked) != 1 || asked[0] != "https://ask.example.org/ carol" {
		t.Errorf("asked %q", asked)
	}
	for _, tc := range []struct{ url, auth string }{
		{"https://files.example.org/git/etc.git", "Basic " + b64("alice:inner  secret with  spaces")},
		{"https://alice@files.example.org/git/etc.git", "Basic " + b64("alice:inner  secret with  spaces")},
		{"https://files.example.org/images/x", "Basic " + b64("alice:outer secret")},
		{"https://files.example.org/data/music/", "Bearer tok-123"},
		{"https://ask.example.org/x", "Basic " + b64("carol:typed")},
		{"https://other.example.org/", ""},
	} {
		if got := s.Lookup(tc.url).Authorization(); got != tc.auth {
			t.Errorf("Lookup(%s) = %q, want %q", tc.url, got, tc.auth)
		}
	}
	m := s.Lookup("svn://files.example.org/repos/etc")
	if m.Basic == nil || m.Basic.User != "bob" || m.Basic.Password != "svnpw" {
		t.Errorf("svn lookup %+v", m.Basic)
	}
	m = s.Lookup("git@files.example.org:etc.git") // scp-like
	if m.SSHKey == nil || m.KnownHosts == nil {
		t.Fatalf("scp-like lookup found %+v", m)
	}
	if m := s.Lookup("https://files.example.org/git/etc.git"); m.CAFile == nil || m.CAFile.Path != "/media/strata/ca.pem" {
		t.Errorf("ca-file lookup found %+v", m.CAFile)
	}
	if m := s.Lookup("https://other.example.org/"); m.CAFile != nil {
		t.Errorf("ca-file outside its prefix: %+v", m.CAFile)
	}
	ssh := strings.Join(m.SSHCommand("2222"), " ")
	if ssh != "ssh -o BatchMode=yes -p 2222 -i /media/strata/keys/id_ed25519 -o IdentitiesOnly=yes -o StrictHostKeyChecking=yes -o UserKnownHostsFile=/media/strata/keys/known_hosts" {
		t.Errorf("ssh command %s", ssh)
	}
}

func b64(s string) string {
	m := Match{Basic: &Entry{User: strings.SplitN(s, ":", 2)[0], Password: strings.SplitN(s, ":", 2)[1]}}
	return strings.TrimPrefix(m.Authorization(), "Basic ")
}

func TestErrorsNeverQuoteSecrets(t *testing.T) {
	in := "https://a.example/ basic\nhttps://a.example/ bearer tok en\nhttps://a.example/ magic s3cr3t\nnot-a-url basic u hunter2\nhttps://b.example/ basic u pw1\nhttps://b.example/ basic u pw2\nhttps://c.example/ ca-file ca.pem\n"
	_, err := Parse("creds", strings.NewReader(in), nil)
	if err == nil {
		t.Fatal("bad file accepted")
	}
	msg := err.Error()
	for _, want := range []string{"creds:1:", "creds:2:", "creds:3: unknown kind", "creds:4:", "creds:6: https://b.example/ basic is already given on line 5", "creds:7: ca-file wants an absolute file path"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error lacks %q:\n%s", want, msg)
		}
	}
	for _, secret := range []string{"s3cr3t", "hunter2", "pw1", "pw2", "tok en"} {
		if strings.Contains(msg, secret) {
			t.Errorf("error quotes the secret %q:\n%s", secret, msg)
		}
	}
	_, err = Parse("creds", strings.NewReader("https://a.example/ basic u\n"), nil)
	if err == nil || !strings.Contains(err.Error(), "no password for u") {
		t.Errorf("missing password without a prompt: %v", err)
	}
	_, err = Parse("creds", strings.NewReader("https://a.example/ basic u\n"), func(string, string) (string, error) { return "", errors.New("no tty") })
	if err == nil || !strings.Contains(err.Error(), "no tty") {
		t.Errorf("prompt failure: %v", err)
	}
}

func TestGitEnvIsScoped(t *testing.T) {
	s, err := Parse("c", strings.NewReader(file), func(string, string) (string, error) { return "typed", nil })
	if err != nil {
		t.Fatal(err)
	}
	env := strings.Join(s.GitEnv(), "\n")
	for _, want := range []string{
		"GIT_CONFIG_KEY_0=http.https://ask.example.org/.extraHeader",
		"GIT_CONFIG_KEY_2=http.https://files.example.org/.sslCAInfo\nGIT_CONFIG_VALUE_2=/media/strata/ca.pem",
		"GIT_CONFIG_KEY_3=http.https://files.example.org/data/.extraHeader\nGIT_CONFIG_VALUE_3=Authorization: Bearer tok-123",
		"GIT_CONFIG_KEY_4=http.https://files.example.org/git/.extraHeader",
		"GIT_CONFIG_COUNT=5",
	} {
		if !strings.Contains(env, want) {
			t.Errorf("GitEnv lacks %q:\n%s", want, env)
		}
	}
	if strings.Contains(env, "svnpw") {
		t.Error("svn password handed to git")
	}
	if (*Store)(nil).GitEnv() != nil || (*Store)(nil).Lookup("https://x/").Authorization() != "" {
		t.Error("nil store holds something")
	}
}

func TestStripPasswordAndCmdline(t *testing.T) {
	clean, u, p := StripPassword("https://alice:pw@files.example.org/git/etc.git")
	if clean != "https://alice@files.example.org/git/etc.git" || u != "alice" || p != "pw" {
		t.Errorf("StripPassword = %s %s %s", clean, u, p)
	}
	if clean, _, p := StripPassword("git@host:etc.git"); clean != "git@host:etc.git" || p != "" {
		t.Errorf("scp-like changed: %s", clean)
	}
	if got := CmdlinePath("quiet strata.server=http://x strata.credentials=/media/strata/creds"); got != "/media/strata/creds" {
		t.Errorf("CmdlinePath = %q", got)
	}
	s := (*Store)(nil).WithBasic("https://alice@h/x.git", "alice", "pw")
	if s.Lookup("https://alice@h/x.git").Authorization() == "" || s.Lookup("https://h/y.git").Authorization() != "" {
		t.Error("WithBasic scope wrong")
	}
}
