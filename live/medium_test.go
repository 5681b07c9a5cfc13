package live

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	diskfs "github.com/diskfs/go-diskfs"
	"github.com/diskfs/go-diskfs/disk"
	"github.com/diskfs/go-diskfs/filesystem"
	"github.com/diskfs/go-diskfs/filesystem/iso9660"

	"github.com/stratahq/strata/internal/run"
	"github.com/stratahq/strata/source"
)

// fatImage makes a FAT filesystem image the way image.USB does (go-diskfs).
func fatImage(t *testing.T, fstype filesystem.Type, size int64, label string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "fat.img")
	d, err := diskfs.Create(p, size, diskfs.SectorSizeDefault)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if _, err := d.CreateFilesystem(disk.FilesystemSpec{Partition: 0, FSType: fstype, VolumeLabel: label}); err != nil {
		t.Fatal(err)
	}
	return p
}

func isoImage(t *testing.T, label string) string {
	t.Helper()
	dir := t.TempDir()
	stage := filepath.Join(dir, "stage")
	os.MkdirAll(filepath.Join(stage, "strata", "profiles"), 0o755)
	os.WriteFile(filepath.Join(stage, "strata", "profiles", "x.yaml"), []byte("version: 1\n"), 0o644)
	p := filepath.Join(dir, "cd.iso")
	d, err := diskfs.Create(p, 4<<20, diskfs.SectorSizeDefault)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	d.LogicalBlocksize = 2048
	fsys, err := d.CreateFilesystem(disk.FilesystemSpec{Partition: 0, FSType: filesystem.TypeISO9660, WorkDir: stage})
	if err != nil {
		t.Fatal(err)
	}
	if err := fsys.(*iso9660.FileSystem).Finalize(iso9660.FinalizeOptions{RockRidge: true, VolumeIdentifier: label}); err != nil {
		t.Fatal(err)
	}
	return p
}

// mkfs makes a filesystem image with a real tool, or skips.
func mkfs(t *testing.T, size int64, tool string, args ...string) string {
	t.Helper()
	if _, err := exec.LookPath(tool); err != nil {
		t.Skipf("skipping: %s not installed (make deps)", tool)
	}
	p := filepath.Join(t.TempDir(), "fs.img")
	if err := os.WriteFile(p, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(p, size); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(tool, append(args, p)...).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", tool, err, out)
	}
	return p
}

func readLabelOf(t *testing.T, p string) (string, string) {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	return ReadLabel(f)
}

func TestReadLabel(t *testing.T) {
	cases := []struct {
		name          string
		img           func(t *testing.T) string
		fstype, label string
	}{
		{"go-diskfs FAT32 (the USB image's ESP)", func(t *testing.T) string { return fatImage(t, filesystem.TypeFat32, 48<<20, "STRATA") }, "vfat", "STRATA"},
		{"go-diskfs FAT16", func(t *testing.T) string { return fatImage(t, filesystem.TypeFat16, 20<<20, "STRATAEFI") }, "vfat", "STRATAEFI"},
		{"go-diskfs ISO9660 (the ISO)", func(t *testing.T) string { return isoImage(t, "STRATA") }, "iso9660", "STRATA"},
		{"mkfs.fat -F 32", func(t *testing.T) string { return mkfs(t, 64<<20, "mkfs.fat", "-F", "32", "-n", "STRATA") }, "vfat", "STRATA"},
		{"mkfs.fat FAT12", func(t *testing.T) string { return mkfs(t, 2<<20, "mkfs.fat", "-n", "MYSTICK") }, "vfat", "MYSTICK"},
		{"mkfs.fat without label", func(t *testing.T) string { return mkfs(t, 2<<20, "mkfs.fat") }, "vfat", ""},
		{"mke2fs -L", func(t *testing.T) string { return mkfs(t, 8<<20, "mke2fs", "-q", "-t", "ext4", "-L", "STRATA") }, "ext4", "STRATA"},
		{"zeros", func(t *testing.T) string { return mkfs(t, 1<<20, "true") }, "", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			fstype, label := readLabelOf(t, c.img(t))
			if fstype != c.fstype || label != c.label {
				t.Errorf("ReadLabel = %q %q, want %q %q", fstype, label, c.fstype, c.label)
			}
		})
	}
	// mlabel changes only the root directory's entry, which wins over the
	// boot sector's copy (as with blkid).
	if _, err := exec.LookPath("mlabel"); err == nil {
		p := fatImage(t, filesystem.TypeFat32, 48<<20, "OLDNAME")
		cmd := exec.Command("mlabel", "-i", p, "::STRATA")
		cmd.Env = append(os.Environ(), "MTOOLS_SKIP_CHECK=1")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("mlabel: %v\n%s", err, out)
		}
		if _, label := readLabelOf(t, p); label != "STRATA" {
			t.Errorf("after mlabel: label %q", label)
		}
	}
}

