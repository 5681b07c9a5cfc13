// Package creds holds the secrets a hand-off needs (HTTP basic and bearer
// credentials, svn and rsync passwords, ssh keys), supplied at restore time
// and never written into the profile, a log line or the restored system.
//
// The credentials file has one entry per line, keyed by URL prefix; the
// longest prefix that matches a URL wins:
//
//	# PREFIX                          KIND         VALUE...
//	https://files.example.org/git/    basic        alice correct horse battery staple
//	https://files.example.org/data/   bearer       eyJhbGciOiJIUzI1NiJ9...
//	svn://files.example.org/          basic        alice s3cret
//	rsync://files.example.org/        basic        backup s3cret
//	ssh://git@files.example.org/      ssh-key      /media/strata/keys/id_ed25519
//	ssh://git@files.example.org/      known-hosts  /media/strata/keys/known_hosts
//	https://files.example.org/home/   basic        alice
//	https://files.example.org/        ca-file      /media/strata/ca.pem
//
// For basic, the password is the rest of the line after the user name (it may
// contain spaces; leading and trailing blanks are trimmed). A basic entry
// without a password is asked for at restore time (Options.Prompt). ssh-key
// and known-hosts name files in the live environment (on the stick): the key
// file is the secret and is only ever passed by its path. ca-file names a
// PEM file of CA certificates: https URLs under the prefix are trusted when
// their server's certificate chains to one of them, instead of to the live
// system's CAs (a file server with a private CA). Blank lines and lines
// starting with # are ignored.
package creds

import (
	"bufio"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strings"
)

// UntrustedHint says what to do about a server certificate that does not
// chain to a trusted CA.
const UntrustedHint = "the server's certificate is not signed by a CA this system trusts: name its CA in the credentials file, PREFIX ca-file /path/ca.pem, see docs/handoff.md#credentials"

// Kinds of entries.
const (
	Basic      = "basic"
	Bearer     = "bearer"
	SSHKey     = "ssh-key"
	KnownHosts = "known-hosts"
	CAFile     = "ca-file"
)

// Entry is one line of the credentials file.
type Entry struct {
	Prefix   string // normalised URL prefix (no password in it)
	Kind     string // basic, bearer, ssh-key, known-hosts
	User     string // basic
	Password string // basic; the secret
	Token    string // bearer; the secret
	Path     string // ssh-key, known-hosts, ca-file
	Line     int    // where it came from, for messages
}

// Store is a parsed credentials file. The zero value (and nil) holds nothing.
type Store struct {
	Source  string
	entries []Entry
}

// Prompt asks for the password of user at prefix (no echo). It is called
// once per basic entry that has none.
type Prompt func(prefix, user string) (string, error)

// Load reads a credentials file; "-" reads r instead.
func Load(path string, stdin io.Reader, ask Prompt) (*Store, error) {
	var rd io.Reader
	if path == "-" {
		rd = stdin
	} else {
		f, err := os.Open(path)
		if err != nil {
			return nil, fmt.Errorf("credentials: %w", err)
		}
		defer f.Close()
		rd = f
	}
	return Parse(path, rd, ask)
}

// Parse reads the credentials format from r; name is used in messages.
func Parse(name string, r io.Reader, ask Prompt) (*Store, error) {
	s := &Store{Source: name}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	seen := map[string]int{}
	var errs []error
	n := 0
	for sc.Scan() {
		n++
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		e, err := parseLine(line)
		if err != nil {
			// Never quote the line: it may hold a secret.
			errs = append(errs, fmt.Errorf("%s:%d: %w", name, n, err))
			continue
		}
		e.Line = n
		key := e.Prefix + " " + e.Kind
		if prev, ok := seen[key]; ok {
			errs = append(errs, fmt.Errorf("%s:%d: %s %s is already given on line %d", name, n, e.Prefix, e.Kind, prev))
			continue
		}
		seen[key] = n
		if e.Kind == Basic && e.Password == "" {
			if ask == nil {
				errs = append(errs, fmt.Errorf("%s:%d: %s: no password for %s and no terminal to ask on", name, n, e.Prefix, e.User))
				continue
			}
			pw, err := ask(e.Prefix, e.User)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s:%d: password for %s at %s: %w", name, n, e.User, e.Prefix, err))
				continue
			}
			e.Password = pw
		}
		s.entries = append(s.entries, e)
	}
	if err := sc.Err(); err != nil {
		errs = append(errs, fmt.Errorf("%s: %w", name, err))
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return s, nil
}

