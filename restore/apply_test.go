package restore

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stratahq/strata/internal/run"
	"github.com/stratahq/strata/profile"
	"github.com/stratahq/strata/restore/internal/testdisk"
	"github.com/stratahq/strata/restore/plan"
	"github.com/stratahq/strata/restore/probe"
)

var update = flag.Bool("update", false, "rewrite golden files")

const gib = int64(1) << 30

// machines: the disks each profile is restored onto in these tests.
var machines = map[string][]probe.Disk{
	"laptop-uefi":      {testdisk.Virtio("vda", 8*gib)},
	"bios-msdos":       {testdisk.Virtio("vda", 4*gib)},
	"btrfs-subvolumes": {testdisk.SCSI("sda", 0, 6*gib)},
	"server-raid1":     {testdisk.SCSI("sda", 0, 6*gib), testdisk.SCSI("sdb", 1, 6*gib)},
	"stack": {testdisk.NVMe("nvme0n1", "strata-nvme0n1", 16*gib, 4096), testdisk.Virtio("vdb", 8*gib), testdisk.Virtio("vdc", 8*gib),
		testdisk.Virtio("vdd", 2*gib)},
}

func loadProfile(t *testing.T, name string) *profile.Profile {
	t.Helper()
	path := filepath.Join("..", "examples", name+".yaml")
	if name == "stack" {
		path = filepath.Join("testdata", "profiles", "stack.yaml")
	}
	p, err := profile.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

type fixture struct {
	t      *testing.T
	name   string
	prof   *profile.Profile
	plan   *plan.Plan
	m      *machine
	rec    *run.Recorder
	target string
	work   string
}

func newFixture(t *testing.T, name string, o plan.Options) *fixture {
	t.Helper()
	f := &fixture{t: t, name: name, prof: loadProfile(t, name), target: filepath.Join(t.TempDir(), "target"), work: filepath.Join(t.TempDir(), "work")}
	o.TargetRoot, o.WorkDir = f.target, f.work
	pl, err := plan.Build(f.prof, machines[name], o)
	if err != nil {
		t.Fatal(err)
	}
	f.plan = pl
	f.m = newMachine(t, pl)
	f.rec = &run.Recorder{Respond: f.m.Respond}
	f.m.rec = f.rec
	return f
}

// replan makes a new plan for the same machine (with other options).
func (f *fixture) replan(o plan.Options) {
	f.t.Helper()
	o.TargetRoot, o.WorkDir = f.target, f.work
	pl, err := plan.Build(f.prof, machines[f.name], o)
	if err != nil {
		f.t.Fatal(err)
	}
	f.plan = pl
}

func (f *fixture) apply(opts ...func(*Options)) (*events, error) {
	ev := &events{}
	o := f.m.options()
	o.Now = func() time.Time { return time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC) }
	for _, fn := range opts {
		fn(&o)
	}
	f.rec.Calls, f.rec.Stdins = nil, nil
	err := Apply(context.Background(), f.plan, f.rec, ev.handle, o)
	return ev, err
}

func (f *fixture) scrub(s string) string {
	return strings.NewReplacer(f.target, "$TARGET", f.work, "$WORK").Replace(s)
}

// argv renders the recorded commands with what each got on stdin.
func (f *fixture) argv() string {
	var b strings.Builder
	for i, c := range f.rec.Calls {
		b.WriteString(f.scrub(c.String()))
		if in := f.rec.Stdins[i]; in != "" {
			if strings.HasPrefix(in, "pw-") {
				fmt.Fprintf(&b, "   < passphrase of %s", strings.TrimPrefix(in, "pw-"))
			} else {
				fmt.Fprintf(&b, "   < %d lines of input", strings.Count(in, "\n"))
			}
		}
		b.WriteByte('\n')
	}
	return b.String()
}

func golden(t *testing.T, file, got string) {
	t.Helper()
	testdisk.Golden(t, file, got, *update, "./restore")
}

