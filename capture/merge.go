package capture

import (
	"fmt"
	"regexp"
	"sort"
	"strings"

	"github.com/stratahq/strata/capture/diff"
	"github.com/stratahq/strata/capture/parse"
	"github.com/stratahq/strata/profile"
)

// Merge folds a capture into an existing profile, in place, so that saving
// old keeps its comments. The host's reality wins, but the user's writing is
// kept wherever it still says the same thing:
//
//   - names of disks, partitions, arrays, LUKS volumes, VGs and LVs (matched
//     by UUID/GUID first, then by name, then by position) and every
//     reference to them;
//   - host, system.image, repos, datasets, LUKS key sources, keep flags and
//     disk selectors (min_size grows when the layout needs it);
//   - size intents (rest, 50%, 20%free, min/max bounds) that still give the
//     captured size on the captured disk or volume group; a size that no
//     longer does is replaced by the captured one;
//   - settings written differently but meaning the same (a type alias for
//     its GUID, a shorter feature list with the same effect, "defaults").
//
// Entries the host no longer has are dropped, except in a capture restricted
// to some disks, where only those disks' entries are touched. Merge returns
// the notes of the capture, their paths translated to the merged profile,
// less those about what was kept from old.
func Merge(old *profile.Profile, cur *Result) []Note {
	m := &merger{old: old, cur: cur, cp: cur.Profile, refs: map[string]string{}, paths: map[string]string{},
		restricted: len(cur.Facts.Only) > 0, storageOnly: cur.Facts.OSRelease == nil || len(cur.Facts.Only) > 0}
	m.names = map[string]bool{}
	for _, d := range old.Disks {
		m.names[d.Name] = true
	}
	for _, r := range old.RAID {
		m.names[r.Name] = true
	}
	for _, l := range old.LUKS {
		m.names[l.Name] = true
	}
	for _, v := range old.VolumeGroups {
		m.names[v.Name] = true
	}
	m.disks()
	m.raid()
	m.luks()
	m.lvm()
	m.filesystems()
	m.rest()
	m.fixSelectors()
	return m.notes()
}

type merger struct {
	old, cp     *profile.Profile
	cur         *Result
	refs        map[string]string // captured reference → merged reference
	paths       map[string]string // captured profile path → merged profile path
	names       map[string]bool   // top-level names in use in the merged profile
	restricted  bool              // only some disks were captured
	storageOnly bool              // no system, bootloader or repos in the capture
	measured    map[string]int64  // by merged reference
	extra       []Note
}

// newName gives an unmatched captured entry a name free in the merged profile.
func (m *merger) newName(want string) string {
	name := want
	for i := 2; m.names[name]; i++ {
		name = fmt.Sprintf("%s-%d", want, i)
	}
	m.names[name] = true
	return name
}

func (m *merger) ref(r string) string {
	if x, ok := m.refs[r]; ok {
		return x
	}
	return r
}

func (m *merger) refList(rs []string) []string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = m.ref(r)
	}
	return out
}

// ---- disks ----

func (m *merger) matchDisk(c *profile.Disk, used map[int]bool) int {
	for i, o := range m.old.Disks {
		if used[i] {
			continue
		}
		if c.GUID != "" && strings.EqualFold(o.GUID, c.GUID) || c.DiskID != "" && strings.EqualFold(o.DiskID, c.DiskID) {
			return i
		}
	}
	for i, o := range m.old.Disks {
		if used[i] {
			continue
		}
		for _, op := range o.Partitions {
			for _, cp := range c.Partitions {
				if op.UUID != "" && strings.EqualFold(op.UUID, cp.UUID) {
					return i
				}
			}
		}
	}
	// A filesystem UUID on the disk or one of its partitions.
	for i, o := range m.old.Disks {
		if used[i] {
			continue
		}
		old := uuidsOn(m.old, o)
		for u := range uuidsOn(m.cp, *c) {
			if old[u] {
				return i
			}
		}
	}
	// The same partition names (a hand-written profile of GPT disks), in order.
	for i, o := range m.old.Disks {
		if !used[i] && o.Table == c.Table && len(o.Partitions) > 0 && partNames(o) == partNames(*c) {
			return i
		}
	}
	for i, o := range m.old.Disks {
		if !used[i] && o.Name == c.Name && o.Table == c.Table {
			return i
		}
	}
	// The same layout, in order (msdos partitions have no names): the
	// first disk of the profile not yet matched whose partitions have the
	// captured ones' types and kinds. Disks alike (a mirror's) match in
	// the order the machine lists them, which is symmetrical anyway.
	for i, o := range m.old.Disks {
		if !used[i] && o.Table == c.Table && len(o.Partitions) > 0 && sameLayout(o, *c) {
			return i
		}
	}
	// A disk used whole (whole-disk LUKS, a PV, a filesystem without a
	// table) has nothing else to match by: the one such disk on each side.
	if c.Table == "none" {
		if i, ok := onlyWhole(m.old.Disks, used); ok {
			if _, ok := onlyWhole(m.cp.Disks, nil); ok {
				return i
			}
		}
	}
	free := -1
	for i := range m.old.Disks {
		if !used[i] {
			if free >= 0 {
				return -1 // ambiguous
			}
			free = i
		}
	}
	if free >= 0 && len(m.cp.Disks) == 1 && m.old.Disks[free].Table == c.Table {
		return free
	}
	return -1
}

