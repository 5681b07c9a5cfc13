package probe

import (
	"context"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stratahq/strata/internal/run"
)

var update = flag.Bool("update", false, "rewrite golden files")

// fakeSys builds a sysfs tree shaped like a QEMU guest's: a virtio disk with
// an old LUKS+LVM stack mounted, two virtio-scsi disks, an nvme disk with 4K
// sectors and active swap, a USB stick with the live medium, loop devices
// and a zram device. The layout mirrors what the kernel shows under /sys.
type fakeSys struct {
	t    *testing.T
	root string
}

func (f fakeSys) write(rel, content string) {
	p := filepath.Join(f.root, rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		f.t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content+"\n"), 0o644); err != nil {
		f.t.Fatal(err)
	}
}

func (f fakeSys) link(rel, target string) {
	p := filepath.Join(f.root, rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		f.t.Fatal(err)
	}
	if err := os.Symlink(target, p); err != nil {
		f.t.Fatal(err)
	}
}

// disk makes /sys/devices/<devPath>/block/<name> and /sys/block/<name>.
func (f fakeSys) disk(name, devPath, dev string, sectors int64, lss, pss int, attrs map[string]string) string {
	dir := filepath.Join("devices", devPath, "block", name)
	f.write(filepath.Join(dir, "dev"), dev)
	f.write(filepath.Join(dir, "size"), itoa(sectors))
	f.write(filepath.Join(dir, "queue/logical_block_size"), itoa(int64(lss)))
	f.write(filepath.Join(dir, "queue/physical_block_size"), itoa(int64(pss)))
	f.write(filepath.Join(dir, "removable"), "0")
	f.write(filepath.Join(dir, "ro"), "0")
	f.write(filepath.Join(dir, "queue/rotational"), "0")
	if err := os.MkdirAll(filepath.Join(f.root, dir, "holders"), 0o755); err != nil {
		f.t.Fatal(err)
	}
	for k, v := range attrs {
		f.write(filepath.Join(dir, k), v)
	}
	f.link(filepath.Join("block", name), filepath.Join("..", dir))
	return dir
}

func (f fakeSys) part(diskDir, name, dev string, num, start, sectors int64) string {
	dir := filepath.Join(diskDir, name)
	f.write(filepath.Join(dir, "dev"), dev)
	f.write(filepath.Join(dir, "partition"), itoa(num))
	f.write(filepath.Join(dir, "start"), itoa(start))
	f.write(filepath.Join(dir, "size"), itoa(sectors))
	if err := os.MkdirAll(filepath.Join(f.root, dir, "holders"), 0o755); err != nil {
		f.t.Fatal(err)
	}
	return dir
}

func (f fakeSys) dm(name, dev, mapName, uuid string) string {
	dir := filepath.Join("devices/virtual/block", name)
	f.write(filepath.Join(dir, "dev"), dev)
	f.write(filepath.Join(dir, "size"), "1000")
	f.write(filepath.Join(dir, "dm/name"), mapName)
	f.write(filepath.Join(dir, "dm/uuid"), uuid)
	if err := os.MkdirAll(filepath.Join(f.root, dir, "holders"), 0o755); err != nil {
		f.t.Fatal(err)
	}
	f.link(filepath.Join("block", name), filepath.Join("..", dir))
	return dir
}

