package system

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/stratahq/strata/profile"
)

// Boot says where and how to install the bootloader.
type Boot struct {
	Loader *profile.Bootloader
	// Disks maps profile disk names to devices (/dev/vda), for grub-bios.
	Disks map[string]string
	// ESP is the ESP's mount point inside the target (/boot/efi), for UEFI.
	ESP string
	// ESPDisk and ESPPart locate the ESP for the firmware's boot entry.
	ESPDisk string
	ESPPart int
	// KernelArgs is the restored system's command line: root=, rootflags=,
	// resume= and the profile's cmdline (see KernelArgs).
	KernelArgs string
	// EFIVars says whether the firmware's variables can be written (booted
	// through UEFI with efivarfs); without them no boot entry is made, and the
	// removable path is what boots.
	EFIVars bool
}

// KernelArgs builds the kernel command line for the restored system. uuid
// returns the filesystem UUID actually on a device (the profile's, or the one
// mkfs generated).
func KernelArgs(p *profile.Profile, uuid func(device string) string) string {
	var args []string
	for _, f := range p.Filesystems {
		if f.Mount != nil && f.Mount.Path == "/" {
			args = append(args, "root=UUID="+uuid(f.Device))
		}
		if f.Btrfs != nil {
			for _, s := range f.Btrfs.Subvolumes {
				if s.Mount != nil && s.Mount.Path == "/" {
					args = append(args, "root=UUID="+uuid(f.Device), "rootflags=subvol="+s.Path)
				}
			}
		}
		if f.Type == "swap" && f.Swap != nil && f.Swap.Resume {
			args = append(args, "resume=UUID="+uuid(f.Device))
		}
	}
	if p.Bootloader != nil && p.Bootloader.Cmdline != "" {
		args = append(args, p.Bootloader.Cmdline)
	}
	return strings.Join(args, " ")
}

// InstallBootloader installs and configures the profile's bootloader.
func (c *Chroot) InstallBootloader(ctx context.Context, b Boot) error {
	if b.Loader == nil {
		return nil
	}
	switch b.Loader.Type {
	case "grub-bios":
		return c.grubBIOS(ctx, b)
	case "grub-efi":
		return c.grubEFI(ctx, b)
	case "systemd-boot":
		return c.systemdBoot(ctx, b)
	}
	return fmt.Errorf("install bootloader: unknown type %q", b.Loader.Type)
}

// grubDefaults writes strata's GRUB settings as a drop-in, leaving the
// distribution's /etc/default/grub alone. root= is found by grub-mkconfig.
func (c *Chroot) grubDefaults(b Boot) error {
	args := withoutRoot(b.KernelArgs)
	var s strings.Builder
	s.WriteString("# Written by strata from the host profile's bootloader section.\n")
	fmt.Fprintf(&s, "GRUB_CMDLINE_LINUX_DEFAULT=%s\n", strconv.Quote(args))
	if t := b.Loader.Timeout; t != nil {
		fmt.Fprintf(&s, "GRUB_TIMEOUT=%d\n", *t)
	}
	if strings.Contains(args, "console=ttyS") {
		s.WriteString("GRUB_TERMINAL=\"console serial\"\nGRUB_SERIAL_COMMAND=\"serial --unit=0 --speed=115200\"\n")
	}
	s.WriteString("GRUB_DISABLE_OS_PROBER=true\n")
	dir := filepath.Join(c.Root, "etc/default/grub.d")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("grub settings: %w", err)
	}
	return os.WriteFile(filepath.Join(dir, "50-strata.cfg"), []byte(s.String()), 0o644)
}

// withoutRoot drops root= and rootflags=: grub-mkconfig writes its own.
func withoutRoot(args string) string {
	var keep []string
	for _, a := range strings.Fields(args) {
		if !strings.HasPrefix(a, "root=") && !strings.HasPrefix(a, "rootflags=") {
			keep = append(keep, a)
		}
	}
	return strings.Join(keep, " ")
}

func (c *Chroot) grubConfig(ctx context.Context) error {
	argv := []string{"grub-mkconfig", "-o", "/boot/grub/grub.cfg"}
	if exists(c.Root, "usr/sbin/grub2-mkconfig") {
		argv = []string{"grub2-mkconfig", "-o", "/boot/grub2/grub.cfg"}
	}
	if _, err := c.Run(ctx, argv...); err != nil {
		return fmt.Errorf("install bootloader: generate GRUB config: %w", err)
	}
	return nil
}

func (c *Chroot) grubBIOS(ctx context.Context, b Boot) error {
	if err := c.grubDefaults(b); err != nil {
		return err
	}
	names := b.Loader.Disks
	if len(names) == 0 {
		names = sortedKeys(b.Disks)
	}
	for _, name := range names {
		dev, ok := b.Disks[name]
		if !ok {
			return fmt.Errorf("install bootloader: no device for disk %q", name)
		}
		if _, err := c.Run(ctx, "grub-install", "--target=i386-pc", "--recheck", dev); err != nil {
			return fmt.Errorf("install bootloader: GRUB on %s (disk %s): %w", dev, name, err)
		}
	}
	return c.grubConfig(ctx)
}

