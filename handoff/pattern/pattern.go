// Package pattern decides which files of a dataset a selection takes, with
// rsync's pattern rules, so an http, archive and rsync source of the same
// data select the same files:
//
//   - a pattern starting with / is anchored at the dataset's top;
//   - a pattern containing / (other than a trailing one) or ** is matched
//     against the end of the path, at a / boundary;
//   - any other pattern is matched against the last component only;
//   - a trailing / matches directories only;
//   - * matches within one component, ** across components, ? one character,
//     [...] a class.
//
// A file is selected when it, or a directory above it, matches an include
// (or there are no includes), and neither it nor a directory above it
// matches an exclude. Excludes win.
package pattern

import (
	"fmt"
	"path"
	"strings"
)

// Set is a selection's include and exclude patterns.
type Set struct {
	Include []string
	Exclude []string
}

// Validate reports a malformed pattern.
func (s Set) Validate() error {
	for _, p := range append(append([]string{}, s.Include...), s.Exclude...) {
		if strings.TrimSpace(p) == "" || p == "/" {
			return fmt.Errorf("empty pattern %q", p)
		}
		if _, err := path.Match(strings.ReplaceAll(strings.Trim(p, "/"), "**", "*"), ""); err != nil {
			return fmt.Errorf("pattern %q: %w", p, err)
		}
	}
	return nil
}

// Empty reports whether the set selects everything.
func (s Set) Empty() bool { return len(s.Include) == 0 && len(s.Exclude) == 0 }

// Selected reports whether the file at rel (slash-separated, relative to the
// dataset's top, no leading /) is in the selection.
func (s Set) Selected(rel string) bool {
	rel = strings.Trim(rel, "/")
	if s.Empty() {
		return true
	}
	if anyMatch(s.Exclude, rel, false) {
		return false
	}
	return len(s.Include) == 0 || anyMatch(s.Include, rel, false)
}

// DirExcluded reports whether a directory is excluded as a whole (so a walk
// need not enter it).
func (s Set) DirExcluded(rel string) bool {
	return anyMatch(s.Exclude, strings.Trim(rel, "/"), true)
}

// anyMatch: does a pattern match rel itself (as a file, or as a directory
// when isDir), or one of the directories above it?
func anyMatch(pats []string, rel string, isDir bool) bool {
	parts := strings.Split(rel, "/")
	for _, p := range pats {
		for i := 1; i <= len(parts); i++ {
			dir := i < len(parts) || isDir
			if Match(p, strings.Join(parts[:i], "/"), dir) {
				return true
			}
		}
	}
	return false
}

// Match reports whether one rsync-style pattern matches the path rel.
func Match(pat, rel string, isDir bool) bool {
	dirOnly := strings.HasSuffix(pat, "/")
	pat = strings.TrimSuffix(pat, "/")
	if dirOnly && !isDir {
		return false
	}
	if strings.HasPrefix(pat, "/") {
		return glob(strings.TrimPrefix(pat, "/"), rel)
	}
	if !strings.Contains(pat, "/") && !strings.Contains(pat, "**") {
		return glob(pat, path.Base(rel))
	}
	// Against the end of the path, starting at a component boundary.
	for {
		if glob(pat, rel) {
			return true
		}
		i := strings.IndexByte(rel, '/')
		if i < 0 {
			return false
		}
		rel = rel[i+1:]
	}
}

// glob matches with *, **, ? and [...]; * and ? never match '/'.
func glob(pat, s string) bool {
	for len(pat) > 0 {
		switch {
		case strings.HasPrefix(pat, "**"):
			rest := strings.TrimLeft(pat, "*")
			// "**/" also matches no directory at all.
			if strings.HasPrefix(rest, "/") && glob(rest[1:], s) {
				return true
			}
			for i := 0; i <= len(s); i++ {
				if glob(rest, s[i:]) {
					return true
				}
			}
			return false
		case pat[0] == '*':
			rest := pat[1:]
			for i := 0; i <= len(s); i++ {
				if glob(rest, s[i:]) {
					return true
				}
				if i < len(s) && s[i] == '/' {
					return false
				}
			}
			return false
		case pat[0] == '?':
			if s == "" || s[0] == '/' {
				return false
			}
			pat, s = pat[1:], s[1:]
		case pat[0] == '[':
			end := strings.IndexByte(pat[1:], ']')
			if end < 0 || s == "" || s[0] == '/' {
				return false
			}
			ok, err := path.Match(pat[:end+2], s[:1])
			if err != nil || !ok {
				return false
			}
			pat, s = pat[end+2:], s[1:]
		case pat[0] == '\\' && len(pat) > 1:
			if s == "" || s[0] != pat[1] {
				return false
			}
			pat, s = pat[2:], s[1:]
		default:
			if s == "" || s[0] != pat[0] {
				return false
			}
			pat, s = pat[1:], s[1:]
		}
	}
	return s == ""
}

// RsyncFilters are the rsync arguments that select the same files as s.
// Excludes come first (the first matching rule wins in rsync, and excludes
// win here), then every directory is entered, then the includes (each also
// covering what is below it), then everything else is excluded; empty
// directories are pruned.
func (s Set) RsyncFilters() []string {
	if s.Empty() {
		return nil
	}
	var args []string
	for _, p := range s.Exclude {
		args = append(args, "--exclude="+p)
	}
	if len(s.Include) == 0 {
		return args
	}
	args = append(args, "--include=*/")
	for _, p := range s.Include {
		args = append(args, "--include="+p)
		base := strings.TrimSuffix(p, "/")
		if !strings.HasSuffix(base, "**") {
			args = append(args, "--include="+base+"/**")
		}
	}
	return append(args, "--exclude=*", "--prune-empty-dirs")
}
