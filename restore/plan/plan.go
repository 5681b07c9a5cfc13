// Package plan turns a host profile and the probed disks of a machine into a
// Plan: every device with its final size and identity, and the steps that
// create them, in dependency order. A Plan is data: a pure function of the
// profile, the probed disks and the options. It prints as a table and as
// JSON, diffs, and is golden-tested; restore.Apply executes it.
package plan

import (
	"github.com/stratahq/strata/restore/fstab"
	"github.com/stratahq/strata/restore/table"
)

// Plan is everything a restore will do.
type Plan struct {
	Host       string             `json:"host"`
	Profile    string             `json:"profile,omitempty"` // file it came from
	TargetRoot string             `json:"target_root"`       // where the restored system is mounted
	WorkDir    string             `json:"work_dir"`          // scratch mounts and the journal
	Udev       bool               `json:"udev"`              // a udev daemon runs (LVM may sync with it)
	Fresh      bool               `json:"fresh,omitempty"`   // recreate what is not kept even when present
	Disks      []Disk             `json:"disks"`
	Devices    []Device           `json:"devices"`
	Steps      []Step             `json:"steps"`
	Fstab      []fstab.Entry      `json:"fstab,omitempty"`
	Crypttab   []fstab.CryptEntry `json:"crypttab,omitempty"`
	Warnings   []string           `json:"warnings,omitempty"`
	// Assumptions are the tool defaults the sizes above the partitions rely
	// on (LUKS header size, md data offset, LVM metadata area).
	Assumptions []string `json:"assumptions,omitempty"`
}

// Disk is one profile disk and the device it was matched to.
type Disk struct {
	Name       string        `json:"name"`
	Device     string        `json:"device"`
	Size       int64         `json:"size"`
	SectorSize int           `json:"sector_size"`
	Model      string        `json:"model,omitempty"`
	Serial     string        `json:"serial,omitempty"`
	Matched    string        `json:"matched"` // how the device was chosen
	Table      *table.Layout `json:"table,omitempty"`
	KeepTable  bool          `json:"keep_table,omitempty"` // a partition is kept: the table is verified, not written
	// Old lists the partitions on the disk now, whose signatures are wiped
	// before the new table goes on.
	Old []string `json:"old_partitions,omitempty"`
}

// Device is one block device of the restored machine.
type Device struct {
	Ref      string   `json:"ref"`  // profile reference: main/esp, cryptroot, md-boot, vg0, vg0/root
	Kind     string   `json:"kind"` // disk, partition, raid, luks, vg, lv
	Path     string   `json:"path"` // device node
	Size     int64    `json:"size"` // bytes; for a VG its usable extents
	Start    int64    `json:"start,omitempty"`
	Type     string   `json:"type,omitempty"` // partition type, raid level, luks2, LV type
	UUID     string   `json:"uuid,omitempty"`
	UUIDFrom string   `json:"uuid_from,omitempty"` // profile, derived (strata chose it), or "" (the tool chooses)
	Label    string   `json:"label,omitempty"`
	Extents  int64    `json:"extents,omitempty"` // LVs and VGs
	Keep     bool     `json:"keep,omitempty"`
	On       []string `json:"on,omitempty"` // refs of the devices it is made of
	// Filesystem on the device, if any.
	FS *Filesystem `json:"filesystem,omitempty"`
}

// Filesystem is a filesystem or swap area and where it goes.
type Filesystem struct {
	Type     string   `json:"type"`
	UUID     string   `json:"uuid,omitempty"`
	UUIDFrom string   `json:"uuid_from,omitempty"`
	Label    string   `json:"label,omitempty"`
	Mounts   []string `json:"mounts,omitempty"` // mount points (btrfs subvolumes: path[@subvol])
	Keep     bool     `json:"keep,omitempty"`
}

// Kind is what a step does.
type Kind string

// Step kinds. Verify kinds only read: a kept item that is not as the
// profile says fails the restore and is never recreated.
const (
	KindRelease     Kind = "release"      // tear down what sits on a target disk (--teardown)
	KindWipe        Kind = "wipe"         // erase old signatures on a disk
	KindTable       Kind = "table"        // write the partition table, re-read it, wipe partition starts
	KindVerifyTable Kind = "verify-table" // the kept table is as planned
	KindRAID        Kind = "raid"         // mdadm --create
	KindVerifyRAID  Kind = "verify-raid"  // the kept array's members carry its UUID and level
	KindAssemble    Kind = "assemble"     // the array is running
	KindLUKS        Kind = "luks"         // cryptsetup luksFormat
	KindVerifyLUKS  Kind = "verify-luks"
	KindOpen        Kind = "open" // cryptsetup open
	KindPV          Kind = "pv"
	KindVerifyPV    Kind = "verify-pv"
	KindVG          Kind = "vg"
	KindVerifyVG    Kind = "verify-vg"
	KindLV          Kind = "lv"
	KindVerifyLV    Kind = "verify-lv"
	KindLVMIDs      Kind = "lvm-ids"  // give the VG and LVs their captured UUIDs
	KindActivate    Kind = "activate" // every LV of the group is active
	KindMkfs        Kind = "mkfs"
	KindVerifyFS    Kind = "verify-fs"
	KindSubvolumes  Kind = "subvolumes" // btrfs subvolumes and the default one
	KindMount       Kind = "mount"
	KindFstab       Kind = "fstab" // /etc/fstab and /etc/crypttab of the target
	// Close (teardown) kinds.
	KindUnmount    Kind = "unmount"
	KindDeactivate Kind = "deactivate"
	KindClose      Kind = "close"
	KindStop       Kind = "stop"
)

