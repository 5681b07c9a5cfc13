package capture

import (
	"fmt"
	"math"
	"sort"
	"strings"

	"github.com/stratahq/strata/capture/diff"
	"github.com/stratahq/strata/capture/parse"
	"github.com/stratahq/strata/profile"
)

var fsTypes = map[string]bool{"ext2": true, "ext3": true, "ext4": true, "xfs": true, "vfat": true, "btrfs": true, "swap": true}

// Storage signatures: the stack above them is captured elsewhere.
var stackTypes = map[string]bool{"crypto_LUKS": true, "LVM2_member": true, "linux_raid_member": true}

// ExtDefaultFeatures are the features mke2fs turns on for ext4 by default in
// any e2fsprogs since 1.43 (mke2fs.conf), plus orphan_file (1.47.1). A
// captured filesystem lists every one of them it lacks as ^name, so restore
// gets the same feature set from any mke2fs.
var ExtDefaultFeatures = []string{"has_journal", "ext_attr", "resize_inode", "dir_index", "filetype", "sparse_super",
	"large_file", "extent", "huge_file", "flex_bg", "metadata_csum", "64bit", "dir_nlink", "extra_isize", "orphan_file"}

var btrfsFlags = map[string]string{"EXTENDED_IREF": "extref", "SKINNY_METADATA": "skinny-metadata", "NO_HOLES": "no-holes",
	"RAID56": "raid56", "RAID1C34": "raid1c34", "ZONED": "zoned", "BLOCK_GROUP_TREE": "block-group-tree",
	"FREE_SPACE_TREE": "free-space-tree", "MIXED_GROUPS": "mixed-bg"}

// XFSFeatures are the mkfs.xfs settings a profile knows, with the key
// xfs_db's info prints them under.
var XFSFeatures = []struct{ Name, Key string }{
	{"crc", "meta-data.crc"}, {"finobt", "meta-data.finobt"}, {"sparse", "meta-data.sparse"}, {"rmapbt", "meta-data.rmapbt"},
	{"reflink", "meta-data.reflink"}, {"bigtime", "meta-data.bigtime"}, {"inobtcount", "meta-data.inobtcount"}, {"ftype", "naming.ftype"},
}

// fsDevices lists the captured devices that carry a filesystem or swap, in
// the order of the device tree.
func (b *builder) fsDevices() []string {
	var out []string
	seen := map[string]bool{}
	parse.Walk(b.f.Blocks, func(d, _ *parse.BlockDevice) {
		if seen[d.Path] {
			return
		}
		seen[d.Path] = true
		out = append(out, d.Path)
	})
	return out
}

