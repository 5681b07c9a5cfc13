// Package repo checks out a configuration repository (git or svn) into its
// destination in the restored root: cloned into a staging directory inside
// the destination, checked against the requested revision, given its
// owner, then moved into place over what is there (overlay) or instead of it
// (replace).
//
// The live image's git and svn do the work (not the target's, in a chroot):
// a minimal base image needs neither, credentials never enter the restored
// system, and the tool versions are the ones strata is tested with.
// Credentials reach git through its environment (http.<prefix>.extraHeader,
// GIT_SSH_COMMAND) and svn on stdin (--password-from-stdin); argv, which the
// runner logs, never holds one.
package repo

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/stratahq/strata/handoff/creds"
	"github.com/stratahq/strata/handoff/place"
	"github.com/stratahq/strata/internal/run"
	"github.com/stratahq/strata/profile"
)

// Options are what a checkout needs besides the repo.
type Options struct {
	Runner run.Runner
	Creds  *creds.Store
	// Owner, when set, owns the checkout (files, directories, .git/.svn).
	Owner *place.Owner
	// Keep are names at the top of the destination that replace leaves
	// alone (other items' destinations nested in this one).
	Keep []string
	// Phase, when set, hears each step: "clone", "checkout", "submodules",
	// "externals", "place".
	Phase func(phase string)
	// TempDir holds svn's private configuration (default os.TempDir()).
	TempDir string
	// SVN is where svn runs: SVNAuto (default), SVNLive or SVNRoot.
	SVN string
	// Root is the restored system's root, for its own svn (SVNRoot).
	Root string
	// Log hears what the checkout sets up around svn.
	Log func(format string, args ...any)
}

// Result is what was checked out.
type Result struct {
	Revision string // git commit or svn revision
	Files    int64  // regular files, not counting .git/.svn
	Bytes    int64
}

// Checkout fetches r and places it at dest, a host path inside the restored
// root that exists. On failure dest holds what it held before (the staging
// directory is removed) unless the failure was in the final move.
func Checkout(ctx context.Context, r profile.Repo, dest string, opt Options) (Result, error) {
	if opt.Phase == nil {
		opt.Phase = func(string) {}
	}
	stage := filepath.Join(dest, place.StagingName)
	if err := os.RemoveAll(stage); err != nil {
		return Result{}, fmt.Errorf("clear staging %s: %w", stage, err)
	}
	defer os.RemoveAll(stage)
	var res Result
	var err error
	switch r.Type {
	case "git":
		res, err = gitCheckout(ctx, r, stage, opt)
	case "svn":
		res, err = svnCheckout(ctx, r, stage, opt)
	default:
		return Result{}, fmt.Errorf("unknown repository type %q", r.Type)
	}
	if err != nil {
		return res, err
	}
	res.Files, res.Bytes = count(stage)
	if opt.Owner != nil {
		if err := place.Chown(stage, *opt.Owner); err != nil {
			return res, err
		}
	}
	opt.Phase("place")
	mo := place.MergeOptions{Replace: r.Existing == "replace", Keep: opt.Keep, Whole: []string{".git", ".svn"}, Owner: opt.Owner}
	if err := place.Merge(stage, dest, mo); err != nil {
		return res, err
	}
	return res, nil
}

// cleanURL takes a password out of a URL (profiles should not hold one; if
// one does, it is used like a credentials-file entry for that URL and kept
// out of argv and logs).
func cleanURL(raw string, store *creds.Store) (string, *creds.Store) {
	clean, user, pw := creds.StripPassword(raw)
	if pw != "" {
		store = store.WithBasic(clean, user, pw)
	}
	return clean, store
}

// GitEnv is the environment of every git command: no prompts, no user or
// system configuration, the credentials scoped per URL prefix, and ssh set
// up for the repo's URL.
func GitEnv(repoURL string, store *creds.Store) []string {
	env := []string{"GIT_TERMINAL_PROMPT=0", "GIT_ASKPASS=", "SSH_ASKPASS=", "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null"}
	env = append(env, store.GitEnv()...)
	if m := store.Lookup(repoURL); m.CAFile != nil && os.Getenv("GIT_SSL_CAINFO") != "" {
		// GIT_SSL_CAINFO in strata's own environment beats every
		// http.<prefix>.sslCAInfo, and an environment variable can only be
		// replaced: for this repo, it is the repo's ca-file.
		env = append(env, "GIT_SSL_CAINFO="+m.CAFile.Path)
	}
	if ssh := sshFor(repoURL, store.Lookup(repoURL)); ssh != "" {
		env = append(env, "GIT_SSH_COMMAND="+ssh)
	}
	return env
}