// Verifies reports whether the kind only checks a kept item.
func (k Kind) Verifies() bool {
	switch k {
	case KindVerifyTable, KindVerifyRAID, KindVerifyLUKS, KindVerifyPV, KindVerifyVG, KindVerifyLV, KindVerifyFS:
		return true
	}
	return false
}

// Step is one unit of work with a check that tells whether it is done.
type Step struct {
	ID      string   `json:"id"` // unique, e.g. table:main, mkfs:vg0/root
	Kind    Kind     `json:"kind"`
	Ref     string   `json:"ref,omitempty"`    // what it is about: profile reference or mount point
	Device  string   `json:"device,omitempty"` // the device it writes or opens
	Summary string   `json:"summary"`
	After   []string `json:"after,omitempty"` // steps it depends on
	// Check is what Apply reads to decide the step is already done.
	Check Check `json:"check"`
	// Redo: run even when the check finds the state in place, unless this
	// run's journal says the step was done (strata restore --fresh).
	Redo    bool     `json:"redo,omitempty"`
	Actions []Action `json:"actions"`
}

// Check describes the state that makes a step done. Kind selects the
// reader; the other fields are what it must find.
type Check struct {
	Kind    string   `json:"kind"` // table, same-as, blkid, luks, luks-open, md-active, md-members, pv, vg, lv, lv-active, lvm-ids, mounted, file, released, unmounted, luks-closed, vg-inactive, md-stopped; "" = always run
	Text    string   `json:"text"` // the check in words: "done when ..."
	Disk    string   `json:"disk,omitempty"`
	Step    string   `json:"step,omitempty"` // same-as: done when that step is
	Device  string   `json:"device,omitempty"`
	Members []string `json:"members,omitempty"`
	Type    string   `json:"type,omitempty"`
	UUID    string   `json:"uuid,omitempty"`
	Label   string   `json:"label,omitempty"`
	Name    string   `json:"name,omitempty"` // mapping, VG, VG/LV
	Size    int64    `json:"size,omitempty"`
	Path    string   `json:"path,omitempty"` // mount point or file
	Root    string   `json:"root,omitempty"` // mounted: the subvolume root (/@home)
	// LVM ids: LV name -> UUID.
	LVUUIDs map[string]string `json:"lv_uuids,omitempty"`
}

// Action is one thing a step does, in order. Exactly one of Run, Mkdir,
// WriteTable, Reread, Wait, Write, LVMIDs is set.
type Action struct {
	Run []string `json:"run,omitempty"` // argv
	Env []string `json:"env,omitempty"`
	// Input is stdin for Run (an sfdisk script). Never a secret.
	Input string `json:"input,omitempty"`
	// Key: stdin is the passphrase of this LUKS volume, fetched at apply
	// time from its key source. The plan holds only the name.
	Key string `json:"key,omitempty"`
	// UnlessExists skips the action when this path exists (a subvolume
	// already created by an interrupted run).
	UnlessExists string `json:"unless_exists,omitempty"`
	// MayFail tolerates a non-zero exit (removing something that may be gone).
	MayFail bool `json:"may_fail,omitempty"`

	Mkdir      string   `json:"mkdir,omitempty"`       // create the directory and its parents
	WriteTable string   `json:"write_table,omitempty"` // write the step's disk's layout with go-diskfs to this device
	Reread     string   `json:"reread,omitempty"`      // make the kernel read this disk's new table (BLKRRPART, else partx)
	Wait       []string `json:"wait,omitempty"`        // wait for these device nodes to appear
	Write      string   `json:"write,omitempty"`       // "fstab" or "crypttab": render and write under the target root
	LVMIDs     string   `json:"lvm_ids,omitempty"`     // patch this metadata backup file with the check's UUIDs
	// Swapoff turns off swap on this device or file with the swapoff(2)
	// system call: the live image has no swapoff program.
	Swapoff string `json:"swapoff,omitempty"`
}
