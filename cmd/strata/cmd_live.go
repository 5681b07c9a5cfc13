package main

import (
	"context"
	"flag"
	"os"
	"os/signal"
	"syscall"

	"github.com/stratahq/strata/live"
)

func init() {
	var cfg live.Config
	var cmdlineFile string
	register(&command{
		name:    "live",
		summary: "the live image's runtime (u-root's uinit): set up, report STRATA READY, act on strata.* kernel parameters",
		flags: func(fs *flag.FlagSet) {
			fs.BoolVar(&cfg.System, "system", false, "act as the live system: mount /run, load modules, configure the network, start shells, never return (the image's /etc/uinit.flags sets it)")
			fs.StringVar(&cmdlineFile, "cmdline", "", "read the kernel command line from `file` instead of /proc/cmdline")
			fs.StringVar(&cfg.Manifest, "manifest", "", "image manifest `file` (default /etc/strata/manifest.json)")
		},
		run: func(e *env, args []string) error {
			if len(args) > 0 {
				return usagef("live takes no arguments")
			}
			if cmdlineFile != "" {
				b, err := os.ReadFile(cmdlineFile)
				if err != nil {
					return err
				}
				cfg.Cmdline = string(b)
			}
			cfg.Out = e.stdout
			ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
			defer stop()
			return live.Run(ctx, cfg)
		},
	})
}
