// Package profile is the host profile: what a machine is, as a person writes it
// in YAML. It loads strictly (unknown keys, bad types and bad references are
// errors with file:line:column and the profile path), validates the whole
// document at once, saves without losing the user's comments, and describes
// itself as a JSON Schema. It imports nothing else of strata's.
//
// Struct tags: `yaml:"key[,omitempty][,keyed]"` names the key; `keyed` marks a
// list that YAML writes as a mapping from each element's name to its body (the
// element's Name field is tagged `yaml:"-"`). `doc:"..."` is the description that
// goes into the JSON Schema.
package profile

// Version is the profile format this package reads and writes.
const Version = 1

// Profile is one machine.
type Profile struct {
	Version      int           `yaml:"version" doc:"Profile format version. Must be 1."`
	Host         Host          `yaml:"host" doc:"Who this machine is and how the live image recognises it."`
	Disks        []Disk        `yaml:"disks,keyed" doc:"Physical disks by a name of your choice, with their partition tables."`
	RAID         []RAID        `yaml:"raid,omitempty,keyed" doc:"Linux md RAID arrays by name (/dev/md/NAME)."`
	LUKS         []LUKS        `yaml:"luks,omitempty,keyed" doc:"dm-crypt/LUKS volumes by mapping name (/dev/mapper/NAME)."`
	VolumeGroups []VolumeGroup `yaml:"volume_groups,omitempty,keyed" doc:"LVM volume groups by name."`
	Filesystems  []Filesystem  `yaml:"filesystems,omitempty" doc:"Filesystems and swap, each on one block device, with mounts."`
	Bootloader   *Bootloader   `yaml:"bootloader,omitempty" doc:"How the restored machine boots."`
	System       *System       `yaml:"system,omitempty" doc:"The base system image and the package list."`
	Repos        []Repo        `yaml:"repos,omitempty,keyed" doc:"Configuration repositories (git or svn) checked out after the system is in place, by name."`
	Datasets     []Dataset     `yaml:"datasets,omitempty,keyed" doc:"Data fetched from the file server after the system is in place, by name."`

	source // where it was loaded from; not part of the document
}

// Host is the machine's identity.
type Host struct {
	Name        string     `yaml:"name" doc:"Host name of the restored system (a DNS label)."`
	Description string     `yaml:"description,omitempty" doc:"Free text for people."`
	Match       *HostMatch `yaml:"match,omitempty" doc:"Rules that let the live image pick this profile by itself (strata.profile=auto). Any one rule matching is enough."`
}

// HostMatch selects a profile automatically.
type HostMatch struct {
	MAC []string  `yaml:"mac,omitempty" json:"mac,omitempty" doc:"MAC addresses of this machine's NICs (aa:bb:cc:dd:ee:ff)."`
	DMI *DMIMatch `yaml:"dmi,omitempty" json:"dmi,omitempty" doc:"Firmware (SMBIOS/DMI) identity; every field given must match."`
}

// DMIMatch is a machine's SMBIOS identity, as in /sys/class/dmi/id.
type DMIMatch struct {
	Vendor  string `yaml:"vendor,omitempty" json:"vendor,omitempty" doc:"sys_vendor, e.g. LENOVO."`
	Product string `yaml:"product,omitempty" json:"product,omitempty" doc:"product_name, e.g. 20XW0055GE."`
	Serial  string `yaml:"serial,omitempty" json:"serial,omitempty" doc:"product_serial."`
}

// Disk is one physical disk and its partition table.
type Disk struct {
	Name       string      `yaml:"-"`
	Select     DiskSelect  `yaml:"select,omitempty" doc:"Which disk of the target machine this is. Every field given must match; with none, any disk big enough matches (only safe with one disk)."`
	Table      string      `yaml:"table" doc:"Partition table: gpt, msdos, or none (the whole disk is used as one device, referenced by the disk's name)." enum:"gpt,msdos,none"`
	GUID       string      `yaml:"guid,omitempty" doc:"GPT disk GUID; kept on restore. Omit to generate."`
	DiskID     string      `yaml:"disk_id,omitempty" doc:"msdos disk identifier (0x1234abcd); kept on restore. Omit to generate."`
	Partitions []Partition `yaml:"partitions,omitempty" doc:"Partitions in table order: the first is partition 1. On msdos, logical partitions come last and get numbers from 5."`
}

