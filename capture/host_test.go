package capture_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/stratahq/strata/capture"
	"github.com/stratahq/strata/capture/parse"
	"github.com/stratahq/strata/internal/run"
)

// Host-tier tests: real tools on this machine, skipped with the reason when
// they cannot run.

func needRootLoop(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("skipping: needs root for loop devices")
	}
	for _, tool := range []string{"losetup", "partx", "sfdisk", "lsblk", "blkid"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("skipping: %s not installed", tool)
		}
	}
}

// noSfdisk is a runner of a system without sfdisk, like the live image.
type noSfdisk struct{ run.Runner }

func (n noSfdisk) Run(ctx context.Context, c run.Cmd) (run.Result, error) {
	if c.Name == "sfdisk" {
		return run.Result{ExitCode: -1}, fmt.Errorf("run sfdisk: %w", run.ErrNotFound)
	}
	return n.Runner.Run(ctx, c)
}

// Without sfdisk, capture reads the tables itself and gets the same disks.
func TestRawTableFallback(t *testing.T) {
	needRootLoop(t)
	for name, script := range map[string]string{
		"gpt":   "label: gpt\nsize=64M, type=U, name=\"EFI System Partition\", attrs=\"RequiredPartition GUID:63\"\nsize=100M, type=L, name=root\ntype=S\n",
		"msdos": "label: dos\nsize=100M, type=83, bootable\ntype=5\nsize=50M, type=82\ntype=8e\n",
	} {
		t.Run(name, func(t *testing.T) {
			img := filepath.Join(t.TempDir(), "d.img")
			os.WriteFile(img, nil, 0o644)
			os.Truncate(img, 512<<20)
			c := exec.Command("sfdisk", "-q", img)
			c.Stdin = strings.NewReader(script)
			if out, err := c.CombinedOutput(); err != nil {
				t.Fatalf("sfdisk: %v %s", err, out)
			}
			out, err := exec.Command("losetup", "--find", "--show", "--partscan", img).Output()
			if err != nil {
				t.Fatal(err)
			}
			dev := strings.TrimSpace(string(out))
			t.Cleanup(func() { exec.Command("losetup", "-d", dev).Run() })
			exec.Command("partx", "--add", dev).Run()
			time.Sleep(100 * time.Millisecond)
			ctx := context.Background()
			with, err := capture.Capture(ctx, capture.Options{Disks: []string{dev}})
			if err != nil {
				t.Fatal(err)
			}
			without, err := capture.Capture(ctx, capture.Options{Disks: []string{dev}, Runner: noSfdisk{run.Exec{}}})
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(with.Profile.Disks, without.Profile.Disks) {
				t.Errorf("disks differ without sfdisk:\n%+v\n%+v", with.Profile.Disks, without.Profile.Disks)
			}
		})
	}
}

// The package list capture reads from dpkg's and apt's files is what
// apt-mark showmanual prints on this machine.
func TestPackagesLikeAptMark(t *testing.T) {
	if _, err := exec.LookPath("apt-mark"); err != nil {
		t.Skip("skipping: not a Debian system (no apt-mark)")
	}
	out, err := exec.Command("apt-mark", "showmanual").Output()
	if err != nil {
		t.Skipf("skipping: apt-mark showmanual: %v", err)
	}
	f, err := capture.Probe(context.Background(), capture.Options{})
	if err != nil {
		t.Fatal(err)
	}
	want := strings.Fields(string(out))
	sort.Strings(want)
	if strings.Join(f.Packages, " ") != strings.Join(want, " ") {
		t.Errorf("packages %v\napt-mark showmanual %v", f.Packages, want)
	}
}

// grubInstall finds grub-install: on PATH, or $STRATA_GRUB_INSTALL (for a
// grub2-common unpacked with dpkg -x, without installing it).
func grubInstall(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("STRATA_GRUB_INSTALL"); p != "" {
		return p
	}
	p, err := exec.LookPath("grub-install")
	if err != nil {
		t.Skip("skipping: no grub-install (apt-get install grub2-common, or set STRATA_GRUB_INSTALL)")
	}
	return p
}

// loopImage makes a sparse image with an msdos table (one partition from
// 1 MiB), attaches it and returns the disk's loop device and one for the
// partition (loop partition nodes are not made without udev, so by offset).
func loopImage(t *testing.T, size int64) (disk, part string) {
	t.Helper()
	img := filepath.Join(t.TempDir(), "d.img")
	if err := os.Truncate(img, 0); err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	f, err := os.Create(img)
	if err != nil {
		t.Fatal(err)
	}
	f.Truncate(size)
	f.Close()
	c := exec.Command("sfdisk", "-q", img)
	c.Stdin = strings.NewReader("label: dos\nstart=2048, type=83, bootable\n")
	if out, err := c.CombinedOutput(); err != nil {
		t.Fatalf("sfdisk %s: %v %s", img, err, out)
	}
	attach := func(args ...string) string {
		out, err := exec.Command("losetup", append([]string{"--find", "--show"}, append(args, img)...)...).Output()
		if err != nil {
			t.Fatalf("losetup %v %s: %v", args, img, err)
		}
		dev := strings.TrimSpace(string(out))
		t.Cleanup(func() { exec.Command("losetup", "-d", dev).Run() })
		return dev
	}
	return attach(), attach("--offset", "1048576")
}

// GRUB for BIOS in the MBR, as this machine's grub-install writes it, is
// recognised; syslinux's MBR and an msdos table without boot code are not
// GRUB. (The fixtures in parse/testdata/mbr are the same, recorded.)
func TestGrubBIOSInMBR(t *testing.T) {
	needRootLoop(t)
	gi := grubInstall(t)
	for _, tool := range []string{"mkfs.ext4", "mount", "umount"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("skipping: %s not installed", tool)
		}
	}
	grubDisk, part := loopImage(t, 64<<20)
	if out, err := exec.Command("mkfs.ext4", "-q", part).CombinedOutput(); err != nil {
		t.Fatalf("mkfs.ext4 %s: %v %s", part, err, out)
	}
	root := t.TempDir()
	if out, err := exec.Command("mount", part, root).CombinedOutput(); err != nil {
		t.Skipf("skipping: cannot mount a loop device here: %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", root).Run() })
	if out, err := exec.Command(gi, "--target=i386-pc", "--boot-directory="+filepath.Join(root, "boot"), grubDisk).CombinedOutput(); err != nil {
		t.Fatalf("grub-install %s: %v\n%s", grubDisk, err, out)
	}
	plain, _ := loopImage(t, 16<<20)
	want := map[string]string{grubDisk: "grub", plain: ""}
	if mbr, err := os.ReadFile("/usr/lib/syslinux/mbr/mbr.bin"); err == nil {
		syslinux, _ := loopImage(t, 16<<20)
		f, err := os.OpenFile(syslinux, os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		_, err = f.WriteAt(mbr[:min(len(mbr), 440)], 0)
		f.Close()
		if err != nil {
			t.Fatalf("write syslinux's MBR to %s: %v", syslinux, err)
		}
		want[syslinux] = "other"
	}
	for dev, w := range want {
		f, err := os.Open(dev)
		if err != nil {
			t.Fatal(err)
		}
		head := make([]byte, 512)
		_, err = f.ReadAt(head, 0)
		f.Close()
		if err != nil {
			t.Fatalf("read the MBR of %s: %v", dev, err)
		}
		if got := parse.MBRBootCode(head); got != w {
			t.Errorf("%s: boot code %q, want %q", dev, got, w)
		}
	}
}
