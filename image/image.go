// Package image builds strata's bootable live media from a kernel and an
// initramfs: a GPT USB disk image (USB), a hybrid ISO (ISO) and a PXE bundle
// (PXE). Every medium boots on BIOS and on UEFI machines into the same kernel
// command line, and the two removable media carry a strata/ directory for
// host profiles, system images and datasets, so a restore needs no network.
//
// Boot paths, and why:
//
//   - UEFI: a standalone GRUB (grub-mkstandalone, ~0.8 MB) as
//     \EFI\BOOT\BOOTX64.EFI. It reads FAT and ISO9660, so on the ISO the kernel
//     and initramfs are stored once, in ISO9660, and the El Torito EFI image
//     holds only GRUB; that keeps it far below the 32 MiB El Torito limit.
//     GRUB finds the medium by a per-build marker file, not by label, so a
//     second strata stick in the same machine cannot be picked by mistake.
//   - BIOS, USB: syslinux in the ESP's FAT32 boot sector, chained from
//     gptmbr.bin, which boots the GPT partition with the legacy-BIOS-bootable
//     attribute. One FAT filesystem serves both firmwares, the installer
//     (mtools syslinux --offset) works on an image file without loop devices
//     or root, and there are no sector lists to patch by hand as a GRUB
//     i386-pc core in a BIOS boot partition would need.
//   - BIOS, ISO: isolinux (El Torito, boot info table) and, written to a
//     stick, the isohybrid MBR (isohdpfx.bin) that loads isolinux from disk.
//   - Network: iPXE (QEMU's and most NICs' PXE ROM, or chainloaded) runs
//     boot.ipxe; a GRUB network config is the alternative for sites without
//     iPXE. Per-MAC host files select the profile.
package image

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/stratahq/strata/internal/run"
	"github.com/stratahq/strata/profile"
)

// Names of the artefacts and of the fixed places on every medium. The live
// system finds its medium by Label (/dev/disk/by-label/STRATA); DataDir on
// it is laid out like a `strata serve` directory (profiles/, images/,
// datasets/).
const (
	USBFile = "strata-usb.img" // USB disk image written by USB into Options.Out
	ISOFile = "strata.iso"     // hybrid ISO written by ISO into Options.Out

	Label       = "STRATA"          // FAT volume label and ISO volume identifier
	DataDir     = "strata"          // on-medium directory for profiles, images, datasets
	ProfilesDir = "strata/profiles" // host profiles (<name>.yaml)
	KernelPath  = "live/vmlinuz"    // kernel on every medium and in the PXE bundle's live/
	InitrdPath  = "live/initrd.img" // initramfs next to it

	// BaseAppend starts every kernel command line: the kernel logs to the
	// screen and the first serial port; the last console= (serial here) is
	// /dev/console, where strata's own output goes. The "screen" menu entry
	// swaps the order.
	BaseAppend   = "console=tty0 console=ttyS0,115200n8"
	screenAppend = "console=ttyS0,115200n8 console=tty0"

	menuTimeoutSec = 3 // long enough to pick the screen entry, short for unattended boots
)

// Options describe one medium. Kernel, Initrd and Out are required.
type Options struct {
	Kernel string // kernel image with EFI stub (bzImage), e.g. Debian's vmlinuz
	Initrd string // initramfs, any compression the kernel can unpack
	Out    string // output directory, created if missing
	Append string // extra kernel command line, after BaseAppend

	// Profiles is a directory of host profiles copied to ProfilesDir on
	// USB and ISO media, and to profiles/ in the PXE bundle. Optional.
	Profiles string
	// Data is a directory copied under DataDir on the media (into the PXE
	// bundle's top directory), for example images/ and datasets/ as a
	// `strata serve` directory has them. Optional. FAT32 limits single
	// files to 4 GiB - 1 on the USB image.
	Data string
	// Size of the USB image in bytes; 0 means just big enough for the
	// content plus a few MiB. Ignored by ISO and PXE.
	Size int64
	// Hosts are per-MAC host files written into the PXE bundle. Optional;
	// admins can also drop the files in by hand (see docs/pxe.md).
	Hosts []Host

	Log     run.Logger // progress lines; nil discards
	Runner  run.Runner // runs grub-mkstandalone and syslinux; nil means run.Exec{Log: Log}
	Loaders Loaders    // bootloader files; zero fields take the Debian paths
}

// Loaders locates the bootloader pieces on the build host. The defaults are
// the paths of Debian's packages, named in the error when a file is missing.
type Loaders struct {
	GPTMBR       string // syslinux gptmbr.bin (syslinux-common)
	LDLinux      string // syslinux BIOS ldlinux.c32 (syslinux-common)
	ISOLinux     string // isolinux.bin, hybrid-capable (isolinux)
	ISOHybridMBR string // isohdpfx.bin (isolinux)
	GRUBEFI      string // GRUB x86_64-efi module directory (grub-efi-amd64-bin)
	GRUBPC       string // GRUB i386-pc module directory, for PXE only (grub-pc-bin)
	Syslinux     string // the mtools syslinux installer program (syslinux)
}

