package profile

import (
	"fmt"
	"net/url"
	"path"
	"reflect"
	"strconv"
	"strings"
)

const (
	mib = int64(1) << 20
	// Overhead of a partition table: 1 MiB before the first partition, and on
	// GPT 1 MiB kept free at the end for the backup header (after alignment).
	tableHead = mib
)

// TableTail is the space a table keeps at the end of the disk.
func TableTail(table string) int64 {
	if table == "gpt" {
		return mib
	}
	return 0
}

type validator struct {
	p    *Profile
	errs Errors
}

func (v *validator) errorf(path, format string, a ...any) {
	v.errs = append(v.errs, &Error{File: v.p.file, Pos: v.p.pos.of(path), Path: path, Msg: fmt.Sprintf(format, a...)})
}

// validate checks the document as a whole; decoding has already checked types.
func (p *Profile) validate() Errors {
	if p.pos == nil {
		p.pos = positions{}
	}
	v := &validator{p: p}
	v.enums(reflect.ValueOf(p).Elem(), "")
	if p.Version != Version {
		v.errorf("version", "version must be %d (this strata reads profile format %d), got %d", Version, Version, p.Version)
	}
	v.host()
	v.names()
	if len(p.Disks) == 0 {
		v.errorf("disks", "a profile needs at least one disk")
	}
	for i := range p.Disks {
		v.disk(&p.Disks[i])
	}
	devs := p.Devices()
	v.references(devs)
	for i := range p.RAID {
		v.raid(&p.RAID[i])
	}
	for i := range p.LUKS {
		v.luks(&p.LUKS[i])
	}
	for i := range p.VolumeGroups {
		v.vg(&p.VolumeGroups[i])
	}
	v.filesystems()
	v.bootloader(devs)
	v.system()
	v.repos()
	v.datasets()
	return v.errs
}

// Validate checks a profile built in code (Load already validates).
func (p *Profile) Validate() error {
	if errs := p.validate(); len(errs) > 0 {
		return errs
	}
	return nil
}

// enums checks every field that has an enum tag, generically.
func (v *validator) enums(rv reflect.Value, path string) {
	switch rv.Kind() {
	case reflect.Pointer:
		if !rv.IsNil() {
			v.enums(rv.Elem(), path)
		}
	case reflect.Slice:
		for i := range rv.Len() {
			e := rv.Index(i)
			if e.Kind() == reflect.Struct && e.FieldByName("Name").IsValid() && e.Type().Field(0).Tag.Get("yaml") == "-" {
				v.enums(e, join(path, e.FieldByName("Name").String()))
			} else {
				v.enums(e, fmt.Sprintf("%s[%d]", path, i))
			}
		}
	case reflect.Struct:
		for _, fi := range fieldsOf(rv.Type()) {
			fv := rv.Field(fi.index)
			fp := join(path, fi.key)
			if fi.enum != nil && !fv.IsZero() {
				s := fmt.Sprint(fv.Interface())
				ok := false
				for _, e := range fi.enum {
					ok = ok || e == s
				}
				if !ok {
					v.errorf(fp, "%q is not one of: %s", s, strings.Join(fi.enum, ", "))
				}
			}
			v.enums(fv, fp)
		}
	}
}

func (v *validator) host() {
	h := v.p.Host
	switch {
	case h.Name == "":
		v.errorf("host.name", "missing host name")
	case len(h.Name) > 253 || !allLabels(h.Name):
		v.errorf("host.name", "invalid host name %q: lower-case letters, digits and '-', dot-separated labels of at most 63 characters", h.Name)
	}
	if h.Match != nil {
		for i, m := range h.Match.MAC {
			if !macRE.MatchString(m) {
				v.errorf(fmt.Sprintf("host.match.mac[%d]", i), "invalid MAC address %q (want aa:bb:cc:dd:ee:ff)", m)
			}
		}
		if h.Match.DMI != nil && *h.Match.DMI == (DMIMatch{}) {
			v.errorf("host.match.dmi", "empty dmi rule: give vendor, product or serial")
		}
	}
}

func allLabels(name string) bool {
	for _, l := range strings.Split(name, ".") {
		if !hostRE.MatchString(l) {
			return false
		}
	}
	return true
}

