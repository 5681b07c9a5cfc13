// Package flow is a whole restore, as the live image, `strata restore` and
// the wizard run it: the storage layers (plan and Apply), the base system,
// its configuration, packages, initramfs and bootloader, the hand-off of
// repos and datasets, and finally closing everything so the disks can boot.
// Every stage reports through the same restore.Event stream.
package flow

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/stratahq/strata/handoff"
	"github.com/stratahq/strata/handoff/creds"
	"github.com/stratahq/strata/internal/run"
	"github.com/stratahq/strata/profile"
	"github.com/stratahq/strata/restore"
	"github.com/stratahq/strata/restore/fetch"
	"github.com/stratahq/strata/restore/plan"
	"github.com/stratahq/strata/restore/probe"
	"github.com/stratahq/strata/restore/system"
)

// Options configure a restore.
type Options struct {
	Profile *profile.Profile
	// Server resolves relative URLs (base image, datasets).
	Server string
	// Plan options: disk mapping (nil: match automatically), kept items,
	// target root and work directory.
	Plan plan.Options
	// SystemImage, when set, replaces the profile's base image: a clean
	// upgrade keeps the layout, packages, configs and datasets.
	SystemImage *profile.Image
	Keys        restore.KeySource
	Creds       *creds.Store
	Runner      run.Runner
	Events      restore.Handler
	Log         run.Logger
	// KeepOpen leaves the target mounted and open (to look around after).
	KeepOpen bool
	// Skip names stages (handoff, system:packages, ...) not to run, each
	// with the reason reported: the wizard's "skip" after a failure, and
	// stages done by an earlier attempt.
	Skip map[string]string
}

// Restore plans for this machine's disks and runs the whole restore. It
// writes to the disks: callers confirm first.
func Restore(ctx context.Context, o Options) error {
	// Signatures too: the live medium (label STRATA) is never a candidate.
	disks, err := probe.Disks(ctx, probe.Options{Runner: o.Runner})
	if err != nil {
		return fmt.Errorf("probe disks: %w", err)
	}
	if o.Plan.Disks == nil {
		o.Plan.Disks = map[string]string{}
	}
	if _, err := os.Stat("/run/udev/control"); err == nil {
		o.Plan.Udev = true
	}
	if o.Plan.Has == nil {
		o.Plan.Has = plan.OnPath
	}
	pl, err := plan.Build(o.Profile, disks, o.Plan)
	if err != nil {
		return fmt.Errorf("plan: %w", err)
	}
	return Run(ctx, pl, o)
}

// Run executes an already-built plan and everything after the layers.
func Run(ctx context.Context, pl *plan.Plan, o Options) error {
	f := &flow{o: o, p: o.Profile, plan: pl}
	if f.o.Events == nil {
		f.o.Events = func(restore.Event) {}
	}
	if f.o.Log == nil {
		f.o.Log = func(string, ...any) {}
	}
	f.index, f.total = len(pl.Steps), len(pl.Steps)+f.stages()
	// The layer steps count out of the whole restore, so "[3/12]" reads on
	// into the stages after them.
	layerEvents := func(e restore.Event) {
		e.Total = f.total
		f.o.Events(e)
	}
	if err := restore.Apply(ctx, pl, o.Runner, layerEvents, restore.Options{Keys: o.Keys}); err != nil {
		return fmt.Errorf("layers: %w", err)
	}
	err := f.system(ctx)
	if err == nil {
		err = f.handoff(ctx)
	}
	if o.KeepOpen {
		return err
	}
	// Close even after a failure: unmounted filesystems and closed LUKS
	// volumes are what a re-run (or the next boot) expects.
	cerr := f.stage("close", "unmount, deactivate and close the target", func() error {
		return restore.Apply(context.WithoutCancel(ctx), plan.Close(pl), o.Runner, func(e restore.Event) {
			if e.Kind == restore.Log || e.Kind == restore.StepFailed {
				f.o.Events(e)
			}
		}, restore.Options{})
	})
	return errors.Join(err, cerr)
}

type flow struct {
	o    Options
	p    *profile.Profile
	plan *plan.Plan
	// Stages are numbered after the plan's steps, so the plain log reads on.
	index, total int
}

