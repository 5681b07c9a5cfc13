package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stratahq/strata/restore/probe"
)

// fakeDisks writes a disks file like `strata plan --list-disks --json`.
func fakeDisks(t *testing.T, disks ...probe.Disk) string {
	t.Helper()
	b, err := json.Marshal(disks)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "disks.json")
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestPlanCommand(t *testing.T) {
	vda := probe.Disk{Name: "vda", Path: "/dev/vda", Size: 20 << 30, LogicalSectorSize: 512, PhysicalSectorSize: 512, Transport: "virtio", Serial: "s1"}
	file := fakeDisks(t, vda)
	code, out, errs := strata("plan", "../../examples/laptop-uefi.yaml", "--disks-json", file)
	if code != exitOK || !strings.Contains(out, "Plan for host laptop") || !strings.Contains(out, "/dev/vda3") ||
		!strings.Contains(out, "Nothing was written. To do it: strata restore ../../examples/laptop-uefi.yaml --yes") {
		t.Errorf("plan: exit %d\n%s%s", code, out, errs)
	}
	code, out, _ = strata("plan", "--json", "--disks-json", file, "../../examples/laptop-uefi.yaml", "--keep", "/home", "--disk", "main=vda")
	var pl struct {
		Host  string `json:"host"`
		Steps []struct {
			ID string `json:"id"`
		} `json:"steps"`
	}
	if err := json.Unmarshal([]byte(out), &pl); err != nil || code != exitOK || pl.Host != "laptop" || pl.Steps[0].ID != "verify-table:main" {
		t.Errorf("plan --json: exit %d, %v\n%s", code, err, out)
	}
	small := vda
	small.Size = 4 << 30
	code, _, errs = strata("plan", "../../examples/laptop-uefi.yaml", "--disks-json", fakeDisks(t, small))
	if code != exitRefused || !strings.Contains(errs, "no disk matches selector {min_size 8GiB}: /dev/vda: 4 GiB is below min_size 8GiB") {
		t.Errorf("too small: exit %d\n%s", code, errs)
	}
	if code, _, errs := strata("plan", "../../profile/testdata/invalid/too-small.yaml", "--disks-json", file); code != exitFailed || !strings.Contains(errs, "too-small.yaml:5:24") {
		t.Errorf("invalid profile: exit %d\n%s", code, errs)
	}
	if code, _, _ := strata("plan", "a.yaml", "b.yaml"); code != exitUsage {
		t.Errorf("two profiles: exit %d", code)
	}
	if code, out, _ := strata("plan", "--list-disks", "--json", "--disks-json", file); code != exitOK || !strings.Contains(out, `"serial": "s1"`) {
		t.Errorf("list disks: exit %d\n%s", code, out)
	}
	if code, _, _ := strata("restore", "--close", "--fresh", "x.yaml"); code != exitUsage {
		t.Errorf("--close --fresh: exit %d", code)
	}
}

