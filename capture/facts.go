package capture

import (
	"github.com/stratahq/strata/capture/parse"
	"github.com/stratahq/strata/profile"
)

// Facts is everything the probe learnt about a machine, as the tools said
// it. Build turns Facts into a profile; Facts themselves are plain data.
type Facts struct {
	Root     string   // where the system's files were read ("/" on a running host)
	Only     []string // the disks the capture was restricted to (--disk), or none
	Hostname string
	UEFI     bool // booted through UEFI (/sys/firmware/efi)
	MACs     []string
	DMI      profile.DMIMatch

	Blocks []parse.BlockDevice          // lsblk tree of the captured disks
	Probe  map[string]map[string]string // blkid by device path
	// Unreadable are the devices blkid could not open, with its message.
	Unreadable map[string]string
	Tables     map[string]*parse.Table    // by disk path
	Ext        map[string]*parse.ExtSuper // by device path
	XFS        map[string]*parse.XFSInfo  // by device path
	FAT        map[string]*parse.FATInfo  // by device path
	Btrfs      map[string]*BtrfsFacts     // by filesystem UUID
	LUKS       map[string]*parse.LUKS     // by device path (the container)
	MD         map[string]*MDFacts        // by array device path
	PVs        []parse.PV
	VGs        []parse.VG
	LVs        []parse.LV
	LVMSeen    bool // the lvm tools ran

	Fstab    []parse.FstabEntry
	Crypttab []parse.CrypttabEntry
	Mounts   []parse.MountInfo // the kernel's mount table (a live host)
	Swaps    []parse.Swap

	OSRelease      map[string]string
	PackageManager string
	Packages       []string // explicitly installed
	PackagesRead   bool

	Cmdline       string // the kernel command line of the captured system
	CmdlineSource string // where it came from
	GrubDefault   map[string]string
	LoaderConf    map[string]string // systemd-boot loader.conf
	Resume        string            // RESUME= of initramfs-tools
	Boot          BootFacts
	EFIBoot       *parse.EFIBoot

	Repos []RepoFacts

	// Problems are things the probe could not read, as notes for the profile.
	Problems []Note
}

// BtrfsFacts is one btrfs filesystem, which may span several devices.
type BtrfsFacts struct {
	Devices  []string // device paths, in devid order
	Super    *parse.BtrfsSuper
	Tree     *parse.BtrfsRootTree
	Profiles *parse.BtrfsProfiles
	Subvols  []parse.BtrfsSubvol // from `btrfs subvolume list` when mounted
	Mount    string              // a mount point of the filesystem, when mounted
}

// MDFacts is one md array.
type MDFacts struct {
	Export *parse.MDExport
	Detail *parse.MDDetail
}

// BootFacts is what the system's files say about its bootloader.
type BootFacts struct {
	ESPMount      string   // where the ESP was read (a mount point on this machine), "" when not readable
	ESPDirs       []string // directories under EFI/ on the ESP
	SystemdBoot   bool     // EFI/systemd/systemd-bootx64.efi
	Fallback      string   // EFI/BOOT/BOOTX64.EFI exists: "grub", "systemd-boot" or "other"
	GrubEFIIDs    []string // EFI/<id>/ holding grubx64.efi or shimx64.efi
	GrubPC        bool     // /boot/grub/i386-pc
	GrubEFI       bool     // /boot/grub/x86_64-efi
	LoaderDir     bool     // /boot/loader, /efi/loader: systemd-boot entries
	MBRGrub       []string // disks whose boot code is GRUB's
	GrubTimeout   string
	LoaderTimeout string
}

// RepoFacts is a version-controlled directory.
type RepoFacts struct {
	Path      string // in the captured system
	Type      string // git or svn
	URL       string
	Branch    string
	Revision  string
	Changed   int // files with uncommitted changes
	Untracked int
	Owner     string
	Group     string
	Mode      string
}