func parseLine(line string) (Entry, error) {
	fields := strings.Fields(line)
	if len(fields) < 3 {
		return Entry{}, errors.New("want PREFIX KIND VALUE (see docs/handoff.md#credentials)")
	}
	prefix, err := normalise(fields[0])
	if err != nil {
		return Entry{}, err
	}
	e := Entry{Prefix: prefix, Kind: fields[1]}
	rest := func(i int) string {
		// The text after the i-th field, keeping inner blanks.
		s := line
		for k := 0; k < i; k++ {
			s = strings.TrimLeft(s, " \t")
			s = s[len(fields[k]):]
		}
		return strings.TrimSpace(s)
	}
	switch e.Kind {
	case Basic:
		e.User = fields[2]
		e.Password = rest(3)
	case Bearer:
		if len(fields) != 3 {
			return Entry{}, errors.New("a bearer token is one word")
		}
		e.Token = fields[2]
	case SSHKey, KnownHosts, CAFile:
		e.Path = rest(2)
		if !strings.HasPrefix(e.Path, "/") {
			return Entry{}, fmt.Errorf("%s wants an absolute file path in the live environment", e.Kind)
		}
	default:
		return Entry{}, fmt.Errorf("unknown kind %q (basic, bearer, ssh-key, known-hosts, ca-file)", e.Kind)
	}
	return e, nil
}

// normalise turns a URL or scp-style git address into the string prefixes
// are matched against: scheme://[user@]host[:port]/path, never a password.
func normalise(raw string) (string, error) {
	if !strings.Contains(raw, "://") {
		// git's scp-like form: [user@]host:path
		if i := strings.Index(raw, ":"); i > 0 && !strings.Contains(raw[:i], "/") {
			return "ssh://" + raw[:i] + "/" + strings.TrimPrefix(raw[i+1:], "/"), nil
		}
		return "", errors.New("the prefix must be a URL (scheme://host/path) or user@host:path")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return "", errors.New("the prefix is not a valid URL")
	}
	if u.User != nil {
		u.User = url.User(u.User.Username())
	}
	return u.String(), nil
}

// StripPassword returns raw with any password in its userinfo removed, and
// the user and password that were there. Profiles should not carry
// passwords, but if one does it must not reach argv or a log.
func StripPassword(raw string) (clean, user, password string) {
	u, err := url.Parse(raw)
	if err != nil || u.User == nil {
		return raw, "", ""
	}
	pw, ok := u.User.Password()
	if !ok {
		return raw, u.User.Username(), ""
	}
	user = u.User.Username()
	u.User = url.User(user)
	return u.String(), user, pw
}

// Match is what the store holds for one URL.
type Match struct {
	Basic      *Entry
	Bearer     *Entry
	SSHKey     *Entry
	KnownHosts *Entry
	CAFile     *Entry
}

// Lookup finds, for each kind, the entry with the longest prefix of rawURL.
// The URL is compared with and without its user name, so an entry for
// https://files.example.org/ covers https://alice@files.example.org/x too.
func (s *Store) Lookup(rawURL string) Match {
	var m Match
	if s == nil {
		return m
	}
	cands := []string{}
	if n, err := normalise(rawURL); err == nil {
		cands = append(cands, n)
		if u, err := url.Parse(n); err == nil && u.User != nil {
			u.User = nil
			cands = append(cands, u.String())
		}
	}
	best := map[string]int{}
	for i := range s.entries {
		e := &s.entries[i]
		for _, c := range cands {
			if !strings.HasPrefix(c, e.Prefix) || len(e.Prefix) <= best[e.Kind] {
				continue
			}
			best[e.Kind] = len(e.Prefix)
			switch e.Kind {
			case Basic:
				m.Basic = e
			case Bearer:
				m.Bearer = e
			case SSHKey:
				m.SSHKey = e
			case KnownHosts:
				m.KnownHosts = e
			case CAFile:
				m.CAFile = e
			}
		}
	}
	return m
}

// Authorization is the HTTP Authorization header value for m ("" for none);
// bearer wins over basic when both match.
func (m Match) Authorization() string {
	switch {
	case m.Bearer != nil:
		return "Bearer " + m.Bearer.Token
	case m.Basic != nil:
		return "Basic " + base64.StdEncoding.EncodeToString([]byte(m.Basic.User+":"+m.Basic.Password))
	}
	return ""
}

