// Package target decides which disk of the machine each disk of a profile
// is, and refuses the wrong ones (rule 5: the wrong disk is never written).
//
// A profile disk matches a probed disk when every field of its selector
// matches (by_id, by_path and model take shell patterns). The match is
// automatic when it is unambiguous; `--disk NAME=DEVICE` names it explicitly.
// Refused, each with the reason and what to do: an ambiguous match, the live
// medium, the disk the running system booted from, a read-only disk, a disk
// with mounted filesystems, active swap or holders (unless the caller tears
// them down), and a disk smaller than the layout's minimum.
package target

import (
	"fmt"
	"path"
	"strings"

	"github.com/stratahq/strata/profile"
	"github.com/stratahq/strata/restore/probe"
)

// Assignment is one profile disk and the device it will be.
type Assignment struct {
	Disk     string      `json:"disk"` // profile disk name
	Device   *probe.Disk `json:"-"`
	How      string      `json:"how"` // why this device: the selector, or --disk
	Warnings []string    `json:"warnings,omitempty"`
}

// Options are the user's say in the matter.
type Options struct {
	// Explicit maps profile disk names to devices: a /dev path, a kernel
	// name, or a by-id/by-path name (with or without /dev/disk/...).
	Explicit map[string]string
	// Teardown accepts disks that are in use (mounted, swap, holders): the
	// restore unmounts and closes what sits on them first.
	Teardown bool
	// Own recognises uses that are the restore's own earlier work (its
	// mounts under the target root, its LUKS, md and LVM devices): a re-run
	// must not refuse the disks it is resuming on.
	Own func(probe.Use) bool
}

// Problem is one refusal.
type Problem struct {
	Disk   string `json:"disk"`             // profile disk
	Device string `json:"device,omitempty"` // the device refused, if one
	Reason string `json:"reason"`
	Hint   string `json:"hint,omitempty"` // what to do
}

func (p Problem) String() string {
	s := "disk " + p.Disk + ": " + p.Reason
	if p.Hint != "" {
		s += " (" + p.Hint + ")"
	}
	return s
}

// Error lists every refusal; Match returns it when any disk is refused.
type Error struct{ Problems []Problem }

func (e *Error) Error() string {
	var b []string
	for _, p := range e.Problems {
		b = append(b, p.String())
	}
	return strings.Join(b, "\n")
}

// MinimumSize is the smallest disk the profile disk's partitions fit on,
// table overhead included: what the layout needs whatever the selector says.
func MinimumSize(d *profile.Disk) (int64, error) {
	if d.Table == "none" {
		return 1 << 20, nil
	}
	var reqs []profile.Request
	for _, pt := range d.Partitions {
		reqs = append(reqs, profile.Request{Name: d.Name + "/" + pt.Name, Size: pt.Size, Min: pt.MinSize, Max: pt.MaxSize})
	}
	need, err := profile.MinimumFit(reqs, 1<<20)
	if err != nil {
		return 0, err
	}
	return need + profile.DiskOverhead(d), nil
}

