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

		// strata open: every layer verified and opened, nothing written.
		{name: "open", example: "laptop-uefi", disks: withStick(virtio("vda", 8*gib)), opts: Options{Open: true, ReadOnly: true}},
		{name: "open", example: "server-raid1", disks: withStick(scsi("sda", 0, 6*gib), scsi("sdb", 1, 6*gib)), opts: Options{Open: true}},
		{name: "open-fresh", example: "bios-msdos", disks: withStick(virtio("vda", 4*gib)), opts: Options{Open: true, Fresh: true}, wantErr: true},
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

// cryptsetup's alignment and header sizes, as measured with cryptsetup 2.6
// on image files (luksFormat --align-payload, luksDump): LUKS1 payload
// offsets 4096 sectors by default for 256- and 512-bit keys, 3072 and 6144
// sectors with a 3072-sector alignment; LUKS2 16908288 bytes with a
// 384-sector one. The alignments are what device_topology_alignment makes
// of md raid5 topologies (chunk, full stripe).
func TestLUKSAlignment(t *testing.T) {
	for _, c := range []struct{ min, opt, want int64 }{
		{0, 0, mib}, {512, 0, mib}, {4096, 4096, mib},
		{256 * kib, 512 * kib, mib},         // raid5 of 3, 256 KiB chunks
		{512 * kib, 1024 * kib, mib},        // raid5 of 3, 512 KiB chunks
		{512 * kib, 1536 * kib, 1536 * kib}, // raid5 of 4, 512 KiB chunks
		{64 * kib, 192 * kib, 192 * kib},    // raid5 of 4, 64 KiB chunks
		{64 * kib, 100 * kib, mib},          // a bogus optimal size is ignored
	} {
		if got := luksAlign(c.min, c.opt); got != c.want {
			t.Errorf("luksAlign(%d, %d) = %d, want %d", c.min, c.opt, got, c.want)
		}
	}
	for _, c := range []struct {
		version, bits int
		align, want   int64
	}{
		{1, 0, mib, 4096 * 512}, {1, 256, mib, 4096 * 512}, {1, 512, mib, 4096 * 512},
		{1, 256, 3072 * 512, 3072 * 512}, {1, 512, 3072 * 512, 6144 * 512},
		{2, 0, mib, 16 * mib}, {2, 512, 384 * 512, 16908288},
	} {
		if got := luksOffset(&profile.LUKS{Version: c.version, KeySize: c.bits}, c.align); got != c.want {
			t.Errorf("LUKS%d %d-bit, alignment %d: data at %d, want %d", c.version, c.bits, c.align, got, c.want)
		}
	}
}

// A filesystem block smaller than its device's sectors cannot be made:
// the plan says so (an ext2 with 1024-byte blocks on an LV whose group has
// a 4Kn PV failed in mke2fs before).
func TestBlockSizeBelowSectors(t *testing.T) {
	p, err := profile.Parse("t.yaml", []byte(`version: 1
host: {name: t}
disks:
  main:
    select: {by_id: "nvme-*"}
    table: gpt
    partitions:
      - {name: pv, size: 4GiB, type: lvm}
      - {name: x, size: 1GiB}
volume_groups:
  vg:
    pvs: [main/pv]
    lvs:
      data: {size: 1GiB}
filesystems:
  - {device: vg/data, type: ext2, ext: {block_size: 1024}}
  - {device: main/x, type: xfs, xfs: {sector_size: 512}}
`))
	if err != nil {
		t.Fatal(err)
	}
	_, err = Build(p, []probe.Disk{nvme4k()}, Options{})
	for _, want := range []string{
		"filesystems[0]: ext2 block_size is 1024 bytes, below the 4096-byte sectors of vg/data",
		"filesystems[1]: xfs sector_size is 512 bytes, below the 4096-byte sectors of main/x",
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v, want %q", err, want)
		}
	}
}

// TestOpenWritesNothing: an open plan of every example only verifies,
// assembles, opens, activates and mounts, and mounts read-only when asked.
func TestOpenWritesNothing(t *testing.T) {
	for _, c := range cases() {
		if c.name != "equal" {
			continue
		}
		t.Run(c.example, func(t *testing.T) {
			for _, ro := range []bool{false, true} {
				pl, err := Build(load(t, c.example), c.disks, Options{Open: true, ReadOnly: ro, Disks: c.opts.Disks})
				if err != nil {
					t.Fatal(err)
				}
				mounts := 0
				for _, st := range pl.Steps {
					switch {
					case st.Kind.Verifies(), st.Kind == KindAssemble, st.Kind == KindOpen, st.Kind == KindActivate:
					case st.Kind == KindMount:
						mounts++
						argv := strings.Join(st.Actions[len(st.Actions)-1].Run, " ")
						if hasRO := strings.Contains(","+argv+",", ",ro,") || strings.Contains(argv, " -o ro") || strings.Contains(argv, ",ro "); hasRO != ro {
							t.Errorf("read-only %v: %s", ro, argv)
						}
					default:
						t.Errorf("an open plan has a %s step: %s", st.Kind, st.Summary)
					}
				}
				if mounts == 0 {
					t.Errorf("an open plan mounts nothing:\n%s", pl.Text())
				}
				for _, d := range pl.Devices {
					if d.FS != nil && !d.FS.Keep {
						t.Errorf("%s: filesystem not kept", d.Ref)
					}
				}
			}
		})
	}
}
