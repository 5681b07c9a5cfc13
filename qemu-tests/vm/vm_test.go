package vm

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/u-root/u-root/pkg/cpio"
)

func TestArgs(t *testing.T) {
	cfg := withDefaults(Config{
		Name: "t", Kernel: "/k", Initrd: "/i", Append: "console=ttyS0",
		Disks: []Disk{
			{Path: "/a.img", Serial: "S1", Boot: true},
			{Path: "/b,c.qcow2", Format: "qcow2", Interface: "nvme"},
			{Path: "/c.img", Interface: "usb", ReadOnly: true},
			{Path: "/d.img", Interface: "scsi"},
			{Path: "/e.img", Interface: "scsi"},
			{Path: "/f.img", Interface: "ide", Serial: "IDE"},
			{Path: "/g.img", Interface: "nvme", Serial: "N4K", SectorSize: 4096},
		},
		CDROM: "/x.iso",
		Net:   &Net{TFTPDir: "/tftp", BootFile: "boot.ipxe", NIC: "e1000", MAC: "52:54:00:00:00:01"},
		Accel: "kvm:tcg", LogDir: "/tmp",
	})
	t.Setenv("STRATA_QEMU_ACCEL", "")
	got, err := Args(cfg, runtimePaths{})
	if err != nil {
		t.Fatal(err)
	}
	s := strings.Join(got, " ")
	for _, want := range []string{
		"-machine q35 -cpu max -m 2048 -smp 1 -display none -monitor none",
		"-chardev stdio,id=con0,signal=off -serial chardev:con0",
		"-accel kvm -accel tcg",
		"-kernel /k -initrd /i -append console=ttyS0",
		"-drive file=/a.img,format=raw,if=none,id=disk0,cache=unsafe -device virtio-blk-pci,drive=disk0,serial=S1,bootindex=0",
		"-drive file=/b,,c.qcow2,format=qcow2,if=none,id=disk1,cache=unsafe -device nvme,drive=disk1,serial=nvme1 ",
		"-device qemu-xhci,id=xhci -drive file=/c.img,format=raw,if=none,id=disk2,cache=unsafe,readonly=on -device usb-storage,drive=disk2,bus=xhci.0,removable=on",
		"-device virtio-scsi-pci,id=scsi0 -drive file=/d.img",
		"-device scsi-hd,drive=disk4,bus=scsi0.0",
		"-device ide-hd,drive=disk5,serial=IDE",
		"-device nvme,drive=disk6,serial=N4K,logical_block_size=4096,physical_block_size=4096",
		"-device ide-cd,drive=cd0,bootindex=1",
		"-netdev user,id=net0,tftp=/tftp,bootfile=boot.ipxe -device e1000,netdev=net0,mac=52:54:00:00:00:01,bootindex=2",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("argv lacks %q:\n%s", want, s)
		}
	}
	if strings.Count(s, "virtio-scsi-pci") != 1 {
		t.Errorf("want one virtio-scsi controller:\n%s", s)
	}
	if strings.Contains(s, "pflash") || strings.Contains(s, "-nic none") {
		t.Errorf("unexpected pflash or -nic none:\n%s", s)
	}

	u, err := Args(withDefaults(Config{Firmware: UEFI, LogDir: "/tmp"}), runtimePaths{OVMFVars: "/tmp/vars.fd"})
	if err != nil {
		t.Fatal(err)
	}
	s = strings.Join(u, " ")
	for _, want := range []string{"-accel tcg", "file=" + OVMFCode, "unit=1,file=/tmp/vars.fd", "-nic none"} {
		if !strings.Contains(s, want) {
			t.Errorf("UEFI argv lacks %q:\n%s", want, s)
		}
	}

	for name, bad := range map[string]Config{
		"iface":  {Disks: []Disk{{Path: "/a", Interface: "sata"}}},
		"format": {Disks: []Disk{{Path: "/a", Format: "vmdk"}}},
		"nopath": {Disks: []Disk{{}}},
		"sector": {Disks: []Disk{{Path: "/a", SectorSize: 1000}}},
		"initrd": {Initrd: "/i"},
		"mac":    {Net: &Net{MAC: "zz"}},
		"uefi":   {Firmware: UEFI},
	} {
		if _, err := Args(withDefaults(bad), runtimePaths{}); err == nil {
			t.Errorf("%s: Args accepted a bad config", name)
		}
	}
}