var examples = []string{"laptop-uefi", "bios-msdos", "btrfs-subvolumes", "server-raid1", "stack"}

// TestApplyArgvGolden restores every example onto blank fake disks and
// compares the commands, in order, with golden files: checks, wipefs/partx,
// mdadm, cryptsetup, lvm (thin, raid1, striped), every mkfs, mount, fstab.
func TestApplyArgvGolden(t *testing.T) {
	for _, name := range examples {
		t.Run(name, func(t *testing.T) {
			f := newFixture(t, name, plan.Options{})
			ev, err := f.apply()
			if err != nil {
				t.Fatalf("%v\n%s", err, ev.json(t))
			}
			golden(t, "argv/"+name+".txt", f.argv())
			assertSecretsOnStdin(t, f, ev)
			fst, err := os.ReadFile(filepath.Join(f.target, "etc", "fstab"))
			if err != nil {
				t.Fatal(err)
			}
			golden(t, "tabs/"+name+".fstab", string(fst))
			if len(f.plan.Crypttab) > 0 {
				ct, err := os.ReadFile(filepath.Join(f.target, "etc", "crypttab"))
				if err != nil {
					t.Fatal(err)
				}
				golden(t, "tabs/"+name+".crypttab", string(ct))
			}
			// assemble and activate find their state in place after create.
			if n := len(ev.kinds(StepDone)) + len(ev.kinds(StepSkipped)); n != len(f.plan.Steps) {
				t.Errorf("%d steps done or skipped of %d", n, len(f.plan.Steps))
			}
		})
	}
}

// assertSecretsOnStdin: every cryptsetup call that takes a key reads it
// from stdin (--key-file=-); the passphrase is in no argv and no event.
func assertSecretsOnStdin(t *testing.T, f *fixture, ev *events) {
	t.Helper()
	keyed := 0
	for i, c := range f.rec.Calls {
		line := c.String()
		if strings.Contains(line, "pw-") {
			t.Errorf("a passphrase is in argv: %s", line)
		}
		if c.Name == "cryptsetup" && (c.Args[0] == "luksFormat" || c.Args[0] == "open") {
			keyed++
			if !strings.Contains(line, "--key-file=-") {
				t.Errorf("no --key-file=-: %s", line)
			}
			name := c.Args[len(c.Args)-1]
			if c.Args[0] == "luksFormat" {
				for _, l := range f.plan.Crypttab {
					if l.Device == name {
						name = l.Name
					}
				}
			}
			if f.rec.Stdins[i] != "pw-"+name {
				t.Errorf("%s got %q on stdin, want the passphrase of %s", line, f.rec.Stdins[i], name)
			}
		}
	}
	if keyed == 0 && len(f.plan.Crypttab) > 0 {
		t.Error("no cryptsetup call took a key")
	}
	if strings.Contains(ev.json(t), "pw-") {
		t.Error("a passphrase is in the events")
	}
}

// TestEventsGolden pins the event stream's JSON form, which the TUI and the
// drill read.
func TestEventsGolden(t *testing.T) {
	f := newFixture(t, "bios-msdos", plan.Options{})
	ev, err := f.apply()
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "events/bios-msdos.jsonl", f.scrub(ev.json(t)))
}

// TestRerunChangesNothing: after a successful restore every step is
// skipped, and only read-only commands run.
func TestRerunChangesNothing(t *testing.T) {
	for _, name := range examples {
		t.Run(name, func(t *testing.T) {
			f := newFixture(t, name, plan.Options{})
			if _, err := f.apply(); err != nil {
				t.Fatal(err)
			}
			ev, err := f.apply()
			if err != nil {
				t.Fatal(err)
			}
			for _, s := range f.plan.Steps {
				if s.Check.Kind == "" {
					continue // idempotent steps without a check (btrfs subvolumes)
				}
				found := false
				for _, id := range ev.kinds(StepSkipped) {
					found = found || id == s.ID
				}
				if !found {
					t.Errorf("step %s was not skipped on the re-run", s.ID)
				}
			}
			for _, c := range f.rec.Calls {
				if !readOnly(c) && c.Name != "mount" && c.Name != "umount" && c.Name != "btrfs" {
					t.Errorf("the re-run wrote: %s", c)
				}
			}
		})
	}
}

