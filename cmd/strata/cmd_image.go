//go:build !strata_live

package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/stratahq/strata/image"
	"github.com/stratahq/strata/initramfs"
)

// hostFlags collects repeated --host MAC=PROFILE flags.
type hostFlags []image.Host

func (h *hostFlags) String() string { return "" }

func (h *hostFlags) Set(s string) error {
	mac, prof, ok := strings.Cut(s, "=")
	if !ok || mac == "" || prof == "" {
		return fmt.Errorf("want MAC=PROFILE, e.g. 52:54:00:12:34:56=web1")
	}
	*h = append(*h, image.Host{MAC: mac, Profile: prof})
	return nil
}

func init() {
	var (
		o       image.Options
		size    string
		hosts   hostFlags
		verbose bool
	)
	register(&command{
		name:    "image",
		summary: "build the live USB disk image, hybrid ISO or PXE bundle (BIOS and UEFI)",
		usage:   "usb|iso|pxe|all",
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&o.Out, "out", "out/image", "output `directory` ("+image.USBFile+", "+image.ISOFile+"; pxe: the bundle itself, all: DIR/pxe)")
			fs.StringVar(&o.Kernel, "kernel", "", "kernel `bzImage` (default: build kernel and initramfs as `strata initramfs` does)")
			fs.StringVar(&o.Initrd, "initrd", "", "initramfs `file` to go with --kernel")
			fs.StringVar(&o.Append, "append", "", "extra kernel command line `args`, e.g. strata.server=http://10.0.0.1:8080")
			fs.StringVar(&o.Profiles, "profiles", "", "`directory` of host profiles (<name>.yaml, each validated) to put on the medium ("+image.ProfilesDir+"/; pxe: profiles/); boot with strata.profile=NAME to restore from it without a server")
			fs.StringVar(&o.Data, "data", "", "`directory` copied under "+image.DataDir+"/ on the medium (images/, datasets/): what the profiles name by relative URL, for offline restores")
			fs.StringVar(&size, "size", "", "USB image `size`, e.g. 4G, to leave room for data (default: just big enough)")
			fs.Var(&hosts, "host", "pxe: `MAC=PROFILE` host file to write (repeatable)")
			fs.BoolVar(&verbose, "v", false, "log every command")
		},
		run: func(e *env, args []string) error {
			if len(args) == 0 {
				return usagef("image wants one of usb, iso, pxe, all")
			}
			// Flags may follow the kind too (strata image usb --out DIR):
			// the flag package stops at the first argument, so parse the rest.
			kind := args[0]
			if err := e.fs.Parse(args[1:]); err != nil {
				if errors.Is(err, flag.ErrHelp) {
					e.fs.SetOutput(e.stdout)
					e.fs.Usage()
					return nil
				}
				return exitError{code: exitUsage, err: errors.New("")}
			}
			if e.fs.NArg() > 0 {
				return usagef("unexpected arguments after %s: %s", kind, strings.Join(e.fs.Args(), " "))
			}
			builders := map[string]func(context.Context, image.Options) error{"usb": image.USB, "iso": image.ISO, "pxe": image.PXE}
			if _, ok := builders[kind]; !ok && kind != "all" {
				return usagef("unknown image kind %q (want usb, iso, pxe or all)", kind)
			}
			if (o.Kernel == "") != (o.Initrd == "") {
				return usagef("--kernel and --initrd go together")
			}
			if size != "" {
				n, err := parseSize(size)
				if err != nil {
					return usagef("--size: %v", err)
				}
				o.Size = n
			}
			o.Hosts = hosts
			o.Log = func(format string, a ...any) {
				line := fmt.Sprintf(format, a...)
				if verbose || !strings.HasPrefix(line, "run: ") {
					fmt.Fprintln(e.stderr, line)
				}
			}
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
			defer stop()
			if o.Kernel == "" {
				res, err := initramfs.Build(ctx, initramfs.Options{Log: o.Log})
				if err != nil {
					return fmt.Errorf("build the live kernel and initramfs (or pass --kernel and --initrd): %w", err)
				}
				o.Kernel, o.Initrd = res.Kernel, res.Initramfs
			}
			kinds := []string{kind}
			if kind == "all" {
				kinds = []string{"usb", "iso", "pxe"}
			}
			for _, k := range kinds {
				ko := o
				if kind == "all" && k == "pxe" {
					ko.Out = filepath.Join(o.Out, "pxe")
				}
				start := time.Now()
				if err := builders[k](ctx, ko); err != nil {
					return err
				}
				printArtefact(e, k, ko.Out, time.Since(start))
			}
			return nil
		},
	})
}

// printArtefact prints what was built, with its size.
func printArtefact(e *env, kind, out string, took time.Duration) {
	var p string
	var n int64
	switch kind {
	case "usb":
		p = filepath.Join(out, image.USBFile)
	case "iso":
		p = filepath.Join(out, image.ISOFile)
	default:
		p = out
		_ = filepath.WalkDir(out, func(_ string, d os.DirEntry, err error) error {
			if err == nil && !d.IsDir() {
				if i, err := d.Info(); err == nil {
					n += i.Size()
				}
			}
			return nil
		})
	}
	if st, err := os.Stat(p); err == nil && !st.IsDir() {
		n = st.Size()
	}
	fmt.Fprintf(e.stdout, "%-4s %7.1f MiB  %s  (%s)\n", kind, float64(n)/(1<<20), p, took.Round(10*time.Millisecond))
}

// parseSize reads sizes like 512M, 4G, 4GiB, 1.5T (binary units) or bytes.
func parseSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	t = strings.TrimSuffix(strings.TrimSuffix(t, "B"), "i")
	mult := int64(1)
	if t != "" {
		switch strings.ToUpper(t[len(t)-1:]) {
		case "K":
			mult = 1 << 10
		case "M":
			mult = 1 << 20
		case "G":
			mult = 1 << 30
		case "T":
			mult = 1 << 40
		}
		if mult > 1 {
			t = t[:len(t)-1]
		}
	}
	f, err := strconv.ParseFloat(t, 64)
	if err != nil || f <= 0 {
		return 0, fmt.Errorf("%q is not a size (e.g. 512M, 4G)", s)
	}
	return int64(f * float64(mult)), nil
}