func TestAccelEnv(t *testing.T) {
	t.Setenv("STRATA_QEMU_ACCEL", "kvm:tcg")
	if got := withDefaults(Config{Accel: "tcg"}).Accel; got != "kvm:tcg" {
		t.Errorf("Accel = %q, want the environment's kvm:tcg", got)
	}
}

// cachedKernel finds the kernel `make deps` unpacked.
func cachedKernel(t *testing.T) string {
	t.Helper()
	cache := os.Getenv("STRATA_CACHE")
	if cache == "" {
		home, _ := os.UserHomeDir()
		cache = filepath.Join(home, ".cache", "strata")
	}
	m, _ := filepath.Glob(filepath.Join(cache, "kernel", "current", "root", "boot", "vmlinuz-*"))
	if len(m) == 0 {
		t.Skipf("skipping: no kernel in %s/kernel/current (run make deps)", cache)
	}
	return m[0]
}

// busyboxInitramfs writes an uncompressed cpio with busybox-static as /init's
// interpreter and returns its path.
func busyboxInitramfs(t *testing.T, script string) string {
	t.Helper()
	bb, err := os.ReadFile("/bin/busybox")
	if err == nil && !isStatic(bb) {
		err = os.ErrInvalid
	}
	if err != nil {
		t.Skipf("skipping: need a static /bin/busybox (apt-get install busybox-static): %v", err)
	}
	path := filepath.Join(t.TempDir(), "initramfs.cpio")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w := cpio.Newc.Writer(f)
	recs := []cpio.Record{
		cpio.Directory("bin", 0o755),
		cpio.Directory("dev", 0o755),
		cpio.Directory("proc", 0o755),
		cpio.CharDev("dev/console", 0o600, 5, 1), // the kernel opens it for init's stdio
		cpio.StaticRecord(bb, cpio.Info{Name: "bin/busybox", Mode: cpio.S_IFREG | 0o755}),
		cpio.Symlink("bin/sh", "busybox"),
		cpio.StaticFile("init", "#!/bin/busybox sh\n/bin/busybox --install -s /bin\nexport PATH=/bin\n"+script, 0o755),
		cpio.TrailerRecord,
	}
	if err := cpio.WriteRecords(w, recs); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

// isStatic reports whether an ELF file has no program interpreter.
func isStatic(b []byte) bool { return !strings.Contains(string(b[:min(len(b), 4096)]), "ld-linux") }

func TestBootBIOS(t *testing.T) {
	kernel := cachedKernel(t)
	initrd := busyboxInitramfs(t, `mount -t devtmpfs dev /dev
echo second-port > /dev/ttyS1
echo "marker: $((6*7)) ready"
read line
echo "got:$line"
poweroff -f
`)
	dir := t.TempDir()
	disk := func(name string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, make([]byte, 1<<20), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	start := time.Now()
	v := StartT(t, Config{
		Kernel: kernel, Initrd: initrd,
		Append: "console=ttyS0 quiet panic=-1",
		// One disk per interface: QEMU must accept every argv shape we build.
		Disks: []Disk{
			{Path: disk("v.img"), Serial: "VIRTIO1"},
			{Path: disk("n.img"), Interface: "nvme"},
			{Path: disk("u.img"), Interface: "usb", ReadOnly: true},
			{Path: disk("s.img"), Interface: "scsi"},
			{Path: disk("i.img"), Interface: "ide"},
		},
		Net:      &Net{NIC: "e1000"},
		MemoryMB: 512, NoReboot: true, Timeout: 2 * time.Minute, Serial1: true,
	})
	m, err := v.Expect(`marker: (\d+) ready`, 60*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if m[1] != "42" {
		t.Errorf("submatch = %q, want 42", m[1])
	}
	if _, err := v.Serial1().Expect("second-port", 10*time.Second); err != nil {
		t.Error(err)
	}
	if err := v.Send("hello vm\n"); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Expect(`got:hello vm`, 20*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := v.Wait(30 * time.Second); err != nil {
		t.Fatal(err)
	}
	t.Logf("boot, conversation and poweroff took %s", time.Since(start).Round(time.Millisecond))
	// After exit Expect fails fast instead of waiting out its timeout.
	t0 := time.Now()
	if _, err := v.Expect("never printed", time.Minute); err == nil || !strings.Contains(err.Error(), "exited") {
		t.Errorf("Expect after exit = %v, want a QEMU-exited error", err)
	}
	if time.Since(t0) > 5*time.Second {
		t.Errorf("Expect after exit took %s", time.Since(t0))
	}
	log, err := os.ReadFile(v.LogPath())
	if err != nil || !strings.Contains(string(log), "marker: 42 ready") {
		t.Errorf("serial log %s lacks the marker (err %v)", v.LogPath(), err)
	}
}

func TestExpectTimeoutAndKill(t *testing.T) {
	kernel := cachedKernel(t)
	initrd := busyboxInitramfs(t, "echo idle-guest\nwhile true; do sleep 1; done\n")
	v := StartT(t, Config{Kernel: kernel, Initrd: initrd, Append: "console=ttyS0 quiet", MemoryMB: 512, Timeout: 2 * time.Minute})
	if _, err := v.Expect("idle-guest", 60*time.Second); err != nil {
		t.Fatal(err)
	}
	_, err := v.Expect("never printed", 2*time.Second)
	if err == nil || !strings.Contains(err.Error(), "did not appear within 2s") || !strings.Contains(err.Error(), "idle-guest") {
		t.Errorf("Expect timeout error = %v, want a timeout with the last lines", err)
	}
	if err := v.Wait(time.Second); err == nil {
		t.Error("Wait returned nil for a running guest")
	}
	v.Kill()
	select {
	case <-v.Done():
	default:
		t.Error("Kill returned before QEMU exited")
	}
}

func TestHardTimeout(t *testing.T) {
	kernel := cachedKernel(t)
	initrd := busyboxInitramfs(t, "while true; do sleep 1; done\n")
	v := StartT(t, Config{Kernel: kernel, Initrd: initrd, MemoryMB: 512, Timeout: 3 * time.Second})
	if err := v.Wait(30 * time.Second); err == nil {
		t.Fatal("Wait = nil, want the killed QEMU's exit status")
	}
}

func TestBootUEFI(t *testing.T) {
	if testing.Short() {
		t.Skip("skipping: UEFI boot takes ~30 s under TCG (-short)")
	}
	if _, err := os.Stat(OVMFCode); err != nil {
		t.Skipf("skipping: no OVMF (apt-get install ovmf): %v", err)
	}
	kernel := cachedKernel(t)
	initrd := busyboxInitramfs(t, "echo uefi-marker; poweroff -f\n")
	v := StartT(t, Config{Firmware: UEFI, Kernel: kernel, Initrd: initrd, Append: "console=ttyS0 quiet", MemoryMB: 512, NoReboot: true, Timeout: 3 * time.Minute})
	if _, err := v.Expect("uefi-marker", 150*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := v.Wait(30 * time.Second); err != nil {
		t.Fatal(err)
	}
}

// The harness answers cursor-position queries, even when split across reads.
func TestConsoleAnswersDSR(t *testing.T) {
	pr, pw := io.Pipe()
	var got lockedBuffer
	done := make(chan struct{})
	c := newConsole("t", &got, done, func() string { return "" })
	c.answerDSR = true
	go c.pump(pr, io.Discard)
	pw.Write([]byte("prompt \x1b["))
	pw.Write([]byte("6n and \x1b[6n"))
	if _, err := c.Expect(`and`, time.Second); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(2 * time.Second)
	for strings.Count(got.String(), "\x1b[1;1R") < 2 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := strings.Count(got.String(), "\x1b[1;1R"); n != 2 {
		t.Errorf("%d replies, want 2: %q", n, got.String())
	}
	pw.Close()
}

// A test binary killed without cleanup (go test -timeout) must not leave
// QEMU running: a child process starts a VM and exits abruptly.
func TestQEMUDiesWithParent(t *testing.T) {
	if os.Getenv("STRATA_VM_ORPHAN_CHILD") == "1" {
		v, err := Start(context.Background(), Config{Kernel: os.Getenv("STRATA_VM_KERNEL"), MemoryMB: 256, Timeout: time.Minute, LogDir: os.Getenv("STRATA_VM_LOGDIR")})
		if err != nil {
			fmt.Println("error", err)
			os.Exit(1)
		}
		fmt.Println("qemu-pid", v.PID())
		os.Exit(0) // no Kill, no cleanup
	}
	kernel := cachedKernel(t)
	if _, err := exec.LookPath(QEMUBinary); err != nil {
		t.Skipf("skipping: %s not installed", QEMUBinary)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestQEMUDiesWithParent$")
	// The child exits without cleanup: its logs go to the parent's TempDir.
	cmd.Env = append(os.Environ(), "STRATA_VM_ORPHAN_CHILD=1", "STRATA_VM_KERNEL="+kernel, "STRATA_VM_LOGDIR="+t.TempDir())
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("child: %v: %s", err, out)
	}
	var pid int
	if _, err := fmt.Sscanf(strings.TrimSpace(string(out)), "qemu-pid %d", &pid); err != nil {
		t.Fatalf("child said %q", out)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		// Gone, or a zombie waiting for init to reap it.
		if err != nil || strings.Contains(string(b), ") Z ") {
			return
		}
		if time.Now().After(deadline) {
			syscall.Kill(pid, syscall.SIGKILL)
			t.Fatalf("QEMU %d outlived its parent", pid)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TypeLine waits for each piece's echo, across the line editor's wrap; a
// guest that echoes nothing fails it.
func TestTypeLine(t *testing.T) {
	echo := func(wrapAt int) (*Console, *lockedBuffer, func()) {
		inR, inW := io.Pipe()   // what the console types
		outR, outW := io.Pipe() // what the guest prints
		var typed lockedBuffer
		c := newConsole("t", inW, make(chan struct{}), func() string { return "" })
		go c.pump(outR, io.Discard)
		done := make(chan struct{})
		go func() {
			defer close(done)
			b := make([]byte, 64)
			col := 0
			for {
				n, err := inR.Read(b)
				if err != nil {
					return
				}
				typed.Write(b[:n])
				if wrapAt == 0 {
					continue
				}
				for _, ch := range b[:n] {
					if ch == '\r' {
						outW.Write([]byte("\r\n"))
						continue
					}
					outW.Write([]byte{ch})
					if col++; col%wrapAt == 0 {
						outW.Write([]byte(" \r\n")) // ash's redraw at the margin
					}
				}
			}
		}()
		// stop waits for the echo to record the last key: TypeLine returns
		// once the Enter is sent, possibly before it is written down (a CI
		// run read the buffer without it).
		return c, &typed, func() { inW.Close(); outW.Close(); <-done }
	}
	line := "busybox head -c 1234 /dev/vdd > /tmp/t.sh; FILES=/dev/vdd busybox sh /tmp/t.sh"
	c, typed, stop := echo(13)
	if err := c.TypeLine(line, 2*time.Second); err != nil {
		t.Fatal(err)
	}
	stop()
	if got := typed.String(); got != line+"\r" {
		t.Errorf("typed %q", got)
	}
	c, _, stop = echo(0)
	defer stop()
	if err := c.TypeLine("echo hi", 200*time.Millisecond); err == nil || !strings.Contains(err.Error(), `no echo of "echo hi"`) {
		t.Errorf("a silent guest: %v", err)
	}
}

// WaitPrompt presses Enter while the prompt does not come, and gives up with
// ErrTimeout when it never does.
func TestWaitPrompt(t *testing.T) {
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	c := newConsole("t", inW, make(chan struct{}), func() string { return "" })
	go c.pump(outR, io.Discard)
	enters := 0
	go func() {
		b := make([]byte, 16)
		for {
			n, err := inR.Read(b)
			if err != nil {
				return
			}
			for _, ch := range b[:n] {
				if ch == '\r' {
					if enters++; enters == 2 { // the shell answers the second Enter
						outW.Write([]byte("\r\nstrata-live:/root# "))
					}
				}
			}
		}
	}()
	defer func() { inW.Close(); outW.Close() }()
	if err := c.waitPrompt(LivePrompt, 5*time.Second, 50*time.Millisecond); err != nil {
		t.Fatalf("the prompt after two Enters was not seen: %v", err)
	}
	err := c.waitPrompt(LivePrompt, 200*time.Millisecond, 50*time.Millisecond)
	if !errors.Is(err, ErrTimeout) {
		t.Fatalf("no second prompt: got %v, want ErrTimeout", err)
	}
}
