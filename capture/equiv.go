package capture

import (
	"strings"

	"github.com/stratahq/strata/profile"
)

// Defaults that a profile leaves implicit, as restore's tools apply them.
// Merge keeps the user's way of writing a setting when it means the same as
// what was captured; these say what an omitted setting means.

// mountDefaultsSet is the set of default mount options an ext mount_defaults
// value leaves in the superblock (mke2fs.conf sets user_xattr and acl).
func mountDefaultsSet(v string) map[string]bool {
	set := map[string]bool{"user_xattr": true, "acl": true}
	if v == "" {
		return set
	}
	explicit := map[string]bool{}
	for _, o := range strings.Split(v, ",") {
		n, off := strings.CutPrefix(strings.TrimSpace(o), "^")
		if n == "" {
			continue
		}
		explicit[n] = true
		if off {
			delete(set, n)
		} else {
			set[n] = true
		}
	}
	// tune2fs -o with a list sets exactly that list (restore clears the
	// mke2fs.conf ones not named).
	for _, d := range []string{"user_xattr", "acl"} {
		if !explicit[d] {
			delete(set, d)
		}
	}
	return set
}

func sameSet(a, b map[string]bool) bool {
	if len(a) != len(b) {
		return false
	}
	for k := range a {
		if !b[k] {
			return false
		}
	}
	return true
}

// sameWords compares space- or comma-separated lists as sets.
func sameWords(a, b, sep string) bool {
	split := func(s string) map[string]bool {
		m := map[string]bool{}
		for _, w := range strings.Split(s, sep) {
			if w = strings.TrimSpace(w); w != "" {
				m[w] = true
			}
		}
		return m
	}
	return sameSet(split(a), split(b))
}

// mountOptions is an fstab options value with its default spelled out.
func mountOptions(o string) string {
	if o == "" {
		return "defaults"
	}
	return o
}

// defaultPass is the fstab pass a profile mount gets when it says none.
func defaultPass(fsType, path string) int {
	switch {
	case path == "/":
		return 1
	case strings.HasPrefix(fsType, "ext"):
		return 2
	}
	return 0
}

func sameMount(fsType string, a, b *profile.Mount) bool {
	if a == nil || b == nil {
		return a == b
	}
	pa, pb := a.Pass, b.Pass
	if pa == 0 {
		pa = defaultPass(fsType, a.Path)
	}
	if pb == 0 {
		pb = defaultPass(fsType, b.Path)
	}
	return a.Path == b.Path && sameWords(mountOptions(a.Options), mountOptions(b.Options), ",") && a.Dump == b.Dump && pa == pb
}
