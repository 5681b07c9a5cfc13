package capture_test

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/stratahq/strata/capture"
	"github.com/stratahq/strata/capture/parse"
	"github.com/stratahq/strata/profile"
)

// parseFixture reads capture/parse/testdata/NAME.
func parseFixture(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("parse", "testdata", name))
	if err != nil {
		t.Fatalf("%v (capture/parse/testdata/regen.sh --dm records it)", err)
	}
	return b
}

// The EFI boot entries of a machine, as efibootmgr -v printed them in an
// OVMF guest (parse/testdata/efibootmgr/ovmf-entries-v.txt): the entries
// that start a file on a captured ESP become the profile's efi_entries,
// except the bootloader's own (\EFI\debian\) and the firmware's (no
// partition). The disk is the GPT one recorded on the host, whose ESP has
// the PARTUUID the guest's entries point at.
func TestEFIEntriesFromOVMF(t *testing.T) {
	blocks, err := parse.Lsblk(parseFixture(t, "lsblk/loop-gpt.json"))
	if err != nil {
		t.Fatal(err)
	}
	table, err := parse.Sfdisk(parseFixture(t, "sfdisk/gpt.json"))
	if err != nil {
		t.Fatal(err)
	}
	efi := parse.EfibootmgrV(parseFixture(t, "efibootmgr/ovmf-entries-v.txt"))
	fstab, err := parse.Fstab([]byte("UUID=11111111-2222-3333-4444-555555555555 / ext4 defaults 0 1\nUUID=1234-ABCD /boot/efi vfat umask=0077 0 1\n"))
	if err != nil {
		t.Fatal(err)
	}
	f := &capture.Facts{Root: "/", UEFI: true, Blocks: blocks, Tables: map[string]*parse.Table{"/dev/loopX": table},
		Probe: parse.Blkid(parseFixture(t, "blkid/loop-gpt.txt")), Fstab: fstab,
		OSRelease: map[string]string{"ID": "debian", "VERSION_ID": "12"},
		Boot:      capture.BootFacts{ESPMount: "/boot/efi", GrubEFIIDs: []string{"debian"}},
		EFIBoot:   efi}
	res := capture.Build(f)
	bl := res.Profile.Bootloader
	if bl == nil {
		t.Fatalf("no bootloader; notes %v", res.Notes)
	}
	want := []profile.EFIEntry{
		{Label: "Windows Boot Manager", Loader: `\EFI\Microsoft\Boot\bootmgfw.efi`},
		{Label: "memtest86+", Loader: `\EFI\memtest86\memtest.efi`},
	}
	if bl.Type != "grub-efi" || !reflect.DeepEqual(bl.EFIEntries, want) {
		t.Errorf("bootloader %s, efi_entries %+v, want grub-efi with %+v\nentries read: %+v", bl.Type, bl.EFIEntries, want, efi.Entries)
	}
}

// A disk whose MBR holds GRUB's boot code (parse/testdata/mbr, recorded
// from grub-install) is the profile's grub-bios boot disk. The disk is the
// msdos one recorded on the host, its lsblk tree made from its table.
func TestGrubBIOSDisk(t *testing.T) {
	if got := parse.MBRBootCode(parseFixture(t, "mbr/grub-i386-pc.bin")); got != "grub" {
		t.Fatalf("grub-install's MBR read as %q", got)
	}
	table, err := parse.Sfdisk(parseFixture(t, "sfdisk/msdos.json"))
	if err != nil {
		t.Fatal(err)
	}
	disk := parse.BlockDevice{Name: "loopX", KName: "loopX", Path: "/dev/loopX", Type: "disk", LogicalSec: 512, PhysicalSec: 512}
	for _, p := range table.Partitions {
		disk.Children = append(disk.Children, parse.BlockDevice{Name: p.Node[5:], KName: p.Node[5:], Path: p.Node, PKName: "loopX", Type: "part",
			Size: p.Size * 512, LogicalSec: 512, PhysicalSec: 512})
		disk.Size = max(disk.Size, (p.Start+p.Size)*512+mib)
	}
	probe := parse.Blkid(parseFixture(t, "blkid/loop-msdos.txt"))
	res := capture.Build(&capture.Facts{Root: "/", Blocks: []parse.BlockDevice{disk}, Tables: map[string]*parse.Table{"/dev/loopX": table},
		Probe: probe, OSRelease: map[string]string{"ID": "debian", "VERSION_ID": "12"},
		Boot: capture.BootFacts{GrubPC: true, MBRGrub: []string{"/dev/loopX"}}})
	bl := res.Profile.Bootloader
	if len(res.Profile.Disks) != 1 {
		t.Fatalf("disks %+v", res.Profile.Disks)
	}
	// The disk's name, though the partitioned disk itself is no device of
	// the profile (GRUB's disks were never listed before).
	if name := res.Profile.Disks[0].Name; bl == nil || bl.Type != "grub-bios" || !reflect.DeepEqual(bl.Disks, []string{name}) {
		t.Errorf("bootloader %+v, want grub-bios on %q; notes %v", bl, name, res.Notes)
	}
}

const mib = 1 << 20

