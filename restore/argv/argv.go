// Package argv builds the command lines restore runs: wipefs, partx, sfdisk,
// mdadm, cryptsetup, lvm, mkfs.*, tune2fs, btrfs, mount. Pure functions from
// profile settings to argv, so every command is golden-testable (rule 1).
// Secrets are never arguments: cryptsetup reads the key from stdin
// (--key-file=-) and the caller supplies it on run.Cmd.Stdin.
package argv

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/stratahq/strata/profile"
)

// Wipefs erases every signature libblkid finds on dev.
func Wipefs(dev string) []string { return []string{"wipefs", "--all", dev} }

// PartxDelete removes the kernel's partitions of dev (BLKPG), and PartxAdd
// adds those of the table on disk. Together they stand in for BLKRRPART
// where the kernel refuses it. (partx --update misses msdos logical
// partitions when the kernel knew none: measured with util-linux 2.38.)
func PartxDelete(dev string) []string { return []string{"partx", "--delete", dev} }

// PartxAdd adds the partitions of the table on dev to the kernel.
func PartxAdd(dev string) []string { return []string{"partx", "--add", dev} }

// Sfdisk writes a table from the script on stdin; the kernel is told by
// partx afterwards, so sfdisk neither re-reads nor tells it.
func Sfdisk(dev string) []string {
	return []string{"sfdisk", "--no-reread", "--no-tell-kernel", "--wipe", "always", dev}
}

// Blkid reads a device's signature directly (no cache): TYPE, UUID, LABEL...
func Blkid(dev string) []string { return []string{"blkid", "--probe", "--output", "export", dev} }

// ---- md ----

// MdadmCreate creates an array without waiting for a resync. Mirrors and
// raid10 are created --assume-clean: every block a filesystem reads it has
// written first, on all copies. Parity levels resync in the background,
// because a parity never computed would corrupt data on the first rebuild.
func MdadmCreate(r *profile.RAID, dev, uuid string, members, spares []string) []string {
	a := []string{"mdadm", "--create", dev, "--run", "--level=" + r.Level,
		fmt.Sprintf("--raid-devices=%d", len(members))}
	if len(spares) > 0 {
		a = append(a, fmt.Sprintf("--spare-devices=%d", len(spares)))
	}
	meta := r.Metadata
	if meta == "" {
		meta = "1.2"
	}
	a = append(a, "--metadata="+meta)
	name := r.ArrayName
	if name == "" {
		name = r.Name
	}
	a = append(a, "--name="+name)
	if r.Homehost != "" {
		a = append(a, "--homehost="+r.Homehost)
	}
	if uuid != "" {
		a = append(a, "--uuid="+uuid)
	}
	if !r.Chunk.IsZero() {
		a = append(a, fmt.Sprintf("--chunk=%dK", r.Chunk.Bytes/1024))
	}
	if r.Layout != "" {
		a = append(a, "--layout="+r.Layout)
	}
	switch r.Level {
	case "raid1", "raid10":
		a = append(a, "--assume-clean")
	}
	return append(append(a, members...), spares...)
}

// MdadmAssemble starts an existing array from its members.
func MdadmAssemble(dev, uuid string, members []string) []string {
	a := []string{"mdadm", "--assemble", dev, "--run"}
	if uuid != "" {
		a = append(a, "--uuid="+uuid)
	}
	return append(a, members...)
}

// MdadmDetail reports an active array as KEY=VALUE lines (MD_UUID, MD_LEVEL).
func MdadmDetail(dev string) []string { return []string{"mdadm", "--detail", "--export", dev} }

// MdadmExamine reports a member's superblock as KEY=VALUE lines.
func MdadmExamine(member string) []string { return []string{"mdadm", "--examine", "--export", member} }

// MdadmStop stops an array.
func MdadmStop(dev string) []string { return []string{"mdadm", "--stop", dev} }

// ---- LUKS ----

