package qemutests

// The QEMU tier of restore (rule 8): what the host cannot do without
// device-mapper and md. Each test boots the live image on blank virtual
// disks and runs one shell script in the live shell: it restores examples
// with strata restore and reads the result back with the tools themselves.
// The script and the profiles reach the guest on a raw virtio disk, so the
// test types a single short line (the serial line editor drops keystrokes
// in long input under TCG) and depends on no network.

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stratahq/strata/initramfs"
	"github.com/stratahq/strata/profile"
	"github.com/stratahq/strata/qemu-tests/vm"
	"github.com/stratahq/strata/restore/plan"
	"github.com/stratahq/strata/restore/probe"
)

const slot = 64 << 10

var (
	restoreOnce sync.Once
	restoreImg  initramfs.Result
	restoreErr  error
)

// restoreImage is the live image for the restore and capture tests, built
// into a directory of its own: the cache's test-live is rebuilt by every
// test binary that boots the live image, from whatever tree it runs in, and
// may change under a test waiting for a VM slot.
func restoreImage(t *testing.T) initramfs.Result {
	t.Helper()
	liveImage(t) // the skips: -short, no QEMU, no cached kernel
	restoreOnce.Do(func() {
		restoreImg, restoreErr = initramfs.Build(context.Background(), initramfs.Options{
			Out: filepath.Join(initramfs.DefaultCacheDir(), "test-live-restore"),
			Log: func(f string, a ...any) {},
		})
	})
	if restoreErr != nil {
		t.Fatalf("build live image: %v", restoreErr)
	}
	return restoreImg
}

