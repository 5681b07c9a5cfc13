package plan

import (
	"errors"
	"fmt"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/stratahq/strata/profile"
	"github.com/stratahq/strata/restore/argv"
	"github.com/stratahq/strata/restore/probe"
	"github.com/stratahq/strata/restore/table"
	"github.com/stratahq/strata/restore/target"
)

// Options are the user's choices.
type Options struct {
	Disks      map[string]string // --disk NAME=DEVICE
	Keep       []string          // --keep REF: a device reference, a volume group or a mount point
	TargetRoot string            // default /mnt/strata
	WorkDir    string            // default /run/strata
	Teardown   bool              // tear down what uses the target disks
	Udev       bool              // a udev daemon runs
	Fresh      bool              // recreate what is not kept even when it is there
	// Open keeps everything and writes nothing: the plan verifies each
	// layer against the profile, assembles, opens, activates and mounts
	// (strata open: a machine's disks opened from the live image, for a
	// rescue or strata capture --root). No fstab is written.
	Open bool
	// ReadOnly mounts every filesystem read-only (with Open).
	ReadOnly bool
	// Has reports whether the restoring system has a program (exec.LookPath
	// in the front ends); the plan warns about the hand-off's missing ones.
	// Nil skips the check.
	Has func(program string) bool
}

// Error is a plan that cannot be made; every problem is listed.
type Error struct{ Problems []string }

func (e *Error) Error() string { return strings.Join(e.Problems, "\n") }

type builder struct {
	p     *profile.Profile
	o     Options
	plan  *Plan
	ids   ids
	devs  map[string]*Device // by ref, including VGs
	ready map[string]string  // device ref -> step that makes it usable
	steps map[string]bool
	probe map[string]*probe.Disk // profile disk name -> probed disk
	errs  []string

	keepDev   map[string]bool
	keepFS    map[int]bool
	keepVG    map[string]bool
	keepTable map[string]bool
	lvm       argv.LVM
	thin      map[string]map[string][2]int64 // VG -> pool -> metadata size, chunk size
	order     []*Device
	own       func(probe.Use) bool
}

// Own recognises what a restore of p made itself: mounts under the target
// root or the work directory, and the profile's LUKS mappings, md arrays
// and LVM volumes. Those are resumed, not refused or torn down.
func Own(p *profile.Profile, targetRoot, workDir string) func(probe.Use) bool {
	var luks, md, vgs []string
	for _, l := range p.LUKS {
		luks = append(luks, l.Name)
	}
	for _, r := range p.RAID {
		md = append(md, r.Name)
	}
	for _, vg := range p.VolumeGroups {
		vgs = append(vgs, vg.Name)
	}
	return own(luks, md, vgs, targetRoot, workDir)
}

// OwnOf is Own for a plan already made.
func OwnOf(pl *Plan) func(probe.Use) bool {
	var luks, md, vgs []string
	for _, d := range pl.Devices {
		switch d.Kind {
		case "luks":
			luks = append(luks, d.Ref)
		case "raid":
			md = append(md, d.Ref)
		case "vg":
			vgs = append(vgs, d.Ref)
		}
	}
	return own(luks, md, vgs, pl.TargetRoot, pl.WorkDir)
}

func own(luks, md, vgs []string, targetRoot, workDir string) func(probe.Use) bool {
	names := map[string]bool{}
	for _, n := range luks {
		names["crypt:"+n] = true
	}
	for _, n := range md {
		names["md:"+n] = true
	}
	var vgPrefixes []string
	for _, vg := range vgs {
		vgPrefixes = append(vgPrefixes, strings.ReplaceAll(vg, "-", "--")+"-")
	}
	under := func(p, dir string) bool {
		dir = filepath.Clean(dir)
		return p == dir || strings.HasPrefix(p, dir+"/")
	}
	return func(u probe.Use) bool {
		switch {
		case u.Mount != nil:
			return under(u.Mount.Point, targetRoot) || under(u.Mount.Point, workDir)
		case u.Holder != nil:
			h := u.Holder
			switch h.Kind {
			case "crypt", "md":
				return names[h.Kind+":"+h.Map]
			case "lvm":
				for _, pre := range vgPrefixes {
					// the prefix stops at a single '-': vg--x-lv is VG vg-x
					if strings.HasPrefix(h.Map, pre) && !strings.HasPrefix(h.Map[len(pre):], "-") {
						return true
					}
				}
			}
		}
		return false
	}
}

