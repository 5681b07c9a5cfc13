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

// restoreImage is the live image plus nls_ascii: Debian's kernel mounts vfat
// with iocharset=ascii by default, and without the module every vfat mount
// fails ("FAT-fs: IO charset ascii not found"). The default module list
// lacks it (reported to the live image's owners); the ESP mounts here need it.
func restoreImage(t *testing.T) initramfs.Result {
	t.Helper()
	liveImage(t) // the skips: -short, no QEMU, no cached kernel
	restoreOnce.Do(func() {
		restoreImg, restoreErr = initramfs.Build(context.Background(), initramfs.Options{
			Out:     filepath.Join(initramfs.DefaultCacheDir(), "test-live-restore"),
			Modules: append(initramfs.DefaultModules(), "nls_ascii"),
			Log:     func(f string, a ...any) {},
		})
	})
	if restoreErr != nil {
		t.Fatalf("build live image: %v", restoreErr)
	}
	return restoreImg
}

// scriptDisk holds the script in slot 0 and the examples in the next slots;
// the script's prologue copies the examples to /tmp/NAME.
func scriptDisk(t *testing.T, script string, examples ...string) (vm.Disk, string) {
	t.Helper()
	var pro strings.Builder
	pro.WriteString("set -u\nrun() { n=$1; shift; echo \"@@start $n@@\"; \"$@\"; echo \"@@rc $n $?@@\"; }\n")
	var img []byte
	for i, n := range examples {
		b, err := os.ReadFile(filepath.Join("..", "examples", n))
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&pro, "busybox dd if=$FILES bs=65536 skip=%d count=1 2>/dev/null | busybox head -c %d > /tmp/%s\n", i+1, len(b), n)
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

// typeLine types a command line a few characters at a time and waits for
// the editor to echo each piece before the next: sent at once, the line
// editor's redraws under TCG lose keystrokes (seen: a lost Enter).
func typeLine(t *testing.T, v *vm.VM, line string) {
	t.Helper()
	for i := 0; i < len(line); i += 8 {
		piece := line[i:min(i+8, len(line))]
		if err := v.Send(piece); err != nil {
			t.Fatal(err)
		}
		// The shell wraps long lines at 80 columns: allow a line break
		// between any two echoed characters.
		var rx strings.Builder
		for j, r := range strings.TrimLeft(piece, " ") {
			if j > 0 {
				rx.WriteString(`\s*`)
			}
			rx.WriteString(regexp.QuoteMeta(string(r)))
		}
		if _, err := v.Expect(rx.String(), 30*time.Second); err != nil {
			t.Fatalf("typing %q: %v", line, err)
		}
	}
	if err := v.Send("\r"); err != nil {
		t.Fatal(err)
	}
}

type section struct {
	out string
	rc  int
}

// runScript boots with disks (the script disk last, seen as dev), runs the
// script, types pass at every passphrase prompt and returns each section.
func runScript(t *testing.T, dev, script, pass string, examples []string, timeout time.Duration, disks ...vm.Disk) map[string]section {
	t.Helper()
	files, n := scriptDisk(t, script, examples...)
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
	if _, err := v.Expect(`strata-live:\S*# `, 60*time.Second); err != nil {
		t.Fatal(err)
	}
	before := len(v.Console().Output())
	typeLine(t, v, fmt.Sprintf("busybox head -c %s %s > /tmp/t.sh; FILES=%s busybox sh /tmp/t.sh", n, dev, dev))
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
	p, err := profile.Load(filepath.Join("..", "examples", example))
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
	need(t, secs, "xfs", 0, "agcount = 4", "logblocks = 16384") // 64 MiB: the 16 MiB asked is below mkfs.xfs's minimum
	need(t, secs, "close", 0)
	if out := need(t, secs, "mdstat", 0); strings.Contains(out, "active") {
		t.Errorf("arrays still running after --close:\n%s", out)
	}
}

// TestRestoreBtrfsAndMsdos: the btrfs example on an ATA disk (its selector
// wants the QEMU HARDDISK model), ESP mounted, and the msdos example on a
// virtio disk, in one boot.
func TestRestoreBtrfsAndMsdos(t *testing.T) {
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
