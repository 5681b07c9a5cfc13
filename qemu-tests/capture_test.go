package qemutests

// The round trip of capture: each example is restored in the live image
// (strata restore --layers-only), then strata capture records the result
// there (-record), and the host replays the recording and merges it into
// the example. Every field the example sets must come back as it was: the
// merge may only add what the example leaves open (UUIDs, settings), never
// change or drop anything, except for the deviations listed per example,
// each with its reason.

import (
	"encoding/base64"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stratahq/strata/capture"
	"github.com/stratahq/strata/capture/diff"
	"github.com/stratahq/strata/profile"
	"github.com/stratahq/strata/qemu-tests/vm"
)

// roundTrips are the examples, the disks they are restored on, and the
// changes a capture of the restored machine may show.
var roundTrips = []struct {
	example string
	restore string // extra restore flags
	disks   []rtDisk
	capture string // -disk flags for capture
	// allowed are changes (diff.Change.String() prefixes) explained by the
	// restore, not by capture.
	allowed map[string]string
}{
	{"laptop-uefi.yaml", "--disk main=vda", []rtDisk{{8 << 30, "", "strata-vda", 0}}, "-disk /dev/vda", map[string]string{
		"~ volume_groups.vg0.lvs.root.size":     "60% with min_size 3GiB is what restore fitted; a capture states the size it finds",
		"- volume_groups.vg0.lvs.root.min_size": "goes with the size above",
		"~ volume_groups.vg0.lvs.home.size":     "rest becomes the captured size when it does not fill the group exactly (checked below)",
	}},
	{"server-raid1.yaml", "", []rtDisk{{6 << 30, "scsi", "drive-scsi0-0-0-0", 0}, {6 << 30, "scsi", "drive-scsi0-0-1-0", 0}},
		"-disk /dev/sda -disk /dev/sdb", map[string]string{
			"~ volume_groups.vg-srv.lvs.srv": "90%free of what restore left",
		}},
	{"btrfs-subvolumes.yaml", "", []rtDisk{{6 << 30, "ide", "QM00001", 0}}, "-disk /dev/sda", nil},
	{"bios-msdos.yaml", "--disk main=vda", []rtDisk{{4 << 30, "", "strata-vda", 0}}, "-disk /dev/vda", nil},
	// Every storage kind the examples lack: an LVM raid1 LV, a thin pool
	// and thin LV, a striped LV, md raid5 under LUKS1, btrfs raid1, a 4Kn
	// NVMe disk.
	{stackProfile, "", []rtDisk{{16 << 30, "nvme", "stacknv", 4096}, {8 << 30, "", "strata-vdb", 0}, {8 << 30, "", "strata-vdc", 0}, {2 << 30, "", "strata-vdd", 0}},
		"-disk /dev/nvme0n1 -disk /dev/vda -disk /dev/vdb -disk /dev/vdc", map[string]string{
			"~ volume_groups.vgs.lvs.pool.size": "50%free of what restore left",
		}},
}

func TestCaptureRoundTrip(t *testing.T) {
	t.Parallel() // VM tests share the machine's VM slots (qemu-tests/vm)
	for _, rt := range roundTrips {
		name := filepath.Base(rt.example)
		path := rt.example
		if !strings.Contains(path, "/") {
			path = filepath.Join("..", "examples", path)
		}
		t.Run(strings.TrimSuffix(name, ".yaml"), func(t *testing.T) {
			t.Parallel()
			var disks []vm.Disk
			for _, d := range rt.disks {
				disks = append(disks, vm.Disk{Path: sparseDisk(t, d.size), Interface: d.iface, Serial: d.serial, SectorSize: d.sector})
			}
			files := "/dev/vd" + string(rune('a'+countVirtio(disks)))
			script := strings.Join([]string{
				"busybox dmesg -n 1",
				fmt.Sprintf("run restore strata restore /tmp/%s --layers-only --yes %s", name, rt.restore),
				fmt.Sprintf("run capture busybox sh -c 'strata capture -storage -root /mnt/strata %s -record /tmp/rec.txt >/dev/null 2>/tmp/capture.err; rc=$?; busybox base64 /tmp/rec.txt; exit $rc'", rt.capture),
				"run warnings busybox cat /tmp/capture.err",
			}, "\n")
			secs := runScript(t, files, script, "round trip", []string{rt.example}, 30*time.Minute, disks...)
			need(t, secs, "restore", 0, "done: ")
			rec := need(t, secs, "capture", 0)
			t.Logf("capture warnings:\n%s", secs["warnings"].out)
			var b64 strings.Builder
			for _, l := range strings.Split(rec, "\n") {
				if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "[") {
					b64.WriteString(l)
				}
			}
			data, err := base64.StdEncoding.DecodeString(b64.String())
			if err != nil {
				t.Fatalf("recording: %v", err)
			}
			r, err := capture.ParseRecording(data)
			if err != nil {
				t.Fatal(err)
			}
			o := r.Options
			res, err := capture.Capture(t.Context(), capture.Options{Root: o.Root, Disks: o.Disks, Storage: o.Storage, Runner: r, FS: r})
			if err != nil {
				t.Fatal(err)
			}
			if err := res.Profile.Validate(); err != nil {
				t.Errorf("the capture of the restored machine does not validate: %v", err)
			}
			before, err := profile.Load(path)
			if err != nil {
				t.Fatal(err)
			}
			after, _ := profile.Load(path)
			capture.Merge(after, res)
			for _, c := range diff.Profiles(before, after) {
				s := c.String()
				if c.Kind == diff.Added {
					continue // the example leaves it open; the capture says what restore chose
				}
				reason := ""
				for prefix, why := range rt.allowed {
					if strings.HasPrefix(s, prefix) {
						reason = why
					}
				}
				if reason == "" {
					t.Errorf("restored and captured, a field of the example came back different: %s", s)
				} else {
					t.Logf("expected: %s (%s)", s, reason)
				}
			}
		})
	}
}

type rtDisk struct {
	size          int64
	iface, serial string
	sector        int // 0: 512
}

func countVirtio(ds []vm.Disk) int {
	n := 0
	for _, d := range ds {
		if d.Interface == "" || d.Interface == "virtio" {
			n++
		}
	}
	return n
}