// LuksFormat formats dev with every setting the profile gives; the
// passphrase comes on stdin (--key-file=-), never in argv.
func LuksFormat(l *profile.LUKS, dev, uuid string) []string {
	ver := l.Version
	if ver == 0 {
		ver = 2
	}
	a := []string{"cryptsetup", "luksFormat", "--batch-mode", fmt.Sprintf("--type=luks%d", ver)}
	if l.Cipher != "" {
		a = append(a, "--cipher="+l.Cipher)
	}
	if l.KeySize != 0 {
		a = append(a, fmt.Sprintf("--key-size=%d", l.KeySize))
	}
	if l.Hash != "" {
		a = append(a, "--hash="+l.Hash)
	}
	if k := l.PBKDF; k != nil {
		if k.Type != "" {
			a = append(a, "--pbkdf="+k.Type)
		}
		if k.Iterations != 0 {
			a = append(a, fmt.Sprintf("--pbkdf-force-iterations=%d", k.Iterations))
		}
		if !k.Memory.IsZero() {
			a = append(a, fmt.Sprintf("--pbkdf-memory=%d", k.Memory.Bytes/1024))
		}
		if k.Parallel != 0 {
			a = append(a, fmt.Sprintf("--pbkdf-parallel=%d", k.Parallel))
		}
		if k.IterTimeMS != 0 {
			a = append(a, fmt.Sprintf("--iter-time=%d", k.IterTimeMS))
		}
	}
	if l.SectorSize != 0 {
		a = append(a, fmt.Sprintf("--sector-size=%d", l.SectorSize))
	}
	if l.Label != "" {
		a = append(a, "--label="+l.Label)
	}
	if l.Subsystem != "" {
		a = append(a, "--subsystem="+l.Subsystem)
	}
	if uuid != "" {
		a = append(a, "--uuid="+uuid)
	}
	return append(a, "--key-file=-", dev)
}

// LuksOpen maps dev as /dev/mapper/name; the key comes on stdin.
func LuksOpen(dev, name string) []string {
	return []string{"cryptsetup", "open", "--type=luks", "--key-file=-", dev, name}
}

// LuksUUID prints the header's UUID, failing when dev is not LUKS.
func LuksUUID(dev string) []string { return []string{"cryptsetup", "luksUUID", dev} }

// LuksStatus succeeds when the mapping is active and names its device.
func LuksStatus(name string) []string { return []string{"cryptsetup", "status", name} }

// LuksClose removes the mapping.
func LuksClose(name string) []string { return []string{"cryptsetup", "close", name} }

// ---- LVM ----

// LVM builds lvm commands. Without a udev daemon every command needs
// activation{udev_sync=0 udev_rules=0}, or lvcreate waits for udev to create
// nodes that never come ("device not cleared").
type LVM struct{ Udev bool }

// Env quiets lvm's warnings about descriptors the Go runtime leaves open.
var Env = []string{"LVM_SUPPRESS_FD_WARNINGS=1"}

func (l LVM) cmd(sub string, args ...string) []string {
	return l.cmdConfig(sub, "", args...)
}

// cmdConfig is cmd with more lvm.conf settings for this command.
func (l LVM) cmdConfig(sub, config string, args ...string) []string {
	a := []string{"lvm", sub}
	if !l.Udev {
		config = strings.TrimSpace("activation{udev_sync=0 udev_rules=0} " + config)
	}
	if config != "" {
		a = append(a, "--config", config)
	}
	return append(a, args...)
}

// PVCreate initialises a PV; with uuid, its UUID is the captured one
// (--norestorefile: there is no metadata backup to take it from).
func (l LVM) PVCreate(dev, uuid string) []string {
	a := []string{"--yes"}
	if uuid != "" {
		a = append(a, "--uuid", uuid, "--norestorefile")
	}
	return l.cmd("pvcreate", append(a, dev)...)
}

// VGCreate creates a volume group. mixedSectors allows PVs with different
// logical sector sizes (512 and 4096), which lvm refuses by default
// ("Devices have inconsistent logical block sizes").
func (l LVM) VGCreate(name string, extent int64, pvs []string, mixedSectors bool) []string {
	a := []string{"--yes"}
	if extent != 0 {
		a = append(a, "--physicalextentsize", fmt.Sprintf("%dk", extent/1024))
	}
	config := ""
	if mixedSectors {
		config = "devices{allow_mixed_block_sizes=1}"
	}
	return l.cmdConfig("vgcreate", config, append(append(a, name), pvs...)...)
}

// LV is what lvcreate needs; Extents 0 with Rest means 100%FREE.
type LV struct {
	VG, Name     string
	Type         string // linear, striped, raid1, thin-pool, thin
	Extents      int64
	Rest         bool
	VirtualSize  int64 // thin
	Pool         string
	Stripes      int
	StripeSize   int64
	Mirrors      int
	MetadataSize int64 // thin-pool: explicit, so the plan's arithmetic holds
	ChunkSize    int64 // thin-pool
}