// stage runs fn as one reported step.
func (f *flow) stage(id, summary string, fn func() error) error {
	f.index++
	ev := func(k restore.EventKind, msg string) restore.Event {
		return restore.Event{Kind: k, Time: time.Now(), Step: id, Summary: summary, Message: msg, Index: f.index, Total: f.total}
	}
	if why, ok := f.o.Skip[id]; ok {
		f.o.Events(ev(restore.StepSkipped, why))
		return nil
	}
	f.o.Events(ev(restore.StepStarted, ""))
	if err := fn(); err != nil {
		f.o.Events(ev(restore.StepFailed, err.Error()))
		return fmt.Errorf("%s: %w", id, err)
	}
	f.o.Events(ev(restore.StepDone, ""))
	return nil
}

// stages counts what stage will report (the image step even when skipped).
func (f *flow) stages() int {
	n := 0
	if s := f.p.System; s != nil {
		n += 3 // image, configure, initramfs
		if len(s.Packages) > 0 {
			n++
		}
		if f.p.Bootloader != nil {
			n++
		}
	}
	if len(f.p.Repos)+len(f.p.Datasets) > 0 {
		n++
	}
	if !f.o.KeepOpen {
		n++
	}
	return n
}

// progress reports a transfer every 5% or 15 s, whichever comes first, so a
// plain log stays readable and a TUI still moves.
func (f *flow) progress(id string) func(done, total int64) {
	var last time.Time
	var lastDone int64
	return func(done, total int64) {
		step := total / 20
		if done == total || time.Since(last) > 15*time.Second || (step > 0 && done-lastDone >= step) {
			last, lastDone = time.Now(), done
			f.o.Events(restore.Event{Kind: restore.Progress, Time: last, Step: id, Bytes: done, Of: total})
		}
	}
}

func (f *flow) note(id, format string, a ...any) {
	f.o.Events(restore.Event{Kind: restore.Log, Time: time.Now(), Step: id, Message: fmt.Sprintf(format, a...)})
}

// system lays down and boots-proofs the base system.
func (f *flow) system(ctx context.Context) error {
	s := f.p.System
	if s == nil {
		return nil
	}
	root := f.plan.TargetRoot
	img := s.Image
	if f.o.SystemImage != nil {
		img = *f.o.SystemImage
	}
	if system.ImageDone(root, img) {
		f.index++
		f.o.Events(restore.Event{Kind: restore.StepSkipped, Time: time.Now(), Step: "system:image", Summary: "base system " + img.URL, Message: "already unpacked", Index: f.index, Total: f.total})
	} else if err := f.stage("system:image", "base system "+img.URL, func() error {
		// The image brings its own /etc/fstab and crypttab: keep the ones
		// the layer steps wrote, and put them back afterwards.
		saved := map[string][]byte{}
		for _, rel := range []string{"etc/fstab", "etc/crypttab"} {
			if b, err := os.ReadFile(filepath.Join(root, rel)); err == nil {
				saved[rel] = b
			}
		}
		imgOpt := system.ImageOptions{Server: f.o.Server, Log: f.o.Log, Progress: f.progress("system:image")}
		if f.o.Creds != nil {
			// The file server's credentials and private CA serve the base
			// image as they serve the datasets.
			if full, err := fetch.Resolve(f.o.Server, img.URL); err == nil {
				imgOpt.Header = f.o.Creds.Lookup(full).Header()
			}
			imgOpt.Client = &http.Client{Transport: f.o.Creds.Transport(fetch.NewTransport())}
		}
		st, err := system.UnpackImage(ctx, root, img, imgOpt)
		if err != nil {
			return err
		}
		for rel, b := range saved {
			if err := os.WriteFile(filepath.Join(root, rel), b, 0o644); err != nil {
				return err
			}
		}
		f.note("system:image", "%d entries, %s", st.Entries, profile.HumanBytes(st.Bytes))
		return nil
	}); err != nil {
		return err
	}
	uuid := f.uuidOf(ctx)
	if err := f.stage("system:configure", "host name, hibernation and initramfs settings", func() error {
		return system.Configure(root, f.p, uuid)
	}); err != nil {
		return err
	}
	ch, err := system.Enter(ctx, root, f.o.Runner)
	if err != nil {
		return err
	}
	err = f.inChroot(ctx, ch, uuid)
	return errors.Join(err, ch.Close(context.WithoutCancel(ctx)))
}