// Build makes the plan for p on the probed disks.
func Build(p *profile.Profile, disks []probe.Disk, o Options) (*Plan, error) {
	if o.TargetRoot == "" {
		o.TargetRoot = "/mnt/strata"
	}
	if o.Open && (o.Fresh || o.Teardown) {
		return nil, &Error{Problems: []string{"opening a machine's disks takes no fresh start and no teardown: it writes nothing"}}
	}
	if o.WorkDir == "" {
		o.WorkDir = "/run/strata"
	}
	own := Own(p, o.TargetRoot, o.WorkDir)
	assign, err := target.Match(p, disks, target.Options{Explicit: o.Disks, Teardown: o.Teardown, Own: own})
	if err != nil {
		return nil, err
	}
	b := &builder{
		p: p, o: o,
		plan: &Plan{Host: p.Host.Name, Profile: p.File(), TargetRoot: o.TargetRoot, WorkDir: o.WorkDir, Udev: o.Udev, Fresh: o.Fresh},
		devs: map[string]*Device{}, ready: map[string]string{}, steps: map[string]bool{}, probe: map[string]*probe.Disk{},
		lvm: argv.LVM{Udev: o.Udev}, thin: map[string]map[string][2]int64{}, own: own,
	}
	for _, a := range assign {
		d := a.Device
		b.probe[a.Disk] = d
		b.plan.Disks = append(b.plan.Disks, Disk{Name: a.Disk, Device: d.Path, Size: d.Size, SectorSize: d.LogicalSectorSize,
			Model: d.Model, Serial: d.Serial, Matched: a.How})
		b.plan.Warnings = append(b.plan.Warnings, a.Warnings...)
	}
	b.ids = newIDs(p.Host.Name, b.plan.Disks)
	b.keeps()
	if len(b.errs) == 0 {
		b.layout()
	}
	if len(b.errs) == 0 {
		b.stack()
	}
	if len(b.errs) == 0 {
		b.filesystems()
	}
	if len(b.errs) > 0 {
		return nil, &Error{Problems: b.errs}
	}
	for _, d := range b.order {
		b.plan.Devices = append(b.plan.Devices, *d)
	}
	b.buildSteps()
	if !o.Open {
		b.plan.Warnings = append(b.plan.Warnings, toolWarnings(p, o.Has)...)
	}
	if o.Open {
		for _, st := range b.plan.Steps {
			switch st.Kind {
			case KindAssemble, KindOpen, KindActivate, KindMount:
			default:
				if !st.Kind.Verifies() {
					b.errorf("internal: opening %s would write to the disks: %s", p.Host.Name, st.Summary)
				}
			}
		}
	}
	if len(b.errs) > 0 {
		return nil, &Error{Problems: b.errs}
	}
	return b.plan, nil
}

func (b *builder) errorf(format string, a ...any) { b.errs = append(b.errs, fmt.Sprintf(format, a...)) }

// ---- keep ----