// names checks that disks, VGs, arrays and LUKS mappings do not share a name:
// references like "main/root" or "cryptroot" must be unambiguous.
func (v *validator) names() {
	owner := map[string]string{}
	claim := func(name, path string) {
		if prev, ok := owner[name]; ok {
			v.errorf(path, "name %q is already used by %s: disks, volume groups, RAID arrays and LUKS volumes need distinct names", name, prev)
			return
		}
		owner[name] = path
	}
	for _, d := range v.p.Disks {
		claim(d.Name, "disks."+d.Name)
	}
	for _, vg := range v.p.VolumeGroups {
		claim(vg.Name, "volume_groups."+vg.Name)
	}
	for _, r := range v.p.RAID {
		claim(r.Name, "raid."+r.Name)
	}
	for _, l := range v.p.LUKS {
		claim(l.Name, "luks."+l.Name)
	}
}

func (v *validator) disk(d *Disk) {
	dp := "disks." + d.Name
	sel := d.Select
	for _, f := range []struct {
		s    Size
		name string
	}{{sel.MinSize, "min_size"}, {sel.MaxSize, "max_size"}} {
		if !f.s.IsZero() && !f.s.IsAbsolute() {
			v.errorf(dp+".select."+f.name, "must be an absolute size such as 500GiB, not %s", f.s)
		}
	}
	if sel.MinSize.IsAbsolute() && sel.MaxSize.IsAbsolute() && sel.MinSize.Bytes > sel.MaxSize.Bytes {
		v.errorf(dp+".select", "min_size %s is larger than max_size %s", sel.MinSize, sel.MaxSize)
	}
	switch d.Table {
	case "":
		v.errorf(dp+".table", "missing table: gpt, msdos or none")
		return
	case "none":
		if len(d.Partitions) > 0 {
			v.errorf(dp+".partitions", "a disk with table: none has no partitions; it is used whole as %q", d.Name)
		}
	}
	if d.GUID != "" && (d.Table != "gpt" || !guidRE.MatchString(d.GUID)) {
		v.errorf(dp+".guid", "guid is a GPT disk GUID (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx) and needs table: gpt")
	}
	if d.DiskID != "" && (d.Table != "msdos" || !diskIDRE.MatchString(d.DiskID)) {
		v.errorf(dp+".disk_id", "disk_id is an msdos disk identifier (0x1234abcd) and needs table: msdos")
	}
	seen := map[string]int{}
	primaries, logicals, boots := 0, 0, 0
	var reqs []Request
	for i := range d.Partitions {
		pt := &d.Partitions[i]
		pp := fmt.Sprintf("%s.partitions[%d]", dp, i)
		switch {
		case pt.Name == "":
			v.errorf(pp+".name", "missing partition name")
		case !nameRE.MatchString(pt.Name):
			v.errorf(pp+".name", "invalid name %q: use letters, digits, '.', '_' and '-'", pt.Name)
		}
		if j, dup := seen[pt.Name]; dup && pt.Name != "" {
			v.errorf(pp+".name", "partition name %q is also used by partitions[%d]", pt.Name, j)
		}
		seen[pt.Name] = i
		v.sizeWithBounds(pp, pt.Size, pt.MinSize, pt.MaxSize, false)
		reqs = append(reqs, Request{Name: fmt.Sprintf("%s/%s (%s)", d.Name, pt.Name, pt.Size), Size: pt.Size, Min: pt.MinSize, Max: pt.MaxSize})
		if d.Table == "gpt" {
			if _, err := GPTType(pt.Type); err != nil {
				v.errorf(pp+".type", "%v", err)
			}
			if pt.UUID != "" && !guidRE.MatchString(pt.UUID) {
				v.errorf(pp+".uuid", "invalid PARTUUID %q (want xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)", pt.UUID)
			}
			if _, err := AttributeBits(pt.Attributes); err != nil {
				v.errorf(pp+".attributes", "%v", err)
			}
			if len(pt.Label) > 36 {
				v.errorf(pp+".label", "a GPT partition name holds at most 36 characters, %q has %d", pt.Label, len(pt.Label))
			}
			if pt.Logical || pt.Boot {
				v.errorf(pp, "logical and boot are msdos settings; on GPT use attributes: [legacy-bios-bootable]")
			}
		}
		if d.Table == "msdos" {
			if _, err := MBRType(pt.Type); err != nil {
				v.errorf(pp+".type", "%v", err)
			}
			if pt.UUID != "" || pt.Label != "" || len(pt.Attributes) > 0 {
				v.errorf(pp, "uuid, label and attributes are GPT settings; an msdos table has none of them")
			}
			if pt.Logical {
				logicals++
			} else {
				primaries++
				if logicals > 0 {
					v.errorf(pp+".logical", "primary partition after a logical one: list the logical partitions last")
				}
			}
			if pt.Boot {
				boots++
				if boots == 2 {
					v.errorf(pp+".boot", "only one partition can carry the boot flag")
				}
			}
		}
	}
	if d.Table == "msdos" {
		limit := 4
		if logicals > 0 {
			limit = 3 // one slot goes to the extended partition
		}
		if primaries > limit {
			v.errorf(dp+".partitions", "an msdos table holds %d primary partitions here, the profile has %d: mark some logical: true", limit, primaries)
		}
	}
	if d.Table == "gpt" && len(d.Partitions) > 128 {
		v.errorf(dp+".partitions", "a GPT holds at most 128 partitions")
	}
	v.fits(d, reqs)
}

