// Package place puts fetched trees where they belong inside the restored
// root: it resolves destinations the way the restored system will see them
// (symlinks, even absolute ones, are followed inside the root, never out of
// it), and moves a staged tree into place by rename, so the destination
// never holds a half-written file under its final name.
package place

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// StagingName is the directory inside a destination where its content is
// staged before it is moved into place. A leftover one is from a run that
// stopped; the next run removes or reuses it.
const StagingName = ".strata-staging"

// Owner is a numeric owner and group; nil means "leave as created".
type Owner struct{ UID, GID int }

// InRoot returns the host path of p (absolute, as seen by the restored
// system) inside root, creating missing directories (mode 0755, owned by
// mkOwner when given). Symlinks on the way are resolved as the restored
// system would (an absolute link is relative to root), and never lead out
// of root.
func InRoot(root, p string, mkOwner *Owner) (string, error) {
	abs, err := filepath.Abs(root)
	if err != nil {
		return "", fmt.Errorf("root %s: %w", root, err)
	}
	realRoot, err := filepath.EvalSymlinks(abs)
	if err != nil {
		return "", fmt.Errorf("root %s: %w", root, err)
	}
	rootFD, err := unix.Open(realRoot, unix.O_DIRECTORY|unix.O_PATH|unix.O_CLOEXEC, 0)
	if err != nil {
		return "", fmt.Errorf("open root %s: %w", realRoot, err)
	}
	defer unix.Close(rootFD)
	how := &unix.OpenHow{Flags: unix.O_PATH | unix.O_DIRECTORY | unix.O_CLOEXEC, Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS}
	rel := strings.Trim(filepath.Clean("/"+p), "/")
	fd, err := unix.Dup(rootFD)
	if err != nil {
		return "", err
	}
	if rel != "" {
		cur := ""
		for _, c := range strings.Split(rel, "/") {
			next := filepath.Join(cur, c)
			nfd, err := unix.Openat2(rootFD, next, how)
			if errors.Is(err, unix.ENOENT) {
				pfd, perr := unix.Openat2(rootFD, orDot(cur), &unix.OpenHow{Flags: unix.O_DIRECTORY | unix.O_RDONLY | unix.O_CLOEXEC, Resolve: how.Resolve})
				if perr != nil {
					unix.Close(fd)
					return "", fmt.Errorf("%s: open %s: %w", p, cur, perr)
				}
				if err := unix.Mkdirat(pfd, c, 0o755); err != nil && !errors.Is(err, unix.EEXIST) {
					unix.Close(pfd)
					unix.Close(fd)
					return "", fmt.Errorf("%s: mkdir %s: %w", p, next, err)
				}
				if mkOwner != nil {
					_ = unix.Fchownat(pfd, c, mkOwner.UID, mkOwner.GID, unix.AT_SYMLINK_NOFOLLOW)
				}
				unix.Close(pfd)
				nfd, err = unix.Openat2(rootFD, next, how)
			}
			if err != nil {
				unix.Close(fd)
				return "", fmt.Errorf("%s: %s is not a directory inside the root: %w", p, next, err)
			}
			unix.Close(fd)
			fd = nfd
			cur = next
		}
	}
	defer unix.Close(fd)
	host, err := os.Readlink(fmt.Sprintf("/proc/self/fd/%d", fd))
	if err != nil {
		return "", fmt.Errorf("%s: %w", p, err)
	}
	if host != realRoot && !strings.HasPrefix(host, strings.TrimSuffix(realRoot, "/")+"/") {
		return "", fmt.Errorf("%s resolves to %s, outside the root %s", p, host, realRoot)
	}
	return host, nil
}

func orDot(s string) string {
	if s == "" {
		return "."
	}
	return s
}

// MergeOptions say how a staged tree meets what is already there.
type MergeOptions struct {
	// Replace removes what the destination holds and the stage does not
	// (except Keep); otherwise other files stay (overlay).
	Replace bool
	// Keep are top-level names Replace leaves alone (StagingName always).
	Keep []string
	// Whole are top-level names replaced as a whole rather than merged
	// (a repository's .git or .svn).
	Whole []string
	// Owner, when set, is applied to destination directories the stage
	// merges into (the stage's own entries carry their owners already).
	Owner *Owner
}

// Merge moves everything in stage into dest by rename (stage and dest on
// one filesystem); what the stage has wins. Symlinks in dest are never
// followed: a symlink where the stage has a directory is replaced. The
// emptied stage directories are removed.
func Merge(stage, dest string, opt MergeOptions) error {
	if opt.Replace {
		keep := map[string]bool{StagingName: true, "lost+found": true}
		for _, k := range opt.Keep {
			keep[k] = true
		}
		ents, err := os.ReadDir(dest)
		if err != nil {
			return fmt.Errorf("replace %s: %w", dest, err)
		}
		for _, e := range ents {
			if keep[e.Name()] {
				continue
			}
			st, err := os.Lstat(filepath.Join(stage, e.Name()))
			switch {
			case err != nil:
				if err := os.RemoveAll(filepath.Join(dest, e.Name())); err != nil {
					return fmt.Errorf("replace %s: %w", dest, err)
				}
			case st.IsDir() && e.IsDir() && !contains(opt.Whole, e.Name()):
				if err := prune(filepath.Join(stage, e.Name()), filepath.Join(dest, e.Name())); err != nil {
					return err
				}
			}
			// Otherwise the move below replaces it.
		}
	}
	return merge(stage, dest, opt, true)
}