// scriptDisk holds the script in slot 0 and the profiles in the next
// slots; the script's prologue copies each to /tmp/BASENAME. A profile is
// an example's file name, or a path relative to qemu-tests.
func scriptDisk(t *testing.T, script string, profiles ...string) (vm.Disk, string) {
	t.Helper()
	var pro strings.Builder
	pro.WriteString("set -u\nrun() { n=$1; shift; echo \"@@start $n@@\"; \"$@\"; echo \"@@rc $n $?@@\"; }\n")
	var img []byte
	for i, n := range profiles {
		path := n
		if !strings.Contains(n, "/") {
			path = filepath.Join("..", "examples", n)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if len(b) > slot {
			t.Fatalf("%s is larger than a slot", path)
		}
		fmt.Fprintf(&pro, "busybox dd if=$FILES bs=65536 skip=%d count=1 2>/dev/null | busybox head -c %d > /tmp/%s\n", i+1, len(b), filepath.Base(n))
		img = append(img, append(b, make([]byte, slot-len(b))...)...)
	}
	full := pro.String() + script + "\necho @@done@@\n"
	if len(full) > slot {
		t.Fatal("script larger than a slot")
	}
	img = append(append([]byte(full), make([]byte, slot-len(full))...), img...)
	p := filepath.Join(t.TempDir(), "files.img")
	if err := os.WriteFile(p, append(img, make([]byte, 1<<20)...), 0o644); err != nil {
		t.Fatal(err)
	}
	return vm.Disk{Path: p, Serial: "strata-test-files"}, strconv.Itoa(len(full))
}

type section struct {
	out string
	rc  int
}

// runScript boots the live image with disks and the script disk (last,
// seen in the guest as dev), waits for the live shell's prompt, types one
// line that runs the script, types pass at every LUKS passphrase prompt and
// returns each section by name. The one helper for every live-shell test
// here (restore and capture).
func runScript(t *testing.T, dev, script, pass string, profiles []string, timeout time.Duration, disks ...vm.Disk) map[string]section {
	t.Helper()
	files, n := scriptDisk(t, script, profiles...)
	img := restoreImage(t)
	v := vm.StartT(t, vm.Config{
		Name: t.Name(), Kernel: img.Kernel, Initrd: img.Initramfs, Append: "console=ttyS0 panic=-1 strata.rescue=none strata.wizard=off",
		Disks: append(disks, files), Net: &vm.Net{}, MemoryMB: 2048, CPUs: 2, Timeout: timeout + 5*time.Minute, NoReboot: true,
	})
	report(t, v)
	if _, err := v.Expect("here is a shell", 60*time.Second); err != nil {
		t.Fatal(err)
	}
	// Type only once the shell prompts: keys sent while it starts are lost
	// or split around its banner.
	if err := v.WaitPrompt(vm.LivePrompt, 3*time.Minute); err != nil {
		t.Fatal(err)
	}
	before := len(v.Console().Output())
	if err := v.TypeLine(fmt.Sprintf("busybox head -c %s %s > /tmp/t.sh; FILES=%s busybox sh /tmp/t.sh", n, dev, dev), 30*time.Second); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(timeout)
	for {
		m, err := v.Expect(`Passphrase for LUKS volume \S+(, again)?: |@@done@@`, time.Until(deadline))
		if err != nil {
			t.Fatalf("the script did not finish: %v\n%s", err, v.Tail(60))
		}
		if m[0] == "@@done@@" {
			break
		}
		if err := v.Send(pass + "\r"); err != nil {
			t.Fatal(err)
		}
	}
	out := v.Console().Output()[before:]
	if strings.Contains(out, pass) && pass != "" {
		t.Error("the passphrase appeared on the console")
	}
	secs := map[string]section{}
	rx := regexp.MustCompile(`(?s)@@start (\S+)@@\n(.*?)@@rc (\S+) (\d+)@@`)
	for _, m := range rx.FindAllStringSubmatch(out, -1) {
		rc, _ := strconv.Atoi(m[4])
		secs[m[1]] = section{out: m[2], rc: rc}
	}
	_ = v.Send("poweroff\r")
	return secs
}

func need(t *testing.T, secs map[string]section, name string, rc int, wants ...string) string {
	t.Helper()
	s, ok := secs[name]
	if !ok {
		t.Errorf("%s: did not run", name)
		return ""
	}
	if s.rc != rc {
		t.Errorf("%s: exit %d, want %d\n%s", name, s.rc, rc, s.out)
	}
	for _, w := range wants {
		if !strings.Contains(s.out, w) {
			t.Errorf("%s lacks %q\n%s", name, w, s.out)
		}
	}
	return s.out
}

// hostPlan is the plan the host makes for the same disks, to compare with
// what the guest built.
func hostPlan(t *testing.T, example string, disks []probe.Disk, o plan.Options) *plan.Plan {
	t.Helper()
	path := example
	if !strings.Contains(example, "/") {
		path = filepath.Join("..", "examples", example)
	}
	p, err := profile.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	pl, err := plan.Build(p, disks, o)
	if err != nil {
		t.Fatal(err)
	}
	return pl
}

// checkLVs compares lvs output with the plan's LV sizes: the proof that the
// plan's LUKS, md and LVM arithmetic matches the tools.
func checkLVs(t *testing.T, out string, pl *plan.Plan) {
	t.Helper()
	got := map[string]int64{}
	for _, m := range regexp.MustCompile(`"lv_name":"([^"]+)", "vg_name":"([^"]+)", "lv_size":"(\d+)"`).FindAllStringSubmatch(out, -1) {
		n, _ := strconv.ParseInt(m[3], 10, 64)
		got[m[2]+"/"+m[1]] = n
	}
	for _, d := range pl.Devices {
		if d.Kind == "lv" && got[d.Ref] != d.Size {
			t.Errorf("%s is %d bytes, the plan said %d", d.Ref, got[d.Ref], d.Size)
		}
	}
}

const lvs = "lvm lvs --config 'activation{udev_sync=0 udev_rules=0}' --reportformat json --units b --nosuffix -o lv_name,vg_name,lv_size"

// TestRestoreLaptop: LUKS2 + LVM + ext4/xfs/vfat/swap on an 8 GiB disk. A
// second 8 GiB disk makes automatic matching ambiguous, a 2 GiB one is too
// small; then the restore, a re-run that changes nothing, close, and a
// reinstall that keeps /home.
func TestRestoreLaptop(t *testing.T) {
	t.Parallel() // VM tests share the machine's VM slots (qemu-tests/vm)
	const pass = "correct horse battery staple"
	const r = "strata restore /tmp/laptop-uefi.yaml --layers-only"
	script := strings.Join([]string{
		"run ambiguous " + r + " --yes",
		"run toosmall " + r + " --disk main=/dev/vdc --yes",
		"run untouched wipefs --no-act /dev/vdb /dev/vdc",
		"run restore " + r + " --disk main=vda --yes",
		"run luksdump cryptsetup luksDump /dev/vda3",
		"run lvs " + lvs,
		"run blkid blkid /dev/vda1 /dev/vda2 /dev/mapper/vg0-root /dev/mapper/vg0-home /dev/mapper/vg0-swap",
		"run fstab busybox cat /mnt/strata/etc/fstab /mnt/strata/etc/crypttab",
		"run rerun " + r + " --disk main=vda --yes",
		"run files busybox sh -c 'echo keep > /mnt/strata/home/kept && echo lose > /mnt/strata/lost'",
		"run close " + r + " --disk main=vda --close",
		"run closed busybox sh -c 'cryptsetup status cryptroot; echo mounts=$(busybox grep -c /mnt/strata /proc/self/mountinfo)'",
		"run reinstall " + r + " --disk main=vda --keep /home --fresh --yes",
		"run after busybox sh -c 'busybox cat /mnt/strata/home/kept; busybox test -e /mnt/strata/lost && echo old-root-still-there'",
		"run close2 " + r + " --disk main=vda --close",
	}, "\n")
	secs := runScript(t, "/dev/vdd", script, pass, []string{"laptop-uefi.yaml"}, 30*time.Minute,
		vm.Disk{Path: sparseDisk(t, 8<<30), Serial: "strata-vda"},
		vm.Disk{Path: sparseDisk(t, 8<<30), Serial: "other"},
		vm.Disk{Path: sparseDisk(t, 2<<30), Serial: "tiny"})

	need(t, secs, "ambiguous", 3, "ambiguous: /dev/vda, /dev/vdb all match selector {min_size 8GiB}", "--disk main=/dev/vda")
	need(t, secs, "toosmall", 3, "short by")
	if out := need(t, secs, "untouched", 0); strings.TrimSpace(out) != "" {
		t.Errorf("a refused disk has signatures:\n%s", out)
	}
	need(t, secs, "restore", 0, "done: ")
	need(t, secs, "luksdump", 0, "0d8b6c2e-4f1a-4b3c-9d5e-6f7a8b9c0d1e", "laptop-root", "sector: 4096 [bytes]", "argon2id", "offset: 16777216 [bytes]")
	pl := hostPlan(t, "laptop-uefi.yaml", []probe.Disk{{Name: "vda", Path: "/dev/vda", Size: 8 << 30, LogicalSectorSize: 512, PhysicalSectorSize: 512, Serial: "strata-vda"}},
		plan.Options{Disks: map[string]string{"main": "vda"}})
	checkLVs(t, need(t, secs, "lvs", 0), pl)
	need(t, secs, "blkid", 0, `UUID="7A3C-1F2E"`, `PARTUUID="1f0c2a3b-4d5e-4f60-8172-93a4b5c6d7e8"`, `UUID="9f2e3d4c-5b6a-4798-8b7c-6d5e4f3a2b1c"`,
		`UUID="a03f4e5d-6c7b-48a9-9c8d-7e6f5a4b3c2d"`, `UUID="b1405f6e-7d8c-49ba-8d9e-8f7a6b5c4d3e"`)
	want, _ := os.ReadFile(filepath.Join("..", "restore", "testdata", "tabs", "laptop-uefi.fstab"))
	wantCT, _ := os.ReadFile(filepath.Join("..", "restore", "testdata", "tabs", "laptop-uefi.crypttab"))
	need(t, secs, "fstab", 0, string(want)+string(wantCT))
	need(t, secs, "rerun", 0, "done: 0 steps ran, 20 were already done")
	need(t, secs, "close", 0, "done: ")
	need(t, secs, "closed", 0, "is inactive", "mounts=0")
	need(t, secs, "reinstall", 0, "verify-fs:vg0/home: done (verified", "verify-luks:cryptroot: done", "mkfs:vg0/root: done", "lv:vg0/root: skipped")
	if out := need(t, secs, "after", 1, "keep"); strings.Contains(out, "old-root-still-there") {
		t.Errorf("the root filesystem was not made again:\n%s", out)
	}
	need(t, secs, "close2", 0)
}

// TestRestoreServerKilledMidLVM: md RAID1 on two virtio-scsi disks, LVM and
// XFS. strata is killed (-9) as soon as it starts creating LVs; the re-run
// finishes without recreating what was there.
func TestRestoreServerKilledMidLVM(t *testing.T) {
	t.Parallel() // VM tests share the machine's VM slots (qemu-tests/vm)
	const r = "strata restore /tmp/server-raid1.yaml --layers-only"
	script := strings.Join([]string{
		"run disks strata plan --list-disks",
		"run killed busybox sh -c '" + r + " --yes --json > /tmp/run1.log 2>&1 & until busybox grep -q \"lvm lvcreate\" /tmp/run1.log; do busybox usleep 20000; done; busybox kill -9 $!; busybox tail -n 2 /tmp/run1.log'",
		"run resume " + r + " --yes",
		"run detail mdadm --detail /dev/md/md-boot",
		"run sizes busybox sh -c 'busybox blockdev --getsize64 /dev/md/md-boot; busybox blockdev --getsize64 /dev/md/md-data'",
		"run lvs " + lvs,
		"run xfs xfs_db -r -c 'sb 0' -c 'p agcount logblocks' /dev/mapper/vg--srv-root",
		"run close " + r + " --close",
		"run mdstat busybox cat /proc/mdstat",
	}, "\n")
	secs := runScript(t, "/dev/vda", script, "", []string{"server-raid1.yaml"}, 30*time.Minute,
		vm.Disk{Path: sparseDisk(t, 6<<30), Interface: "scsi", Serial: "drive-scsi0-0-0-0"},
		vm.Disk{Path: sparseDisk(t, 6<<30), Interface: "scsi", Serial: "drive-scsi0-0-1-0"})

	need(t, secs, "disks", 0, "/dev/sda", "/dev/sdb")
	if out := need(t, secs, "killed", 0, "lvm lvcreate"); strings.Contains(out, `"event":"run-done"`) {
		t.Errorf("the first run finished before the kill:\n%s", out)
	}
	need(t, secs, "resume", 0, "raid:md-boot: skipped (already done", "raid:md-data: skipped (already done", "vg:vg-srv: skipped (already done", "done: ")
	need(t, secs, "detail", 0, "Raid Level : raid1", "Version : 1.0", "Name : fileserver:boot", "Raid Devices : 2")
	pl := hostPlan(t, "server-raid1.yaml", []probe.Disk{
		{Name: "sda", Path: "/dev/sda", Size: 6 << 30, LogicalSectorSize: 512, Serial: "drive-scsi0-0-0-0"},
		{Name: "sdb", Path: "/dev/sdb", Size: 6 << 30, LogicalSectorSize: 512, Serial: "drive-scsi0-0-1-0"},
	}, plan.Options{Disks: map[string]string{"a": "sda", "b": "sdb"}})
	var raid []string
	for _, d := range pl.Devices {
		if d.Kind == "raid" {
			raid = append(raid, strconv.FormatInt(d.Size, 10))
		}
	}
	need(t, secs, "sizes", 0, strings.Join(raid, "\n")) // mdadm's layout as the plan computed it
	checkLVs(t, need(t, secs, "lvs", 0), pl)
	need(t, secs, "xfs", 0, "agcount = 4", "logblocks = 16384") // the profile's 64 MiB log in 4 KiB blocks
	need(t, secs, "close", 0)
	if out := need(t, secs, "mdstat", 0); strings.Contains(out, "active") {
		t.Errorf("arrays still running after --close:\n%s", out)
	}
}

// TestRestoreBtrfsAndMsdos: the btrfs example on an ATA disk (its selector
// wants the QEMU HARDDISK model), ESP mounted, and the msdos example on a
// virtio disk, in one boot.
func TestRestoreBtrfsAndMsdos(t *testing.T) {
	t.Parallel() // VM tests share the machine's VM slots (qemu-tests/vm)
	script := strings.Join([]string{
		"run btrfs strata restore /tmp/btrfs-subvolumes.yaml --layers-only --yes --target /mnt/b --work /run/sb",
		"run subvols busybox sh -c 'btrfs subvolume list /mnt/b; btrfs subvolume get-default /mnt/b; busybox grep /mnt/b /proc/self/mountinfo'",
		"run bios strata restore /tmp/bios-msdos.yaml --layers-only --disk main=vda --yes --target /mnt/m --work /run/sm",
		"run dump sfdisk --dump /dev/vda",
		"run close busybox sh -c 'strata restore /tmp/btrfs-subvolumes.yaml --close --target /mnt/b --work /run/sb && strata restore /tmp/bios-msdos.yaml --disk main=vda --close --target /mnt/m --work /run/sm'",
	}, "\n")
	secs := runScript(t, "/dev/vdb", script, "", []string{"btrfs-subvolumes.yaml", "bios-msdos.yaml"}, 20*time.Minute,
		vm.Disk{Path: sparseDisk(t, 6<<30), Interface: "ide", Serial: "QM00001"},
		vm.Disk{Path: sparseDisk(t, 4<<30), Serial: "strata-vda"})
	need(t, secs, "btrfs", 0, "done: ")
	need(t, secs, "subvols", 0, "path @home", "path @var-log", " /@home /mnt/b/home ", " /mnt/b/boot ")
	need(t, secs, "bios", 0, "done: ")
	need(t, secs, "dump", 0, "label-id: 0x5eed1234", "bootable", "type=82")
	need(t, secs, "close", 0)
}

// sizesLine is a script line printing "PATH BYTES" for every md array, LUKS
// mapping and LV of the plan, and want is what the plan says they are.
func sizesLine(pl *plan.Plan) (line string, want []string) {
	var paths []string
	for _, d := range pl.Devices {
		switch d.Kind {
		case "raid", "luks", "lv":
			paths = append(paths, d.Path)
			want = append(want, fmt.Sprintf("%s %d\n", d.Path, d.Size))
		}
	}
	return "run sizes busybox sh -c 'for d in " + strings.Join(paths, " ") + "; do echo \"$d $(busybox blockdev --getsize64 $d)\"; done'", want
}

// field is the value after "key" and blanks, colons or '=' on the first
// line of out that has it.
func field(out, key string) string {
	m := regexp.MustCompile(`(?m)^\s*` + regexp.QuoteMeta(key) + `\s*[:=]\s*(.*?)\s*$`).FindStringSubmatch(out)
	if m == nil {
		return ""
	}
	return m[1]
}

const stackProfile = "../restore/testdata/profiles/stack.yaml"

// TestRestoreStack restores restore/testdata/profiles/stack.yaml, the
// profile with every storage kind the examples lack: md raid5 with LUKS1
// and LVM on it, an LVM raid1 LV (dm-raid), a thin pool with a thin LV, a
// striped LV, btrfs raid1 over two disks, a 4Kn NVMe disk, whole-disk LUKS2.
// The guest's tools then say what was built: lvs segment types, dmsetup
// tables, every array/mapping/LV size against the host's plan (so the plan's
// parity-RAID and LUKS1 arithmetic is the tools'), LUKS1's payload offset and
// md's data offset, and a file written and read back on every mount.
func TestRestoreStack(t *testing.T) {
	t.Parallel() // VM tests share the machine's VM slots (qemu-tests/vm)
	disks := []probe.Disk{
		{Name: "nvme0n1", Path: "/dev/nvme0n1", Size: 16 << 30, LogicalSectorSize: 4096, PhysicalSectorSize: 4096, Transport: "nvme",
			Serial: "stacknv", ByID: []string{"nvme-QEMU_NVMe_Ctrl_stacknv"}},
		{Name: "vda", Path: "/dev/vda", Size: 8 << 30, LogicalSectorSize: 512, PhysicalSectorSize: 512, Serial: "strata-vdb"},
		{Name: "vdb", Path: "/dev/vdb", Size: 8 << 30, LogicalSectorSize: 512, PhysicalSectorSize: 512, Serial: "strata-vdc"},
		{Name: "vdc", Path: "/dev/vdc", Size: 2 << 30, LogicalSectorSize: 512, PhysicalSectorSize: 512, Serial: "strata-vdd"},
	}
	pl := hostPlan(t, stackProfile, disks, plan.Options{})
	sizes, wantSizes := sizesLine(pl)
	const r = "strata restore /tmp/stack.yaml --layers-only"
	script := strings.Join([]string{
		"busybox dmesg -n 1",
		"run restore " + r + " --yes",
		sizes,
		"run lvs lvm lvs -a --config 'activation{udev_sync=0 udev_rules=0}' --reportformat json --units b --nosuffix -o lv_name,vg_name,lv_size,segtype,pool_lv,stripes",
		"run vgs lvm vgs --config 'activation{udev_sync=0 udev_rules=0}' --reportformat json --units b --nosuffix -o vg_name,vg_size,vg_extent_size",
		"run uuids busybox sh -c 'c=activation{udev_sync=0}; lvm pvs --config $c -o pv_name,pv_uuid; lvm vgs --config $c -o vg_name,vg_uuid; lvm lvs --config $c -a -o lv_name,lv_uuid'",
		"run dm busybox sh -c 'dmsetup table | busybox sort'",
		"run md mdadm --detail /dev/md/md5",
		"run examine mdadm --examine /dev/vda1",
		"run luks1 cryptsetup luksDump /dev/md/md5",
		"run write busybox sh -c 'for m in / /srv /var/lib/thin /data /pool /boot/efi; do echo written-$m > /mnt/strata$m/probe.txt || exit 1; done; busybox sync; for m in / /srv /var/lib/thin /data /pool /boot/efi; do busybox cat /mnt/strata$m/probe.txt; done'",
		// mount point, type, source: mountinfo's 5th field and the two after " - "
		"run mounts busybox sh -c 'busybox grep \" /mnt/strata\" /proc/self/mountinfo | busybox sed -E \"s/^([^ ]+ ){4}([^ ]+) .* - ([^ ]+) ([^ ]+) .*/\\2 \\3 \\4/\"'",
		"run thin dmsetup status vgs-thin",
		"run close " + r + " --close",
		"run after busybox sh -c 'busybox cat /proc/mdstat; dmsetup ls'",
	}, "\n")
	secs := runScript(t, "/dev/vdd", script, "", []string{stackProfile}, 40*time.Minute,
		vm.Disk{Path: sparseDisk(t, 16<<30), Interface: "nvme", Serial: "stacknv", SectorSize: 4096},
		vm.Disk{Path: sparseDisk(t, 8<<30), Serial: "strata-vdb"},
		vm.Disk{Path: sparseDisk(t, 8<<30), Serial: "strata-vdc"},
		vm.Disk{Path: sparseDisk(t, 2<<30), Serial: "strata-vdd"})

	need(t, secs, "restore", 0, "done: ")
	need(t, secs, "sizes", 0, wantSizes...) // md raid5, LUKS1 and LVM arithmetic as the tools do it
	lv := need(t, secs, "lvs", 0)
	for _, w := range []string{
		`"lv_name":"mirror", "vg_name":"vgs", "lv_size":"1073741824", "segtype":"raid1"`,
		`"lv_name":"[mirror_rimage_0]", "vg_name":"vgs", "lv_size":"1073741824", "segtype":"linear"`,
		`"lv_name":"[mirror_rimage_1]", "vg_name":"vgs", "lv_size":"1073741824", "segtype":"linear"`,
		`"lv_name":"[mirror_rmeta_0]", "vg_name":"vgs", "lv_size":"8388608", "segtype":"linear"`,
		`"lv_name":"[mirror_rmeta_1]", "vg_name":"vgs", "lv_size":"8388608", "segtype":"linear"`,
		`"lv_name":"stripe", "vg_name":"vgs", "lv_size":"1073741824", "segtype":"striped", "pool_lv":"", "stripes":"2"`,
		`"lv_name":"pool", "vg_name":"vgs",`,
		`"segtype":"thin-pool"`,
		`"lv_name":"[pool_tmeta]", "vg_name":"vgs", "lv_size":"8388608"`,
		`"lv_name":"thin", "vg_name":"vgs", "lv_size":"10737418240", "segtype":"thin", "pool_lv":"pool"`,
	} {
		if !strings.Contains(lv, w) {
			t.Errorf("lvs lacks %s\n%s", w, lv)
		}
	}
	checkLVs(t, lv, pl)
	for _, d := range pl.Devices {
		if d.Kind == "vg" {
			w := fmt.Sprintf(`"vg_name":"%s", "vg_size":"%d"`, d.Ref, d.Size)
			need(t, secs, "vgs", 0, w)
		}
	}
	// The profile's LVM UUIDs, set through vgcfgrestore with a raid1 LV and
	// a thin pool in the group.
	need(t, secs, "uuids", 0, "PVPVP1-AAAA-BBBB-CCCC-DDDD-EEEE-111111", "VGVGVG-AAAA-BBBB-CCCC-DDDD-EEEE-FFFFFF", "LVLVL1-AAAA-BBBB-CCCC-DDDD-EEEE-111111")
	// The device-mapper targets behind the LVs: dm-raid, thin-pool and
	// thin (10 GiB virtual = 20971520 sectors), striped.
	need(t, secs, "dm", 0, "vgs-mirror: 0 2097152 raid raid1 ", "vgs-pool-tpool: 0 ", " thin-pool ", "vgs-thin: 0 20971520 thin ",
		"vgs-stripe: 0 2097152 striped 2 128 ", "old: 0 ", " crypt aes-cbc-essiv:sha256 ")
	md := need(t, secs, "md", 0, "Raid Level : raid5", "Raid Devices : 3", "Chunk Size : 256K", "Layout : left-symmetric", "UUID : 11111111:22222222:33333333:44444444")
	ex := need(t, secs, "examine", 0)
	luks := need(t, secs, "luks1", 0)
	for k, w := range map[string]string{"Version": "1", "Cipher name": "aes", "Cipher mode": "cbc-essiv:sha256", "Hash spec": "sha1", "MK bits": "256"} {
		if got := field(luks, k); got != w {
			t.Errorf("luksDump %s: %q, want %q", k, got, w)
		}
	}
	// LUKS1: the payload starts 2 MiB in (4096 sectors), as the plan assumes.
	if got := field(luks, "Payload offset"); got != "4096" {
		t.Errorf("LUKS1 payload offset %q sectors, the plan assumes 4096 (2 MiB)\n%s", got, luks)
	}
	// md raid5: each member's data starts at the offset the plan assumes
	// (mdadm 4.2: superblock, bitmap and reshape room rounded up to 1 MiB).
	var member int64
	for _, d := range pl.Devices {
		if d.Ref == "x/r2" {
			member = d.Size
		}
	}
	var raid int64
	for _, d := range pl.Devices {
		if d.Ref == "md5" {
			raid = d.Size
		}
	}
	off := strings.TrimSuffix(field(ex, "Data Offset"), " sectors")
	if n, err := strconv.ParseInt(off, 10, 64); err != nil || member-n*512 < raid/2 || member-n*512-raid/2 >= 256<<10 {
		t.Errorf("md member data offset %q sectors: a %d-byte member leaves less than, or a chunk more than, the %d bytes per member the plan's %d-byte array needs\n%s", off, member, raid/2, raid, ex)
	}
	t.Logf("md raid5: %s; data offset %s sectors", field(md, "Array Size"), off)
	need(t, secs, "write", 0, "written-/\n", "written-/srv\n", "written-/var/lib/thin\n", "written-/data\n", "written-/pool\n", "written-/boot/efi\n")
	need(t, secs, "mounts", 0, "/mnt/strata/var/lib/thin ext4 /dev/mapper/vgs-thin", "/mnt/strata ext4 /dev/mapper/vgs-mirror", "/mnt/strata/srv xfs /dev/mapper/vgs-stripe", "/mnt/strata/data ext2 /dev/mapper/vgo-data")
	need(t, secs, "thin", 0, "0 20971520 thin ")
	need(t, secs, "close", 0)
	if out := need(t, secs, "after", 0); strings.Contains(out, "active") || strings.Contains(out, "vgs-") {
		t.Errorf("still running after --close:\n%s", out)
	}
}

// foreignStack is a shell function that builds, on vda and vdb, what
// another system left running: an md RAID1 (vda1+vdb1) with a mounted ext4,
// an open LUKS2 mapping (vda2) and a VG on it and on vda3 with a mounted LV,
// and active swap (vda4).
const foreignStack = `lv() { lvm "$@" --config 'activation{udev_sync=0 udev_rules=0}'; }
foreign() {
  printf 'label: gpt\nsize=512MiB\nsize=1GiB\nsize=1GiB\nsize=256MiB\n' | sfdisk -q /dev/vda || return 1
  printf 'label: gpt\nsize=512MiB\n' | sfdisk -q /dev/vdb || return 1
  partx -u /dev/vda; partx -u /dev/vdb
  mdadm --create /dev/md/foreign --run --level=1 --raid-devices=2 --metadata=1.2 --assume-clean /dev/vda1 /dev/vdb1 || return 1
  mkfs.ext4 -q /dev/md/foreign && busybox mkdir -p /mnt/fmd && mount /dev/md/foreign /mnt/fmd || return 1
  echo -n foreign | cryptsetup luksFormat -q --type luks2 --pbkdf pbkdf2 --pbkdf-force-iterations 1000 --key-file - /dev/vda2 || return 1
  echo -n foreign | cryptsetup open --key-file - /dev/vda2 fcrypt || return 1
  lv pvcreate -q /dev/mapper/fcrypt /dev/vda3 && lv vgcreate -q fvg /dev/mapper/fcrypt /dev/vda3 || return 1
  lv lvcreate -q -y -L 1200m -n data fvg || return 1
  mkfs.ext4 -q /dev/mapper/fvg-data && busybox mkdir -p /mnt/fdata && mount /dev/mapper/fvg-data /mnt/fdata || return 1
  mkswap /dev/vda4 >/dev/null && busybox swapon /dev/vda4
}
inuse() { busybox cat /proc/mdstat /proc/swaps; dmsetup ls; busybox grep -E ' /mnt/f(md|data) ' /proc/self/mountinfo | busybox cut -d' ' -f5; }`

// TestRestoreTeardown: a disk that carries another system's active stack
// (mounted md RAID1, open LUKS with a VG on it, a mounted LV, swap) is
// refused without --teardown and left as it was; with --teardown restore
// unmounts, swaps off, deactivates, closes and stops it, and the restore
// proceeds. The other member disk of the foreign array is not written.
func TestRestoreTeardown(t *testing.T) {
	t.Parallel() // VM tests share the machine's VM slots (qemu-tests/vm)
	const r = "strata restore /tmp/bios-msdos.yaml --layers-only --disk main=vda"
	script := strings.Join([]string{
		"busybox dmesg -n 1",
		foreignStack,
		"run foreign foreign",
		"run before inuse",
		"run refused " + r + " --yes",
		"run still inuse",
		"run plan strata plan /tmp/bios-msdos.yaml --disk main=vda --teardown",
		"run teardown " + r + " --teardown --yes",
		"run after inuse",
		"run other mdadm --examine /dev/vdb1",
		"run dump sfdisk --dump /dev/vda",
		"run close " + r + " --close",
	}, "\n")
	secs := runScript(t, "/dev/vdc", script, "", []string{"bios-msdos.yaml"}, 25*time.Minute,
		vm.Disk{Path: sparseDisk(t, 4<<30), Serial: "strata-vda"},
		vm.Disk{Path: sparseDisk(t, 1<<30), Serial: "other"})

	need(t, secs, "foreign", 0)
	inUse := []string{"md127 : active raid1", "/dev/vda4", "fcrypt", "fvg-data", "/mnt/fmd\n", "/mnt/fdata\n"}
	need(t, secs, "before", 0, inUse...)
	need(t, secs, "refused", 3, "/dev/vda is in use", "/dev/vda1 is held by md md127", "/dev/vda2 is held by crypt", "--teardown")
	need(t, secs, "still", 0, inUse...) // the refusal changed nothing
	need(t, secs, "plan", 0, "tear down what uses /dev/vda")
	// Top down: unmount, swap off, deactivate the VG, close LUKS, stop md.
	td := need(t, secs, "teardown", 0, "release:main: done", "done: ")
	order := []string{"$ umount /mnt/fmd", "$ umount /mnt/fdata", "swapoff /dev/vda4", "--activate n fvg", "$ cryptsetup close fcrypt", "$ mdadm --stop /dev/md127", "[2/7] wipe:main"}
	for i := 1; i < len(order); i++ {
		if a, b := strings.Index(td, order[i-1]), strings.Index(td, order[i]); a < 0 || b < a {
			t.Errorf("teardown: %q should come before %q\n%s", order[i-1], order[i], td)
		}
	}
	if out := need(t, secs, "after", 0); strings.Contains(out, "md127") || strings.Contains(out, "fcrypt") || strings.Contains(out, "fvg") ||
		strings.Contains(out, "/mnt/f") || strings.Contains(out, "/dev/vda4") {
		t.Errorf("the foreign stack is still there after --teardown:\n%s", out)
	}
	need(t, secs, "other", 0, "Raid Level : raid1") // vdb1 keeps its superblock: not a target
	need(t, secs, "dump", 0, "label-id: 0x5eed1234", "bootable", "type=82")
	need(t, secs, "close", 0)
}

const parityProfile = "../restore/testdata/profiles/parity.yaml"

// TestRestoreParity checks the plan's size assumptions where the tools align
// to a parity array's stripe (restore/testdata/profiles/parity.yaml): md
// raid5 sizes and data offsets, LUKS1 and LUKS2 payload offsets on arrays
// whose stripe (1.5 MiB, 192 KiB) does not divide 1 MiB, and LVM's first
// extent on such an array and on LUKS over one. Every size the plan gives
// must be what the guest's tools made.
func TestRestoreParity(t *testing.T) {
	t.Parallel() // VM tests share the machine's VM slots (qemu-tests/vm)
	var disks []probe.Disk
	var vdisks []vm.Disk
	for _, n := range []string{"vda", "vdb", "vdc", "vdd"} {
		disks = append(disks, probe.Disk{Name: n, Path: "/dev/" + n, Size: 2 << 30, LogicalSectorSize: 512, PhysicalSectorSize: 512, Serial: "strata-" + n})
		vdisks = append(vdisks, vm.Disk{Path: sparseDisk(t, 2<<30), Serial: "strata-" + n})
	}
	pl := hostPlan(t, parityProfile, disks, plan.Options{})
	sizes, wantSizes := sizesLine(pl)
	const lvmc = "--config 'activation{udev_sync=0 udev_rules=0}' --reportformat json --units b --nosuffix"
	script := strings.Join([]string{
		"busybox dmesg -n 1",
		"run restore strata restore /tmp/parity.yaml --layers-only --yes",
		sizes,
		"run topo busybox sh -c 'for s in /sys/block/md* /sys/block/dm-*; do echo $(busybox cat $s/md/array_state $s/dm/name 2>/dev/null) $(busybox cat $s/queue/minimum_io_size $s/queue/optimal_io_size); done'",
		"run luks1 cryptsetup luksDump /dev/md/wide",
		"run luks2 cryptsetup luksDump /dev/md/narrow",
		"run pvs lvm pvs " + lvmc + " -o pv_name,vg_name,pe_start,pv_size",
		"run vgs lvm vgs " + lvmc + " -o vg_name,vg_size,vg_extent_size",
		"run lvs lvm lvs " + lvmc + " -o lv_name,vg_name,lv_size",
		"run examine busybox sh -c 'for p in vda1 vda2 vda3; do mdadm --examine /dev/$p | busybox grep -E \"Data Offset|Used Dev Size|Chunk Size\"; done'",
		"run close strata restore /tmp/parity.yaml --close",
	}, "\n")
	secs := runScript(t, "/dev/vde", script, "", []string{parityProfile}, 30*time.Minute, vdisks...)
	need(t, secs, "restore", 0, "done: ")
	t.Logf("topology (io_min io_opt):\n%s", secs["topo"].out)
	t.Logf("md members:\n%s", secs["examine"].out)
	t.Logf("PVs:\n%s", secs["pvs"].out)
	need(t, secs, "sizes", 0, wantSizes...)
	checkLVs(t, need(t, secs, "lvs", 0), pl)
	for _, d := range pl.Devices {
		if d.Kind == "vg" {
			need(t, secs, "vgs", 0, fmt.Sprintf(`"vg_name":"%s", "vg_size":"%d"`, d.Ref, d.Size))
		}
	}
	// The offsets themselves: the array's size less the mapping's, as the
	// plan has it, is where luksDump says the data starts.
	size := map[string]int64{}
	for _, d := range pl.Devices {
		size[d.Ref] = d.Size
	}
	if got, want := field(need(t, secs, "luks1", 0), "Payload offset"), strconv.FormatInt((size["wide"]-size["l1"])/512, 10); got != want {
		t.Errorf("LUKS1 on the 1.5 MiB stripe: payload offset %s sectors, the plan has %s", got, want)
	}
	l2 := need(t, secs, "luks2", 0)
	if want := fmt.Sprintf("offset: %d [bytes]", size["narrow"]-size["l2"]); !strings.Contains(l2, want) {
		t.Errorf("LUKS2 on the 192 KiB stripe: want %q\n%s", want, l2)
	}
	// LVM's first extent: 1.5 MiB on LUKS over the wide array, 1152 KiB on
	// LUKS over the narrow one and on the narrow array itself.
	need(t, secs, "pvs", 0, `"pv_name":"/dev/mapper/l1", "vg_name":"vgc", "pe_start":"1572864"`,
		`"pv_name":"/dev/mapper/l2", "vg_name":"vgn", "pe_start":"1179648"`, `"vg_name":"vgm", "pe_start":"1179648"`)
	need(t, secs, "close", 0)
}