// keeps resolves what is kept: the profile's keep flags and --keep, then
// everything a kept item stands on (a kept LV needs its group, PVs, LUKS
// volume and partition table in place).
func (b *builder) keeps() {
	b.keepDev, b.keepFS, b.keepVG, b.keepTable = map[string]bool{}, map[int]bool{}, map[string]bool{}, map[string]bool{}
	p := b.p
	devs := p.Devices()
	if b.o.Open {
		for ref := range devs {
			b.keepDev[ref] = true
		}
		for i := range p.Filesystems {
			b.keepFS[i] = true
		}
	}
	for _, d := range p.Disks {
		for _, pt := range d.Partitions {
			if pt.Keep {
				b.keepDev[d.Name+"/"+pt.Name] = true
			}
		}
	}
	for _, r := range p.RAID {
		if r.Keep {
			b.keepDev[r.Name] = true
		}
	}
	for _, l := range p.LUKS {
		if l.Keep {
			b.keepDev[l.Name] = true
		}
	}
	for _, vg := range p.VolumeGroups {
		for _, lv := range vg.LVs {
			if lv.Keep {
				b.keepDev[vg.Name+"/"+lv.Name] = true
			}
		}
	}
	for i, f := range p.Filesystems {
		if f.Keep {
			b.keepFS[i] = true
		}
	}
	// --keep keeps the item and everything built on it.
	var up func(ref string)
	up = func(ref string) {
		b.keepDev[ref] = true
		for i, f := range p.Filesystems {
			if f.Device == ref {
				b.keepFS[i] = true
			}
		}
		for _, u := range p.Uses() {
			if u.Ref != ref {
				continue
			}
			switch {
			case strings.HasPrefix(u.By, "raid."):
				up(strings.TrimPrefix(u.By, "raid."))
			case strings.HasPrefix(u.By, "luks."):
				up(strings.TrimPrefix(u.By, "luks."))
			case strings.HasPrefix(u.By, "volume_groups."):
				vg := strings.TrimPrefix(u.By, "volume_groups.")
				for _, g := range p.VolumeGroups {
					if g.Name == vg {
						for _, lv := range g.LVs {
							if lv.Type != "thin-pool" && !b.keepDev[vg+"/"+lv.Name] {
								up(vg + "/" + lv.Name)
							}
						}
					}
				}
			}
		}
	}
	for _, k := range b.o.Keep {
		found := false
		if strings.HasPrefix(k, "/") {
			for i, f := range p.Filesystems {
				hit := f.Mount != nil && f.Mount.Path == k
				if f.Btrfs != nil {
					for _, s := range f.Btrfs.Subvolumes {
						hit = hit || s.Mount != nil && s.Mount.Path == k
					}
				}
				if hit {
					b.keepFS[i], found = true, true
				}
			}
		} else if _, ok := devs[k]; ok {
			up(k)
			found = true
		} else {
			for _, vg := range p.VolumeGroups {
				if vg.Name == k {
					found = true
					for _, lv := range vg.LVs {
						if lv.Type != "thin-pool" {
							up(vg.Name + "/" + lv.Name)
						}
					}
				}
			}
		}
		if !found {
			b.errorf("--keep %s: no device, volume group or mount point of that name in the profile", k)
		}
	}
	// Down the stack: a kept item's producers stay in place.
	for i := range b.keepFS {
		f := p.Filesystems[i]
		b.keepDev[f.Device] = true
		if f.Btrfs != nil {
			for _, d := range f.Btrfs.Devices {
				b.keepDev[d] = true
			}
		}
	}
	for changed := true; changed; {
		changed = false
		mark := func(ref string) {
			if !b.keepDev[ref] {
				b.keepDev[ref], changed = true, true
			}
		}
		for ref := range b.keepDev {
			d, ok := devs[ref]
			if !ok {
				continue
			}
			switch d.Kind {
			case profile.KindPartition:
				b.keepTable[d.Disk.Name] = true
			case profile.KindDisk:
				b.keepTable[d.Disk.Name] = true
			case profile.KindRAID:
				for _, m := range append(append([]string{}, d.RAID.Devices...), d.RAID.Spares...) {
					mark(m)
				}
			case profile.KindLUKS:
				mark(d.LUKS.Device)
			case profile.KindLV:
				if !b.keepVG[d.VG.Name] {
					b.keepVG[d.VG.Name], changed = true, true
				}
				if d.LV.Type == "thin" {
					mark(d.VG.Name + "/" + d.LV.Pool)
				}
			}
		}
		for _, vg := range p.VolumeGroups {
			if b.keepVG[vg.Name] {
				for _, pv := range vg.PVs {
					mark(pv)
				}
			}
		}
	}
}

// ---- sizes ----

// partPath names partition n of a disk the way the kernel does: nvme0n1p1,
// mmcblk0p1, loop0p1, but sda1 and vda1.
func partPath(disk string, n int) string {
	if c := disk[len(disk)-1]; c >= '0' && c <= '9' {
		return fmt.Sprintf("%sp%d", disk, n)
	}
	return fmt.Sprintf("%s%d", disk, n)
}