func readOnly(c run.Cmd) bool {
	a := c.Args
	switch c.Name {
	case "blkid":
		return true
	case "cryptsetup":
		return a[0] == "luksUUID" || a[0] == "status"
	case "mdadm":
		return a[0] == "--examine" || a[0] == "--detail"
	case "lvm":
		return a[0] == "pvs" || a[0] == "vgs" || a[0] == "lvs"
	}
	return false
}

// TestDryRunWritesNothing: without --yes only checks run and the disks
// stay blank.
func TestDryRunWritesNothing(t *testing.T) {
	for _, name := range examples {
		t.Run(name, func(t *testing.T) {
			f := newFixture(t, name, plan.Options{})
			ev, err := f.apply(func(o *Options) { o.DryRun = true })
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range f.rec.Calls {
				if !readOnly(c) {
					t.Errorf("dry run ran %s", c)
				}
			}
			if n := len(ev.kinds(StepPending)); n != len(f.plan.Steps) {
				t.Errorf("%d steps pending, want all %d", n, len(f.plan.Steps))
			}
			for dev, img := range f.m.images {
				fh, err := os.Open(img)
				if err != nil {
					t.Fatal(err)
				}
				b := make([]byte, 1<<20)
				_, err = fh.ReadAt(b, 0)
				fh.Close()
				if err != nil {
					t.Fatal(err)
				}
				for _, x := range b {
					if x != 0 {
						t.Fatalf("dry run wrote to %s", dev)
					}
				}
			}
			if _, err := os.Stat(f.target); err == nil {
				t.Error("dry run created the target root")
			}
		})
	}
}

// TestResumeAfterFailure: an LVM step fails half way; the re-run skips what
// was done and finishes.
func TestResumeAfterFailure(t *testing.T) {
	f := newFixture(t, "laptop-uefi", plan.Options{})
	f.m.fail = func(c run.Cmd) error {
		if c.Name == "lvm" && c.Args[0] == "lvcreate" && strings.Contains(c.String(), "--name home") {
			return errors.New("lvcreate: killed")
		}
		return nil
	}
	ev, err := f.apply()
	if err == nil || !strings.Contains(err.Error(), "lv:vg0/home") {
		t.Fatalf("want a failure at lv:vg0/home, got %v", err)
	}
	if got := ev.kinds(StepFailed); len(got) != 1 || got[0] != "lv:vg0/home" {
		t.Fatalf("failed steps %v", got)
	}
	f.m.fail = nil
	ev, err = f.apply()
	if err != nil {
		t.Fatal(err)
	}
	// activate:vg0 too: lvcreate left every LV active.
	wantSkipped := []string{"wipe:main", "table:main", "luks:cryptroot", "open:cryptroot", "pv:vg0:cryptroot", "vg:vg0", "lv:vg0/root", "lv:vg0/swap", "activate:vg0"}
	if got := ev.kinds(StepSkipped); strings.Join(got, " ") != strings.Join(wantSkipped, " ") {
		t.Errorf("skipped on resume: %v\nwant %v", got, wantSkipped)
	}
	if got := ev.kinds(StepStarted); len(got) == 0 || got[0] != "lv:vg0/home" {
		t.Errorf("resume started with %v", got)
	}
	for _, c := range f.rec.Calls {
		if c.Name == "cryptsetup" && c.Args[0] == "luksFormat" {
			t.Error("resume formatted the LUKS volume again")
		}
	}
}