// sameLayout: as many partitions, of the same types, logical where the
// other's are.
func sameLayout(a, b profile.Disk) bool {
	if len(a.Partitions) != len(b.Partitions) {
		return false
	}
	for i := range a.Partitions {
		pa, pb := a.Partitions[i], b.Partitions[i]
		if !sameType(a.Table, pa.Type, pb.Type) || pa.Logical != pb.Logical {
			return false
		}
	}
	return true
}

// onlyWhole is the index of the one disk without a table among ds (those
// not used), if there is exactly one.
func onlyWhole(ds []profile.Disk, used map[int]bool) (int, bool) {
	found := -1
	for i, d := range ds {
		if d.Table == "none" && !used[i] {
			if found >= 0 {
				return -1, false
			}
			found = i
		}
	}
	return found, found >= 0
}

// uuidsOn lists the filesystem UUIDs on a disk and its partitions.
func uuidsOn(p *profile.Profile, d profile.Disk) map[string]bool {
	out := map[string]bool{}
	for _, f := range p.Filesystems {
		if f.UUID != "" && (f.Device == d.Name || strings.HasPrefix(f.Device, d.Name+"/")) {
			out[strings.ToLower(f.UUID)] = true
		}
	}
	return out
}

func partNames(d profile.Disk) string {
	var n []string
	for _, p := range d.Partitions {
		n = append(n, p.Name)
	}
	return strings.Join(n, "/")
}

// fsUUIDOn is the UUID of the filesystem on a device reference, "" if none.
func fsUUIDOn(p *profile.Profile, ref string) string {
	if f := fsOn(p, ref); f != nil {
		return strings.ToLower(f.UUID)
	}
	return ""
}

func fsOn(p *profile.Profile, dev string) *profile.Filesystem {
	for i := range p.Filesystems {
		if p.Filesystems[i].Device == dev {
			return &p.Filesystems[i]
		}
	}
	return nil
}

func (m *merger) disks() {
	used := map[int]bool{}
	match := make([]int, len(m.cp.Disks))
	for i := range m.cp.Disks {
		match[i] = m.matchDisk(&m.cp.Disks[i], used)
		if match[i] >= 0 {
			used[match[i]] = true
		}
	}
	var out []profile.Disk
	merged := map[int]profile.Disk{}
	var added []profile.Disk
	for ci := range m.cp.Disks {
		c := m.cp.Disks[ci]
		oi := match[ci]
		if oi < 0 {
			name := m.newName(c.Name)
			m.refs[c.Name] = name
			m.paths["disks."+c.Name] = "disks." + name
			for j, pt := range c.Partitions {
				m.refs[c.Name+"/"+pt.Name] = name + "/" + pt.Name
				m.paths[fmt.Sprintf("disks.%s.partitions[%d]", c.Name, j)] = fmt.Sprintf("disks.%s.partitions[%d]", name, j)
			}
			c.Name = name
			added = append(added, c)
			continue
		}
		merged[oi] = m.mergeDisk(m.old.Disks[oi], c)
	}
	for i, o := range m.old.Disks {
		switch d, ok := merged[i]; {
		case ok:
			out = append(out, d)
		case m.restricted:
			out = append(out, o) // not part of this capture
		}
	}
	m.old.Disks = append(out, added...)
}