// fits checks that the partitions fit the smallest disk the selector allows.
func (v *validator) fits(d *Disk, reqs []Request) {
	dp := "disks." + d.Name
	if len(reqs) == 0 {
		return
	}
	pct := 0.0
	for _, r := range reqs {
		if r.Size.Percent > 0 && !r.Size.Free {
			pct += r.Size.Percent
		}
		if r.Size.Free {
			return // already reported by sizeWithBounds
		}
	}
	if pct > 100 {
		v.errorf(dp+".partitions", "percentages add up to %g%%, more than the whole disk", pct)
		return
	}
	need, err := MinimumFit(reqs, mib)
	if err != nil {
		v.errorf(dp+".partitions", "%v", err)
		return
	}
	need += DiskOverhead(d)
	min := d.Select.MinSize
	if min.IsAbsolute() && min.Bytes < need {
		fitErr := &FitError{Available: min.Bytes, Needed: need}
		for _, r := range reqs {
			if r.Size.IsAbsolute() || r.Min.IsAbsolute() {
				fitErr.Entries = append(fitErr.Entries, r.Name)
			}
		}
		v.errorf(dp+".select.min_size", "the partitions do not fit the smallest disk this selector allows: %v", fitErr)
	}
}

// DiskOverhead is the space a table needs outside the partitions: the head,
// the GPT backup at the tail, and one MiB per msdos logical partition (EBR).
func DiskOverhead(d *Disk) int64 {
	n := tableHead + TableTail(d.Table)
	for _, pt := range d.Partitions {
		if pt.Logical {
			n += mib
		}
	}
	return n
}

// sizeWithBounds checks a size and its min/max; free says whether %free is allowed.
func (v *validator) sizeWithBounds(pp string, s, lo, hi Size, free bool) {
	switch {
	case s.IsZero():
		v.errorf(pp+".size", "missing size (e.g. 20GiB, 25%%, rest)")
	case s.Free && !free:
		v.errorf(pp+".size", "%%free is for logical volumes; use a percentage of the disk (25%%) or rest")
	}
	computed := s.Percent > 0 || s.Rest
	for _, b := range []struct {
		s    Size
		name string
	}{{lo, "min_size"}, {hi, "max_size"}} {
		switch {
		case b.s.IsZero():
		case !b.s.IsAbsolute():
			v.errorf(pp+"."+b.name, "must be an absolute size, not %s", b.s)
		case !computed:
			v.errorf(pp+"."+b.name, "only a percentage or rest size takes a %s; %s is already fixed", b.name, s)
		}
	}
	if lo.IsAbsolute() && hi.IsAbsolute() && lo.Bytes > hi.Bytes {
		v.errorf(pp+".min_size", "min_size %s is larger than max_size %s", lo, hi)
	}
}

// references checks every device reference: it exists, is used once, and the
// stack has no cycles.
func (v *validator) references(devs map[string]*Device) {
	first := map[string]Use{}
	deps := map[string][]string{} // consumer entry -> producer entries
	for _, u := range v.p.Uses() {
		if u.Ref == "" {
			v.errorf(u.Path, "missing device")
			continue
		}
		d, ok := devs[u.Ref]
		if !ok {
			v.errorf(u.Path, "%s", unknownDevice(u.Ref, v.p, devs))
			continue
		}
		if prev, dup := first[u.Ref]; dup {
			v.errorf(u.Path, "device %s is already used by %s (%s): a device holds one thing", u.Ref, prev.By, prev.Path)
			continue
		}
		first[u.Ref] = u
		producer := d.Path
		if d.Kind == KindPartition {
			producer = "disks." + d.Disk.Name
		} else if d.Kind == KindLV {
			producer = "volume_groups." + d.VG.Name
		}
		deps[u.By] = append(deps[u.By], producer)
	}
	// A cycle (an array built on a LUKS volume that sits on the array) can never be created.
	state := map[string]int{}
	var visit func(n string, trail []string) bool
	visit = func(n string, trail []string) bool {
		switch state[n] {
		case 1:
			v.errorf(n, "devices depend on each other in a circle: %s", strings.Join(append(trail, n), " -> "))
			return true
		case 2:
			return false
		}
		state[n] = 1
		for _, m := range deps[n] {
			if visit(m, append(trail, n)) {
				return true
			}
		}
		state[n] = 2
		return false
	}
	for _, n := range sortedKeys(deps) {
		if visit(n, nil) {
			break
		}
	}
}