// Match assigns a device to every disk of the profile, in profile order.
func Match(p *profile.Profile, disks []probe.Disk, o Options) ([]Assignment, error) {
	var problems []Problem
	out := make([]Assignment, len(p.Disks))
	taken := map[string]string{} // device path -> profile disk
	pending := map[int][]*probe.Disk{}
	why := map[int][]string{} // per profile disk: why each device did not match

	for i := range p.Disks {
		pd := &p.Disks[i]
		out[i].Disk = pd.Name
		if want, ok := o.Explicit[pd.Name]; ok {
			d := find(disks, want)
			if d == nil {
				problems = append(problems, Problem{Disk: pd.Name, Reason: fmt.Sprintf("no disk %q on this machine", want), Hint: "disks: " + list(disks)})
				continue
			}
			if other, dup := taken[d.Path]; dup {
				problems = append(problems, Problem{Disk: pd.Name, Device: d.Path, Reason: fmt.Sprintf("%s is already the target of disk %s", d.Path, other), Hint: "each profile disk needs its own device"})
				continue
			}
			taken[d.Path] = pd.Name
			out[i].Device = d
			out[i].How = fmt.Sprintf("--disk %s=%s", pd.Name, want)
			for _, m := range mismatches(&pd.Select, d) {
				out[i].Warnings = append(out[i].Warnings, fmt.Sprintf("%s does not match the profile's selector (%s); used because --disk names it", d.Path, m))
			}
			continue
		}
		pending[i] = nil // a candidate list, possibly empty
		for j := range disks {
			d := &disks[j]
			if r := autoExcluded(d); r != "" {
				why[i] = append(why[i], d.Path+": "+r)
				continue
			}
			if m := mismatches(&pd.Select, d); len(m) > 0 {
				why[i] = append(why[i], d.Path+": "+strings.Join(m, ", "))
				continue
			}
			pending[i] = append(pending[i], d)
		}
	}
	// Settle the unambiguous matches first; a device one disk takes is no
	// longer a candidate for the others.
	for progress := true; progress; {
		progress = false
		for i, cands := range pending {
			var left []*probe.Disk
			for _, d := range cands {
				if _, t := taken[d.Path]; !t {
					left = append(left, d)
				}
			}
			pending[i] = left
			if len(left) == 1 && !claimedElsewhere(pending, i, left[0]) {
				out[i].Device = left[0]
				out[i].How = "selector " + describe(&p.Disks[i].Select)
				taken[left[0].Path] = p.Disks[i].Name
				delete(pending, i)
				progress = true
			}
		}
	}
	for i := range p.Disks {
		cands, ok := pending[i]
		if !ok {
			continue
		}
		pd := &p.Disks[i]
		switch {
		case len(cands) == 1:
			problems = append(problems, Problem{Disk: pd.Name,
				Reason: fmt.Sprintf("%s is the only match of selector %s, and also the only match of another disk's selector", cands[0].Path, describe(&pd.Select)),
				Hint:   "make the selectors tell the disks apart, or name them with --disk"})
		case len(cands) == 0:
			problems = append(problems, Problem{Disk: pd.Name,
				Reason: fmt.Sprintf("no disk matches selector %s: %s", describe(&pd.Select), strings.Join(why[i], "; ")),
				Hint:   fmt.Sprintf("attach the disk, fix the selector, or name it with --disk %s=/dev/...", pd.Name)})
		default:
			var paths []string
			for _, d := range cands {
				paths = append(paths, d.Path)
			}
			problems = append(problems, Problem{Disk: pd.Name,
				Reason: fmt.Sprintf("ambiguous: %s all match selector %s", strings.Join(paths, ", "), describe(&pd.Select)),
				Hint:   fmt.Sprintf("name the one to overwrite with --disk %s=%s, or make the selector more specific (serial, by_id)", pd.Name, paths[0])})
		}
	}

	// Refusals that hold however the disk was chosen.
	for i := range out {
		a := &out[i]
		d := a.Device
		if d == nil {
			continue
		}
		pd := &p.Disks[i]
		refuse := func(reason, hint string) {
			problems = append(problems, Problem{Disk: pd.Name, Device: d.Path, Reason: reason, Hint: hint})
		}
		switch {
		case d.LiveMedium:
			refuse(fmt.Sprintf("%s is the strata live medium (label STRATA)", d.Path), "the medium strata runs from is never a target")
			continue
		case d.SystemDisk:
			refuse(fmt.Sprintf("%s holds the running system's root filesystem: it is the disk this system booted from", d.Path), "boot the live image to restore this disk")
			continue
		case d.ReadOnly:
			refuse(fmt.Sprintf("%s is read-only", d.Path), "check the write-protect switch or the hypervisor's disk settings")
			continue
		}
		if use := d.InUse(o.Own); use != "" {
			if o.Teardown {
				a.Warnings = append(a.Warnings, fmt.Sprintf("%s is in use and will be torn down first: %s", d.Path, use))
			} else {
				refuse(fmt.Sprintf("%s is in use: %s", d.Path, use), "unmount and close it, or pass --teardown to let restore do so")
			}
		}
		need, err := MinimumSize(pd)
		if err != nil {
			refuse(err.Error(), "")
			continue
		}
		if d.Size < need {
			refuse(fmt.Sprintf("%s (%s) is too small: the layout needs at least %s (short by %s)", d.Path, profile.HumanBytes(d.Size), profile.HumanBytes(need), profile.HumanBytes(need-d.Size)),
				"use a larger disk, or make fixed partition sizes smaller")
		}
		if pd.Table == "msdos" && d.LogicalSectorSize == 512 && d.Size > 1<<41 {
			a.Warnings = append(a.Warnings, fmt.Sprintf("%s is larger than 2 TiB: an msdos table uses only the first 2 TiB", d.Path))
		}
	}
	if len(problems) > 0 {
		return out, &Error{Problems: problems}
	}
	return out, nil
}

