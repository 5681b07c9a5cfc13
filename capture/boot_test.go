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
