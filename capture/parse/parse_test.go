package parse

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the .golden files")

// parsers maps a fixture (by directory and name prefix) to the parser that reads it.
var parsers = []struct {
	dir, prefix string
	parse       func([]byte) (any, error)
}{
	{"sfdisk", "", func(b []byte) (any, error) { return Sfdisk(b) }},
	{"lsblk", "", func(b []byte) (any, error) { return Lsblk(b) }},
	{"blkid", "", func(b []byte) (any, error) { return Blkid(b), nil }},
	{"dumpe2fs", "", func(b []byte) (any, error) { return Dumpe2fs(b) }},
	{"xfs_db", "", func(b []byte) (any, error) { return XFSDB(b) }},
	{"fsck.fat", "", func(b []byte) (any, error) { return FsckFat(b) }},
	{"btrfs", "dump-super", func(b []byte) (any, error) { return DumpSuper(b) }},
	{"btrfs", "dump-tree-root", func(b []byte) (any, error) {
		t, err := DumpTreeRoot(b)
		if err != nil {
			return nil, err
		}
		return struct {
			Tree  *BtrfsRootTree
			Paths map[int64]string
		}{t, t.Paths()}, nil
	}},
	{"btrfs", "dump-tree-chunk", func(b []byte) (any, error) { return DumpTreeChunk(b) }},
	{"btrfs", "subvolume-list", func(b []byte) (any, error) { return SubvolumeList(b) }},
	{"cryptsetup", "luks2-dump", func(b []byte) (any, error) { return LUKSVersion(b), nil }},
	{"cryptsetup", "luks2", func(b []byte) (any, error) { return LUKS2JSON(b) }},
	{"cryptsetup", "luks1", func(b []byte) (any, error) { return LuksDump1(b) }},
	{"lvm", "pvs", func(b []byte) (any, error) { return PVs(b) }},
	{"lvm", "vgs", func(b []byte) (any, error) { return VGs(b) }},
	{"lvm", "lvs", func(b []byte) (any, error) { return LVs(b) }},
	{"mdadm", "detail-export", func(b []byte) (any, error) { return MdadmExport(b) }},
	{"mdadm", "examine-export", func(b []byte) (any, error) { return MdadmExport(b) }},
	{"mdadm", "detail-", func(b []byte) (any, error) {
		d, err := MdadmDetail(b)
		if err != nil {
			return nil, err
		}
		return struct {
			*MDDetail
			MdadmLayout string
		}{d, MDLayout(d.Level, d.Layout)}, nil
	}},
	{"git", "status", func(b []byte) (any, error) { return GitStatusV2(b) }},
	{"git", "remote-url", func(b []byte) (any, error) { return strings.TrimSpace(string(b)), nil }},
	{"svn", "info", func(b []byte) (any, error) {
		s, err := SvnInfoText(b)
		if err != nil {
			return nil, err
		}
		return struct {
			*SvnInfo
			Branch string
		}{s, s.Branch()}, nil
	}},
	{"proc", "mountinfo", func(b []byte) (any, error) { return Mountinfo(b) }},
	{"proc", "swaps", func(b []byte) (any, error) { return Swaps(b), nil }},
	{"etc", "fstab", func(b []byte) (any, error) { return Fstab(b) }},
	{"etc", "crypttab", func(b []byte) (any, error) { return Crypttab(b) }},
	{"etc", "os-release", func(b []byte) (any, error) { return OSRelease(b), nil }},
	{"efibootmgr", "", func(b []byte) (any, error) { return EfibootmgrV(b), nil }},
	{"mbr", "", func(b []byte) (any, error) { return MBRBootCode(b), nil }},
	{"dpkg", "status", func(b []byte) (any, error) { return DpkgStatus(b), nil }},
	{"dpkg", "extended_states", func(b []byte) (any, error) { return AptAuto(b), nil }},
	{"dpkg", "apt-mark", nil}, // the expected output of TestManualPackagesLikeAptMark
}

// TestFixturesGolden parses every fixture and compares the result with its
// .golden file. A fixture without a parser fails the test.
func TestFixturesGolden(t *testing.T) {
	files, _ := filepath.Glob("testdata/*/*")
	n := 0
	for _, f := range files {
		if strings.HasSuffix(f, ".golden") {
			continue
		}
		dir, name := filepath.Base(filepath.Dir(f)), filepath.Base(f)
		found := false
		for _, p := range parsers {
			if p.dir != dir || !strings.HasPrefix(name, p.prefix) {
				continue
			}
			found = true
			if p.parse == nil {
				break
			}
			n++
			t.Run(dir+"/"+name, func(t *testing.T) {
				data, err := os.ReadFile(f)
				if err != nil {
					t.Fatal(err)
				}
				v, err := p.parse(data)
				if err != nil {
					t.Fatalf("parse: %v", err)
				}
				got, _ := json.MarshalIndent(v, "", "  ")
				golden(t, f+".golden", append(got, '\n'))
			})
			break
		}
		if !found {
			t.Errorf("%s: no parser for this fixture", f)
		}
	}
	if n < 30 {
		t.Errorf("only %d fixtures parsed; run testdata/regen.sh", n)
	}
}

func golden(t *testing.T, path string, got []byte) {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./capture/parse -update)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs (go test -update if intended)\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}