func unknownDevice(ref string, p *Profile, devs map[string]*Device) string {
	msg := fmt.Sprintf("no device %q: nothing in the profile creates it", ref)
	if disk, part, ok := strings.Cut(ref, "/"); ok {
		for _, vg := range p.VolumeGroups {
			if vg.Name == disk {
				for _, lv := range vg.LVs {
					if lv.Name == part && lv.Type == "thin-pool" {
						return fmt.Sprintf("%s is a thin pool: it holds thin volumes, not a filesystem", ref)
					}
				}
				return msg + fmt.Sprintf(" (volume group %s has no LV %q)", disk, part)
			}
		}
		for _, d := range p.Disks {
			if d.Name == disk {
				return msg + fmt.Sprintf(" (disk %s has no partition %q)", disk, part)
			}
		}
	}
	known := sortedKeys(devs)
	if len(known) > 12 {
		known = append(known[:12], "...")
	}
	return msg + " (devices: " + strings.Join(known, ", ") + ")"
}

var raidMinDevices = map[string]int{"raid0": 2, "raid1": 2, "raid4": 3, "raid5": 3, "raid6": 4, "raid10": 2}

func (v *validator) raid(r *RAID) {
	rp := "raid." + r.Name
	if r.Level == "" {
		v.errorf(rp+".level", "missing level (raid0, raid1, raid4, raid5, raid6, raid10)")
	} else if n, ok := raidMinDevices[r.Level]; ok && len(r.Devices) < n {
		v.errorf(rp+".devices", "%s needs at least %d devices, the profile gives %d", r.Level, n, len(r.Devices))
	}
	if !r.Chunk.IsZero() {
		switch {
		case r.Level == "raid1":
			v.errorf(rp+".chunk", "raid1 has no chunk size")
		case !r.Chunk.IsAbsolute() || r.Chunk.Bytes < 4096 || r.Chunk.Bytes&(r.Chunk.Bytes-1) != 0:
			v.errorf(rp+".chunk", "chunk must be a power of two of at least 4KiB, got %s", r.Chunk)
		}
	}
	if r.UUID != "" && !mdUUIDRE.MatchString(r.UUID) && !guidRE.MatchString(r.UUID) {
		v.errorf(rp+".uuid", "invalid array UUID %q (want mdadm's aaaaaaaa:bbbbbbbb:cccccccc:dddddddd)", r.UUID)
	}
}

func (v *validator) luks(l *LUKS) {
	lp := "luks." + l.Name
	ver := l.Version
	if ver == 0 {
		ver = 2
	}
	if ver == 1 {
		if l.Label != "" || l.Subsystem != "" || l.SectorSize != 0 {
			v.errorf(lp, "label, subsystem and sector_size need LUKS2 (version: 2)")
		}
		if l.PBKDF != nil && l.PBKDF.Type != "" && l.PBKDF.Type != "pbkdf2" {
			v.errorf(lp+".pbkdf.type", "LUKS1 only knows pbkdf2, not %s", l.PBKDF.Type)
		}
	}
	if l.KeySize != 0 && (l.KeySize%8 != 0 || l.KeySize < 128 || l.KeySize > 1024) {
		v.errorf(lp+".key_size", "key size is in bits, a multiple of 8 from 128 to 1024 (usually 256 or 512), got %d", l.KeySize)
	}
	if s := l.SectorSize; s != 0 && s != 512 && s != 1024 && s != 2048 && s != 4096 {
		v.errorf(lp+".sector_size", "sector size must be 512, 1024, 2048 or 4096, got %d", s)
	}
	if l.UUID != "" && !guidRE.MatchString(l.UUID) {
		v.errorf(lp+".uuid", "invalid LUKS UUID %q", l.UUID)
	}
	if k := l.PBKDF; k != nil {
		argon := k.Type == "" && ver == 2 || strings.HasPrefix(k.Type, "argon2")
		if !argon && (!k.Memory.IsZero() || k.Parallel != 0) {
			v.errorf(lp+".pbkdf", "memory and parallel are argon2 settings, not pbkdf2")
		}
		if !k.Memory.IsZero() && (!k.Memory.IsAbsolute() || k.Memory.Bytes < 32<<10 || k.Memory.Bytes > 4<<30) {
			v.errorf(lp+".pbkdf.memory", "argon2 memory must be from 32KiB to 4GiB, got %s", k.Memory)
		}
		if k.Iterations != 0 && k.IterTimeMS != 0 {
			v.errorf(lp+".pbkdf", "give iterations or iter_time_ms, not both")
		}
	}
	n := 0
	for _, set := range []bool{l.Key.Prompt, l.Key.File != "", l.Key.URL != "", l.Key.Literal != ""} {
		if set {
			n++
		}
	}
	if n > 1 {
		v.errorf(lp+".key", "give one key source: prompt, file, url or literal")
	}
	if l.Key.URL != "" {
		v.checkURL(lp+".key.url", l.Key.URL, "http", "https", "file")
	}
	if l.Key.File != "" && !path.IsAbs(l.Key.File) {
		v.errorf(lp+".key.file", "key file must be an absolute path in the live environment, got %q", l.Key.File)
	}
}

