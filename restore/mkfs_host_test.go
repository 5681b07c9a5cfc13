package restore

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stratahq/strata/internal/run"
	"github.com/stratahq/strata/profile"
	"github.com/stratahq/strata/restore/plan"
	"github.com/stratahq/strata/restore/probe"
)

// mkfsProfile has one filesystem of each type with the settings a capture
// records; the test makes each on an image file with the mkfs step's
// commands and reads the settings back with the filesystem's own tools.
const mkfsProfile = `version: 1
host: {name: mkfs}
disks:
  d:
    table: gpt
    partitions:
      - {name: e4, size: 64MiB}
      - {name: e2, size: 64MiB}
      - {name: x, size: 512MiB}
      - {name: f, size: 64MiB}
      - {name: b, size: 256MiB}
      - {name: s, size: 64MiB}
filesystems:
  - device: d/e4
    type: ext4
    label: root
    uuid: 9f2e3d4c-5b6a-4798-8b7c-6d5e4f3a2b1c
    ext: {block_size: 1024, inode_size: 512, inode_ratio: 8192, reserved_blocks: 777, errors: panic, stride: 16, stripe_width: 32,
          features: [has_journal, extent, ^huge_file, metadata_csum], mount_defaults: acl}
  - device: d/e2
    type: ext2
    ext: {block_size: 4096, inodes: 4096, reserved_percent: 0.5}
  - device: d/x
    type: xfs
    label: home
    uuid: a03f4e5d-6c7b-48a9-9c8d-7e6f5a4b3c2d
    xfs: {block_size: 4096, inode_size: 1024, agcount: 5, log_size: 16MiB, features: [crc, finobt, rmapbt, ^reflink, bigtime, inobtcount, sparse, ftype]}
  - device: d/f
    type: vfat
    label: ESP
    uuid: 7A3C-1F2E
    vfat: {fat_size: 16, sectors_per_cluster: 4}
  - device: d/b
    type: btrfs
    label: system
    uuid: 6f0d2c1e-0000-4000-8000-000000000001
    btrfs: {node_size: 32768, sector_size: 4096, metadata_profile: dup, features: [no-holes, ^extref, free-space-tree]}
  - device: d/s
    type: swap
    label: swap
    uuid: b1405f6e-7d8c-49ba-8d9e-8f7a6b5c4d3e
`

// mkfsOn runs the plan's mkfs step for the filesystem on ref against img,
// through Apply (so the step's check confirms it), and a second time to see
// it skipped.
func mkfsOn(t *testing.T, pl *plan.Plan, ref, img string) {
	t.Helper()
	var step plan.Step
	for _, s := range pl.Steps {
		if s.ID == "mkfs:"+ref {
			step = s
		}
	}
	if step.ID == "" {
		t.Fatalf("no mkfs step for %s", ref)
	}
	dev := step.Device
	step.Device, step.Check.Device = img, img
	var acts []plan.Action
	for _, a := range step.Actions {
		r := append([]string(nil), a.Run...)
		for i := range r {
			if r[i] == dev {
				r[i] = img
			}
		}
		acts = append(acts, plan.Action{Run: r})
	}
	step.Actions = acts
	one := &plan.Plan{Host: pl.Host, WorkDir: t.TempDir(), TargetRoot: t.TempDir(), Steps: []plan.Step{step}}
	for i := 0; i < 2; i++ {
		ev := &events{}
		if err := Apply(context.Background(), one, run.Exec{}, ev.handle, Options{Journal: filepath.Join(t.TempDir(), "j")}); err != nil {
			t.Fatalf("%v\n%s", err, ev.json(t))
		}
		if i == 1 && len(ev.kinds(StepSkipped)) != 1 {
			t.Errorf("%s: the second run did not find the filesystem made", ref)
		}
	}
}

