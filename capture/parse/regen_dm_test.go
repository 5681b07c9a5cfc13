package parse_test

import (
	"archive/tar"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stratahq/strata/capture/internal/guestrec"
	"github.com/stratahq/strata/internal/run"
	"github.com/stratahq/strata/qemu-tests/vm"
)

// TestRegenDMFixtures records the md, LUKS and LVM fixtures in a QEMU guest
// running the strata live image (the host has no device-mapper or md). It
// types testdata/regen-dm.guest.sh into the guest's shell and unpacks what
// the guest wrote to its last disk into testdata/. Run it through
// testdata/regen.sh --dm.
func TestRegenDMFixtures(t *testing.T) {
	if os.Getenv("STRATA_REGEN_DM") == "" {
		t.Skip("skipping: records fixtures in QEMU; run testdata/regen.sh --dm (STRATA_REGEN_DM=1)")
	}
	var disks []string
	for _, n := range []string{"a", "b", "c", "d"} {
		disks = append(disks, gptDisk(t, n, 512<<20, "label: gpt\nsize=64M, type=R\ntype=R\n"))
	}
	recordInGuest(t, "testdata/regen-dm.guest.sh", vm.BIOS, disks)
}

// TestRegenEFIFixtures records efibootmgr -v with boot entries in a guest
// booted through OVMF (testdata/regen-efi.guest.sh). Run it through
// testdata/regen.sh --dm.
func TestRegenEFIFixtures(t *testing.T) {
	if os.Getenv("STRATA_REGEN_DM") == "" {
		t.Skip("skipping: records fixtures in QEMU; run testdata/regen.sh --dm (STRATA_REGEN_DM=1)")
	}
	if _, err := os.Stat(vm.OVMFCode); err != nil {
		t.Skipf("skipping: no OVMF firmware (apt-get install ovmf): %v", err)
	}
	esp := gptDisk(t, "esp", 64<<20, "label: gpt\nsize=32M, type=U, uuid=1F0C2A3B-4D5E-4F60-8172-93A4B5C6D7E8\n")
	recordInGuest(t, "testdata/regen-efi.guest.sh", vm.UEFI, []string{esp})
}

// gptDisk makes a sparse image with the sfdisk script's table.
func gptDisk(t *testing.T, name string, size int64, table string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name+".img")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	f.Truncate(size)
	f.Close()
	if _, err := (run.Exec{}).Run(context.Background(), run.Cmd{Name: "sfdisk", Args: []string{"-q", p}, Stdin: strings.NewReader(table)}); err != nil {
		t.Fatalf("sfdisk %s: %v", p, err)
	}
	return p
}

// recordInGuest boots the live image with the disks (virtio, serials
// FIXTURE-A, ...), then one disk that receives the guest's /tmp/o as a tar
// archive and one holding the script; it runs the script's lines (comments
// skipped) and unpacks the archive into testdata/.
func recordInGuest(t *testing.T, scriptPath string, fw vm.Firmware, disks []string) {
	t.Helper()
	kernel, initrd := liveImage(t)
	dir := t.TempDir()
	var vdisks []vm.Disk
	for i, p := range disks {
		vdisks = append(vdisks, vm.Disk{Path: p, Serial: "FIXTURE-" + string(rune('A'+i))})
	}
	out := filepath.Join(dir, "out.img")
	if err := os.WriteFile(out, make([]byte, 16<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	vdisks = append(vdisks, vm.Disk{Path: out})
	// The script travels as a tar archive on one more disk: typing long lines
	// into the live shell's line editor over a serial port is slow and lossy.
	script, err := os.ReadFile(scriptPath)
	if err != nil {
		t.Fatal(err)
	}
	scriptDisk := filepath.Join(dir, "script.tar")
	writeTar(t, scriptDisk, "regen.sh", guestrec.Numbered(string(script)))
	vdisks = append(vdisks, vm.Disk{Path: scriptDisk, ReadOnly: true})
	v := vm.StartT(t, vm.Config{Firmware: fw, Kernel: kernel, Initrd: initrd, Append: "console=ttyS0 strata.rescue=none strata.wizard=off", Disks: vdisks,
		MemoryMB: 1024, Timeout: 15 * time.Minute})
	dev := "/dev/vd" + string(rune('a'+len(vdisks)-1))
	guestrec.Run(t, v, "busybox tar -xf "+dev+" -C /tmp; gosh /tmp/regen.sh", 10*time.Minute)
	v.Kill()
	guestrec.Unpack(t, out, "testdata")
}

// liveImage finds the live kernel and initramfs: $STRATA_LIVE_DIR, else
// $STRATA_CACHE/live (where the initramfs builder puts them), else the
// module's out/live.
func liveImage(t *testing.T) (kernel, initrd string) {
	var dirs []string
	if d := os.Getenv("STRATA_LIVE_DIR"); d != "" {
		dirs = append(dirs, d)
	}
	cache := os.Getenv("STRATA_CACHE")
	if cache == "" {
		if home, err := os.UserHomeDir(); err == nil {
			cache = filepath.Join(home, ".cache", "strata")
		}
	}
	dirs = append(dirs, filepath.Join(cache, "live"), filepath.Join("..", "..", "out", "live"))
	for _, d := range dirs {
		k, i := filepath.Join(d, "vmlinuz"), filepath.Join(d, "initramfs.cpio.zst")
		if _, err := os.Stat(k); err == nil {
			if _, err := os.Stat(i); err == nil {
				return k, i
			}
		}
	}
	t.Skipf("skipping: no live image (vmlinuz + initramfs.cpio.zst) in %v; build it first (strata initramfs)", dirs)
	return "", ""
}

func writeTar(t *testing.T, path, name, content string) {
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	tw := tar.NewWriter(f)
	tw.WriteHeader(&tar.Header{Name: name, Mode: 0o755, Size: int64(len(content)), Typeflag: tar.TypeReg})
	io.WriteString(tw, content)
	tw.Close()
	f.Write(make([]byte, 64<<10)) // a disk is at least a few sectors
	f.Close()
}
