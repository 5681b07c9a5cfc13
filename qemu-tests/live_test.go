// Package qemutests boots strata's live image in QEMU (TCG) and checks what
// a user would see on the consoles.
package qemutests

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	stratimage "github.com/stratahq/strata/image"
	"github.com/stratahq/strata/initramfs"
	"github.com/stratahq/strata/live"
	"github.com/stratahq/strata/qemu-tests/vm"
)

var (
	imageOnce sync.Once
	image     initramfs.Result
	imageErr  error
)

// liveImage builds the live image once per test binary into
// $STRATA_CACHE/test-live; its slow layers come from the cache.
func liveImage(t *testing.T) initramfs.Result {
	t.Helper()
	if testing.Short() {
		t.Skip("skipping: boots the live image under TCG (~30 s per boot) (-short)")
	}
	if _, err := exec.LookPath("qemu-system-x86_64"); err != nil {
		t.Skip("skipping: qemu-system-x86_64 not installed (make deps)")
	}
	if _, _, err := initramfs.CachedKernel(initramfs.DefaultCacheDir()); err != nil {
		t.Skipf("skipping: %v", err)
	}
	imageOnce.Do(func() {
		image, imageErr = initramfs.Build(context.Background(), initramfs.Options{
			Out: filepath.Join(initramfs.DefaultCacheDir(), "test-live"),
			Log: func(f string, a ...any) {},
		})
	})
	if imageErr != nil {
		t.Fatalf("build live image: %v", imageErr)
	}
	return image
}

func sparseDisk(t *testing.T, size int64) string {
	p := filepath.Join(t.TempDir(), "disk.img")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	return p
}

