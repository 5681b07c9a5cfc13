package capture

import (
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/stratahq/strata/capture/parse"
	"github.com/stratahq/strata/profile"
)

// Note is something capture could not record faithfully, or had to guess.
// Each becomes a warning on stderr and a "capture:" comment in the profile at
// Path (a profile path like "disks.main.partitions[2]"; "" for the top).
type Note struct {
	Path string
	Msg  string
}

func (n Note) String() string {
	if n.Path == "" {
		return n.Msg
	}
	return n.Path + ": " + n.Msg
}

// Result is a captured profile with what capture has to say about it.
type Result struct {
	Profile *profile.Profile
	Notes   []Note
	Facts   *Facts
	// Measured holds the byte size of every captured disk, partition,
	// volume group and logical volume by reference (main, main/root, vg0,
	// vg0/root), whatever size the profile says (rest, say). Merge and diff
	// check size intents against it.
	Measured map[string]int64
	// Refs maps the device paths of Facts to the profile references they
	// became (/dev/sda2 → main/root), for tools that report by device.
	Refs map[string]string
}

var (
	validName  = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]*$`)
	numberName = regexp.MustCompile(`^p\d+$`)
)

const mib = int64(1) << 20

// builder holds the state of one Build.
type builder struct {
	f      *Facts
	p      *profile.Profile
	res    *Result
	refs   map[string]string // device path → profile reference
	byPath map[string]*parse.BlockDevice
	names  map[string]string // top-level names in use → what uses them
	skip   map[string]string // device path → why it is not in the profile
	lvPath map[string]string // /dev/VG/LV and /dev/mapper/VG-LV → dm path
	fsDone map[string]bool   // device paths whose filesystem is in the profile
	// diskNames maps every captured disk's path to its name, partitioned
	// or not (refs has only disks used whole).
	diskNames map[string]string
}

// Build turns probed facts into a profile. It is a pure function of f.
func Build(f *Facts) *Result {
	b := &builder{f: f, p: &profile.Profile{Version: profile.Version},
		refs: map[string]string{}, byPath: map[string]*parse.BlockDevice{}, names: map[string]string{},
		skip: map[string]string{}, lvPath: map[string]string{}, fsDone: map[string]bool{}, diskNames: map[string]string{}}
	b.res = &Result{Profile: b.p, Facts: f, Measured: map[string]int64{}, Refs: b.refs}
	parse.Walk(f.Blocks, func(d, _ *parse.BlockDevice) {
		if _, ok := b.byPath[d.Path]; !ok {
			b.byPath[d.Path] = d
		}
	})
	for _, lv := range f.LVs {
		if lv.DMPath != "" {
			b.lvPath["/dev/"+lv.VG+"/"+lv.Name] = lv.DMPath
			b.lvPath[lv.DMPath] = lv.DMPath
		}
	}
	b.disks()
	b.raid()
	b.luks()
	b.lvm()
	b.filesystems()
	b.unmatchedMounts()
	b.host()
	if len(f.Only) == 0 && f.OSRelease != nil {
		b.bootloader()
		b.system()
		b.repos()
	}
	b.selectors()
	for _, pr := range f.Problems {
		b.note(pr.Path, "%s", pr.Msg)
	}
	b.ensureValid()
	sort.SliceStable(b.res.Notes, func(i, j int) bool { return b.res.Notes[i].Path < b.res.Notes[j].Path })
	return b.res
}

func (b *builder) note(path, format string, a ...any) {
	n := Note{Path: path, Msg: fmt.Sprintf(format, a...)}
	for _, x := range b.res.Notes {
		if x == n {
			return
		}
	}
	b.res.Notes = append(b.res.Notes, n)
}

// claim reserves a top-level name (disks, arrays, LUKS volumes and VGs share
// one namespace) and returns it, changed to stay unique and valid.
func (b *builder) claim(want, owner string) string {
	name := sanitizeName(want)
	base := name
	for i := 2; b.names[name] != ""; i++ {
		name = fmt.Sprintf("%s-%d", base, i)
	}
	b.names[name] = owner
	return name
}

func sanitizeName(s string) string {
	var out strings.Builder
	for _, r := range s {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '.' || r == '-' {
			out.WriteRune(r)
		} else {
			out.WriteByte('-')
		}
	}
	n := strings.Trim(out.String(), "-.")
	if n == "" || !validName.MatchString(n) {
		n = "x" + n
	}
	return n
}

// ---- disks and partitions ----

// rootSource is the device path the root filesystem lives on, if known.
func (b *builder) rootSource() string {
	for _, e := range b.f.Fstab {
		if e.File == "/" {
			if d := b.resolve(e.Spec); d != "" {
				return d
			}
		}
	}
	for _, m := range b.f.Mounts {
		if m.MountPoint == "/" && strings.HasPrefix(m.Source, "/dev/") {
			return b.canonical(m.Source)
		}
	}
	return ""
}

func holds(d *parse.BlockDevice, path string) bool {
	if d.Path == path {
		return true
	}
	for i := range d.Children {
		if holds(&d.Children[i], path) {
			return true
		}
	}
	return false
}

func (b *builder) disks() {
	order := make([]*parse.BlockDevice, 0, len(b.f.Blocks))
	for i := range b.f.Blocks {
		order = append(order, &b.f.Blocks[i])
	}
	root := b.rootSource()
	sort.SliceStable(order, func(i, j int) bool {
		hi, hj := root != "" && holds(order[i], root), root != "" && holds(order[j], root)
		if hi != hj {
			return hi
		}
		return order[i].Name < order[j].Name
	})
	n := 0
	for _, d := range order {
		kv := b.f.Probe[d.Path]
		t := b.f.Tables[d.Path]
		used := t != nil || kv["TYPE"] != "" || len(d.Children) > 0 || len(d.Mountpoints) > 0
		if b.liveMedium(d) {
			b.note("", "disk %s is the strata live medium: not captured", d.Path)
			continue
		}
		unreadable, cannot := b.f.Unreadable[d.Path]
		if !used {
			if cannot {
				b.note("", "disk %s (%s) could not be read (%s) and holds nothing mounted: not captured", d.Path, profile.HumanBytes(d.Size), unreadable)
			} else if len(b.f.Only) == 0 {
				b.note("", "disk %s (%s) is empty: not captured", d.Path, profile.HumanBytes(d.Size))
			}
			continue
		}
		n++
		want := "main"
		if n > 1 {
			want = fmt.Sprintf("disk%d", n)
		}
		name := b.claim(want, "disks")
		b.diskNames[d.Path] = name
		disk := profile.Disk{Name: name}
		dp := "disks." + name
		b.res.Measured[name] = d.Size
		hint := []string{d.Path, profile.HumanBytes(d.Size)}
		if m := strings.TrimSpace(d.Model); m != "" {
			hint = append(hint, "model "+m)
		}
		if s := strings.TrimSpace(d.Serial); s != "" {
			hint = append(hint, "serial "+s)
		}
		b.note(dp, "captured from %s", strings.Join(hint, ", "))
		switch {
		case t != nil && t.Label == "gpt":
			disk.Table = "gpt"
			disk.GUID = strings.ToUpper(t.ID)
		case t != nil && t.Label == "dos":
			disk.Table = "msdos"
			disk.DiskID = strings.ToLower(t.ID)
		case kv["PTTYPE"] != "":
			disk.Table = map[string]string{"dos": "msdos"}[kv["PTTYPE"]]
			if disk.Table == "" {
				disk.Table = kv["PTTYPE"]
			}
			b.note(dp, "the %s partition table could not be read (see the warnings): partitions not captured", kv["PTTYPE"])
		default:
			disk.Table = "none"
			b.refs[d.Path] = name
			if cannot {
				b.note(dp, "the disk could not be read (%s): no partition table was seen, so it is captured as used whole (table: none)", unreadable)
			}
		}
		if t != nil {
			b.partitions(&disk, d, t)
		}
		b.p.Disks = append(b.p.Disks, disk)
	}
}

// LiveLabel is the filesystem label of the strata live medium (image.Label):
// a disk carrying it is the stick the live image runs from, not the machine's.
const LiveLabel = "STRATA"

func (b *builder) liveMedium(d *parse.BlockDevice) bool {
	live := false
	parse.Walk([]parse.BlockDevice{*d}, func(x, _ *parse.BlockDevice) {
		kv := b.f.Probe[x.Path]
		if (kv["TYPE"] == "vfat" || kv["TYPE"] == "iso9660") && (kv["LABEL"] == LiveLabel || kv["LABEL_FATBOOT"] == LiveLabel) {
			live = true
		}
	})
	return live
}

var (
	gptAlias  = reverse(profile.GPTTypes)
	attrNames = func() map[int]string {
		m := map[int]string{}
		for k, v := range profile.GPTAttributes {
			m[v] = k
		}
		return m
	}()
)

func reverse(m map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range m {
		out[strings.ToUpper(v)] = k
	}
	return out
}

func (b *builder) partitions(disk *profile.Disk, d *parse.BlockDevice, t *parse.Table) {
	dp := "disks." + disk.Name
	ss := t.SectorSize
	if ss != 512 {
		b.note(dp, "sector size %d: the sizes and offsets below are in bytes, the table is rebuilt in the target disk's sectors", ss)
	}
	var parts []parse.Partition
	for _, pt := range t.Partitions {
		if disk.Table == "msdos" && parse.IsExtended(pt.Type) {
			continue
		}
		parts = append(parts, pt)
	}
	labels := map[string]int{}
	for _, pt := range parts {
		labels[pt.Name]++
	}
	used := map[string]bool{}
	var unnamed, gaps []string
	expect := mib // where restore would start the next partition
	lastEnd := int64(0)
	for i, pt := range parts {
		pp := fmt.Sprintf("%s.partitions[%d]", dp, i)
		num := pt.Number
		if num == 0 {
			num = i + 1
		}
		name := fmt.Sprintf("p%d", num)
		p := profile.Partition{}
		switch {
		case disk.Table != "gpt":
		case pt.Name == name:
		case pt.Name != "" && validName.MatchString(pt.Name) && labels[pt.Name] == 1 && !numberName.MatchString(pt.Name):
			name = pt.Name
		case pt.Name != "":
			p.Label = pt.Name
		default:
			unnamed = append(unnamed, name)
		}
		for used[name] {
			name += "x"
		}
		used[name] = true
		p.Name = name
		bytes := pt.Size * ss
		start := pt.Start * ss
		p.Size = profile.Bytes(bytes)
		ref := disk.Name + "/" + name
		b.res.Measured[ref] = bytes
		if pt.Node != "" {
			b.refs[pt.Node] = ref
		}
		switch disk.Table {
		case "gpt":
			if a, ok := gptAlias[strings.ToUpper(pt.Type)]; ok {
				p.Type = a
			} else {
				p.Type = strings.ToUpper(pt.Type)
			}
			p.UUID = strings.ToUpper(pt.UUID)
			bits, err := parse.AttrBits(pt.Attrs)
			if err != nil {
				b.note(pp, "GPT attributes %q not understood: not captured", pt.Attrs)
			}
			for _, bit := range bits {
				if n, ok := attrNames[bit]; ok {
					p.Attributes = append(p.Attributes, n)
				} else {
					p.Attributes = append(p.Attributes, strconv.Itoa(bit))
				}
			}
		case "msdos":
			v, err := strconv.ParseUint(strings.TrimPrefix(strings.ToLower(pt.Type), "0x"), 16, 8)
			if err != nil {
				b.note(pp, "msdos type %q not understood: captured as linux", pt.Type)
				v = 0x83
			}
			p.Type = fmt.Sprintf("0x%02x", v)
			for alias, t := range profile.MBRTypes {
				if uint64(t) == v && (alias != "esp" || v == 0xef) {
					p.Type = alias
				}
			}
			if v == 0x83 {
				p.Type = "linux"
			}
			p.Logical = pt.Number >= 5
			p.Boot = pt.Bootable
		}
		if p.Logical {
			expect += mib // restore leaves 1 MiB for each logical partition's EBR
		}
		if start != expect {
			gaps = append(gaps, fmt.Sprintf("%s starts at %s (restore: %s)", name, offset(start), offset(expect)))
		}
		if bytes%mib != 0 && i < len(parts)-1 {
			b.note(pp, "size %s is not a whole number of MiB: restore rounds it up to %s", profile.FormatBytes(bytes), profile.FormatBytes((bytes+mib-1)/mib*mib))
		}
		expect = (start + bytes + mib - 1) / mib * mib
		if expect < start+bytes {
			expect = start + bytes
		}
		lastEnd = start + bytes
		disk.Partitions = append(disk.Partitions, p)
	}
	// The last partition reaching the end of the disk (up to the alignment
	// and the GPT backup) means "the rest": so the profile fits a bigger or
	// smaller disk. Its measured size stays in Measured.
	if n := len(disk.Partitions); n > 0 {
		tail := d.Size - lastEnd
		if tail >= 0 && tail < profile.TableTail(disk.Table)+mib {
			last := &disk.Partitions[n-1]
			last.Size = profile.MustSize("rest")
			b.note(fmt.Sprintf("%s.partitions[%d]", dp, n-1), "%s here; it reaches the end of the disk, so it is captured as rest", profile.FormatBytes(b.res.Measured[disk.Name+"/"+last.Name]))
		}
	}
	if len(unnamed) > 0 {
		if len(unnamed) == 1 {
			b.note(dp, "partition %s has no GPT name: restore names it %s", unnamed[0], unnamed[0])
		} else {
			b.note(dp, "partitions %s have no GPT name: restore names them after their profile names", strings.Join(unnamed, ", "))
		}
	}
	if len(gaps) > 0 {
		b.note(dp, "restore lays partitions out one after another from 1MiB, aligned to 1MiB: %s", strings.Join(gaps, "; "))
	}
	for i, pt := range parts {
		if pt.Number != 0 && pt.Number != i+1 && !(disk.Table == "msdos" && pt.Number >= 5) {
			b.note(dp, "partition numbers have gaps here (%s is number %d): restore numbers partitions in table order", disk.Partitions[i].Name, pt.Number)
			break
		}
	}
}

func offset(n int64) string {
	if n%mib == 0 {
		return profile.FormatBytes(n)
	}
	return fmt.Sprintf("%d bytes", n)
}

// selectors set each disk's min_size: the smallest disk its layout fits.
func (b *builder) selectors() {
	for i := range b.p.Disks {
		d := &b.p.Disks[i]
		var reqs []profile.Request
		for _, pt := range d.Partitions {
			reqs = append(reqs, profile.Request{Name: pt.Name, Size: pt.Size, Min: pt.MinSize, Max: pt.MaxSize})
		}
		if d.Table == "none" {
			continue
		}
		need, err := profile.MinimumFit(reqs, mib)
		if err != nil || need == 0 {
			continue
		}
		d.Select.MinSize = profile.Bytes(need + profile.DiskOverhead(d))
	}
	if len(b.p.Disks) > 1 {
		b.note("disks", "%d disks: add a selector to each (by_path, serial or model) so restore can tell them apart", len(b.p.Disks))
	}
}

// ---- device references ----

// canonical maps a device path as other tools print it (/dev/VG/LV,
// /dev/md/NAME) to the path lsblk uses.
func (b *builder) canonical(dev string) string {
	if p, ok := b.lvPath[dev]; ok {
		return p
	}
	if _, ok := b.byPath[dev]; ok {
		return dev
	}
	if name, ok := strings.CutPrefix(dev, "/dev/md/"); ok {
		for p, md := range b.f.MD {
			if md.Export != nil && (md.Export.Values["MD_DEVNAME"] == name || strings.HasSuffix(md.Export.Values["MD_NAME"], ":"+name)) {
				return p
			}
		}
	}
	return dev
}

// resolve turns an fstab/crypttab device spec into a device path ("" when
// nothing captured matches).
func (b *builder) resolve(spec string) string {
	key, val := "", ""
	for _, pre := range []struct{ tag, key string }{
		{"UUID=", "UUID"}, {"LABEL=", "LABEL"}, {"PARTUUID=", "PART_ENTRY_UUID"}, {"PARTLABEL=", "PART_ENTRY_NAME"},
		{"/dev/disk/by-uuid/", "UUID"}, {"/dev/disk/by-label/", "LABEL"}, {"/dev/disk/by-partuuid/", "PART_ENTRY_UUID"}, {"/dev/disk/by-partlabel/", "PART_ENTRY_NAME"},
	} {
		if v, ok := strings.CutPrefix(spec, pre.tag); ok {
			key, val = pre.key, strings.Trim(v, `"`)
			break
		}
	}
	if key == "" {
		if strings.HasPrefix(spec, "/dev/") {
			c := b.canonical(spec)
			if _, ok := b.byPath[c]; ok {
				return c
			}
		}
		return ""
	}
	var hit []string
	for dev, kv := range b.f.Probe {
		if strings.EqualFold(kv[key], val) || key == "LABEL" && kv["LABEL_FATBOOT"] == val && kv["LABEL"] == "" {
			hit = append(hit, dev)
		}
	}
	sort.Strings(hit)
	if len(hit) == 0 {
		return ""
	}
	return hit[0]
}

// ref is the profile reference of a device path ("" when not captured).
func (b *builder) ref(dev string) string { return b.refs[b.canonical(dev)] }
