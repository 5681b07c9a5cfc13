package capture

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/stratahq/strata/capture/parse"
	"github.com/stratahq/strata/profile"
)

var mdLevels = map[string]bool{"raid0": true, "raid1": true, "raid4": true, "raid5": true, "raid6": true, "raid10": true}

func (b *builder) raid() {
	for _, path := range sortedKeys(b.f.MD) {
		md := b.f.MD[path]
		if md.Export == nil && md.Detail == nil {
			b.skipDev(path, "its md details could not be read")
			continue
		}
		var level, uuid, arrayName, devName, metadata string
		var members []parse.MDMember
		if e := md.Export; e != nil {
			level, uuid, arrayName, devName, metadata = e.Values["MD_LEVEL"], e.Values["MD_UUID"], e.Values["MD_NAME"], e.Values["MD_DEVNAME"], e.Values["MD_METADATA"]
			members = e.Members
		}
		if d := md.Detail; d != nil {
			level, uuid, arrayName = or(level, d.Level), or(uuid, d.UUID), or(arrayName, d.Name)
			metadata = or(metadata, d.Version)
			if len(d.Members) > 0 {
				members = d.Members // it knows spares and faulty members by state
			}
		}
		want := devName
		if want == "" {
			if _, n, ok := strings.Cut(arrayName, ":"); ok {
				want = n
			}
		}
		if want == "" {
			want = strings.TrimPrefix(path, "/dev/")
		}
		if !mdLevels[level] {
			b.skipDev(path, fmt.Sprintf("md level %q is not one strata creates (raid0/1/4/5/6/10)", level))
			continue
		}
		name := b.claim(want, "raid")
		rp := "raid." + name
		r := profile.RAID{Name: name, Level: level, ArrayName: arrayName, UUID: uuid}
		if metadata != "" && metadata != "1.2" {
			r.Metadata = metadata
		}
		if r.Metadata == "0.90" || r.Metadata == "0.9" {
			r.Metadata = "0.90"
		}
		switch r.Metadata {
		case "", "1.0", "1.1", "0.90":
		default:
			b.note(rp, "superblock format %q is not one strata creates: restore uses 1.2", metadata)
			r.Metadata = ""
		}
		if d := md.Detail; d != nil {
			if d.ChunkKiB > 0 && level != "raid1" {
				r.Chunk = profile.Bytes(d.ChunkKiB * 1024)
			}
			r.Layout = parse.MDLayout(level, d.Layout)
			if d.Bitmap != "" && d.Bitmap != "Internal" {
				b.note(rp, "write-intent bitmap %q: not captured", d.Bitmap)
			}
		} else {
			b.note(rp, "mdadm --detail could not be read: chunk size and layout not captured")
		}
		missing := false
		for _, m := range members {
			ref := b.ref(m.Dev)
			if ref == "" {
				b.note(rp, "member %s is not part of this capture", m.Dev)
				missing = true
				continue
			}
			switch {
			case m.Role == "spare" || strings.Contains(m.State, "spare") && !strings.Contains(m.State, "rebuilding"):
				r.Spares = append(r.Spares, ref)
			case m.Role == "faulty" || strings.Contains(m.State, "faulty"):
				b.note(rp, "member %s is faulty: left out", m.Dev)
			case m.Role == "journal":
				b.note(rp, "journal device %s: not captured", m.Dev)
			default:
				r.Devices = append(r.Devices, ref)
			}
		}
		if missing || len(r.Devices) == 0 {
			b.skipDev(path, "not all its members are captured")
			delete(b.names, name)
			continue
		}
		b.refs[path] = name
		b.p.RAID = append(b.p.RAID, r)
	}
}

