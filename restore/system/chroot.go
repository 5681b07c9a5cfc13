// Package system makes a restored root filesystem into a bootable machine:
// it enters the target (a chroot with /dev, /proc, /sys, /run and efivarfs
// bound, and working DNS), installs the profile's packages with the target's
// own package manager, regenerates its initramfs with its own tool, and
// installs the bootloader the profile names. Every command runs through the
// run.Runner, so each sequence is golden-testable with a recording fake.
package system

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/stratahq/strata/internal/run"
	"golang.org/x/sys/unix"
)

// Chroot is an entered target root.
type Chroot struct {
	Root   string
	Runner run.Runner
	// Env is added to every command in the target (e.g. DEBIAN_FRONTEND).
	Env []string

	mounted   []string // in mount order, unmounted in reverse
	resolvBak string   // where the target's own resolv.conf was put aside
}

// binds are the API filesystems a package manager, an initramfs generator and
// a bootloader installer need inside the target.
var binds = []struct {
	src, dst string
	optional bool // efivarfs exists only when booted through UEFI
}{
	{"/dev", "dev", false},
	{"/dev/pts", "dev/pts", true},
	{"/proc", "proc", false},
	{"/sys", "sys", false},
	{efivarsDir, "sys/firmware/efi/efivars", true},
	{"/run", "run", false},
}

// efivarsDir is where the firmware's variables are mounted.
const efivarsDir = "/sys/firmware/efi/efivars"

// EFIVars reports whether the firmware's variables can be read and written
// here, mounting efivarfs first when the system booted through UEFI but has
// not mounted it (a minimal live system, a rescue shell). Without it
// efibootmgr fails with "EFI variables are not supported".
func EFIVars(ctx context.Context, r run.Runner) bool {
	if _, err := os.Stat("/sys/firmware/efi"); err != nil {
		return false // booted through BIOS
	}
	if isEFIVarFS(efivarsDir) {
		return true
	}
	if _, err := r.Run(ctx, run.Cmd{Name: "mount", Args: []string{"-t", "efivarfs", "efivarfs", efivarsDir}}); err != nil {
		return false // reported by the runner's log; the removable path still boots
	}
	return isEFIVarFS(efivarsDir)
}

func isEFIVarFS(dir string) bool {
	var st unix.Statfs_t
	return unix.Statfs(dir, &st) == nil && st.Type == unix.EFIVARFS_MAGIC
}

