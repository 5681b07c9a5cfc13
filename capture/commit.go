package capture

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/stratahq/strata/internal/run"
)

// ErrNoWorkingCopy is returned by Commit when the file is in neither a git
// nor an svn working copy.
var ErrNoWorkingCopy = errors.New("not in a git or svn working copy")

// Commit commits the file at path in the git or svn working copy it belongs
// to, and only that file, with message. It returns "git" or "svn", and
// committed false when the file had no changes to commit.
func Commit(ctx context.Context, r run.Runner, path, message string) (vcs string, committed bool, err error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", false, err
	}
	dir, base := filepath.Dir(abs), filepath.Base(abs)
	if _, err := r.Run(ctx, run.Cmd{Name: "git", Args: []string{"-C", dir, "rev-parse", "--show-toplevel"}}); err == nil {
		res, err := r.Run(ctx, run.Cmd{Name: "git", Args: []string{"-C", dir, "status", "--porcelain", "--", base}})
		if err != nil {
			return "git", false, err
		}
		if strings.TrimSpace(string(res.Stdout)) == "" {
			return "git", false, nil
		}
		if _, err := r.Run(ctx, run.Cmd{Name: "git", Args: []string{"-C", dir, "add", "--", base}}); err != nil {
			return "git", false, err
		}
		_, err = r.Run(ctx, run.Cmd{Name: "git", Args: []string{"-C", dir, "commit", "--quiet", "-m", message, "--", base}})
		return "git", err == nil, err
	}
	if _, err := r.Run(ctx, run.Cmd{Name: "svn", Args: []string{"info", dir}}); err == nil {
		res, err := r.Run(ctx, run.Cmd{Name: "svn", Args: []string{"status", abs}})
		if err != nil {
			return "svn", false, err
		}
		st := strings.TrimSpace(string(res.Stdout))
		if st == "" {
			return "svn", false, nil
		}
		if strings.HasPrefix(st, "?") {
			if _, err := r.Run(ctx, run.Cmd{Name: "svn", Args: []string{"add", "--quiet", abs}}); err != nil {
				return "svn", false, err
			}
		}
		_, err = r.Run(ctx, run.Cmd{Name: "svn", Args: []string{"commit", "--quiet", "-m", message, abs}})
		return "svn", err == nil, err
	}
	return "", false, fmt.Errorf("%s: %w", path, ErrNoWorkingCopy)
}
