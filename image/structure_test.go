package image

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stratahq/strata/internal/run"
)

// Structure tests build real artefacts with the real tools and read them
// back with independent ones (sfdisk, sgdisk, mtools, xorriso), without
// booting. The kernel and initramfs are stand-ins: only their bytes matter.

// fakeInputs writes a fake kernel and initramfs and a profiles directory.
func fakeInputs(t *testing.T) (kernel, initrd, profiles string) {
	t.Helper()
	dir := t.TempDir()
	kernel, initrd = filepath.Join(dir, "vmlinuz"), filepath.Join(dir, "initrd.img")
	k := bytes.Repeat([]byte("K"), 3<<20+17)
	copy(k[0x202:], "HdrS") // what a bzImage has there
	if err := os.WriteFile(kernel, k, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(initrd, bytes.Repeat([]byte("I"), 5<<20+3), 0o644); err != nil {
		t.Fatal(err)
	}
	profiles = filepath.Join(dir, "profiles")
	if err := os.MkdirAll(filepath.Join(profiles, "lab"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(profiles, "web-server-01.yaml"), []byte(webProfile), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(profiles, "lab", "db.yaml"), []byte("hostname: db\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return kernel, initrd, profiles
}

// webProfile is a valid profile: the image checks what --profiles holds.
const webProfile = "version: 1\nhost: {name: web-server-01}\ndisks:\n  main:\n    table: gpt\n    partitions:\n      - {name: root, size: rest}\n" +
	"filesystems:\n  - {device: main/root, type: ext4, mount: {path: /}}\n"

func structOptions(t *testing.T) Options {
	k, i, p := fakeInputs(t)
	return Options{Kernel: k, Initrd: i, Profiles: p, Out: t.TempDir(), Append: "strata.server=http://10.0.2.2:8080"}
}

func TestUSBStructure(t *testing.T) {
	needTools(t, "grub-mkstandalone", "syslinux", "sfdisk", "sgdisk", "mdir", "mtype")
	o := structOptions(t)
	data := filepath.Join(t.TempDir(), "data")
	if err := os.MkdirAll(filepath.Join(data, "datasets"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(data, "datasets", "photos.tar"), []byte("photos"), 0o644); err != nil {
		t.Fatal(err)
	}
	o.Data = data
	if err := USB(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	img := filepath.Join(o.Out, USBFile)
	st, err := os.Stat(img)
	if err != nil {
		t.Fatal(err)
	}
	if st.Size()%mib != 0 || st.Size() > 64*mib {
		t.Errorf("image is %s; want whole MiB and small for 8 MiB of content", humanSize(st.Size()))
	}
	if _, err := os.Stat(img + ".tmp"); err == nil {
		t.Error("temporary file left behind")
	}

	// The partition table, read back by sfdisk.
	var dump struct {
		PartitionTable struct {
			Label      string
			Partitions []struct {
				Start, Size       int64
				Type, Name, Attrs string
			}
		}
	}
	if err := json.Unmarshal([]byte(output(t, "sfdisk", "--json", img)), &dump); err != nil {
		t.Fatal(err)
	}
	pt := dump.PartitionTable
	if pt.Label != "gpt" || len(pt.Partitions) != 1 {
		t.Fatalf("partition table %+v, want GPT with one partition", pt)
	}
	p := pt.Partitions[0]
	if p.Start != 2048 || p.Type != "C12A7328-F81F-11D2-BA4B-00A0C93EC93B" || p.Name != "strata" || p.Attrs != "LegacyBIOSBootable" {
		t.Errorf("partition %+v; want the ESP at 2048, named strata, legacy BIOS bootable", p)
	}
	if end := (p.Start + p.Size) * 512; end > st.Size()-33*512 {
		t.Errorf("partition ends at %d, into the backup GPT", end)
	}
	// sgdisk agrees, and the GPT is consistent (main and backup).
	if out := output(t, "sgdisk", "--attributes=1:show", img); !strings.Contains(out, "legacy BIOS bootable") {
		t.Errorf("sgdisk attributes: %q", out)
	}
	if out := output(t, "sgdisk", "--verify", img); !strings.Contains(out, "No problems found") {
		t.Errorf("sgdisk --verify:\n%s", out)
	}

	raw, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	// gptmbr.bin's boot code in the MBR, protective partition kept.
	gptmbr, err := os.ReadFile(DefaultLoaders.GPTMBR)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(raw[:440], gptmbr[:440]) {
		t.Error("MBR boot code is not gptmbr.bin")
	}
	if raw[446+4] != 0xee || raw[510] != 0x55 || raw[511] != 0xaa {
		t.Error("protective MBR lost")
	}
	// FAT32 boot sector: syslinux installed, enough clusters to be FAT32 by
	// the spec's count (else syslinux reads it as FAT16).
	vbr := raw[espStart : espStart+512]
	if string(vbr[3:11]) != "SYSLINUX" {
		t.Errorf("ESP boot sector OEM id %q, want SYSLINUX", vbr[3:11])
	}
	if n := fat32Clusters(vbr); n < 65525 {
		t.Errorf("FAT32 has %d clusters, want >= 65525", n)
	}

	// dosfstools finds nothing wrong but go-diskfs's known quirks.
	if _, err := exec.LookPath("fsck.fat"); err == nil {
		fsckESP(t, raw[espStart:espStart+(p.Size*512)])
	}

	// Files, read back with mtools.
	at := img + "@@" + fmt.Sprint(espStart)
	if out := output(t, "mlabel", "-s", "-i", at, "::"); !strings.Contains(out, "STRATA") {
		t.Errorf("volume label: %q", out)
	}
	sys := output(t, "mdir", "-a", "-b", "-i", at, "::/syslinux")
	for _, f := range []string{"ldlinux.sys", "ldlinux.c32", "syslinux.cfg"} {
		if !strings.Contains(sys, "/syslinux/"+f) {
			t.Errorf("::/syslinux lacks %s:\n%s", f, sys)
		}
	}
	all := output(t, "mdir", "-/", "-b", "-i", at, "::")
	for _, f := range []string{"::/EFI/BOOT/BOOTX64.EFI", "::/live/vmlinuz", "::/live/initrd.img", "::/boot/grub/grub.cfg",
		"::/strata/README.txt", "::/strata/profiles/web-server-01.yaml", "::/strata/profiles/lab/db.yaml", "::/strata/datasets/photos.tar"} {
		if !strings.Contains(all, f+"\n") {
			t.Errorf("ESP lacks %s:\n%s", f, all)
		}
	}
	if !regexp.MustCompile(`::/live/strata-[0-9a-f]{12}\n`).MatchString(all) {
		t.Errorf("ESP lacks the GRUB marker file:\n%s", all)
	}
	if got := output(t, "mtype", "-i", at, "::/strata/profiles/web-server-01.yaml"); got != webProfile {
		t.Errorf("profile content %q", got)
	}
	kernel, _ := os.ReadFile(o.Kernel)
	if got := output(t, "mtype", "-i", at, "::/live/vmlinuz"); got != string(kernel) {
		t.Errorf("kernel on the ESP differs from the input (%d bytes vs %d)", len(got), len(kernel))
	}
	efi := output(t, "mtype", "-i", at, "::/EFI/BOOT/BOOTX64.EFI")
	if !strings.HasPrefix(efi, "MZ") {
		t.Error("BOOTX64.EFI is not a PE image")
	}
	for _, c := range []struct{ file, want string }{
		{"::/syslinux/syslinux.cfg", "APPEND console=tty0 console=ttyS0,115200n8 strata.server=http://10.0.2.2:8080"},
		{"::/boot/grub/grub.cfg", "linux /live/vmlinuz console=tty0 console=ttyS0,115200n8 strata.server=http://10.0.2.2:8080"},
	} {
		if got := output(t, "mtype", "-i", at, c.file); !strings.Contains(got, c.want) {
			t.Errorf("%s lacks %q:\n%s", c.file, c.want, got)
		}
	}
}

// fsckESP runs fsck.fat -n on a copy of the ESP and fails on any complaint
// except go-diskfs's known harmless ones: '..' of top-level directories
// pointing at the root cluster instead of 0, and an unset free-cluster hint.
func fsckESP(t *testing.T, esp []byte) {
	t.Helper()
	p := filepath.Join(t.TempDir(), "esp.img")
	if err := os.WriteFile(p, esp, 0o644); err != nil {
		t.Fatal(err)
	}
	out, _ := exec.Command("fsck.fat", "-n", p).CombinedOutput()
	harmless := regexp.MustCompile(`^(fsck\.fat .*|/\S*|\s*Invalid '\.\.' entry in the second slot\. Fixing\.|Free cluster summary uninitialized \(should be \d+\)|Leaving filesystem unchanged\.|.*: \d+ files, \d+/\d+ clusters|)$`)
	for _, l := range strings.Split(string(out), "\n") {
		if !harmless.MatchString(l) {
			t.Errorf("fsck.fat -n: %q; full output:\n%s", l, out)
			return
		}
	}
}

// fat32Clusters computes the data cluster count from a FAT32 boot sector.
func fat32Clusters(bs []byte) int64 {
	bps := int64(binary.LittleEndian.Uint16(bs[11:13]))
	spc := int64(bs[13])
	reserved := int64(binary.LittleEndian.Uint16(bs[14:16]))
	fats := int64(bs[16])
	total := int64(binary.LittleEndian.Uint32(bs[32:36]))
	spf := int64(binary.LittleEndian.Uint32(bs[36:40]))
	if bps == 0 || spc == 0 {
		return 0
	}
	return (total - reserved - fats*spf) / spc
}

func TestUSBSizeOption(t *testing.T) {
	needTools(t, "grub-mkstandalone", "syslinux", "sfdisk")
	o := structOptions(t)
	o.Size = 300 * mib
	if err := USB(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	img := filepath.Join(o.Out, USBFile)
	st, err := os.Stat(img)
	if err != nil {
		t.Fatal(err)
	}
	if st.Size() != 300*mib {
		t.Errorf("image is %d bytes, want --size 300 MiB", st.Size())
	}
	out := output(t, "sfdisk", "--json", img)
	if !strings.Contains(out, `"size": 610304`) { // 300 MiB - 2 MiB in sectors
		t.Errorf("ESP does not fill the image:\n%s", out)
	}
	o.Size = 20 * mib
	if err := USB(context.Background(), o); err == nil || !strings.Contains(err.Error(), "too small") {
		t.Errorf("--size 20M: %v", err)
	}
}

// TestUSBLargeSizes builds sparse images at sizes where go-diskfs's FAT32
// layout would be one FAT entry short (syslinux crashed on 32G and 40G).
func TestUSBLargeSizes(t *testing.T) {
	needTools(t, "grub-mkstandalone", "syslinux", "mdir")
	if testing.Short() {
		t.Skip("skipping multi-GiB sparse images in -short mode")
	}
	for _, size := range []int64{32 * gib, 40 * gib} {
		o := structOptions(t)
		o.Size = size
		if err := USB(context.Background(), o); err != nil {
			t.Fatalf("--size %s: %v", humanSize(size), err)
		}
		img := filepath.Join(o.Out, USBFile)
		if out := output(t, "mdir", "-a", "-b", "-i", img+"@@"+fmt.Sprint(espStart), "::/syslinux"); !strings.Contains(out, "ldlinux.sys") {
			t.Errorf("--size %s: no ldlinux.sys:\n%s", humanSize(size), out)
		}
		os.Remove(img)
	}
}

func TestUSBRefusesHugeFile(t *testing.T) {
	needTools(t, "grub-mkstandalone")
	o := structOptions(t)
	o.Data = t.TempDir()
	f, err := os.Create(filepath.Join(o.Data, "big.img"))
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(fatMaxFile + 1); err != nil { // sparse
		t.Fatal(err)
	}
	f.Close()
	err = USB(context.Background(), o)
	if err == nil || !strings.Contains(err.Error(), "4 GiB") {
		t.Errorf("a 4 GiB file on FAT32: %v", err)
	}
}

func TestISOStructure(t *testing.T) {
	needTools(t, "grub-mkstandalone", "xorriso", "mdir", "sfdisk")
	o := structOptions(t)
	if err := ISO(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	iso := filepath.Join(o.Out, ISOFile)
	st, err := os.Stat(iso)
	if err != nil {
		t.Fatal(err)
	}
	if st.Size()%mib != 0 {
		t.Errorf("ISO is %d bytes, not padded to a whole MiB", st.Size())
	}
	if left, _ := filepath.Glob(filepath.Join(o.Out, ".strata-iso-*")); len(left) > 0 {
		t.Errorf("staging left behind: %v", left)
	}

	// El Torito as xorriso reads it.
	et := output(t, "xorriso", "-indev", iso, "-report_el_torito", "plain")
	for _, re := range []string{
		`El Torito boot img :\s+1\s+BIOS\s+y\s+none\s+0x0000\s+0x00\s+4\s+\d+`,
		`El Torito boot img :\s+2\s+UEFI\s+y\s+none`,
		`El Torito img path :\s+1\s+/isolinux/isolinux.bin`,
		`El Torito img opts :\s+1\s+boot-info-table isohybrid-suitable`,
		`El Torito img path :\s+2\s+/boot/grub/efi.img`,
		`El Torito cat path :\s+/isolinux/boot.cat`,
	} {
		if !regexp.MustCompile(re).MatchString(et) {
			t.Errorf("-report_el_torito lacks %s:\n%s", re, et)
		}
	}
	// Our own reader agrees with xorriso on where the EFI image is.
	f, err := os.Open(iso)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	blocks, entries, err := readElTorito(f)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 2 || entries[0].Platform != 0 || entries[1].Platform != 0xef {
		t.Fatalf("boot entries %+v", entries)
	}
	efiLBA := entries[1].LBA
	if m := regexp.MustCompile(`El Torito boot img :\s+2\s+UEFI.*\s(\d+)\n`).FindStringSubmatch(et); m == nil || m[1] != fmt.Sprint(efiLBA) {
		t.Errorf("xorriso's UEFI image LBA %v, ours %d", m, efiLBA)
	}

	// The isohybrid MBR.
	sa := output(t, "xorriso", "-indev", iso, "-report_system_area", "plain")
	for _, re := range []string{
		`System area summary: MBR isohybrid`,
		`MBR partition      :\s+1\s+0x80\s+0x17\s+0\s+` + fmt.Sprint(st.Size()/512) + `\n`,
		`MBR partition      :\s+2\s+0x00\s+0xef\s+` + fmt.Sprint(efiLBA*4) + `\s+\d+`,
		`MBR partition path :\s+2\s+/boot/grub/efi.img`,
	} {
		if !regexp.MustCompile(re).MatchString(sa) {
			t.Errorf("-report_system_area lacks %s:\n%s", re, sa)
		}
	}
	if int64(blocks)*isoBlock > st.Size() {
		t.Errorf("volume of %d blocks is larger than the file", blocks)
	}

	// Volume id and Rock Ridge names.
	vol := output(t, "xorriso", "-indev", iso, "-pvd_info")
	if !strings.Contains(vol, "Volume Id    : STRATA") {
		t.Errorf("volume id:\n%s", vol)
	}
	tree := output(t, "xorriso", "-indev", iso, "-find", "/", "-type", "f")
	for _, f := range []string{"/live/vmlinuz", "/live/initrd.img", "/isolinux/isolinux.bin", "/isolinux/ldlinux.c32",
		"/isolinux/isolinux.cfg", "/boot/grub/grub.cfg", "/strata/profiles/web-server-01.yaml", "/strata/profiles/lab/db.yaml"} {
		if !strings.Contains(tree, "'"+f+"'") {
			t.Errorf("ISO lacks %s:\n%s", f, tree)
		}
	}

	// The EFI image: FAT12 with GRUB only, readable in place.
	at := iso + "@@" + fmt.Sprint(int64(efiLBA)*isoBlock)
	if out := output(t, "mdir", "-b", "-/", "-i", at, "::"); !strings.Contains(out, "::/EFI/BOOT/BOOTX64.EFI") {
		t.Errorf("EFI image lacks BOOTX64.EFI:\n%s", out)
	}
	raw := make([]byte, 512)
	if _, err := f.ReadAt(raw, int64(efiLBA)*isoBlock); err != nil {
		t.Fatal(err)
	}
	if got := string(raw[54:62]); got != "FAT12   " {
		t.Errorf("EFI image filesystem %q, want FAT12", got)
	}
}

func TestPXEBundle(t *testing.T) {
	needTools(t, "grub-mkstandalone")
	o := structOptions(t)
	o.Hosts = []Host{{MAC: "52:54:00:AA:BB:CC", Profile: "web-server-01", Append: "strata.yes"}}
	// An admin's own host file must survive a rebuild.
	mine := filepath.Join(o.Out, PXEHostsDir, "52-54-00-00-00-01.ipxe")
	if err := os.MkdirAll(filepath.Dir(mine), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(mine, []byte("#!ipxe\nset profile mine\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := PXE(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	read := func(p string) string {
		t.Helper()
		b, err := os.ReadFile(filepath.Join(o.Out, filepath.FromSlash(p)))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	kernel, _ := os.ReadFile(o.Kernel)
	if read(KernelPath) != string(kernel) {
		t.Error("bundle kernel differs from the input")
	}
	if got := read(PXEHostsDir + "/52-54-00-aa-bb-cc.ipxe"); got != "#!ipxe\nset profile web-server-01\nset extra strata.yes\n" {
		t.Errorf("iPXE host file %q", got)
	}
	if got := read(PXEHostsDir + "/52-54-00-aa-bb-cc.cfg"); !strings.Contains(got, "set profile=web-server-01") {
		t.Errorf("GRUB host file %q", got)
	}
	if got := read(PXEHostsDir + "/52-54-00-00-00-01.ipxe"); got != "#!ipxe\nset profile mine\n" {
		t.Errorf("admin's host file changed: %q", got)
	}
	if !strings.Contains(read(PXEScript), "strata.server=http://10.0.2.2:8080") {
		t.Error("boot.ipxe lacks --append")
	}
	if !strings.HasPrefix(read(PXEGRUBEFI), "MZ") {
		t.Error("GRUB EFI network loader is not a PE image")
	}
	if len(read(PXEGRUBBIOS)) < 10000 {
		t.Error("GRUB BIOS network loader is missing or tiny")
	}
	if read("profiles/lab/db.yaml") != "hostname: db\n" {
		t.Error("profiles not copied")
	}
	// Nothing an iPXE script would expand by accident in the relative paths.
	for _, p := range []string{KernelPath, InitrdPath} {
		if !strings.Contains(read(PXEScript), " "+p) {
			t.Errorf("boot.ipxe does not load %s relative to itself", p)
		}
	}
}

func TestOptionErrors(t *testing.T) {
	k, i, _ := fakeInputs(t)
	ctx := context.Background()
	cases := map[string]Options{
		"no kernel":      {Initrd: i, Out: t.TempDir()},
		"missing kernel": {Kernel: k + ".gone", Initrd: i, Out: t.TempDir()},
		"no out":         {Kernel: k, Initrd: i},
		"bad append":     {Kernel: k, Initrd: i, Out: t.TempDir(), Append: "a=$(reboot)"},
		"profiles file":  {Kernel: k, Initrd: i, Out: t.TempDir(), Profiles: k},
		"no profiles":    {Kernel: k, Initrd: i, Out: t.TempDir(), Profiles: t.TempDir()},
		"swapped":        {Kernel: i, Initrd: k, Out: t.TempDir()},
	}
	for name, o := range cases {
		for kind, build := range map[string]func(context.Context, Options) error{"usb": USB, "iso": ISO, "pxe": PXE} {
			if err := build(ctx, o); err == nil {
				t.Errorf("%s: %s accepted it", name, kind)
			}
		}
	}
	// An invalid profile is refused with its file, line and column.
	invalid := t.TempDir()
	os.WriteFile(filepath.Join(invalid, "ok.yaml"), []byte(webProfile), 0o644)
	os.WriteFile(filepath.Join(invalid, "typo.yaml"), []byte(webProfile+"bootloadr: {type: grub}\n"), 0o644)
	for kind, build := range map[string]func(context.Context, Options) error{"usb": USB, "iso": ISO, "pxe": PXE} {
		err := build(ctx, Options{Kernel: k, Initrd: i, Out: t.TempDir(), Profiles: invalid})
		if err == nil || !strings.Contains(err.Error(), "1 invalid profiles") || !strings.Contains(err.Error(), "typo.yaml:10:1") {
			t.Errorf("%s with an invalid profile: %v", kind, err)
		}
	}
	bad := Options{Kernel: k, Initrd: i, Out: t.TempDir(), Loaders: Loaders{GPTMBR: "/nonexistent/gptmbr.bin"}}
	if err := USB(ctx, bad); err == nil || !strings.Contains(err.Error(), "syslinux-common") {
		t.Errorf("missing gptmbr.bin: %v (want the Debian package named)", err)
	}
	// A missing program is reported with its package; the recorded argv
	// shows what would have run.
	rec := &run.Recorder{Respond: func(c run.Cmd) (run.Result, error) { return run.Result{}, run.ErrNotFound }}
	err := USB(ctx, Options{Kernel: k, Initrd: i, Out: t.TempDir(), Runner: rec})
	if !errors.Is(err, run.ErrNotFound) || !strings.Contains(err.Error(), "grub-common") {
		t.Errorf("grub-mkstandalone missing: %v", err)
	}
	if len(rec.Calls) != 1 || rec.Calls[0].Name != "grub-mkstandalone" || !strings.Contains(rec.Argv(), "--format=x86_64-efi") {
		t.Errorf("recorded commands:\n%s", rec.Argv())
	}
}
