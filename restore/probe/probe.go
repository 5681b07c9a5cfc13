// Package probe reports the block devices of the machine strata runs on:
// what a restore needs to pick its target disks and to refuse the wrong ones.
//
// Everything comes from sysfs and /proc, because the live image runs no udev
// daemon: sizes and sector sizes, model, serial, WWN, removable and
// rotational flags, partitions, holders (device-mapper and md devices built
// on a disk), mounts and active swap. /dev/disk/by-id and by-path names are
// read when udev made them and otherwise derived the way udev's rules would.
// Current signatures come from `wipefs --no-act --json` through the runner.
// The sysfs root, /dev and the /proc files are parameters so tests run on a
// fake tree.
package probe

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/stratahq/strata/internal/run"
)

// Options says where to look.
type Options struct {
	SysRoot   string     // default /sys
	DevRoot   string     // default /dev
	MountInfo string     // default /proc/self/mountinfo
	Swaps     string     // default /proc/swaps
	Runner    run.Runner // reads signatures with wipefs; nil leaves Signatures empty
	// LiveLabel is the filesystem label of the strata live medium (vfat or
	// iso9660); default "STRATA", as image.Label.
	LiveLabel string
}

func (o *Options) defaults() {
	if o.SysRoot == "" {
		o.SysRoot = "/sys"
	}
	if o.DevRoot == "" {
		o.DevRoot = "/dev"
	}
	if o.MountInfo == "" {
		o.MountInfo = "/proc/self/mountinfo"
	}
	if o.Swaps == "" {
		o.Swaps = "/proc/swaps"
	}
	if o.LiveLabel == "" {
		o.LiveLabel = "STRATA"
	}
}

// Disk is one whole disk.
type Disk struct {
	Name               string      `json:"name"` // kernel name, e.g. vda
	Path               string      `json:"path"` // e.g. /dev/vda
	Dev                string      `json:"dev"`  // major:minor
	Size               int64       `json:"size"`
	LogicalSectorSize  int         `json:"logical_sector_size"`
	PhysicalSectorSize int         `json:"physical_sector_size"`
	Transport          string      `json:"transport,omitempty"` // virtio, nvme, ata, scsi, usb, loop, mmc
	Vendor             string      `json:"vendor,omitempty"`
	Model              string      `json:"model,omitempty"`
	Serial             string      `json:"serial,omitempty"`
	WWN                string      `json:"wwn,omitempty"`
	ByID               []string    `json:"by_id,omitempty"`   // names under /dev/disk/by-id
	ByPath             []string    `json:"by_path,omitempty"` // names under /dev/disk/by-path
	Removable          bool        `json:"removable,omitempty"`
	Rotational         bool        `json:"rotational,omitempty"`
	ReadOnly           bool        `json:"read_only,omitempty"`
	Partitions         []Partition `json:"partitions,omitempty"`
	Signatures         []Signature `json:"signatures,omitempty"` // on the whole disk
	Holders            []Holder    `json:"holders,omitempty"`    // devices built on the disk or its partitions, recursively
	Mounts             []Mount     `json:"mounts,omitempty"`     // mounted from the disk, directly or through holders
	Swaps              []string    `json:"swaps,omitempty"`      // active swap on it
	LiveMedium         bool        `json:"live_medium,omitempty"`
	SystemDisk         bool        `json:"system_disk,omitempty"` // holds the running system's /
	Notes              []string    `json:"notes,omitempty"`       // what could not be read
}

// Partition is one partition the kernel knows.
type Partition struct {
	Name       string      `json:"name"`
	Path       string      `json:"path"`
	Dev        string      `json:"dev"`
	Number     int         `json:"number"`
	Start      int64       `json:"start"` // bytes
	Size       int64       `json:"size"`
	Signatures []Signature `json:"signatures,omitempty"`
}

// Signature is something wipefs recognises (a filesystem, RAID member,
// LUKS header, partition table).
type Signature struct {
	Type   string `json:"type"`
	Offset int64  `json:"offset"`
	UUID   string `json:"uuid,omitempty"`
	Label  string `json:"label,omitempty"`
}

// Holder is a device-mapper or md device that uses the disk.
type Holder struct {
	Name string `json:"name"`           // kernel name: dm-0, md127
	Kind string `json:"kind"`           // lvm, crypt, dm, md
	Map  string `json:"map,omitempty"`  // device-mapper name (vg0-root, cryptroot) or md name
	UUID string `json:"uuid,omitempty"` // dm uuid (LVM-..., CRYPT-LUKS2-...)
	On   string `json:"on"`             // kernel name of the device it sits on directly
}

