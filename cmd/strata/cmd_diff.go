package main

import (
	"flag"
	"fmt"

	"github.com/stratahq/strata/capture/diff"
)

// exitDrift is strata diff's exit code when the host differs from its
// profile (0: no drift, 1: error, 2: usage).
const exitDrift = 3

func init() {
	var cf captureFlags
	var quiet bool
	register(&command{
		name:    "diff",
		summary: "list how this machine has drifted from its profile; exit 0 no drift, 3 drift, 1 error",
		usage:   "FILE",
		flags: func(fs *flag.FlagSet) {
			cf.register(fs)
			fs.BoolVar(&quiet, "q", false, "print nothing; only the exit code tells")
		},
		run: func(e *env, args []string) error {
			if len(args) != 1 {
				return usagef("name one profile file")
			}
			res, err := cf.capture(e)
			if err != nil {
				return err
			}
			m, err := mergeCapture(e, args[0], res)
			if err != nil {
				return err
			}
			if len(m.changes) == 0 {
				if !quiet {
					fmt.Fprintf(e.stdout, "%s: no drift\n", args[0])
				}
				return nil
			}
			if !quiet {
				diff.Write(e.stdout, m.changes)
				fmt.Fprintf(e.stdout, "%s: %d change(s): %s (strata capture -into %s records them)\n", args[0], len(m.changes), diff.Summary(m.changes), args[0])
			}
			return exitError{code: exitDrift, err: fmt.Errorf("")}
		},
	})
}
