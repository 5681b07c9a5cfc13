package qemutests

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stratahq/strata/drill"
	"github.com/stratahq/strata/initramfs"
)

// STRATA_DRILLS chooses the end-to-end drills: "all" (make test-e2e) or a
// comma-separated list of case names. Each drill restores a profile onto blank
// virtual disks from the live image, boots the result and checks it, so it
// takes minutes under TCG; the default set is what CI's time allows.
const defaultDrills = ""

type drillCase struct {
	name    string
	profile string
	sizes   map[string]int64
	covers  string
}

// Together the cases cover every layer kind: GPT and msdos; LUKS2; LVM;
// ext4, xfs, btrfs with subvolumes, vfat, swap; md RAID1; BIOS and UEFI;
// and the laptop moved onto a disk 50% larger and one 30% smaller.
var drillCases = []drillCase{
	{"bios-msdos", "../examples/bios-msdos.yaml", nil, "msdos, logical partition, ext4, swap, BIOS, grub-bios"},
	{"laptop-larger", "../examples/laptop-uefi.yaml", map[string]int64{"main": 12 << 30}, "GPT, ESP, LUKS2, LVM, ext4, xfs, vfat, swap, UEFI, grub-efi, 50% larger disk"},
	{"laptop-smaller", "../examples/laptop-uefi.yaml", map[string]int64{"main": 5734 << 20}, "the laptop on a disk 30% smaller"},
	{"server-raid1", "../examples/server-raid1.yaml", nil, "two disks, md RAID1 (metadata 1.0 and 1.2), LVM on md, xfs, grub-bios on both disks"},
	{"btrfs", "../examples/btrfs-subvolumes.yaml", nil, "btrfs subvolumes, swap partition, systemd-boot, UEFI"},
}

func selectedDrills(t *testing.T) map[string]bool {
	want := os.Getenv("STRATA_DRILLS")
	if want == "" {
		want = defaultDrills
	}
	sel := map[string]bool{}
	for _, c := range drillCases {
		sel[c.name] = want == "all"
	}
	for _, n := range strings.Split(want, ",") {
		if _, ok := sel[n]; ok {
			sel[n] = true
		} else if n != "all" && n != "" {
			t.Fatalf("STRATA_DRILLS: no drill case %q", n)
		}
	}
	return sel
}

func TestDrill(t *testing.T) {
	img := liveImage(t)
	cache := initramfs.DefaultCacheDir()
	base := filepath.Join(cache, "images", "test-image.tar.zst")
	if _, err := os.Stat(base); err != nil {
		t.Skipf("skipping: no base-system test image (%v): make test-image builds it", err)
	}
	sel := selectedDrills(t)
	for _, c := range drillCases {
		t.Run(c.name, func(t *testing.T) {
			if !sel[c.name] {
				t.Skipf("not selected (minutes under TCG): make test-e2e, or STRATA_DRILLS=%s, runs it (%s)", c.name, c.covers)
			}
			work := filepath.Join(vmLogRoot(), "drill-"+c.name)
			os.RemoveAll(work)
			ctx, cancel := context.WithTimeout(context.Background(), 50*time.Minute)
			defer cancel()
			rep, err := drill.Run(ctx, drill.Options{Profile: c.profile, DiskSizes: c.sizes, Kernel: img.Kernel, Initrd: img.Initramfs,
				SystemImage: base, WorkDir: work, Log: t.Logf})
			if err != nil {
				t.Fatal(err)
			}
			var b strings.Builder
			rep.Text(&b)
			t.Log("\n" + b.String())
			_ = rep.WriteJSON(filepath.Join(work, "report.json"))
			if !rep.Pass {
				t.Fatalf("drill of %s failed; serial logs in %s/logs", c.profile, work)
			}
			// Keep the reports and logs, drop the disk images.
			files, _ := filepath.Glob(filepath.Join(work, "disk-*.img"))
			for _, f := range files {
				os.Remove(f)
			}
		})
	}
}

// vmLogRoot is where kept drill directories go (gitignored).
func vmLogRoot() string {
	if d := os.Getenv("STRATA_DRILL_DIR"); d != "" {
		return d
	}
	return filepath.Join(os.TempDir(), "strata-drills")
}
