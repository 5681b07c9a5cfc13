package drill

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strings"

	"github.com/stratahq/strata/profile"
)

// Markers frame the inventory the restored system prints on its console.
const (
	InventoryBegin = "STRATA-INVENTORY-BEGIN"
	InventoryEnd   = "STRATA-INVENTORY-END"
)

// inventoryCommands print, in the restored system, what Verify compares with
// the profile. One line, so it can be typed on a serial console.
const inventoryCommands = `lsblk -J -b -o NAME,PATH,TYPE,FSTYPE,UUID,LABEL,PARTUUID,PARTLABEL,SIZE,MOUNTPOINTS; echo ---; findmnt -J -o TARGET,SOURCE,FSTYPE,UUID,LABEL,OPTIONS; echo ---; if [ -d /sys/firmware/efi ]; then echo uefi; else echo bios; fi`

// InventoryScript is the inventory with its markers, for running by hand.
const InventoryScript = `echo ` + InventoryBegin + `; ` + inventoryCommands + `; echo ` + InventoryEnd

// BlockDev is one node of lsblk's tree, flattened.
type BlockDev struct {
	Name        string     `json:"name"`
	Path        string     `json:"path"`
	Type        string     `json:"type"`
	FSType      string     `json:"fstype"`
	UUID        string     `json:"uuid"`
	Label       string     `json:"label"`
	PartUUID    string     `json:"partuuid"`
	PartLabel   string     `json:"partlabel"`
	Size        int64      `json:"size"`
	Mountpoints []string   `json:"mountpoints"`
	Children    []BlockDev `json:"children"`
	Parent      string     `json:"-"` // path of the device it sits on
}

// Mount is one line of findmnt, flattened.
type Mount struct {
	Target   string  `json:"target"`
	Source   string  `json:"source"`
	FSType   string  `json:"fstype"`
	UUID     string  `json:"uuid"`
	Label    string  `json:"label"`
	Options  string  `json:"options"`
	Children []Mount `json:"children"`
}

// Inventory is the restored system as it reported itself.
type Inventory struct {
	Devices  []BlockDev
	Mounts   []Mount
	Firmware string // "uefi" or "bios"
}

var inventoryRE = regexp.MustCompile(`(?s)` + InventoryBegin + `\r?\n(.*?)` + InventoryEnd)

// ParseInventory reads the inventory out of console output (which may carry
// other lines and \r from the serial line).
func ParseInventory(console string) (Inventory, error) {
	m := inventoryRE.FindAllStringSubmatch(console, -1)
	if m == nil {
		return Inventory{}, fmt.Errorf("no inventory in the console output")
	}
	body := strings.ReplaceAll(m[len(m)-1][1], "\r", "")
	parts := strings.Split(body, "\n---\n")
	if len(parts) != 3 {
		return Inventory{}, fmt.Errorf("inventory has %d parts, want 3", len(parts))
	}
	var inv Inventory
	var lsblk struct {
		BlockDevices []BlockDev `json:"blockdevices"`
	}
	if err := json.Unmarshal([]byte(parts[0]), &lsblk); err != nil {
		return inv, fmt.Errorf("inventory lsblk: %w", err)
	}
	var walk func(ds []BlockDev, parent string)
	walk = func(ds []BlockDev, parent string) {
		for _, d := range ds {
			d.Parent = parent
			kids := d.Children
			d.Children = nil
			inv.Devices = append(inv.Devices, d)
			walk(kids, d.Path)
		}
	}
	walk(lsblk.BlockDevices, "")
	var fm struct {
		Filesystems []Mount `json:"filesystems"`
	}
	if err := json.Unmarshal([]byte(parts[1]), &fm); err != nil {
		return inv, fmt.Errorf("inventory findmnt: %w", err)
	}
	var mwalk func(ms []Mount)
	mwalk = func(ms []Mount) {
		for _, mt := range ms {
			kids := mt.Children
			mt.Children = nil
			inv.Mounts = append(inv.Mounts, mt)
			mwalk(kids)
		}
	}
	mwalk(fm.Filesystems)
	inv.Firmware = strings.TrimSpace(parts[2])
	return inv, nil
}