func (m *merger) mergeDisk(o, c profile.Disk) profile.Disk {
	m.refs[c.Name] = o.Name
	m.paths["disks."+c.Name] = "disks." + o.Name
	d := o
	d.Table, d.GUID, d.DiskID = c.Table, c.GUID, c.DiskID
	// Partitions in the captured (table) order, each matched to the old one.
	usedOld := map[int]bool{}
	find := func(cp profile.Partition, j int) int {
		for i, op := range o.Partitions {
			if !usedOld[i] && cp.UUID != "" && strings.EqualFold(op.UUID, cp.UUID) {
				return i
			}
		}
		if u := fsUUIDOn(m.cp, c.Name+"/"+cp.Name); u != "" {
			for i, op := range o.Partitions {
				if !usedOld[i] && fsUUIDOn(m.old, o.Name+"/"+op.Name) == u {
					return i
				}
			}
		}
		for i, op := range o.Partitions {
			if !usedOld[i] && op.Name == cp.Name && op.UUID == "" {
				return i
			}
		}
		if len(o.Partitions) == len(c.Partitions) && !usedOld[j] && o.Partitions[j].UUID == "" && sameType(c.Table, o.Partitions[j].Type, cp.Type) {
			return j
		}
		return -1
	}
	taken := map[string]bool{}
	for _, op := range o.Partitions {
		taken[op.Name] = true
	}
	d.Partitions = nil
	oldIdx := make([]int, len(c.Partitions))
	for j, cp := range c.Partitions {
		i := find(cp, j)
		oldIdx[j] = i
		if i >= 0 {
			usedOld[i] = true
		}
	}
	for j, cp := range c.Partitions {
		i := oldIdx[j]
		mp := cp
		actual := m.partLabel(c.Name + "/" + cp.Name)
		if i >= 0 {
			op := o.Partitions[i]
			mp = op
			switch {
			case c.Table != "gpt":
			case actual == op.Name:
				mp.Label = ""
			case actual != "":
				mp.Label = actual
			}
			if !sameType(c.Table, op.Type, cp.Type) {
				mp.Type = cp.Type
			}
			mp.UUID, mp.Attributes, mp.Logical, mp.Boot = cp.UUID, cp.Attributes, cp.Logical, cp.Boot
			if sameAttrs(op.Attributes, cp.Attributes) {
				mp.Attributes = op.Attributes
			}
		} else {
			name := cp.Name
			for k := 2; taken[name]; k++ {
				name = fmt.Sprintf("%s-%d", cp.Name, k)
			}
			mp.Name = name
			if c.Table == "gpt" && actual != "" && actual != name {
				mp.Label = actual
			}
		}
		taken[mp.Name] = true
		m.refs[c.Name+"/"+cp.Name] = o.Name + "/" + mp.Name
		m.paths[fmt.Sprintf("disks.%s.partitions[%d]", c.Name, j)] = fmt.Sprintf("disks.%s.partitions[%d]", o.Name, len(d.Partitions))
		d.Partitions = append(d.Partitions, mp)
	}
	// Size intents: kept where they still give the captured sizes.
	var reqs []profile.Request
	var meas []int64
	for j, cp := range c.Partitions {
		mp := &d.Partitions[j]
		reqs = append(reqs, profile.Request{Name: mp.Name, Size: mp.Size, Min: mp.MinSize, Max: mp.MaxSize})
		meas = append(meas, m.cur.Measured[c.Name+"/"+cp.Name])
	}
	avail := m.cur.Measured[c.Name] - profile.DiskOverhead(&d)
	keep := holdIntents(reqs, meas, avail, mib, 2*mib)
	for j, cp := range c.Partitions {
		// Still the last, still reaching the end of the disk: "rest" holds
		// even where restore would not keep a gap before it.
		r := reqs[j]
		if cp.Size.Rest && r.Size.Rest && (!r.Min.IsAbsolute() || meas[j] >= r.Min.Bytes) && (!r.Max.IsAbsolute() || meas[j] <= r.Max.Bytes) {
			keep[j] = true
		}
	}
	for j, cp := range c.Partitions {
		mp := &d.Partitions[j]
		if oldIdx[j] >= 0 && !keep[j] {
			mp.Size, mp.MinSize, mp.MaxSize = cp.Size, cp.MinSize, cp.MaxSize
			if cp.Size.Rest && !lastFits(reqs, j) {
				mp.Size = profile.Bytes(meas[j])
			}
		}
	}
	return d
}

// lastFits reports whether entry j can become "rest": no other entry is.
func lastFits(reqs []profile.Request, j int) bool {
	for i, r := range reqs {
		if i != j && r.Size.Rest {
			return false
		}
	}
	return true
}

// partLabel is the GPT partition name the captured partition has on disk.
func (m *merger) partLabel(capRef string) string {
	return m.cur.Facts.Probe[m.devPath(capRef)]["PART_ENTRY_NAME"]
}

func sameType(table, a, b string) bool {
	if table == "msdos" {
		x, e1 := profile.MBRType(a)
		y, e2 := profile.MBRType(b)
		return e1 == nil && e2 == nil && x == y
	}
	x, e1 := profile.GPTType(a)
	y, e2 := profile.GPTType(b)
	return e1 == nil && e2 == nil && x == y
}

func sameAttrs(a, b []string) bool {
	x, e1 := profile.AttributeBits(a)
	y, e2 := profile.AttributeBits(b)
	return e1 == nil && e2 == nil && x == y
}

// holdIntents says, for each entry, whether its size as written (an intent
// or an absolute size) gives the measured size when the entries are fitted
// into avail bytes: absolute sizes must round to the same alignment unit,
// computed ones must come within tol. An intent that fails is replaced by
// its measured size and the others are fitted again, since rest and %free
// depend on their neighbours.
func holdIntents(reqs []profile.Request, measured []int64, avail, align, tol int64) []bool {
	ok := make([]bool, len(reqs))
	for i := range ok {
		ok[i] = true
	}
	work := append([]profile.Request(nil), reqs...)
	up := func(n int64) int64 { return (n + align - 1) / align * align }
	for round := 0; round <= len(reqs); round++ {
		changed := false
		for i, r := range work {
			if ok[i] && r.Size.IsAbsolute() && up(r.Size.Bytes) != up(measured[i]) {
				ok[i], changed = false, true
				work[i] = profile.Request{Name: r.Name, Size: profile.Bytes(measured[i])}
			}
		}
		got, err := profile.Fit(work, avail, align)
		for i, r := range work {
			if !ok[i] || r.Size.IsAbsolute() {
				continue
			}
			if err != nil || abs(got[i]-measured[i]) > tol {
				ok[i], changed = false, true
				work[i] = profile.Request{Name: r.Name, Size: profile.Bytes(measured[i])}
				break // refit: the others may hold now
			}
		}
		if !changed {
			break
		}
	}
	return ok
}

func abs(n int64) int64 {
	if n < 0 {
		return -n
	}
	return n
}