// sshFor is the ssh command for an ssh URL (or scp-like address), "" for
// others. git passes the URL's port to ssh itself; svn does not, so its
// tunnel command carries it.
func sshFor(raw string, m creds.Match) string {
	u, err := url.Parse(raw)
	isSSH := err == nil && (u.Scheme == "ssh" || u.Scheme == "svn+ssh" || u.Scheme == "git+ssh")
	if !isSSH && !(strings.Contains(raw, "@") && !strings.Contains(raw, "://")) {
		return ""
	}
	return run.Quote(m.SSHCommand(""))
}

// svnSSH is SVN_SSH for an svn+ssh URL. svn hands ssh "host:port" as the
// host name when the URL has a port, which ssh cannot resolve; a private
// ssh_config (in svn's scratch directory dir, which ssh sees as seen) maps
// it back.
func svnSSH(raw string, m creds.Match, dir, seen string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "svn+ssh" {
		return "", nil
	}
	argv := m.SSHCommand("")
	if port := u.Port(); port != "" {
		cfg := filepath.Join(dir, "ssh_config")
		text := fmt.Sprintf("Host %s:%s\n  HostName %s\n  Port %s\n", u.Hostname(), port, u.Hostname(), port)
		if err := os.WriteFile(cfg, []byte(text), 0o644); err != nil {
			return "", fmt.Errorf("ssh config: %w", err)
		}
		argv = append([]string{argv[0], "-F", filepath.Join(seen, "ssh_config")}, argv[1:]...)
	}
	return strings.Join(argv, " "), nil
}

// Step is one command of a checkout.
type Step struct {
	Phase string // clone, verify, checkout, submodules, head
	Args  []string
}

// GitSteps are the git commands of a checkout into stage, in order (pure,
// for golden tests).
func GitSteps(r profile.Repo, repoURL, stage string) []Step {
	global := []string{}
	if strings.HasPrefix(repoURL, "file:") || strings.HasPrefix(repoURL, "/") {
		// git refuses file:// submodules by default (CVE-2022-39253);
		// a file:// superproject's submodules are as trusted as it is.
		global = append(global, "-c", "protocol.file.allow=always")
	}
	clone := append(append([]string{}, global...), "clone", "--quiet", "--no-checkout")
	switch {
	case r.Tag != "":
		clone = append(clone, "--branch", r.Tag)
	case r.Branch != "":
		clone = append(clone, "--branch", r.Branch)
	}
	steps := []Step{{"clone", append(clone, "--", repoURL, stage)}}
	co := []string{"-C", stage, "checkout", "--quiet", "--force"}
	switch {
	case r.Revision != "" && r.Branch != "":
		co = append(co, "-B", r.Branch, r.Revision)
	case r.Revision != "":
		co = append(co, "--detach", r.Revision)
	}
	if r.Revision != "" {
		steps = append(steps, Step{"verify", []string{"-C", stage, "rev-parse", "--verify", "--quiet", r.Revision + "^{commit}"}})
	}
	steps = append(steps, Step{"checkout", co})
	if r.Submodules {
		steps = append(steps, Step{"submodules", append(append([]string{"-C", stage}, global...), "submodule", "update", "--quiet", "--init", "--recursive")})
	}
	return append(steps, Step{"head", []string{"-C", stage, "rev-parse", "HEAD"}})
}

func gitCheckout(ctx context.Context, r profile.Repo, stage string, opt Options) (Result, error) {
	repoURL, store := cleanURL(r.URL, opt.Creds)
	env := GitEnv(repoURL, store)
	var res Result
	var want string
	for _, s := range GitSteps(r, repoURL, stage) {
		if s.Phase == "clone" || s.Phase == "checkout" || s.Phase == "submodules" {
			opt.Phase(s.Phase)
		}
		out, err := opt.Runner.Run(ctx, run.Cmd{Name: "git", Args: s.Args, Env: env})
		if err != nil {
			switch s.Phase {
			case "clone":
				return res, fmt.Errorf("git clone %s: %w", repoURL, explainGit(err))
			case "verify":
				return res, fmt.Errorf("git %s: revision %q is not a commit in the repository: %w", repoURL, r.Revision, err)
			default:
				return res, fmt.Errorf("git %s: %s: %w", repoURL, s.Phase, err)
			}
		}
		switch s.Phase {
		case "verify":
			want = strings.TrimSpace(string(out.Stdout))
		case "head":
			res.Revision = strings.TrimSpace(string(out.Stdout))
		}
	}
	if want != "" && res.Revision != want {
		return res, fmt.Errorf("git %s: checked out %s, the profile asks for %s (%s)", repoURL, res.Revision, r.Revision, want)
	}
	return res, nil
}

