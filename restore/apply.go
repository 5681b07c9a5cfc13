package restore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/stratahq/strata/internal/run"
	"github.com/stratahq/strata/restore/argv"
	"github.com/stratahq/strata/restore/plan"
	"github.com/stratahq/strata/restore/probe"
	"github.com/stratahq/strata/restore/table"
)

// Options adapt Apply to where it runs. The zero value is the real machine.
type Options struct {
	// DryRun runs the checks only (they read, never write) and reports
	// which steps would run.
	DryRun bool
	// Keys gives LUKS passphrases; needed when a step formats or opens one.
	Keys KeySource
	// Open opens a disk for the partition table (default os.OpenFile).
	Open func(path string, write bool) (table.File, error)
	// Wait waits until device nodes exist (default: poll the filesystem
	// for WaitTimeout, 30 s).
	Wait        func(ctx context.Context, paths []string) error
	WaitTimeout time.Duration
	// MountInfo is read by the mount checks (default /proc/self/mountinfo).
	MountInfo string
	// SysRoot is where sysfs is (default /sys).
	SysRoot string
	// Probe re-reads the disks for the release check (default probe.Disks).
	Probe func(ctx context.Context) ([]probe.Disk, error)
	// Journal is the file recording finished steps (default
	// WorkDir/journal.json); it lets a --fresh run resume.
	Journal string
	// NoConfirm skips re-running a step's check after its actions. The
	// confirmation catches a tool that silently ignored a setting; tests of
	// argv sequences turn it off.
	NoConfirm bool
	// Now stamps events (default time.Now).
	Now func() time.Time
	// Swapoff turns off swap on a device or file (default: the swapoff(2)
	// system call).
	Swapoff func(path string) error
}

// ErrVerify marks a kept item that is not as the profile says.
var ErrVerify = errors.New("kept item does not match the profile")

type applier struct {
	p      *plan.Plan
	r      run.Runner
	o      Options
	emit   Handler
	byID   map[string]*plan.Step
	uuids  map[string]string // device -> UUID read back with blkid
	cur    *plan.Step
	index  int
	logged []string
}