// Check is one verified property of the restored system.
type Check struct {
	Name   string `json:"name"`
	Pass   bool   `json:"pass"`
	Detail string `json:"detail,omitempty"`
}

func (inv Inventory) mount(target string) *Mount {
	for i := range inv.Mounts {
		if inv.Mounts[i].Target == target {
			return &inv.Mounts[i]
		}
	}
	return nil
}

// Verify compares the restored system with its profile: every mount with its
// type, UUID and label; swap in use; the LUKS, LVM and md structure; the boot
// path (UEFI or BIOS).
func Verify(p *profile.Profile, inv Inventory) []Check {
	var out []Check
	add := func(name string, ok bool, format string, a ...any) {
		c := Check{Name: name, Pass: ok}
		if !ok || format != "" {
			c.Detail = fmt.Sprintf(format, a...)
		}
		out = append(out, c)
	}
	for _, f := range p.Filesystems {
		type want struct {
			path, subvol string
		}
		var mounts []want
		if f.Mount != nil {
			mounts = append(mounts, want{f.Mount.Path, ""})
		}
		if f.Btrfs != nil {
			for _, s := range f.Btrfs.Subvolumes {
				if s.Mount != nil {
					mounts = append(mounts, want{s.Mount.Path, s.Path})
				}
			}
		}
		for _, w := range mounts {
			name := "mount " + w.path
			m := inv.mount(w.path)
			switch {
			case m == nil:
				add(name, false, "nothing is mounted at %s", w.path)
			case m.FSType != f.Type:
				add(name, false, "%s is %s, the profile says %s", w.path, m.FSType, f.Type)
			case f.UUID != "" && !strings.EqualFold(m.UUID, f.UUID):
				add(name, false, "%s has UUID %s, the profile says %s", w.path, m.UUID, f.UUID)
			case f.Label != "" && m.Label != f.Label:
				add(name, false, "%s has label %q, the profile says %q", w.path, m.Label, f.Label)
			case w.subvol != "" && !strings.HasSuffix(m.Source, "[/"+w.subvol+"]"):
				add(name, false, "%s comes from %s, the profile says subvolume %s", w.path, m.Source, w.subvol)
			default:
				add(name, true, "%s %s from %s", m.FSType, m.UUID, m.Source)
			}
		}
		if f.Type == "swap" {
			name := "swap " + f.Device
			var found *BlockDev
			for i, d := range inv.Devices {
				if d.FSType == "swap" && (f.UUID == "" || strings.EqualFold(d.UUID, f.UUID)) {
					found = &inv.Devices[i]
				}
			}
			switch {
			case found == nil:
				add(name, false, "no swap device with UUID %q", f.UUID)
			case !contains(found.Mountpoints, "[SWAP]"):
				add(name, false, "swap on %s is not in use", found.Path)
			default:
				add(name, true, "in use on %s", found.Path)
			}
		}
	}
	for _, l := range p.LUKS {
		name := "luks " + l.Name
		var header, mapping *BlockDev
		for i, d := range inv.Devices {
			if d.Type == "crypt" && d.Name == l.Name {
				mapping = &inv.Devices[i]
			}
		}
		if mapping != nil {
			for i, d := range inv.Devices {
				if d.Path == mapping.Parent && d.FSType == "crypto_LUKS" {
					header = &inv.Devices[i]
				}
			}
		}
		switch {
		case mapping == nil:
			add(name, false, "no open dm-crypt mapping %s", l.Name)
		case header == nil:
			add(name, false, "mapping %s does not sit on a LUKS device", l.Name)
		case l.UUID != "" && !strings.EqualFold(header.UUID, l.UUID):
			add(name, false, "LUKS UUID %s, the profile says %s", header.UUID, l.UUID)
		default:
			add(name, true, "open on %s (LUKS UUID %s)", header.Path, header.UUID)
		}
	}
	for _, vg := range p.VolumeGroups {
		for _, lv := range vg.LVs {
			if lv.Type == "thin-pool" {
				continue
			}
			dm := strings.ReplaceAll(vg.Name, "-", "--") + "-" + strings.ReplaceAll(lv.Name, "-", "--")
			found := false
			for _, d := range inv.Devices {
				found = found || d.Type == "lvm" && d.Name == dm
			}
			add("lv "+vg.Name+"/"+lv.Name, found, "%s", map[bool]string{true: "active", false: "logical volume " + dm + " is not active"}[found])
		}
	}
	for _, r := range p.RAID {
		// lsblk shows an array under each of its members.
		arrays := map[string]map[string]bool{} // array path → member paths
		for _, d := range inv.Devices {
			if d.Type == r.Level {
				if arrays[d.Path] == nil {
					arrays[d.Path] = map[string]bool{}
				}
				arrays[d.Path][d.Parent] = true
			}
		}
		path, how := inv.arrayOf(p, r.Name, arrays)
		switch members := arrays[path]; {
		case path == "":
			add("raid "+r.Name, false, "%s", how)
		case len(members) != len(r.Devices):
			add("raid "+r.Name, false, "%s (%s) has %d members, the profile says %d", path, how, len(members), len(r.Devices))
		default:
			add("raid "+r.Name, true, "%s (%s), %s with %d members", path, how, r.Level, len(members))
		}
	}
	if b := p.Bootloader; b != nil {
		want := "bios"
		if b.Type != "grub-bios" {
			want = "uefi"
		}
		add("boot path", inv.Firmware == want, "booted through %s, the profile's %s needs %s", inv.Firmware, b.Type, want)
	}
	return out
}