// The manual package list computed from dpkg's and apt's files equals what
// apt-mark showmanual printed for the same files.
func TestManualPackagesLikeAptMark(t *testing.T) {
	status, err := os.ReadFile("testdata/dpkg/status")
	if err != nil {
		t.Skip("skipping: no dpkg fixture (regen.sh records it on a Debian host)")
	}
	ext, _ := os.ReadFile("testdata/dpkg/extended_states")
	want, _ := os.ReadFile("testdata/dpkg/apt-mark-showmanual.txt")
	got := strings.Join(ManualPackages(DpkgStatus(status), AptAuto(ext)), "\n") + "\n"
	if got != string(want) {
		t.Errorf("manual packages:\n%s\napt-mark showmanual:\n%s", got, want)
	}
}

func TestAttrBits(t *testing.T) {
	got, err := AttrBits("RequiredPartition LegacyBIOSBootable GUID:60,62")
	if err != nil || !reflect.DeepEqual(got, []int{0, 2, 60, 62}) {
		t.Errorf("AttrBits = %v, %v", got, err)
	}
	if _, err := AttrBits("Bogus"); err == nil {
		t.Error("unknown attribute accepted")
	}
}

func TestCmdline(t *testing.T) {
	got := Cmdline(`BOOT_IMAGE=/vmlinuz root=UUID=x ro  quiet  opt="a b" splash`)
	want := []string{"BOOT_IMAGE=/vmlinuz", "root=UUID=x", "ro", "quiet", `opt="a b"`, "splash"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Cmdline = %q", got)
	}
}

func TestMDLayout(t *testing.T) {
	for _, c := range [][3]string{{"raid10", "near=2", "n2"}, {"raid10", "far=2", "f2"}, {"raid10", "offset=2", "o2"}, {"raid5", "left-symmetric", "left-symmetric"}} {
		if got := MDLayout(c[0], c[1]); got != c[2] {
			t.Errorf("MDLayout(%s, %s) = %s, want %s", c[0], c[1], got, c[2])
		}
	}
}

// Truncated or foreign input is an error, never a zero value taken for real.
func TestParsersRejectGarbage(t *testing.T) {
	junk := []byte("something else entirely\n")
	for name, f := range map[string]func([]byte) error{
		"sfdisk":   func(b []byte) error { _, err := Sfdisk(b); return err },
		"dumpe2fs": func(b []byte) error { _, err := Dumpe2fs(b); return err },
		"xfs_db":   func(b []byte) error { _, err := XFSDB(b); return err },
		"fsck.fat": func(b []byte) error { _, err := FsckFat(b); return err },
		"super":    func(b []byte) error { _, err := DumpSuper(b); return err },
		"root":     func(b []byte) error { _, err := DumpTreeRoot(b); return err },
		"chunk":    func(b []byte) error { _, err := DumpTreeChunk(b); return err },
		"luks2":    func(b []byte) error { _, err := LUKS2JSON(b); return err },
		"luks1":    func(b []byte) error { _, err := LuksDump1(b); return err },
		"pvs":      func(b []byte) error { _, err := PVs(b); return err },
		"mdexport": func(b []byte) error { _, err := MdadmExport(b); return err },
		"mddetail": func(b []byte) error { _, err := MdadmDetail(b); return err },
		"git":      func(b []byte) error { _, err := GitStatusV2(b); return err },
		"svn":      func(b []byte) error { _, err := SvnInfoText(b); return err },
	} {
		if f(junk) == nil {
			t.Errorf("%s accepted garbage", name)
		}
	}
}

// The raw table reader agrees with sfdisk --json on tables sfdisk wrote
// (host tier: needs sfdisk).
func TestRawTableLikeSfdisk(t *testing.T) {
	if _, err := exec.LookPath("sfdisk"); err != nil {
		t.Skip("skipping: sfdisk not installed")
	}
	for name, script := range map[string]string{
		"gpt":   "label: gpt\nlabel-id: 5B2F1E3A-9D4C-4E8B-A6F1-2C3D4E5F6071\nsize=64M, type=U, name=\"EFI System Partition\", attrs=\"RequiredPartition LegacyBIOSBootable GUID:60,62\"\nsize=128M, type=L, name=root\nsize=10M, type=21686148-6449-6E6F-744E-656564454649\ntype=S\n",
		"msdos": "label: dos\nlabel-id: 0x5eed1234\nsize=200M, type=83, bootable\nsize=100M, type=ef\ntype=5\nsize=300M, type=82\nsize=10M, type=8e\ntype=83\n",
	} {
		t.Run(name, func(t *testing.T) {
			img := filepath.Join(t.TempDir(), "disk.img")
			if err := os.WriteFile(img, nil, 0o644); err != nil {
				t.Fatal(err)
			}
			os.Truncate(img, 1<<30)
			cmd := exec.Command("sfdisk", "-q", img)
			cmd.Stdin = strings.NewReader(script)
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("sfdisk: %v\n%s", err, out)
			}
			js, err := exec.Command("sfdisk", "--json", img).Output()
			if err != nil {
				t.Fatal(err)
			}
			want, err := Sfdisk(js)
			if err != nil {
				t.Fatal(err)
			}
			f, _ := os.Open(img)
			defer f.Close()
			got, err := RawTable(img, 512, func(off int64, n int) ([]byte, error) {
				b := make([]byte, n)
				m, err := f.ReadAt(b, off)
				return b[:m], err
			})
			if err != nil {
				t.Fatal(err)
			}
			// sfdisk names partitions of an image file IMG1, IMG2; so does RawTable.
			if !reflect.DeepEqual(got, want) {
				g, _ := json.MarshalIndent(got, "", " ")
				w, _ := json.MarshalIndent(want, "", " ")
				t.Errorf("RawTable differs from sfdisk --json\n--- raw\n%s\n--- sfdisk\n%s", g, w)
			}
		})
	}
}