// prune removes what dest has below a directory and stage does not.
func prune(stage, dest string) error {
	ents, err := os.ReadDir(dest)
	if err != nil {
		return fmt.Errorf("replace %s: %w", dest, err)
	}
	for _, e := range ents {
		st, err := os.Lstat(filepath.Join(stage, e.Name()))
		switch {
		case err != nil:
			if err := os.RemoveAll(filepath.Join(dest, e.Name())); err != nil {
				return fmt.Errorf("replace %s: %w", dest, err)
			}
		case st.IsDir() && e.IsDir():
			if err := prune(filepath.Join(stage, e.Name()), filepath.Join(dest, e.Name())); err != nil {
				return err
			}
		}
	}
	return nil
}

func merge(stage, dest string, opt MergeOptions, top bool) error {
	ents, err := os.ReadDir(stage)
	if err != nil {
		return fmt.Errorf("move into %s: %w", dest, err)
	}
	for _, e := range ents {
		s, d := filepath.Join(stage, e.Name()), filepath.Join(dest, e.Name())
		if top && e.Name() == StagingName {
			continue
		}
		dst, derr := os.Lstat(d)
		switch {
		case errors.Is(derr, fs.ErrNotExist):
		case derr != nil:
			return fmt.Errorf("move %s: %w", d, derr)
		case e.IsDir() && dst.IsDir() && !(top && contains(opt.Whole, e.Name())):
			if err := merge(s, d, opt, false); err != nil {
				return err
			}
			if opt.Owner != nil {
				if err := os.Lchown(d, opt.Owner.UID, opt.Owner.GID); err != nil {
					return fmt.Errorf("chown %s: %w", d, err)
				}
			}
			if err := os.Remove(s); err != nil {
				return fmt.Errorf("move into %s: %w", d, err)
			}
			continue
		case dst.IsDir() || e.IsDir():
			// A directory meets a non-directory (or a whole replacement):
			// the stage's entry wins.
			if err := os.RemoveAll(d); err != nil {
				return fmt.Errorf("replace %s: %w", d, err)
			}
		}
		if err := os.Rename(s, d); err != nil {
			return fmt.Errorf("move %s into place: %w", d, err)
		}
	}
	return nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// File moves one staged file to dest/rel, creating the directories on the
// way (owned by o when given), replacing a symlink or a file that is in
// the way, never following one.
func File(staged, dest, rel string, o *Owner) error {
	if err := Dirs(dest, filepathDir(rel), o); err != nil {
		return err
	}
	d := filepath.Join(dest, rel)
	if st, err := os.Lstat(d); err == nil && st.IsDir() {
		if err := os.RemoveAll(d); err != nil {
			return fmt.Errorf("replace %s: %w", d, err)
		}
	}
	if err := os.Rename(staged, d); err != nil {
		return fmt.Errorf("move %s into place: %w", d, err)
	}
	return nil
}

func filepathDir(rel string) string {
	d := filepath.Dir(rel)
	if d == "." {
		return ""
	}
	return d
}

// Dirs makes the directories of rel below dest, one at a time, replacing
// anything that is not a directory (a symlink is never followed).
func Dirs(dest, rel string, o *Owner) error {
	cur := dest
	if rel == "" {
		return nil
	}
	for _, c := range strings.Split(rel, "/") {
		cur = filepath.Join(cur, c)
		st, err := os.Lstat(cur)
		if err == nil && st.IsDir() {
			continue
		}
		if err == nil {
			if err := os.Remove(cur); err != nil {
				return fmt.Errorf("replace %s with a directory: %w", cur, err)
			}
		}
		if err := os.Mkdir(cur, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("mkdir %s: %w", cur, err)
		}
		if o != nil {
			if err := os.Lchown(cur, o.UID, o.GID); err != nil {
				return fmt.Errorf("chown %s: %w", cur, err)
			}
		}
	}
	return nil
}

// Chown gives everything below and including dir to o, keeping set-id bits
// (which chown clears) and never following symlinks.
func Chown(dir string, o Owner) error {
	return filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return ChownOne(p, o)
	})
}

// ChownOne gives one entry to o (not following a symlink), restoring set-id
// bits the kernel clears on chown.
func ChownOne(p string, o Owner) error {
	st, err := os.Lstat(p)
	if err != nil {
		return err
	}
	if s, ok := st.Sys().(*syscall.Stat_t); ok && int(s.Uid) == o.UID && int(s.Gid) == o.GID {
		return nil // already owned so (what root creates for root)
	}
	if err := os.Lchown(p, o.UID, o.GID); err != nil {
		return fmt.Errorf("chown %s: %w", p, err)
	}
	if st.Mode()&(fs.ModeSetuid|fs.ModeSetgid) != 0 && st.Mode().IsRegular() {
		if err := os.Chmod(p, st.Mode()); err != nil {
			return fmt.Errorf("chmod %s: %w", p, err)
		}
	}
	return nil
}
