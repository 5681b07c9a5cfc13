package capture_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stratahq/strata/capture"
	"github.com/stratahq/strata/internal/run"
)

func sh(t *testing.T, dir string, name string, args ...string) string {
	t.Helper()
	c := exec.Command(name, args...)
	c.Dir = dir
	c.Env = append(os.Environ(), "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.org", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.org")
	out, err := c.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
	return string(out)
}

// Commit commits the profile, and only it, in git and in svn.
func TestCommit(t *testing.T) {
	ctx := context.Background()
	t.Run("git", func(t *testing.T) {
		if _, err := exec.LookPath("git"); err != nil {
			t.Skip("skipping: git not installed")
		}
		dir := t.TempDir()
		sh(t, dir, "git", "init", "-q")
		os.WriteFile(filepath.Join(dir, "host.yaml"), []byte("a\n"), 0o644)
		os.WriteFile(filepath.Join(dir, "other"), []byte("x\n"), 0o644)
		sh(t, dir, "git", "add", "host.yaml", "other")
		sh(t, dir, "git", "commit", "-q", "-m", "init")
		os.WriteFile(filepath.Join(dir, "host.yaml"), []byte("b\n"), 0o644)
		os.WriteFile(filepath.Join(dir, "other"), []byte("y\n"), 0o644)
		t.Setenv("GIT_COMMITTER_NAME", "t")
		t.Setenv("GIT_COMMITTER_EMAIL", "t@example.org")
		t.Setenv("GIT_AUTHOR_NAME", "t")
		t.Setenv("GIT_AUTHOR_EMAIL", "t@example.org")
		vcs, done, err := capture.Commit(ctx, run.Exec{}, filepath.Join(dir, "host.yaml"), "laptop: capture: disks (1)\n\n~ x")
		if err != nil || vcs != "git" || !done {
			t.Fatalf("Commit: %s %v %v", vcs, done, err)
		}
		if msg := sh(t, dir, "git", "log", "-1", "--format=%s"); strings.TrimSpace(msg) != "laptop: capture: disks (1)" {
			t.Errorf("subject %q", msg)
		}
		if st := sh(t, dir, "git", "status", "--porcelain"); !strings.Contains(st, " M other") || strings.Contains(st, "host.yaml") {
			t.Errorf("status after commit:\n%s", st)
		}
		if _, done, err := capture.Commit(ctx, run.Exec{}, filepath.Join(dir, "host.yaml"), "again"); done || err != nil {
			t.Errorf("unchanged file: committed %v, %v", done, err)
		}
	})
	t.Run("svn", func(t *testing.T) {
		for _, tool := range []string{"svn", "svnadmin"} {
			if _, err := exec.LookPath(tool); err != nil {
				t.Skipf("skipping: %s not installed", tool)
			}
		}
		dir := t.TempDir()
		sh(t, dir, "svnadmin", "create", "repo")
		sh(t, dir, "svn", "checkout", "-q", "file://"+dir+"/repo", "wc")
		wc := filepath.Join(dir, "wc")
		os.WriteFile(filepath.Join(wc, "host.yaml"), []byte("a\n"), 0o644)
		vcs, done, err := capture.Commit(ctx, run.Exec{}, filepath.Join(wc, "host.yaml"), "laptop: capture: new")
		if err != nil || vcs != "svn" || !done {
			t.Fatalf("Commit of a new file: %s %v %v", vcs, done, err)
		}
		os.WriteFile(filepath.Join(wc, "host.yaml"), []byte("b\n"), 0o644)
		if _, done, err := capture.Commit(ctx, run.Exec{}, filepath.Join(wc, "host.yaml"), "laptop: capture: disks (1)"); err != nil || !done {
			t.Fatalf("Commit: %v %v", done, err)
		}
		if log := sh(t, wc, "svn", "log", "-q", "-v", "file://"+dir+"/repo"); !strings.Contains(log, "r2") {
			t.Errorf("svn log:\n%s", log)
		}
	})
	t.Run("none", func(t *testing.T) {
		p := filepath.Join(t.TempDir(), "host.yaml")
		os.WriteFile(p, []byte("a\n"), 0o644)
		if _, _, err := capture.Commit(ctx, run.Exec{}, p, "x"); !errors.Is(err, capture.ErrNoWorkingCopy) {
			t.Errorf("outside a working copy: %v", err)
		}
	})
}
