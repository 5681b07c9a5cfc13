package diff

import (
	"strings"
	"testing"

	"github.com/stratahq/strata/profile"
)

func load(t *testing.T, src string) *profile.Profile {
	t.Helper()
	p, err := profile.Parse("t.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

const base = `version: 1
host: {name: h}
disks:
  main:
    table: gpt
    partitions:
      - {name: esp, size: 512MiB, type: esp}
      - {name: root, size: rest}
volume_groups:
  vg0:
    pvs: [main/root]
    lvs:
      root: {size: 10GiB}
filesystems:
  - device: main/esp
    type: vfat
    mount: {path: /boot/efi}
  - device: vg0/root
    type: ext4
    ext: {features: [^metadata_csum], reserved_blocks: 100}
    mount: {path: /}
system:
  image: {url: x.tar, sha256: 0000000000000000000000000000000000000000000000000000000000000000}
  packages: [a, b]
`

func TestProfiles(t *testing.T) {
	a := load(t, base)
	if cs := Profiles(a, load(t, base)); len(cs) != 0 {
		t.Fatalf("a profile differs from itself: %v", cs)
	}
	b := load(t, strings.NewReplacer(
		"{name: esp, size: 512MiB, type: esp}", "{name: esp, size: 1GiB, type: esp}",
		"root: {size: 10GiB}", "root: {size: 10GiB}\n      data: {size: 1GiB}",
		"[^metadata_csum], reserved_blocks: 100", "[has_journal, extent], reserved_blocks: 200",
		"mount: {path: /boot/efi}", "mount: {path: /boot/efi, options: umask=0077}",
		"packages: [a, b]", "packages: [b, c]",
	).Replace(base))
	var got []string
	for _, c := range Profiles(a, b) {
		got = append(got, c.String())
	}
	want := []string{
		"~ disks.main.partitions[0].size (main/esp): 512MiB -> 1GiB",
		"+ volume_groups.vg0.lvs.data: {size: 1GiB}",
		"~ filesystems[0].mount.options (main/esp /boot/efi): defaults -> umask=0077",
		"~ filesystems[1].ext.reserved_blocks (vg0/root /): 100 -> 200",
		"+ filesystems[1].ext.features (vg0/root /): metadata_csum",
		"+ system.packages: c",
		"- system.packages: a",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if s := Summary(Profiles(a, b)); s != "disks (1), lvm (1), filesystems (3), packages (2)" {
		t.Errorf("Summary = %q", s)
	}
}

func TestFeatures(t *testing.T) {
	if !SameFeatures(ExtDefaults["ext4"], nil, []string{"has_journal", "metadata_csum"}) {
		t.Error("defaults spelled out differ from defaults")
	}
	on, off := FeatureChanges(XFSDefaults, []string{"^reflink"}, []string{"rmapbt"})
	if strings.Join(on, ",") != "reflink,rmapbt" || len(off) != 0 {
		t.Errorf("on %v off %v", on, off)
	}
}