// fixSelectors raises a disk's min_size when the merged layout needs more.
func (m *merger) fixSelectors() {
	for i := range m.old.Disks {
		d := &m.old.Disks[i]
		var reqs []profile.Request
		for _, pt := range d.Partitions {
			reqs = append(reqs, profile.Request{Name: pt.Name, Size: pt.Size, Min: pt.MinSize, Max: pt.MaxSize})
		}
		need, err := profile.MinimumFit(reqs, mib)
		if err != nil || len(reqs) == 0 {
			continue
		}
		need += profile.DiskOverhead(d)
		if min := d.Select.MinSize; min.IsAbsolute() && min.Bytes < need {
			m.extra = append(m.extra, Note{Path: "disks." + d.Name + ".select.min_size",
				Msg: fmt.Sprintf("raised from %s: the partitions need %s", min, profile.FormatBytes(need))})
			d.Select.MinSize = profile.Bytes(need)
		}
	}
}

// ---- md, LUKS, LVM ----

func normUUID(u string) string {
	return strings.ToLower(strings.NewReplacer(":", "", "-", "").Replace(u))
}

func (m *merger) raid() {
	used := map[int]bool{}
	var out []profile.RAID
	merged := map[int]profile.RAID{}
	var added []profile.RAID
	for _, c := range m.cp.RAID {
		c.Devices, c.Spares = m.refList(c.Devices), m.refList(c.Spares)
		oi := -1
		for i, o := range m.old.RAID {
			if !used[i] && (o.UUID != "" && normUUID(o.UUID) == normUUID(c.UUID)) {
				oi = i
			}
		}
		for i, o := range m.old.RAID {
			if oi < 0 && !used[i] && o.UUID == "" && (o.Name == c.Name || o.ArrayName != "" && o.ArrayName == c.ArrayName || sameList(o.Devices, c.Devices)) {
				oi = i
			}
		}
		if oi < 0 {
			name := m.newName(c.Name)
			m.refs[c.Name], m.paths["raid."+c.Name] = name, "raid."+name
			c.Name = name
			added = append(added, c)
			continue
		}
		used[oi] = true
		o := m.old.RAID[oi]
		m.refs[c.Name], m.paths["raid."+c.Name] = o.Name, "raid."+o.Name
		r := o
		r.Level, r.Devices, r.Spares, r.UUID = c.Level, c.Devices, c.Spares, c.UUID
		if or(o.Metadata, "1.2") != or(c.Metadata, "1.2") {
			r.Metadata = c.Metadata
		}
		if o.Chunk.IsZero() && c.Chunk.Bytes == 512<<10 || o.Chunk.IsAbsolute() && o.Chunk.Bytes == c.Chunk.Bytes {
			// the same, as written
		} else {
			r.Chunk = c.Chunk
		}
		if o.Layout != c.Layout && !(o.Layout == "" && defaultMDLayout[c.Level] == c.Layout) {
			r.Layout = c.Layout
		}
		if o.ArrayName != c.ArrayName && !(o.ArrayName == "" && strings.HasSuffix(c.ArrayName, ":"+o.Name)) {
			r.ArrayName = c.ArrayName
		}
		merged[oi] = r
	}
	for i, o := range m.old.RAID {
		if r, ok := merged[i]; ok {
			out = append(out, r)
		} else if m.restricted {
			out = append(out, o)
		}
	}
	m.old.RAID = append(out, added...)
}

var defaultMDLayout = map[string]string{"raid5": "left-symmetric", "raid6": "left-symmetric", "raid10": "n2"}