// claimedElsewhere reports whether another still-ambiguous disk also wants d:
// then d goes to neither automatically.
func claimedElsewhere(pending map[int][]*probe.Disk, self int, d *probe.Disk) bool {
	for i, cands := range pending {
		if i == self {
			continue
		}
		for _, c := range cands {
			if c == d && len(cands) == 1 {
				return true
			}
		}
	}
	return false
}

// autoExcluded says why a disk is never picked automatically.
func autoExcluded(d *probe.Disk) string {
	switch {
	case d.LiveMedium:
		return "the live medium"
	case d.SystemDisk:
		return "holds the running system"
	case d.Transport == "loop":
		return "a loop device (name it with --disk to use it)"
	}
	return ""
}

func find(disks []probe.Disk, name string) *probe.Disk {
	for i := range disks {
		for _, n := range disks[i].Names() {
			if n == name {
				return &disks[i]
			}
		}
	}
	return nil
}

func list(disks []probe.Disk) string {
	var s []string
	for _, d := range disks {
		s = append(s, fmt.Sprintf("%s %s", d.Path, profile.HumanBytes(d.Size)))
	}
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, ", ")
}

// mismatches lists the selector fields d fails, in words.
func mismatches(s *profile.DiskSelect, d *probe.Disk) []string {
	var m []string
	anyMatch := func(pattern string, names []string, dir string) bool {
		pattern = strings.TrimPrefix(pattern, dir)
		for _, n := range names {
			if ok, _ := path.Match(pattern, n); ok {
				return true
			}
		}
		return false
	}
	if s.ByID != "" && !anyMatch(s.ByID, d.ByID, "/dev/disk/by-id/") {
		m = append(m, fmt.Sprintf("by_id %q matches none of %s", s.ByID, names(d.ByID)))
	}
	if s.ByPath != "" && !anyMatch(s.ByPath, d.ByPath, "/dev/disk/by-path/") {
		m = append(m, fmt.Sprintf("by_path %q matches none of %s", s.ByPath, names(d.ByPath)))
	}
	if s.Serial != "" && strings.TrimSpace(s.Serial) != d.Serial {
		m = append(m, fmt.Sprintf("serial is %q, not %q", d.Serial, s.Serial))
	}
	if s.Model != "" {
		if ok, _ := path.Match(s.Model, d.Model); !ok {
			m = append(m, fmt.Sprintf("model %q does not match %q", d.Model, s.Model))
		}
	}
	if s.WWN != "" && normWWN(s.WWN) != normWWN(d.WWN) {
		m = append(m, fmt.Sprintf("wwn is %q, not %q", d.WWN, s.WWN))
	}
	if s.MinSize.IsAbsolute() && d.Size < s.MinSize.Bytes {
		m = append(m, fmt.Sprintf("%s is below min_size %s", profile.HumanBytes(d.Size), s.MinSize))
	}
	if s.MaxSize.IsAbsolute() && d.Size > s.MaxSize.Bytes {
		m = append(m, fmt.Sprintf("%s is above max_size %s", profile.HumanBytes(d.Size), s.MaxSize))
	}
	return m
}

func names(n []string) string {
	if len(n) == 0 {
		return "(no names)"
	}
	return strings.Join(n, ", ")
}

func normWWN(s string) string {
	s = strings.ToLower(strings.TrimSpace(s))
	for _, p := range []string{"wwn-", "naa.", "eui.", "0x"} {
		s = strings.TrimPrefix(s, p)
	}
	return s
}

// describe renders a selector for messages: "{model QEMU HARDDISK*, min_size 6GiB}".
func describe(s *profile.DiskSelect) string {
	var f []string
	add := func(k, v string) {
		if v != "" {
			f = append(f, k+" "+v)
		}
	}
	add("by_id", s.ByID)
	add("by_path", s.ByPath)
	add("serial", s.Serial)
	add("model", s.Model)
	add("wwn", s.WWN)
	if !s.MinSize.IsZero() {
		add("min_size", s.MinSize.String())
	}
	if !s.MaxSize.IsZero() {
		add("max_size", s.MaxSize.String())
	}
	if len(f) == 0 {
		return "{} (any disk)"
	}
	return "{" + strings.Join(f, ", ") + "}"
}