// DiskSelect matches a disk of the target machine.
type DiskSelect struct {
	ByID    string `yaml:"by_id,omitempty" doc:"A name under /dev/disk/by-id, e.g. nvme-Samsung_SSD_980_1TB_S64ANS0T123456. Shell patterns (*) allowed."`
	ByPath  string `yaml:"by_path,omitempty" doc:"A name under /dev/disk/by-path, e.g. pci-0000:00:04.0. Shell patterns allowed."`
	Serial  string `yaml:"serial,omitempty" doc:"Disk serial number as the kernel reports it."`
	Model   string `yaml:"model,omitempty" doc:"Disk model; shell patterns allowed."`
	WWN     string `yaml:"wwn,omitempty" doc:"World Wide Name."`
	MinSize Size   `yaml:"min_size,omitempty" doc:"Smallest acceptable disk (absolute size). Fixed partition sizes are checked against it."`
	MaxSize Size   `yaml:"max_size,omitempty" doc:"Largest acceptable disk (absolute size)."`
}

// Partition is one entry of a partition table.
type Partition struct {
	Name       string   `yaml:"name" doc:"Name used to refer to this partition as DISK/NAME. On GPT also the partition name (PARTLABEL) unless label is set."`
	Label      string   `yaml:"label,omitempty" doc:"GPT partition name (PARTLABEL) when it differs from name, e.g. 'EFI System Partition'."`
	Size       Size     `yaml:"size" doc:"Size: bytes with a unit (512MiB, 20GiB, 500GB), a percentage of the disk (25%), or rest (what is left)."`
	MinSize    Size     `yaml:"min_size,omitempty" doc:"Lower bound for a percentage or rest size."`
	MaxSize    Size     `yaml:"max_size,omitempty" doc:"Upper bound for a percentage or rest size."`
	Type       string   `yaml:"type,omitempty" doc:"Partition type. GPT: an alias (esp, linux, swap, lvm, raid, bios-boot, xbootldr, linux-home, linux-root-x86-64, linux-srv, linux-var, linux-luks, msdata, msreserved) or a GUID. msdos: an alias (linux, swap, lvm, raid, esp, fat32, ntfs) or a type byte (0x83). Default linux."`
	UUID       string   `yaml:"uuid,omitempty" doc:"GPT partition GUID (PARTUUID); kept on restore. Omit to generate."`
	Attributes []string `yaml:"attributes,omitempty" doc:"GPT attribute bits: required, no-block-io, legacy-bios-bootable, read-only, hidden, no-automount, or a bit number 0-63."`
	Logical    bool     `yaml:"logical,omitempty" doc:"msdos only: a logical partition inside the extended partition strata creates."`
	Boot       bool     `yaml:"boot,omitempty" doc:"msdos only: the active (boot) flag."`
	Keep       bool     `yaml:"keep,omitempty" doc:"Reuse the partition that is there (verified: position, size, type, PARTUUID) instead of recreating it; the table is then not rewritten."`
}

// RAID is one md array.
type RAID struct {
	Name      string   `yaml:"-"`
	Level     string   `yaml:"level" doc:"raid0, raid1, raid4, raid5, raid6 or raid10." enum:"raid0,raid1,raid4,raid5,raid6,raid10"`
	Devices   []string `yaml:"devices" doc:"Member devices (DISK/PART, or another device name)."`
	Spares    []string `yaml:"spares,omitempty" doc:"Spare devices."`
	Metadata  string   `yaml:"metadata,omitempty" doc:"Superblock format: 1.2 (default), 1.1, 1.0 (at the end: for an ESP or /boot read by firmware), 0.90." enum:"1.2,1.1,1.0,0.90"`
	Chunk     Size     `yaml:"chunk,omitempty" doc:"Chunk size for striped levels, e.g. 512KiB."`
	Layout    string   `yaml:"layout,omitempty" doc:"mdadm --layout, e.g. n2, f2, left-symmetric."`
	ArrayName string   `yaml:"array_name,omitempty" doc:"The array's name in its superblock (mdadm --name), e.g. host:root. Default: the profile name."`
	Homehost  string   `yaml:"homehost,omitempty" doc:"mdadm --homehost."`
	UUID      string   `yaml:"uuid,omitempty" doc:"Array UUID (mdadm's aaaaaaaa:bbbbbbbb:cccccccc:dddddddd form or a standard UUID); kept on restore."`
	Keep      bool     `yaml:"keep,omitempty" doc:"Assemble the existing array (verified by UUID and level) instead of creating it."`
}

