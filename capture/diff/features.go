package diff

import (
	"sort"
	"strings"
)

// Features that a profile leaves implicit: what each mkfs turns on when a
// profile's feature list does not say. A feature list is applied to these
// (name turns a feature on, ^name off), so two lists that give the same set
// mean the same filesystem.
var (
	// ExtDefaults are mke2fs's features per ext type (e2fsprogs 1.47,
	// Debian bookworm's mke2fs.conf).
	ExtDefaults = map[string][]string{
		"ext2": {"ext_attr", "resize_inode", "dir_index", "filetype", "sparse_super", "large_file"},
		"ext3": {"has_journal", "ext_attr", "resize_inode", "dir_index", "filetype", "sparse_super", "large_file"},
		"ext4": {"has_journal", "ext_attr", "resize_inode", "dir_index", "filetype", "sparse_super", "large_file",
			"extent", "huge_file", "flex_bg", "metadata_csum", "64bit", "dir_nlink", "extra_isize"},
	}
	// XFSDefaults are mkfs.xfs's (xfsprogs 6.1).
	XFSDefaults = []string{"crc", "finobt", "sparse", "reflink", "bigtime", "inobtcount", "ftype"}
	// BtrfsDefaults are mkfs.btrfs's (btrfs-progs 5.15 and later).
	BtrfsDefaults = []string{"extref", "skinny-metadata", "no-holes", "free-space-tree"}
)

// FeatureDefaults are the defaults for the settings section kind ("ext",
// "xfs", "btrfs") of a filesystem type.
func FeatureDefaults(kind, fsType string) []string {
	switch kind {
	case "ext":
		return ExtDefaults[fsType]
	case "xfs":
		return XFSDefaults
	case "btrfs":
		return BtrfsDefaults
	}
	return nil
}

// FeatureSet applies a feature list to defaults.
func FeatureSet(defaults, list []string) map[string]bool {
	set := map[string]bool{}
	for _, d := range defaults {
		set[d] = true
	}
	for _, f := range list {
		if n, off := strings.CutPrefix(f, "^"); off {
			delete(set, n)
		} else {
			set[f] = true
		}
	}
	return set
}

// FeatureChanges says which features a change of list turns on and off.
func FeatureChanges(defaults, a, b []string) (on, off []string) {
	x, y := FeatureSet(defaults, a), FeatureSet(defaults, b)
	for k := range y {
		if !x[k] {
			on = append(on, k)
		}
	}
	for k := range x {
		if !y[k] {
			off = append(off, k)
		}
	}
	sort.Strings(on)
	sort.Strings(off)
	return on, off
}

// SameFeatures reports whether two feature lists give the same features.
func SameFeatures(defaults, a, b []string) bool {
	on, off := FeatureChanges(defaults, a, b)
	return len(on) == 0 && len(off) == 0
}