func (c *Chroot) grubEFI(ctx context.Context, b Boot) error {
	id := b.Loader.ID
	if id == "" {
		id = "debian"
	}
	if err := c.grubDefaults(b); err != nil {
		return err
	}
	// --no-nvram: strata makes the boot entry itself, replacing an old one of
	// the same label instead of adding another on every re-run.
	if _, err := c.Run(ctx, "grub-install", "--target=x86_64-efi", "--efi-directory="+b.ESP, "--bootloader-id="+id, "--no-nvram", "--recheck"); err != nil {
		return fmt.Errorf("install bootloader: grub-install (UEFI): %w", err)
	}
	if err := c.grubConfig(ctx); err != nil {
		return err
	}
	loader := `\EFI\` + id + `\grubx64.efi`
	if exists(c.Root, filepath.Join(b.ESP, "EFI", id, "shimx64.efi")) {
		loader = `\EFI\` + id + `\shimx64.efi`
	}
	if b.Loader.Removable || !b.EFIVars {
		src := filepath.Join(c.Root, b.ESP, "EFI", id, filepath.Base(strings.ReplaceAll(loader, `\`, "/")))
		if err := copyFile(src, filepath.Join(c.Root, b.ESP, "EFI/BOOT/BOOTX64.EFI")); err != nil {
			return fmt.Errorf("install bootloader: removable path: %w", err)
		}
		if strings.HasSuffix(loader, "shimx64.efi") { // shim loads grubx64.efi from its own directory
			_ = copyFile(filepath.Join(c.Root, b.ESP, "EFI", id, "grubx64.efi"), filepath.Join(c.Root, b.ESP, "EFI/BOOT/grubx64.efi"))
		}
	}
	if !b.EFIVars {
		return nil
	}
	entries := append([]profile.EFIEntry{{Label: id, Loader: loader}}, b.Loader.EFIEntries...)
	return c.efiEntries(ctx, b, entries)
}

var bootEntryRE = regexp.MustCompile(`^Boot([0-9A-Fa-f]{4})\*?\s+(.*?)(\t|\s{2,}|$)`)

// efiEntries makes one firmware boot entry per label, deleting entries with
// the same label first, so re-runs do not pile up duplicates.
func (c *Chroot) efiEntries(ctx context.Context, b Boot, entries []profile.EFIEntry) error {
	res, err := c.Run(ctx, "efibootmgr")
	if err != nil {
		return fmt.Errorf("install bootloader: read boot entries: %w", err)
	}
	existing := map[string][]string{}
	for _, line := range strings.Split(string(res.Stdout), "\n") {
		if m := bootEntryRE.FindStringSubmatch(line); m != nil {
			existing[strings.TrimSpace(m[2])] = append(existing[strings.TrimSpace(m[2])], m[1])
		}
	}
	for i := len(entries) - 1; i >= 0; i-- { // the last created becomes first in BootOrder
		e := entries[i]
		for _, num := range existing[e.Label] {
			if _, err := c.Run(ctx, "efibootmgr", "--quiet", "--bootnum", num, "--delete-bootnum"); err != nil {
				return fmt.Errorf("install bootloader: delete old entry %s (%s): %w", num, e.Label, err)
			}
		}
		if _, err := c.Run(ctx, "efibootmgr", "--quiet", "--create", "--disk", b.ESPDisk, "--part", strconv.Itoa(b.ESPPart), "--label", e.Label, "--loader", e.Loader); err != nil {
			return fmt.Errorf("install bootloader: create entry %s: %w", e.Label, err)
		}
	}
	return nil
}

func (c *Chroot) systemdBoot(ctx context.Context, b Boot) error {
	if id, err := os.ReadFile(filepath.Join(c.Root, "etc/machine-id")); err != nil || len(strings.TrimSpace(string(id))) == 0 {
		// Loader entries live under the machine ID: make it now, not at first boot.
		if _, err := c.Run(ctx, "systemd-machine-id-setup"); err != nil {
			return fmt.Errorf("install bootloader: machine ID: %w", err)
		}
	}
	if err := os.MkdirAll(filepath.Join(c.Root, "etc/kernel"), 0o755); err != nil {
		return fmt.Errorf("install bootloader: %w", err)
	}
	// kernel-install reads the command line from here, not from the live system's /proc/cmdline.
	if err := os.WriteFile(filepath.Join(c.Root, "etc/kernel/cmdline"), []byte(b.KernelArgs+"\n"), 0o644); err != nil {
		return fmt.Errorf("install bootloader: %w", err)
	}
	argv := []string{"bootctl", "install", "--esp-path=" + b.ESP}
	if !b.EFIVars {
		argv = append(argv, "--no-variables")
	}
	if _, err := c.Run(ctx, argv...); err != nil {
		return fmt.Errorf("install bootloader: bootctl install: %w", err)
	}
	if t := b.Loader.Timeout; t != nil {
		conf := fmt.Sprintf("timeout %d\n", *t)
		if err := os.WriteFile(filepath.Join(c.Root, b.ESP, "loader/loader.conf"), []byte(conf), 0o644); err != nil {
			return fmt.Errorf("install bootloader: loader.conf: %w", err)
		}
	}
	kernels, _ := filepath.Glob(filepath.Join(c.Root, "boot/vmlinuz-*"))
	if len(kernels) == 0 {
		kernels, _ = filepath.Glob(filepath.Join(c.Root, "usr/lib/modules/*/vmlinuz"))
	}
	if len(kernels) == 0 {
		return fmt.Errorf("install bootloader: no kernel in the target's /boot")
	}
	for _, k := range kernels {
		ver := strings.TrimPrefix(filepath.Base(k), "vmlinuz-")
		if filepath.Base(k) == "vmlinuz" {
			ver = filepath.Base(filepath.Dir(k))
		}
		if _, err := c.Run(ctx, "kernel-install", "add", ver, "/"+strings.TrimPrefix(k, c.Root+"/")); err != nil {
			return fmt.Errorf("install bootloader: loader entry for kernel %s: %w", ver, err)
		}
	}
	if b.EFIVars && len(b.Loader.EFIEntries) > 0 {
		return c.efiEntries(ctx, b, b.Loader.EFIEntries)
	}
	return nil
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
