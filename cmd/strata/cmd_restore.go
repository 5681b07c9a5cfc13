package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/stratahq/strata/internal/run"
	"github.com/stratahq/strata/profile"
	"github.com/stratahq/strata/restore"
	"github.com/stratahq/strata/restore/flow"
	"github.com/stratahq/strata/restore/plan"
)

func init() {
	var f *planFlags
	var yes, closeMode, layersOnly, keepOpen bool
	var server, sysImage, sysImageSum string
	register(&command{
		name:    "restore",
		summary: "partition, encrypt, assemble, format and mount a machine's disks from its profile (dry run without --yes; resumes)",
		usage:   "PROFILE",
		flags: func(fs *flag.FlagSet) {
			f = &planFlags{}
			f.register(fs)
			fs.BoolVar(&yes, "yes", false, "do it: without --yes only the checks run and nothing is written")
			fs.BoolVar(&closeMode, "close", false, "tear down instead: unmount the target, deactivate LVM, close LUKS, stop md arrays")
			fs.BoolVar(&layersOnly, "layers-only", false, "only the disks: partitions, RAID, LUKS, LVM, filesystems, mounts, fstab; no base system, bootloader or hand-off; the target stays mounted")
			fs.BoolVar(&keepOpen, "keep-open", false, "leave the restored target mounted and open at the end")
			fs.StringVar(&server, "server", "", "file server for relative URLs in the profile (base image, datasets)")
			fs.StringVar(&sysImage, "system-image", "", "base system archive URL replacing the profile's (a clean upgrade); needs --system-image-sha256")
			fs.StringVar(&sysImageSum, "system-image-sha256", "", "SHA-256 of --system-image")
		},
		run: func(e *env, args []string) error {
			args, err := positional(e, args)
			if err != nil {
				return err
			}
			if len(args) != 1 {
				return usagef("name one profile")
			}
			if closeMode && (f.fresh || len(f.keep) > 0) {
				return usagef("--close takes no --fresh or --keep")
			}
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			r := run.Exec{Log: toolLog(f.work)}
			p, pl, err := f.build(ctx, e, args[0], r, closeMode)
			if err != nil {
				return err
			}
			dry := !yes && !closeMode // closing writes nothing to the disks
			if closeMode {
				pl = plan.Close(pl)
			}
			handler := f.output(e, pl)
			if (sysImage == "") != (sysImageSum == "") {
				return usagef("--system-image and --system-image-sha256 go together")
			}
			if !dry && !closeMode && !layersOnly {
				o := flow.Options{Profile: p, Server: server, Runner: r, Events: handler, Keys: restore.NewProfileKeys(p), KeepOpen: keepOpen, Log: toolLog(f.work)}
				if sysImage != "" {
					o.SystemImage = &profile.Image{URL: sysImage, SHA256: sysImageSum}
				}
				err = flow.Run(ctx, pl, o)
			} else {
				err = restore.Apply(ctx, pl, r, handler, restore.Options{DryRun: dry, Keys: restore.NewProfileKeys(p)})
			}
			if err != nil {
				return applyExit(err)
			}
			if dry && !f.json {
				more := f.again()
				if layersOnly {
					more += " --layers-only"
				}
				fmt.Fprintf(e.stdout, "\nNothing was written. To restore: strata restore %s%s --yes\n", args[0], more)
			}
			return nil
		},
	})
}

// toolLog keeps every command's stderr in the work directory, next to the
// journal; the events carry the commands themselves.
func toolLog(dir string) run.Logger {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil
	}
	lf, err := os.OpenFile(filepath.Join(dir, "restore.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil
	}
	return func(format string, a ...any) { fmt.Fprintf(lf, format+"\n", a...) }
}

// output prints the plan (unless --json) and returns the handler that
// prints the run's events: lines, or JSON objects with --json.
func (f *planFlags) output(e *env, pl *plan.Plan) restore.Handler {
	if f.json {
		return restore.JSONLines(e.stdout)
	}
	fmt.Fprint(e.stdout, pl.Text())
	fmt.Fprintln(e.stdout)
	return restore.Plain(e.stdout)
}

// applyExit gives a failed run its exit code: a kept item that is not as
// the profile says, or any other failure.
func applyExit(err error) error {
	if errors.Is(err, restore.ErrVerify) {
		return exitError{code: exitVerify, err: err}
	}
	return exitError{code: exitFailed, err: err}
}
