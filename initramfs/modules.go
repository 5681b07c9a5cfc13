package initramfs

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
)

// ModuleIndex is what depmod knows about one kernel's modules: the files
// (modules.dep), soft dependencies (modules.softdep), aliases (modules.alias)
// and what is built in (modules.builtin, modules.builtin.modinfo).
type ModuleIndex struct {
	Dir     string              // lib/modules/<kver>
	Path    map[string]string   // module name → path relative to Dir
	Deps    map[string][]string // module name → hard dependencies (names)
	Soft    map[string][]string // module name → "pre:" soft dependencies (raw names or aliases)
	Post    map[string][]string // module name → "post:" soft dependencies
	Aliases map[string][]string // exact alias → module names
	Builtin map[string]bool     // built-in module names and their aliases
}

// ModName normalises a module name or file name the way the kernel does:
// no directory, no .ko[.xz|.gz|.zst] suffix, '-' written as '_'.
func ModName(s string) string {
	s = path.Base(s)
	for _, ext := range []string{".xz", ".gz", ".zst"} {
		s = strings.TrimSuffix(s, ext)
	}
	s = strings.TrimSuffix(s, ".ko")
	return strings.ReplaceAll(s, "-", "_")
}

// extraSoftDeps are load-time requirements that the kernel expresses through
// request_module or the crypto API rather than .modinfo, found by booting
// without them (FIELD-NOTES): the library modules allocate a crypto
// transform at init and fail with ENOENT when its provider is not loaded.
var extraSoftDeps = map[string][]string{
	"crc64_rocksoft": {"crc64_rocksoft_generic"},
	"crc_t10dif":     {"crct10dif"},
	"libcrc32c":      {"crc32c"},
	"xts":            {"ecb"},
	"dm_crypt":       {"xts", "ecb", "aes"},
}

// LoadModuleIndex reads the depmod files in dir (lib/modules/<kver>).
func LoadModuleIndex(dir string) (*ModuleIndex, error) {
	ix := &ModuleIndex{
		Dir: dir, Path: map[string]string{}, Deps: map[string][]string{},
		Soft: map[string][]string{}, Post: map[string][]string{},
		Aliases: map[string][]string{}, Builtin: map[string]bool{},
	}
	dep, err := os.ReadFile(filepath.Join(dir, "modules.dep"))
	if err != nil {
		return nil, fmt.Errorf("modules: %w (run depmod -b ROOT KVER to create it)", err)
	}
	if err := ix.parseDep(bytes.NewReader(dep)); err != nil {
		return nil, err
	}
	for name, parse := range map[string]func(io.Reader) error{
		"modules.softdep":         ix.parseSoftdep,
		"modules.alias":           ix.parseAlias,
		"modules.builtin":         ix.parseBuiltin,
		"modules.builtin.modinfo": ix.parseBuiltinModinfo,
	} {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if os.IsNotExist(err) {
			continue // optional: older depmod or a kernel without built-ins
		}
		if err != nil {
			return nil, fmt.Errorf("modules: %w", err)
		}
		if err := parse(bytes.NewReader(b)); err != nil {
			return nil, fmt.Errorf("modules: %s: %w", name, err)
		}
	}
	return ix, nil
}

func (ix *ModuleIndex) parseDep(r io.Reader) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		file, deps, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		name := ModName(file)
		ix.Path[name] = strings.TrimSpace(file)
		for _, d := range strings.Fields(deps) {
			ix.Deps[name] = append(ix.Deps[name], ModName(d))
		}
	}
	return sc.Err()
}

// parseSoftdep reads "softdep MOD pre: A B post: C" lines; names without a
// pre:/post: marker count as pre.
func (ix *ModuleIndex) parseSoftdep(r io.Reader) error {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 3 || f[0] != "softdep" {
			continue
		}
		mod := ModName(f[1])
		post := false
		for _, w := range f[2:] {
			switch w {
			case "pre:":
				post = false
			case "post:":
				post = true
			default:
				if post {
					ix.Post[mod] = append(ix.Post[mod], w)
				} else {
					ix.Soft[mod] = append(ix.Soft[mod], w)
				}
			}
		}
	}
	return sc.Err()
}

