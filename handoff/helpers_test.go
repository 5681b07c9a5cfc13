package handoff_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stratahq/strata/handoff"
	"github.com/stratahq/strata/handoff/creds"
	"github.com/stratahq/strata/profile"
)

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("skipping: the hand-off gives files their owners, which needs root (CI runs as root)")
	}
}

// sh runs a fixture-building command, failing the test on error.
func sh(t *testing.T, dir string, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.org", "GIT_COMMITTER_NAME=t",
		"GIT_COMMITTER_EMAIL=t@example.org", "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null", "HOME="+dir)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

func write(t *testing.T, p, s string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

func read(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		return "<" + err.Error() + ">"
	}
	return string(b)
}

func exists(p string) bool { _, err := os.Lstat(p); return err == nil }

// newRoot makes a restored root with a base image's accounts, and a user
// (strata-only, uid 4242) and group that exist only there.
func newRoot(t *testing.T) string {
	t.Helper()
	root := filepath.Join(t.TempDir(), "mnt")
	write(t, filepath.Join(root, "etc/passwd"), "root:x:0:0:root:/root:/bin/bash\nstrata-only:x:4242:4343:Only on the target:/home/me:/bin/bash\n")
	write(t, filepath.Join(root, "etc/group"), "root:x:0:\nstrata-only:x:4343:\nstrata-media:x:4444:strata-only\n")
	write(t, filepath.Join(root, "etc/keep.conf"), "from the base image\n")
	write(t, filepath.Join(root, "etc/hosts"), "base image hosts\n")
	return root
}

// logBuf collects log lines (the runner's argv and stderr lines included).
type logBuf struct {
	mu    sync.Mutex
	lines []string
}

func (l *logBuf) f(format string, a ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, fmt.Sprintf(format, a...))
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines, "\n")
}

type events struct {
	mu  sync.Mutex
	all []handoff.Event
}

func (e *events) add(ev handoff.Event) { e.mu.Lock(); e.all = append(e.all, ev); e.mu.Unlock() }

func (e *events) String() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	var b strings.Builder
	for _, ev := range e.all {
		b.WriteString(ev.String() + "\n")
	}
	return b.String()
}

func (e *events) last(name string) handoff.Event {
	e.mu.Lock()
	defer e.mu.Unlock()
	for i := len(e.all) - 1; i >= 0; i-- {
		if e.all[i].Item.Name == name && e.all[i].Type != handoff.Progress && e.all[i].Type != handoff.Phase {
			return e.all[i]
		}
	}
	return handoff.Event{}
}

type result struct {
	rep handoff.Report
	err error
	log *logBuf
	ev  *events
}

func (r result) status(t *testing.T, name string) handoff.ItemReport {
	t.Helper()
	for _, it := range r.rep.Items {
		if it.Item.Name == name {
			return it
		}
	}
	t.Fatalf("no item %s in the report", name)
	return handoff.ItemReport{}
}

func (r result) mustDone(t *testing.T, names ...string) {
	t.Helper()
	for _, n := range names {
		if it := r.status(t, n); it.Status != handoff.Done {
			t.Fatalf("%s: %s (%v)\nevents:\n%s\nlog:\n%s", n, it.Status, it.Err, r.ev, r.log)
		}
	}
}

func handOff(t *testing.T, root string, p *profile.Profile, opt handoff.Options) result {
	t.Helper()
	needRoot(t) // the hand-off gives every file its owner (root when unset)
	lb, ev := &logBuf{}, &events{}
	opt.Root, opt.Log, opt.Events = root, lb.f, ev.add
	if opt.Retries == 0 {
		opt.Retries = 5
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	rep, err := handoff.Run(ctx, p, opt)
	return result{rep, err, lb, ev}
}

func storeOf(t *testing.T, text string) *creds.Store {
	t.Helper()
	s, err := creds.Parse("test-credentials", strings.NewReader(text), nil)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func owner(t *testing.T, p string) string {
	t.Helper()
	st, err := os.Lstat(p)
	if err != nil {
		t.Fatal(err)
	}
	s := st.Sys().(*syscall.Stat_t)
	return fmt.Sprintf("%d:%d", s.Uid, s.Gid)
}

func mode(t *testing.T, p string) string {
	t.Helper()
	st, err := os.Lstat(p)
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%04o", st.Mode().Perm())
}

// listing is "rel=sha256" for every regular file below dir, skipping the
// given names at any depth.
func listing(t *testing.T, dir string, skip ...string) string {
	t.Helper()
	var out []string
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		for _, s := range skip {
			if d.Name() == s {
				if d.IsDir() {
					return filepath.SkipDir
				}
				return nil
			}
		}
		if d.Type().IsRegular() {
			rel, _ := filepath.Rel(dir, p)
			b, _ := os.ReadFile(p)
			s := sha256.Sum256(b)
			out = append(out, rel+"="+hex.EncodeToString(s[:8]))
		}
		return nil
	})
	sort.Strings(out)
	return strings.Join(out, "\n")
}

// randomFile writes n bytes of reproducible random data.
func randomFile(t *testing.T, p string, n int, seed int64) {
	t.Helper()
	b := make([]byte, n)
	rand.New(rand.NewSource(seed)).Read(b)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// sha256sums writes dir/SHA256SUMS the way docs/handoff.md says to, with
// the real sha256sum.
func sha256sums(t *testing.T, dir string) string {
	t.Helper()
	out := sh(t, dir, "sh", "-c", "find . -type f ! -name SHA256SUMS -print0 | sort -z | xargs -0 sha256sum > SHA256SUMS && sha256sum SHA256SUMS")
	return strings.Fields(out)[0]
}

func fileSum(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// grepTree reports files below dir that contain any of needles.
func grepTree(t *testing.T, dir string, needles []string) []string {
	t.Helper()
	var hits []string
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return nil
		}
		b, _ := os.ReadFile(p)
		for _, n := range needles {
			if n != "" && bytes.Contains(b, []byte(n)) {
				hits = append(hits, p+" holds "+n)
			}
		}
		return nil
	})
	return hits
}

func marker(t *testing.T, root, kind, name string) *handoff.Marker {
	t.Helper()
	m, err := handoff.ReadMarker(root, kind, name)
	if err != nil {
		return nil
	}
	return m
}