// LUKS is one dm-crypt volume.
type LUKS struct {
	Name       string    `yaml:"-"`
	Device     string    `yaml:"device" doc:"The block device to encrypt."`
	Version    int       `yaml:"version,omitempty" doc:"LUKS format, 1 or 2. Default 2." enum:"1,2"`
	Cipher     string    `yaml:"cipher,omitempty" doc:"Cipher spec, default aes-xts-plain64."`
	KeySize    int       `yaml:"key_size,omitempty" doc:"Key size in bits, default 512 (256 for aes-cbc)."`
	Hash       string    `yaml:"hash,omitempty" doc:"Hash for the key derivation and digest, default sha256."`
	PBKDF      *PBKDF    `yaml:"pbkdf,omitempty" doc:"Passphrase key derivation. Default: argon2id for LUKS2, pbkdf2 for LUKS1, with cryptsetup's benchmarked cost."`
	SectorSize int       `yaml:"sector_size,omitempty" doc:"LUKS2 encryption sector size: 512, 1024, 2048 or 4096."`
	Label      string    `yaml:"label,omitempty" doc:"LUKS2 label."`
	Subsystem  string    `yaml:"subsystem,omitempty" doc:"LUKS2 subsystem label."`
	UUID       string    `yaml:"uuid,omitempty" doc:"LUKS header UUID; kept on restore so crypttab and the initramfs keep working."`
	Key        Key       `yaml:"key,omitempty" doc:"Where the passphrase comes from at restore time. Default: prompt."`
	Crypttab   *Crypttab `yaml:"crypttab,omitempty" doc:"The restored system's /etc/crypttab line."`
	Keep       bool      `yaml:"keep,omitempty" doc:"Open the existing LUKS volume (verified by UUID) instead of formatting it."`
}

// PBKDF is the passphrase key derivation.
type PBKDF struct {
	Type       string `yaml:"type,omitempty" doc:"argon2id, argon2i or pbkdf2." enum:"argon2id,argon2i,pbkdf2"`
	Iterations int    `yaml:"iterations,omitempty" doc:"Fixed iteration count (argon2 time cost, or pbkdf2 iterations); skips the benchmark."`
	Memory     Size   `yaml:"memory,omitempty" doc:"argon2 memory cost, e.g. 1GiB (cryptsetup takes KiB; at most 4GiB)."`
	Parallel   int    `yaml:"parallel,omitempty" doc:"argon2 parallel threads."`
	IterTimeMS int    `yaml:"iter_time_ms,omitempty" doc:"Unlock time to aim for, in milliseconds, when iterations is not fixed."`
}

// Key says where a LUKS passphrase comes from. At most one field may be set.
type Key struct {
	Prompt  bool   `yaml:"prompt,omitempty" doc:"Ask for it at restore time (the default)."`
	File    string `yaml:"file,omitempty" doc:"A key file in the live environment, e.g. on the stick: /media/strata/keys/laptop.key."`
	URL     string `yaml:"url,omitempty" doc:"A key file on the file server (https recommended)."`
	Literal string `yaml:"literal,omitempty" doc:"TEST ONLY: the passphrase itself, for drills and CI. Never use for a real machine: the profile lives in version control."`
}

// Crypttab is the restored system's /etc/crypttab entry for a LUKS volume.
type Crypttab struct {
	KeyFile string `yaml:"keyfile,omitempty" doc:"Third crypttab field, default none (ask at boot)."`
	Options string `yaml:"options,omitempty" doc:"Fourth crypttab field, default luks (e.g. luks,discard)."`
}

// VolumeGroup is one LVM volume group.
type VolumeGroup struct {
	Name       string            `yaml:"-"`
	PVs        []string          `yaml:"pvs" doc:"Physical volumes: the devices the group is made of."`
	ExtentSize Size              `yaml:"extent_size,omitempty" doc:"Physical extent size, default 4MiB."`
	UUID       string            `yaml:"uuid,omitempty" doc:"VG UUID (LVM's 32-character form with dashes); kept on restore."`
	PVUUIDs    map[string]string `yaml:"pv_uuids,omitempty" doc:"PV UUIDs by device, kept on restore."`
	LVs        []LogicalVolume   `yaml:"lvs,omitempty,keyed" doc:"Logical volumes by name, created in this order."`
}

