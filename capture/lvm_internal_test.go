package capture

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/stratahq/strata/capture/parse"
	"github.com/stratahq/strata/profile"
)

// The LVM reports recorded in the live image (parse/testdata/lvm, from
// regen-dm.guest.sh) become the profile's group: the raid1 LV (segment type
// raid1, two images) is a raid1 LV with one mirror, its hidden images and
// metadata LVs are not LVs of their own, the striped LV keeps its stripes,
// the thin pool and its thin LV their types, in the order their extents lie
// on the PVs; the snapshot is left out with a note.
func TestLVMFromGuestReports(t *testing.T) {
	read := func(name string) []byte {
		b, err := os.ReadFile(filepath.Join("parse", "testdata", "lvm", name))
		if err != nil {
			t.Fatalf("%v (capture/parse/testdata/regen.sh --dm records it)", err)
		}
		return b
	}
	pvs, err := parse.PVs(read("pvs.json"))
	if err != nil {
		t.Fatal(err)
	}
	vgs, err := parse.VGs(read("vgs.json"))
	if err != nil {
		t.Fatal(err)
	}
	lvs, err := parse.LVs(read("lvs.json"))
	if err != nil {
		t.Fatal(err)
	}
	f := &Facts{Root: "/", PVs: pvs, VGs: vgs, LVs: lvs, LVMSeen: true}
	b := &builder{f: f, p: &profile.Profile{}, names: map[string]string{}, byPath: map[string]*parse.BlockDevice{}, lvPath: map[string]string{},
		refs: map[string]string{"/dev/mapper/cryptdata": "cryptdata", "/dev/vdd2": "d/p2"}}
	b.res = &Result{Profile: b.p, Facts: f, Measured: map[string]int64{}, Refs: b.refs}
	b.lvm()
	if len(b.p.VolumeGroups) != 1 {
		t.Fatalf("volume groups %+v; notes %v", b.p.VolumeGroups, b.res.Notes)
	}
	type lv struct {
		name, typ        string
		size             int64
		mirrors, stripes int
		pool             string
	}
	var got []lv
	for _, l := range b.p.VolumeGroups[0].LVs {
		got = append(got, lv{l.Name, l.Type, l.Size.Bytes, l.Mirrors, l.Stripes, l.Pool})
	}
	want := []lv{
		{"root", "", 200 << 20, 0, 0, ""},
		{"swap", "", 64 << 20, 0, 0, ""},
		{"stripe", "striped", 32 << 20, 0, 2, ""},
		{"mirror", "raid1", 32 << 20, 1, 0, ""},
		{"pool", "thin-pool", 64 << 20, 0, 0, ""},
		{"thin", "thin", 320 << 20, 0, 0, "pool"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("LVs\n got %+v\nwant %+v\nnotes %v", got, want, b.res.Notes)
	}
	if g := b.p.VolumeGroups[0]; !reflect.DeepEqual(g.PVs, []string{"cryptdata", "d/p2"}) {
		t.Errorf("PVs %v", g.PVs)
	}
}

// A btrfs filesystem over two devices is the device with devid 1 plus the
// other in devices, whichever of them the capture came to first (the second
// device seen first listed the filesystem's own device again, which the
// profile refused as a device holding two things).
func TestBtrfsDevicesInDevidOrder(t *testing.T) {
	for _, first := range []string{"/dev/nvme0n1p4", "/dev/vdb2"} {
		f := &Facts{Btrfs: map[string]*BtrfsFacts{"u": {Devices: []string{"/dev/nvme0n1p4", "/dev/vdb2"},
			Super: &parse.BtrfsSuper{NodeSize: 16384, SectorSize: 4096, NumDevices: 2}}}}
		b := &builder{f: f, p: &profile.Profile{}, byPath: map[string]*parse.BlockDevice{}, lvPath: map[string]string{},
			refs: map[string]string{"/dev/nvme0n1p4": "nv/b1", "/dev/vdb2": "y/b2"}}
		b.res = &Result{Profile: b.p, Facts: f}
		fs := profile.Filesystem{Device: b.refs[first], Type: "btrfs", UUID: "u"}
		b.btrfs(&fs, "filesystems[0]", "u")
		if fs.Device != "nv/b1" || fs.Btrfs == nil || !reflect.DeepEqual(fs.Btrfs.Devices, []string{"y/b2"}) {
			t.Errorf("seen first %s: device %s, btrfs %+v", first, fs.Device, fs.Btrfs)
		}
	}
}

// mke2fs -N rounds the count up to fill each group's inode table: an
// inodes: 20000 asked on 32 groups of 4 KiB blocks and 256-byte inodes
// gives 20480, which is still the profile's 20000.
func TestInodesFrom(t *testing.T) {
	s := &parse.ExtSuper{InodeCount: 20480, InodesPerGroup: 640, BlockSize: 4096, InodeSize: 256}
	for n, want := range map[int64]bool{20000: true, 20480: true, 19985: true, 19968: false, 21000: false} {
		if got := inodesFrom(n, s); got != want {
			t.Errorf("-N %d gives %d inodes in 32 groups: %v, want %v", n, s.InodeCount, got, want)
		}
	}
}
