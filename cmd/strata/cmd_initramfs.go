//go:build !strata_live

package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"time"

	"github.com/stratahq/strata/initramfs"
)

func init() {
	var o initramfs.Options
	var extras, groups string
	var verbose bool
	register(&command{
		name:    "initramfs",
		summary: "build the live image's kernel and initramfs (u-root + strata + storage tools + modules)",
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&o.Out, "out", "out/live", "output `directory` for "+initramfs.KernelName+" and "+initramfs.InitramfsName)
			fs.StringVar(&o.Kernel, "kernel", "", "kernel `bzImage` (default: the Debian kernel `make deps` cached)")
			fs.StringVar(&o.ModulesDir, "modules", "", "module `directory` matching --kernel: lib/modules/<kver> or a root containing it")
			fs.StringVar(&o.CacheDir, "cache", "", "cache `directory` (default $STRATA_CACHE or ~/.cache/strata)")
			fs.StringVar(&o.Strata, "strata", "", "static strata `binary` to embed (default: build from the source tree, else this executable)")
			fs.StringVar(&groups, "tools", strings.Join(initramfs.DefaultGroups, ","), "tool `groups` to include, comma-separated (storage, boot, fetch, svn)")
			fs.StringVar(&extras, "with", "", "extra tool `groups` added to --tools, comma-separated (svn)")
			fs.BoolVar(&verbose, "v", false, "log every command")
		},
		run: func(e *env, args []string) error {
			if len(args) > 0 {
				return usagef("initramfs takes no arguments")
			}
			if (o.Kernel == "") != (o.ModulesDir == "") {
				return usagef("--kernel and --modules go together")
			}
			o.Groups = strings.Split(groups, ",")
			if extras != "" {
				o.Extras = strings.Split(extras, ",")
			}
			o.Log = func(format string, a ...any) {
				line := fmt.Sprintf(format, a...)
				if verbose || !strings.HasPrefix(line, "run: ") {
					fmt.Fprintln(e.stderr, line)
				}
			}
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
			defer stop()
			res, err := initramfs.Build(ctx, o)
			if err != nil {
				return err
			}
			printBuild(e, res)
			return nil
		},
	})
}

func printBuild(e *env, r initramfs.Result) {
	mb := func(n int64) string { return fmt.Sprintf("%6.1f MiB", float64(n)/(1<<20)) }
	fmt.Fprintf(e.stdout, "kernel     %s  %s (%s)\n", mb(r.KernelSize), r.Kernel, r.KernelVersion)
	fmt.Fprintf(e.stdout, "initramfs  %s  %s\n", mb(r.InitramfsSize), r.Initramfs)
	for _, l := range r.Layers {
		how := "built"
		if l.Cached {
			how = "cached"
		}
		fmt.Fprintf(e.stdout, "  %-7s  %s  %-6s %s\n", l.Name, mb(l.Size), how, l.Took.Round(10*time.Millisecond))
	}
	fmt.Fprintf(e.stdout, "total      %s  (%d modules, %d tools) in %s\n", mb(r.KernelSize+r.InitramfsSize), len(r.Manifest.Modules), len(r.Manifest.Tools), r.Took.Round(10*time.Millisecond))
	if len(r.Manifest.MissingModules) > 0 {
		fmt.Fprintf(e.stdout, "warning: the kernel lacks modules: %s\n", strings.Join(r.Manifest.MissingModules, ", "))
	}
}
