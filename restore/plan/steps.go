package plan

import (
	"fmt"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"github.com/stratahq/strata/profile"
	"github.com/stratahq/strata/restore/argv"
	"github.com/stratahq/strata/restore/fstab"
	"github.com/stratahq/strata/restore/probe"
	"github.com/stratahq/strata/restore/table"
)

func (b *builder) add(s Step) {
	if b.steps[s.ID] {
		b.errorf("internal: step %s twice", s.ID)
		return
	}
	b.steps[s.ID] = true
	if s.Actions == nil {
		s.Actions = []Action{}
	}
	b.plan.Steps = append(b.plan.Steps, s)
}

func runA(a ...string) Action { return Action{Run: a} }

func lvmRun(a []string) Action { return Action{Run: a, Env: argv.Env} }

// after lists the steps that make refs usable, without duplicates.
func (b *builder) after(refs ...string) []string {
	var out []string
	seen := map[string]bool{}
	for _, r := range refs {
		if s := b.ready[r]; s != "" && !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}

func (b *builder) paths(refs []string) []string {
	var out []string
	for _, r := range refs {
		out = append(out, b.devs[r].Path)
	}
	return out
}

func (b *builder) buildSteps() {
	p := b.p
	for i := range p.Disks {
		b.diskSteps(&p.Disks[i], &b.plan.Disks[i])
	}
	// Stacked devices in the order stack() sized them (dependency order).
	for _, d := range b.plan.Devices {
		switch d.Kind {
		case "raid":
			b.raidSteps(b.raidByName(d.Ref))
		case "luks":
			b.luksSteps(b.luksByName(d.Ref))
		case "vg":
			b.vgSteps(b.vgByName(d.Ref))
		}
	}
	// A whole disk used without a table is wiped only when its content is
	// not there yet: the wipe's check is the consumer's.
	for i := range b.plan.Steps {
		s := &b.plan.Steps[i]
		if s.Kind == KindWipe && s.Check.Kind == "same-as" && s.Check.Step == "" {
			s.Check.Step = b.ready["content:"+s.Ref]
			if s.Check.Step == "" {
				s.Check.Kind, s.Check.Text = "", "always (nothing is built on "+s.Device+")"
			} else {
				s.Check.Text = "done when " + s.Check.Step + " is done"
			}
		}
	}
	b.fsSteps()
	b.mountSteps()
}

func (b *builder) raidByName(n string) *profile.RAID {
	for i := range b.p.RAID {
		if b.p.RAID[i].Name == n {
			return &b.p.RAID[i]
		}
	}
	return nil
}

func (b *builder) luksByName(n string) *profile.LUKS {
	for i := range b.p.LUKS {
		if b.p.LUKS[i].Name == n {
			return &b.p.LUKS[i]
		}
	}
	return nil
}

func (b *builder) vgByName(n string) *profile.VolumeGroup {
	for i := range b.p.VolumeGroups {
		if b.p.VolumeGroups[i].Name == n {
			return &b.p.VolumeGroups[i]
		}
	}
	return nil
}

// diskSteps: release (with --teardown), wipe, table.
func (b *builder) diskSteps(pd *profile.Disk, d *Disk) {
	dev := b.probe[pd.Name]
	var first []string
	if use := dev.InUse(b.own); b.o.Teardown && use != "" {
		id := "release:" + pd.Name
		b.add(Step{ID: id, Kind: KindRelease, Ref: pd.Name, Device: d.Device,
			Summary: fmt.Sprintf("tear down what uses %s: %s", d.Device, use),
			Check:   Check{Kind: "released", Disk: pd.Name, Device: d.Device, Text: "done when nothing else than this restore's own devices uses " + d.Device},
			Actions: b.releaseActions(dev)})
		first = []string{id}
		b.ready[pd.Name] = id
	}
	if d.Table == nil { // table: none
		if !b.keepDev[pd.Name] {
			id := "wipe:" + pd.Name
			b.add(Step{ID: id, Kind: KindWipe, Ref: pd.Name, Device: d.Device, Redo: b.o.Fresh, After: first,
				Summary: "erase old signatures on " + d.Device,
				Check:   Check{Kind: "same-as"},
				Actions: append(wipeOld(d), runA(argv.Wipefs(d.Device)...))})
			b.ready[pd.Name] = id
		}
		return
	}
	var parts []string
	for _, pt := range d.Table.Partitions {
		parts = append(parts, partPath(d.Device, pt.Number))
	}
	if d.KeepTable {
		id := "verify-table:" + pd.Name
		b.add(Step{ID: id, Kind: KindVerifyTable, Ref: pd.Name, Device: d.Device, After: first,
			Summary: fmt.Sprintf("verify the kept %s table on %s (%d partitions)", d.Table.Type, d.Device, len(d.Table.Partitions)),
			Check:   Check{Kind: "table", Disk: pd.Name, Device: d.Device, Text: "the table on " + d.Device + " has the planned partitions (start, size, type, PARTUUID)"},
			Actions: []Action{{Wait: parts}}})
		for _, pt := range pd.Partitions {
			b.ready[pd.Name+"/"+pt.Name] = id
		}
		return
	}
	tid := "table:" + pd.Name
	wid := "wipe:" + pd.Name
	b.add(Step{ID: wid, Kind: KindWipe, Ref: pd.Name, Device: d.Device, After: first, Redo: b.o.Fresh,
		Summary: "erase old signatures on " + d.Device + " and its partitions",
		Check:   Check{Kind: "same-as", Step: tid, Text: "done when " + tid + " is done (the planned table is on the disk)"},
		Actions: append(wipeOld(d), runA(argv.Wipefs(d.Device)...))})
	var acts []Action
	if table.NeedsSfdisk(d.Table) {
		// go-diskfs cannot write msdos extended/logical partitions.
		acts = append(acts, Action{Run: argv.Sfdisk(d.Device), Input: table.SfdiskScript(d.Table, mib)})
	} else {
		acts = append(acts, Action{WriteTable: d.Device})
	}
	acts = append(acts, Action{Reread: d.Device}, Action{Wait: parts})
	for _, pp := range parts {
		acts = append(acts, runA(argv.Wipefs(pp)...))
	}
	b.add(Step{ID: tid, Kind: KindTable, Ref: pd.Name, Device: d.Device, After: []string{wid}, Redo: b.o.Fresh,
		Summary: fmt.Sprintf("write a %s table on %s: %d partitions", d.Table.Type, d.Device, len(d.Table.Partitions)),
		Check:   Check{Kind: "table", Disk: pd.Name, Device: d.Device, Text: "the table on " + d.Device + " is the planned one (identity, start, size, type, name)"},
		Actions: acts})
	for _, pt := range pd.Partitions {
		b.ready[pd.Name+"/"+pt.Name] = tid
	}
}

// wipeOld erases the signatures of the partitions that are there now, before
// the table that names them goes.
func wipeOld(d *Disk) []Action {
	var out []Action
	for _, o := range d.Old {
		out = append(out, runA(argv.Wipefs(o)...))
	}
	return out
}

// releaseActions unmount, swap off and close what sits on a disk, top down;
// the restore's own devices stay.
func (b *builder) releaseActions(d *probe.Disk) []Action {
	var acts []Action
	var mounts []probe.Mount
	var holders []probe.Holder
	for _, u := range d.Uses() {
		switch {
		case b.own(u):
		case u.Mount != nil:
			mounts = append(mounts, *u.Mount)
		case u.Swap != "":
			acts = append(acts, Action{Swapoff: u.Swap})
		case u.Holder != nil:
			holders = append(holders, *u.Holder)
		}
	}
	sort.Slice(mounts, func(i, j int) bool { return mounts[i].Point > mounts[j].Point }) // children first
	var um []Action
	for _, m := range mounts {
		um = append(um, runA(argv.Umount(m.Point)...))
	}
	acts = append(um, acts...)
	seenVG := map[string]bool{}
	for i := len(holders) - 1; i >= 0; i-- {
		h := holders[i]
		switch h.Kind {
		case "lvm":
			vg := vgOfMapper(h.Map)
			if !seenVG[vg] {
				seenVG[vg] = true
				acts = append(acts, lvmRun(b.lvm.VGChange(vg, false)))
			}
		case "crypt":
			acts = append(acts, runA(argv.LuksClose(h.Map)...))
		case "md":
			acts = append(acts, runA(argv.MdadmStop("/dev/"+h.Name)...))
		default:
			acts = append(acts, runA("dmsetup", "remove", h.Map))
		}
	}
	return acts
}

// vgOfMapper recovers the VG name from a device-mapper name (vg--x-lv).
func vgOfMapper(m string) string {
	for i := 0; i < len(m); i++ {
		if m[i] == '-' {
			if i+1 < len(m) && m[i+1] == '-' {
				i++
				continue
			}
			return strings.ReplaceAll(m[:i], "--", "-")
		}
	}
	return m
}

func (b *builder) raidSteps(r *profile.RAID) {
	d := b.devs[r.Name]
	members := b.paths(r.Devices)
	spares := b.paths(r.Spares)
	all := append(append([]string{}, r.Devices...), r.Spares...)
	var id string
	if d.Keep {
		id = "verify-raid:" + r.Name
		uuid := ""
		if d.UUIDFrom == "profile" {
			uuid = r.UUID
		}
		b.add(Step{ID: id, Kind: KindVerifyRAID, Ref: r.Name, Device: d.Path, After: b.after(all...),
			Summary: fmt.Sprintf("verify the kept %s array %s on %s", r.Level, r.Name, strings.Join(members, ", ")),
			Check:   Check{Kind: "md-members", Members: members, Type: r.Level, UUID: uuid, Text: "every member carries the array's superblock (" + r.Level + idText(uuid) + ")"}})
	} else {
		id = "raid:" + r.Name
		b.add(Step{ID: id, Kind: KindRAID, Ref: r.Name, Device: d.Path, After: b.after(all...), Redo: b.o.Fresh,
			Summary: fmt.Sprintf("create %s array %s (%s) on %s", r.Level, d.Path, profile.HumanBytes(d.Size), strings.Join(members, ", ")),
			Check:   Check{Kind: "md-members", Members: members, Type: r.Level, UUID: d.UUID, Text: "every member carries a superblock with UUID " + d.UUID},
			Actions: []Action{runA(argv.MdadmCreate(r, d.Path, d.UUID, members, spares)...)}})
	}
	for _, m := range all {
		b.ready["content:"+m] = id
	}
	uuid := d.UUID
	aid := "assemble:" + r.Name
	b.add(Step{ID: aid, Kind: KindAssemble, Ref: r.Name, Device: d.Path, After: []string{id},
		Summary: "run array " + d.Path,
		Check:   Check{Kind: "md-active", Device: d.Path, UUID: uuid, Type: r.Level, Text: d.Path + " is active" + idText(uuid)},
		Actions: []Action{runA(argv.MdadmAssemble(d.Path, uuid, append(members, spares...))...)}})
	b.ready[r.Name] = aid
}

func idText(uuid string) string {
	if uuid == "" {
		return ""
	}
	return " with UUID " + uuid
}

func (b *builder) luksSteps(l *profile.LUKS) {
	d := b.devs[l.Name]
	under := b.devs[l.Device]
	var id string
	if d.Keep {
		id = "verify-luks:" + l.Name
		uuid := ""
		if d.UUIDFrom == "profile" {
			uuid = d.UUID
		}
		b.add(Step{ID: id, Kind: KindVerifyLUKS, Ref: l.Name, Device: under.Path, After: b.after(l.Device),
			Summary: "verify the kept LUKS volume on " + under.Path,
			Check:   Check{Kind: "luks", Device: under.Path, UUID: uuid, Text: under.Path + " has a LUKS header" + idText(uuid)}})
	} else {
		id = "luks:" + l.Name
		b.add(Step{ID: id, Kind: KindLUKS, Ref: l.Name, Device: under.Path, After: b.after(l.Device), Redo: b.o.Fresh,
			Summary: fmt.Sprintf("format %s as %s (key: %s)", under.Path, d.Type, keySource(l.Key)),
			Check:   Check{Kind: "luks", Device: under.Path, UUID: d.UUID, Text: under.Path + " has a LUKS header with UUID " + d.UUID},
			Actions: []Action{{Run: argv.LuksFormat(l, under.Path, d.UUID), Key: l.Name}}})
	}
	b.ready["content:"+l.Device] = id
	oid := "open:" + l.Name
	b.add(Step{ID: oid, Kind: KindOpen, Ref: l.Name, Device: d.Path, After: []string{id},
		Summary: fmt.Sprintf("open %s as %s", under.Path, d.Path),
		Check:   Check{Kind: "luks-open", Name: l.Name, Device: under.Path, Text: d.Path + " is open on " + under.Path},
		Actions: []Action{{Run: argv.LuksOpen(under.Path, l.Name), Key: l.Name}}})
	b.ready[l.Name] = oid
}

// keySource names where a passphrase comes from, never the passphrase.
func keySource(k profile.Key) string {
	switch {
	case k.File != "":
		return "file " + k.File
	case k.URL != "":
		return "URL " + k.URL
	case k.Literal != "":
		return "literal in the profile (test only)"
	}
	return "prompt"
}

func (b *builder) vgSteps(vg *profile.VolumeGroup) {
	vd := b.devs[vg.Name]
	kept := vd.Keep
	ext := int64(4 * mib)
	if vg.ExtentSize.IsAbsolute() {
		ext = vg.ExtentSize.Bytes
	}
	var pvSteps []string
	for _, pv := range vg.PVs {
		dev := b.devs[pv].Path
		uuid, from := vg.PVUUIDs[pv], "profile"
		if uuid == "" && !kept {
			uuid, from = b.ids.lvmUUID("pv", vg.Name+"\x00"+pv), "derived"
		}
		if kept {
			id := "verify-pv:" + vg.Name + ":" + pv
			b.add(Step{ID: id, Kind: KindVerifyPV, Ref: pv, Device: dev, After: b.after(pv),
				Summary: "verify the kept physical volume " + dev + " of " + vg.Name,
				Check:   Check{Kind: "pv", Device: dev, Name: vg.Name, UUID: uuid, Text: dev + " is a PV of " + vg.Name + idText(uuid)}})
			pvSteps = append(pvSteps, id)
			b.ready["content:"+pv] = id
			continue
		}
		id := "pv:" + vg.Name + ":" + pv
		_ = from
		b.add(Step{ID: id, Kind: KindPV, Ref: pv, Device: dev, After: b.after(pv), Redo: b.o.Fresh,
			Summary: fmt.Sprintf("make %s a physical volume (UUID %s, %s)", dev, uuid, from),
			Check:   Check{Kind: "pv", Device: dev, UUID: uuid, Text: dev + " is a PV with UUID " + uuid},
			Actions: []Action{lvmRun(b.lvm.PVCreate(dev, uuid))}})
		pvSteps = append(pvSteps, id)
		b.ready["content:"+pv] = id
	}
	var vgStep string
	if kept {
		vgStep = "verify-vg:" + vg.Name
		b.add(Step{ID: vgStep, Kind: KindVerifyVG, Ref: vg.Name, After: pvSteps,
			Summary: "verify the kept volume group " + vg.Name,
			Check:   Check{Kind: "vg", Name: vg.Name, UUID: profileOnly(vd), Text: "volume group " + vg.Name + " exists" + idText(profileOnly(vd))}})
	} else {
		vgStep = "vg:" + vg.Name
		b.add(Step{ID: vgStep, Kind: KindVG, Ref: vg.Name, After: pvSteps, Redo: b.o.Fresh,
			Summary: fmt.Sprintf("create volume group %s: %d extents of %s on %s", vg.Name, vd.Extents, profile.FormatBytes(ext), strings.Join(b.paths(vg.PVs), ", ")),
			Check:   Check{Kind: "vg", Name: vg.Name, Text: "volume group " + vg.Name + " exists"},
			Actions: []Action{lvmRun(b.lvm.VGCreate(vg.Name, ext, b.paths(vg.PVs), b.mixedSectors(vg) != nil))}})
	}
	last := []string{vgStep}
	rest := lastRest(vg)
	lvIDs := map[string]string{}
	for _, lv := range lvOrder(vg) {
		ref := vg.Name + "/" + lv.Name
		d := b.devs[ref]
		deps := []string{vgStep}
		if lv.Type == "thin" {
			deps = append(deps, lvIDs[lv.Pool])
		}
		size := d.Size
		if lv.Name == rest {
			size = 0 // 100%FREE: whatever is left
		}
		if d.Keep {
			// The LV that took the rest has whatever size the disks gave it.
			id := "verify-lv:" + ref
			b.add(Step{ID: id, Kind: KindVerifyLV, Ref: ref, Device: d.Path, After: deps,
				Summary: "verify the kept logical volume " + ref,
				Check:   Check{Kind: "lv", Name: ref, Size: size, UUID: profileOnly(d), Text: ref + " exists" + sizeText(size) + idText(profileOnly(d))}})
			lvIDs[lv.Name] = id
			last = append(last, id)
			continue
		}
		t := lv.Type
		if t == "" {
			t = "linear"
		}
		spec := argv.LV{VG: vg.Name, Name: lv.Name, Type: t, Extents: d.Extents, Rest: lv.Name == rest,
			Pool: lv.Pool, Stripes: lv.Stripes, Mirrors: lv.Mirrors}
		if lv.StripeSize.IsAbsolute() {
			spec.StripeSize = lv.StripeSize.Bytes
		}
		if t == "thin" {
			spec.VirtualSize = d.Size
		}
		if m, ok := b.thin[vg.Name][lv.Name]; ok {
			spec.MetadataSize, spec.ChunkSize = m[0], m[1]
		}
		id := "lv:" + ref
		sz := profile.HumanBytes(d.Size)
		if size == 0 {
			sz = "the rest (about " + sz + ")"
		}
		b.add(Step{ID: id, Kind: KindLV, Ref: ref, Device: d.Path, After: deps, Redo: b.o.Fresh && !kept,
			Summary: fmt.Sprintf("create %s LV %s: %s", t, ref, sz),
			Check:   Check{Kind: "lv", Name: ref, Size: size, Type: t, Text: ref + " exists" + sizeText(size)},
			Actions: []Action{lvmRun(b.lvm.LVCreate(spec))}})
		lvIDs[lv.Name] = id
		last = append(last, id)
	}
	if !kept && hasLVMIDs(vg) {
		id := "lvm-ids:" + vg.Name
		file := filepath.Join(b.o.WorkDir, "lvm-"+vg.Name+".vg")
		lvu := map[string]string{}
		for _, lv := range vg.LVs {
			if lv.UUID != "" {
				lvu[lv.Name] = lv.UUID
			}
		}
		thin := false
		for _, lv := range vg.LVs {
			thin = thin || lv.Type == "thin-pool"
		}
		// vgcreate and lvcreate cannot take UUIDs: restore them through a
		// metadata backup with the captured ids, as vgcfgrestore writes it.
		b.add(Step{ID: id, Kind: KindLVMIDs, Ref: vg.Name, After: last,
			Summary: "give volume group " + vg.Name + " and its LVs their captured UUIDs (vgcfgbackup, edit, vgcfgrestore)",
			Check:   Check{Kind: "lvm-ids", Name: vg.Name, UUID: vg.UUID, LVUUIDs: lvu, Text: "the group and LVs have the profile's UUIDs"},
			Actions: []Action{
				{Mkdir: b.o.WorkDir},
				lvmRun(b.lvm.VGChange(vg.Name, false)),
				lvmRun(b.lvm.VGCfgBackup(vg.Name, file)),
				{LVMIDs: file},
				lvmRun(b.lvm.VGCfgRestore(vg.Name, file, thin)),
			}})
		last = []string{id}
	}
	aid := "activate:" + vg.Name
	b.add(Step{ID: aid, Kind: KindActivate, Ref: vg.Name, After: last,
		Summary: "activate the logical volumes of " + vg.Name,
		Check:   Check{Kind: "lv-active", Name: vg.Name, Text: "every LV of " + vg.Name + " is active"},
		Actions: []Action{lvmRun(b.lvm.VGChange(vg.Name, true))}})
	for _, lv := range vg.LVs {
		b.ready[vg.Name+"/"+lv.Name] = aid
	}
}

func sizeText(n int64) string {
	if n == 0 {
		return ""
	}
	return " with " + profile.HumanBytes(n)
}

func profileOnly(d *Device) string {
	if d.UUIDFrom == "profile" {
		return d.UUID
	}
	return ""
}

func hasLVMIDs(vg *profile.VolumeGroup) bool {
	if vg.UUID != "" {
		return true
	}
	for _, lv := range vg.LVs {
		if lv.UUID != "" {
			return true
		}
	}
	return false
}

// fsSteps make (or verify) every filesystem and btrfs subvolume.
func (b *builder) fsSteps() {
	for i := range b.p.Filesystems {
		f := &b.p.Filesystems[i]
		d := b.devs[f.Device]
		fs := d.FS
		var extra []string
		refs := []string{f.Device}
		if f.Btrfs != nil {
			extra = b.paths(f.Btrfs.Devices)
			refs = append(refs, f.Btrfs.Devices...)
		}
		var id string
		if fs.Keep {
			id = "verify-fs:" + f.Device
			uuid := ""
			if fs.UUIDFrom == "profile" {
				uuid = fs.UUID
			}
			b.add(Step{ID: id, Kind: KindVerifyFS, Ref: f.Device, Device: d.Path, After: b.after(refs...),
				Summary: fmt.Sprintf("verify the kept %s filesystem on %s", f.Type, d.Path),
				Check:   Check{Kind: "blkid", Device: d.Path, Type: f.Type, UUID: uuid, Text: d.Path + " holds " + f.Type + idText(uuid)}})
		} else {
			id = "mkfs:" + f.Device
			cmds, notes := argv.Mkfs(f, d.Path, fs.UUID, extra)
			b.plan.Warnings = append(b.plan.Warnings, notes...)
			var acts []Action
			for _, c := range cmds {
				acts = append(acts, runA(c...))
			}
			what := f.Type
			if f.Label != "" {
				what += fmt.Sprintf(" %q", f.Label)
			}
			b.add(Step{ID: id, Kind: KindMkfs, Ref: f.Device, Device: d.Path, After: b.after(refs...), Redo: b.o.Fresh,
				Summary: fmt.Sprintf("make %s on %s (UUID %s)", what, d.Path, fs.UUID),
				Check:   Check{Kind: "blkid", Device: d.Path, Type: f.Type, UUID: fs.UUID, Text: d.Path + " holds " + f.Type + " with UUID " + fs.UUID},
				Actions: acts})
		}
		for _, r := range refs {
			b.ready["content:"+r] = id
		}
		b.ready["fs:"+f.Device] = id
		if f.Btrfs != nil && len(f.Btrfs.Subvolumes) > 0 && !fs.Keep {
			dir := filepath.Join(b.o.WorkDir, "mnt", sanitize(f.Device))
			acts := []Action{{Mkdir: dir}, {Run: argv.Umount(dir), MayFail: true}, runA(argv.Mount("btrfs", "subvolid=5", d.Path, dir)...)}
			var names []string
			for _, s := range f.Btrfs.Subvolumes {
				sp := filepath.Join(dir, s.Path)
				acts = append(acts, Action{Run: argv.BtrfsSubvolumeCreate(sp), UnlessExists: sp})
				names = append(names, s.Path)
			}
			if f.Btrfs.DefaultSubvolume != "" {
				acts = append(acts, runA(argv.BtrfsSetDefault(filepath.Join(dir, f.Btrfs.DefaultSubvolume))...))
			}
			acts = append(acts, runA(argv.Umount(dir)...))
			sid := "subvolumes:" + f.Device
			b.add(Step{ID: sid, Kind: KindSubvolumes, Ref: f.Device, Device: d.Path, After: []string{id},
				Summary: fmt.Sprintf("create btrfs subvolumes %s on %s", strings.Join(names, ", "), d.Path),
				Check:   Check{Text: "always: each subvolume is created only when missing"},
				Actions: acts})
			b.ready["fs:"+f.Device] = sid
		}
	}
}

type mountPoint struct {
	path, dev, ref, fstype, options, subvol string
	fsIndex                                 int
	m                                       *profile.Mount
}

func (b *builder) mountSteps() {
	var mps []mountPoint
	for i := range b.p.Filesystems {
		f := &b.p.Filesystems[i]
		d := b.devs[f.Device]
		if f.Mount != nil {
			mps = append(mps, mountPoint{path: f.Mount.Path, dev: d.Path, ref: f.Device, fstype: f.Type, options: f.Mount.Options, fsIndex: i, m: f.Mount})
		}
		if f.Btrfs != nil {
			for _, s := range f.Btrfs.Subvolumes {
				if s.Mount != nil {
					mps = append(mps, mountPoint{path: s.Mount.Path, dev: d.Path, ref: f.Device, fstype: f.Type, options: s.Mount.Options, subvol: s.Path, fsIndex: i, m: s.Mount})
				}
			}
		}
	}
	sort.Slice(mps, func(i, j int) bool { return mps[i].path < mps[j].path }) // a parent sorts before its children
	var mountIDs []string
	mounted := map[string]string{}
	for _, mp := range mps {
		dir := joinRoot(b.o.TargetRoot, mp.path)
		deps := []string{b.ready["fs:"+mp.ref]}
		for q := mp.path; q != "/"; {
			q = path.Dir(q)
			if id, ok := mounted[q]; ok {
				deps = append(deps, id)
				break
			}
		}
		var extra []string
		root := "/"
		if mp.subvol != "" {
			extra = append(extra, "subvol="+mp.subvol)
			root = "/" + mp.subvol
		}
		if b.o.ReadOnly {
			extra = append(extra, "ro")
		}
		opts := argv.MountOptions(mp.options, extra...)
		id := "mount:" + mp.path
		b.add(Step{ID: id, Kind: KindMount, Ref: mp.path, Device: mp.dev, After: deps,
			Summary: fmt.Sprintf("mount %s on %s", mp.dev, dir) + subvolText(mp.subvol),
			Check:   Check{Kind: "mounted", Path: dir, Device: mp.dev, Root: root, Text: dir + " is mounted from " + mp.dev + subvolText(mp.subvol)},
			Actions: []Action{{Mkdir: dir}, runA(argv.Mount(mp.fstype, opts, mp.dev, dir)...)}})
		mounted[mp.path] = id
		mountIDs = append(mountIDs, id)
		b.plan.Fstab = append(b.plan.Fstab, b.fstabEntry(mp))
	}
	for i := range b.p.Filesystems {
		f := &b.p.Filesystems[i]
		if f.Type != "swap" {
			continue
		}
		d := b.devs[f.Device]
		opts := "sw"
		if f.Swap != nil && f.Swap.Options != "" {
			opts = f.Swap.Options
		}
		b.plan.Fstab = append(b.plan.Fstab, fstab.Entry{Ref: f.Device, Device: d.Path, UUID: d.FS.UUID, Resolve: d.FS.UUIDFrom != "profile",
			Path: "none", Type: "swap", Options: opts})
		mountIDs = append(mountIDs, b.ready["fs:"+f.Device])
	}
	for _, l := range b.p.LUKS {
		d := b.devs[l.Name]
		e := fstab.CryptEntry{Name: l.Name, Device: b.devs[l.Device].Path, UUID: d.UUID, Resolve: d.UUIDFrom != "profile", KeyFile: "none", Options: "luks"}
		if c := l.Crypttab; c != nil {
			if c.KeyFile != "" {
				e.KeyFile = c.KeyFile
			}
			if c.Options != "" {
				e.Options = c.Options
			}
		}
		b.plan.Crypttab = append(b.plan.Crypttab, e)
	}
	if b.o.Open {
		b.plan.Fstab, b.plan.Crypttab = nil, nil // opening writes nothing, not even the target's fstab
		return
	}
	if len(b.plan.Fstab) == 0 && len(b.plan.Crypttab) == 0 {
		return
	}
	etc := joinRoot(b.o.TargetRoot, "/etc")
	acts := []Action{{Mkdir: etc}, {Write: "fstab"}}
	text := etc + "/fstab is as planned"
	if len(b.plan.Crypttab) > 0 {
		acts = append(acts, Action{Write: "crypttab"})
		text = etc + "/fstab and crypttab are as planned"
	}
	var deps []string
	for _, id := range mountIDs {
		if id != "" {
			deps = append(deps, id)
		}
	}
	b.add(Step{ID: "fstab", Kind: KindFstab, Ref: "/etc/fstab", After: deps,
		Summary: "write " + etc + "/fstab" + map[bool]string{true: " and crypttab", false: ""}[len(b.plan.Crypttab) > 0] + " (by UUID)",
		Check:   Check{Kind: "file", Path: etc, Text: text},
		Actions: acts})
}

func subvolText(s string) string {
	if s == "" {
		return ""
	}
	return " (subvolume " + s + ")"
}

func (b *builder) fstabEntry(mp mountPoint) fstab.Entry {
	fs := b.devs[mp.ref].FS
	opts := mp.options
	if opts == "" {
		opts = "defaults"
	}
	if mp.subvol != "" {
		opts += ",subvol=" + mp.subvol
	}
	pass := mp.m.Pass
	if pass == 0 {
		switch {
		case mp.path == "/":
			pass = 1
		case strings.HasPrefix(mp.fstype, "ext"):
			pass = 2
		}
	}
	return fstab.Entry{Ref: mp.ref, Device: mp.dev, UUID: fs.UUID, Resolve: fs.UUIDFrom != "profile",
		Path: mp.path, Type: mp.fstype, Options: opts, Dump: mp.m.Dump, Pass: pass}
}
