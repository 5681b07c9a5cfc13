package plan

import (
	"flag"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stratahq/strata/profile"
	"github.com/stratahq/strata/restore/internal/testdisk"
	"github.com/stratahq/strata/restore/probe"
)

var update = flag.Bool("update", false, "rewrite golden files")

// Fake machines: the probe results a QEMU guest would give.
var (
	virtio = testdisk.Virtio
	scsi   = testdisk.SCSI
)

// liveStick is the USB stick strata booted from: never a target.
var liveStick = probe.Disk{Name: "sdz", Path: "/dev/sdz", Size: 8 * gib, LogicalSectorSize: 512, PhysicalSectorSize: 512,
	Transport: "usb", Removable: true, LiveMedium: true, Model: "Cruzer Blade", Serial: "4C530001"}

func load(t *testing.T, name string) *profile.Profile {
	t.Helper()
	p, err := profile.Load(filepath.Join("..", "..", "examples", name+".yaml"))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func golden(t *testing.T, file, got string) {
	t.Helper()
	testdisk.Golden(t, file, got, *update, "./restore/plan")
}

type planCase struct {
	name    string
	example string
	disks   []probe.Disk
	opts    Options
	wantErr bool
}

func cases() []planCase {
	const GB = 1000 * 1000 * 1000
	withStick := func(d ...probe.Disk) []probe.Disk { return append(d, liveStick) }
	return []planCase{
		{name: "equal", example: "laptop-uefi", disks: withStick(virtio("vda", 8*gib))},
		{name: "larger", example: "laptop-uefi", disks: withStick(virtio("vda", 500*GB))},
		{name: "smaller", example: "laptop-uefi", disks: withStick(virtio("vda", 6*gib)), opts: Options{Disks: map[string]string{"main": "/dev/vda"}}},
		{name: "too-small", example: "laptop-uefi", disks: withStick(virtio("vda", 1*gib)), opts: Options{Disks: map[string]string{"main": "/dev/vda"}}, wantErr: true},
		{name: "too-small-auto", example: "laptop-uefi", disks: withStick(virtio("vda", 4*gib)), wantErr: true},
		{name: "lv-too-small", example: "laptop-uefi", disks: withStick(virtio("vda", 3*gib)), opts: Options{Disks: map[string]string{"main": "vda"}}, wantErr: true},

		{name: "equal", example: "bios-msdos", disks: withStick(virtio("vda", 4*gib))},
		{name: "larger", example: "bios-msdos", disks: withStick(virtio("vda", 120*GB))},
		{name: "smaller", example: "bios-msdos", disks: withStick(virtio("vda", 2*gib)), opts: Options{Disks: map[string]string{"main": "/dev/vda"}}},
		{name: "too-small", example: "bios-msdos", disks: withStick(virtio("vda", 2*mib)), opts: Options{Disks: map[string]string{"main": "/dev/vda"}}, wantErr: true},

		{name: "equal", example: "btrfs-subvolumes", disks: withStick(scsi("sda", 0, 6*gib))},
		{name: "larger", example: "btrfs-subvolumes", disks: withStick(scsi("sda", 0, 256*GB))},
		{name: "smaller", example: "btrfs-subvolumes", disks: withStick(scsi("sda", 0, 2*gib)), opts: Options{Disks: map[string]string{"main": "sda"}}},
		{name: "too-small", example: "btrfs-subvolumes", disks: withStick(scsi("sda", 0, 1*gib)), opts: Options{Disks: map[string]string{"main": "sda"}}, wantErr: true},
		{name: "ambiguous", example: "btrfs-subvolumes", disks: withStick(scsi("sda", 0, 8*gib), scsi("sdb", 1, 8*gib)), wantErr: true},

		{name: "equal", example: "server-raid1", disks: withStick(scsi("sda", 0, 6*gib), scsi("sdb", 1, 6*gib))},
		{name: "larger", example: "server-raid1", disks: withStick(scsi("sda", 0, 2000*GB), scsi("sdb", 1, 2000*GB))},
		{name: "smaller", example: "server-raid1", disks: withStick(scsi("sda", 0, 5*gib), scsi("sdb", 1, 5*gib)), opts: Options{Disks: map[string]string{"a": "sda", "b": "sdb"}}},
		{name: "too-small", example: "server-raid1", disks: withStick(scsi("sda", 0, 3*gib), scsi("sdb", 1, 3*gib)), opts: Options{Disks: map[string]string{"a": "sda", "b": "sdb"}}, wantErr: true},
		{name: "missing-disk", example: "server-raid1", disks: withStick(scsi("sda", 0, 6*gib)), wantErr: true},

		{name: "in-use", example: "laptop-uefi", disks: withStick(busy()), wantErr: true},
		{name: "teardown", example: "laptop-uefi", disks: withStick(busy()), opts: Options{Teardown: true}},
		{name: "keep-raid", example: "server-raid1", disks: withStick(scsi("sda", 0, 6*gib), scsi("sdb", 1, 6*gib)), opts: Options{Keep: []string{"md-data"}}},
		{name: "bad-keep", example: "server-raid1", disks: withStick(scsi("sda", 0, 6*gib), scsi("sdb", 1, 6*gib)), opts: Options{Keep: []string{"/nothere", "vg-nope"}}, wantErr: true},
		{name: "nvme-4k", example: "laptop-uefi", disks: withStick(nvme4k())},
	}
}

// busy is a disk with an old system's stack on it, partly mounted, and a
// mount this restore made itself (under the target root).
func busy() probe.Disk {
	d := virtio("vda", 20*gib)
	d.Partitions = []probe.Partition{{Name: "vda1", Path: "/dev/vda1", Number: 1, Start: mib, Size: 512 * mib}, {Name: "vda2", Path: "/dev/vda2", Number: 2, Start: 513 * mib, Size: 19 * gib}}
	d.Mounts = []probe.Mount{{Device: "vda1", Point: "/mnt/old/boot", FSType: "ext4"}, {Device: "dm-1", Point: "/mnt/old", FSType: "ext4"}, {Device: "dm-3", Point: "/mnt/strata", FSType: "ext4"}}
	d.Swaps = []string{"/dev/dm-2"}
	d.Holders = []probe.Holder{
		{Name: "dm-0", Kind: "crypt", Map: "oldcrypt", On: "vda2"},
		{Name: "dm-1", Kind: "lvm", Map: "old--vg-root", On: "dm-0"},
		{Name: "dm-2", Kind: "lvm", Map: "old--vg-swap", On: "dm-0"},
		{Name: "dm-3", Kind: "lvm", Map: "vg0-root", On: "dm-0"},
	}
	return d
}

func nvme4k() probe.Disk {
	return probe.Disk{Name: "nvme0n1", Path: "/dev/nvme0n1", Size: 256 * gib, LogicalSectorSize: 4096, PhysicalSectorSize: 4096,
		Transport: "nvme", Model: "Samsung SSD 980 1TB", Serial: "S64ANS0T123456", ByID: []string{"nvme-Samsung_SSD_980_1TB_S64ANS0T123456"}}
}

// TestGoldenPlans plans every example on several disk sizes: table and JSON
// golden files, or the error text when it cannot be done.
func TestGoldenPlans(t *testing.T) {
	for _, c := range cases() {
		t.Run(c.example+"/"+c.name, func(t *testing.T) {
			p := load(t, c.example)
			pl, err := Build(p, c.disks, c.opts)
			base := c.example + "/" + c.name
			if c.wantErr {
				if err == nil {
					t.Fatalf("planned, want an error:\n%s", pl.Text())
				}
				golden(t, base+".err", err.Error()+"\n")
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			golden(t, base+".txt", pl.Text())
			js, err := pl.JSON()
			if err != nil {
				t.Fatal(err)
			}
			golden(t, base+".json", string(js))
			checkInvariants(t, pl)
		})
	}
}

// checkInvariants holds for every plan, whatever the golden files say.
func checkInvariants(t *testing.T, pl *Plan) {
	t.Helper()
	seen := map[string]int{}
	for i, s := range pl.Steps {
		for _, a := range s.After {
			j, ok := seen[a]
			if !ok {
				t.Errorf("step %s runs after %s, which does not come before it", s.ID, a)
			}
			_ = j
		}
		seen[s.ID] = i
		for _, a := range s.Actions {
			for _, w := range a.Run {
				if strings.Contains(w, "passphrase") || strings.Contains(w, "test-only") {
					t.Errorf("step %s: argv word %q looks like a secret", s.ID, w)
				}
			}
		}
	}
	for _, d := range pl.Disks {
		if d.Table == nil {
			continue
		}
		var end int64
		for _, pt := range d.Table.Partitions {
			if pt.Start%mib != 0 || pt.Size%mib != 0 {
				t.Errorf("%s partition %d not MiB-aligned: %d+%d", d.Name, pt.Number, pt.Start, pt.Size)
			}
			if pt.Start < end {
				t.Errorf("%s partition %d overlaps the one before", d.Name, pt.Number)
			}
			end = pt.End()
		}
		tail := int64(0)
		if d.Table.Type == "gpt" {
			tail = 33 * 512 // backup header and entries
		}
		if end > d.Size-tail {
			t.Errorf("%s: partitions end at %d, past %d (disk %d minus the GPT backup)", d.Name, end, d.Size-tail, d.Size)
		}
	}
}