// parseAlias keeps only exact aliases (no glob characters): soft
// dependencies name crypto algorithms like "crypto-crc32c", never patterns.
func (ix *ModuleIndex) parseAlias(r io.Reader) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) != 3 || f[0] != "alias" || strings.ContainsAny(f[1], "*?[") {
			continue
		}
		ix.Aliases[f[1]] = append(ix.Aliases[f[1]], ModName(f[2]))
	}
	return sc.Err()
}

func (ix *ModuleIndex) parseBuiltin(r io.Reader) error {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		if l := strings.TrimSpace(sc.Text()); l != "" {
			ix.Builtin[ModName(l)] = true
		}
	}
	return sc.Err()
}

// parseBuiltinModinfo reads NUL-separated "module.alias=NAME" entries, so
// that a soft dependency on an algorithm built into the kernel is satisfied.
func (ix *ModuleIndex) parseBuiltinModinfo(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	for _, e := range bytes.Split(b, []byte{0}) {
		if _, alias, ok := strings.Cut(string(e), ".alias="); ok && alias != "" {
			ix.Builtin[alias] = true
		}
	}
	return nil
}

// resolve turns a module name or an alias into module names. Modules that
// provide an alias are returned even when the kernel has a built-in
// provider too (the built-in sha256_generic, the module sha256_ssse3): the
// crypto API prefers the faster one once it is loaded. builtin is true when
// only the kernel itself provides it.
func (ix *ModuleIndex) resolve(name string) (mods []string, builtin bool) {
	n := ModName(name)
	if _, ok := ix.Path[n]; ok {
		return []string{n}, false
	}
	seen := map[string]bool{}
	for _, a := range []string{name, "crypto-" + name} {
		for _, m := range ix.Aliases[a] {
			if _, ok := ix.Path[m]; ok && !seen[m] {
				seen[m] = true
				mods = append(mods, m)
			}
		}
		builtin = builtin || ix.Builtin[a]
	}
	sort.Strings(mods)
	builtin = builtin || ix.Builtin[n]
	return mods, builtin && len(mods) == 0
}

// softDeps lists a module's soft dependencies from modules.softdep and
// extraSoftDeps, resolved to module names.
func (ix *ModuleIndex) softDeps(mod string) (pre, post []string) {
	for _, s := range append(append([]string(nil), ix.Soft[mod]...), extraSoftDeps[mod]...) {
		m, _ := ix.resolve(s)
		pre = append(pre, m...)
	}
	for _, s := range ix.Post[mod] {
		m, _ := ix.resolve(s)
		post = append(post, m...)
	}
	return pre, post
}

// ModulePlan is the set of modules to ship and the order to load them in.
type ModulePlan struct {
	// Order lists module names so that every module comes after its hard
	// and "pre" soft dependencies.
	Order []string
	// Files maps each module name to its path relative to lib/modules/<kver>.
	Files map[string]string
	// Builtin lists requested names the kernel has built in (nothing to load).
	Builtin []string
	// Missing lists requested names this kernel has neither as a module nor
	// built in.
	Missing []string
}