func sameList(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func (m *merger) luks() {
	used := map[int]bool{}
	merged := map[int]profile.LUKS{}
	var added []profile.LUKS
	for _, c := range m.cp.LUKS {
		c.Device = m.ref(c.Device)
		oi := -1
		for i, o := range m.old.LUKS {
			if !used[i] && o.UUID != "" && strings.EqualFold(o.UUID, c.UUID) {
				oi = i
			}
		}
		for i, o := range m.old.LUKS {
			if oi < 0 && !used[i] && o.UUID == "" && (o.Name == c.Name || o.Device == c.Device) {
				oi = i
			}
		}
		if oi < 0 {
			name := m.newName(c.Name)
			m.refs[c.Name], m.paths["luks."+c.Name] = name, "luks."+name
			c.Name = name
			added = append(added, c)
			continue
		}
		used[oi] = true
		o := m.old.LUKS[oi]
		m.refs[c.Name], m.paths["luks."+c.Name] = o.Name, "luks."+o.Name
		x := c
		x.Name, x.Key, x.Keep = o.Name, o.Key, o.Keep
		// No captured crypttab settings: none to read, or the defaults
		// (no key file, "luks"), which the profile may spell out.
		if c.Crypttab == nil && (len(m.cur.Facts.Crypttab) == 0 || m.restricted || defaultCrypttab(o.Crypttab)) {
			x.Crypttab = o.Crypttab
		}
		if or(fmt.Sprint(o.Version), "0") == "0" && c.Version == 2 {
			x.Version = o.Version
		}
		if o.Cipher == "" && c.Cipher == "aes-xts-plain64" {
			x.Cipher = ""
		}
		if o.KeySize == 0 && (c.KeySize == 512 && strings.Contains(c.Cipher, "xts") || c.KeySize == 256 && !strings.Contains(c.Cipher, "xts")) {
			x.KeySize = 0
		}
		if o.Hash == "" && c.Hash == "sha256" {
			x.Hash = ""
		}
		if o.SectorSize == 0 && c.SectorSize == 512 {
			x.SectorSize = 0
		}
		// A PBKDF left to cryptsetup's benchmark stays so when the type is
		// the same: the captured cost is what the benchmark chose then.
		if k := o.PBKDF; k == nil || k.Iterations == 0 && k.Memory.IsZero() && k.Parallel == 0 {
			ct := ""
			if c.PBKDF != nil {
				ct = c.PBKDF.Type
			}
			if k == nil && (ct == "" || ct == map[int]string{1: "pbkdf2", 2: "argon2id", 0: "argon2id"}[c.Version]) || k != nil && (k.Type == "" || k.Type == ct) {
				x.PBKDF = k
			}
		}
		// LUKS1 only knows pbkdf2, so a capture leaves the type out; a
		// profile that names it keeps it.
		if k := o.PBKDF; k != nil && k.Type == "pbkdf2" && c.Version == 1 && x.PBKDF != nil && x.PBKDF != k && x.PBKDF.Type == "" {
			p := *x.PBKDF
			p.Type = k.Type
			x.PBKDF = &p
		}
		merged[oi] = x
	}
	var out []profile.LUKS
	for i, o := range m.old.LUKS {
		if x, ok := merged[i]; ok {
			out = append(out, x)
		} else if m.restricted {
			out = append(out, o)
		}
	}
	m.old.LUKS = append(out, added...)
}

func (m *merger) lvm() {
	used := map[int]bool{}
	merged := map[int]profile.VolumeGroup{}
	var added []profile.VolumeGroup
	for ci, c := range m.cp.VolumeGroups {
		c.PVs = m.refList(c.PVs)
		if c.PVUUIDs != nil {
			u := map[string]string{}
			for k, v := range c.PVUUIDs {
				u[m.ref(k)] = v
			}
			c.PVUUIDs = u
		}
		oi := -1
		for i, o := range m.old.VolumeGroups {
			if !used[i] && o.UUID != "" && o.UUID == c.UUID {
				oi = i
			}
		}
		for i, o := range m.old.VolumeGroups {
			if oi < 0 && !used[i] && o.UUID == "" && o.Name == c.Name {
				oi = i
			}
		}
		for i, o := range m.old.VolumeGroups {
			if oi < 0 && !used[i] && o.UUID == "" && sameSetOf(o.PVs, c.PVs) {
				oi = i // the same physical volumes under another name
			}
		}
		if oi < 0 {
			name := m.newName(c.Name)
			m.mapVG(c, name, nil)
			c.Name = name
			added = append(added, c)
			continue
		}
		used[oi] = true
		o := m.old.VolumeGroups[oi]
		g := o
		g.PVs, g.UUID, g.PVUUIDs = c.PVs, c.UUID, c.PVUUIDs
		if !(o.ExtentSize.IsZero() && c.ExtentSize.Bytes == 4<<20 || o.ExtentSize.IsAbsolute() && o.ExtentSize.Bytes == c.ExtentSize.Bytes) {
			g.ExtentSize = c.ExtentSize
		}
		g.LVs = m.mergeLVs(o, c, m.cp.VolumeGroups[ci].Name)
		merged[oi] = g
	}
	var out []profile.VolumeGroup
	for i, o := range m.old.VolumeGroups {
		if g, ok := merged[i]; ok {
			out = append(out, g)
		} else if m.restricted {
			out = append(out, o)
		}
	}
	m.old.VolumeGroups = append(out, added...)
}

func (m *merger) mapVG(c profile.VolumeGroup, name string, lvNames map[string]string) {
	m.refs[c.Name] = name
	m.paths["volume_groups."+c.Name] = "volume_groups." + name
	for _, lv := range c.LVs {
		n := lv.Name
		if x, ok := lvNames[lv.Name]; ok {
			n = x
		}
		m.refs[c.Name+"/"+lv.Name] = name + "/" + n
		m.paths["volume_groups."+c.Name+".lvs."+lv.Name] = "volume_groups." + name + ".lvs." + n
	}
	if m.measured == nil {
		m.measured = map[string]int64{}
	}
	m.measured[name] = m.cur.Measured[c.Name]
	for _, lv := range c.LVs {
		m.measured[m.refs[c.Name+"/"+lv.Name]] = m.cur.Measured[c.Name+"/"+lv.Name]
	}
}

func (m *merger) mergeLVs(o, c profile.VolumeGroup, capName string) []profile.LogicalVolume {
	used := map[int]bool{}
	lvNames := map[string]string{}
	merged := map[int]profile.LogicalVolume{}
	var added []profile.LogicalVolume
	taken := map[string]bool{}
	for _, lv := range o.LVs {
		taken[lv.Name] = true
	}
	pools := map[string]string{}
	var order []int // old index per captured LV, -1 for new
	for _, cl := range c.LVs {
		oi := -1
		for i, ol := range o.LVs {
			if !used[i] && ol.UUID != "" && ol.UUID == cl.UUID {
				oi = i
			}
		}
		for i, ol := range o.LVs {
			if oi < 0 && !used[i] && ol.UUID == "" && ol.Name == cl.Name {
				oi = i
			}
		}
		order = append(order, oi)
		if oi >= 0 {
			used[oi] = true
			lvNames[cl.Name] = o.LVs[oi].Name
		} else {
			n := cl.Name
			for k := 2; taken[n]; k++ {
				n = fmt.Sprintf("%s-%d", cl.Name, k)
			}
			taken[n] = true
			lvNames[cl.Name] = n
		}
		if cl.Type == "thin-pool" {
			pools[cl.Name] = lvNames[cl.Name]
		}
	}
	m.mapVG(profile.VolumeGroup{Name: capName, LVs: c.LVs}, o.Name, lvNames)
	for k, cl := range c.LVs {
		x := cl
		x.Name = lvNames[cl.Name]
		if cl.Pool != "" {
			x.Pool = pools[cl.Pool]
		}
		oi := order[k]
		if oi < 0 {
			added = append(added, x)
			continue
		}
		ol := o.LVs[oi]
		x.Size, x.MinSize, x.MaxSize, x.Keep = ol.Size, ol.MinSize, ol.MaxSize, ol.Keep
		if ol.Type == "" && cl.Type == "" || ol.Type == cl.Type {
			x.Type = ol.Type
		}
		if ol.Mirrors == 0 && cl.Mirrors == 1 {
			x.Mirrors = 0
		}
		merged[oi] = x
	}
	var out []profile.LogicalVolume
	for i := range o.LVs {
		if x, ok := merged[i]; ok {
			out = append(out, x)
		}
	}
	out = append(out, added...)
	// Size intents, fitted in the group as restore would (thin volumes take
	// nothing from it).
	var reqs []profile.Request
	var meas []int64
	var idx []int
	for i, lv := range out {
		ms := m.measured[o.Name+"/"+lv.Name]
		if lv.Type == "thin" {
			if !lv.Size.IsAbsolute() || lv.Size.Bytes != ms {
				out[i].Size, out[i].MinSize, out[i].MaxSize = profile.Bytes(ms), profile.Size{}, profile.Size{}
			}
			continue
		}
		reqs = append(reqs, profile.Request{Name: lv.Name, Size: lv.Size, Min: lv.MinSize, Max: lv.MaxSize})
		meas = append(meas, ms)
		idx = append(idx, i)
	}
	extent := c.ExtentSize.Bytes
	if extent == 0 {
		extent = 4 << 20
	}
	keep := holdIntents(reqs, meas, m.measured[o.Name], extent, 2*extent)
	for k, i := range idx {
		if !keep[k] {
			out[i].Size, out[i].MinSize, out[i].MaxSize = profile.Bytes(meas[k]), profile.Size{}, profile.Size{}
		}
	}
	return out
}

// ---- filesystems ----

func (m *merger) filesystems() {
	used := map[int]bool{}
	merged := map[int]profile.Filesystem{}
	mergedFrom := map[int]int{} // old index → captured index
	var added []profile.Filesystem
	var addedFrom []int
	for ci, c := range m.cp.Filesystems {
		c.Device = m.ref(c.Device)
		if c.Btrfs != nil {
			b := *c.Btrfs
			b.Devices = m.refList(b.Devices)
			c.Btrfs = &b
		}
		oi := -1
		for i, o := range m.old.Filesystems {
			if oi < 0 && !used[i] && o.UUID != "" && strings.EqualFold(o.UUID, c.UUID) {
				oi = i
			}
		}
		for i, o := range m.old.Filesystems {
			if oi < 0 && !used[i] && o.Device == c.Device {
				oi = i
			}
		}
		if oi < 0 {
			added, addedFrom = append(added, c), append(addedFrom, ci)
			continue
		}
		used[oi] = true
		merged[oi], mergedFrom[oi] = m.mergeFS(m.old.Filesystems[oi], c, m.cp.Filesystems[ci].Device), ci
	}
	var out []profile.Filesystem
	for i, o := range m.old.Filesystems {
		if f, ok := merged[i]; ok {
			m.paths[fmt.Sprintf("filesystems[%d]", mergedFrom[i])] = fmt.Sprintf("filesystems[%d]", len(out))
			out = append(out, f)
		} else if m.restricted && !m.captured(o.Device) {
			out = append(out, o)
		}
	}
	for k, f := range added {
		m.paths[fmt.Sprintf("filesystems[%d]", addedFrom[k])] = fmt.Sprintf("filesystems[%d]", len(out))
		out = append(out, f)
	}
	m.old.Filesystems = out
}

// captured reports whether a merged device reference belongs to the capture.
func (m *merger) captured(ref string) bool {
	for _, v := range m.refs {
		if v == ref {
			return true
		}
	}
	return false
}

// devPath is the device path a captured filesystem was read from.
func (m *merger) devPath(capRef string) string {
	for p, r := range m.cur.Refs {
		if r == capRef {
			return p
		}
	}
	return ""
}

func (m *merger) mergeFS(o, c profile.Filesystem, capRef string) profile.Filesystem {
	f := c
	f.Keep = o.Keep
	if c.UUID == "" {
		f.UUID = o.UUID
	}
	if c.Label == "" && c.Ext == nil && c.XFS == nil && c.Btrfs == nil && c.VFAT == nil && c.Type != "swap" {
		f.Label = o.Label // the device could not be read
	}
	// Mounts: fstab is the truth, unless it was not part of this capture.
	if c.Mount == nil && m.restricted {
		f.Mount = o.Mount
	} else if sameMount(c.Type, o.Mount, c.Mount) {
		f.Mount = o.Mount
	}
	switch {
	case c.Ext != nil && o.Ext != nil:
		f.Ext = m.mergeExt(o, c, capRef)
	case c.Ext == nil && o.Ext != nil && o.Type == c.Type:
		f.Ext = o.Ext
	}
	switch {
	case c.XFS != nil && o.XFS != nil:
		x := *c.XFS
		ox := o.XFS
		if diff.SameFeatures(diff.XFSDefaults, ox.Features, x.Features) {
			x.Features = ox.Features
		}
		if ox.LogSize.IsAbsolute() && ox.LogSize.Bytes == x.LogSize.Bytes {
			x.LogSize = ox.LogSize
		}
		f.XFS = &x
	case c.XFS == nil && o.XFS != nil && o.Type == c.Type:
		f.XFS = o.XFS
	}
	if c.VFAT == nil && o.VFAT != nil && o.Type == c.Type {
		f.VFAT = o.VFAT
	}
	switch {
	case c.Btrfs != nil && o.Btrfs != nil:
		f.Btrfs = m.mergeBtrfs(o.Btrfs, c.Btrfs)
	case c.Btrfs == nil && o.Btrfs != nil && o.Type == c.Type:
		f.Btrfs = o.Btrfs
	}
	if c.Type == "swap" {
		s := profile.SwapOptions{}
		if c.Swap != nil {
			s = *c.Swap
		}
		if o.Swap != nil {
			if s.Options == "" && m.restricted || swapOptions(s.Options) == swapOptions(o.Swap.Options) {
				s.Options = o.Swap.Options
			}
			if !s.Resume && (m.storageOnly || m.cur.Facts.Cmdline == "") {
				s.Resume = o.Swap.Resume
			}
		}
		f.Swap = nil
		if s != (profile.SwapOptions{}) {
			f.Swap = &s
		}
	}
	return f
}

func (m *merger) mergeExt(o, c profile.Filesystem, capRef string) *profile.ExtOptions {
	x := *c.Ext
	oe := o.Ext
	s := m.cur.Facts.Ext[m.devPath(capRef)]
	if diff.SameFeatures(diff.ExtDefaults[c.Type], oe.Features, x.Features) {
		x.Features = oe.Features
	}
	if sameSet(mountDefaultsSet(oe.MountDefaults), mountDefaultsSet(x.MountDefaults)) {
		x.MountDefaults = oe.MountDefaults
	}
	if s != nil {
		switch {
		case oe.ReservedPercent != nil && int64(float64(s.BlockCount)**oe.ReservedPercent/100) == s.ReservedBlocks:
			x.ReservedPercent, x.ReservedBlocks = oe.ReservedPercent, 0
		case oe.ReservedBlocks != 0 && oe.ReservedBlocks == s.ReservedBlocks:
			x.ReservedBlocks = oe.ReservedBlocks
		}
		if oe.Inodes != 0 && (oe.Inodes == s.InodeCount || inodesFrom(oe.Inodes, s)) {
			x.Inodes, x.InodeRatio = oe.Inodes, 0
		}
	}
	if oe.Errors == "" && x.Errors == "continue" {
		x.Errors = ""
	}
	return &x
}

func (m *merger) mergeBtrfs(o, c *profile.BtrfsOptions) *profile.BtrfsOptions {
	x := *c
	if diff.SameFeatures(diff.BtrfsDefaults, o.Features, c.Features) {
		x.Features = o.Features
	}
	// Subvolumes in the old order, then new ones; mounts from the capture
	// unless it did not read fstab.
	var subs []profile.Subvolume
	byPath := map[string]profile.Subvolume{}
	for _, s := range c.Subvolumes {
		byPath[s.Path] = s
	}
	done := map[string]bool{}
	for _, os := range o.Subvolumes {
		cs, ok := byPath[os.Path]
		if !ok {
			continue
		}
		if cs.Mount == nil && m.restricted || sameMount("btrfs", os.Mount, cs.Mount) {
			cs.Mount = os.Mount
		}
		subs = append(subs, cs)
		done[os.Path] = true
	}
	for _, cs := range c.Subvolumes {
		if !done[cs.Path] {
			subs = append(subs, cs)
		}
	}
	x.Subvolumes = subs
	return &x
}

// ---- host, bootloader, system, repos, datasets ----

func (m *merger) rest() {
	o, c := m.old, m.cp
	if o.Host.Name == "" {
		o.Host = c.Host
	}
	if m.storageOnly {
		return
	}
	if cb := c.Bootloader; cb != nil {
		b := *cb
		b.Disks = m.refList(cb.Disks)
		if ob := o.Bootloader; ob != nil {
			if sameWords(ob.Cmdline, b.Cmdline, " ") {
				b.Cmdline = ob.Cmdline
			}
			if ob.ID != "" && b.ID == "" || ob.ID == "" && b.ID == "debian" {
				b.ID = ob.ID
			}
			if b.Timeout == nil {
				b.Timeout = ob.Timeout
			}
			if len(b.Disks) == len(o.Disks) && len(ob.Disks) == 0 && b.Type == "grub-bios" {
				b.Disks = nil // all disks, as before
			}
			if sameSetOf(ob.Disks, b.Disks) || len(cb.Disks) == 0 {
				b.Disks = ob.Disks // none captured: the boot code could not be read
			}
			if len(b.EFIEntries) == 0 && m.cur.Facts.EFIBoot == nil {
				b.EFIEntries = ob.EFIEntries
			}
		}
		o.Bootloader = &b
	}
	if cs := c.System; cs != nil {
		if o.System == nil {
			o.System = cs
		} else {
			s := o.System
			if cs.Distribution != "" {
				s.Distribution = cs.Distribution
			}
			if cs.PackageManager != "" && s.PackageManager != "" {
				s.PackageManager = cs.PackageManager
			}
			if m.cur.Facts.PackagesRead {
				s.Packages = mergePackages(s.Packages, cs.Packages)
			}
		}
	}
	paths := map[string]bool{}
	names := map[string]bool{}
	for _, r := range o.Repos {
		paths[r.Path] = true
		names[r.Name] = true
	}
	for i, r := range c.Repos {
		if paths[r.Path] {
			continue
		}
		name := r.Name
		for k := 2; names[name]; k++ {
			name = fmt.Sprintf("%s-%d", r.Name, k)
		}
		m.paths["repos."+c.Repos[i].Name] = "repos." + name
		r.Name = name
		names[name] = true
		o.Repos = append(o.Repos, r)
	}
}

func sameSetOf(a, b []string) bool {
	x, y := map[string]bool{}, map[string]bool{}
	for _, s := range a {
		x[s] = true
	}
	for _, s := range b {
		y[s] = true
	}
	return sameSet(x, y)
}

// mergePackages keeps the user's order for what is still installed and
// appends what is new, sorted.
func mergePackages(old, cur []string) []string {
	have := map[string]bool{}
	for _, p := range cur {
		have[p] = true
	}
	var out []string
	seen := map[string]bool{}
	for _, p := range old {
		if have[p] && !seen[p] {
			out = append(out, p)
			seen[p] = true
		}
	}
	var add []string
	for _, p := range cur {
		if !seen[p] {
			add = append(add, p)
			seen[p] = true
		}
	}
	sort.Strings(add)
	return append(out, add...)
}

var pathHead = regexp.MustCompile(`^(disks\.[^.\[]+\.partitions\[\d+\]|disks\.[^.\[]+|raid\.[^.]+|luks\.[^.]+|volume_groups\.[^.]+\.lvs\.[^.]+|volume_groups\.[^.]+|filesystems\[\d+\]|repos\.[^.]+)`)

// notes translates the capture's notes to the merged profile's paths and
// drops those about what the user's profile decides.
func (m *merger) notes() []Note {
	var out []Note
	for _, n := range m.cur.Notes {
		p := n.Path
		if h := pathHead.FindString(p); h != "" {
			if x, ok := m.paths[h]; ok {
				p = x + p[len(h):]
			}
		}
		switch {
		case p == "system.image" && m.old.System != nil && m.old.System.Image.SHA256 != ZeroSHA256:
			continue
		case strings.HasSuffix(p, ".key") && strings.HasPrefix(p, "luks."):
			if l := findLUKS(m.old, strings.TrimSuffix(strings.TrimPrefix(p, "luks."), ".key")); l != nil && !l.Key.Prompt && l.Key != (profile.Key{}) {
				continue
			}
		case strings.HasPrefix(p, "host."):
			continue
		}
		out = append(out, Note{Path: p, Msg: n.Msg})
	}
	return append(out, m.extra...)
}

func findLUKS(p *profile.Profile, name string) *profile.LUKS {
	for i := range p.LUKS {
		if p.LUKS[i].Name == name {
			return &p.LUKS[i]
		}
	}
	return nil
}

// inodesFrom says whether mke2fs -N n makes the inode count of s: it
// spreads n over the groups and rounds each group's share up to whole
// inode table blocks and a multiple of 8.
func inodesFrom(n int64, s *parse.ExtSuper) bool {
	if s.InodesPerGroup <= 0 || s.InodeSize <= 0 || s.BlockSize < s.InodeSize {
		return false
	}
	groups := s.InodeCount / s.InodesPerGroup
	if groups <= 0 {
		return false
	}
	perBlock := s.BlockSize / s.InodeSize
	ipg := (n + groups - 1) / groups
	ipg = (ipg + perBlock - 1) / perBlock * perBlock &^ 7
	return ipg == s.InodesPerGroup
}

// defaultCrypttab: an entry that says what capture leaves out, the key
// asked for at boot and the options "luks".
func defaultCrypttab(c *profile.Crypttab) bool {
	return c != nil && (c.KeyFile == "" || c.KeyFile == "none" || c.KeyFile == "-") && (c.Options == "" || c.Options == "luks")
}