// mapperName escapes a VG/LV pair the way device-mapper names it.
func mapperName(vg, lv string) string {
	return strings.ReplaceAll(vg, "-", "--") + "-" + strings.ReplaceAll(lv, "-", "--")
}

// addDevice records a device; the plan's list is filled from b.order at the
// end, so the pointers stay valid while filesystems are attached.
func (b *builder) addDevice(d Device) *Device {
	p := &d
	b.order = append(b.order, p)
	return p
}

// layout fits every disk's partitions and places them.
func (b *builder) layout() {
	for i := range b.p.Disks {
		pd := &b.p.Disks[i]
		pdisk := &b.plan.Disks[i]
		dev := b.probe[pd.Name]
		keepAll := b.keepTable[pd.Name]
		pdisk.KeepTable = keepAll && pd.Table != "none"
		for _, part := range dev.Partitions {
			pdisk.Old = append(pdisk.Old, part.Path)
		}
		if pd.Table == "none" {
			b.devs[pd.Name] = b.addDevice(Device{Ref: pd.Name, Kind: "disk", Path: dev.Path, Size: dev.Size, Keep: b.keepDev[pd.Name]})
			continue
		}
		var reqs []profile.Request
		for _, pt := range pd.Partitions {
			reqs = append(reqs, profile.Request{Name: fmt.Sprintf("%s/%s (%s)", pd.Name, pt.Name, pt.Size), Size: pt.Size, Min: pt.MinSize, Max: pt.MaxSize})
		}
		sizes, err := profile.Fit(reqs, dev.Size-profile.DiskOverhead(pd), mib)
		if err != nil {
			var fe *profile.FitError
			if errors.As(err, &fe) {
				fe.Needed += profile.DiskOverhead(pd)
				fe.Available = dev.Size
			}
			b.errorf("disk %s (%s, %s): %v", pd.Name, dev.Path, profile.HumanBytes(dev.Size), err)
			continue
		}
		l := &table.Layout{Type: pd.Table, DiskSize: dev.Size, SectorSize: dev.LogicalSectorSize, PhysicalSectorSize: dev.PhysicalSectorSize}
		disk := Device{Ref: pd.Name, Kind: "disk", Path: dev.Path, Size: dev.Size, Type: pd.Table, Keep: keepAll}
		switch {
		case pd.Table == "gpt" && pd.GUID != "":
			l.GUID, disk.UUID, disk.UUIDFrom = strings.ToUpper(pd.GUID), strings.ToUpper(pd.GUID), "profile"
		case pd.Table == "gpt" && !keepAll:
			l.GUID = b.ids.guid("disk", pd.Name)
			disk.UUID, disk.UUIDFrom = l.GUID, "derived"
		case pd.Table == "msdos" && pd.DiskID != "":
			l.DiskID, disk.UUID, disk.UUIDFrom = strings.ToLower(pd.DiskID), strings.ToLower(pd.DiskID), "profile"
		case pd.Table == "msdos" && !keepAll:
			l.DiskID = b.ids.diskID(pd.Name)
			disk.UUID, disk.UUIDFrom = l.DiskID, "derived"
		}
		b.addDevice(disk)
		cur, primary, logical := mib, 0, 4
		for j, pt := range pd.Partitions {
			ref := pd.Name + "/" + pt.Name
			tp := table.Partition{Size: sizes[j]}
			if pt.Logical {
				logical++
				tp.Number, tp.Logical = logical, true
				cur += mib // the EBR and alignment before each logical partition
			} else {
				primary++
				tp.Number = primary
			}
			tp.Start = cur
			cur += tp.Size
			d := Device{Ref: ref, Kind: "partition", Path: partPath(dev.Path, tp.Number), Size: tp.Size, Start: tp.Start, Keep: b.keepDev[ref]}
			if pd.Table == "gpt" {
				g, _ := profile.GPTType(pt.Type)
				tp.Type = g
				tp.Label = pt.Name
				if pt.Label != "" {
					tp.Label = pt.Label
				}
				tp.Attributes, _ = profile.AttributeBits(pt.Attributes)
				switch {
				case pt.UUID != "":
					tp.UUID, d.UUID, d.UUIDFrom = strings.ToUpper(pt.UUID), strings.ToUpper(pt.UUID), "profile"
				case !keepAll:
					tp.UUID = b.ids.guid("partition", ref)
					d.UUID, d.UUIDFrom = tp.UUID, "derived"
				}
				d.Type = typeName(pt.Type, g)
				d.Label = tp.Label
			} else {
				t, _ := profile.MBRType(pt.Type)
				tp.Type = fmt.Sprintf("0x%02x", t)
				tp.Boot = pt.Boot
				d.Type = typeName(pt.Type, tp.Type)
				if pt.Logical {
					d.Type += " (logical)"
				}
				if pt.Boot {
					d.Type += " boot"
				}
			}
			l.Partitions = append(l.Partitions, tp)
			b.devs[ref] = b.addDevice(d)
		}
		pdisk.Table = l
	}
}

