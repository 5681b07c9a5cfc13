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
	"github.com/stratahq/strata/restore"
)

// open is the rescue half of restore: a machine's disks, as its profile
// describes them, verified layer by layer and mounted, with nothing
// written. It is how `strata capture --root` reads a machine that does
// not boot, and how a person gets at its files from the live image.
func init() {
	var f *planFlags
	var readOnly bool
	register(&command{
		name:    "open",
		summary: "verify and open a machine's disks as its profile describes them (RAID, LUKS, LVM) and mount them; writes nothing",
		usage:   "PROFILE",
		flags: func(fs *flag.FlagSet) {
			f = &planFlags{}
			f.register(fs)
			fs.BoolVar(&readOnly, "read-only", false, "mount every filesystem read-only")
		},
		run: func(e *env, args []string) error {
			args, err := positional(e, args)
			if err != nil {
				return err
			}
			if len(args) != 1 {
				return usagef("name one profile")
			}
			if f.fresh || f.teardown || len(f.keep) > 0 {
				return usagef("open keeps everything and writes nothing: it takes no --fresh, --teardown or --keep")
			}
			f.open, f.readOnly = true, readOnly
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			r := run.Exec{Log: toolLog(f.work)}
			p, pl, err := f.build(ctx, e, args[0], r, false)
			if err != nil {
				return err
			}
			handler := f.output(e, pl)
			// Its own journal: an interrupted restore's stays as it was.
			err = restore.Apply(ctx, pl, r, handler, restore.Options{Keys: restore.NewProfileKeys(p), Journal: filepath.Join(pl.WorkDir, "open-journal.json")})
			if errors.Is(err, restore.ErrVerify) {
				err = fmt.Errorf("the disks are not as %s describes them: %w", args[0], err)
			}
			if err != nil {
				return applyExit(err)
			}
			if !f.json {
				how := ""
				if readOnly {
					how = " read-only"
				}
				fmt.Fprintf(e.stdout, "\n%s is open and mounted%s at %s. To close it: strata restore %s%s --close\n",
					p.Host.Name, how, pl.TargetRoot, args[0], f.again())
			}
			return nil
		},
	})
}