// LogicalVolume is one LV.
type LogicalVolume struct {
	Name       string `yaml:"-"`
	Size       Size   `yaml:"size" doc:"Size: bytes with a unit, a percentage of the group (40%), of its free space at that point (50%free), or rest. For thin volumes, the virtual size."`
	MinSize    Size   `yaml:"min_size,omitempty" doc:"Lower bound for a percentage or rest size."`
	MaxSize    Size   `yaml:"max_size,omitempty" doc:"Upper bound for a percentage or rest size."`
	Type       string `yaml:"type,omitempty" doc:"linear (default), striped, raid1, thin-pool or thin." enum:"linear,striped,raid1,thin-pool,thin"`
	Stripes    int    `yaml:"stripes,omitempty" doc:"striped: number of stripes."`
	StripeSize Size   `yaml:"stripe_size,omitempty" doc:"striped: stripe size."`
	Mirrors    int    `yaml:"mirrors,omitempty" doc:"raid1: number of extra copies, default 1."`
	Pool       string `yaml:"pool,omitempty" doc:"thin: the thin-pool LV of the same group."`
	UUID       string `yaml:"uuid,omitempty" doc:"LV UUID; kept on restore."`
	Keep       bool   `yaml:"keep,omitempty" doc:"Reuse the existing LV (verified by size and UUID) instead of creating it."`
}

// Filesystem is a filesystem or swap area on one block device.
type Filesystem struct {
	Device string        `yaml:"device" doc:"The block device: DISK/PART, a RAID or LUKS name, or VG/LV."`
	Type   string        `yaml:"type" doc:"ext2, ext3, ext4, xfs, vfat, btrfs or swap." enum:"ext2,ext3,ext4,xfs,vfat,btrfs,swap"`
	Label  string        `yaml:"label,omitempty" doc:"Filesystem label."`
	UUID   string        `yaml:"uuid,omitempty" doc:"Filesystem UUID (vfat: the volume ID, XXXX-XXXX); kept on restore so fstab keeps working."`
	Mount  *Mount        `yaml:"mount,omitempty" doc:"Where it is mounted (not for swap)."`
	Ext    *ExtOptions   `yaml:"ext,omitempty" doc:"ext2/3/4 settings."`
	XFS    *XFSOptions   `yaml:"xfs,omitempty" doc:"xfs settings."`
	VFAT   *VFATOptions  `yaml:"vfat,omitempty" doc:"vfat settings."`
	Btrfs  *BtrfsOptions `yaml:"btrfs,omitempty" doc:"btrfs settings and subvolumes."`
	Swap   *SwapOptions  `yaml:"swap,omitempty" doc:"swap settings."`
	Keep   bool          `yaml:"keep,omitempty" doc:"Mount the existing filesystem (verified by type and UUID) instead of making a new one: a reinstall that keeps /home."`
}

// Mount is one /etc/fstab line's worth of intent.
type Mount struct {
	Path    string `yaml:"path" doc:"Absolute mount point."`
	Options string `yaml:"options,omitempty" doc:"fstab options, comma-separated; default defaults."`
	Dump    int    `yaml:"dump,omitempty" doc:"fstab dump field (0 or 1)."`
	Pass    int    `yaml:"pass,omitempty" doc:"fstab fsck pass: 1 for /, 2 for others, 0 to skip. Default: 1 for /, 2 for other ext filesystems, 0 otherwise."`
}

// ExtOptions are the mke2fs/tune2fs settings a faithful ext re-creation needs.
type ExtOptions struct {
	BlockSize       int      `yaml:"block_size,omitempty" doc:"Block size in bytes: 1024, 2048 or 4096."`
	InodeSize       int      `yaml:"inode_size,omitempty" doc:"Inode size in bytes (128, 256, ...)."`
	InodeRatio      int      `yaml:"inode_ratio,omitempty" doc:"Bytes per inode (mke2fs -i)."`
	Inodes          int64    `yaml:"inodes,omitempty" doc:"Exact inode count (mke2fs -N); excludes inode_ratio."`
	ReservedBlocks  int64    `yaml:"reserved_blocks,omitempty" doc:"Exact reserved block count (tune2fs -r)."`
	ReservedPercent *float64 `yaml:"reserved_percent,omitempty" doc:"Reserved blocks as a percentage (mke2fs -m), e.g. 1 or 0.5; excludes reserved_blocks."`
	Features        []string `yaml:"features,omitempty" doc:"Feature list as mke2fs -O takes it: has_journal, metadata_csum, ^huge_file, ..."`
	MountDefaults   string   `yaml:"mount_defaults,omitempty" doc:"Default mount options stored in the superblock (tune2fs -o), e.g. user_xattr,acl."`
	Errors          string   `yaml:"errors,omitempty" doc:"Behaviour on errors: continue, remount-ro or panic." enum:"continue,remount-ro,panic"`
	Stride          int      `yaml:"stride,omitempty" doc:"RAID stride in blocks (mke2fs -E stride)."`
	StripeWidth     int      `yaml:"stripe_width,omitempty" doc:"RAID stripe width in blocks (mke2fs -E stripe_width)."`
}