func (v *validator) vg(vg *VolumeGroup) {
	vp := "volume_groups." + vg.Name
	if len(vg.PVs) == 0 {
		v.errorf(vp+".pvs", "a volume group needs at least one physical volume")
	}
	if es := vg.ExtentSize; !es.IsZero() && (!es.IsAbsolute() || es.Bytes < 1024 || es.Bytes&(es.Bytes-1) != 0) {
		v.errorf(vp+".extent_size", "extent size must be a power of two of at least 1KiB, got %s", es)
	}
	if vg.UUID != "" && !lvmUUIDRE.MatchString(vg.UUID) {
		v.errorf(vp+".uuid", "invalid LVM UUID %q (want 6-4-4-4-4-4-6 characters)", vg.UUID)
	}
	for _, dev := range sortedKeys(vg.PVUUIDs) {
		found := false
		for _, pv := range vg.PVs {
			found = found || pv == dev
		}
		if !found {
			v.errorf(vp+".pv_uuids."+dev, "%s is not one of this group's pvs", dev)
		}
		if !lvmUUIDRE.MatchString(vg.PVUUIDs[dev]) {
			v.errorf(vp+".pv_uuids."+dev, "invalid LVM UUID %q", vg.PVUUIDs[dev])
		}
	}
	pools := map[string]bool{}
	for _, lv := range vg.LVs {
		if lv.Type == "thin-pool" {
			pools[lv.Name] = true
		}
	}
	pct, rests := 0.0, 0
	for _, lv := range vg.LVs {
		lp := vp + ".lvs." + lv.Name
		v.sizeWithBounds(lp, lv.Size, lv.MinSize, lv.MaxSize, true)
		if lv.UUID != "" && !lvmUUIDRE.MatchString(lv.UUID) {
			v.errorf(lp+".uuid", "invalid LVM UUID %q", lv.UUID)
		}
		if lv.Stripes != 0 && lv.Type != "striped" || lv.Type == "striped" && lv.Stripes < 2 {
			v.errorf(lp+".stripes", "stripes (2 or more) go with type: striped")
		}
		if !lv.StripeSize.IsZero() && lv.Type != "striped" {
			v.errorf(lp+".stripe_size", "stripe_size goes with type: striped")
		}
		if lv.Mirrors != 0 && lv.Type != "raid1" {
			v.errorf(lp+".mirrors", "mirrors goes with type: raid1")
		}
		switch {
		case lv.Type == "thin" && lv.Pool == "":
			v.errorf(lp+".pool", "a thin volume needs pool: the name of a thin-pool LV in %s", vg.Name)
		case lv.Type == "thin" && !pools[lv.Pool]:
			v.errorf(lp+".pool", "no thin-pool LV %q in volume group %s", lv.Pool, vg.Name)
		case lv.Type != "thin" && lv.Pool != "":
			v.errorf(lp+".pool", "pool goes with type: thin")
		}
		if lv.Type == "thin" {
			if !lv.Size.IsZero() && !lv.Size.IsAbsolute() {
				v.errorf(lp+".size", "a thin volume's size is its virtual size and must be absolute, not %s", lv.Size)
			}
			continue // thin volumes take no space from the group directly
		}
		if lv.Size.Percent > 0 && !lv.Size.Free {
			pct += lv.Size.Percent
		}
		if lv.Size.Rest {
			rests++
			if rests == 2 {
				v.errorf(lp+".size", "only one LV of a group can take the rest")
			}
		}
	}
	if pct > 100 {
		v.errorf(vp+".lvs", "percentages add up to %g%%, more than the whole group", pct)
	}
}

var fsSettings = map[string]string{"ext2": "ext", "ext3": "ext", "ext4": "ext", "xfs": "xfs", "vfat": "vfat", "btrfs": "btrfs", "swap": "swap"}

