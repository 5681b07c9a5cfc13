package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"

	"github.com/stratahq/strata/internal/run"
	"github.com/stratahq/strata/profile"
	"github.com/stratahq/strata/restore/plan"
	"github.com/stratahq/strata/restore/probe"
	"github.com/stratahq/strata/restore/target"
)

// Exit codes of plan and restore beyond main.go's (docs/restore.md).
const (
	exitRefused = 3 // no plan for these disks: matching, refusals, sizes
	exitVerify  = 4 // a kept item is not as the profile says
)

// diskFlags collects repeated --disk NAME=DEVICE.
type diskFlags map[string]string

func (d diskFlags) String() string { return "" }
func (d diskFlags) Set(v string) error {
	name, dev, ok := strings.Cut(v, "=")
	if !ok || name == "" || dev == "" {
		return errors.New("want NAME=DEVICE, e.g. main=/dev/vda")
	}
	d[name] = dev
	return nil
}

// listFlag collects a repeated flag.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

// planFlags are shared by plan and restore.
type planFlags struct {
	disks     diskFlags
	keep      listFlag
	json      bool
	target    string
	work      string
	teardown  bool
	fresh     bool
	sysfs     string
	disksJSON string
	open      bool // strata open: keep and verify everything, write nothing
	readOnly  bool
}

func (f *planFlags) register(fs *flag.FlagSet) {
	f.disks = diskFlags{}
	fs.Var(f.disks, "disk", "use DEVICE for the profile's disk NAME: --disk main=/dev/vda (repeatable; a /dev path, kernel name or by-id name)")
	fs.Var(&f.keep, "keep", "keep REF and what is built on it: a device (vg0/home), a volume group or a mount point (/home); repeatable")
	fs.BoolVar(&f.json, "json", false, "machine-readable output")
	fs.StringVar(&f.target, "target", "/mnt/strata", "where the restored system's tree is mounted")
	fs.StringVar(&f.work, "work", "/run/strata", "scratch mounts and the progress journal")
	fs.BoolVar(&f.teardown, "teardown", false, "accept target disks that are in use: unmount and close what sits on them first")
	fs.BoolVar(&f.fresh, "fresh", false, "make again what is not kept even where it is already there (a clean reinstall)")
	fs.StringVar(&f.sysfs, "sysfs", "/sys", "sysfs to probe the disks in")
	fs.StringVar(&f.disksJSON, "disks-json", "", "plan for the disks in this file (strata plan --list-disks --json) instead of probing")
}

// disks probes the machine, or reads the disks of another one.
func (f *planFlags) probe(ctx context.Context, r run.Runner) ([]probe.Disk, error) {
	if f.disksJSON != "" {
		b, err := os.ReadFile(f.disksJSON)
		if err != nil {
			return nil, err
		}
		var d []probe.Disk
		if err := json.Unmarshal(b, &d); err != nil {
			return nil, fmt.Errorf("%s: %w", f.disksJSON, err)
		}
		return d, nil
	}
	return probe.Disks(ctx, probe.Options{SysRoot: f.sysfs, Runner: r})
}

// udevRunning: LVM may wait for udev only when its daemon is there.
func udevRunning() bool {
	_, err := os.Stat("/run/udev/control")
	return err == nil
}

// loadProfile prints a profile's errors like strata validate does.
func loadProfile(e *env, path string) (*profile.Profile, error) {
	p, err := profile.Load(path)
	var errs profile.Errors
	if errors.As(err, &errs) {
		for _, pe := range errs {
			fmt.Fprintln(e.stderr, pe)
		}
		return nil, exitError{code: exitFailed, err: fmt.Errorf("%s: %d problems", path, len(errs))}
	}
	return p, err
}

// build loads the profile, probes and plans.
func (f *planFlags) build(ctx context.Context, e *env, path string, r run.Runner, forClose bool) (*profile.Profile, *plan.Plan, error) {
	p, err := loadProfile(e, path)
	if err != nil {
		return nil, nil, err
	}
	disks, err := f.probe(ctx, r)
	if err != nil {
		return nil, nil, fmt.Errorf("probe disks: %w", err)
	}
	pl, err := plan.Build(p, disks, plan.Options{Disks: f.disks, Keep: f.keep, TargetRoot: f.target, WorkDir: f.work,
		Teardown: f.teardown || forClose, Udev: udevRunning(), Fresh: f.fresh, Open: f.open, ReadOnly: f.readOnly, Has: plan.OnPath})
	var te *target.Error
	var pe *plan.Error
	if errors.As(err, &te) || errors.As(err, &pe) {
		return p, nil, exitError{code: exitRefused, err: fmt.Errorf("no plan for %s on this machine:\n%w", path, err)}
	}
	return p, pl, err
}