func (b *builder) filesystems() {
	seenBtrfs := map[string]bool{}
	for _, dev := range b.fsDevices() {
		kv := b.f.Probe[dev]
		typ := kv["TYPE"]
		ref := b.ref(dev)
		if ref == "" {
			continue // an LV's hidden parts, a skipped device, a thin pool
		}
		bd := b.byPath[dev]
		if why, cannot := b.f.Unreadable[dev]; cannot && typ == "" && bd != nil && len(bd.Mountpoints) > 0 {
			typ = b.mountedType(dev)
			if typ != "" {
				b.note("", "%s could not be read (%s): its %s filesystem is captured from the mount table only (no UUID or settings)", dev, why, typ)
			}
		}
		if typ == "" || stackTypes[typ] {
			continue
		}
		if !fsTypes[typ] {
			b.note("", "%s holds %s, which strata does not create: not captured", dev, typ)
			continue
		}
		if typ == "btrfs" {
			if seenBtrfs[kv["UUID"]] {
				continue
			}
			seenBtrfs[kv["UUID"]] = true
		}
		fs := profile.Filesystem{Device: ref, Type: typ, Label: kv["LABEL"], UUID: kv["UUID"]}
		if typ == "vfat" {
			fs.UUID = strings.ToUpper(fs.UUID)
			if fs.Label == "" {
				fs.Label = kv["LABEL_FATBOOT"]
			}
			if strings.EqualFold(fs.Label, "NO NAME") {
				fs.Label = ""
			}
		}
		i := len(b.p.Filesystems)
		fp := fmt.Sprintf("filesystems[%d]", i)
		switch typ {
		case "ext2", "ext3", "ext4":
			b.ext(&fs, fp, dev)
		case "xfs":
			b.xfs(&fs, fp, dev)
		case "vfat":
			if x := b.f.FAT[dev]; x != nil {
				fs.VFAT = &profile.VFATOptions{FATSize: int(x.FATBits), SectorsPerCluster: int(x.SectorsPerCluster())}
			} else if v := strings.TrimPrefix(kv["VERSION"], "FAT"); v == "12" || v == "16" || v == "32" {
				fs.VFAT = &profile.VFATOptions{FATSize: map[string]int{"12": 12, "16": 16, "32": 32}[v]}
			}
		case "btrfs":
			b.btrfs(&fs, fp, kv["UUID"])
		case "swap":
			fs.Swap = &profile.SwapOptions{}
		}
		b.fsDone[dev] = true
		b.p.Filesystems = append(b.p.Filesystems, fs)
		b.mounts(i, dev)
		if s := b.p.Filesystems[i].Swap; s != nil && *s == (profile.SwapOptions{}) {
			b.p.Filesystems[i].Swap = nil
		}
	}
}

func (b *builder) mountedType(dev string) string {
	for _, m := range b.f.Mounts {
		if b.canonical(m.Source) == dev {
			return m.FSType
		}
	}
	return ""
}

func (b *builder) ext(fs *profile.Filesystem, fp, dev string) {
	s := b.f.Ext[dev]
	if s == nil {
		b.note(fp, "the superblock could not be read: ext settings not captured")
		return
	}
	e := &profile.ExtOptions{BlockSize: int(s.BlockSize), InodeSize: int(s.InodeSize)}
	if s.InodeCount > 0 {
		e.InodeRatio = inodeRatio(s.BlockCount*s.BlockSize, s.InodeCount)
	}
	if s.ReservedBlocks > 0 {
		e.ReservedBlocks = s.ReservedBlocks
	} else {
		zero := 0.0
		e.ReservedPercent = &zero
	}
	e.Features = ExtFeatureList(s.Features)
	if len(s.MountDefaults) > 0 {
		e.MountDefaults = strings.Join(s.MountDefaults, ",")
	} else {
		e.MountDefaults = "^user_xattr,^acl" // mke2fs.conf sets them; this one has none
	}
	if s.Errors != "continue" {
		e.Errors = s.Errors
	}
	e.Stride, e.StripeWidth = int(s.RAIDStride), int(s.RAIDStripeWidth)
	fs.Ext = e
	if s.JournalDevice != "" {
		b.note(fp, "the journal is on an external device (%s): restore makes an internal one", s.JournalDevice)
	}
	if s.ClusterSize != 0 && s.ClusterSize != s.BlockSize {
		b.note(fp, "bigalloc cluster size %d is not captured", s.ClusterSize)
	}
	if s.State != "" && s.State != "clean" {
		b.note(fp, "filesystem state: %s", s.State)
	}
}

// ExtFeatureList is the -O list that recreates exactly the given features
// with any mke2fs: every feature that is on, then ^name for each default
// that is off.
func ExtFeatureList(on []string) []string {
	set := map[string]bool{}
	out := append([]string(nil), on...)
	for _, f := range on {
		set[f] = true
	}
	for _, d := range ExtDefaultFeatures {
		if !set[d] {
			out = append(out, "^"+d)
		}
	}
	return out
}

