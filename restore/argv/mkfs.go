package argv

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/stratahq/strata/profile"
)

// XFSMinLog is the smallest internal log mkfs.xfs accepts since xfsprogs
// 5.19; an older capture may name a smaller one.
const XFSMinLog = 64 << 20

// XFSMinSize is the smallest filesystem mkfs.xfs makes since xfsprogs 5.19.
const XFSMinSize = 300 << 20

// BtrfsRuntimeFeatures are the mkfs.btrfs features btrfs-progs before 6.3
// takes with -R instead of -O.
var BtrfsRuntimeFeatures = map[string]bool{"free-space-tree": true, "quota": true}

// Mkfs gives the commands that make f on dev with its UUID: mkfs, then
// tune2fs for what mke2fs cannot set exactly. extra are further btrfs
// devices. notes explain settings adjusted to what the tools accept.
func Mkfs(f *profile.Filesystem, dev, uuid string, extra []string) (cmds [][]string, notes []string) {
	switch f.Type {
	case "ext2", "ext3", "ext4":
		return mkext(f, dev, uuid), nil
	case "xfs":
		return mkxfs(f, dev, uuid)
	case "vfat":
		a := []string{"mkfs.fat"}
		if o := f.VFAT; o != nil {
			if o.FATSize != 0 {
				a = append(a, "-F", strconv.Itoa(o.FATSize))
			}
			if o.SectorsPerCluster != 0 {
				a = append(a, "-s", strconv.Itoa(o.SectorsPerCluster))
			}
		}
		if uuid != "" {
			a = append(a, "-i", strings.ReplaceAll(uuid, "-", "")) // mkfs.fat takes the volume ID as 8 hex digits
		}
		if f.Label != "" {
			a = append(a, "-n", f.Label)
		}
		return [][]string{append(a, dev)}, nil
	case "btrfs":
		a := []string{"mkfs.btrfs", "--force"}
		if o := f.Btrfs; o != nil {
			if o.NodeSize != 0 {
				a = append(a, "--nodesize", strconv.Itoa(o.NodeSize))
			}
			if o.SectorSize != 0 {
				a = append(a, "--sectorsize", strconv.Itoa(o.SectorSize))
			}
			var feat, rt []string
			for _, x := range o.Features {
				if BtrfsRuntimeFeatures[strings.TrimPrefix(x, "^")] {
					rt = append(rt, x)
				} else {
					feat = append(feat, x)
				}
			}
			if len(feat) > 0 {
				a = append(a, "--features", strings.Join(feat, ","))
			}
			if len(rt) > 0 {
				a = append(a, "--runtime-features", strings.Join(rt, ","))
			}
			if o.DataProfile != "" {
				a = append(a, "--data", o.DataProfile)
			}
			if o.MetadataProfile != "" {
				a = append(a, "--metadata", o.MetadataProfile)
			}
		}
		if uuid != "" {
			a = append(a, "--uuid", uuid)
		}
		if f.Label != "" {
			a = append(a, "--label", f.Label)
		}
		return [][]string{append(append(a, dev), extra...)}, nil
	case "swap":
		a := []string{"mkswap"}
		if uuid != "" {
			a = append(a, "--uuid", uuid)
		}
		if f.Label != "" {
			a = append(a, "--label", f.Label)
		}
		return [][]string{append(a, dev)}, nil
	}
	return nil, []string{fmt.Sprintf("unknown filesystem type %q", f.Type)}
}

