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