// inodeRatio is the bytes-per-inode of a filesystem: a power of two when it
// is within 5% of one (mke2fs rounds the inode count up to fill the inode
// tables), else the exact ratio.
func inodeRatio(bytes, inodes int64) int {
	r := float64(bytes) / float64(inodes)
	p := math.Pow(2, math.Round(math.Log2(r)))
	if math.Abs(r-p)/p < 0.05 {
		return int(p)
	}
	return int(math.Round(r))
}

func (b *builder) xfs(fs *profile.Filesystem, fp, dev string) {
	x := b.f.XFS[dev]
	if x == nil {
		b.note(fp, "the superblock could not be read: xfs settings not captured")
		return
	}
	o := &profile.XFSOptions{BlockSize: int(x.Int("data.bsize")), SectorSize: int(x.Int("meta-data.sectsz")),
		InodeSize: int(x.Int("meta-data.isize")), AGCount: int(x.Int("meta-data.agcount"))}
	if x.External {
		b.note(fp, "the log is on an external device (%s): restore makes an internal one", x.Values["log"])
	} else if n := x.Int("log.blocks") * x.Int("log.bsize"); n > 0 {
		o.LogSize = profile.Bytes(n)
	}
	for _, ft := range XFSFeatures {
		on, ok := x.Flag(ft.Key)
		switch {
		case !ok:
		case on:
			o.Features = append(o.Features, ft.Name)
		default:
			o.Features = append(o.Features, "^"+ft.Name)
		}
	}
	if on, _ := x.Flag("meta-data.nrext64"); on {
		b.note(fp, "nrext64 (large extent counters) is on: not captured, restore uses mkfs.xfs's default")
	}
	if rt := x.Values["realtime"]; rt != "" && rt != "none" {
		b.note(fp, "realtime device %s is not captured", rt)
	}
	if x.Int("data.sunit") != 0 {
		b.note(fp, "stripe unit %s / width %s blocks is not captured", x.Values["data.sunit"], x.Values["data.swidth"])
	}
	if fs.UUID == "" {
		fs.UUID = x.UUID
	}
	fs.XFS = o
}

