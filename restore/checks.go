package restore

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/stratahq/strata/restore/argv"
	"github.com/stratahq/strata/restore/plan"
	"github.com/stratahq/strata/restore/table"
)

// check reads the real state a step produces. done says it is in place;
// why says what was found, in words. err is a conflict no step can resolve
// (a mount point taken by another device, an LV of another size).
func (a *applier) check(ctx context.Context, s *plan.Step) (done bool, why string, err error) {
	c := s.Check
	switch c.Kind {
	case "":
		return false, "always runs", nil
	case "same-as":
		o := a.byID[c.Step]
		if o == nil {
			return false, "", fmt.Errorf("check refers to unknown step %s", c.Step)
		}
		ok, why, err := a.check(ctx, o)
		return ok, c.Step + ": " + why, err
	case "table":
		return a.checkTable(s)
	case "blkid":
		return a.checkFS(ctx, c)
	case "luks":
		res, err := a.query(ctx, argv.LuksUUID(c.Device))
		got := strings.TrimSpace(string(res.Stdout))
		if err != nil || got == "" {
			return false, c.Device + " has no LUKS header", nil
		}
		if c.UUID != "" && !strings.EqualFold(got, c.UUID) {
			return false, fmt.Sprintf("%s has a LUKS header with UUID %s, not %s", c.Device, got, c.UUID), nil
		}
		return true, c.Device + " has a LUKS header with UUID " + got, nil
	case "luks-open":
		return a.checkOpen(ctx, c)
	case "md-members":
		return a.checkMembers(ctx, c)
	case "md-active":
		res, err := a.query(ctx, argv.MdadmDetail(c.Device))
		kv := keyValues(res.Stdout)
		if err != nil || kv["MD_UUID"] == "" {
			return false, c.Device + " is not running", nil
		}
		if c.UUID != "" && normUUID(kv["MD_UUID"]) != normUUID(c.UUID) {
			return false, "", fmt.Errorf("%s runs another array (UUID %s, want %s): stop it first (strata restore --close, or mdadm --stop)", c.Device, kv["MD_UUID"], c.UUID)
		}
		return true, c.Device + " is running", nil
	case "pv":
		return a.checkPV(ctx, c)
	case "vg":
		vgs, err := a.vgs(ctx)
		if err != nil {
			return false, "", err
		}
		for _, v := range vgs {
			if v.Name == c.Name {
				if c.UUID != "" && v.UUID != c.UUID {
					return false, fmt.Sprintf("volume group %s has UUID %s, not %s", c.Name, v.UUID, c.UUID), nil
				}
				return true, fmt.Sprintf("volume group %s exists (%s extents)", c.Name, v.ExtentCount), nil
			}
		}
		return false, "no volume group " + c.Name, nil
	case "lv":
		return a.checkLV(ctx, s)
	case "lv-active":
		lvs, err := a.lvs(ctx, c.Name)
		if err != nil {
			return false, "", err
		}
		if len(lvs) == 0 {
			return false, "no LVs in " + c.Name, nil
		}
		for _, lv := range lvs {
			if len(lv.Attr) < 5 || lv.Attr[4] != 'a' {
				return false, fmt.Sprintf("%s/%s is not active", c.Name, lv.Name), nil
			}
		}
		return true, "every LV of " + c.Name + " is active", nil
	case "lvm-ids":
		return a.checkLVMIDs(ctx, c)
	case "mounted":
		return a.checkMounted(c)
	case "unmounted":
		m, err := a.mountAt(c.Path)
		if err != nil {
			return false, "", err
		}
		if m == nil {
			return true, c.Path + " is not mounted", nil
		}
		return false, c.Path + " is mounted from " + m.source, nil
	case "file":
		return a.checkTabs(ctx)
	case "released":
		disks, err := a.o.Probe(ctx)
		if err != nil {
			return false, "", err
		}
		for _, d := range disks {
			if d.Path == c.Device {
				if use := d.InUse(plan.OwnOf(a.p)); use != "" {
					return false, use, nil
				}
				return true, "nothing uses " + c.Device, nil
			}
		}
		return false, "", fmt.Errorf("%s is gone", c.Device)
	case "luks-closed":
		ok, _, err := a.checkOpen(ctx, plan.Check{Name: c.Name})
		return !ok && err == nil, c.Name + map[bool]string{true: " is open", false: " is closed"}[ok], nil
	case "vg-inactive":
		lvs, err := a.lvs(ctx, c.Name)
		if err != nil {
			return false, "", err
		}
		for _, lv := range lvs {
			if len(lv.Attr) >= 5 && lv.Attr[4] == 'a' {
				return false, fmt.Sprintf("%s/%s is active", c.Name, lv.Name), nil
			}
		}
		return true, "no LV of " + c.Name + " is active", nil
	case "md-stopped":
		res, err := a.query(ctx, argv.MdadmDetail(c.Device))
		if err != nil || keyValues(res.Stdout)["MD_UUID"] == "" {
			return true, c.Device + " is stopped", nil
		}
		return false, c.Device + " is running", nil
	}
	return false, "", fmt.Errorf("unknown check %q", c.Kind)
}

