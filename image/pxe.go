package image

import (
	"context"
	"fmt"
	"path/filepath"
	"time"
)

// PXE bundle layout, relative to Options.Out. Every path inside the bundle is
// relative, so it can be served from any directory over TFTP or HTTP.
const (
	PXEScript   = "boot.ipxe"        // iPXE entry point
	PXEHostsDir = "hosts"            // per-MAC files: <mac>.ipxe, <mac>.cfg
	PXEGRUBEFI  = "grub/bootx64.efi" // GRUB network boot loader, UEFI
	PXEGRUBBIOS = "grub/core.0"      // GRUB network boot loader, BIOS PXE
	pxeGRUBCfg  = "grub/grub.cfg"    // their config
	pxeReadme   = "hosts/README.txt" // how to add a machine
)

// grubNetModules are the modules of the GRUB network loaders.
var grubNetModules = []string{
	"normal", "configfile", "linux", "echo", "test", "regexp", "eval", "net", "tftp",
	"http", "serial", "terminal", "sleep", "reboot", "halt", "all_video",
}

// PXE writes a network boot bundle into Options.Out: the kernel and
// initramfs under live/, boot.ipxe, GRUB network loaders with their config,
// the host files for Options.Hosts, and profiles/ and Data laid out as a
// `strata serve` directory, so one HTTP server can serve both. Files an
// admin put into hosts/ are kept.
func PXE(ctx context.Context, o Options) error {
	start := time.Now()
	b, err := newBuild(o)
	if err != nil {
		return err
	}
	for _, h := range o.Hosts {
		if err := checkHost(h); err != nil {
			return fmt.Errorf("image: %w", err)
		}
	}
	files := []file{
		{dst: KernelPath, src: o.Kernel},
		{dst: InitrdPath, src: o.Initrd},
		textFile(PXEScript, ipxeScript(o.Append)),
		textFile(pxeGRUBCfg, grubNetConfig(o.Append)),
		textFile(pxeReadme, hostsReadme),
	}
	for _, h := range o.Hosts {
		name, _ := hostFileName(h.MAC)
		files = append(files,
			textFile(PXEHostsDir+"/"+name+".ipxe", ipxeHost(h)),
			textFile(PXEHostsDir+"/"+name+".cfg", grubHost(h)))
	}
	if o.Profiles != "" || o.Data != "" {
		// The bundle doubles as the file server's directory.
		tree, err := b.treeFiles(".")
		if err != nil {
			return err
		}
		files = append(files, tree...)
	}
	for _, f := range files {
		if err := ctxErr(ctx); err != nil {
			return err
		}
		if err := writeFile(b.o.Out, f); err != nil {
			return fmt.Errorf("image: pxe: %w", err)
		}
	}
	loaders := []struct{ format, dir, card, out string }{
		{"x86_64-efi", b.o.Loaders.GRUBEFI, "efinet", PXEGRUBEFI},
		{"i386-pc-pxe", b.o.Loaders.GRUBPC, "pxe", PXEGRUBBIOS},
	}
	for _, l := range loaders {
		out := filepath.Join(b.o.Out, filepath.FromSlash(l.out))
		mods := append([]string{l.card}, grubNetModules...)
		if err := b.grubStandalone(ctx, l.format, l.dir, out, grubNetEmbedded(l.card), mods); err != nil {
			return err
		}
	}
	b.logf("image: pxe: %s: done in %s", b.o.Out, time.Since(start).Round(time.Millisecond))
	return nil
}

const hostsReadme = `strata PXE: one file per machine, named by its MAC address in lower case
with dashes. For iPXE (boot.ipxe), hosts/52-54-00-12-34-56.ipxe:

  #!ipxe
  set profile laptop
  set extra strata.disk=auto strata.yes

For GRUB network boot (grub/bootx64.efi, grub/core.0), hosts/52-54-00-12-34-56.cfg:

  set profile=laptop
  set extra="strata.disk=auto strata.yes"

"profile" becomes strata.profile=<name> on the kernel command line; "extra" is
appended as is. A machine without a file boots strata without a profile.
See docs/pxe.md.
`