// DefaultLoaders are Debian bookworm's paths.
var DefaultLoaders = Loaders{
	GPTMBR:       "/usr/lib/syslinux/mbr/gptmbr.bin",
	LDLinux:      "/usr/lib/syslinux/modules/bios/ldlinux.c32",
	ISOLinux:     "/usr/lib/ISOLINUX/isolinux.bin",
	ISOHybridMBR: "/usr/lib/ISOLINUX/isohdpfx.bin",
	GRUBEFI:      "/usr/lib/grub/x86_64-efi",
	GRUBPC:       "/usr/lib/grub/i386-pc",
	Syslinux:     "syslinux",
}

var loaderPackages = map[string]string{
	"gptmbr.bin": "syslinux-common", "ldlinux.c32": "syslinux-common",
	"isolinux.bin": "isolinux", "isohdpfx.bin": "isolinux",
	"x86_64-efi": "grub-efi-amd64-bin", "i386-pc": "grub-pc-bin",
}

func (l Loaders) withDefaults() Loaders {
	d := DefaultLoaders
	set := func(p *string, def string) {
		if *p == "" {
			*p = def
		}
	}
	set(&l.GPTMBR, d.GPTMBR)
	set(&l.LDLinux, d.LDLinux)
	set(&l.ISOLinux, d.ISOLinux)
	set(&l.ISOHybridMBR, d.ISOHybridMBR)
	set(&l.GRUBEFI, d.GRUBEFI)
	set(&l.GRUBPC, d.GRUBPC)
	set(&l.Syslinux, d.Syslinux)
	return l
}

// needLoader checks that a bootloader file or directory exists and names
// the Debian package to install when it does not.
func needLoader(p string) error {
	if _, err := os.Stat(p); err != nil {
		if pkg := loaderPackages[filepath.Base(p)]; pkg != "" {
			return fmt.Errorf("bootloader file %s: %w (install the Debian package %s)", p, err, pkg)
		}
		return fmt.Errorf("bootloader file %s: %w", p, err)
	}
	return nil
}

// Host selects what one machine boots over the network, by its MAC address.
type Host struct {
	MAC     string // any form net.ParseMAC reads, e.g. 52:54:00:12:34:56
	Profile string // strata.profile=<Profile>
	Append  string // extra kernel arguments for this machine only
}

// build is the state shared by one USB/ISO/PXE run.
type build struct {
	o      Options
	run    run.Runner
	logf   run.Logger
	marker string // live/<marker>: per-build file GRUB searches for
}

func newBuild(o Options) (*build, error) {
	if o.Kernel == "" || o.Initrd == "" {
		return nil, fmt.Errorf("image: a kernel and an initramfs are required")
	}
	if o.Out == "" {
		return nil, fmt.Errorf("image: no output directory")
	}
	if err := checkAppend(o.Append); err != nil {
		return nil, fmt.Errorf("image: %w", err)
	}
	for _, p := range []string{o.Kernel, o.Initrd} {
		st, err := os.Stat(p)
		if err != nil {
			return nil, fmt.Errorf("image: %w", err)
		}
		if !st.Mode().IsRegular() {
			return nil, fmt.Errorf("image: %s is not a regular file", p)
		}
	}
	for _, p := range []string{o.Profiles, o.Data} {
		if p == "" {
			continue
		}
		st, err := os.Stat(p)
		if err != nil {
			return nil, fmt.Errorf("image: %w", err)
		}
		if !st.IsDir() {
			return nil, fmt.Errorf("image: %s is not a directory", p)
		}
	}
	if err := checkKernel(o.Kernel); err != nil {
		return nil, err
	}
	if o.Profiles != "" {
		if err := checkProfiles(o.Profiles, o.Log); err != nil {
			return nil, err
		}
	}
	if err := os.MkdirAll(o.Out, 0o755); err != nil {
		return nil, fmt.Errorf("image: %w", err)
	}
	o.Loaders = o.Loaders.withDefaults()
	b := &build{o: o, logf: o.Log, run: o.Runner}
	if b.logf == nil {
		b.logf = func(string, ...any) {}
	}
	if b.run == nil {
		b.run = run.Exec{Log: o.Log}
	}
	id := make([]byte, 6)
	if _, err := rand.Read(id); err != nil {
		return nil, fmt.Errorf("image: %w", err)
	}
	b.marker = "live/strata-" + hex.EncodeToString(id)
	return b, nil
}

// checkKernel catches a kernel and initramfs given the wrong way round: an
// x86 bzImage has the boot protocol's "HdrS" at 0x202, or no loader takes it.
func checkKernel(p string) error {
	f, err := os.Open(p)
	if err != nil {
		return fmt.Errorf("image: %w", err)
	}
	defer f.Close()
	magic := make([]byte, 4)
	if _, err := f.ReadAt(magic, 0x202); err != nil || string(magic) != "HdrS" {
		return fmt.Errorf("image: %s is not an x86 Linux kernel (bzImage)", p)
	}
	return nil
}