// LVCreate creates one LV. Signatures left by an earlier life of the same
// extents are wiped and the start zeroed, except in a thin pool (lvcreate
// refuses --wipesignatures there: it zeroes the pool's metadata itself) and
// a thin LV (it reads as zeros until written).
func (l LVM) LVCreate(v LV) []string {
	a := []string{"--yes"}
	if v.Type != "thin-pool" && v.Type != "thin" {
		a = append(a, "--wipesignatures", "y")
	}
	switch v.Type {
	case "thin":
		a = append(a, "--type", "thin", "--virtualsize", fmt.Sprintf("%db", v.VirtualSize), "--thinpool", v.Pool)
	case "thin-pool":
		a = append(a, "--type", "thin-pool")
		if v.MetadataSize != 0 {
			a = append(a, "--poolmetadatasize", fmt.Sprintf("%dk", v.MetadataSize/1024))
		}
		if v.ChunkSize != 0 {
			a = append(a, "--chunksize", fmt.Sprintf("%dk", v.ChunkSize/1024))
		}
	case "raid1":
		m := v.Mirrors
		if m == 0 {
			m = 1
		}
		a = append(a, "--type", "raid1", "--mirrors", strconv.Itoa(m), "--nosync")
	case "striped":
		a = append(a, "--type", "striped", "--stripes", strconv.Itoa(v.Stripes))
		if v.StripeSize != 0 {
			a = append(a, "--stripesize", fmt.Sprintf("%dk", v.StripeSize/1024))
		}
	default:
		a = append(a, "--type", "linear")
	}
	if v.Type != "thin" {
		if v.Rest {
			a = append(a, "--extents", "100%FREE")
		} else {
			a = append(a, "--extents", strconv.FormatInt(v.Extents, 10))
		}
	}
	return l.cmd("lvcreate", append(a, "--name", v.Name, v.VG)...)
}

// VGChange activates or deactivates every LV of a group.
func (l LVM) VGChange(vg string, active bool) []string {
	f := "n"
	if active {
		f = "y"
	}
	return l.cmd("vgchange", "--activate", f, vg)
}

// Report commands: JSON with byte units, for the checks.
func (l LVM) PVs() []string {
	return l.cmd("pvs", "--reportformat", "json", "--units", "b", "--nosuffix", "-o", "pv_name,pv_uuid,vg_name")
}

// VGs reports the groups.
func (l LVM) VGs() []string {
	return l.cmd("vgs", "--reportformat", "json", "--units", "b", "--nosuffix", "-o", "vg_name,vg_uuid,vg_extent_size,vg_extent_count,pv_count")
}

// LVs reports the LVs of one group.
func (l LVM) LVs(vg string) []string {
	return l.cmd("lvs", "--reportformat", "json", "--units", "b", "--nosuffix", "-o", "lv_name,vg_name,lv_uuid,lv_size,lv_attr,segtype", vg)
}

// VGCfgBackup writes the group's metadata to file.
func (l LVM) VGCfgBackup(vg, file string) []string {
	return l.cmd("vgcfgbackup", "--file", file, vg)
}

// VGCfgRestore writes metadata back; --force is needed for thin pools.
func (l LVM) VGCfgRestore(vg, file string, force bool) []string {
	a := []string{"--file", file}
	if force {
		a = append(a, "--force")
	}
	return l.cmd("vgcfgrestore", append(a, vg)...)
}

// ---- mount ----

// Mount mounts dev on dir with the given options (may be empty).
func Mount(fstype, options, dev, dir string) []string {
	a := []string{"mount", "-t", fstype}
	if options != "" {
		a = append(a, "-o", options)
	}
	return append(a, dev, dir)
}

// Umount unmounts dir.
func Umount(dir string) []string { return []string{"umount", dir} }

// MountOptions turns fstab options into what is useful now, in the live
// system: boot-time-only options (noauto, nofail, x-systemd.*, _netdev,
// user, ...) and "defaults" are dropped.
func MountOptions(fstab string, extra ...string) string {
	var out []string
	for _, o := range strings.Split(fstab, ",") {
		switch {
		case o == "", o == "defaults", o == "auto", o == "noauto", o == "nofail", o == "_netdev",
			o == "user", o == "users", o == "nouser", o == "owner", o == "group",
			strings.HasPrefix(o, "x-"), strings.HasPrefix(o, "comment="):
			continue
		}
		out = append(out, o)
	}
	return strings.Join(append(out, extra...), ",")
}