func or(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// skipDev leaves a device out of the profile, and with it everything on it.
func (b *builder) skipDev(path, why string) {
	b.skip[path] = why
	b.note("", "%s is not captured: %s", path, why)
}

// luks captures every LUKS header on a captured device.
func (b *builder) luks() {
	for _, dev := range sortedKeys(b.f.LUKS) {
		l := b.f.LUKS[dev]
		parent := b.ref(dev)
		if parent == "" {
			if _, skipped := b.skip[dev]; !skipped {
				b.skipDev(dev, "the device below it is not captured")
			}
			continue
		}
		kv := b.f.Probe[dev]
		uuid := strings.ToLower(or(kv["UUID"], l.UUID))
		// The name: the open mapping's, else crypttab's, else from the UUID.
		want, mapping := "", ""
		if bd := b.byPath[dev]; bd != nil {
			for _, c := range bd.Children {
				if c.Type == "crypt" {
					want, mapping = c.Name, c.Path
				}
			}
		}
		var ct *parse.CrypttabEntry
		for i, e := range b.f.Crypttab {
			if r := b.resolve(e.Device); r == dev || strings.EqualFold(strings.TrimPrefix(e.Device, "UUID="), uuid) {
				ct = &b.f.Crypttab[i]
				if want == "" {
					want = e.Name
				}
			}
		}
		if want == "" {
			want = "luks-" + strings.SplitN(uuid, "-", 2)[0]
		}
		name := b.claim(want, "luks")
		lp := "luks." + name
		x := profile.LUKS{Name: name, Device: parent, Version: l.Version, Cipher: l.Cipher, KeySize: l.KeySize, Hash: l.Hash,
			UUID: uuid, Label: kv["LABEL"], Subsystem: kv["SUBSYSTEM"], Key: profile.Key{Prompt: true}}
		if l.Version == 2 {
			x.SectorSize = l.SectorSize
		}
		if l.PBKDF != "" {
			k := &profile.PBKDF{Type: l.PBKDF, Iterations: l.Iterations, Parallel: l.Parallel}
			if l.MemoryKiB > 0 {
				k.Memory = profile.Bytes(int64(l.MemoryKiB) * 1024)
			}
			if l.Version == 1 {
				k.Type = "" // LUKS1 only knows pbkdf2
			}
			x.PBKDF = k
			if l.PBKDFHash != "" && l.PBKDFHash != l.Hash {
				b.note(lp, "the keyslot's PBKDF2 hash is %s while the digest's is %s: restore uses %s for both", l.PBKDFHash, l.Hash, l.Hash)
			}
		}
		b.note(lp+".key", "the passphrase is never captured: restore asks for it (prompt); use file or url for an unattended restore")
		if len(l.Keyslots) > 1 {
			b.note(lp, "%d keyslots in use (%v): restore creates one, for the passphrase it is given", len(l.Keyslots), l.Keyslots)
		}
		if len(l.Tokens) > 0 {
			b.note(lp, "LUKS2 tokens %s (TPM2, FIDO2, ...) are not captured: enrol them again after restore", strings.Join(l.Tokens, ", "))
		}
		if l.Integrity != "" {
			b.note(lp, "authenticated encryption (integrity %s) is not captured: restore formats without it", l.Integrity)
		}
		if len(l.Flags) > 0 {
			b.note(lp, "persistent flags %s are not captured: put them in crypttab options (e.g. discard)", strings.Join(l.Flags, ", "))
		}
		if len(l.Requirements) > 0 {
			b.note(lp, "header requirements %s (an unfinished reencryption?) are not captured", strings.Join(l.Requirements, ", "))
		}
		switch {
		case l.Version == 2 && l.DataOffset != 16*mib && l.DataOffset != 0:
			b.note(lp, "data starts at %s (metadata %s, keyslots %s): restore uses cryptsetup's default 16MiB header", offset(l.DataOffset), offset(l.MetadataSize), offset(l.KeyslotsSize))
		case l.Version == 1 && l.DataOffset != 2*mib && l.DataOffset != 0:
			b.note(lp, "data starts at %s: restore uses cryptsetup's default LUKS1 header", offset(l.DataOffset))
		}
		if ct != nil {
			c := &profile.Crypttab{}
			if ct.KeyFile != "" && ct.KeyFile != "none" && ct.KeyFile != "-" {
				c.KeyFile = ct.KeyFile
			}
			if ct.Options != "" && ct.Options != "luks" {
				c.Options = ct.Options
			}
			if ct.Name != name {
				b.note(lp, "crypttab names it %s, the open mapping is %s: the profile uses %s", ct.Name, want, name)
			}
			if *c != (profile.Crypttab{}) {
				x.Crypttab = c
			}
		} else if len(b.f.Crypttab) > 0 || b.f.Root != "" && len(b.f.Only) == 0 {
			b.note(lp, "not in /etc/crypttab")
		}
		if mapping != "" {
			b.refs[mapping] = name
		} else {
			b.note(lp, "not open: what it holds is not captured")
		}
		b.p.LUKS = append(b.p.LUKS, x)
	}
	for _, e := range b.f.Crypttab {
		if dev := b.resolve(e.Device); dev == "" || b.f.LUKS[dev] == nil {
			if strings.Contains(e.Options, "swap") || strings.Contains(e.Options, "tmp") || e.KeyFile == "/dev/urandom" {
				b.note("", "crypttab %s is a volatile (random key) mapping on %s: not captured", e.Name, e.Device)
			} else if len(b.f.Only) == 0 {
				b.note("", "crypttab %s (%s) matches no captured LUKS volume", e.Name, e.Device)
			}
		}
	}
}

// lvm captures the volume groups whose PVs are all captured.
func (b *builder) lvm() {
	for _, vg := range b.f.VGs {
		var pvs []parse.PV
		for _, pv := range b.f.PVs {
			if pv.VG == vg.Name {
				pvs = append(pvs, pv)
			}
		}
		inScope, missing := 0, []string{}
		for _, pv := range pvs {
			if b.ref(pv.Name) != "" {
				inScope++
			} else {
				missing = append(missing, pv.Name)
			}
		}
		if inScope == 0 {
			continue // another disk's group
		}
		if len(missing) > 0 {
			b.note("", "volume group %s is not captured: its PVs %s are not part of this capture", vg.Name, strings.Join(missing, ", "))
			continue
		}
		name := b.claim(vg.Name, "volume_groups")
		vp := "volume_groups." + name
		if name != vg.Name {
			b.note(vp, "the volume group is called %s: renamed because a disk, array or LUKS volume has that name", vg.Name)
		}
		g := profile.VolumeGroup{Name: name, UUID: vg.UUID, PVUUIDs: map[string]string{}}
		if vg.ExtentSize > 0 {
			g.ExtentSize = profile.Bytes(vg.ExtentSize)
		}
		for _, pv := range pvs {
			r := b.ref(pv.Name)
			g.PVs = append(g.PVs, r)
			if pv.UUID != "" {
				g.PVUUIDs[r] = pv.UUID
			}
			if pv.PEStart != 0 && pv.PEStart != mib {
				b.note(vp, "PV %s has its data at %s: restore uses LVM's default 1MiB", r, offset(pv.PEStart))
			}
		}
		b.res.Measured[name] = vg.Size
		var lvs []profile.LogicalVolume
		var snaps []string
		for _, lv := range lvsInOrder(b.f.LVs, vg.Name, pvs) {
			if lv.VG != vg.Name || lv.Hidden {
				continue
			}
			if lv.Snapshot() {
				snaps = append(snaps, lv.Name)
				continue
			}
			x := profile.LogicalVolume{Name: lv.Name, Size: profile.Bytes(lv.Size), UUID: lv.UUID}
			lp := vp + ".lvs." + lv.Name
			switch lv.SegType {
			case "linear":
			case "striped":
				if lv.Stripes >= 2 {
					x.Type, x.Stripes = "striped", lv.Stripes
					if lv.StripeSize > 0 {
						x.StripeSize = profile.Bytes(lv.StripeSize)
					}
				}
			case "raid1":
				x.Type, x.Mirrors = "raid1", max(lv.Stripes-1, 1)
			case "thin-pool":
				x.Type = "thin-pool"
			case "thin":
				x.Type, x.Pool = "thin", lv.Pool
			default:
				b.note(lp, "segment type %s is not one strata creates: captured as a linear LV of the same size", lv.SegType)
			}
			if lv.Segments > 1 && lv.SegType == "linear" {
				b.note(lp, "%d segments: restore makes one", lv.Segments)
			}
			ref := name + "/" + lv.Name
			b.res.Measured[ref] = lv.Size
			if lv.DMPath != "" && x.Type != "thin-pool" {
				b.refs[lv.DMPath] = ref
			}
			lvs = append(lvs, x)
		}
		g.LVs = lvs
		sortThin(g.LVs) // thin volumes after every pool
		if len(snaps) > 0 {
			b.note(vp, "snapshots %s are not captured", strings.Join(snaps, ", "))
		}
		if len(g.PVUUIDs) == 0 {
			g.PVUUIDs = nil
		}
		b.p.VolumeGroups = append(b.p.VolumeGroups, g)
	}
	if b.f.LVMSeen && len(b.f.VGs) == 0 && len(b.f.PVs) > 0 {
		b.note("", "LVM physical volumes were found but no volume group could be read")
	}
}

// lvsInOrder lists a group's LVs in the order their extents lie on the PVs
// (lvs itself sorts by name): the order they were created in, unless space
// was reused, and the order restore lays them out in. Thin volumes, which
// have no extents of their own, follow by name.
func lvsInOrder(all []parse.LV, vg string, pvs []parse.PV) []parse.LV {
	pvIndex := map[string]int{}
	for i, pv := range pvs {
		pvIndex[pv.Name] = i
	}
	byName := map[string]parse.LV{}
	var out []parse.LV
	for _, lv := range all {
		if lv.VG == vg {
			byName[lv.Name] = lv
			out = append(out, lv)
		}
	}
	pos := func(lv parse.LV) (int, int64) {
		for depth := 0; depth < 4; depth++ {
			dev, _, _ := strings.Cut(lv.Devices, ",")
			name, ext, ok := strings.Cut(strings.TrimSuffix(dev, ")"), "(")
			if !ok {
				return 1 << 30, 0
			}
			if i, ok := pvIndex[name]; ok {
				n, _ := strconv.ParseInt(ext, 10, 64)
				return i, n
			}
			sub, ok := byName[name] // a thin pool's data LV, a raid image
			if !ok {
				return 1 << 30, 0
			}
			lv = sub
		}
		return 1 << 30, 0
	}
	sort.SliceStable(out, func(i, j int) bool {
		pi, ei := pos(out[i])
		pj, ej := pos(out[j])
		if pi != pj {
			return pi < pj
		}
		if ei != ej {
			return ei < ej
		}
		return out[i].Name < out[j].Name
	})
	return out
}

// sortThin moves each thin volume right after its pool or the thin volumes
// before it, keeping everything else in place.
func sortThin(lvs []profile.LogicalVolume) {
	var plain, thin []profile.LogicalVolume
	for _, lv := range lvs {
		if lv.Type == "thin" {
			thin = append(thin, lv)
		} else {
			plain = append(plain, lv)
		}
	}
	copy(lvs, append(plain, thin...))
}