// explainGit adds the likely cause to common clone failures.
func explainGit(err error) error {
	var ee *run.ExitError
	if !errors.As(err, &ee) {
		return err
	}
	low := strings.ToLower(ee.Stderr)
	switch {
	case strings.Contains(low, "host key verification failed"):
		return fmt.Errorf("%w (host key verification failed: the server's key is not the one in the credentials' known-hosts file)", err)
	case strings.Contains(low, "ssl certificate problem"), strings.Contains(low, "server certificate verification failed"):
		return fmt.Errorf("%w (%s)", err, creds.UntrustedHint)
	case strings.Contains(low, "authentication failed"), strings.Contains(low, "could not read username"), strings.Contains(low, "permission denied (publickey"):
		return fmt.Errorf("%w (authentication: add an entry for this URL to the credentials file, see docs/handoff.md#credentials)", err)
	case strings.Contains(low, "remote branch") && strings.Contains(low, "not found"):
		return fmt.Errorf("%w (no such branch or tag in the repository)", err)
	case strings.Contains(low, "not found"), strings.Contains(low, "does not appear to be a git repository"), strings.Contains(low, "does not exist"), strings.Contains(low, "no such"):
		return fmt.Errorf("%w (no repository at that URL)", err)
	}
	return err
}

// SVNArgs is the svn checkout command (pure, for golden tests). The
// password, if any, goes on stdin.
func SVNArgs(r profile.Repo, repoURL, stage, configDir, user string) []string {
	args := []string{"checkout", "--quiet", "--non-interactive", "--no-auth-cache", "--config-dir", configDir}
	if user != "" {
		args = append(args, "--username", user, "--password-from-stdin")
	}
	if !r.Externals {
		args = append(args, "--ignore-externals")
	}
	rev := r.Revision
	if rev == "" {
		rev = "HEAD"
	}
	return append(args, "--", SVNURL(repoURL, r.Branch)+"@"+rev, stage)
}

// SVNURL is the repository URL with the branch path below it.
func SVNURL(repoURL, branch string) string {
	if branch == "" {
		return repoURL
	}
	return strings.TrimSuffix(repoURL, "/") + "/" + strings.Trim(branch, "/")
}

// SVNServers is svn's private servers file for an https repository with a
// ca-file in the credentials: the server's certificate must chain to a CA
// in that file, not to the system's. svn scopes it by host name (its
// [groups] match hosts, not URL prefixes). "" when there is nothing to say.
func SVNServers(repoURL string, m creds.Match) string {
	u, err := url.Parse(repoURL)
	if err != nil || u.Scheme != "https" || m.CAFile == nil {
		return ""
	}
	return fmt.Sprintf("[groups]\nstrata = %s\n\n[strata]\nssl-authority-files = %s\nssl-trust-default-ca = no\n", u.Hostname(), m.CAFile.Path)
}