// TestResumeAfterReboot: the state is on disk but nothing is open: the
// re-run opens, assembles, activates and mounts, and creates nothing.
func TestResumeAfterReboot(t *testing.T) {
	for _, name := range []string{"laptop-uefi", "server-raid1", "stack"} {
		t.Run(name, func(t *testing.T) {
			f := newFixture(t, name, plan.Options{})
			if _, err := f.apply(); err != nil {
				t.Fatal(err)
			}
			f.m.open, f.m.mdActive, f.m.mounts = map[string]string{}, map[string]string{}, nil
			for _, vg := range f.m.vgs {
				for _, lv := range vg.lvs {
					lv.active = false
				}
			}
			f.m.writeMounts()
			ev, err := f.apply()
			if err != nil {
				t.Fatal(err)
			}
			for _, id := range ev.kinds(StepStarted) {
				k := strings.SplitN(id, ":", 2)[0]
				switch k {
				case "open", "assemble", "activate", "mount", "subvolumes":
				default:
					t.Errorf("after a reboot step %s ran", id)
				}
			}
		})
	}
}

// TestKeep: a reinstall that keeps /home. Kept items are verified, never
// recreated; with --fresh everything else is made again; a kept item that
// does not match stops the restore.
func TestKeep(t *testing.T) {
	f := newFixture(t, "laptop-uefi", plan.Options{})
	if _, err := f.apply(); err != nil {
		t.Fatal(err)
	}
	// The machine reboots into the live image: nothing mounted or open.
	f.m.open, f.m.mounts = map[string]string{}, nil
	f.m.writeMounts()
	f.replan(plan.Options{Keep: []string{"vg0/home"}, Fresh: true})
	golden(t, "keep/laptop-keep-home.txt", f.scrub(f.plan.Text()))
	ev, err := f.apply()
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "keep/laptop-keep-home.argv", f.argv())
	ran := strings.Join(ev.kinds(StepStarted), " ")
	for _, want := range []string{"mkfs:vg0/root", "mkfs:main/boot", "mkfs:main/esp", "mkfs:vg0/swap"} {
		if !strings.Contains(ran, want) {
			t.Errorf("--fresh did not redo %s (ran: %s)", want, ran)
		}
	}
	for _, not := range []string{"mkfs:vg0/home", "luks:cryptroot", "table:main", "wipe:main", "vg:vg0", "pv:"} {
		if strings.Contains(ran, not) {
			t.Errorf("kept stack recreated by %s", not)
		}
	}
	done := strings.Join(ev.kinds(StepDone), " ")
	for _, v := range []string{"verify-fs:vg0/home", "verify-lv:vg0/home", "verify-vg:vg0", "verify-luks:cryptroot", "verify-table:main"} {
		if !strings.Contains(done, v) {
			t.Errorf("%s not verified (done: %s)", v, done)
		}
	}
	// A re-run of the same fresh plan resumes: the journal says it is all done.
	ev, err = f.apply()
	if err != nil {
		t.Fatal(err)
	}
	if got := ev.kinds(StepStarted); len(got) > 1 || len(got) == 1 && got[0] != "subvolumes" {
		for _, id := range got {
			t.Errorf("resumed fresh run redid %s", id)
		}
	}
	// The kept filesystem is not what the profile says: stop, never reformat.
	f.m.fs["/dev/mapper/vg0-home"] = [2]string{"ext4", "00000000-0000-4000-8000-000000000000"}
	f.replan(plan.Options{Keep: []string{"/home"}})
	ev, err = f.apply()
	if !errors.Is(err, ErrVerify) {
		t.Fatalf("want ErrVerify, got %v", err)
	}
	if got := ev.kinds(StepFailed); len(got) != 1 || got[0] != "verify-fs:vg0/home" {
		t.Errorf("failed: %v", got)
	}
	for _, c := range f.rec.Calls {
		if strings.HasPrefix(c.Name, "mkfs") || c.Name == "mke2fs" {
			t.Errorf("a mismatching kept item led to %s", c)
		}
	}
}