// file is one file on a medium: copied from src, or content when src is "".
type file struct {
	dst     string // slash path relative to the medium's root
	src     string
	content []byte
	size    int64
}

// mediaFiles lists what USB and ISO share: kernel, initramfs, the marker,
// the GRUB config, and the strata/ tree with profiles and data.
func (b *build) mediaFiles() ([]file, error) {
	var files []file
	add := func(dst, src string) error {
		st, err := os.Stat(src)
		if err != nil {
			return fmt.Errorf("image: %w", err)
		}
		files = append(files, file{dst: dst, src: src, size: st.Size()})
		return nil
	}
	if err := add(KernelPath, b.o.Kernel); err != nil {
		return nil, err
	}
	if err := add(InitrdPath, b.o.Initrd); err != nil {
		return nil, err
	}
	files = append(files,
		textFile(b.marker, "strata live medium "+path.Base(b.marker)+"\n"),
		textFile("boot/grub/grub.cfg", grubConfig(b.o.Append)),
		textFile(DataDir+"/README.txt", mediaReadme),
	)
	if b.o.Profiles == "" {
		files = append(files, textFile(ProfilesDir+"/README.txt", profilesReadme))
	}
	tree, err := b.treeFiles(DataDir)
	if err != nil {
		return nil, err
	}
	return append(files, tree...), nil
}

// treeFiles lists Profiles under root/profiles and Data under root: the
// layout of a `strata serve` directory, so root works as a file server.
func (b *build) treeFiles(root string) ([]file, error) {
	var files []file
	for _, t := range []struct{ src, dst string }{{b.o.Profiles, path.Join(root, "profiles")}, {b.o.Data, root}} {
		if t.src == "" {
			continue
		}
		err := filepath.WalkDir(t.src, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() {
				return nil
			}
			st, err := os.Stat(p) // follows symlinks: a linked dataset is copied
			if err != nil {
				return err
			}
			if !st.Mode().IsRegular() {
				return fmt.Errorf("%s is not a regular file", p)
			}
			rel, err := filepath.Rel(t.src, p)
			if err != nil {
				return err
			}
			files = append(files, file{dst: path.Join(t.dst, filepath.ToSlash(rel)), src: p, size: st.Size()})
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("image: copy %s: %w", t.src, err)
		}
	}
	return files, nil
}

func textFile(dst, s string) file { return file{dst: dst, content: []byte(s), size: int64(len(s))} }

// open returns the file's content as a reader.
func (f file) open() (io.ReadCloser, error) {
	if f.src == "" {
		return io.NopCloser(strings.NewReader(string(f.content))), nil
	}
	return os.Open(f.src)
}

// copyFile copies src to dst, creating dst's directory.
func copyFile(src, dst string, mode os.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// writeFile writes f below dir (a staging tree or the PXE bundle).
func writeFile(dir string, f file) error {
	dst := filepath.Join(dir, filepath.FromSlash(f.dst))
	if f.src != "" {
		return copyFile(f.src, dst, 0o644)
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	return os.WriteFile(dst, f.content, 0o644)
}

// ctxErr lets long builds stop between steps when ctx is cancelled.
func ctxErr(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("image: %w", err)
	}
	return nil
}

const mediaReadme = `This is a strata live medium (label STRATA).

  strata/profiles/   host profiles (<name>.yaml); boot with strata.profile=<name>
  strata/images/     optional: base system images (tar.zst) for offline restores
  strata/datasets/   optional: datasets for offline restores

Add or edit files here from any machine; the live system reads this
directory from the filesystem labelled STRATA. See docs/live-media.md.
`

const profilesReadme = `Put host profiles here as <name>.yaml and boot with strata.profile=<name>.
`

// checkProfiles validates the host profiles going onto a medium, so that a
// broken one is found at the desk and not at the broken machine: every
// *.yaml directly in dir must load (all errors, with line:column). The live
// system lists only those (profiles/*.yaml, as `strata serve` does); other
// files are copied as they are, and logged, since a profile among them is
// not found (a .yml, or one in a subdirectory).
func checkProfiles(dir string, logf run.Logger) error {
	var errs []string
	n := 0
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if filepath.Dir(rel) != "." || filepath.Ext(p) != ".yaml" {
			if logf != nil && (strings.HasSuffix(p, ".yaml") || strings.HasSuffix(p, ".yml")) {
				logf("image: --profiles: %s is copied but not listed by the live system: profiles must be <name>.yaml directly in %s", rel, dir)
			}
			return nil
		}
		n++
		if _, err := profile.Load(p); err != nil {
			errs = append(errs, err.Error())
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("image: --profiles %s: %w", dir, err)
	}
	if len(errs) > 0 {
		return fmt.Errorf("image: --profiles %s: %d invalid profiles (fix them or leave them out):\n%s", dir, len(errs), strings.Join(errs, "\n"))
	}
	if n == 0 {
		return fmt.Errorf("image: --profiles %s: no <name>.yaml in it", dir)
	}
	return nil
}