// Enter binds the API filesystems into root and makes DNS work there. Close
// undoes it, also after a failure; Enter cleans up itself when it fails.
func Enter(ctx context.Context, root string, r run.Runner) (c *Chroot, err error) {
	c = &Chroot{Root: root, Runner: r, Env: []string{"DEBIAN_FRONTEND=noninteractive", "LC_ALL=C", "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}}
	defer func() {
		if err != nil {
			err = errors.Join(err, c.Close(context.WithoutCancel(ctx)))
			c = nil
		}
	}()
	for _, b := range binds {
		if b.src == efivarsDir && !EFIVars(ctx, r) {
			continue
		}
		if b.optional {
			if _, serr := os.Stat(b.src); serr != nil {
				continue
			}
		}
		dst := filepath.Join(root, b.dst)
		if err := os.MkdirAll(dst, 0o755); err != nil {
			return c, fmt.Errorf("enter target: %w", err)
		}
		if _, err := r.Run(ctx, run.Cmd{Name: "mount", Args: []string{"--bind", b.src, dst}}); err != nil {
			return c, fmt.Errorf("enter target: bind %s: %w", b.src, err)
		}
		c.mounted = append(c.mounted, dst)
	}
	return c, c.useHostDNS()
}

// useHostDNS puts the live system's resolv.conf in the target for the
// duration, keeping the target's own (often a symlink into /run) to restore.
func (c *Chroot) useHostDNS() error {
	live, err := os.ReadFile("/etc/resolv.conf")
	if err != nil || len(live) == 0 {
		return nil // no DNS in the live system: package installs will say so
	}
	target := filepath.Join(c.Root, "etc/resolv.conf")
	if _, err := os.Lstat(target); err == nil {
		c.resolvBak = target + ".strata-saved"
		if err := os.Rename(target, c.resolvBak); err != nil {
			return fmt.Errorf("set up DNS in target: %w", err)
		}
	}
	if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
		return fmt.Errorf("set up DNS in target: %w", err)
	}
	return os.WriteFile(target, live, 0o644)
}

// Run executes argv inside the target.
func (c *Chroot) Run(ctx context.Context, argv ...string) (run.Result, error) {
	return c.RunCmd(ctx, run.Cmd{Name: argv[0], Args: argv[1:]})
}

// RunCmd executes cmd inside the target (stdin and output as cmd says).
func (c *Chroot) RunCmd(ctx context.Context, cmd run.Cmd) (run.Result, error) {
	args := append([]string{c.Root, "/usr/bin/env"}, c.Env...)
	args = append(args, cmd.Name)
	args = append(args, cmd.Args...)
	cmd.Args = args
	cmd.Name = "chroot"
	return c.Runner.Run(ctx, cmd)
}

// Close unmounts what Enter bound (in reverse) and puts back resolv.conf. It
// tries every step and reports all failures.
func (c *Chroot) Close(ctx context.Context) error {
	if c == nil {
		return nil
	}
	var errs []error
	if c.resolvBak != "" {
		target := filepath.Join(c.Root, "etc/resolv.conf")
		_ = os.Remove(target)
		if err := os.Rename(c.resolvBak, target); err != nil {
			errs = append(errs, fmt.Errorf("restore target resolv.conf: %w", err))
		}
		c.resolvBak = ""
	} else {
		_ = os.Remove(filepath.Join(c.Root, "etc/resolv.conf"))
	}
	for i := len(c.mounted) - 1; i >= 0; i-- {
		// -R: a package's postinst may have mounted something below (binfmt_misc).
		if _, err := c.Runner.Run(ctx, run.Cmd{Name: "umount", Args: []string{"-R", c.mounted[i]}}); err != nil {
			if _, lerr := c.Runner.Run(ctx, run.Cmd{Name: "umount", Args: []string{"-l", c.mounted[i]}}); lerr != nil {
				errs = append(errs, fmt.Errorf("leave target: unmount %s: %w", c.mounted[i], err))
			}
		}
	}
	c.mounted = nil
	return errors.Join(errs...)
}

// PackageManager detects the target's package manager from its files.
func PackageManager(root string) (string, error) {
	for _, c := range []struct{ name, probe string }{
		{"apt", "usr/bin/apt-get"},
		{"dnf", "usr/bin/dnf"},
		{"pacman", "usr/bin/pacman"},
	} {
		if _, err := os.Stat(filepath.Join(root, c.probe)); err == nil {
			return c.name, nil
		}
	}
	return "", fmt.Errorf("no package manager found in %s (looked for apt-get, dnf, pacman): set system.package_manager", root)
}

// InstallPackages installs pkgs with the target's package manager. A failure
// to reach a repository is reported with the repository named.
func (c *Chroot) InstallPackages(ctx context.Context, pm string, pkgs []string) error {
	if len(pkgs) == 0 {
		return nil
	}
	if missing := c.missingPackages(ctx, pm, pkgs); len(missing) == 0 {
		return nil // all there already: no repository needs to be reached
	}
	var steps [][]string
	switch pm {
	case "apt":
		steps = [][]string{
			{"apt-get", "update", "-o", "APT::Update::Error-Mode=any"},
			append([]string{"apt-get", "install", "-y", "--no-install-recommends", "-o", "Dpkg::Options::=--force-confold"}, pkgs...),
		}
	case "dnf":
		steps = [][]string{append([]string{"dnf", "install", "-y", "--setopt=install_weak_deps=False"}, pkgs...)}
	case "pacman":
		steps = [][]string{append([]string{"pacman", "-Sy", "--noconfirm", "--needed"}, pkgs...)}
	default:
		return fmt.Errorf("install packages: unsupported package manager %q", pm)
	}
	for _, argv := range steps {
		res, err := c.Run(ctx, argv...)
		if err == nil && argv[1] == "update" {
			// apt-get update exits 0 with only a warning when a repository is
			// unreachable; the install would then fail with a misleading
			// "Unable to locate package".
			if repo := unreachableRepo(string(res.Stderr) + string(res.Stdout)); repo != "" {
				return fmt.Errorf("install packages: package repository %s is unreachable from the target", repo)
			}
		}
		if err != nil {
			if repo := unreachableRepo(string(res.Stderr) + string(res.Stdout)); repo != "" {
				return fmt.Errorf("install packages: package repository %s is unreachable from the target: %w", repo, err)
			}
			return fmt.Errorf("install packages: %w", err)
		}
	}
	return nil
}

// missingPackages asks the target's package database which of pkgs are not
// installed; when it cannot tell, it answers all of them.
func (c *Chroot) missingPackages(ctx context.Context, pm string, pkgs []string) []string {
	var argv []string
	switch pm {
	case "apt":
		argv = append([]string{"dpkg-query", "-W", "-f=${Package} ${db:Status-Status}\n"}, pkgs...)
	case "dnf":
		argv = append([]string{"rpm", "-q", "--qf", "%{NAME} installed\n"}, pkgs...)
	case "pacman":
		argv = append([]string{"pacman", "-Q"}, pkgs...)
	default:
		return pkgs
	}
	res, _ := c.Run(ctx, argv...) // exits non-zero when any is missing; the output tells which
	have := map[string]bool{}
	for _, line := range strings.Split(string(res.Stdout), "\n") {
		f := strings.Fields(line)
		if len(f) == 2 && (f[1] == "installed" || pm == "pacman") {
			have[f[0]] = true
		}
	}
	var missing []string
	for _, p := range pkgs {
		if !have[strings.SplitN(p, "=", 2)[0]] {
			missing = append(missing, p)
		}
	}
	return missing
}

// unreachableRepo picks the repository out of apt/dnf/pacman network errors.
func unreachableRepo(out string) string {
	for _, line := range strings.Split(out, "\n") {
		l := strings.TrimSpace(line)
		for _, marker := range []string{"Failed to fetch ", "Could not resolve ", "Failed to download metadata for repo ", "failed retrieving file "} {
			if i := strings.Index(l, marker); i >= 0 {
				rest := strings.Fields(l[i+len(marker):])
				if len(rest) > 0 {
					return strings.Trim(rest[0], "'\":")
				}
			}
		}
		if strings.HasPrefix(l, "Err:") || strings.HasPrefix(l, "W: Failed") {
			f := strings.Fields(l)
			if len(f) > 1 {
				return f[1]
			}
		}
	}
	return ""
}

// RegenerateInitramfs rebuilds the target's initramfs with its own tool, so it
// can unlock LUKS and assemble md and LVM at boot.
func (c *Chroot) RegenerateInitramfs(ctx context.Context) error {
	var argv []string
	switch {
	case exists(c.Root, "usr/sbin/update-initramfs"):
		argv = []string{"update-initramfs", "-c", "-k", "all"}
		// -c fails when an initramfs exists already (a re-run): then update.
		if globExists(c.Root, "boot/initrd.img-*") {
			argv = []string{"update-initramfs", "-u", "-k", "all"}
		}
	case exists(c.Root, "usr/bin/dracut"):
		argv = []string{"dracut", "--regenerate-all", "--force"}
	case exists(c.Root, "usr/bin/mkinitcpio"):
		argv = []string{"mkinitcpio", "-P"}
	default:
		return fmt.Errorf("regenerate initramfs: none of update-initramfs, dracut, mkinitcpio in the target")
	}
	if _, err := c.Run(ctx, argv...); err != nil {
		return fmt.Errorf("regenerate initramfs: %w", err)
	}
	return nil
}

func exists(root, rel string) bool {
	_, err := os.Stat(filepath.Join(root, rel))
	return err == nil
}

func globExists(root, pattern string) bool {
	m, _ := filepath.Glob(filepath.Join(root, pattern))
	return len(m) > 0
}
