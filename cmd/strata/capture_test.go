package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stratahq/strata/profile"
)

// loopDisk is a sparse image attached as a loop device with partitions.
type loopDisk struct {
	img, dev string
}

// hostTier skips a test that needs root, loop devices and the storage tools.
func hostTier(t *testing.T, tools ...string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("skipping: needs root for loop devices")
	}
	if _, err := os.Stat("/dev/loop-control"); err != nil {
		t.Skip("skipping: no loop devices (/dev/loop-control)")
	}
	for _, tool := range append([]string{"losetup", "partx", "sfdisk", "blkid", "lsblk"}, tools...) {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("skipping: %s not installed", tool)
		}
	}
}

func sh(t *testing.T, stdin, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// newLoopDisk makes a sparse image of size bytes, partitions it with the
// sfdisk script and attaches it; it is detached when the test ends.
func newLoopDisk(t *testing.T, size int64, script string) *loopDisk {
	t.Helper()
	img := filepath.Join(t.TempDir(), "disk.img")
	f, err := os.Create(img)
	if err != nil {
		t.Fatal(err)
	}
	f.Truncate(size)
	f.Close()
	sh(t, script, "sfdisk", "-q", img)
	dev := strings.TrimSpace(sh(t, "", "losetup", "--find", "--show", "--partscan", img))
	t.Cleanup(func() { exec.Command("losetup", "-d", dev).Run() })
	exec.Command("partx", "--add", dev).Run() // where losetup's scan makes no nodes
	for i := 0; i < 50; i++ {
		if _, err := os.Stat(dev + "p1"); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	return &loopDisk{img: img, dev: dev}
}

func (d *loopDisk) part(n int) string { return d.dev + "p" + string(rune('0'+n)) }

// The GPT machine of the issue: ESP, ext4, xfs, btrfs with subvolumes, swap,
// made with specific settings; capture restricted to the loop device gives
// a valid profile with exactly those settings.
func TestCaptureLoopGPT(t *testing.T) {
	hostTier(t, "mkfs.fat", "mke2fs", "mkfs.xfs", "mkfs.btrfs", "mkswap", "dumpe2fs", "xfs_db", "fsck.fat", "btrfs")
	d := newLoopDisk(t, 2<<30, `label: gpt
label-id: 6E0C0F9A-3B1D-4C55-9E7A-1D2C3B4A5F60
size=64M, type=U, uuid=71D0B6B8-20B2-4E0F-9C6A-0A1B2C3D4E01, name="EFI System Partition", attrs="RequiredPartition LegacyBIOSBootable GUID:60,62"
size=128M, type=L, uuid=71D0B6B8-20B2-4E0F-9C6A-0A1B2C3D4E02, name=root
size=400M, type=L, uuid=71D0B6B8-20B2-4E0F-9C6A-0A1B2C3D4E03, name=srv
size=512M, type=4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709, uuid=71D0B6B8-20B2-4E0F-9C6A-0A1B2C3D4E04, name=system
type=S, uuid=71D0B6B8-20B2-4E0F-9C6A-0A1B2C3D4E05, name=swap
`)
	sh(t, "", "mkfs.fat", "-F", "32", "-i", "1234ABCD", "-n", "ESP", d.part(1))
	sh(t, "", "mke2fs", "-q", "-t", "ext4", "-m", "1", "-I", "512", "-O", "^metadata_csum", "-L", "x", "-U", "11111111-2222-3333-4444-555555555555", d.part(2))
	sh(t, "", "mkfs.xfs", "-q", "-f", "-d", "agcount=3", "-L", "xf", "-m", "uuid=0bc76a50-2ec7-4bd0-8c83-7499e529812f,reflink=0", d.part(3))
	sh(t, "", "mkfs.btrfs", "-q", "-f", "-L", "bt", "-U", "ba8b21bd-a0b7-40e7-bf1d-2362bb596bf3", "-O", "^no-holes", d.part(4))
	sh(t, "", "mkswap", "-q", "-L", "sw", "-U", "41b4092b-3ba5-4553-89ed-1ddc15fa2e6f", d.part(5))
	mnt := t.TempDir()
	sh(t, "", "mount", d.part(4), mnt)
	sh(t, "", "btrfs", "-q", "subvolume", "create", mnt+"/@")
	sh(t, "", "btrfs", "-q", "subvolume", "create", mnt+"/@home")
	sh(t, "", "btrfs", "subvolume", "set-default", mnt+"/@")
	sh(t, "", "umount", mnt)

	code, out, errs := strata("capture", "-disk", d.dev)
	if code != exitOK {
		t.Fatalf("capture: exit %d\n%s", code, errs)
	}
	p, err := profile.Parse("captured.yaml", []byte(out))
	if err != nil {
		t.Fatalf("captured profile does not validate: %v\n%s", err, out)
	}
	disk := p.Disks[0]
	check := func(what string, got, want any) {
		t.Helper()
		if got != want {
			t.Errorf("%s = %v, want %v", what, got, want)
		}
	}
	check("table", disk.Table, "gpt")
	check("disk GUID", disk.GUID, "6E0C0F9A-3B1D-4C55-9E7A-1D2C3B4A5F60")
	if len(disk.Partitions) != 5 {
		t.Fatalf("%d partitions, want 5\n%s", len(disk.Partitions), out)
	}
	pt := disk.Partitions
	check("esp name", pt[0].Name, "p1")
	check("esp PARTLABEL", pt[0].Label, "EFI System Partition")
	check("esp type", pt[0].Type, "esp")
	check("esp PARTUUID", pt[0].UUID, "71D0B6B8-20B2-4E0F-9C6A-0A1B2C3D4E01")
	check("esp attributes", strings.Join(pt[0].Attributes, ","), "required,legacy-bios-bootable,read-only,hidden")
	check("esp size", pt[0].Size.String(), "64MiB")
	check("root name", pt[1].Name, "root")
	check("srv name", pt[2].Name, "srv")
	check("system type", pt[3].Type, "linux-root-x86-64")
	check("system PARTUUID", pt[3].UUID, "71D0B6B8-20B2-4E0F-9C6A-0A1B2C3D4E04")
	check("swap type", pt[4].Type, "swap")
	check("swap size", pt[4].Size.String(), "rest")
	fs := map[string]profile.Filesystem{}
	for _, f := range p.Filesystems {
		fs[f.Device] = f
	}
	esp := fs["main/p1"]
	check("vfat volume id", esp.UUID, "1234-ABCD")
	check("vfat label", esp.Label, "ESP")
	if esp.VFAT == nil || esp.VFAT.FATSize != 32 {
		t.Errorf("vfat settings %+v, want fat_size 32", esp.VFAT)
	}
	ext := fs["main/root"]
	check("ext UUID", ext.UUID, "11111111-2222-3333-4444-555555555555")
	check("ext label", ext.Label, "x")
	if e := ext.Ext; e == nil {
		t.Error("no ext settings")
	} else {
		check("ext inode size", e.InodeSize, 512)
		check("ext reserved blocks", e.ReservedBlocks, int64(1310)) // mke2fs -m 1 of 131072 blocks
		f := strings.Join(e.Features, ",")
		if !strings.Contains(f, "^metadata_csum") || strings.Contains(f, ",metadata_csum") || !strings.Contains(f, "has_journal") {
			t.Errorf("ext features %s: want has_journal and ^metadata_csum", f)
		}
	}
	xfs := fs["main/srv"]
	check("xfs UUID", xfs.UUID, "0bc76a50-2ec7-4bd0-8c83-7499e529812f")
	check("xfs label", xfs.Label, "xf")
	if x := xfs.XFS; x == nil {
		t.Error("no xfs settings")
	} else {
		check("xfs agcount", x.AGCount, 3)
		f := strings.Join(x.Features, ",")
		if !strings.Contains(f, "^reflink") || !strings.Contains(f, "crc") || !strings.Contains(f, "finobt") {
			t.Errorf("xfs features %s: want crc, finobt, ^reflink", f)
		}
	}
	bt := fs["main/system"]
	check("btrfs UUID", bt.UUID, "ba8b21bd-a0b7-40e7-bf1d-2362bb596bf3")
	check("btrfs label", bt.Label, "bt")
	if b := bt.Btrfs; b == nil {
		t.Error("no btrfs settings")
	} else {
		var subs []string
		for _, s := range b.Subvolumes {
			subs = append(subs, s.Path)
		}
		check("btrfs subvolumes", strings.Join(subs, ","), "@,@home")
		check("btrfs default subvolume", b.DefaultSubvolume, "@")
		if f := strings.Join(b.Features, ","); !strings.Contains(f, "^no-holes") {
			t.Errorf("btrfs features %s: want ^no-holes", f)
		}
	}
	sw := fs["main/swap"]
	check("swap UUID", sw.UUID, "41b4092b-3ba5-4553-89ed-1ddc15fa2e6f")
	check("swap label", sw.Label, "sw")

	// No drift against itself; drift after changes made with the real tools.
	dir := t.TempDir()
	host := filepath.Join(dir, "host.yaml")
	os.WriteFile(host, []byte(out), 0o644)
	if code, o, e := strata("diff", "-disk", d.dev, host); code != exitOK {
		t.Fatalf("diff right after capture: exit %d\n%s%s", code, o, e)
	}
	root := filepath.Join(dir, "root")
	os.MkdirAll(root+"/etc", 0o755)
	os.WriteFile(root+"/etc/fstab", []byte("UUID=11111111-2222-3333-4444-555555555555 /data ext4 defaults 0 2\n"), 0o644)
	strata("capture", "-disk", d.dev, "-root", root, "-into", host)
	os.WriteFile(root+"/etc/fstab", []byte("UUID=11111111-2222-3333-4444-555555555555 /data ext4 defaults,noatime 0 2\n"), 0o644)
	sh(t, "", "tune2fs", "-m", "2", d.part(2))
	code, o, e := strata("diff", "-disk", d.dev, "-root", root, host)
	if code != exitDrift {
		t.Fatalf("diff after drift: exit %d, want %d\n%s%s", code, exitDrift, o, e)
	}
	for _, want := range []string{
		"~ filesystems[1].mount.options (main/root /data): defaults -> defaults,noatime",
		"~ filesystems[1].ext.reserved_blocks (main/root /data): 1310 -> 2621",
	} {
		if !strings.Contains(o, want) {
			t.Errorf("diff output lacks %q:\n%s", want, o)
		}
	}
	// -into records the drift, then there is none; -commit commits it.
	sh(t, "", "git", "-C", dir, "init", "-q")
	sh(t, "", "git", "-C", dir, "add", "host.yaml")
	sh(t, "", "git", "-C", dir, "-c", "user.name=t", "-c", "user.email=t@example.org", "commit", "-q", "-m", "init")
	os.Setenv("GIT_AUTHOR_NAME", "strata")
	os.Setenv("GIT_AUTHOR_EMAIL", "strata@example.org")
	os.Setenv("GIT_COMMITTER_NAME", "strata")
	os.Setenv("GIT_COMMITTER_EMAIL", "strata@example.org")
	if code, _, e := strata("capture", "-disk", d.dev, "-root", root, "-into", host, "-commit"); code != exitOK || !strings.Contains(e, "committed") {
		t.Fatalf("capture -into -commit: exit %d\n%s", code, e)
	}
	msg := sh(t, "", "git", "-C", dir, "log", "-1", "--format=%B")
	if !strings.Contains(msg, "capture: filesystems (2)") || !strings.Contains(msg, "reserved_blocks") {
		t.Errorf("commit message does not summarise the drift:\n%s", msg)
	}
	if code, o, e := strata("diff", "-disk", d.dev, "-root", root, host); code != exitOK {
		t.Errorf("diff after -into: exit %d\n%s%s", code, o, e)
	}
}

// The msdos machine: boot flag, a logical partition, the disk identifier.
func TestCaptureLoopMsdos(t *testing.T) {
	hostTier(t, "mke2fs", "mkswap", "dumpe2fs")
	d := newLoopDisk(t, 1<<30, "label: dos\nlabel-id: 0x5eed1234\nsize=200M, type=83, bootable\ntype=5\nsize=300M, type=82\ntype=83\n")
	sh(t, "", "mke2fs", "-q", "-t", "ext4", "-L", "root", "-U", "c2516f7a-8e9d-4acb-9e0f-a1b2c3d4e5f6", d.part(1))
	sh(t, "", "mkswap", "-q", "-U", "d3627a8b-9fa0-4bdc-8f1a-b2c3d4e5f6a7", d.part(5))
	code, out, errs := strata("capture", "-disk", d.dev)
	if code != exitOK {
		t.Fatalf("capture: exit %d\n%s", code, errs)
	}
	p, err := profile.Parse("captured.yaml", []byte(out))
	if err != nil {
		t.Fatalf("captured profile does not validate: %v\n%s", err, out)
	}
	disk := p.Disks[0]
	if disk.Table != "msdos" || disk.DiskID != "0x5eed1234" || len(disk.Partitions) != 3 {
		t.Fatalf("disk: %+v", disk)
	}
	pt := disk.Partitions
	if !pt[0].Boot || pt[0].Logical || pt[0].Type != "linux" {
		t.Errorf("p1: %+v", pt[0])
	}
	if pt[1].Name != "p5" || !pt[1].Logical || pt[1].Type != "swap" || pt[1].Size.String() != "300MiB" {
		t.Errorf("p5: %+v", pt[1])
	}
	if pt[2].Name != "p6" || !pt[2].Logical || !pt[2].Size.Rest {
		t.Errorf("p6: %+v", pt[2])
	}
	if p.Filesystems[0].UUID != "c2516f7a-8e9d-4acb-9e0f-a1b2c3d4e5f6" || p.Filesystems[1].Device != "main/p5" {
		t.Errorf("filesystems: %+v", p.Filesystems)
	}
}

// Partition-level drift with the real tools: a partition grows into free
// space, a new one appears.
func TestDiffLoopPartitions(t *testing.T) {
	hostTier(t, "mke2fs", "dumpe2fs")
	d := newLoopDisk(t, 1<<30, "label: gpt\nstart=1M, size=100M, type=L, name=data\nstart=201M, size=100M, type=L, name=logs\n")
	sh(t, "", "mke2fs", "-q", "-t", "ext4", d.part(1))
	code, out, _ := strata("capture", "-disk", d.dev)
	if code != exitOK {
		t.Fatal("capture failed")
	}
	host := filepath.Join(t.TempDir(), "host.yaml")
	os.WriteFile(host, []byte(out), 0o644)
	sh(t, ",+50M", "sfdisk", "-q", "--no-reread", "--no-tell-kernel", "-N", "1", d.dev)
	sh(t, "size=20M, type=L, name=scratch", "sfdisk", "-q", "--no-reread", "--no-tell-kernel", "-a", d.dev)
	sh(t, "", "partx", "--update", d.dev)
	code, o, e := strata("diff", "-disk", d.dev, host)
	if code != exitDrift {
		t.Fatalf("diff: exit %d\n%s%s", code, o, e)
	}
	for _, want := range []string{"~ disks.main.partitions[0].size (main/data): 100MiB -> 150MiB", "+ disks.main.partitions[2] (main/scratch)"} {
		if !strings.Contains(o, want) {
			t.Errorf("diff lacks %q:\n%s", want, o)
		}
	}
}

func TestCaptureUsage(t *testing.T) {
	if code, _, _ := strata("capture", "-commit"); code != exitUsage {
		t.Errorf("-commit without -into: exit %d", code)
	}
	if code, _, _ := strata("diff"); code != exitUsage {
		t.Errorf("diff without a file: exit %d", code)
	}
	if code, _, e := strata("capture", "-replay", "../../capture/testdata/hosts/loop-msdos.txt", "-into", "/nonexistent.yaml"); code != exitFailed {
		t.Errorf("-into a missing file: exit %d %s", code, e)
	}
	// A recorded machine replays without touching this one.
	code, out, e := strata("capture", "-replay", "../../capture/testdata/hosts/loop-msdos.txt")
	if code != exitOK || !strings.Contains(out, "disk_id: \"0x5eed1234\"") {
		t.Errorf("capture -replay: exit %d\n%s%s", code, out, e)
	}
	if code, o, _ := strata("diff", "-replay", "../../capture/testdata/hosts/loop-msdos.txt", "../../examples/bios-msdos.yaml"); code != exitDrift || o == "" {
		t.Errorf("diff of a recorded machine against another profile: exit %d, want %d", code, exitDrift)
	}
}