func (a *applier) checkTable(s *plan.Step) (bool, string, error) {
	d := a.disk(s.Check.Disk)
	if d == nil || d.Table == nil {
		return false, "", fmt.Errorf("no table planned for disk %s", s.Check.Disk)
	}
	f, err := a.o.Open(d.Device, false)
	if err != nil {
		return false, "", fmt.Errorf("open %s: %w", d.Device, err)
	}
	defer f.Close()
	got, err := table.Read(f, d.SectorSize)
	if err != nil {
		return false, fmt.Sprintf("%s: %v", d.Device, err), nil
	}
	if diff := table.Diff(d.Table, got); len(diff) > 0 {
		return false, d.Device + ": " + strings.Join(diff, "; "), nil
	}
	return true, "the planned " + d.Table.Type + " table is on " + d.Device, nil
}

// blkid reads TYPE, UUID and LABEL of a device; an empty map when there is
// no signature.
func (a *applier) blkid(ctx context.Context, dev string) map[string]string {
	res, err := a.query(ctx, argv.Blkid(dev))
	if err != nil {
		return map[string]string{}
	}
	return keyValues(res.Stdout)
}

func (a *applier) checkFS(ctx context.Context, c plan.Check) (bool, string, error) {
	kv := a.blkid(ctx, c.Device)
	t := kv["TYPE"]
	switch {
	case t == "":
		return false, c.Device + " holds no filesystem", nil
	case t != c.Type:
		return false, fmt.Sprintf("%s holds %s, not %s", c.Device, t, c.Type), nil
	case c.UUID != "" && !strings.EqualFold(kv["UUID"], c.UUID):
		return false, fmt.Sprintf("%s holds %s with UUID %s, not %s", c.Device, t, kv["UUID"], c.UUID), nil
	}
	a.uuids[c.Device] = kv["UUID"]
	return true, fmt.Sprintf("%s holds %s with UUID %s", c.Device, t, kv["UUID"]), nil
}

func (a *applier) checkOpen(ctx context.Context, c plan.Check) (bool, string, error) {
	res, err := a.query(ctx, argv.LuksStatus(c.Name))
	out := string(res.Stdout)
	if err != nil || !strings.Contains(out, "is active") {
		return false, "/dev/mapper/" + c.Name + " is not open", nil
	}
	dev := ""
	for _, line := range strings.Split(out, "\n") {
		if k, v, ok := strings.Cut(strings.TrimSpace(line), ":"); ok && k == "device" {
			dev = strings.TrimSpace(v)
		}
	}
	if c.Device != "" && dev != "" && !sameDevice(dev, c.Device) {
		return false, "", fmt.Errorf("/dev/mapper/%s is open on %s, not %s: close it first (cryptsetup close %s)", c.Name, dev, c.Device, c.Name)
	}
	return true, "/dev/mapper/" + c.Name + " is open on " + dev, nil
}

// sameDevice compares device paths by name, then by device number (a
// /dev/md/NAME link and /dev/md127 are the same device).
func sameDevice(a, b string) bool {
	if a == b {
		return true
	}
	ra, ea := rdev(a)
	rb, eb := rdev(b)
	return ea == nil && eb == nil && ra == rb
}