func typeName(alias, resolved string) string {
	if alias == "" {
		alias = "linux"
	}
	if strings.EqualFold(alias, resolved) {
		return resolved
	}
	return alias
}

// stack sizes md arrays, LUKS volumes and LVM, in dependency order.
func (b *builder) stack() {
	p := b.p
	type item struct {
		kind string
		idx  int
		in   []string
	}
	var items []item
	for i, r := range p.RAID {
		items = append(items, item{"raid", i, append(append([]string{}, r.Devices...), r.Spares...)})
	}
	for i, l := range p.LUKS {
		items = append(items, item{"luks", i, []string{l.Device}})
	}
	for i, vg := range p.VolumeGroups {
		items = append(items, item{"vg", i, vg.PVs})
	}
	done := map[int]bool{}
	for progress := true; progress; {
		progress = false
		for n, it := range items {
			if done[n] {
				continue
			}
			ok := true
			for _, in := range it.in {
				if b.devs[in] == nil {
					ok = false
				}
			}
			if !ok {
				continue
			}
			done[n], progress = true, true
			switch it.kind {
			case "raid":
				b.raid(&p.RAID[it.idx])
			case "luks":
				b.luks(&p.LUKS[it.idx])
			case "vg":
				b.vg(&p.VolumeGroups[it.idx])
			}
		}
	}
	b.plan.Assumptions = uniqSorted(b.plan.Assumptions)
}

func (b *builder) raid(r *profile.RAID) {
	var sizes []int64
	for _, m := range r.Devices {
		sizes = append(sizes, b.devs[m].Size)
	}
	size, note := mdSize(r, sizes)
	d := Device{Ref: r.Name, Kind: "raid", Path: "/dev/md/" + r.Name, Size: size, Type: r.Level, Keep: b.keepDev[r.Name], On: append([]string{}, r.Devices...)}
	switch {
	case r.UUID != "":
		d.UUID, d.UUIDFrom = r.UUID, "profile"
	case !d.Keep:
		d.UUID, d.UUIDFrom = b.ids.mdUUID(r.Name), "derived"
	}
	b.plan.Assumptions = append(b.plan.Assumptions, note)
	b.devs[r.Name] = b.addDevice(d)
}

func (b *builder) luks(l *profile.LUKS) {
	under := b.devs[l.Device]
	ver := l.Version
	if ver == 0 {
		ver = 2
	}
	align := luksAlign(b.ioTopology(l.Device))
	off := luksOffset(l, align)
	d := Device{Ref: l.Name, Kind: "luks", Path: "/dev/mapper/" + l.Name, Size: under.Size - off, Type: fmt.Sprintf("luks%d", ver),
		Label: l.Label, Keep: b.keepDev[l.Name], On: []string{l.Device}}
	switch {
	case l.UUID != "":
		d.UUID, d.UUIDFrom = strings.ToLower(l.UUID), "profile"
	case !d.Keep:
		d.UUID, d.UUIDFrom = b.ids.uuid("luks", l.Name), "derived"
	}
	if d.Size <= 0 {
		b.errorf("luks %s: %s (%s) is too small for a LUKS header", l.Name, l.Device, profile.HumanBytes(under.Size))
	}
	switch {
	case align != mib:
		b.plan.Assumptions = append(b.plan.Assumptions, fmt.Sprintf("LUKS%d %s data offset: %s (the header rounded up to %s's %s stripe, cryptsetup's alignment)",
			ver, l.Name, profile.FormatBytes(off), l.Device, profile.FormatBytes(align)))
	case ver == 1:
		b.plan.Assumptions = append(b.plan.Assumptions, "LUKS1 data offset: 2 MiB (cryptsetup default for 256/512-bit keys)")
	default:
		b.plan.Assumptions = append(b.plan.Assumptions, "LUKS2 data offset: 16 MiB (cryptsetup 2.x default header)")
	}
	b.devs[l.Name] = b.addDevice(d)
}

