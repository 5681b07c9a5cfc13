// Package testdisk is what restore's tests share: the probe results a QEMU
// guest gives for its disks (so plans and argv made on the host name the
// devices the QEMU tests see) and golden-file comparison.
package testdisk

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/stratahq/strata/restore/probe"
)

// Virtio is a virtio-blk disk /dev/NAME (vda, vdb, ...) with 512-byte
// sectors and the serial strata-NAME, with the by-id and by-path names udev
// gives it.
func Virtio(name string, size int64) probe.Disk {
	return probe.Disk{Name: name, Path: "/dev/" + name, Size: size, LogicalSectorSize: 512, PhysicalSectorSize: 512,
		Transport: "virtio", Serial: "strata-" + name, ByID: []string{"virtio-strata-" + name},
		ByPath: []string{"pci-0000:00:0" + fmt.Sprint(4+int(name[2]-'a')) + ".0"}}
}

// SCSI is a scsi-hd disk on QEMU's virtio-scsi controller, target tgt.
func SCSI(name string, tgt int, size int64) probe.Disk {
	return probe.Disk{Name: name, Path: "/dev/" + name, Size: size, LogicalSectorSize: 512, PhysicalSectorSize: 512,
		Transport: "scsi", Vendor: "QEMU", Model: "QEMU HARDDISK", Serial: fmt.Sprintf("drive-scsi0-0-%d-0", tgt),
		ByID:   []string{fmt.Sprintf("scsi-0QEMU_QEMU_HARDDISK_drive-scsi0-0-%d-0", tgt)},
		ByPath: []string{fmt.Sprintf("pci-0000:00:05.0-scsi-0:0:%d:0", tgt)}}
}

// NVMe is QEMU's NVMe controller's namespace /dev/NAME with the given
// sector size and serial.
func NVMe(name, serial string, size int64, sector int) probe.Disk {
	return probe.Disk{Name: name, Path: "/dev/" + name, Size: size, LogicalSectorSize: sector, PhysicalSectorSize: sector,
		Transport: "nvme", Model: "QEMU NVMe Ctrl", Serial: serial, ByID: []string{"nvme-QEMU_NVMe_Ctrl_" + serial}}
}

// Golden compares got with the file testdata/FILE, or writes it when
// update is set (the caller's -update flag; pkg names the package for the
// hint).
func Golden(t testing.TB, file, got string, update bool, pkg string) {
	t.Helper()
	path := filepath.Join("testdata", file)
	if update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test %s -update to create it)", err, pkg)
	}
	if string(want) != got {
		t.Errorf("%s differs (run go test %s -update after checking the change):\n--- got\n%s", path, pkg, got)
	}
}