func rdev(p string) (uint64, error) {
	fi, err := os.Stat(p)
	if err != nil {
		return 0, err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok || fi.Mode()&os.ModeDevice == 0 {
		return 0, fmt.Errorf("%s is not a device", p)
	}
	return uint64(st.Rdev), nil
}

func (a *applier) checkMembers(ctx context.Context, c plan.Check) (bool, string, error) {
	var first string
	for _, m := range c.Members {
		res, err := a.query(ctx, argv.MdadmExamine(m))
		kv := keyValues(res.Stdout)
		u := kv["MD_UUID"]
		switch {
		case err != nil || u == "":
			return false, m + " has no md superblock", nil
		case c.UUID != "" && normUUID(u) != normUUID(c.UUID):
			return false, fmt.Sprintf("%s belongs to array %s, not %s", m, u, c.UUID), nil
		case first != "" && normUUID(u) != normUUID(first):
			return false, fmt.Sprintf("members belong to different arrays (%s, %s)", first, u), nil
		case c.Type != "" && kv["MD_LEVEL"] != "" && kv["MD_LEVEL"] != c.Type:
			return false, fmt.Sprintf("%s is a %s member, not %s", m, kv["MD_LEVEL"], c.Type), nil
		}
		first = u
	}
	return true, "every member carries array " + first, nil
}

func normUUID(s string) string {
	return strings.ToLower(strings.NewReplacer(":", "", "-", "", ".", "", " ", "").Replace(s))
}

// keyValues parses KEY=VALUE lines (blkid -o export, mdadm --export).
func keyValues(b []byte) map[string]string {
	out := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if k, v, ok := strings.Cut(strings.TrimSpace(sc.Text()), "="); ok {
			out[k] = v
		}
	}
	return out
}

// ---- LVM reports ----

type lvmReport struct {
	Report []struct {
		PV []pvRow `json:"pv"`
		VG []vgRow `json:"vg"`
		LV []lvRow `json:"lv"`
	} `json:"report"`
}

type pvRow struct {
	Name   string `json:"pv_name"`
	UUID   string `json:"pv_uuid"`
	VGName string `json:"vg_name"`
}

type vgRow struct {
	Name        string `json:"vg_name"`
	UUID        string `json:"vg_uuid"`
	ExtentSize  string `json:"vg_extent_size"`
	ExtentCount string `json:"vg_extent_count"`
}

type lvRow struct {
	Name    string `json:"lv_name"`
	VGName  string `json:"vg_name"`
	UUID    string `json:"lv_uuid"`
	Size    string `json:"lv_size"`
	Attr    string `json:"lv_attr"`
	Segtype string `json:"segtype"`
}

func (a *applier) lvmQuery(ctx context.Context, args []string) (*lvmReport, error) {
	res, err := a.query(ctx, args, argv.Env...)
	var rep lvmReport
	if len(bytes.TrimSpace(res.Stdout)) == 0 {
		return &rep, nil // no output: nothing there (a missing VG exits non-zero)
	}
	if jerr := json.Unmarshal(res.Stdout, &rep); jerr != nil {
		if err != nil {
			return &rep, nil
		}
		return nil, fmt.Errorf("read %s output: %w", args[1], jerr)
	}
	return &rep, nil
}

func (a *applier) lvmArgs() argv.LVM { return argv.LVM{Udev: a.p.Udev} }

func (a *applier) vgs(ctx context.Context) ([]vgRow, error) {
	rep, err := a.lvmQuery(ctx, a.lvmArgs().VGs())
	if err != nil {
		return nil, err
	}
	var out []vgRow
	for _, r := range rep.Report {
		out = append(out, r.VG...)
	}
	return out, nil
}

func (a *applier) lvs(ctx context.Context, vg string) ([]lvRow, error) {
	rep, err := a.lvmQuery(ctx, a.lvmArgs().LVs(vg))
	if err != nil {
		return nil, err
	}
	var out []lvRow
	for _, r := range rep.Report {
		for _, lv := range r.LV {
			if lv.VGName == vg || lv.VGName == "" {
				out = append(out, lv)
			}
		}
	}
	return out, nil
}

func (a *applier) checkPV(ctx context.Context, c plan.Check) (bool, string, error) {
	rep, err := a.lvmQuery(ctx, a.lvmArgs().PVs())
	if err != nil {
		return false, "", err
	}
	for _, r := range rep.Report {
		for _, pv := range r.PV {
			match := c.UUID != "" && pv.UUID == c.UUID
			if c.UUID == "" {
				match = sameDevice(pv.Name, c.Device)
			}
			if !match {
				continue
			}
			if c.Name != "" && pv.VGName != c.Name {
				return false, fmt.Sprintf("%s is a PV of %q, not %s", c.Device, pv.VGName, c.Name), nil
			}
			return true, fmt.Sprintf("%s is a PV (%s)", pv.Name, pv.UUID), nil
		}
	}
	if c.UUID != "" {
		return false, "no PV with UUID " + c.UUID, nil
	}
	return false, c.Device + " is not a PV", nil
}