func (b *builder) vg(vg *profile.VolumeGroup) {
	ext := int64(4 * mib)
	if vg.ExtentSize.IsAbsolute() {
		ext = vg.ExtentSize.Bytes
	}
	var extents int64
	for _, pv := range vg.PVs {
		_, opt := b.ioTopology(pv)
		extents += max((b.devs[pv].Size-pvStart(opt))/ext, 0)
	}
	b.plan.Assumptions = append(b.plan.Assumptions, "LVM physical volumes: data from 1 MiB (rounded up to a full stripe on striped md, directly or through LUKS)")
	if m := b.mixedSectors(vg); m != nil {
		b.plan.Assumptions = append(b.plan.Assumptions, fmt.Sprintf("LVM %s: its PVs have %s-byte sectors; vgcreate is told to allow the mix (devices/allow_mixed_block_sizes=1), and its LVs get the largest", vg.Name, joinInts(m)))
	}
	vgd := Device{Ref: vg.Name, Kind: "vg", Path: "/dev/" + vg.Name, Size: extents * ext, Extents: extents, Keep: b.keepVG[vg.Name], On: append([]string{}, vg.PVs...)}
	switch {
	case vg.UUID != "":
		vgd.UUID, vgd.UUIDFrom = vg.UUID, "profile"
	}
	b.devs[vg.Name] = b.addDevice(vgd)

	// Thin pools' metadata and the spare take space before the fit.
	avail := extents * ext
	var reserve, spare int64
	meta := map[string][2]int64{}
	for _, lv := range vg.LVs {
		if lv.Type == "thin-pool" {
			m, c := thinMetadata(avail, ext)
			meta[lv.Name] = [2]int64{m, c}
			reserve += m
			spare = max(spare, m)
		}
	}
	sizes, err := fitLVs(vg, avail-reserve-spare, ext)
	if err != nil {
		b.errorf("volume group %s (%s in %d extents of %s): %v", vg.Name, profile.HumanBytes(avail), extents, profile.FormatBytes(ext), err)
		return
	}
	rest := lastRest(vg)
	for i := range vg.LVs {
		lv := &vg.LVs[i]
		ref := vg.Name + "/" + lv.Name
		t := lv.Type
		if t == "" {
			t = "linear"
		}
		d := Device{Ref: ref, Kind: "lv", Path: "/dev/mapper/" + mapperName(vg.Name, lv.Name), Type: t, Keep: b.keepDev[ref], On: []string{vg.Name}}
		if lv.Type == "thin" {
			d.Size = (lv.Size.Bytes + ext - 1) / ext * ext
			d.On = []string{vg.Name + "/" + lv.Pool}
		} else {
			d.Size = sizes[lv.Name]
		}
		d.Extents = d.Size / ext
		if lv.UUID != "" {
			d.UUID, d.UUIDFrom = lv.UUID, "profile"
		}
		if lv.Type == "thin-pool" {
			d.Type = fmt.Sprintf("thin-pool (metadata %s, chunk %s, spare %s)", profile.FormatBytes(meta[lv.Name][0]), profile.FormatBytes(meta[lv.Name][1]), profile.FormatBytes(spare))
		}
		if lv.Name == rest {
			d.Type += ", rest: 100%FREE"
		}
		b.devs[ref] = b.addDevice(d)
	}
	b.thin[vg.Name] = meta
}