// XFSOptions are the mkfs.xfs settings a faithful re-creation needs.
type XFSOptions struct {
	BlockSize  int      `yaml:"block_size,omitempty" doc:"Block size in bytes."`
	SectorSize int      `yaml:"sector_size,omitempty" doc:"Sector size in bytes."`
	InodeSize  int      `yaml:"inode_size,omitempty" doc:"Inode size in bytes."`
	AGCount    int      `yaml:"agcount,omitempty" doc:"Number of allocation groups."`
	LogSize    Size     `yaml:"log_size,omitempty" doc:"Internal log size, e.g. 64MiB."`
	Features   []string `yaml:"features,omitempty" doc:"Features on (name) or off (^name): crc, finobt, rmapbt, reflink, bigtime, inobtcount, sparse, ftype."`
}

// VFATOptions are the mkfs.fat settings.
type VFATOptions struct {
	FATSize           int `yaml:"fat_size,omitempty" doc:"FAT type: 12, 16 or 32." enum:"12,16,32"`
	SectorsPerCluster int `yaml:"sectors_per_cluster,omitempty" doc:"Sectors per cluster (power of two)."`
}

// BtrfsOptions are the mkfs.btrfs settings and the subvolume layout.
type BtrfsOptions struct {
	NodeSize         int         `yaml:"node_size,omitempty" doc:"Metadata node size in bytes."`
	SectorSize       int         `yaml:"sector_size,omitempty" doc:"Sector size in bytes."`
	Features         []string    `yaml:"features,omitempty" doc:"mkfs.btrfs -O features, e.g. no-holes, free-space-tree, ^extref."`
	DataProfile      string      `yaml:"data_profile,omitempty" doc:"Data profile: single, dup, raid0, raid1, raid10, ..."`
	MetadataProfile  string      `yaml:"metadata_profile,omitempty" doc:"Metadata profile: single, dup, raid1, ..."`
	Devices          []string    `yaml:"devices,omitempty" doc:"Further devices of a multi-device filesystem."`
	DefaultSubvolume string      `yaml:"default_subvolume,omitempty" doc:"Subvolume path made the default (btrfs subvolume set-default)."`
	Subvolumes       []Subvolume `yaml:"subvolumes,omitempty" doc:"Subvolumes to create, in order."`
}

// Subvolume is a btrfs subvolume and where it is mounted.
type Subvolume struct {
	Path  string `yaml:"path" doc:"Path inside the filesystem, e.g. @home."`
	Mount *Mount `yaml:"mount,omitempty" doc:"Where the subvolume is mounted (subvol= is added to the options)."`
}

// SwapOptions are the mkswap and fstab settings for swap.
type SwapOptions struct {
	Options string `yaml:"options,omitempty" doc:"fstab options, e.g. pri=10,discard; default sw."`
	Resume  bool   `yaml:"resume,omitempty" doc:"Use this swap for hibernation: resume= on the kernel command line and in the initramfs."`
}

// Bootloader says how the restored machine boots.
type Bootloader struct {
	Type       string     `yaml:"type" doc:"grub-bios, grub-efi or systemd-boot." enum:"grub-bios,grub-efi,systemd-boot"`
	Disks      []string   `yaml:"disks,omitempty" doc:"grub-bios: disks to install the boot code on (every disk of a RAID1 /boot). Default: all disks."`
	Removable  bool       `yaml:"removable,omitempty" doc:"UEFI: also install to the removable fallback path \\EFI\\BOOT\\BOOTX64.EFI, for firmware that forgets boot entries."`
	ID         string     `yaml:"id,omitempty" doc:"UEFI: the directory under \\EFI and the boot entry's label (grub-install --bootloader-id). Default: the distribution's (debian)."`
	EFIEntries []EFIEntry `yaml:"efi_entries,omitempty" doc:"UEFI: further boot entries to create with efibootmgr."`
	Cmdline    string     `yaml:"cmdline,omitempty" doc:"Kernel command line of the restored system (root= and the LUKS/LVM parts are added by the initramfs tools)."`
	Timeout    *int       `yaml:"timeout,omitempty" doc:"Boot menu timeout in seconds."`
}