// arrayOf finds the md array the profile calls name among arrays (by
// path): by what the profile puts on it — a mounted filesystem, an open
// LUKS volume, an LVM physical volume — or, failing that, the only array of
// its level. It says how it knew, or why it could not.
func (inv Inventory) arrayOf(p *profile.Profile, name string, arrays map[string]map[string]bool) (string, string) {
	under := func(child func(BlockDev) bool) string {
		for _, d := range inv.Devices {
			if child(d) && arrays[d.Parent] != nil {
				return d.Parent
			}
		}
		return ""
	}
	for _, f := range p.Filesystems {
		if f.Device != name {
			continue
		}
		for _, m := range inv.Mounts {
			src, _, _ := strings.Cut(m.Source, "[")
			if arrays[src] != nil && (f.UUID == "" || strings.EqualFold(m.UUID, f.UUID)) && f.Mount != nil && m.Target == f.Mount.Path {
				return src, "holds " + m.Target
			}
		}
	}
	for _, l := range p.LUKS {
		if l.Device == name {
			if a := under(func(d BlockDev) bool { return d.Type == "crypt" && d.Name == l.Name }); a != "" {
				return a, "holds LUKS " + l.Name
			}
		}
	}
	for _, vg := range p.VolumeGroups {
		for _, pv := range vg.PVs {
			if pv == name {
				if a := under(func(d BlockDev) bool {
					return d.Type == "lvm" && strings.HasPrefix(d.Name, strings.ReplaceAll(vg.Name, "-", "--")+"-")
				}); a != "" {
					return a, "holds VG " + vg.Name
				}
			}
		}
	}
	if len(arrays) == 1 {
		for a := range arrays {
			return a, "the only array of its level"
		}
	}
	if len(arrays) == 0 {
		return "", "no md array of that level is active"
	}
	return "", fmt.Sprintf("cannot tell which of %d arrays it is: nothing the profile puts on it is in use", len(arrays))
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

func orNone(s string) string {
	if s == "" {
		return "no array"
	}
	return s
}