// Mount is a mounted filesystem that lives on the disk.
type Mount struct {
	Device string `json:"device"` // kernel name of the mounted block device
	Point  string `json:"point"`
	FSType string `json:"fstype"`
}

// Use is one thing that uses a disk now: a mount, active swap or a holder.
type Use struct {
	Mount  *Mount
	Swap   string
	Holder *Holder
}

func (u Use) String() string {
	switch {
	case u.Mount != nil:
		return fmt.Sprintf("/dev/%s is mounted at %s", u.Mount.Device, u.Mount.Point)
	case u.Swap != "":
		return u.Swap + " is active swap"
	}
	h := u.Holder
	desc := h.Kind + " " + h.Name
	if h.Map != "" {
		desc += " (" + h.Map + ")"
	}
	return fmt.Sprintf("/dev/%s is held by %s", h.On, desc)
}

// Uses lists what uses the disk now.
func (d *Disk) Uses() []Use {
	var out []Use
	for i := range d.Mounts {
		out = append(out, Use{Mount: &d.Mounts[i]})
	}
	for _, s := range d.Swaps {
		out = append(out, Use{Swap: s})
	}
	for i := range d.Holders {
		out = append(out, Use{Holder: &d.Holders[i]})
	}
	return out
}

// InUse says why writing the disk now would hurt something, or "".
// Uses for which ignore returns true (a restore's own, earlier work) are
// left out; ignore may be nil.
func (d *Disk) InUse(ignore ...func(Use) bool) string {
	var why []string
	for _, u := range d.Uses() {
		skip := false
		for _, f := range ignore {
			skip = skip || f != nil && f(u)
		}
		if !skip {
			why = append(why, u.String())
		}
	}
	return strings.Join(why, "; ")
}

// Names lists everything the disk may be called on a command line: the
// kernel name, the /dev path and its by-id and by-path names.
func (d *Disk) Names() []string {
	out := []string{d.Name, d.Path}
	for _, n := range d.ByID {
		out = append(out, n, "/dev/disk/by-id/"+n)
	}
	for _, n := range d.ByPath {
		out = append(out, n, "/dev/disk/by-path/"+n)
	}
	return out
}

// skipped are kernel block devices that are never target disks.
var skipped = regexp.MustCompile(`^(ram|zram|dm-|md|sr|fd|nbd|zd)`)

// Disks lists the whole disks, sorted by name. Loop devices are included
// only when attached (non-zero size).
func Disks(ctx context.Context, o Options) ([]Disk, error) {
	o.defaults()
	p := &prober{o: o, ctx: ctx}
	if err := p.index(); err != nil {
		return nil, err
	}
	names, err := os.ReadDir(filepath.Join(o.SysRoot, "block"))
	if err != nil {
		return nil, fmt.Errorf("probe: list block devices: %w", err)
	}
	var out []Disk
	for _, e := range names {
		n := e.Name()
		if skipped.MatchString(n) {
			continue
		}
		d, err := p.disk(n)
		if err != nil {
			return nil, err
		}
		if d.Size == 0 {
			continue // empty loop devices, card readers without a card
		}
		out = append(out, *d)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

type prober struct {
	o      Options
	ctx    context.Context
	byDev  map[string]string // major:minor -> kernel name
	dirs   map[string]string // kernel name -> its sysfs directory
	mounts []mountEntry
	swaps  map[string]bool // kernel names with active swap
}

type mountEntry struct {
	dev, point, fstype, source string
}

func (p *prober) sys(parts ...string) string {
	return filepath.Join(append([]string{p.o.SysRoot}, parts...)...)
}

func readString(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

func readInt(path string) int64 {
	n, _ := strconv.ParseInt(readString(path), 10, 64)
	return n
}

// index maps major:minor to kernel names, and reads mounts and swaps.
func (p *prober) index() error {
	p.byDev, p.dirs = map[string]string{}, map[string]string{}
	disks, err := os.ReadDir(p.sys("block"))
	if err != nil {
		return fmt.Errorf("probe: list block devices: %w", err)
	}
	add := func(name, dir string) {
		p.dirs[name] = dir
		if dev := readString(filepath.Join(dir, "dev")); dev != "" {
			p.byDev[dev] = name
		}
	}
	for _, d := range disks {
		add(d.Name(), p.sys("block", d.Name()))
		for _, part := range p.partitionNames(d.Name()) {
			add(part, p.sys("block", d.Name(), part))
		}
	}
	if b, err := os.ReadFile(p.o.MountInfo); err == nil {
		p.mounts = parseMountInfo(b)
	} else if !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("probe: %w", err)
	}
	p.swaps = map[string]bool{}
	if b, err := os.ReadFile(p.o.Swaps); err == nil {
		for i, line := range strings.Split(string(b), "\n") {
			f := strings.Fields(line)
			if i == 0 || len(f) < 2 || f[1] != "partition" {
				continue
			}
			p.swaps[p.nameOfPath(f[0])] = true
		}
	}
	return nil
}

// nameOfPath finds the kernel name for a /dev path, through symlinks and
// device numbers (device-mapper nodes without udev are not symlinks).
func (p *prober) nameOfPath(path string) string {
	if fi, err := os.Stat(path); err == nil {
		if dev, ok := devNumber(fi); ok {
			if n := p.byDev[dev]; n != "" {
				return n
			}
		}
	}
	if r, err := filepath.EvalSymlinks(path); err == nil {
		return filepath.Base(r)
	}
	return filepath.Base(path)
}

// parseMountInfo reads /proc/self/mountinfo lines: "36 35 98:0 /mnt1 /mnt2
// rw,noatime master:1 - ext3 /dev/root rw,errors=continue".
func parseMountInfo(b []byte) []mountEntry {
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
		out = append(out, mountEntry{dev: f[2], point: unescapeMount(f[4]), fstype: f[sep+1], source: unescapeMount(f[sep+2])})
	}
	return out
}

// unescapeMount undoes the octal escapes of mountinfo (\040 for space).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// partitionNames lists the partition subdirectories of a disk in sysfs.
func (p *prober) partitionNames(disk string) []string {
	ents, err := os.ReadDir(p.sys("block", disk))
	if err != nil {
		return nil
	}
	var out []string
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), disk) {
			if _, err := os.Stat(p.sys("block", disk, e.Name(), "partition")); err == nil {
				out = append(out, e.Name())
			}
		}
	}
	return out
}