// Header is Authorization as an http.Header for restore/fetch (nil for none).
func (m Match) Header() http.Header {
	a := m.Authorization()
	if a == "" {
		return nil
	}
	return http.Header{"Authorization": {a}}
}

// GitEnv is the environment that gives git every http(s) credential in the
// store, each scoped to its own URL prefix with http.<prefix>.extraHeader,
// so submodules on other servers get theirs and nobody gets another's, and
// each ca-file as http.<prefix>.sslCAInfo. Passed through the environment
// (GIT_CONFIG_COUNT), never argv.
func (s *Store) GitEnv() []string {
	if s == nil {
		return nil
	}
	byPrefix := map[string]Match{}
	for i := range s.entries {
		e := &s.entries[i]
		if !strings.HasPrefix(e.Prefix, "http://") && !strings.HasPrefix(e.Prefix, "https://") {
			continue
		}
		m := byPrefix[e.Prefix]
		switch e.Kind {
		case Basic:
			m.Basic = e
		case Bearer:
			m.Bearer = e
		case CAFile:
			m.CAFile = e
		}
		byPrefix[e.Prefix] = m
	}
	prefixes := make([]string, 0, len(byPrefix))
	for p := range byPrefix {
		prefixes = append(prefixes, p)
	}
	sort.Strings(prefixes)
	var env []string
	n := 0
	set := func(key, value string) {
		env = append(env, fmt.Sprintf("GIT_CONFIG_KEY_%d=%s", n, key), fmt.Sprintf("GIT_CONFIG_VALUE_%d=%s", n, value))
		n++
	}
	for _, p := range prefixes {
		m := byPrefix[p]
		if a := m.Authorization(); a != "" {
			set("http."+p+".extraHeader", "Authorization: "+a)
		}
		if m.CAFile != nil {
			set("http."+p+".sslCAInfo", m.CAFile.Path)
		}
	}
	if n > 0 {
		env = append(env, fmt.Sprintf("GIT_CONFIG_COUNT=%d", n))
	}
	return env
}

// SSHCommand is the ssh command line (for GIT_SSH_COMMAND, SVN_SSH and
// rsync -e) for a URL: batch mode (never a prompt on the console), the key
// from the store if there is one, and host keys checked against the store's
// known-hosts file, or accepted on first use when there is none. It carries
// file paths only, never key material.
func (m Match) SSHCommand(port string) []string {
	argv := []string{"ssh", "-o", "BatchMode=yes"}
	if port != "" {
		argv = append(argv, "-p", port)
	}
	if m.SSHKey != nil {
		argv = append(argv, "-i", m.SSHKey.Path, "-o", "IdentitiesOnly=yes")
	}
	if m.KnownHosts != nil {
		argv = append(argv, "-o", "StrictHostKeyChecking=yes", "-o", "UserKnownHostsFile="+m.KnownHosts.Path)
	} else {
		argv = append(argv, "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null")
	}
	return argv
}

// Secrets lists every secret the store holds, and the encoded forms that
// tools might print, so tests can prove none reached a log.
func (s *Store) Secrets() []string {
	if s == nil {
		return nil
	}
	var out []string
	for _, e := range s.entries {
		switch e.Kind {
		case Basic:
			m := Match{Basic: &e}
			out = append(out, e.Password, strings.TrimPrefix(m.Authorization(), "Basic "))
		case Bearer:
			out = append(out, e.Token)
		}
	}
	return out
}

// Len is the number of entries.
func (s *Store) Len() int {
	if s == nil {
		return 0
	}
	return len(s.entries)
}

// CmdlinePath returns the file named by strata.credentials= on a kernel
// command line, or "".
func CmdlinePath(cmdline string) string {
	for _, f := range strings.Fields(cmdline) {
		if v, ok := strings.CutPrefix(f, "strata.credentials="); ok {
			return v
		}
	}
	return ""
}

// WithBasic returns a copy of s with one more basic entry for prefix (a
// password found in a profile URL, used for that URL only).
func (s *Store) WithBasic(prefix, user, password string) *Store {
	n := &Store{}
	if s != nil {
		n.Source = s.Source
		n.entries = append(n.entries, s.entries...)
	}
	if p, err := normalise(prefix); err == nil {
		prefix = p
	}
	n.entries = append(n.entries, Entry{Prefix: prefix, Kind: Basic, User: user, Password: password})
	return n
}
