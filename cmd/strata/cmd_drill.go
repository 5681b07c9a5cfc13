//go:build !strata_live

package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"time"

	"github.com/stratahq/strata/drill"
	"github.com/stratahq/strata/initramfs"
	"github.com/stratahq/strata/profile"
)

// exitDrillFailed: the drill ran and the rehearsed restore did not come back.
const exitDrillFailed = 1

// sizeFlags collects repeated NAME=SIZE flags.
type sizeFlags map[string]int64

func (s sizeFlags) String() string { return "" }
func (s sizeFlags) Set(v string) error {
	name, size, ok := strings.Cut(v, "=")
	if !ok {
		return fmt.Errorf("want NAME=SIZE, e.g. main=12GiB")
	}
	sz, err := profile.ParseSize(size)
	if err != nil || !sz.IsAbsolute() {
		return fmt.Errorf("disk %s: want an absolute size like 12GiB", name)
	}
	s[name] = sz.Bytes
	return nil
}

// urlMapFlags collects repeated FROM=TO URL prefix rewrites.
type urlMapFlags map[string]string

func (m urlMapFlags) String() string { return "" }
func (m urlMapFlags) Set(v string) error {
	from, to, ok := strings.Cut(v, "=")
	if !ok || from == "" || to == "" {
		return fmt.Errorf("want FROM=TO, e.g. https://files.example.org/=/ (TO without a scheme is a path on the drill's file server)")
	}
	m[from] = to
	return nil
}

func init() {
	var o drill.Options
	sizes := sizeFlags{}
	urlMap := urlMapFlags{}
	var report, junit string
	register(&command{
		name:    "drill",
		summary: "rehearse a restore in QEMU: boot the live image on blank disks, restore, reboot into the result, check it",
		usage:   "PROFILE",
		flags: func(fs *flag.FlagSet) {
			fs.Var(sizes, "size", "disk size NAME=SIZE (repeatable), to rehearse a smaller or larger disk")
			fs.StringVar(&o.Firmware, "firmware", "auto", "auto (from the profile's bootloader), bios or uefi")
			fs.StringVar(&o.SystemImage, "system-image", "", "base system archive to serve instead of the profile's (default: the test image from make test-image)")
			fs.StringVar(&o.Kernel, "kernel", "", "live kernel (default: build the live image)")
			fs.StringVar(&o.Initrd, "initrd", "", "live initramfs (default: build the live image)")
			fs.StringVar(&o.WorkDir, "work", "", "directory for disks, logs and the served files (default: a new temporary one)")
			fs.StringVar(&o.Login, "login", "root:strata", "USER:PASSWORD to log in to the restored system for the checks")
			fs.StringVar(&o.LiveAppend, "append", "", "extra kernel parameters for the live system, e.g. strata.log=debug")
			fs.StringVar(&o.Files, "files", "", "directory served at the top of the drill's file server (copies of repos and datasets)")
			fs.Var(urlMap, "url-map", "FROM=TO (repeatable): rewrite repo URLs and dataset sources starting with FROM; a TO without a scheme is a path on the drill's file server")
			fs.StringVar(&report, "report", "", "write the report as JSON to this file (default WORK/report.json)")
			fs.StringVar(&junit, "junit", "", "also write the report as JUnit XML to this file")
			fs.BoolVar(&o.NoCapture, "no-capture", false, "skip the capture round trip (open the restored disks again in the live system, capture them, compare with the profile)")
			fs.DurationVar(&o.Timeouts.Restore, "restore-timeout", 45*time.Minute, "deadline of the live restore (TCG on a busy host needs more)")
		},
		run: func(e *env, args []string) error {
			if len(args) != 1 {
				return usagef("name one profile")
			}
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
			defer stop()
			o.Profile = args[0]
			o.DiskSizes, o.URLMap = sizes, urlMap
			o.Log = func(f string, a ...any) { fmt.Fprintf(e.stderr, f+"\n", a...) }
			if o.WorkDir == "" {
				d, err := os.MkdirTemp("", "strata-drill-")
				if err != nil {
					return err
				}
				o.WorkDir = d
			}
			if o.Kernel == "" || o.Initrd == "" {
				fmt.Fprintln(e.stderr, "drill: building the live image ...")
				res, err := initramfs.Build(ctx, initramfs.Options{Out: filepath.Join(o.WorkDir, "live"), Log: func(f string, a ...any) {}})
				if err != nil {
					return fmt.Errorf("build the live image: %w", err)
				}
				o.Kernel, o.Initrd = res.Kernel, res.Initramfs
			}
			if o.SystemImage == "" {
				o.SystemImage = filepath.Join(initramfs.DefaultCacheDir(), "images", "test-image.tar.zst")
			}
			rep, err := drill.Run(ctx, o)
			if err != nil {
				return err
			}
			rep.Text(e.stdout)
			if report == "" {
				report = filepath.Join(o.WorkDir, "report.json")
			}
			if err := rep.WriteJSON(report); err != nil {
				return err
			}
			fmt.Fprintf(e.stdout, "report: %s\n", report)
			if junit != "" {
				if err := rep.WriteJUnit(junit); err != nil {
					return err
				}
			}
			if !rep.Pass {
				return exitError{code: exitDrillFailed, err: fmt.Errorf("drill failed")}
			}
			return nil
		},
	})
}