// TestClose tears down what a restore set up, in reverse, and a second
// close finds nothing to do.
func TestClose(t *testing.T) {
	for _, name := range []string{"laptop-uefi", "server-raid1", "stack"} {
		t.Run(name, func(t *testing.T) {
			f := newFixture(t, name, plan.Options{})
			if _, err := f.apply(); err != nil {
				t.Fatal(err)
			}
			f.plan = plan.Close(f.plan)
			if _, err := f.apply(); err != nil {
				t.Fatal(err)
			}
			golden(t, "close/"+name+".txt", f.argv())
			if len(f.m.mounts) != 0 || len(f.m.open) != 0 || len(f.m.mdActive) != 0 {
				t.Errorf("left mounted %v, open %v, md %v", f.m.mounts, f.m.open, f.m.mdActive)
			}
			ev, err := f.apply()
			if err != nil {
				t.Fatal(err)
			}
			if got := ev.kinds(StepStarted); len(got) > 0 {
				t.Errorf("second close ran %v", got)
			}
		})
	}
}

// TestStepFailureStops: nothing after a failed step runs.
func TestStepFailureStops(t *testing.T) {
	f := newFixture(t, "server-raid1", plan.Options{})
	f.m.fail = func(c run.Cmd) error {
		if c.Name == "mdadm" && c.Args[0] == "--create" {
			return &run.ExitError{Cmd: c.String(), Code: 1, Stderr: "mdadm: cannot open /dev/sda3: Device or resource busy", Kind: run.ErrBusy}
		}
		return nil
	}
	ev, err := f.apply()
	if !errors.Is(err, run.ErrBusy) {
		t.Fatalf("want ErrBusy through the chain, got %v", err)
	}
	if started := ev.kinds(StepStarted); started[len(started)-1] != "raid:md-boot" {
		t.Errorf("ran after the failure: %v", started)
	}
	last := ev.list[len(ev.list)-1]
	if last.Kind != RunDone || !last.Failed || !strings.Contains(last.Message, "run the same command again") {
		t.Errorf("last event %+v", last)
	}
}

// The release step turns swap off with the system call (the live image has
// no swapoff program), then the check confirms nothing uses the disk; a
// failing swapoff(2) fails the step, naming the device.
func TestApplyReleaseSwapoff(t *testing.T) {
	for _, fail := range []bool{false, true} {
		var off []string
		d := testdisk.Virtio("vda", 8*gib)
		busy := d
		busy.Swaps = []string{"/dev/vda2"}
		pl := &plan.Plan{Steps: []plan.Step{{ID: "release:main", Kind: plan.KindRelease, Ref: "main", Device: "/dev/vda",
			Check: plan.Check{Kind: "released", Disk: "main", Device: "/dev/vda"}, Actions: []plan.Action{{Swapoff: "/dev/vda2"}}}}}
		rec := &run.Recorder{}
		err := Apply(context.Background(), pl, rec, nil, Options{Journal: filepath.Join(t.TempDir(), "j.json"),
			Probe: func(context.Context) ([]probe.Disk, error) {
				if len(off) == 0 || fail {
					return []probe.Disk{busy}, nil
				}
				return []probe.Disk{d}, nil
			},
			Swapoff: func(p string) error {
				off = append(off, p)
				if fail {
					return errors.New("operation not permitted")
				}
				return nil
			}})
		switch {
		case fail && (err == nil || !strings.Contains(err.Error(), "swapoff /dev/vda2: operation not permitted")):
			t.Errorf("failing swapoff: %v", err)
		case !fail && err != nil:
			t.Errorf("swapoff: %v", err)
		}
		if len(off) != 1 || off[0] != "/dev/vda2" || len(rec.Calls) != 0 {
			t.Errorf("swapoff calls %v, commands %v", off, rec.Calls)
		}
	}
}
