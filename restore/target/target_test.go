package target

import (
	"errors"
	"strings"
	"testing"

	"github.com/stratahq/strata/profile"
	"github.com/stratahq/strata/restore/probe"
)

const gib = int64(1) << 30

func prof(t *testing.T, yaml string) *profile.Profile {
	t.Helper()
	p, err := profile.Parse("test.yaml", []byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

const oneDisk = `version: 1
host: {name: t}
disks:
  main:
    select: {min_size: 4GiB}
    table: gpt
    partitions:
      - {name: root, size: 2GiB}
`

const twoDisks = `version: 1
host: {name: t}
disks:
  a:
    select: {serial: "SA"}
    table: gpt
    partitions: [{name: p, size: 1GiB}]
  b:
    select: {model: "Fast*"}
    table: gpt
    partitions: [{name: p, size: 1GiB}]
`

func d(name string, size int64) probe.Disk {
	return probe.Disk{Name: name, Path: "/dev/" + name, Size: size, LogicalSectorSize: 512, Transport: "virtio"}
}

func problems(t *testing.T, err error) string {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("want *Error, got %v", err)
	}
	return e.Error()
}

func TestAutomaticAndExplicit(t *testing.T) {
	p := prof(t, oneDisk)
	live := d("sdz", 8*gib)
	live.LiveMedium = true
	a, err := Match(p, []probe.Disk{d("vda", 8*gib), live}, Options{})
	if err != nil || a[0].Device.Path != "/dev/vda" || !strings.HasPrefix(a[0].How, "selector") {
		t.Fatalf("%+v %v", a, err)
	}
	small := d("vdb", 3*gib)
	// Explicit: a selector mismatch (min_size) is a warning, the layout minimum is not.
	a, err = Match(p, []probe.Disk{d("vda", 8*gib), small}, Options{Explicit: map[string]string{"main": "vdb"}})
	if err != nil || a[0].Device.Path != "/dev/vdb" || len(a[0].Warnings) != 1 || !strings.Contains(a[0].Warnings[0], "below min_size") {
		t.Fatalf("%+v %v", a, err)
	}
	_, err = Match(p, []probe.Disk{d("vda", 8*gib)}, Options{Explicit: map[string]string{"main": "/dev/nope"}})
	if msg := problems(t, err); !strings.Contains(msg, `no disk "/dev/nope"`) || !strings.Contains(msg, "/dev/vda 8 GiB") {
		t.Error(msg)
	}
}

func TestRefusals(t *testing.T) {
	p := prof(t, oneDisk)
	live := d("sdz", 8*gib)
	live.LiveMedium = true
	sys := d("sda", 8*gib)
	sys.SystemDisk = true
	ro := d("vdc", 8*gib)
	ro.ReadOnly = true
	tiny := d("vdd", 1*gib)
	busy := d("vde", 8*gib)
	busy.Mounts = []probe.Mount{{Device: "vde1", Point: "/mnt/old", FSType: "ext4"}, {Device: "dm-0", Point: "/target", FSType: "ext4"}}
	busy.Holders = []probe.Holder{{Name: "dm-0", Kind: "crypt", Map: "cryptroot", On: "vde2"}}
	all := []probe.Disk{live, sys, ro, tiny, busy}
	for dev, want := range map[string]string{
		"sdz": "is the strata live medium",
		"sda": "holds the running system's root filesystem",
		"vdc": "is read-only",
		"vdd": "is too small: the layout needs at least 2.00 GiB (short by 1.00 GiB)",
		"vde": "is in use: /dev/vde1 is mounted at /mnt/old; /dev/dm-0 is mounted at /target; /dev/vde2 is held by crypt dm-0 (cryptroot)",
	} {
		_, err := Match(p, all, Options{Explicit: map[string]string{"main": dev}})
		if msg := problems(t, err); !strings.Contains(msg, want) {
			t.Errorf("%s: %s\nwant %q", dev, msg, want)
		}
	}
	// --teardown accepts a disk in use, never the live medium or the system.
	a, err := Match(p, all, Options{Explicit: map[string]string{"main": "vde"}, Teardown: true})
	if err != nil || !strings.Contains(strings.Join(a[0].Warnings, " "), "will be torn down first") {
		t.Errorf("teardown: %+v %v", a, err)
	}
	if _, err := Match(p, all, Options{Explicit: map[string]string{"main": "sda"}, Teardown: true}); err == nil {
		t.Error("teardown accepted the running system's disk")
	}
	// The restore's own earlier work is not "in use".
	own := func(u probe.Use) bool {
		return u.Mount != nil && strings.HasPrefix(u.Mount.Point, "/target") || u.Holder != nil && u.Holder.Map == "cryptroot"
	}
	_, err = Match(p, all, Options{Explicit: map[string]string{"main": "vde"}, Own: own})
	if msg := problems(t, err); !strings.Contains(msg, "/mnt/old") || strings.Contains(msg, "/target") || strings.Contains(msg, "cryptroot") {
		t.Errorf("own uses: %s", msg)
	}
	// Automatic matching never picks the live medium or the running system.
	_, err = Match(p, []probe.Disk{live, sys}, Options{})
	if msg := problems(t, err); !strings.Contains(msg, "/dev/sdz: the live medium") || !strings.Contains(msg, "/dev/sda: holds the running system") {
		t.Error(msg)
	}
}

func TestAmbiguityAndSettling(t *testing.T) {
	p := prof(t, twoDisks)
	sa := d("sda", 4*gib)
	sa.Serial, sa.Model = "SA", "Fast One"
	sb := d("sdb", 4*gib)
	sb.Model = "Fast Two"
	// a can only be sda; then b settles on sdb though sda matches it too.
	as, err := Match(p, []probe.Disk{sa, sb}, Options{})
	if err != nil || as[0].Device.Name != "sda" || as[1].Device.Name != "sdb" {
		t.Fatalf("%+v %v", as, err)
	}
	sc := d("sdc", 4*gib)
	sc.Model = "Fast Three"
	_, err = Match(p, []probe.Disk{sa, sb, sc}, Options{})
	if msg := problems(t, err); !strings.Contains(msg, "disk b: ambiguous: /dev/sdb, /dev/sdc all match") || !strings.Contains(msg, "--disk b=/dev/sdb") {
		t.Error(msg)
	}
	_, err = Match(p, []probe.Disk{sa, sb}, Options{Explicit: map[string]string{"a": "sda", "b": "sda"}})
	if msg := problems(t, err); !strings.Contains(msg, "/dev/sda is already the target of disk a") {
		t.Error(msg)
	}
}

func TestSelectorFields(t *testing.T) {
	disk := probe.Disk{Name: "sda", Path: "/dev/sda", Size: 500 * gib, Model: "Samsung SSD 870", Serial: "S1", WWN: "0x5002538e40a1b2c3",
		ByID: []string{"ata-Samsung_SSD_870_S1", "wwn-0x5002538e40a1b2c3"}, ByPath: []string{"pci-0000:00:1f.2-ata-1"}}
	for _, c := range []struct {
		sel  profile.DiskSelect
		miss bool
	}{
		{profile.DiskSelect{ByID: "ata-Samsung_*"}, false},
		{profile.DiskSelect{ByID: "/dev/disk/by-id/wwn-0x5002538e40a1b2c3"}, false},
		{profile.DiskSelect{ByPath: "*-ata-1"}, false},
		{profile.DiskSelect{WWN: "naa.5002538E40A1B2C3"}, false},
		{profile.DiskSelect{Model: "Samsung*", Serial: "S1"}, false},
		{profile.DiskSelect{Serial: "S2"}, true},
		{profile.DiskSelect{MaxSize: profile.MustSize("256GiB")}, true},
		{profile.DiskSelect{ByPath: "*-ata-2"}, true},
	} {
		if m := mismatches(&c.sel, &disk); (len(m) > 0) != c.miss {
			t.Errorf("%+v: mismatches %v", c.sel, m)
		}
	}
}