func svnCheckout(ctx context.Context, r profile.Repo, stage string, opt Options) (Result, error) {
	repoURL, store := cleanURL(r.URL, opt.Creds)
	m := store.Lookup(repoURL)
	if opt.Log == nil {
		opt.Log = func(string, ...any) {}
	}
	chroot, err := useRootSVN(opt.SVN)
	if err != nil {
		return Result{}, err
	}
	// svn's throw-away configuration: in the live system's scratch space,
	// or in memory inside the root for the root's own svn.
	var ch *svnChroot
	var cfg, seenCfg, seenStage string
	if chroot {
		opt.Log("svn: the live system has no svn: running the restored system's, chrooted into %s", opt.Root)
		if ch, m, err = chrootSVN(opt.Root, m, opt.Log); err != nil {
			return Result{}, err
		}
		defer func() {
			if err := ch.close(); err != nil {
				opt.Log("svn in the restored system: %v", err)
			}
		}()
		seenCfg = chrootDir + "/svn-config"
		cfg = ch.Host(seenCfg)
		if err := os.Mkdir(cfg, 0o700); err != nil {
			return Result{}, fmt.Errorf("svn config: %w", err)
		}
		if seenStage, err = ch.In(stage); err != nil {
			return Result{}, err
		}
	} else {
		if cfg, err = os.MkdirTemp(opt.TempDir, "strata-svn-"); err != nil {
			return Result{}, fmt.Errorf("svn config: %w", err)
		}
		defer os.RemoveAll(cfg)
		seenCfg, seenStage = cfg, stage
	}
	svn := func(args []string) run.Cmd {
		if ch == nil {
			return run.Cmd{Name: "svn", Args: args}
		}
		return run.Cmd{Name: "chroot", Args: append([]string{ch.root, "svn"}, args...),
			// (a UTF-8 locale: in "C", svn cannot handle non-ASCII names)
			Env: []string{"PATH=/usr/local/bin:/usr/bin:/bin:/usr/local/sbin:/usr/sbin:/sbin", "HOME=/root", "LC_ALL=C.UTF-8"}}
	}
	user := ""
	if m.Basic != nil {
		user = m.Basic.User
	}
	cmd := svn(SVNArgs(r, repoURL, seenStage, seenCfg, user))
	if m.Basic != nil {
		cmd.Stdin = strings.NewReader(m.Basic.Password + "\n")
	}
	if servers := SVNServers(repoURL, m); servers != "" {
		if err := os.WriteFile(filepath.Join(cfg, "servers"), []byte(servers), 0o644); err != nil {
			return Result{}, fmt.Errorf("svn config: %w", err)
		}
	}
	ssh, err := svnSSH(repoURL, m, cfg, seenCfg)
	if err != nil {
		return Result{}, err
	}
	if ssh != "" {
		// svn splits SVN_SSH at blanks; it holds no quotes.
		cmd.Env = append(cmd.Env, "SVN_SSH="+ssh)
	}
	opt.Phase("checkout")
	if _, err := opt.Runner.Run(ctx, cmd); err != nil {
		return Result{}, fmt.Errorf("svn checkout %s: %w", SVNURL(repoURL, r.Branch), explainSVN(err))
	}
	out, err := opt.Runner.Run(ctx, svn([]string{"info", "--non-interactive", "--config-dir", seenCfg, "--show-item", "revision", "--", seenStage}))
	if err != nil {
		return Result{}, fmt.Errorf("svn info %s: %w", stage, err)
	}
	res := Result{Revision: strings.TrimSpace(string(out.Stdout))}
	if r.Revision != "" && res.Revision != r.Revision {
		return res, fmt.Errorf("svn %s: checked out revision %s, the profile asks for %s", repoURL, res.Revision, r.Revision)
	}
	return res, nil
}

// useRootSVN decides whether svn runs chrooted in the restored system.
func useRootSVN(where string) (bool, error) {
	switch where {
	case SVNRoot:
		return true, nil
	case SVNLive:
		return false, nil
	case SVNAuto:
		_, err := exec.LookPath("svn")
		return err != nil, nil
	}
	return false, fmt.Errorf("svn: %q is not where svn can run (live, root, or empty for either)", where)
}

func explainSVN(err error) error {
	var ee *run.ExitError
	if !errors.As(err, &ee) {
		return err
	}
	low := strings.ToLower(ee.Stderr)
	switch {
	case strings.Contains(low, "host key verification failed"):
		return fmt.Errorf("%w (host key verification failed: the server's key is not the one in the credentials' known-hosts file)", err)
	case strings.Contains(low, "e230001"), strings.Contains(low, "certificate verification failed"):
		return fmt.Errorf("%w (%s)", err, creds.UntrustedHint)
	case strings.Contains(low, "e170001"), strings.Contains(low, "authorization failed"), strings.Contains(low, "authentication"):
		return fmt.Errorf("%w (authentication: add an entry for this URL to the credentials file, see docs/handoff.md#credentials)", err)
	case strings.Contains(low, "e170000"), strings.Contains(low, "e160013"), strings.Contains(low, "e210005"), strings.Contains(low, "no repository found"):
		return fmt.Errorf("%w (no repository or path at that URL)", err)
	case strings.Contains(low, "e160006"), strings.Contains(low, "no such revision"):
		return fmt.Errorf("%w (no such revision)", err)
	}
	return err
}

// count sums the regular files of a checkout, not counting .git and .svn.
func count(dir string) (files, bytes int64) {
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if d.IsDir() && (d.Name() == ".git" || d.Name() == ".svn") {
			return filepath.SkipDir
		}
		if d.Type().IsRegular() {
			if info, err := d.Info(); err == nil {
				files++
				bytes += info.Size()
			}
		}
		return nil
	})
	return files, bytes
}