// Apply runs the plan's steps in order. A step whose check finds its state
// in place is skipped (unless it must be redone under --fresh and this run's
// journal does not list it); a kept item that does not verify stops the run
// with ErrVerify; any other failure stops it with the step's error.
func Apply(ctx context.Context, p *plan.Plan, r run.Runner, events Handler, o Options) error {
	if events == nil {
		events = func(Event) {}
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Open == nil {
		o.Open = openDevice
	}
	if o.WaitTimeout == 0 {
		o.WaitTimeout = 30 * time.Second
	}
	if o.Swapoff == nil {
		o.Swapoff = swapoff
	}
	if o.Wait == nil {
		o.Wait = func(ctx context.Context, paths []string) error { return waitNodes(ctx, paths, o.WaitTimeout) }
	}
	if o.MountInfo == "" {
		o.MountInfo = "/proc/self/mountinfo"
	}
	if o.SysRoot == "" {
		o.SysRoot = "/sys"
	}
	if o.Probe == nil {
		o.Probe = func(ctx context.Context) ([]probe.Disk, error) { return probe.Disks(ctx, probe.Options{}) }
	}
	if o.Journal == "" {
		o.Journal = filepath.Join(p.WorkDir, "journal.json")
	}
	a := &applier{p: p, r: r, o: o, byID: map[string]*plan.Step{}, uuids: map[string]string{}}
	a.emit = func(e Event) {
		e.Time = o.Now()
		e.Total = len(p.Steps)
		e.DryRun = o.DryRun
		events(e)
	}
	for i := range p.Steps {
		a.byID[p.Steps[i].ID] = &p.Steps[i]
	}
	j, err := loadJournal(o.Journal, p)
	if err != nil {
		return err
	}
	a.emit(Event{Kind: RunStarted})
	ran, skipped, pending := 0, 0, 0
	for i := range p.Steps {
		s := &p.Steps[i]
		a.cur, a.index = s, i+1
		ev := Event{Step: s.ID, Index: i + 1, Summary: s.Summary}
		fail := func(err error) error {
			e := ev
			e.Kind, e.Message = StepFailed, err.Error()
			a.emit(e)
			done := ev
			done.Kind, done.Failed = RunDone, true
			done.Message = fmt.Sprintf("stopped at step %d of %d (%s): %v\nfix the cause and run the same command again: finished steps are skipped", i+1, len(p.Steps), s.ID, err)
			a.emit(done)
			return fmt.Errorf("step %s: %w", s.ID, err)
		}
		done, why, err := a.check(ctx, s)
		if err != nil {
			return fail(err)
		}
		if s.Kind.Verifies() {
			if !done {
				return fail(fmt.Errorf("%w: %s", ErrVerify, why))
			}
			if err := a.actions(ctx, s); err != nil { // waiting for the nodes of a kept table
				return fail(err)
			}
			e := ev
			e.Kind, e.Message = StepDone, "verified: "+why
			a.emit(e)
			if !o.DryRun {
				j.done(s.ID)
			}
			continue
		}
		if done && (!s.Redo || j.has(s.ID)) {
			e := ev
			e.Kind, e.Message = StepSkipped, "already done: "+why
			a.emit(e)
			skipped++
			continue
		}
		if o.DryRun {
			e := ev
			e.Kind, e.Message = StepPending, why
			a.emit(e)
			pending++
			continue
		}
		e := ev
		e.Kind = StepStarted
		a.emit(e)
		if err := a.actions(ctx, s); err != nil {
			return fail(err)
		}
		// Confirm with the step's own check; a "same-as" check (the wipe
		// before a table) only holds once the later step has run.
		if !o.NoConfirm && s.Check.Kind != "" && s.Check.Kind != "same-as" {
			ok, why, err := a.check(ctx, s)
			if err != nil {
				return fail(err)
			}
			if !ok {
				return fail(fmt.Errorf("the step ran but its check still fails: %s", why))
			}
		}
		j.done(s.ID)
		if err := j.save(); err != nil {
			a.log("cannot record progress in %s: %v", o.Journal, err)
		}
		e = ev
		e.Kind = StepDone
		a.emit(e)
		ran++
	}
	msg := fmt.Sprintf("done: %d steps ran, %d were already done", ran, skipped)
	if o.DryRun {
		msg = fmt.Sprintf("dry run: %d steps would run, %d are already done; nothing was written", pending, skipped)
	}
	a.emit(Event{Kind: RunDone, Message: msg})
	return nil
}

func (a *applier) log(format string, args ...any) {
	a.emit(Event{Kind: Log, Step: a.cur.ID, Index: a.index, Message: fmt.Sprintf(format, args...)})
}

// runCmd runs argv through the runner, logging it. Secrets travel on stdin.
func (a *applier) runCmd(ctx context.Context, c run.Cmd) (run.Result, error) {
	a.log("$ %s", c)
	return a.r.Run(ctx, c)
}

// query runs a read-only command for a check; failures are answers, not
// errors, so only the result is returned.
func (a *applier) query(ctx context.Context, argv []string, env ...string) (run.Result, error) {
	return a.r.Run(ctx, run.Cmd{Name: argv[0], Args: argv[1:], Env: env})
}

func (a *applier) actions(ctx context.Context, s *plan.Step) error {
	for _, act := range s.Actions {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := a.action(ctx, s, act); err != nil {
			return err
		}
	}
	return nil
}

func (a *applier) action(ctx context.Context, s *plan.Step, act plan.Action) error {
	switch {
	case act.Run != nil:
		if act.UnlessExists != "" {
			if _, err := os.Stat(act.UnlessExists); err == nil {
				a.log("%s exists: not running %s", act.UnlessExists, run.Quote(act.Run))
				return nil
			}
		}
		c := run.Cmd{Name: act.Run[0], Args: act.Run[1:], Env: act.Env}
		switch {
		case act.Key != "":
			if a.o.Keys == nil {
				return fmt.Errorf("no key source for LUKS volume %s", act.Key)
			}
			pass, err := a.o.Keys.Passphrase(ctx, act.Key, s.Kind == plan.KindLUKS)
			if err != nil {
				return fmt.Errorf("passphrase for %s: %w", act.Key, err)
			}
			c.Stdin = bytes.NewReader(pass)
		case act.Input != "":
			c.Stdin = strings.NewReader(act.Input)
		}
		_, err := a.runCmd(ctx, c)
		if err != nil && act.MayFail {
			a.log("tolerated: %v", err)
			return nil
		}
		return err
	case act.Mkdir != "":
		a.log("mkdir -p %s", act.Mkdir)
		return os.MkdirAll(act.Mkdir, 0o755)
	case act.WriteTable != "":
		return a.writeTable(s, act.WriteTable)
	case act.Reread != "":
		var parts []string
		for _, w := range s.Actions {
			parts = append(parts, w.Wait...)
		}
		return a.reread(ctx, act.Reread, parts)
	case act.Wait != nil:
		a.log("waiting for %s", strings.Join(act.Wait, " "))
		return a.o.Wait(ctx, act.Wait)
	case act.Write != "":
		return a.writeTab(ctx, act.Write)
	case act.LVMIDs != "":
		return a.patchLVMIDs(s, act.LVMIDs)
	case act.Swapoff != "":
		a.log("swapoff %s", act.Swapoff)
		if err := a.o.Swapoff(act.Swapoff); err != nil {
			return fmt.Errorf("swapoff %s: %w", act.Swapoff, err)
		}
		return nil
	}
	return fmt.Errorf("step %s: empty action", s.ID)
}

func (a *applier) disk(name string) *plan.Disk {
	for i := range a.p.Disks {
		if a.p.Disks[i].Name == name {
			return &a.p.Disks[i]
		}
	}
	return nil
}

func (a *applier) writeTable(s *plan.Step, dev string) error {
	d := a.disk(s.Ref)
	if d == nil || d.Table == nil {
		return fmt.Errorf("no table planned for disk %s", s.Ref)
	}
	a.log("writing the %s table to %s with go-diskfs", d.Table.Type, dev)
	f, err := a.o.Open(dev, true)
	if err != nil {
		return fmt.Errorf("open %s: %w", dev, err)
	}
	defer f.Close()
	if size, err := f.Seek(0, 2); err == nil && size != d.Table.DiskSize {
		return fmt.Errorf("%s is %d bytes, the plan was made for %d: make the plan again", dev, size, d.Table.DiskSize)
	}
	if err := table.Write(f, d.Table); err != nil {
		return err
	}
	if s, ok := f.(interface{ Sync() error }); ok {
		if err := s.Sync(); err != nil {
			return fmt.Errorf("sync %s: %w", dev, err)
		}
	}
	return f.Close()
}

// reread makes the kernel read dev's new table: BLKRRPART, else partx.
// BLKRRPART can succeed and still add nothing (measured on loop devices of
// a 6.18 kernel), so the kernel's partitions are checked in sysfs.
func (a *applier) reread(ctx context.Context, dev string, parts []string) error {
	f, err := a.o.Open(dev, false)
	if err != nil {
		return fmt.Errorf("open %s: %w", dev, err)
	}
	var ioErr error = errors.New("not a device")
	if osf, ok := f.(*os.File); ok {
		ioErr = unix.IoctlSetInt(int(osf.Fd()), unix.BLKRRPART, 0)
	}
	f.Close()
	if ioErr == nil {
		var missing []string
		for _, p := range parts {
			if _, err := os.Stat(filepath.Join(a.o.SysRoot, "class", "block", filepath.Base(p))); err != nil {
				missing = append(missing, filepath.Base(p))
			}
		}
		if len(missing) == 0 {
			a.log("the kernel re-read the table of %s (BLKRRPART)", dev)
			return nil
		}
		ioErr = fmt.Errorf("the kernel still lacks %s", strings.Join(missing, " "))
	}
	a.log("BLKRRPART on %s: %v; using partx", dev, ioErr)
	if _, err := a.runCmd(ctx, run.Cmd{Name: "partx", Args: argv.PartxDelete(dev)[1:]}); err != nil {
		a.log("tolerated: %v", err) // there may have been none
	}
	_, err = a.runCmd(ctx, run.Cmd{Name: "partx", Args: argv.PartxAdd(dev)[1:]})
	return err
}

func openDevice(path string, write bool) (table.File, error) {
	flag := os.O_RDONLY
	if write {
		flag = os.O_RDWR
	}
	return os.OpenFile(path, flag, 0)
}

// waitNodes polls for device nodes: without udev the kernel's devtmpfs
// creates them a moment after partx or an md/dm device appears.
func waitNodes(ctx context.Context, paths []string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		var missing []string
		for _, p := range paths {
			if _, err := os.Stat(p); err != nil {
				missing = append(missing, p)
			}
		}
		if len(missing) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("device nodes did not appear within %s: %s", timeout, strings.Join(missing, " "))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// swapoff is swapoff(2).
func swapoff(path string) error {
	p, err := unix.BytePtrFromString(path)
	if err != nil {
		return err
	}
	if _, _, e := unix.Syscall(unix.SYS_SWAPOFF, uintptr(unsafe.Pointer(p)), 0, 0); e != 0 {
		return e
	}
	return nil
}