// lastRest is the LV created with 100%FREE: a linear "rest" LV that comes
// last in creation order, so whatever the real PV sizes are, it takes what
// is left. Other LVs get exact extent counts.
func lastRest(vg *profile.VolumeGroup) string {
	order := lvOrder(vg)
	for i := len(order) - 1; i >= 0; i-- {
		lv := order[i]
		if lv.Type == "thin" {
			continue
		}
		if lv.Size.Rest && (lv.Type == "" || lv.Type == "linear") && lv.MaxSize.IsZero() {
			return lv.Name
		}
		return ""
	}
	return ""
}

// lvOrder is the creation order: the profile's, with thin volumes after
// every pool.
func lvOrder(vg *profile.VolumeGroup) []*profile.LogicalVolume {
	var out, thin []*profile.LogicalVolume
	for i := range vg.LVs {
		if vg.LVs[i].Type == "thin" {
			thin = append(thin, &vg.LVs[i])
		} else {
			out = append(out, &vg.LVs[i])
		}
	}
	return append(out, thin...)
}

// filesystems attaches filesystems to devices and checks they can be made.
func (b *builder) filesystems() {
	for i := range b.p.Filesystems {
		f := &b.p.Filesystems[i]
		d := b.devs[f.Device]
		if d == nil {
			b.errorf("filesystems[%d]: device %s is not in the plan", i, f.Device)
			continue
		}
		fs := &Filesystem{Type: f.Type, Label: f.Label, Keep: b.keepFS[i]}
		switch {
		case f.UUID != "":
			fs.UUID, fs.UUIDFrom = f.UUID, "profile"
			if f.Type == "vfat" {
				fs.UUID = strings.ToUpper(f.UUID)
			}
		case fs.Keep:
		case f.Type == "vfat":
			fs.UUID, fs.UUIDFrom = b.ids.vfatID(f.Device), "derived"
		default:
			fs.UUID, fs.UUIDFrom = b.ids.uuid("fs", f.Device), "derived"
		}
		if f.Mount != nil {
			fs.Mounts = append(fs.Mounts, f.Mount.Path)
		}
		if f.Btrfs != nil {
			for _, s := range f.Btrfs.Subvolumes {
				if s.Mount != nil {
					fs.Mounts = append(fs.Mounts, s.Mount.Path+" [subvol "+s.Path+"]")
				}
			}
		}
		d.FS = fs
		if f.Type == "xfs" && !fs.Keep && d.Size < argv.XFSMinSize {
			b.errorf("filesystems[%d]: xfs on %s needs at least %s (mkfs.xfs since xfsprogs 5.19), the device has %s", i, f.Device, profile.HumanBytes(argv.XFSMinSize), profile.HumanBytes(d.Size))
		}
		if !fs.Keep {
			sector := b.sectorSize(f.Device)
			for what, n := range fsBlockSizes(f) {
				if n > 0 && n < sector {
					b.errorf("filesystems[%d]: %s %s is %d bytes, below the %d-byte sectors of %s (mkfs cannot make it)", i, f.Type, what, n, sector, f.Device)
				}
			}
		}
	}
}

func uniqSorted(s []string) []string {
	sort.Strings(s)
	var out []string
	for i, x := range s {
		if i == 0 || x != s[i-1] {
			out = append(out, x)
		}
	}
	return out
}

// sanitize makes a reference usable as a file name.
func sanitize(ref string) string { return strings.NewReplacer("/", "_", " ", "_").Replace(ref) }

func joinRoot(root, p string) string {
	if p == "/" {
		return root
	}
	return filepath.Join(root, path.Clean(p))
}

func joinInts(v []int) string {
	s := make([]string, len(v))
	for i, n := range v {
		s[i] = strconv.Itoa(n)
	}
	return strings.Join(s, " and ")
}

// fsBlockSizes are the sizes a filesystem's settings fix that may not be
// smaller than its device's logical sector size.
func fsBlockSizes(f *profile.Filesystem) map[string]int {
	out := map[string]int{}
	if f.Ext != nil {
		out["block_size"] = f.Ext.BlockSize
	}
	if f.XFS != nil {
		out["block_size"] = f.XFS.BlockSize
		out["sector_size"] = f.XFS.SectorSize
	}
	return out
}