func (p *prober) disk(name string) (*Disk, error) {
	base := p.sys("block", name)
	d := &Disk{
		Name:               name,
		Path:               filepath.Join(p.o.DevRoot, name),
		Dev:                readString(filepath.Join(base, "dev")),
		Size:               readInt(filepath.Join(base, "size")) * 512, // sysfs counts 512-byte units whatever the sector size
		LogicalSectorSize:  int(readInt(filepath.Join(base, "queue", "logical_block_size"))),
		PhysicalSectorSize: int(readInt(filepath.Join(base, "queue", "physical_block_size"))),
		Removable:          readString(filepath.Join(base, "removable")) == "1",
		Rotational:         readString(filepath.Join(base, "queue", "rotational")) == "1",
		ReadOnly:           readString(filepath.Join(base, "ro")) == "1",
	}
	if d.LogicalSectorSize == 0 {
		d.LogicalSectorSize = 512
	}
	if d.PhysicalSectorSize == 0 {
		d.PhysicalSectorSize = d.LogicalSectorSize
	}
	devPath, _ := filepath.EvalSymlinks(base)
	p.identity(d, base, devPath)
	d.ByPath = derivedByPath(d, devPath)
	p.udevLinks(d)

	for _, part := range p.partitionNames(name) {
		pb := filepath.Join(base, part)
		d.Partitions = append(d.Partitions, Partition{
			Name:   part,
			Path:   filepath.Join(p.o.DevRoot, part),
			Dev:    readString(filepath.Join(pb, "dev")),
			Number: int(readInt(filepath.Join(pb, "partition"))),
			Start:  readInt(filepath.Join(pb, "start")) * 512,
			Size:   readInt(filepath.Join(pb, "size")) * 512,
		})
	}
	sort.Slice(d.Partitions, func(i, j int) bool { return d.Partitions[i].Number < d.Partitions[j].Number })

	// Everything built on the disk: holders, recursively, and their mounts.
	users := []string{name}
	for _, part := range d.Partitions {
		users = append(users, part.Name)
	}
	seen := map[string]bool{}
	for i := 0; i < len(users); i++ {
		u := users[i]
		if seen[u] {
			continue
		}
		seen[u] = true
		for _, h := range p.holders(u) {
			d.Holders = append(d.Holders, h)
			users = append(users, h.Name)
		}
	}
	for _, m := range p.mounts {
		if n := p.mountDevice(m); n != "" && seen[n] {
			d.Mounts = append(d.Mounts, Mount{Device: n, Point: m.point, FSType: m.fstype})
			if m.point == "/" {
				d.SystemDisk = true
			}
		}
	}
	for _, u := range users {
		if p.swaps[u] {
			d.Swaps = append(d.Swaps, "/dev/"+u)
		}
	}

	if p.o.Runner != nil {
		// A device that cannot be probed (busy, no permission) is reported,
		// not fatal: the other disks may still be the targets.
		var err error
		if d.Signatures, err = p.signatures(d.Path); err != nil {
			d.Notes = append(d.Notes, err.Error())
		}
		for i := range d.Partitions {
			if d.Partitions[i].Signatures, err = p.signatures(d.Partitions[i].Path); err != nil {
				d.Notes = append(d.Notes, err.Error())
			}
		}
	}
	d.LiveMedium = p.isLive(d)
	return d, nil
}