func (f *flow) inChroot(ctx context.Context, ch *system.Chroot, uuid func(string) string) error {
	s := f.p.System
	if len(s.Packages) > 0 {
		if err := f.stage("system:packages", fmt.Sprintf("install %d packages", len(s.Packages)), func() error {
			pm := s.PackageManager
			if pm == "" {
				var err error
				if pm, err = system.PackageManager(ch.Root); err != nil {
					return err
				}
			}
			return ch.InstallPackages(ctx, pm, s.Packages)
		}); err != nil {
			return err
		}
	}
	if err := f.stage("system:initramfs", "regenerate the initramfs (LUKS, md, LVM at boot)", func() error {
		return ch.RegenerateInitramfs(ctx)
	}); err != nil {
		return err
	}
	if f.p.Bootloader == nil {
		return nil
	}
	return f.stage("system:bootloader", "install "+f.p.Bootloader.Type, func() error {
		b, err := f.bootTarget(ctx, uuid)
		if err != nil {
			return err
		}
		return ch.InstallBootloader(ctx, b)
	})
}

// bootTarget locates the disks and the ESP on the real devices.
func (f *flow) bootTarget(ctx context.Context, uuid func(string) string) (system.Boot, error) {
	b := system.Boot{Loader: f.p.Bootloader, Disks: map[string]string{}, KernelArgs: system.KernelArgs(f.p, uuid)}
	for _, d := range f.plan.Disks {
		b.Disks[d.Name] = d.Device
	}
	b.EFIVars = system.EFIVars(ctx, f.o.Runner)
	if esp := f.p.ESP(); esp != nil {
		b.ESP = esp.Mount.Path
		disk, _, _ := strings.Cut(esp.Device, "/")
		b.ESPDisk = b.Disks[disk]
		dev := f.device(esp.Device)
		num := strings.TrimPrefix(strings.TrimPrefix(dev, b.ESPDisk), "p")
		n, err := strconv.Atoi(num)
		if err != nil {
			return b, fmt.Errorf("cannot tell the ESP's partition number from %s on %s", dev, b.ESPDisk)
		}
		b.ESPPart = n
	}
	return b, nil
}

func (f *flow) device(ref string) string {
	for _, d := range f.plan.Devices {
		if d.Ref == ref {
			return d.Path
		}
	}
	return ""
}

// uuidOf reads the filesystem UUID really on a device (the profile's, or
// the one mkfs chose), for root=, resume= and the like.
func (f *flow) uuidOf(ctx context.Context) func(ref string) string {
	return func(ref string) string {
		dev := f.device(ref)
		res, err := f.o.Runner.Run(ctx, run.Cmd{Name: "blkid", Args: []string{"-s", "UUID", "-o", "value", dev}})
		if err == nil {
			if u := strings.TrimSpace(string(res.Stdout)); u != "" {
				return u
			}
		}
		for _, d := range f.plan.Devices {
			if d.Ref == ref && d.FS != nil {
				return d.FS.UUID
			}
		}
		return ""
	}
}

func (f *flow) handoff(ctx context.Context) error {
	if len(f.p.Repos) == 0 && len(f.p.Datasets) == 0 {
		return nil
	}
	return f.stage("handoff", fmt.Sprintf("%d repos, %d datasets", len(f.p.Repos), len(f.p.Datasets)), func() error {
		// Items run side by side: their byte counts add up to one bar
		// (items whose total is not known yet are left out of it).
		progress := f.progress("handoff")
		counts := map[handoff.Item]handoff.Counts{}
		events := func(e handoff.Event) {
			if e.Type != handoff.Progress {
				f.note("handoff", "%s", e.String())
				if e.Type != handoff.Done {
					return
				}
			}
			counts[e.Item] = e.Counts
			var done, total int64
			for _, c := range counts {
				if c.TotalBytes > 0 {
					done, total = done+c.Bytes, total+c.TotalBytes
				}
			}
			if total > 0 {
				progress(done, total)
			}
		}
		_, err := handoff.Run(ctx, f.p, handoff.Options{Root: f.plan.TargetRoot, Server: f.o.Server, Creds: f.o.Creds, Runner: f.o.Runner, Log: f.o.Log,
			Events: events})
		return err
	})
}
