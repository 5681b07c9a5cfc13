// Package ids resolves owner and group names against the restored system's
// account files (ROOT/etc/passwd and ROOT/etc/group), never the live
// system's: a user who only exists on the restored machine gets the uid the
// restored machine gives them.
package ids

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// ErrUnknown means a name is not in the restored system's account files.
var ErrUnknown = errors.New("not in the restored system's accounts")

// Owner is a resolved owner and group.
type Owner struct {
	UID, GID int
}

// Root is what files owned by nobody in particular get.
var Root = Owner{0, 0}

// Resolve turns the profile's owner and group (names or numbers; either may
// be empty) into numbers using root's /etc/passwd and /etc/group. With an
// owner and no group, the group is the owner's primary group. With neither,
// it is root:root.
func Resolve(root, owner, group string) (Owner, error) {
	o := Root
	if owner != "" {
		if n, err := strconv.Atoi(owner); err == nil && n >= 0 {
			o.UID = n
			o.GID = n // a bare uid has no primary group to look up; override with group
			if pw, ok := lookup(filepath.Join(root, "etc/passwd"), 2, owner); ok {
				o.GID = pw
			}
		} else {
			rec, err := record(filepath.Join(root, "etc/passwd"), owner)
			if err != nil {
				return o, fmt.Errorf("owner %q: %w", owner, err)
			}
			if o.UID, err = strconv.Atoi(field(rec, 2)); err != nil {
				return o, fmt.Errorf("owner %q: bad uid in %s", owner, filepath.Join(root, "etc/passwd"))
			}
			if o.GID, err = strconv.Atoi(field(rec, 3)); err != nil {
				return o, fmt.Errorf("owner %q: bad gid in %s", owner, filepath.Join(root, "etc/passwd"))
			}
		}
	}
	if group != "" {
		if n, err := strconv.Atoi(group); err == nil && n >= 0 {
			o.GID = n
		} else {
			rec, err := record(filepath.Join(root, "etc/group"), group)
			if err != nil {
				return o, fmt.Errorf("group %q: %w", group, err)
			}
			if o.GID, err = strconv.Atoi(field(rec, 2)); err != nil {
				return o, fmt.Errorf("group %q: bad gid in %s", group, filepath.Join(root, "etc/group"))
			}
		}
	}
	return o, nil
}

// lookup finds the numeric field idx+1 of the record whose field idx is the
// number s (uid → primary gid).
func lookup(file string, idx int, s string) (int, bool) {
	f, err := os.Open(file)
	if err != nil {
		return 0, false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		parts := strings.Split(sc.Text(), ":")
		if len(parts) > idx+1 && parts[idx] == s {
			n, err := strconv.Atoi(parts[idx+1])
			return n, err == nil
		}
	}
	return 0, false
}

func record(file, name string) ([]string, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, fmt.Errorf("%w: cannot read %s: %v", ErrUnknown, file, err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		parts := strings.Split(sc.Text(), ":")
		if len(parts) >= 4 && parts[0] == name {
			return parts, nil
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", file, err)
	}
	return nil, fmt.Errorf("%w: no such entry in %s", ErrUnknown, file)
}

func field(rec []string, i int) string {
	if i < len(rec) {
		return rec[i]
	}
	return ""
}