// EFIEntry is one UEFI boot entry.
type EFIEntry struct {
	Label  string `yaml:"label" doc:"Entry label shown by the firmware."`
	Loader string `yaml:"loader" doc:"Loader path on the ESP, e.g. \\EFI\\debian\\shimx64.efi."`
}

// System is the base system and what goes on top of it.
type System struct {
	Image          Image    `yaml:"image" doc:"The distribution root filesystem archive on the file server."`
	Distribution   string   `yaml:"distribution,omitempty" doc:"For people and drift checks, e.g. debian-12."`
	PackageManager string   `yaml:"package_manager,omitempty" doc:"apt, dnf or pacman. Default: detected in the unpacked system." enum:"apt,dnf,pacman"`
	Packages       []string `yaml:"packages,omitempty" doc:"Packages to install on top of the image with its own package manager."`
}

// Image is a downloadable, checksummed archive.
type Image struct {
	URL    string `yaml:"url" doc:"http(s) or file URL of a tar archive (zstd, xz, gzip or plain). A relative URL is taken relative to the file server."`
	SHA256 string `yaml:"sha256" doc:"SHA-256 of the archive as stored, verified while streaming."`
}

// Repo is a configuration repository checked out into the restored system.
type Repo struct {
	Name       string `yaml:"-"`
	Type       string `yaml:"type" doc:"git or svn." enum:"git,svn"`
	URL        string `yaml:"url" doc:"Repository URL (git: https, ssh, git, file; svn: svn, http(s), file)."`
	Branch     string `yaml:"branch,omitempty" doc:"git branch, or svn path below the repository root (trunk, branches/HOST)."`
	Tag        string `yaml:"tag,omitempty" doc:"git tag (excludes branch and revision)."`
	Revision   string `yaml:"revision,omitempty" doc:"git commit or svn revision to check out."`
	Path       string `yaml:"path" doc:"Absolute destination in the restored system, e.g. /etc."`
	Owner      string `yaml:"owner,omitempty" doc:"Owner (name from the restored /etc/passwd, or uid)."`
	Group      string `yaml:"group,omitempty" doc:"Group (name or gid)."`
	Mode       string `yaml:"mode,omitempty" doc:"Mode of the top directory, octal, e.g. 0750."`
	Existing   string `yaml:"existing,omitempty" doc:"When the destination already has files: overlay (files from the repo win, others stay; the default) or replace (the destination becomes exactly the checkout)." enum:"overlay,replace"`
	Submodules bool   `yaml:"submodules,omitempty" doc:"git: also check out submodules."`
	Externals  bool   `yaml:"externals,omitempty" doc:"svn: also fetch externals."`
}

// Dataset is data fetched from the file server into the restored system.
type Dataset struct {
	Name     string   `yaml:"-"`
	Kind     string   `yaml:"kind,omitempty" doc:"full (everything; the default), selection (only what include/exclude pick), or buffer (an empty directory, ready to collect new files)." enum:"full,selection,buffer"`
	Source   string   `yaml:"source,omitempty" doc:"http(s) directory with a manifest, a tar archive (zstd, xz, gzip), or an rsync URL. Not for buffer."`
	Path     string   `yaml:"path" doc:"Absolute destination in the restored system."`
	Include  []string `yaml:"include,omitempty" doc:"selection: patterns of paths to fetch (rsync-style, ** for any depth)."`
	Exclude  []string `yaml:"exclude,omitempty" doc:"selection: patterns of paths to leave out."`
	Owner    string   `yaml:"owner,omitempty" doc:"Owner of the files (name or uid)."`
	Group    string   `yaml:"group,omitempty" doc:"Group of the files (name or gid)."`
	Mode     string   `yaml:"mode,omitempty" doc:"Mode of the top directory, octal."`
	SHA256   string   `yaml:"sha256,omitempty" doc:"SHA-256 of the archive, when source is one archive."`
	Manifest string   `yaml:"manifest,omitempty" doc:"URL of a sha256sum-format manifest; default SHA256SUMS in the source directory when it exists."`
}