func (v *validator) filesystems() {
	mounts := map[string]string{}
	claimMount := func(m *Mount, mp string) {
		if m == nil {
			return
		}
		switch {
		case m.Path == "":
			v.errorf(mp+".path", "missing mount path")
			return
		case !path.IsAbs(m.Path) || path.Clean(m.Path) != m.Path:
			v.errorf(mp+".path", "mount path must be absolute and clean, like /home, got %q", m.Path)
			return
		case strings.ContainsAny(m.Path, " \t\n"):
			v.errorf(mp+".path", "mount path %q has white space, which fstab cannot hold", m.Path)
		}
		if prev, ok := mounts[m.Path]; ok {
			v.errorf(mp+".path", "%s is already mounted by %s", m.Path, prev)
			return
		}
		mounts[m.Path] = strings.TrimSuffix(mp, ".mount")
		if m.Dump < 0 || m.Dump > 1 || m.Pass < 0 || m.Pass > 2 {
			v.errorf(mp, "dump is 0 or 1 and pass is 0, 1 or 2")
		}
		if strings.ContainsAny(m.Options, " \t") {
			v.errorf(mp+".options", "options are comma-separated without spaces, got %q", m.Options)
		}
	}
	for i := range v.p.Filesystems {
		f := &v.p.Filesystems[i]
		fp := fmt.Sprintf("filesystems[%d]", i)
		kind, ok := fsSettings[f.Type]
		if f.Type == "" {
			v.errorf(fp+".type", "missing type (ext4, xfs, vfat, btrfs, swap, ...)")
		}
		for name, set := range map[string]bool{"ext": f.Ext != nil, "xfs": f.XFS != nil, "vfat": f.VFAT != nil, "btrfs": f.Btrfs != nil, "swap": f.Swap != nil} {
			if set && ok && name != kind {
				v.errorf(fp+"."+name, "%s settings on a %s filesystem", name, f.Type)
			}
		}
		switch {
		case f.UUID == "":
		case f.Type == "vfat" && !vfatIDRE.MatchString(f.UUID):
			v.errorf(fp+".uuid", "a vfat volume ID looks like ABCD-1234, got %q", f.UUID)
		case f.Type != "vfat" && !guidRE.MatchString(f.UUID):
			v.errorf(fp+".uuid", "invalid filesystem UUID %q", f.UUID)
		}
		if n := len(f.Label); n > 0 {
			limit := map[string]int{"ext": 16, "xfs": 12, "vfat": 11, "btrfs": 255, "swap": 15}[kind]
			if limit > 0 && n > limit {
				v.errorf(fp+".label", "a %s label holds at most %d characters, %q has %d", f.Type, limit, f.Label, n)
			}
		}
		if f.Type == "swap" && f.Mount != nil {
			v.errorf(fp+".mount", "swap is not mounted; put fstab options under swap.options")
		}
		claimMount(f.Mount, fp+".mount")
		if e := f.Ext; e != nil {
			if b := e.BlockSize; b != 0 && b != 1024 && b != 2048 && b != 4096 {
				v.errorf(fp+".ext.block_size", "ext block size is 1024, 2048 or 4096, got %d", b)
			}
			if e.Inodes != 0 && e.InodeRatio != 0 {
				v.errorf(fp+".ext", "give inodes or inode_ratio, not both")
			}
			if e.ReservedBlocks != 0 && e.ReservedPercent != nil {
				v.errorf(fp+".ext", "give reserved_blocks or reserved_percent, not both")
			}
			if r := e.ReservedPercent; r != nil && (*r < 0 || *r > 50) {
				v.errorf(fp+".ext.reserved_percent", "reserved_percent is from 0 to 50, got %g", *r)
			}
			if f.Type != "ext4" && hasFeature(e.Features, "extent") {
				v.errorf(fp+".ext.features", "extent needs ext4")
			}
		}
		if x := f.XFS; x != nil {
			known := map[string]bool{"crc": true, "finobt": true, "rmapbt": true, "reflink": true, "bigtime": true, "inobtcount": true, "sparse": true, "ftype": true}
			for j, feat := range x.Features {
				if !known[strings.TrimPrefix(feat, "^")] {
					v.errorf(fmt.Sprintf("%s.xfs.features[%d]", fp, j), "unknown xfs feature %q (known: %s)", feat, strings.Join(sortedKeys(known), ", "))
				}
			}
			if !x.LogSize.IsZero() && !x.LogSize.IsAbsolute() {
				v.errorf(fp+".xfs.log_size", "log size must be absolute, got %s", x.LogSize)
			}
		}
		if b := f.Btrfs; b != nil {
			subs := map[string]bool{}
			for j, s := range b.Subvolumes {
				sp := fmt.Sprintf("%s.btrfs.subvolumes[%d]", fp, j)
				if s.Path == "" || strings.HasPrefix(s.Path, "/") || strings.Contains(s.Path, "..") {
					v.errorf(sp+".path", "subvolume path is relative to the filesystem's top, like @home, got %q", s.Path)
				}
				if subs[s.Path] {
					v.errorf(sp+".path", "subvolume %q is listed twice", s.Path)
				}
				subs[s.Path] = true
				claimMount(s.Mount, sp+".mount")
			}
			if b.DefaultSubvolume != "" && !subs[b.DefaultSubvolume] {
				v.errorf(fp+".btrfs.default_subvolume", "%q is not one of the subvolumes", b.DefaultSubvolume)
			}
		}
	}
	if v.p.System != nil {
		if _, ok := mounts["/"]; !ok {
			v.errorf("filesystems", "nothing is mounted at /: a profile with a system needs a root filesystem")
		}
	}
}