func (f fakeSys) hold(dir, holder string) {
	f.link(filepath.Join(dir, "holders", holder), "../../../../../../virtual/block/"+holder)
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

func vpd80(serial string) string {
	return string([]byte{0, 0x80, 0, byte(len(serial))}) + serial
}

func buildFake(t *testing.T) (sys, proc string) {
	root := t.TempDir()
	f := fakeSys{t, filepath.Join(root, "sys")}
	// virtio disk vda with an old LUKS + LVM stack, mounted.
	vda := f.disk("vda", "pci0000:00/0000:00:04.0/virtio2", "254:0", 41943040, 512, 512, map[string]string{"serial": "disk-a", "device/vendor": "0x1af4"})
	f.part(vda, "vda1", "254:1", 1, 2048, 1048576)
	vda2 := f.part(vda, "vda2", "254:2", 2, 1050624, 40890368)
	f.dm("dm-0", "253:0", "cryptold", "CRYPT-LUKS2-0d8b6c2e4f1a4b3c9d5e6f7a8b9c0d1e-cryptold")
	f.dm("dm-1", "253:1", "old-root", "LVM-abcdefabcdefabcdefabcdefabcdefabcdefabcdefabcdefabcdefabcdefabcd")
	f.hold(vda2, "dm-0")
	f.link("devices/virtual/block/dm-0/holders/dm-1", "../../dm-1")
	// Two virtio-scsi disks on one controller whose hosts start at host2.
	scsi := "pci0000:00/0000:00:05.0/virtio3"
	for i, name := range []string{"sda", "sdb"} {
		tgt := []string{"target2:0:0/2:0:0:0", "target2:0:1/2:0:1:0"}[i]
		f.disk(name, scsi+"/host2/"+tgt, []string{"8:0", "8:16"}[i], 16777216, 512, 512, map[string]string{
			"device/vendor": "QEMU    ", "device/model": "QEMU HARDDISK   ", "device/vpd_pg80": vpd80([]string{"drive-scsi0-0-0-0", "drive-scsi0-0-1-0"}[i]),
			"queue/rotational": "1",
		})
	}
	if err := os.MkdirAll(filepath.Join(f.root, "devices", scsi, "host3"), 0o755); err != nil {
		t.Fatal(err)
	}
	// NVMe with 4K sectors and a swap partition in use.
	nv := f.disk("nvme0n1", "pci0000:00/0000:00:06.0/nvme/nvme0", "259:0", 2000409264, 4096, 4096, map[string]string{
		"device/model": "Samsung SSD 980 1TB                     ", "device/serial": "S64ANS0T123456      ", "wwid": "eui.0025385b71b0a1f2",
	})
	f.part(nv, "nvme0n1p1", "259:1", 1, 2048, 1000000)
	// A USB stick carrying the live medium.
	f.disk("sdc", "pci0000:00/0000:00:07.0/usb1/1-1/1-1:1.0/host6/target6:0:0/6:0:0:0", "8:32", 7864320, 512, 512, map[string]string{
		"device/vendor": "SanDisk ", "device/model": "Cruzer Blade    ", "device/vpd_pg80": vpd80("4C530001"), "removable": "1",
	})
	// SATA disk with a WWN, through ahci.
	f.disk("sdd", "pci0000:00/0000:00:1f.2/ata3/host4/target4:0:0/4:0:0:0", "8:48", 1953525168, 512, 4096, map[string]string{
		"device/vendor": "ATA     ", "device/model": "WDC WD10EZEX-08W", "device/vpd_pg80": vpd80("     WD-WCC6Y1234567"), "device/wwid": "naa.50014ee2b5a1c2d3", "queue/rotational": "1",
	})
	f.disk("loop0", "virtual", "7:0", 0, 512, 512, nil)
	f.disk("loop1", "virtual", "7:1", 131072, 512, 512, nil)
	f.disk("zram0", "virtual", "252:0", 8000000, 4096, 4096, nil)

	proc = filepath.Join(root, "proc")
	mountinfo := strings.Join([]string{
		"22 27 0:21 / /proc rw,relatime - proc proc rw",
		"27 1 0:2 / / rw - rootfs rootfs rw",
		"40 27 253:1 / /mnt/old\\040root rw,relatime - ext4 /dev/mapper/old-root rw",
		"41 27 254:1 / /mnt/esp rw,relatime - vfat /dev/vda1 rw",
	}, "\n")
	fp := fakeSys{t, proc}
	fp.write("mountinfo", mountinfo)
	fp.write("swaps", "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n/dev/nvme0n1p1                          partition\t999996\t\t0\t\t-2")
	return f.root, proc
}

// fakeWipefs answers wipefs --json like util-linux does for a few devices.
func fakeWipefs(c run.Cmd) (run.Result, error) {
	dev := "/dev/" + filepath.Base(c.Args[len(c.Args)-1])
	switch dev {
	case "/dev/sdc":
		return run.Result{Stdout: []byte(`{"signatures": [{"device":"sdc","offset":"0x8001","type":"iso9660","uuid":"2026-11-25-20-00-00-00","label":"STRATA"},{"device":"sdc","offset":"0x1fe","type":"dos","uuid":null,"label":null}]}`)}, nil
	case "/dev/vda1":
		return run.Result{Stdout: []byte(`{"signatures": [{"device":"vda1","offset":"0x52","type":"vfat","uuid":"7A3C-1F2E","label":"ESP"},{"device":"vda1","offset":"0x0","type":"vfat","uuid":"7A3C-1F2E","label":"ESP"}]}`)}, nil
	case "/dev/vda":
		return run.Result{Stdout: []byte(`{"signatures": [{"device":"vda","offset":"0x200","type":"gpt","uuid":null,"label":null},{"device":"vda","offset":"0x4fffffe00","type":"gpt","uuid":null,"label":null},{"device":"vda","offset":"0x1fe","type":"PMBR","uuid":null,"label":null}]}`)}, nil
	case "/dev/sdb":
		return run.Result{ExitCode: 1}, &run.ExitError{Cmd: "wipefs", Code: 1, Stderr: "wipefs: error: /dev/sdb: probing initialization failed: Device or resource busy"}
	}
	return run.Result{Stdout: []byte(`{"signatures": []}`)}, nil
}

func TestDisksOnFakeSysfs(t *testing.T) {
	sys, proc := buildFake(t)
	rec := &run.Recorder{Respond: fakeWipefs}
	devRoot := filepath.Join(t.TempDir(), "dev")
	disks, err := Disks(context.Background(), Options{
		SysRoot: sys, DevRoot: devRoot,
		MountInfo: filepath.Join(proc, "mountinfo"), Swaps: filepath.Join(proc, "swaps"), Runner: rec,
	})
	if err != nil {
		t.Fatal(err)
	}
	js, _ := json.MarshalIndent(disks, "", "  ")
	// The temporary /dev root differs per run.
	got := strings.ReplaceAll(string(js), devRoot, "/dev")
	golden := filepath.Join("testdata", "fake-sysfs.json")
	if *update {
		if err := os.WriteFile(golden, []byte(got+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if string(want) != got+"\n" {
		t.Errorf("probe result differs from %s (run with -update after checking):\n%s", golden, got)
	}
	byName := map[string]Disk{}
	for _, d := range disks {
		byName[d.Name] = d
	}
	// Spot checks that do not depend on the golden file.
	if _, ok := byName["loop0"]; ok {
		t.Error("an unattached loop device is listed")
	}
	if _, ok := byName["zram0"]; ok {
		t.Error("zram is listed")
	}
	vda := byName["vda"]
	if len(vda.Holders) != 2 || vda.Holders[1].Kind != "lvm" || vda.Holders[0].Kind != "crypt" || len(vda.Mounts) != 2 || vda.Mounts[0].Point != "/mnt/old root" {
		t.Errorf("vda stack: holders %+v mounts %+v", vda.Holders, vda.Mounts)
	}
	if !strings.Contains(vda.InUse(), "dm-1 is mounted at /mnt/old root") {
		t.Errorf("InUse: %s", vda.InUse())
	}
	if sdb := byName["sdb"]; sdb.ByPath[0] != "pci-0000:00:05.0-scsi-0:0:1:0" || sdb.Serial != "drive-scsi0-0-1-0" || sdb.Model != "QEMU HARDDISK" || len(sdb.Notes) != 1 {
		t.Errorf("sdb: %+v", sdb)
	}
	if nv := byName["nvme0n1"]; nv.LogicalSectorSize != 4096 || nv.ByID[0] != "nvme-Samsung_SSD_980_1TB_S64ANS0T123456" || len(nv.Swaps) != 1 || nv.InUse() == "" {
		t.Errorf("nvme: %+v", nv)
	}
	if !byName["sdc"].LiveMedium || byName["sdc"].Transport != "usb" || !byName["sdc"].Removable {
		t.Errorf("usb live medium: %+v", byName["sdc"])
	}
	if sdd := byName["sdd"]; sdd.WWN != "0x50014ee2b5a1c2d3" || sdd.Serial != "WD-WCC6Y1234567" || sdd.ByPath[0] != "pci-0000:00:1f.2-ata-3" {
		t.Errorf("sata: %+v", sdd)
	}
}

func TestUdevLinksAreMerged(t *testing.T) {
	sys, proc := buildFake(t)
	dev := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dev, "disk/by-id"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../../vda", filepath.Join(dev, "disk/by-id/virtio-from-udev")); err != nil {
		t.Fatal(err)
	}
	disks, err := Disks(context.Background(), Options{SysRoot: sys, DevRoot: dev, MountInfo: filepath.Join(proc, "mountinfo"), Swaps: filepath.Join(proc, "none")})
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range disks {
		if d.Name == "vda" {
			if strings.Join(d.ByID, ",") != "virtio-disk-a,virtio-from-udev" {
				t.Fatalf("by-id: %v", d.ByID)
			}
			return
		}
	}
	t.Fatal("vda missing")
}

func TestParseWipefsEmpty(t *testing.T) {
	for _, in := range []string{"", "\n", `{"signatures": [ ]}`} {
		s, err := ParseWipefs([]byte(in))
		if err != nil || len(s) != 0 {
			t.Errorf("%q: %v %v", in, s, err)
		}
	}
	if _, err := ParseWipefs([]byte("{")); err == nil {
		t.Error("broken JSON accepted")
	}
}