// mountDevice is the kernel name of a mount's block device. btrfs reports an
// anonymous device number, so its source path is used instead.
func (p *prober) mountDevice(m mountEntry) string {
	if n := p.byDev[m.dev]; n != "" && !strings.HasPrefix(m.dev, "0:") {
		return n
	}
	if strings.HasPrefix(m.source, "/dev/") {
		return p.nameOfPath(m.source)
	}
	return ""
}

func (p *prober) holders(name string) []Holder {
	dir, ok := p.dirs[name]
	if !ok {
		return nil
	}
	ents, _ := os.ReadDir(filepath.Join(dir, "holders"))
	var out []Holder
	for _, e := range ents {
		h := Holder{Name: e.Name(), On: name, Kind: "dm"}
		hb := p.sys("block", e.Name())
		if strings.HasPrefix(e.Name(), "md") {
			h.Kind, h.Map = "md", p.mdName(e.Name())
		} else {
			h.Map = readString(filepath.Join(hb, "dm", "name"))
			h.UUID = readString(filepath.Join(hb, "dm", "uuid"))
			switch {
			case strings.HasPrefix(h.UUID, "LVM-"):
				h.Kind = "lvm"
			case strings.HasPrefix(h.UUID, "CRYPT-"):
				h.Kind = "crypt"
			}
		}
		out = append(out, h)
	}
	return out
}

// mdName is the array's /dev/md/NAME when mdadm made that link, else the
// kernel name.
func (p *prober) mdName(kernel string) string {
	dir := filepath.Join(p.o.DevRoot, "md")
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if t, err := os.Readlink(filepath.Join(dir, e.Name())); err == nil && filepath.Base(t) == kernel {
			return e.Name()
		}
	}
	return kernel
}

type wipefsOut struct {
	Signatures []struct {
		Offset string  `json:"offset"`
		Type   string  `json:"type"`
		UUID   *string `json:"uuid"`
		Label  *string `json:"label"`
	} `json:"signatures"`
}

func (p *prober) signatures(dev string) ([]Signature, error) {
	res, err := p.o.Runner.Run(p.ctx, run.Cmd{Name: "wipefs", Args: []string{"--no-act", "--json", dev}})
	if err != nil {
		return nil, fmt.Errorf("signatures of %s: %w", dev, err)
	}
	return ParseWipefs(res.Stdout)
}

// ParseWipefs reads `wipefs --no-act --json` output; no output means none.
func ParseWipefs(b []byte) ([]Signature, error) {
	if len(bytes.TrimSpace(b)) == 0 {
		return nil, nil
	}
	var w wipefsOut
	if err := json.Unmarshal(b, &w); err != nil {
		return nil, fmt.Errorf("parse wipefs output: %w", err)
	}
	var out []Signature
	seen := map[string]bool{}
	for _, s := range w.Signatures {
		off, _ := strconv.ParseInt(strings.TrimPrefix(s.Offset, "0x"), 16, 64)
		sig := Signature{Type: s.Type, Offset: off}
		if s.UUID != nil {
			sig.UUID = *s.UUID
		}
		if s.Label != nil {
			sig.Label = *s.Label
		}
		// vfat and others report the same signature at several offsets.
		key := sig.Type + "\x00" + sig.UUID + "\x00" + sig.Label
		if seen[key] {
			continue
		}
		seen[key] = true
		out = append(out, sig)
	}
	return out, nil
}

func (p *prober) isLive(d *Disk) bool {
	sigs := append([]Signature{}, d.Signatures...)
	for _, part := range d.Partitions {
		sigs = append(sigs, part.Signatures...)
	}
	for _, s := range sigs {
		if (s.Type == "vfat" || s.Type == "iso9660") && s.Label == p.o.LiveLabel {
			return true
		}
	}
	return false
}
