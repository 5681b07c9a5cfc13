package main

import (
	"errors"
	"fmt"

	"github.com/stratahq/strata/profile"
)

func init() {
	register(&command{
		name:    "validate",
		summary: "check host profiles: syntax, types, references, sizes; every error with file:line:col",
		usage:   "FILE...",
		run: func(e *env, args []string) error {
			if len(args) == 0 {
				return usagef("name at least one profile file")
			}
			bad := 0
			for _, f := range args {
				_, err := profile.Load(f)
				var errs profile.Errors
				switch {
				case errors.As(err, &errs):
					bad++
					for _, pe := range errs {
						fmt.Fprintln(e.stderr, pe)
					}
				case err != nil:
					bad++
					fmt.Fprintf(e.stderr, "%s: %v\n", f, err)
				default:
					fmt.Fprintf(e.stdout, "%s: ok\n", f)
				}
			}
			if bad > 0 {
				return exitError{code: exitFailed, err: fmt.Errorf("%d of %d profiles invalid", bad, len(args))}
			}
			return nil
		},
	})
	register(&command{
		name:    "schema",
		summary: "print the JSON Schema of host profiles (for editors)",
		run: func(e *env, args []string) error {
			if len(args) > 0 {
				return usagef("schema takes no arguments")
			}
			s, err := profile.Schema()
			if err != nil {
				return err
			}
			_, err = fmt.Fprintf(e.stdout, "%s\n", s)
			return err
		},
	})
}