// FindLabelled over a fake sysfs and /dev: an ISO written to a stick shows
// the label on the disk and on its first partition and is found once; the
// El Torito EFI image's STRATAEFI and other disks are not found.
func TestFindLabelled(t *testing.T) {
	sys, dev := t.TempDir(), t.TempDir()
	block := filepath.Join(sys, "class", "block")
	os.MkdirAll(block, 0o755)
	iso := isoImage(t, "STRATA")
	fat := fatImage(t, filesystem.TypeFat32, 48<<20, "STRATA")
	efi := fatImage(t, filesystem.TypeFat16, 20<<20, "STRATAEFI")
	devs := map[string]string{"sda": iso, "sda1": iso, "sda2": efi, "vda": "", "vdb": "", "vdb1": fat, "ram0": fat}
	for name, img := range devs {
		parent := name
		if len(name) == 4 {
			parent = name[:3]
		}
		real := filepath.Join(sys, "devices", parent)
		if parent != name {
			real = filepath.Join(real, name)
		}
		os.MkdirAll(real, 0o755)
		if parent != name {
			os.WriteFile(filepath.Join(real, "partition"), []byte("1\n"), 0o644)
		}
		if err := os.Symlink(real, filepath.Join(block, name)); err != nil {
			t.Fatal(err)
		}
		var b []byte
		if img != "" {
			b, _ = os.ReadFile(img)
		} else {
			b = make([]byte, 1<<20)
		}
		os.WriteFile(filepath.Join(dev, name), b, 0o644)
	}
	got, err := FindLabelled(sys, dev, "strata")
	if err != nil {
		t.Fatal(err)
	}
	want := []Labelled{{Name: "sda", FSType: "iso9660", Label: "STRATA"}, {Name: "vdb1", FSType: "vfat", Label: "STRATA"}}
	if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("FindLabelled = %+v, want %+v", got, want)
	}
	if _, err := FindLabelled(filepath.Join(sys, "nosuch"), dev, "STRATA"); err == nil {
		t.Error("no sysfs must be an error")
	}
}

func TestWriteMedium(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "profiles"), 0o755)
	for _, n := range []string{"b.yaml", "a.yaml", "README.txt"} {
		os.WriteFile(filepath.Join(dir, "profiles", n), nil, 0o644)
	}
	var b bytes.Buffer
	WriteMedium(&b, &Medium{Device: "/dev/sda1", FSType: "vfat", Label: "STRATA", Mount: "/run/strata/stick", Dir: dir}, nil)
	WriteMedium(&b, &Medium{Device: "/dev/sr0", FSType: "iso9660", Label: "STRATA", Mount: "/run/strata/stick"}, nil)
	WriteMedium(&b, nil, nil)
	want := "medium /dev/sda1 vfat STRATA at /run/strata/stick (read-only), 2 profiles: a b\n" +
		"medium /dev/sr0 iso9660 STRATA at /run/strata/stick (read-only), no strata/ directory\n" +
		"medium none (no filesystem labelled STRATA)\n"
	if b.String() != want {
		t.Errorf("WriteMedium:\n%s\nwant\n%s", b.String(), want)
	}
}

// strata.profile without strata.server: the run is unattended, and the
// session's only source is the medium.
func TestRunProfileFromMedium(t *testing.T) {
	root := fakeSys(t)
	dir := t.TempDir()
	mp := filepath.Join(dir, "manifest.json")
	writeFile(t, mp, `{"kernel_version":"6.1.0-test","tools":[]}`)
	stick := filepath.Join(dir, "stick", "strata")
	writeFile(t, filepath.Join(stick, "profiles", "kiosk.yaml"), "version: 1\n")
	var called *Session
	Unattended = func(ctx context.Context, s *Session) error { called = s; return nil }
	defer func() { Unattended = nil }()
	var out bytes.Buffer
	err := Run(context.Background(), Config{
		Cmdline:  "console=ttyS0 strata.profile=kiosk strata.yes strata.net=none",
		Manifest: mp, Out: &out, Runner: &run.Recorder{}, SysRoot: root, MediumDir: stick,
	})
	if err != nil {
		t.Fatal(err)
	}
	s := out.String()
	for _, want := range []string{"medium (given) dir STRATA at " + stick + " (read-only), 1 profiles: kiosk\n",
		"plan: unattended restore\n  stick:   " + stick + "\n  profile: kiosk\n", "restore: done"} {
		if !strings.Contains(s, want) {
			t.Errorf("output lacks %q:\n%s", want, s)
		}
	}
	if called == nil || len(called.Sources) != 1 || called.Sources[0].Kind != source.Dir || called.Sources[0].Path != stick || called.Medium == nil {
		t.Fatalf("Unattended got %+v", called)
	}

	// Without a medium and a server there is nowhere to look: the plan says so.
	out.Reset()
	if err := Run(context.Background(), Config{Cmdline: "strata.profile=kiosk", Manifest: mp, Out: &out, Runner: &run.Recorder{}, SysRoot: root}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "sources: none: no strata.server and no medium labelled STRATA") || len(called.Sources) != 0 {
		t.Errorf("output:\n%s", out.String())
	}
}
