package plan

import (
	"github.com/stratahq/strata/restore/argv"
)

// Close is the teardown of what p sets up: unmount the target tree
// (children first), deactivate the volume groups, close the LUKS volumes and
// stop the md arrays, in the reverse of the order p opens them. Each step is
// skipped when its device is already down, so Close is safe to repeat.
func Close(p *Plan) *Plan {
	c := &Plan{Host: p.Host, Profile: p.Profile, TargetRoot: p.TargetRoot, WorkDir: p.WorkDir, Udev: p.Udev, Disks: p.Disks, Devices: p.Devices}
	lvm := argv.LVM{Udev: p.Udev}
	for i := len(p.Steps) - 1; i >= 0; i-- {
		s := p.Steps[i]
		var n Step
		switch s.Kind {
		case KindMount:
			dir := s.Check.Path
			n = Step{ID: "unmount:" + s.Ref, Kind: KindUnmount, Ref: s.Ref, Device: s.Device,
				Summary: "unmount " + dir,
				Check:   Check{Kind: "unmounted", Path: dir, Text: "done when " + dir + " is not mounted"},
				Actions: []Action{runA(argv.Umount(dir)...)}}
		case KindActivate:
			n = Step{ID: "deactivate:" + s.Ref, Kind: KindDeactivate, Ref: s.Ref,
				Summary: "deactivate the logical volumes of " + s.Ref,
				Check:   Check{Kind: "vg-inactive", Name: s.Ref, Text: "done when no LV of " + s.Ref + " is active"},
				Actions: []Action{lvmRun(lvm.VGChange(s.Ref, false))}}
		case KindOpen:
			n = Step{ID: "close:" + s.Ref, Kind: KindClose, Ref: s.Ref, Device: s.Device,
				Summary: "close " + s.Device,
				Check:   Check{Kind: "luks-closed", Name: s.Ref, Text: "done when " + s.Device + " is closed"},
				Actions: []Action{runA(argv.LuksClose(s.Ref)...)}}
		case KindAssemble:
			n = Step{ID: "stop:" + s.Ref, Kind: KindStop, Ref: s.Ref, Device: s.Device,
				Summary: "stop array " + s.Device,
				Check:   Check{Kind: "md-stopped", Device: s.Device, Text: "done when " + s.Device + " is stopped"},
				Actions: []Action{runA(argv.MdadmStop(s.Device)...)}}
		default:
			continue
		}
		if len(c.Steps) > 0 {
			n.After = []string{c.Steps[len(c.Steps)-1].ID}
		}
		c.Steps = append(c.Steps, n)
	}
	return c
}