func TestHostMkfsSettings(t *testing.T) {
	p, err := profile.Parse("mkfs.yaml", []byte(mkfsProfile))
	if err != nil {
		t.Fatal(err)
	}
	disk := []probe.Disk{{Name: "vda", Path: "/dev/vda", Size: 2 << 30, LogicalSectorSize: 512, PhysicalSectorSize: 512}}
	pl, err := plan.Build(p, disk, plan.Options{Disks: map[string]string{"d": "vda"}})
	if err != nil {
		t.Fatal(err)
	}
	sizes := map[string]int64{}
	for _, d := range pl.Devices {
		sizes[d.Ref] = d.Size
	}
	img := func(ref string) string { return sparse(t, sizes[ref]) }

	t.Run("ext4", func(t *testing.T) {
		needTools(t, "mke2fs", "tune2fs", "dumpe2fs", "blkid")
		f := img("d/e4")
		mkfsOn(t, pl, "d/e4", f)
		sb := superblock(t, f)
		for k, want := range map[string]string{
			"Filesystem UUID": "9f2e3d4c-5b6a-4798-8b7c-6d5e4f3a2b1c", "Filesystem volume name": "root", "Block size": "1024",
			"Inode size": "512", "Reserved block count": "777", "Errors behavior": "Panic", "RAID stride": "16",
			"RAID stripe width": "32", "Default mount options": "acl", "Inode count": "8192",
		} {
			if sb[k] != want {
				t.Errorf("%s = %q, want %q", k, sb[k], want)
			}
		}
		if f := sb["Filesystem features"]; !strings.Contains(f, "metadata_csum") || strings.Contains(f, "huge_file") || !strings.Contains(f, "extent") {
			t.Errorf("features: %s", f)
		}
	})
	t.Run("ext2", func(t *testing.T) {
		needTools(t, "mke2fs", "dumpe2fs")
		f := img("d/e2")
		mkfsOn(t, pl, "d/e2", f)
		sb := superblock(t, f)
		if sb["Inode count"] != "4096" || sb["Block size"] != "4096" || strings.Contains(sb["Filesystem features"], "has_journal") {
			t.Errorf("ext2: inodes %s, block %s, features %s", sb["Inode count"], sb["Block size"], sb["Filesystem features"])
		}
		if sb["Reserved block count"] != "81" { // 0.5% of 16384 blocks
			t.Errorf("reserved %s", sb["Reserved block count"])
		}
	})
	t.Run("xfs", func(t *testing.T) {
		needTools(t, "mkfs.xfs", "xfs_db")
		f := img("d/x")
		mkfsOn(t, pl, "d/x", f)
		out := sh(t, "xfs_db", "-r", "-c", "sb 0", "-c", "print", f)
		for _, want := range []string{"agcount = 5", "uuid = a03f4e5d-6c7b-48a9-9c8d-7e6f5a4b3c2d", `fname = "home\000`, "inodesize = 1024", "blocksize = 4096",
			"logblocks = 16384"} { // 16 MiB asked, 64 MiB made: mkfs.xfs's minimum (the plan warns)
			if !strings.Contains(out, want) {
				t.Errorf("xfs_db lacks %q", want)
			}
		}
		info := sh(t, "xfs_db", "-r", "-c", "version", f)
		for _, want := range []string{"CRC", "FINOBT", "RMAPBT", "BIGTIME", "INOBTCNT", "SPARSE_INODES", "FTYPE"} {
			if !strings.Contains(info, want) {
				t.Errorf("xfs version lacks %s: %s", want, info)
			}
		}
		if strings.Contains(info, "REFLINK") {
			t.Errorf("reflink is on: %s", info)
		}
		found := false
		for _, w := range pl.Warnings {
			found = found || strings.Contains(w, "log_size 16MiB")
		}
		if !found {
			t.Errorf("no warning about the log size: %v", pl.Warnings)
		}
	})
	t.Run("vfat", func(t *testing.T) {
		needTools(t, "mkfs.fat", "fsck.fat", "blkid")
		f := img("d/f")
		mkfsOn(t, pl, "d/f", f)
		out := sh(t, "fsck.fat", "-n", "-v", f)
		for _, want := range []string{"2048 bytes per cluster", "16 bit entries", "0/"} { // 4 sectors per cluster, FAT16, clean
			if !strings.Contains(out, want) {
				t.Errorf("fsck.fat -v lacks %q:\n%s", want, out)
			}
		}
		if b := sh(t, "blkid", "-o", "export", f); !strings.Contains(b, "UUID=7A3C-1F2E") || !strings.Contains(b, "LABEL=ESP") {
			t.Errorf("blkid: %s", b)
		}
	})
	t.Run("btrfs", func(t *testing.T) {
		needTools(t, "mkfs.btrfs", "btrfs")
		f := img("d/b")
		mkfsOn(t, pl, "d/b", f)
		super := sh(t, "btrfs", "inspect-internal", "dump-super", f)
		for _, want := range []string{"nodesize\t\t32768", "sectorsize\t\t4096", "label\t\t\tsystem", "fsid\t\t\t6f0d2c1e-0000-4000-8000-000000000001", "NO_HOLES", "FREE_SPACE_TREE"} {
			if !strings.Contains(super, want) {
				t.Errorf("dump-super lacks %q", want)
			}
		}
		if strings.Contains(super, "EXTENDED_IREF") {
			t.Error("extref is on")
		}
	})
	t.Run("swap", func(t *testing.T) {
		needTools(t, "mkswap", "blkid")
		f := img("d/s")
		mkfsOn(t, pl, "d/s", f)
		out := sh(t, "blkid", "-o", "export", f)
		if !strings.Contains(out, "UUID=b1405f6e-7d8c-49ba-8d9e-8f7a6b5c4d3e") || !strings.Contains(out, "LABEL=swap") || !strings.Contains(out, "TYPE=swap") {
			t.Errorf("swap: %s", out)
		}
	})
}