// LUKS1 only knows pbkdf2, so a capture leaves the PBKDF type out; merged
// into a profile that names it, the type stays (a round trip of
// restore/testdata/profiles/stack.yaml lost it).
func TestMergeKeepsLUKS1PBKDFType(t *testing.T) {
	old, err := profile.Parse("old.yaml", []byte(`version: 1
host: {name: h}
disks:
  d:
    table: none
luks:
  old:
    device: d
    version: 1
    uuid: 3eb5607f-7731-56df-90e7-ec773d10f68a
    pbkdf: {type: pbkdf2, iterations: 1000}
`))
	if err != nil {
		t.Fatal(err)
	}
	cur := &profile.Profile{Version: profile.Version, Disks: []profile.Disk{{Name: "d", Table: "none"}}, LUKS: []profile.LUKS{{Name: "old", Device: "d", Version: 1,
		UUID: "3eb5607f-7731-56df-90e7-ec773d10f68a", PBKDF: &profile.PBKDF{Iterations: 1000}, Key: profile.Key{Prompt: true}}}}
	capture.Merge(old, &capture.Result{Profile: cur, Facts: &capture.Facts{}, Measured: map[string]int64{}, Refs: map[string]string{}})
	if len(old.LUKS) != 1 || old.LUKS[0].PBKDF == nil || *old.LUKS[0].PBKDF != (profile.PBKDF{Type: "pbkdf2", Iterations: 1000}) {
		t.Errorf("merged LUKS %+v", old.LUKS)
	}
}

// A disk used whole (here by LUKS, whose UUID the profile leaves to
// restore) has nothing to be matched by but being the one such disk: it
// keeps the profile's name, and so does the LUKS volume's device.
func TestMergeWholeDisk(t *testing.T) {
	old, err := profile.Parse("old.yaml", []byte(`version: 1
host: {name: h}
disks:
  main:
    table: gpt
    partitions:
      - {name: root, size: 1GiB}
  whole:
    select: {serial: strata-vdd}
    table: none
luks:
  wholecrypt:
    device: whole
`))
	if err != nil {
		t.Fatal(err)
	}
	cur := &profile.Profile{Version: profile.Version,
		Disks: []profile.Disk{{Name: "main", Table: "gpt", Partitions: []profile.Partition{{Name: "root", Size: profile.Bytes(1 << 30)}}},
			{Name: "disk4", Table: "none"}},
		LUKS: []profile.LUKS{{Name: "wholecrypt", Device: "disk4", Version: 2, UUID: "916c9552-9dd2-552f-97d1-f486cd472a27", Key: profile.Key{Prompt: true}}}}
	capture.Merge(old, &capture.Result{Profile: cur, Facts: &capture.Facts{}, Measured: map[string]int64{}, Refs: map[string]string{}})
	var names []string
	for _, d := range old.Disks {
		names = append(names, d.Name)
	}
	if !reflect.DeepEqual(names, []string{"main", "whole"}) || len(old.LUKS) != 1 || old.LUKS[0].Device != "whole" {
		t.Errorf("disks %v, LUKS %+v", names, old.LUKS)
	}
}

// Two msdos disks of a mirror, named a and b by hand: their partitions
// have no names to match by, so they match by layout, in order, and the
// arrays and crypttab the profile spells out come back as written.
func TestMergeMirrorByLayout(t *testing.T) {
	old, err := profile.Parse("old.yaml", []byte(`version: 1
host: {name: h}
disks:
  a:
    table: msdos
    partitions:
      - {name: boot, size: 512MiB, type: raid, boot: true}
      - {name: data, size: rest, type: raid}
  b:
    table: msdos
    partitions:
      - {name: boot, size: 512MiB, type: raid, boot: true}
      - {name: data, size: rest, type: raid}
raid:
  md-data: {level: raid1, devices: [a/data, b/data]}
luks:
  cryptdata:
    device: md-data
    crypttab: {options: luks}
`))
	if err != nil {
		t.Fatal(err)
	}
	disk := func(name, id string) profile.Disk {
		return profile.Disk{Name: name, Table: "msdos", DiskID: id, Partitions: []profile.Partition{
			{Name: "p1", Size: profile.Bytes(512 << 20), Type: "raid", Boot: true}, {Name: "p2", Size: profile.Bytes(5 << 30), Type: "raid"}}}
	}
	cur := &profile.Profile{Version: profile.Version,
		Disks: []profile.Disk{disk("main", "0x153ea774"), disk("disk2", "0x4b06578e")},
		RAID:  []profile.RAID{{Name: "md-data", Level: "raid1", Devices: []string{"main/p2", "disk2/p2"}, UUID: "d0068ef8:b1f05587:977b7640:d2e87501"}},
		LUKS:  []profile.LUKS{{Name: "cryptdata", Device: "md-data", Version: 1, UUID: "db896ecf-660f-5295-b2d5-2637ebe7e70e", Key: profile.Key{Prompt: true}}}}
	facts := &capture.Facts{Crypttab: []parse.CrypttabEntry{{Name: "cryptdata", Device: "UUID=db896ecf-660f-5295-b2d5-2637ebe7e70e", KeyFile: "none", Options: "luks"}}}
	capture.Merge(old, &capture.Result{Profile: cur, Facts: facts, Measured: map[string]int64{}, Refs: map[string]string{}})
	var names []string
	for _, d := range old.Disks {
		names = append(names, d.Name+":"+d.DiskID)
	}
	if !reflect.DeepEqual(names, []string{"a:0x153ea774", "b:0x4b06578e"}) {
		t.Errorf("disks %v, want a and b with the captured disk ids", names)
	}
	if got := old.RAID[0].Devices; !reflect.DeepEqual(got, []string{"a/data", "b/data"}) {
		t.Errorf("md-data devices %v", got)
	}
	if c := old.LUKS[0].Crypttab; c == nil || c.Options != "luks" {
		t.Errorf("crypttab %+v, want the profile's {options: luks}", c)
	}
}