func writeDisks(w io.Writer, disks []probe.Disk, asJSON bool) error {
	if asJSON {
		b, err := json.MarshalIndent(disks, "", "  ")
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(w, "%s\n", b)
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "DEVICE\tSIZE\tSECTORS\tMODEL\tSERIAL\tBY-ID\tNOTES")
	for _, d := range disks {
		var notes []string
		if d.LiveMedium {
			notes = append(notes, "live medium")
		}
		if d.SystemDisk {
			notes = append(notes, "running system")
		}
		if use := d.InUse(); use != "" {
			notes = append(notes, "in use: "+use)
		}
		if d.Removable {
			notes = append(notes, "removable")
		}
		for _, s := range d.Signatures {
			notes = append(notes, s.Type)
		}
		id := "-"
		if len(d.ByID) > 0 {
			id = d.ByID[0]
		}
		fmt.Fprintf(tw, "%s\t%s\t%d/%d\t%s\t%s\t%s\t%s\n", d.Path, profile.HumanBytes(d.Size), d.LogicalSectorSize, d.PhysicalSectorSize,
			dash(d.Model), dash(d.Serial), id, strings.Join(notes, "; "))
	}
	return tw.Flush()
}

// positional lets flags follow the profile (strata plan PROFILE --disk
// main=/dev/vda): the flag package stops at the first argument, so the rest
// is parsed again.
func positional(e *env, args []string) ([]string, error) {
	var pos []string
	for len(args) > 0 {
		if strings.HasPrefix(args[0], "-") {
			if err := e.fs.Parse(args); err != nil {
				return nil, usagef("%v", err)
			}
			args = e.fs.Args()
			continue
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
	return pos, nil
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func init() {
	var f *planFlags
	var list bool
	register(&command{
		name:    "plan",
		summary: "show what a restore would do to which device: sizes, identities, steps, fstab (writes nothing)",
		usage:   "PROFILE | --list-disks",
		flags: func(fs *flag.FlagSet) {
			f = &planFlags{}
			f.register(fs)
			fs.BoolVar(&list, "list-disks", false, "list this machine's disks as restore sees them, and exit")
		},
		run: func(e *env, args []string) error {
			args, err := positional(e, args)
			if err != nil {
				return err
			}
			ctx := context.Background()
			r := run.Exec{}
			if list {
				if len(args) > 0 {
					return usagef("--list-disks takes no profile")
				}
				disks, err := f.probe(ctx, r)
				if err != nil {
					return err
				}
				return writeDisks(e.stdout, disks, f.json)
			}
			if len(args) != 1 {
				return usagef("name one profile")
			}
			_, pl, err := f.build(ctx, e, args[0], r, false)
			if err != nil {
				return err
			}
			if f.json {
				b, err := pl.JSON()
				if err != nil {
					return err
				}
				_, err = e.stdout.Write(b)
				return err
			}
			fmt.Fprint(e.stdout, pl.Text())
			fmt.Fprintf(e.stdout, "\nNothing was written. To do it: strata restore %s%s --yes\n", args[0], f.again())
			return nil
		},
	})
}

// again repeats the choices that shape the plan, for the hint.
func (f *planFlags) again() string {
	var b strings.Builder
	for _, n := range sortedKeys(f.disks) {
		fmt.Fprintf(&b, " --disk %s=%s", n, f.disks[n])
	}
	for _, k := range f.keep {
		fmt.Fprintf(&b, " --keep %s", k)
	}
	if f.teardown {
		b.WriteString(" --teardown")
	}
	if f.fresh {
		b.WriteString(" --fresh")
	}
	if f.target != "/mnt/strata" {
		b.WriteString(" --target " + filepath.Clean(f.target))
	}
	return b.String()
}

func sortedKeys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	for i := 1; i < len(out); i++ {
		for j := i; j > 0 && out[j] < out[j-1]; j-- {
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
	return out
}