func (b *builder) btrfs(fs *profile.Filesystem, fp, uuid string) {
	bf := b.f.Btrfs[uuid]
	if bf == nil || bf.Super == nil {
		b.note(fp, "the superblock could not be read: btrfs settings not captured")
		return
	}
	s := bf.Super
	o := &profile.BtrfsOptions{NodeSize: int(s.NodeSize), SectorSize: int(s.SectorSize)}
	on := map[string]bool{}
	for flag, name := range btrfsFlags {
		if s.Has(flag) {
			on[name] = true
		}
	}
	if bf.Tree != nil && bf.Tree.Quota {
		on["quota"] = true
	}
	for _, f := range sortedKeys(on) {
		o.Features = append(o.Features, f)
	}
	for _, d := range diff.BtrfsDefaults {
		if !on[d] {
			o.Features = append(o.Features, "^"+d)
		}
	}
	if bf.Profiles != nil {
		o.DataProfile, o.MetadataProfile = bf.Profiles.Data, bf.Profiles.Metadata
		if bf.Profiles.Mixed {
			o.DataProfile = ""
		}
	} else {
		b.note(fp, "block group profiles could not be read: data and metadata profiles not captured")
	}
	// The device with devid 1, the first mkfs.btrfs was given, is the
	// profile's device (the first one of the filesystem seen on the way may
	// be another); the others follow in devid order.
	if len(bf.Devices) > 0 {
		if r := b.ref(bf.Devices[0]); r != "" {
			fs.Device = r
		}
	}
	for _, d := range bf.Devices {
		switch r := b.ref(d); {
		case r == fs.Device:
		case r != "":
			o.Devices = append(o.Devices, r)
		default:
			b.note(fp, "device %s of this filesystem is not part of this capture", d)
		}
	}
	if int(s.NumDevices) != len(bf.Devices) {
		b.note(fp, "the filesystem has %d devices, %d were found", s.NumDevices, len(bf.Devices))
	}
	// Subvolumes: full paths from `btrfs subvolume list` when mounted, else
	// what the root tree alone tells.
	paths := map[int64]string{}
	var snaps []string
	unresolved := 0
	if bf.Tree != nil {
		paths = bf.Tree.Paths()
		for _, r := range bf.Tree.Roots {
			if _, ok := paths[r.ID]; !ok {
				unresolved++
			}
		}
	}
	if len(bf.Subvols) > 0 {
		unresolved = 0
		for _, sv := range bf.Subvols {
			paths[sv.ID] = sv.Path
		}
	}
	snapshot := map[int64]bool{}
	if bf.Tree != nil {
		for _, r := range bf.Tree.Roots {
			if r.ParentUUID != "" {
				snapshot[r.ID] = true
				if p, ok := paths[r.ID]; ok {
					snaps = append(snaps, p)
				}
			}
		}
	}
	var ids []int64
	for id := range paths {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	for _, id := range ids {
		if !snapshot[id] {
			o.Subvolumes = append(o.Subvolumes, profile.Subvolume{Path: paths[id]})
		}
	}
	if bf.Tree == nil && len(bf.Subvols) == 0 {
		b.note(fp, "the subvolumes could not be read")
	}
	if unresolved > 0 {
		b.note(fp, "%d subvolume(s) inside ordinary directories could not be placed without mounting the filesystem: not captured (capture it while mounted)", unresolved)
	}
	if len(snaps) > 0 {
		b.note(fp, "snapshots are not captured: %s", strings.Join(snaps, ", "))
	}
	if bf.Tree != nil && bf.Tree.DefaultID != 5 {
		if p, ok := paths[bf.Tree.DefaultID]; ok && !snapshot[bf.Tree.DefaultID] {
			o.DefaultSubvolume = p
		} else {
			b.note(fp, "the default subvolume (id %d) is not captured", bf.Tree.DefaultID)
		}
	}
	fs.Btrfs = o
}

// ---- mounts ----

// mounts attaches the fstab entries of device dev to filesystems[i].
func (b *builder) mounts(i int, dev string) {
	fs := &b.p.Filesystems[i]
	fp := fmt.Sprintf("filesystems[%d]", i)
	found := false
	for j, e := range b.f.Fstab {
		d := b.resolve(e.Spec)
		if d == "" || d != dev && !(fs.Type == "btrfs" && b.f.Probe[d]["UUID"] == fs.UUID) {
			continue
		}
		found = true
		b.fstabUsed(j)
		if fs.Type == "swap" || e.VfsType == "swap" {
			fs.Swap.Options = swapOptions(e.Options)
			continue
		}
		m := &profile.Mount{Path: e.File, Dump: e.Freq}
		opts, subvol := splitSubvol(e.Options)
		if opts != "defaults" {
			m.Options = opts
		}
		def := 0
		switch {
		case e.File == "/":
			def = 1
		case strings.HasPrefix(fs.Type, "ext"):
			def = 2
		}
		switch {
		case e.Passno == def:
		case e.Passno == 0:
			b.note(fp, "fstab pass 0 for %s cannot be written (the profile's default is %d): restore writes %d", e.File, def, def)
		default:
			m.Pass = e.Passno
		}
		if e.Passno == def && def != 0 {
			m.Pass = e.Passno // explicit, as people write it
		}
		if fs.Type == "btrfs" && fs.Btrfs != nil && subvol != "" && subvol != "/" {
			placed := false
			for k := range fs.Btrfs.Subvolumes {
				if fs.Btrfs.Subvolumes[k].Path == subvol {
					fs.Btrfs.Subvolumes[k].Mount = m
					placed = true
				}
			}
			if !placed {
				b.note(fp, "fstab mounts subvolume %s at %s, which is not among the captured subvolumes", subvol, e.File)
			}
			continue
		}
		if fs.Mount != nil {
			b.note(fp, "also mounted at %s in fstab: only %s is captured", e.File, fs.Mount.Path)
			continue
		}
		fs.Mount = m
	}
	if found || fs.Type == "swap" {
		if fs.Type == "swap" {
			b.swapResume(fs, dev)
		}
		return
	}
	// Not in fstab: a running host's root filesystem still needs its mount.
	for _, mi := range b.f.Mounts {
		if mi.MountPoint == "/" && b.canonical(mi.Source) == dev && b.f.Root == "/" && len(b.f.Only) == 0 {
			fs.Mount = &profile.Mount{Path: "/"}
			b.note(fp, "/etc/fstab has no entry for /: the mount is taken from the running system (options %s not kept)", mi.Options)
		}
	}
}

// swapOptions drops what swap entries have anyway (sw, defaults) from fstab
// options: the profile's swap options are what comes on top.
func swapOptions(o string) string {
	var keep []string
	for _, x := range strings.Split(o, ",") {
		if x != "sw" && x != "defaults" && x != "" {
			keep = append(keep, x)
		}
	}
	return strings.Join(keep, ",")
}

// splitSubvol takes subvol= and subvolid= out of btrfs mount options.
func splitSubvol(opts string) (rest, subvol string) {
	var keep []string
	for _, o := range strings.Split(opts, ",") {
		switch {
		case strings.HasPrefix(o, "subvol="):
			subvol = strings.TrimPrefix(strings.TrimPrefix(o, "subvol="), "/")
			if subvol == "" {
				subvol = "/"
			}
		case strings.HasPrefix(o, "subvolid="):
		default:
			keep = append(keep, o)
		}
	}
	if len(keep) == 0 {
		return "defaults", subvol
	}
	return strings.Join(keep, ","), subvol
}

func (b *builder) swapResume(fs *profile.Filesystem, dev string) {
	for _, spec := range []string{b.f.Resume, cmdlineValue(b.f.Cmdline, "resume")} {
		if spec != "" && spec != "none" && b.resolve(spec) == dev {
			fs.Swap.Resume = true
		}
	}
}

func cmdlineValue(cmdline, key string) string {
	for _, w := range parse.Cmdline(cmdline) {
		if v, ok := strings.CutPrefix(w, key+"="); ok {
			return strings.Trim(v, `"`)
		}
	}
	return ""
}

func (b *builder) fstabUsed(j int) {
	if b.fsDone == nil {
		return
	}
	b.fsDone[fmt.Sprintf("fstab:%d", j)] = true
}

// unmatchedMounts says which fstab entries the profile does not hold.
func (b *builder) unmatchedMounts() {
	if len(b.f.Only) > 0 {
		return
	}
	for j, e := range b.f.Fstab {
		if b.fsDone[fmt.Sprintf("fstab:%d", j)] {
			continue
		}
		switch {
		case e.VfsType == "swap" && strings.HasPrefix(e.Spec, "/") && !strings.HasPrefix(e.Spec, "/dev/"):
			b.note("filesystems", "swap file %s is not captured: the profile has no swap files (create it after restore)", e.Spec)
		case e.VfsType == "proc" || e.VfsType == "sysfs" || e.VfsType == "devpts" || e.VfsType == "tmpfs" || e.VfsType == "none":
			b.note("filesystems", "fstab line %d (%s on %s) is not a disk filesystem: not captured; restore writes fstab from the profile", e.Line, e.VfsType, e.File)
		case strings.Contains(e.Spec, ":") || strings.HasPrefix(e.Spec, "//"):
			b.note("filesystems", "network mount %s on %s (%s) is not captured: the profile describes local storage", e.Spec, e.File, e.VfsType)
		default:
			b.note("filesystems", "fstab line %d (%s on %s) matches no captured device", e.Line, e.Spec, e.File)
		}
	}
	for _, s := range b.f.Swaps {
		if s.Type == "file" {
			b.note("filesystems", "swap file %s (%s) is active but not captured: the profile has no swap files", s.Filename, profile.HumanBytes(s.SizeKiB*1024))
		}
	}
}