// Plan computes the closure of the requested modules over hard and soft
// dependencies and a load order. Requested names may be module names or
// aliases. Hard dependencies always come first; a soft dependency that would
// contradict one (a cycle) is dropped from the ordering, not from the set.
func (ix *ModuleIndex) Plan(requested []string) ModulePlan {
	p := ModulePlan{Files: map[string]string{}}
	type edge struct {
		from, to string
		hard     bool
	}
	var edges []edge
	index := map[string]int{} // discovery order, for a stable result
	var nodes []string
	var add func(m string)
	add = func(m string) {
		if _, ok := index[m]; ok {
			return
		}
		index[m] = len(nodes)
		nodes = append(nodes, m)
		pre, post := ix.softDeps(m)
		for _, d := range pre {
			edges = append(edges, edge{d, m, false})
			add(d)
		}
		for _, d := range ix.Deps[m] {
			edges = append(edges, edge{d, m, true})
			add(d)
		}
		for _, d := range post {
			edges = append(edges, edge{m, d, false})
			add(d)
		}
	}
	for _, r := range requested {
		mods, builtin := ix.resolve(r)
		switch {
		case len(mods) > 0:
			for _, m := range mods {
				add(m)
			}
		case builtin:
			p.Builtin = append(p.Builtin, r)
		default:
			p.Missing = append(p.Missing, r)
		}
	}

	// Kahn's algorithm, always taking the earliest-discovered ready module.
	done := map[string]bool{}
	useSoft := true
	for len(p.Order) < len(nodes) {
		indeg := map[string]int{}
		for _, e := range edges {
			if !done[e.from] && !done[e.to] && e.from != e.to && (e.hard || useSoft) {
				indeg[e.to]++
			}
		}
		next := ""
		for _, m := range nodes {
			if !done[m] && indeg[m] == 0 && (next == "" || index[m] < index[next]) {
				next = m
			}
		}
		if next == "" {
			useSoft = false // a cycle through soft edges: let hard ones decide
			continue
		}
		done[next] = true
		useSoft = true
		p.Order = append(p.Order, next)
		p.Files[next] = ix.Path[next]
	}
	return p
}

// Modules requested for the live image, by purpose. Names may be aliases.
var (
	StorageModules = []string{
		// virtual machines
		"virtio_pci", "virtio_blk", "virtio_scsi", "virtio_rng",
		// disks and controllers
		"nvme", "ahci", "sd_mod", "sr_mod", "uas", "usb_storage",
		"xhci_pci", "ehci_pci", "ohci_pci", "uhci_hcd",
		"loop", "efivarfs",
		// USB keyboards for the console
		"usbhid", "hid_generic",
	}
	MapperModules = []string{
		// dm_raid backs LVM raid1/raid5 LVs (lvcreate --type raid1)
		"dm_mod", "dm_crypt", "dm_snapshot", "dm_mirror", "dm_thin_pool", "dm_raid",
		// ciphers and hashes LUKS uses in the kernel; af_alg/algif_* let
		// cryptsetup use kernel crypto for keyslots
		"aesni_intel", "aes", "xts", "ecb", "cbc", "essiv", "sha256", "sha512",
		"af_alg", "algif_skcipher", "algif_hash",
		// md RAID
		"md_mod", "raid0", "raid1", "raid10", "raid456",
	}
	FilesystemModules = []string{
		// nls_ascii: Debian's kernel mounts vfat with iocharset=ascii by default,
		// so without it no ESP mounts ("IO charset ascii not found").
		"ext4", "xfs", "btrfs", "vfat", "nls_cp437", "nls_ascii", "nls_iso8859_1", "nls_utf8", "isofs",
	}
	NICModules = []string{
		"virtio_net", "e1000", "e1000e", "igb", "igc", "ixgbe", "r8169", "tg3",
	}
)

// DefaultModules is everything above.
func DefaultModules() []string {
	var all []string
	for _, g := range [][]string{StorageModules, MapperModules, FilesystemModules, NICModules} {
		all = append(all, g...)
	}
	return all
}

// depFile renders modules.dep for the planned modules only, so the live
// image's module tools see exactly what it ships.
func (ix *ModuleIndex) depFile(p ModulePlan) []byte {
	var b bytes.Buffer
	names := append([]string(nil), p.Order...)
	sort.Strings(names)
	for _, m := range names {
		b.WriteString(p.Files[m])
		b.WriteString(":")
		for _, d := range ix.transitiveDeps(m) {
			b.WriteString(" " + ix.Path[d])
		}
		b.WriteString("\n")
	}
	return b.Bytes()
}

// transitiveDeps returns all hard dependencies, as depmod writes them.
func (ix *ModuleIndex) transitiveDeps(m string) []string {
	var out []string
	seen := map[string]bool{m: true}
	var walk func(string)
	walk = func(x string) {
		for _, d := range ix.Deps[x] {
			if !seen[d] {
				seen[d] = true
				out = append(out, d)
				walk(d)
			}
		}
	}
	walk(m)
	return out
}