func hasFeature(fs []string, name string) bool {
	for _, f := range fs {
		if f == name {
			return true
		}
	}
	return false
}

// ESP finds the filesystem that serves as EFI system partition, if any.
func (p *Profile) ESP() *Filesystem {
	devs := p.Devices()
	for i := range p.Filesystems {
		f := &p.Filesystems[i]
		d := devs[f.Device]
		if f.Type != "vfat" || f.Mount == nil || d == nil || d.Kind != KindPartition {
			continue
		}
		switch f.Mount.Path {
		case "/boot/efi", "/efi", "/boot":
		default:
			continue
		}
		if t := d.Partition.Type; t == "esp" || strings.EqualFold(t, GPTTypes["esp"]) || (d.Disk.Table == "msdos" && t == "0xef") {
			return f
		}
	}
	return nil
}

func (v *validator) bootloader(devs map[string]*Device) {
	b := v.p.Bootloader
	if b == nil {
		return
	}
	efi := b.Type == "grub-efi" || b.Type == "systemd-boot"
	if b.Type == "" {
		v.errorf("bootloader.type", "missing type: grub-bios, grub-efi or systemd-boot")
	}
	if efi && v.p.ESP() == nil {
		v.errorf("bootloader.type", "%s needs an EFI system partition: a partition of type esp with a vfat filesystem mounted at /boot/efi, /efi or /boot", b.Type)
	}
	if !efi && (b.Removable || len(b.EFIEntries) > 0 || b.ID != "") {
		v.errorf("bootloader", "removable, id and efi_entries are UEFI settings; %s boots through the BIOS", b.Type)
	}
	if efi && len(b.Disks) > 0 {
		v.errorf("bootloader.disks", "disks is for grub-bios; UEFI boots from the ESP")
	}
	for i, name := range b.Disks {
		var disk *Disk
		for j := range v.p.Disks {
			if v.p.Disks[j].Name == name {
				disk = &v.p.Disks[j]
			}
		}
		if disk == nil {
			v.errorf(fmt.Sprintf("bootloader.disks[%d]", i), "no disk %q", name)
			continue
		}
		if b.Type == "grub-bios" && disk.Table == "gpt" && !hasBIOSBoot(disk) {
			v.errorf(fmt.Sprintf("bootloader.disks[%d]", i), "grub-bios on a GPT disk needs a partition of type bios-boot (1MiB) on %s", name)
		}
	}
	if b.Type == "grub-bios" && len(b.Disks) == 0 {
		for _, d := range v.p.Disks {
			if d.Table == "gpt" && !hasBIOSBoot(&d) {
				v.errorf("bootloader.type", "grub-bios on a GPT disk needs a partition of type bios-boot (1MiB) on %s, or list the boot disks under bootloader.disks", d.Name)
			}
		}
	}
	for i, e := range b.EFIEntries {
		if e.Label == "" || e.Loader == "" {
			v.errorf(fmt.Sprintf("bootloader.efi_entries[%d]", i), "an EFI entry needs label and loader")
		}
	}
	if b.Timeout != nil && *b.Timeout < 0 {
		v.errorf("bootloader.timeout", "timeout is seconds, 0 or more")
	}
	_ = devs
}

func hasBIOSBoot(d *Disk) bool {
	for _, pt := range d.Partitions {
		if pt.Type == "bios-boot" || strings.EqualFold(pt.Type, GPTTypes["bios-boot"]) {
			return true
		}
	}
	return false
}

