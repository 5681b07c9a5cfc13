package initramfs

import (
	"reflect"
	"strings"
	"testing"
)

func TestModName(t *testing.T) {
	for in, want := range map[string]string{
		"kernel/drivers/md/dm-mod.ko":   "dm_mod",
		"crc64-rocksoft.ko.xz":          "crc64_rocksoft",
		"nvme-core":                     "nvme_core",
		"kernel/x/usb-storage.ko.zst":   "usb_storage",
		"crc32c_generic":                "crc32c_generic",
		"kernel/arch/x/crc32c-intel.ko": "crc32c_intel",
	} {
		if got := ModName(in); got != want {
			t.Errorf("ModName(%q) = %q, want %q", in, got, want)
		}
	}
}

func loadFixture(t *testing.T) *ModuleIndex {
	t.Helper()
	ix, err := LoadModuleIndex("testdata/modules")
	if err != nil {
		t.Fatal(err)
	}
	return ix
}

// before reports whether a comes before b in order.
func before(order []string, a, b string) bool {
	ia, ib := -1, -1
	for i, m := range order {
		switch m {
		case a:
			ia = i
		case b:
			ib = i
		}
	}
	return ia >= 0 && ib >= 0 && ia < ib
}

func TestPlanOrdersDependencies(t *testing.T) {
	ix := loadFixture(t)
	p := ix.Plan([]string{"ext4", "xfs", "dm-crypt", "nvme", "loop", "sha256", "aes", "nosuchmod", "ipmi_msghandler", "b"})

	for _, c := range []struct{ dep, mod, why string }{
		{"jbd2", "ext4", "hard dependency"},
		{"mbcache", "ext4", "hard dependency"},
		{"crc32c_generic", "ext4", "soft dependency through the crypto-crc32c alias"},
		{"crc32c_intel", "ext4", "every module providing the alias"},
		{"crc32c_generic", "jbd2", "jbd2's own soft dependency"},
		{"crc32c_generic", "libcrc32c", "soft dependency by plain alias"},
		{"libcrc32c", "xfs", "hard dependency"},
		{"dm_mod", "dm_crypt", "hard dependency"},
		{"xts", "dm_crypt", "extra soft dependency: dm-crypt's default cipher"},
		{"ecb", "xts", "xts needs ecb(aes) (FIELD-NOTES)"},
		{"crct10dif_generic", "crc_t10dif", "alias crct10dif"},
		{"crc_t10dif", "nvme", "hard dependency"},
		{"ipmi_msghandler", "ipmi_devintf", "post soft dependency loads after"},
	} {
		if !before(p.Order, c.dep, c.mod) {
			t.Errorf("%s should load before %s (%s); order %v", c.dep, c.mod, c.why, p.Order)
		}
	}
	if !reflect.DeepEqual(p.Builtin, []string{"loop", "sha256", "aes"}) {
		t.Errorf("Builtin = %v, want loop sha256 aes", p.Builtin)
	}
	if !reflect.DeepEqual(p.Missing, []string{"nosuchmod"}) {
		t.Errorf("Missing = %v", p.Missing)
	}
	seen := map[string]bool{}
	for _, m := range p.Order {
		if seen[m] {
			t.Errorf("%s listed twice", m)
		}
		seen[m] = true
		if p.Files[m] == "" {
			t.Errorf("%s has no file", m)
		}
	}
	// a and b depend on each other (hard one way, soft the other): both
	// ship, and the hard dependency wins the order.
	if !seen["a"] || !seen["b"] || !before(p.Order, "b", "a") {
		t.Errorf("cycle a<->b mishandled: %v", p.Order)
	}
	if p.Files["nvme_core"] != "kernel/drivers/nvme/host/nvme-core.ko" {
		t.Errorf("nvme_core file = %q", p.Files["nvme_core"])
	}
}

func TestDepFileListsOnlyPlannedModules(t *testing.T) {
	ix := loadFixture(t)
	p := ix.Plan([]string{"ext4"})
	dep := string(ix.depFile(p))
	if !strings.Contains(dep, "kernel/fs/ext4/ext4.ko: kernel/lib/crc16.ko kernel/fs/mbcache.ko kernel/fs/jbd2/jbd2.ko\n") {
		t.Errorf("modules.dep lacks ext4's line:\n%s", dep)
	}
	if strings.Contains(dep, "xfs") {
		t.Errorf("modules.dep lists unplanned xfs:\n%s", dep)
	}
}

func TestRealKernelPlan(t *testing.T) {
	_, mods, err := CachedKernel(DefaultCacheDir())
	if err != nil {
		t.Skipf("skipping: %v", err)
	}
	ix, err := LoadModuleIndex(mods)
	if err != nil {
		t.Fatal(err)
	}
	p := ix.Plan(DefaultModules())
	if len(p.Missing) > 0 {
		t.Errorf("Debian's kernel lacks requested modules %v", p.Missing)
	}
	// The orders FIELD-NOTES found by booting.
	for _, c := range [][2]string{
		{"virtio_pci", "virtio_blk"}, {"ecb", "xts"}, {"crc32c_generic", "libcrc32c"}, {"libcrc32c", "xfs"},
		{"crc32c_generic", "ext4"}, {"crct10dif_generic", "crc_t10dif"}, {"crc64_rocksoft_generic", "crc64_rocksoft"},
		{"crc64_rocksoft", "nvme_core"}, {"dm_mod", "dm_crypt"}, {"md_mod", "raid456"},
	} {
		if !before(p.Order, c[0], c[1]) {
			t.Errorf("%s should load before %s", c[0], c[1])
		}
	}
	for _, m := range p.Order {
		if strings.Contains(p.Files[m], "_") && strings.Contains(p.Files[m][strings.LastIndex(p.Files[m], "/"):], "-") {
			t.Logf("note: %s mixes '-' and '_' (loaded by strata, not u-root's init)", p.Files[m])
		}
	}
}