func mkext(f *profile.Filesystem, dev, uuid string) [][]string {
	a := []string{"mke2fs", "-F", "-t", f.Type}
	var tune [][]string
	if o := f.Ext; o != nil {
		if o.BlockSize != 0 {
			a = append(a, "-b", strconv.Itoa(o.BlockSize))
		}
		if o.InodeSize != 0 {
			a = append(a, "-I", strconv.Itoa(o.InodeSize))
		}
		if o.InodeRatio != 0 {
			a = append(a, "-i", strconv.Itoa(o.InodeRatio))
		}
		if o.Inodes != 0 {
			a = append(a, "-N", strconv.FormatInt(o.Inodes, 10))
		}
		if o.ReservedPercent != nil {
			a = append(a, "-m", strconv.FormatFloat(*o.ReservedPercent, 'f', -1, 64))
		}
		if len(o.Features) > 0 {
			a = append(a, "-O", strings.Join(o.Features, ","))
		}
		var ext []string
		if o.Stride != 0 {
			ext = append(ext, fmt.Sprintf("stride=%d", o.Stride))
		}
		if o.StripeWidth != 0 {
			ext = append(ext, fmt.Sprintf("stripe_width=%d", o.StripeWidth))
		}
		if len(ext) > 0 {
			a = append(a, "-E", strings.Join(ext, ","))
		}
		if o.Errors != "" {
			a = append(a, "-e", o.Errors)
		}
		// mke2fs -m works in whole blocks of a percentage; an exact count
		// (what a capture reads from the superblock) needs tune2fs -r.
		if o.ReservedBlocks != 0 {
			tune = append(tune, []string{"tune2fs", "-r", strconv.FormatInt(o.ReservedBlocks, 10), dev})
		}
		if o.MountDefaults != "" {
			tune = append(tune, []string{"tune2fs", "-o", mountDefaults(o.MountDefaults), dev})
		}
	}
	if uuid != "" {
		a = append(a, "-U", uuid)
	}
	if f.Label != "" {
		a = append(a, "-L", f.Label)
	}
	return append([][]string{append(a, dev)}, tune...)
}

// mountDefaults makes tune2fs -o set exactly the wanted default mount
// options: mke2fs.conf turns on user_xattr and acl, so those are cleared
// when not wanted.
func mountDefaults(want string) string {
	set := map[string]bool{}
	var out []string
	for _, o := range strings.Split(want, ",") {
		if o != "" {
			set[strings.TrimPrefix(o, "^")] = true
			out = append(out, o)
		}
	}
	for _, d := range []string{"user_xattr", "acl"} {
		if !set[d] {
			out = append(out, "^"+d)
		}
	}
	return strings.Join(out, ",")
}

// xfsFeature maps a profile feature to the mkfs.xfs option group it is in.
var xfsFeature = map[string]string{
	"crc": "-m", "finobt": "-m", "rmapbt": "-m", "reflink": "-m", "bigtime": "-m", "inobtcount": "-m",
	"sparse": "-i", "ftype": "-n",
}

func mkxfs(f *profile.Filesystem, dev, uuid string) ([][]string, []string) {
	var notes []string
	groups := map[string][]string{}
	add := func(g, kv string) { groups[g] = append(groups[g], kv) }
	if o := f.XFS; o != nil {
		if o.BlockSize != 0 {
			add("-b", fmt.Sprintf("size=%d", o.BlockSize))
		}
		if o.SectorSize != 0 {
			add("-s", fmt.Sprintf("size=%d", o.SectorSize))
		}
		if o.InodeSize != 0 {
			add("-i", fmt.Sprintf("size=%d", o.InodeSize))
		}
		if o.AGCount != 0 {
			add("-d", fmt.Sprintf("agcount=%d", o.AGCount))
		}
		if o.LogSize.IsAbsolute() {
			n := o.LogSize.Bytes
			if n < XFSMinLog {
				notes = append(notes, fmt.Sprintf("xfs log_size %s is below the %s mkfs.xfs accepts since xfsprogs 5.19: using %s",
					o.LogSize, profile.FormatBytes(XFSMinLog), profile.FormatBytes(XFSMinLog)))
				n = XFSMinLog
			}
			add("-l", fmt.Sprintf("size=%d", n))
		}
		for _, x := range o.Features {
			name, v := strings.TrimPrefix(x, "^"), "1"
			if strings.HasPrefix(x, "^") {
				v = "0"
			}
			add(xfsFeature[name], name+"="+v)
		}
	}
	if uuid != "" {
		add("-m", "uuid="+uuid)
	}
	a := []string{"mkfs.xfs", "-f"}
	for _, g := range []string{"-b", "-s", "-i", "-d", "-l", "-n", "-m"} {
		if len(groups[g]) > 0 {
			a = append(a, g, strings.Join(groups[g], ","))
		}
	}
	if f.Label != "" {
		a = append(a, "-L", f.Label)
	}
	return [][]string{append(a, dev)}, notes
}

// Btrfs subvolume commands, on a mount of the filesystem's top level.
func BtrfsSubvolumeCreate(path string) []string {
	return []string{"btrfs", "subvolume", "create", path}
}

// BtrfsSetDefault makes path the subvolume mounted without subvol=.
func BtrfsSetDefault(path string) []string {
	return []string{"btrfs", "subvolume", "set-default", path}
}

// Tune2fsList prints an ext superblock, for checks and tests.
func Tune2fsList(dev string) []string { return []string{"tune2fs", "-l", dev} }