func (a *applier) checkLV(ctx context.Context, s *plan.Step) (bool, string, error) {
	c := s.Check
	vg, name, _ := strings.Cut(c.Name, "/")
	lvs, err := a.lvs(ctx, vg)
	if err != nil {
		return false, "", err
	}
	for _, lv := range lvs {
		if lv.Name != name {
			continue
		}
		size, _ := strconv.ParseInt(lv.Size, 10, 64)
		if c.Size != 0 && size != c.Size {
			msg := fmt.Sprintf("%s exists with %d bytes, the plan says %d", c.Name, size, c.Size)
			if s.Kind.Verifies() {
				return false, msg, nil
			}
			return false, "", fmt.Errorf("%s: remove it (lvremove %s) or keep it (--keep %s)", msg, c.Name, c.Name)
		}
		if c.UUID != "" && lv.UUID != c.UUID {
			return false, fmt.Sprintf("%s has UUID %s, not %s", c.Name, lv.UUID, c.UUID), nil
		}
		return true, fmt.Sprintf("%s exists (%d bytes)", c.Name, size), nil
	}
	return false, "no LV " + c.Name, nil
}

func (a *applier) checkLVMIDs(ctx context.Context, c plan.Check) (bool, string, error) {
	if c.UUID != "" {
		vgs, err := a.vgs(ctx)
		if err != nil {
			return false, "", err
		}
		ok := false
		for _, v := range vgs {
			ok = ok || v.Name == c.Name && v.UUID == c.UUID
		}
		if !ok {
			return false, "volume group " + c.Name + " does not have UUID " + c.UUID, nil
		}
	}
	lvs, err := a.lvs(ctx, c.Name)
	if err != nil {
		return false, "", err
	}
	for name, want := range c.LVUUIDs {
		ok := false
		for _, lv := range lvs {
			ok = ok || lv.Name == name && lv.UUID == want
		}
		if !ok {
			return false, fmt.Sprintf("%s/%s does not have UUID %s", c.Name, name, want), nil
		}
	}
	return true, "the group and its LVs have the profile's UUIDs", nil
}

// ---- mounts ----

type mountEntry struct{ id, dev, root, point, fstype, source string }

func (a *applier) mounts() ([]mountEntry, error) {
	b, err := os.ReadFile(a.o.MountInfo)
	if err != nil {
		return nil, fmt.Errorf("read mounts: %w", err)
	}
	var out []mountEntry
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		sep := -1
		for i, x := range f {
			if x == "-" {
				sep = i
				break
			}
		}
		if len(f) < 5 || sep < 0 || sep+2 >= len(f) {
			continue
		}
		out = append(out, mountEntry{id: f[0], dev: f[2], root: unescape(f[3]), point: unescape(f[4]), fstype: f[sep+1], source: unescape(f[sep+2])})
	}
	return out, nil
}

func unescape(s string) string {
	r := strings.NewReplacer(`\040`, " ", `\011`, "\t", `\012`, "\n", `\134`, `\`)
	return r.Replace(s)
}

// mountAt is the last (visible) mount on path.
func (a *applier) mountAt(path string) (*mountEntry, error) {
	ms, err := a.mounts()
	if err != nil {
		return nil, err
	}
	var hit *mountEntry
	for i := range ms {
		if filepath.Clean(ms[i].point) == filepath.Clean(path) {
			hit = &ms[i]
		}
	}
	return hit, nil
}

func (a *applier) checkMounted(c plan.Check) (bool, string, error) {
	m, err := a.mountAt(c.Path)
	if err != nil {
		return false, "", err
	}
	if m == nil {
		return false, c.Path + " is not mounted", nil
	}
	same := sameDevice(m.source, c.Device)
	if !same {
		if r, err := rdev(c.Device); err == nil {
			same = fmt.Sprintf("%d:%d", unixMajor(r), unixMinor(r)) == m.dev
		}
	}
	if !same {
		return false, "", fmt.Errorf("%s is already mounted from %s, not %s: unmount it first", c.Path, m.source, c.Device)
	}
	if c.Root != "" && c.Root != "/" && m.root != c.Root {
		return false, "", fmt.Errorf("%s is mounted from %s subvolume %s, not %s: unmount it first", c.Path, m.source, m.root, c.Root)
	}
	return true, c.Path + " is mounted from " + m.source, nil
}

func unixMajor(d uint64) uint64 { return (d >> 8 & 0xfff) | (d >> 32 & ^uint64(0xfff)) }
func unixMinor(d uint64) uint64 { return (d & 0xff) | (d >> 12 & ^uint64(0xff)) }