func (v *validator) system() {
	s := v.p.System
	if s == nil {
		return
	}
	if s.Image.URL == "" {
		v.errorf("system.image.url", "missing the base system image URL")
	} else {
		v.checkURL("system.image.url", s.Image.URL, "http", "https", "file", "")
	}
	if !sha256RE.MatchString(s.Image.SHA256) {
		v.errorf("system.image.sha256", "want the image's SHA-256 as 64 lower-case hex digits (sha256sum prints it), got %q", s.Image.SHA256)
	}
	for i, pkg := range s.Packages {
		if pkg == "" || strings.ContainsAny(pkg, " \t'\"`$;&|") {
			v.errorf(fmt.Sprintf("system.packages[%d]", i), "invalid package name %q", pkg)
		}
	}
}

// checkURL accepts the given schemes; "" allows a relative URL (taken against the file server).
func (v *validator) checkURL(p, raw string, schemes ...string) {
	u, err := url.Parse(raw)
	if err != nil {
		v.errorf(p, "invalid URL %q: %v", raw, err)
		return
	}
	for _, s := range schemes {
		if u.Scheme == s {
			return
		}
	}
	v.errorf(p, "URL scheme %q is not supported here (use %s)", u.Scheme, strings.Join(nonEmpty(schemes), ", "))
}

func nonEmpty(s []string) []string {
	var out []string
	for _, x := range s {
		if x != "" {
			out = append(out, x)
		} else {
			out = append(out, "a path relative to the file server")
		}
	}
	return out
}

func (v *validator) repos() {
	paths := map[string]string{}
	for _, r := range v.p.Repos {
		rp := "repos." + r.Name
		switch r.Type {
		case "git":
			v.checkURL(rp+".url", r.URL, "https", "http", "ssh", "git", "file")
			if r.Externals {
				v.errorf(rp+".externals", "externals is an svn setting; git has submodules")
			}
			if r.Tag != "" && (r.Branch != "" || r.Revision != "") {
				v.errorf(rp+".tag", "give a tag, or a branch and/or revision, not both")
			}
		case "svn":
			v.checkURL(rp+".url", r.URL, "svn", "svn+ssh", "https", "http", "file")
			if r.Submodules {
				v.errorf(rp+".submodules", "submodules is a git setting; svn has externals")
			}
			if r.Revision != "" {
				if n, err := strconv.Atoi(r.Revision); err != nil || n < 1 {
					v.errorf(rp+".revision", "an svn revision is a number, got %q", r.Revision)
				}
			}
		case "":
			v.errorf(rp+".type", "missing type: git or svn")
		}
		if r.URL == "" {
			v.errorf(rp+".url", "missing repository URL")
		}
		v.destination(rp, r.Path, paths)
		if r.Mode != "" && !modeRE.MatchString(r.Mode) {
			v.errorf(rp+".mode", "mode is octal like 0750, got %q", r.Mode)
		}
	}
}

func (v *validator) destination(p, dest string, seen map[string]string) {
	switch {
	case dest == "":
		v.errorf(p+".path", "missing destination path")
	case !path.IsAbs(dest) || path.Clean(dest) != dest:
		v.errorf(p+".path", "destination must be an absolute clean path in the restored system, got %q", dest)
	default:
		if prev, ok := seen[dest]; ok {
			v.errorf(p+".path", "%s is also the destination of %s", dest, prev)
		}
		seen[dest] = p
	}
}

func (v *validator) datasets() {
	paths := map[string]string{}
	for _, d := range v.p.Datasets {
		dp := "datasets." + d.Name
		kind := d.Kind
		if kind == "" {
			kind = "full"
		}
		switch {
		case kind == "buffer" && d.Source != "":
			v.errorf(dp+".source", "a buffer is an empty directory; it has no source")
		case kind != "buffer" && d.Source == "":
			v.errorf(dp+".source", "missing source URL")
		case d.Source != "":
			v.checkURL(dp+".source", d.Source, "http", "https", "rsync", "ssh", "file", "")
		}
		if kind != "selection" && (len(d.Include) > 0 || len(d.Exclude) > 0) {
			v.errorf(dp, "include and exclude go with kind: selection")
		}
		if kind == "selection" && len(d.Include) == 0 && len(d.Exclude) == 0 {
			v.errorf(dp, "a selection needs include or exclude patterns")
		}
		if d.SHA256 != "" && !sha256RE.MatchString(d.SHA256) {
			v.errorf(dp+".sha256", "want 64 lower-case hex digits, got %q", d.SHA256)
		}
		if d.Manifest != "" {
			v.checkURL(dp+".manifest", d.Manifest, "http", "https", "file", "")
		}
		if d.Mode != "" && !modeRE.MatchString(d.Mode) {
			v.errorf(dp+".mode", "mode is octal like 0750, got %q", d.Mode)
		}
		v.destination(dp, d.Path, paths)
	}
}