// report waits for the ready marker and returns the report up to and
// including its summary line.
func report(t *testing.T, v *vm.VM) (string, time.Duration) {
	t.Helper()
	start := time.Now()
	if _, err := v.Expect(regexp.QuoteMeta(live.ReadyMarker), 120*time.Second); err != nil {
		t.Fatal(err)
	}
	m, err := v.Expect(`(?s)^(.*?\nsummary: [^\n]*)\n`, 60*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	return m[1], time.Since(start)
}

func TestLiveBoot(t *testing.T) {
	t.Parallel() // VM tests share the machine's VM slots (qemu-tests/vm)
	img := liveImage(t)
	start := time.Now()
	v := vm.StartT(t, vm.Config{
		Kernel: img.Kernel, Initrd: img.Initramfs, Append: "console=ttyS0 panic=-1 strata.wizard=off",
		Disks:    []vm.Disk{{Path: sparseDisk(t, 1<<30), Serial: "STRATA-DISK-1"}},
		Net:      &vm.Net{NIC: "e1000"},
		Serial1:  true,
		Timeout:  5 * time.Minute,
		NoReboot: true,
	})
	rep, _ := report(t, v)
	t.Logf("boot to ready: %s", time.Since(start).Round(100*time.Millisecond))

	for _, want := range []string{
		`(?m)^disk vda 1\.0 GiB \(1073741824 bytes\) model="" serial="STRATA-DISK-1"$`,
		`(?m)^nic eth0 52:54:00:12:34:56 up 10\.0\.2\.\d+/24`,
		`(?m)^modules \d+ loaded, 0 already present, \d+ not for this machine, 0 failed$`,
		`(?m)^tool cryptsetup ok: cryptsetup 2\.`,
		`(?m)^tool lvm ok: +LVM version`,
		`(?m)^tool xfs_admin ok: xfs_admin version`,
		`(?m)^tool git-remote-http ok:`,
	} {
		if !regexp.MustCompile(want).MatchString(rep) {
			t.Errorf("report lacks %s", want)
		}
	}
	if strings.Contains(rep, "FAIL") || strings.Contains(rep, "warning:") {
		t.Errorf("report has failures or warnings:\n%s", rep)
	}
	m := regexp.MustCompile(`summary: 1 disks, 1 nics, (\d+)/(\d+) tools ok, (\d+) modules`).FindStringSubmatch(rep)
	if m == nil || m[1] != m[2] || m[1] == "0" {
		t.Errorf("summary: %v\n%s", m, rep)
	}
	if n, _ := strconv.Atoi(m[3]); n < 100 {
		t.Errorf("only %d modules", n)
	}

	// Rescue shell on the second serial port.
	s1 := v.Serial1()
	t0 := time.Now()
	if _, err := s1.Expect("rescue shell on ttyS1", 30*time.Second); err != nil {
		t.Fatal(err)
	}
	// The echoed command line shows "rescue-$((6*7))"; only the shell's
	// answer shows "rescue-42".
	if err := s1.Send("echo rescue-$((6*7))\n"); err != nil {
		t.Fatal(err)
	}
	if _, err := s1.Expect("rescue-42", 20*time.Second); err != nil {
		t.Fatal(err)
	}
	t.Logf("rescue shell answered after %s", time.Since(t0).Round(100*time.Millisecond))

	// The console shell, and the storage stack end to end: LUKS2 with
	// argon2 threads (libgcc_s), dm-crypt with xts/ecb (soft dependency),
	// LVM without udev (lvm.conf), XFS (crc32c soft dependency), and a FAT
	// label (iconv modules).
	if _, err := v.Expect("here is a shell", 30*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := v.WaitPrompt(vm.LivePrompt, 3*time.Minute); err != nil { // keys sent earlier are lost
		t.Fatal(err)
	}
	if err := v.Send("echo ash-$((2+3))\n"); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Expect("ash-5", 60*time.Second); err != nil {
		t.Fatal(err)
	}
	steps := []struct{ cmd, marker string }{
		{"echo -n pw | cryptsetup luksFormat -q --type luks2 --pbkdf argon2id --pbkdf-memory 65536 --pbkdf-parallel 2 --pbkdf-force-iterations 4 /dev/vda --key-file - && echo step-$((1+0))", "step-1"},
		{"echo -n pw | cryptsetup open /dev/vda crypt --key-file - && echo step-$((1+1))", "step-2"},
		{"lvm pvcreate -q /dev/mapper/crypt && lvm vgcreate -q vg0 /dev/mapper/crypt && lvm lvcreate -q -y -L 300M -n root vg0 && lvm lvcreate -q -y -L 100M -n boot vg0 && echo step-$((1+2))", "step-3"},
		{"mkfs.xfs -q -L root /dev/vg0/root && mkfs.fat -n STRATABOOT /dev/vg0/boot && echo step-$((1+3))", "step-4"},
		{"blkid /dev/vg0/root /dev/vg0/boot && echo step-$((1+4))", "step-5"},
	}
	for _, s := range steps {
		t0 := time.Now()
		if err := v.Send(s.cmd + "\n"); err != nil {
			t.Fatal(err)
		}
		if _, err := v.Expect(s.marker, 90*time.Second); err != nil {
			t.Fatalf("%s: %v", s.cmd, err)
		}
		t.Logf("%s: %s", s.marker, time.Since(t0).Round(100*time.Millisecond))
	}
	out := v.Console().Output()
	for _, want := range []string{`LABEL="root"`, `TYPE="xfs"`, `LABEL="STRATABOOT"`, `TYPE="vfat"`} {
		if !strings.Contains(out, want) {
			t.Errorf("blkid output lacks %s", want)
		}
	}
	// poweroff in the console shell really powers off (busybox's own
	// would signal init, which u-root's init ignores).
	if err := v.Send("poweroff\n"); err != nil {
		t.Fatal(err)
	}
	if err := v.Wait(60 * time.Second); err != nil {
		t.Error(err)
	}
	t.Logf("whole test: %s", time.Since(start).Round(100*time.Millisecond))
}

// Kernel parameters: an unattended plan, static network, no rescue shells,
// virtio-net.
func TestLiveBootUnattendedPlan(t *testing.T) {
	t.Parallel() // VM tests share the machine's VM slots (qemu-tests/vm)
	img := liveImage(t)
	v := vm.StartT(t, vm.Config{
		Kernel: img.Kernel, Initrd: img.Initramfs,
		Append: "console=ttyS0 panic=-1 strata.server=http://10.0.2.2:8080 strata.profile=laptop strata.disk=main=vda " +
			"strata.net=eth0:10.0.2.50/24,10.0.2.2 strata.rescue=none strata.wizard=off", // without the wizard, the plan is printed
		Disks:   []vm.Disk{{Path: sparseDisk(t, 1<<28), Serial: "S2"}},
		Net:     &vm.Net{},
		Timeout: 3 * time.Minute,
	})
	rep, took := report(t, v)
	t.Logf("ready after %s", took.Round(100*time.Millisecond))
	if !regexp.MustCompile(`(?m)^nic eth0 \S+ up 10\.0\.2\.50/24`).MatchString(rep) {
		t.Errorf("static address not configured:\n%s", rep)
	}
	for _, want := range []string{"plan: unattended restore", "server:  http://10.0.2.2:8080", "profile: laptop", "disk:    main = /dev/vda",
		"confirm: missing: nothing is written without strata.yes"} {
		if _, err := v.Expect(regexp.QuoteMeta(want), 30*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	// Whatever the restore makes of it (there is no file server here), it
	// reports, and then the console gets a shell.
	if _, err := v.Expect(`(?m)^restore: `, 60*time.Second); err != nil {
		t.Fatal(err)
	}
	// The default route through the gateway, as the kernel has it (u-root's
	// `ip route` does not print gateways): 10.0.2.2 is 0202000A.
	if err := v.Send("cat /proc/net/route\n"); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Expect(`eth0\s+00000000\s+0202000A`, 60*time.Second); err != nil {
		t.Fatal(err)
	}
}

// A mistyped parameter is reported on the console and nothing runs
// unattended.
func TestLiveBootBadParameter(t *testing.T) {
	t.Parallel() // VM tests share the machine's VM slots (qemu-tests/vm)
	img := liveImage(t)
	v := vm.StartT(t, vm.Config{
		Kernel: img.Kernel, Initrd: img.Initramfs,
		Append:  "console=ttyS0 panic=-1 strata.server=http://10.0.2.2:8080 strata.yes strata.profil=laptop strata.net=none",
		Timeout: 3 * time.Minute,
	})
	rep, _ := report(t, v)
	if !strings.Contains(rep, "disk (none found)") {
		t.Errorf("report:\n%s", rep)
	}
	// The report goes to the terminal itself (live.openConsoles), so the
	// shell's banner comes after its last line, never between two.
	if _, err := v.Expect(`kernel command line errors \(nothing will run unattended\):\r?\n  unknown parameter strata\.profil \(known:[^\n]*\n`, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Expect(`strata live shell on ttyS0`, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	// The plan would follow the errors at once; give it a moment to show.
	time.Sleep(3 * time.Second)
	if strings.Contains(v.Console().Output(), "plan: unattended restore") {
		t.Error("an unattended plan ran despite the bad parameter")
	}
}

// stickProfile is restored from the stick: one ext4 on the whole disk and
// a dataset archive, named relative to the profile's source, so it must
// come from the stick's strata/datasets/ over file://.
const stickProfile = `version: 1
host: {name: sticktest, description: restored from the stick without a network}
disks:
  main:
    table: gpt
    partitions:
      - {name: root, size: rest}
filesystems:
  - {device: main/root, type: ext4, label: sticky, mount: {path: /}}
datasets:
  notes:
    source: datasets/notes.tar
    sha256: %s
    path: /srv/notes
`

// stickImage builds the USB image (kind "usb") or the ISO ("iso") with a
// profile and a dataset on it and the given kernel arguments; it returns
// the image and the dataset's text.
func stickImage(t *testing.T, kind string, img initramfs.Result, appendArgs string) (string, string) {
	t.Helper()
	for _, tool := range []string{"grub-mkstandalone", "syslinux"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("skipping: %s not installed (make deps): the USB image needs it", tool)
		}
	}
	dir := t.TempDir()
	note := fmt.Sprintf("stick-dataset-%d\n", time.Now().UnixNano())
	var tb bytes.Buffer
	tw := tar.NewWriter(&tb)
	if err := tw.WriteHeader(&tar.Header{Name: "hello.txt", Mode: 0o644, Size: int64(len(note)), ModTime: time.Now()}); err != nil {
		t.Fatal(err)
	}
	tw.Write([]byte(note))
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(tb.Bytes())
	profiles, data := filepath.Join(dir, "profiles"), filepath.Join(dir, "data")
	for p, b := range map[string][]byte{
		filepath.Join(profiles, "sticktest.yaml"):    []byte(fmt.Sprintf(stickProfile, hex.EncodeToString(sum[:]))),
		filepath.Join(data, "datasets", "notes.tar"): tb.Bytes(),
	} {
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	out := filepath.Join(dir, "out")
	o := stratimage.Options{Kernel: img.Kernel, Initrd: img.Initramfs, Out: out, Profiles: profiles, Data: data, Append: appendArgs}
	if kind == "iso" {
		if err := stratimage.ISO(context.Background(), o); err != nil {
			t.Fatal(err)
		}
		return filepath.Join(out, stratimage.ISOFile), note
	}
	if err := stratimage.USB(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	return filepath.Join(out, stratimage.USBFile), note
}

// TestLiveStickRestoreNoNetwork boots the USB image (SeaBIOS → syslinux)
// on a machine without any NIC, with strata.profile on the stick's kernel
// command line and no strata.server: the live system finds the FAT32
// labelled STRATA, mounts it read-only, takes the profile from it, refuses
// the stick as a target (it is mounted) so the blank virtio disk is the one
// match, and restores the layers and the dataset from the stick's
// strata/datasets/. The rescue shell on ttyS1 then shows the result.
func TestLiveStickRestoreNoNetwork(t *testing.T) {
	t.Parallel() // VM tests share the machine's VM slots (qemu-tests/vm)
	img := liveImage(t)
	usb, note := stickImage(t, "usb", img, "strata.profile=sticktest strata.yes")
	target := sparseDisk(t, 1<<30)
	v := vm.StartT(t, vm.Config{
		Disks: []vm.Disk{
			{Path: usb, Interface: "usb", ReadOnly: true, Boot: true},
			{Path: target, Serial: "STRATA-TARGET"},
		},
		Net:     nil, // -nic none
		Serial1: true,
		Timeout: 10 * time.Minute,
	})
	start := time.Now() // the VM runs: slot waits are not counted
	rep, _ := report(t, v)
	ready := time.Since(start)
	t.Logf("boot (firmware, syslinux, kernel, live) to ready: %s", ready.Round(100*time.Millisecond))
	for _, want := range []string{
		`(?m)^medium /dev/sda1 vfat STRATA at /run/strata/stick \(read-only\), 1 profiles: sticktest$`,
		`(?m)^summary: 2 disks, 0 nics, `,
	} {
		if !regexp.MustCompile(want).MatchString(rep) {
			t.Errorf("report lacks %s:\n%s", want, rep)
		}
	}
	for _, want := range []string{"plan: unattended restore\n  stick:   /run/strata/stick/strata\n  profile: sticktest\n",
		"restore: profile profiles/sticktest.yaml (host sticktest) from the stick (/run/strata/stick/strata)\n"} {
		if _, err := v.Expect(regexp.QuoteMeta(want), 60*time.Second); err != nil {
			t.Fatalf("%v\n%s", err, v.Tail(40))
		}
	}
	t0 := time.Now()
	m, err := v.Expect(`STRATA RESTORE (OK|FAILED[^\n]*)`, 5*time.Minute)
	if err != nil {
		t.Fatalf("%v\n%s", err, v.Tail(60))
	}
	if m[1] != "OK" {
		t.Fatalf("restore: %s\n%s", m[0], v.Tail(60))
	}
	t.Logf("restore from the stick: %s", time.Since(t0).Round(100*time.Millisecond))
	out := v.Console().Output()
	for _, want := range []string{"/dev/vda", "file:///run/strata/stick/strata/datasets/notes.tar"} {
		if !strings.Contains(out, want) {
			t.Errorf("restore log lacks %q", want)
		}
	}
	if strings.Contains(out, "/dev/sda1 will") || regexp.MustCompile(`(?m)wipefs[^\n]*/dev/sda`).MatchString(out) {
		t.Error("the restore touched the stick")
	}

	// The rescue shell on the second serial port: the stick is mounted
	// read-only, and the restored disk has the label and the dataset.
	s1 := v.Serial1()
	if _, err := s1.Expect("rescue shell on ttyS1", 30*time.Second); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Second) // let ash print its prompt before typing
	cmd := "grep -c ' /run/strata/stick vfat ro,' /proc/mounts; blkid -s LABEL -o value /dev/vda1; mount -o ro /dev/vda1 /mnt && cat /mnt/srv/notes/hello.txt; umount /mnt; echo done-$((40+2))\n"
	if err := s1.Send(cmd); err != nil {
		t.Fatal(err)
	}
	m, err = s1.Expect(`(?s)\n1\r?\nsticky\r?\n(stick-dataset-\d+)\r?\n.*done-42`, 60*time.Second)
	if err != nil {
		t.Fatalf("rescue shell: %v\n%s", err, s1.Tail(20))
	}
	if m[1]+"\n" != note {
		t.Errorf("dataset on the restored disk: %q, want %q", m[1], note)
	}
	t.Logf("whole test: %s", time.Since(start).Round(100*time.Millisecond))
}

// TestLiveCDProfile boots the ISO as a CD (OVMF → GRUB from the El Torito
// EFI image) without a NIC and with strata.profile but no strata.yes: the
// ISO9660 labelled STRATA on /dev/sr0 is the medium, the profile comes from
// it, and nothing is written without the confirmation.
func TestLiveCDProfile(t *testing.T) {
	t.Parallel() // VM tests share the machine's VM slots (qemu-tests/vm)
	img := liveImage(t)
	if _, err := os.Stat(vm.OVMFCode); err != nil {
		t.Skipf("skipping: OVMF not installed (make deps): %v", err)
	}
	iso, _ := stickImage(t, "iso", img, "strata.profile=sticktest strata.net=none strata.rescue=none strata.wizard=off")
	target := sparseDisk(t, 1<<30)
	v := vm.StartT(t, vm.Config{Firmware: vm.UEFI, CDROM: iso, Disks: []vm.Disk{{Path: target}}, Timeout: 6 * time.Minute})
	start := time.Now() // the VM runs: slot waits are not counted
	rep, _ := report(t, v)
	t.Logf("CD (OVMF, GRUB) to ready: %s", time.Since(start).Round(100*time.Millisecond))
	// Not anchored at the line's start: the console shell's prompt may come
	// first on the same line.
	if !regexp.MustCompile(`(?m)medium /dev/sr0 iso9660 STRATA at /run/strata/stick \(read-only\), 1 profiles: sticktest\r?$`).MatchString(rep) {
		t.Errorf("report lacks the CD as medium:\n%s", rep)
	}
	for _, want := range []string{"restore: profile profiles/sticktest.yaml (host sticktest) from the stick (/run/strata/stick/strata)\n",
		"STRATA RESTORE FAILED: not confirmed"} {
		if _, err := v.Expect(regexp.QuoteMeta(want), 60*time.Second); err != nil {
			t.Fatalf("%v\n%s", err, v.Tail(30))
		}
	}
	if zero, err := allZero(target); err != nil || !zero {
		t.Errorf("the target disk was written without strata.yes (%v)", err)
	}
}

// allZero reads a disk image through and says whether every byte is zero.
func allZero(p string) (bool, error) {
	f, err := os.Open(p)
	if err != nil {
		return false, err
	}
	defer f.Close()
	buf := make([]byte, 1<<20)
	for {
		n, err := f.Read(buf)
		for _, c := range buf[:n] {
			if c != 0 {
				return false, nil
			}
		}
		if err == io.EOF {
			return true, nil
		}
		if err != nil {
			return false, err
		}
	}
}

// TestLiveBootUEFIDirect boots the live kernel and initramfs straight from
// OVMF (QEMU loads them; the kernel's EFI stub starts) and checks that it
// reaches the ready marker and reports no medium.
func TestLiveBootUEFIDirect(t *testing.T) {
	t.Parallel() // VM tests share the machine's VM slots (qemu-tests/vm)
	img := liveImage(t)
	if _, err := os.Stat(vm.OVMFCode); err != nil {
		t.Skipf("skipping: OVMF not installed (make deps): %v", err)
	}
	v := vm.StartT(t, vm.Config{
		Firmware: vm.UEFI,
		Kernel:   img.Kernel, Initrd: img.Initramfs, Append: "console=ttyS0 panic=-1 strata.net=none strata.rescue=none",
		Disks:   []vm.Disk{{Path: sparseDisk(t, 1<<28), Serial: "UEFI-1"}},
		Timeout: 5 * time.Minute,
	})
	start := time.Now() // the VM runs: slot waits are not counted
	if _, err := v.Expect(`EFI stub: `, 120*time.Second); err != nil {
		t.Errorf("no EFI stub message: not booted through UEFI? %v", err)
	}
	rep, _ := report(t, v)
	t.Logf("OVMF direct boot to ready: %s", time.Since(start).Round(100*time.Millisecond))
	for _, want := range []string{`(?m)^disk vda 256\.0 MiB .*serial="UEFI-1"$`, `(?m)^medium none \(no filesystem labelled STRATA\)$`} {
		if !regexp.MustCompile(want).MatchString(rep) {
			t.Errorf("report lacks %s:\n%s", want, rep)
		}
	}
	if strings.Contains(rep, "FAIL") {
		t.Errorf("report has failures:\n%s", rep)
	}
	// efivarfs loads on UEFI (it is "not for this machine" on BIOS).
	if regexp.MustCompile(`not for this machine[^\n]* efivarfs`).MatchString(rep) {
		t.Errorf("efivarfs did not load under UEFI:\n%s", rep)
	}
}
