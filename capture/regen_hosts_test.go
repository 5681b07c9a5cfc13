package capture_test

import (
	"archive/tar"
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stratahq/strata/capture/internal/guestrec"
	"github.com/stratahq/strata/internal/run"
	"github.com/stratahq/strata/qemu-tests/vm"
)

// scenarios are the machines TestRegenHosts makes in the live image (the
// scripts run under gosh: in busybox sh, busybox's own mke2fs would shadow
// e2fsprogs'): each
// boots with its disks (partitioned on the host with sfdisk), runs
// testdata/guest/NAME.sh there, and brings back what the guest wrote to
// /tmp/o (recordings of strata capture, the YAML it printed, tool outputs).
var scenarios = []struct {
	name     string
	firmware vm.Firmware
	disks    []string // sfdisk scripts, one per disk
	size     int64
}{
	{"laptop", vm.UEFI, []string{`label: gpt
label-id: 5B2F1E3A-9D4C-4E8B-A6F1-2C3D4E5F6071
size=256M, type=U, uuid=1F0C2A3B-4D5E-4F60-8172-93A4B5C6D7E8, name="EFI System Partition"
size=512M, type=BC13C2FF-59E6-4262-A352-B275FD6F7172, uuid=2A1B3C4D-5E6F-4071-8293-A4B5C6D7E8F9, name=boot
type=CA7D7CCB-63ED-4C53-861C-1742536059CC, uuid=3B2C4D5E-6F70-4182-93A4-B5C6D7E8F90A, name=root
`}, 4 << 30},
	{"server", vm.BIOS, []string{
		"label: gpt\nsize=1M, type=21686148-6449-6E6F-744E-656564454649, name=bios\nsize=512M, type=R, name=boot\ntype=R, name=data\n",
		"label: gpt\nsize=1M, type=21686148-6449-6E6F-744E-656564454649, name=bios\nsize=512M, type=R, name=boot\ntype=R, name=data\n",
	}, 2 << 30},
}

// TestRegenHosts records the host fixtures of testdata/hosts that need a
// QEMU guest (LUKS, LVM, md). Run it through testdata/regen.sh --qemu, which
// first builds a live image holding this tree's strata.
func TestRegenHosts(t *testing.T) {
	if os.Getenv("STRATA_REGEN_HOSTS") == "" {
		t.Skip("skipping: records fixtures in QEMU; run testdata/regen.sh --qemu (STRATA_REGEN_HOSTS=1)")
	}
	dir := os.Getenv("STRATA_LIVE_DIR")
	if dir == "" {
		t.Skip("skipping: STRATA_LIVE_DIR must name a live image built from this tree (regen.sh does it)")
	}
	for _, sc := range scenarios {
		t.Run(sc.name, func(t *testing.T) {
			tmp := t.TempDir()
			var disks []vm.Disk
			for i, script := range sc.disks {
				p := filepath.Join(tmp, fmt.Sprintf("disk%d.img", i))
				f, err := os.Create(p)
				if err != nil {
					t.Fatal(err)
				}
				f.Truncate(sc.size)
				f.Close()
				if _, err := (run.Exec{}).Run(context.Background(), run.Cmd{Name: "sfdisk", Args: []string{"-q", p}, Stdin: strings.NewReader(script)}); err != nil {
					t.Fatal(err)
				}
				disks = append(disks, vm.Disk{Path: p, Serial: fmt.Sprintf("%s-%d", strings.ToUpper(sc.name), i)})
			}
			letter := func(i int) string { return "/dev/vd" + string(rune('a'+i)) }
			scriptDisk := filepath.Join(tmp, "script.tar")
			packScripts(t, scriptDisk, sc.name)
			disks = append(disks, vm.Disk{Path: scriptDisk, ReadOnly: true})
			out := filepath.Join(tmp, "out.img")
			os.WriteFile(out, make([]byte, 32<<20), 0o644)
			disks = append(disks, vm.Disk{Path: out})
			v := vm.StartT(t, vm.Config{Kernel: filepath.Join(dir, "vmlinuz"), Initrd: filepath.Join(dir, "initramfs.cpio.zst"),
				Firmware: sc.firmware, Append: "console=ttyS0 strata.rescue=none strata.wizard=off", Disks: disks, MemoryMB: 1536, Timeout: 15 * time.Minute})
			guestrec.Run(t, v, fmt.Sprintf("mkdir -p /tmp/s; busybox tar -xf %s -C /tmp/s; gosh /tmp/s/%s.run; busybox tar -cf %s -C /tmp o",
				letter(len(disks)-2), sc.name, letter(len(disks)-1)), 10*time.Minute)
			time.Sleep(3 * time.Second) // the final tar
			v.Kill()
			guestrec.Unpack(t, out, filepath.Join("testdata", "hosts"))
		})
	}
}

// packScripts makes a tar of testdata/guest/NAME (the skeleton) and
// NAME.run: NAME.sh with every line reporting its failure.
func packScripts(t *testing.T, dst, name string) {
	src, err := os.ReadFile(filepath.Join("testdata", "guest", name+".sh"))
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(dst)
	if err != nil {
		t.Fatal(err)
	}
	tw := tar.NewWriter(f)
	add := func(name string, data []byte, mode int64) {
		tw.WriteHeader(&tar.Header{Name: name, Mode: mode, Size: int64(len(data)), Typeflag: tar.TypeReg})
		tw.Write(data)
	}
	add(name+".run", []byte(guestrec.Numbered(string(src))), 0o755)
	base := filepath.Join("testdata", "guest")
	filepath.WalkDir(filepath.Join(base, name), func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() { // u-root's tar makes no parent directories by itself
			rel, _ := filepath.Rel(base, p)
			return tw.WriteHeader(&tar.Header{Name: filepath.ToSlash(rel) + "/", Mode: 0o755, Typeflag: tar.TypeDir})
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(base, p)
		add(filepath.ToSlash(rel), b, 0o644)
		return nil
	})
	tw.Close()
	f.Write(make([]byte, 64<<10))
	f.Close()
}