// TestRestoreCommandOnLoop runs the CLI on a loop device: a dry run writes
// nothing, --yes restores, a second --yes finds everything done (also while
// the target is still mounted), --close unmounts.
func TestRestoreCommandOnLoop(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root for loop devices and mounts")
	}
	for _, tool := range []string{"losetup", "sfdisk", "mke2fs", "mkswap", "wipefs", "blkid", "partx"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed", tool)
		}
	}
	img := filepath.Join(t.TempDir(), "disk.img")
	if err := os.WriteFile(img, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(img, 4<<30); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("losetup", "--partscan", "--show", "--find", img).Output()
	if err != nil {
		t.Skipf("no loop device: %v", err)
	}
	dev := strings.TrimSpace(string(out))
	target, work := filepath.Join(t.TempDir(), "t"), filepath.Join(t.TempDir(), "w")
	t.Cleanup(func() {
		_ = exec.Command("umount", target).Run()
		_ = exec.Command("losetup", "--detach", dev).Run()
	})
	args := []string{"restore", "../../examples/bios-msdos.yaml", "--layers-only", "--disk", "main=" + dev, "--target", target, "--work", work}

	code, stdout, errs := strata(args...)
	if code != exitOK || !strings.Contains(stdout, "dry run: 6 steps would run") || !strings.Contains(stdout, "Nothing was written. To restore:") {
		t.Fatalf("dry run: exit %d\n%s%s", code, stdout, errs)
	}
	if sig, _ := exec.Command("wipefs", "--no-act", dev).Output(); len(strings.TrimSpace(string(sig))) > 0 {
		t.Fatalf("the dry run wrote: %s", sig)
	}
	code, stdout, errs = strata(append(args, "--yes")...)
	if code != exitOK || !strings.Contains(stdout, "done: 6 steps ran") {
		t.Fatalf("restore: exit %d\n%s%s", code, stdout, errs)
	}
	code, stdout, errs = strata(append(args, "--yes", "--json")...)
	if code != exitOK || !strings.Contains(stdout, `"event":"step-skipped"`) || !strings.Contains(stdout, "done: 0 steps ran, 6 were already done") {
		t.Fatalf("re-run: exit %d\n%s%s", code, stdout, errs)
	}
	for _, line := range strings.Split(strings.TrimSpace(stdout), "\n") {
		var ev map[string]any
		if err := json.Unmarshal([]byte(line), &ev); err != nil {
			t.Errorf("not a JSON line: %q", line)
		}
	}
	code, stdout, errs = strata(append(args, "--close")...)
	if code != exitOK || !strings.Contains(stdout, "umount "+target) {
		t.Fatalf("close: exit %d\n%s%s", code, stdout, errs)
	}
	if _, err := os.Stat(filepath.Join(work, "restore.log")); err != nil {
		t.Errorf("no tool log: %v", err)
	}

	// strata open: the restored disk opened again, verified and mounted
	// read-only, nothing written; then refused once a filesystem's UUID
	// is not the profile's.
	open := []string{"open", "../../examples/bios-msdos.yaml", "--read-only", "--disk", "main=" + dev, "--target", target, "--work", work}
	before, _ := exec.Command("sha256sum", dev).Output()
	code, stdout, errs = strata(open...)
	if code != exitOK || !strings.Contains(stdout, "is open and mounted read-only at "+target) || strings.Contains(stdout, "FSTAB") {
		t.Fatalf("open: exit %d\n%s%s", code, stdout, errs)
	}
	if err := os.WriteFile(filepath.Join(target, "probe"), nil, 0o644); err == nil {
		t.Errorf("open --read-only: the root is writable")
	}
	if code, stdout, errs = strata(append(args, "--close")...); code != exitOK {
		t.Fatalf("close after open: exit %d\n%s%s", code, stdout, errs)
	}
	if after, _ := exec.Command("sha256sum", dev).Output(); string(after) != string(before) {
		t.Errorf("open --read-only changed the disk")
	}
	if code, _, _ := strata("open", "--fresh", "x.yaml"); code != exitUsage {
		t.Errorf("open --fresh: exit %d", code)
	}
	root := dev + "p1" // bios-msdos: / on the first partition
	if out, err := exec.Command("tune2fs", "-U", "0e4c7f6a-1b2c-4d3e-8f90-a1b2c3d4e5f6", root).CombinedOutput(); err != nil {
		t.Fatalf("tune2fs -U: %v\n%s", err, out)
	}
	code, stdout, errs = strata(open...)
	if code != exitVerify || !strings.Contains(errs, "not as ../../examples/bios-msdos.yaml describes") {
		t.Errorf("open of a changed disk: exit %d, want %d\n%s%s", code, exitVerify, stdout, errs)
	}
	if out, _ := exec.Command("findmnt", "-n", target).Output(); len(out) > 0 {
		t.Errorf("a refused open left %s mounted: %s", target, out)
	}
}
