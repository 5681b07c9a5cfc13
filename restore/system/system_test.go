package system

import (
	"context"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stratahq/strata/internal/run"
	"github.com/stratahq/strata/profile"
)

var update = flag.Bool("update", false, "rewrite golden files")

func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		os.WriteFile(path, []byte(got), 0o644)
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update)", err)
	}
	if got != string(want) {
		t.Errorf("%s differs:\n--- got\n%s--- want\n%s", name, got, want)
	}
}

// fakeRoot makes a target root with the files detection looks for.
func fakeRoot(t *testing.T, files ...string) string {
	root := t.TempDir()
	for _, f := range files {
		p := filepath.Join(root, f)
		os.MkdirAll(filepath.Dir(p), 0o755)
		os.WriteFile(p, []byte("x"), 0o755)
	}
	return root
}

// argv renders the recorded commands with the temp root replaced by ROOT.
func argv(r *run.Recorder, root string) string {
	return strings.ReplaceAll(r.Argv(), root, "ROOT")
}

func load(t *testing.T, name string) *profile.Profile {
	p, err := profile.Load("../../examples/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestEnterAndCloseBindsAndRestores(t *testing.T) {
	root := fakeRoot(t)
	os.MkdirAll(filepath.Join(root, "etc"), 0o755)
	if err := os.Symlink("../run/systemd/resolve/stub-resolv.conf", filepath.Join(root, "etc/resolv.conf")); err != nil {
		t.Fatal(err)
	}
	rec := &run.Recorder{}
	c, err := Enter(context.Background(), root, rec)
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Lstat(filepath.Join(root, "etc/resolv.conf")); err != nil || fi.Mode()&os.ModeSymlink != 0 {
		t.Errorf("target resolv.conf should be the live one while inside: %v", err)
	}
	c.Run(context.Background(), "apt-get", "update")
	if err := c.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if l, _ := os.Readlink(filepath.Join(root, "etc/resolv.conf")); l != "../run/systemd/resolve/stub-resolv.conf" {
		t.Errorf("target resolv.conf not restored: %q", l)
	}
	got := argv(rec, root)
	// Optional binds depend on the machine; the fixed ones and the order are the contract.
	for _, want := range []string{"mount --bind /dev ROOT/dev\n", "mount --bind /proc ROOT/proc\n", "chroot ROOT /usr/bin/env DEBIAN_FRONTEND=noninteractive LC_ALL=C", "apt-get update\n", "umount -R ROOT/dev\n"} {
		if !strings.Contains(got, want) {
			t.Errorf("missing %q in:\n%s", want, got)
		}
	}
	if strings.Index(got, "umount -R ROOT/run") > strings.Index(got, "umount -R ROOT/dev\n") {
		t.Errorf("unmounts not in reverse order:\n%s", got)
	}
}

// A failing bind unwinds what was already bound.
func TestEnterFailureUnwinds(t *testing.T) {
	root := fakeRoot(t)
	rec := &run.Recorder{Respond: func(c run.Cmd) (run.Result, error) {
		if len(c.Args) > 1 && c.Args[1] == "/proc" {
			return run.Result{ExitCode: 32}, &run.ExitError{Cmd: c.String(), Code: 32}
		}
		return run.Result{}, nil
	}}
	if _, err := Enter(context.Background(), root, rec); err == nil {
		t.Fatal("want an error")
	}
	if !strings.Contains(argv(rec, root), "umount -R ROOT/dev") {
		t.Errorf("bound /dev not unmounted after failure:\n%s", argv(rec, root))
	}
}

func newChroot(root string, rec *run.Recorder) *Chroot {
	return &Chroot{Root: root, Runner: rec, Env: []string{"LC_ALL=C"}}
}

func TestPackagesAndInitramfs(t *testing.T) {
	root := fakeRoot(t, "usr/bin/apt-get", "usr/sbin/update-initramfs", "boot/initrd.img-6.1.0-56-amd64")
	pm, err := PackageManager(root)
	if err != nil || pm != "apt" {
		t.Fatalf("PackageManager = %q, %v", pm, err)
	}
	rec := &run.Recorder{}
	c := newChroot(root, rec)
	if err := c.InstallPackages(context.Background(), pm, []string{"openssh-server", "sudo"}); err != nil {
		t.Fatal(err)
	}
	if err := c.RegenerateInitramfs(context.Background()); err != nil {
		t.Fatal(err)
	}
	golden(t, "packages-apt.argv", argv(rec, root))
}

// Packages already installed need no repository at all.
func TestPackagesAlreadyInstalled(t *testing.T) {
	rec := &run.Recorder{Respond: func(c run.Cmd) (run.Result, error) {
		if strings.Contains(c.String(), "dpkg-query") {
			return run.Result{Stdout: []byte("openssh-server installed\nsudo installed\n")}, nil
		}
		return run.Result{}, nil
	}}
	if err := newChroot(t.TempDir(), rec).InstallPackages(context.Background(), "apt", []string{"openssh-server", "sudo"}); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(rec.Argv(), "apt-get") {
		t.Errorf("apt-get ran although everything is installed:\n%s", rec.Argv())
	}
}

func TestUnreachableRepositoryNamed(t *testing.T) {
	out := "Err:1 http://deb.example.invalid/debian bookworm InRelease\n  Could not resolve 'deb.example.invalid'\nW: Failed to fetch http://deb.example.invalid/debian/dists/bookworm/InRelease\n"
	for name, fail := range map[string]bool{"update fails": true, "update only warns": false} {
		t.Run(name, func(t *testing.T) {
			rec := &run.Recorder{Respond: func(c run.Cmd) (run.Result, error) {
				if !strings.Contains(c.String(), "apt-get update") {
					return run.Result{}, nil
				}
				if fail {
					return run.Result{Stderr: []byte(out), ExitCode: 100}, &run.ExitError{Cmd: c.String(), Code: 100, Stderr: out}
				}
				return run.Result{Stderr: []byte(out)}, nil
			}}
			err := newChroot(t.TempDir(), rec).InstallPackages(context.Background(), "apt", []string{"vim"})
			if err == nil || !strings.Contains(err.Error(), "package repository http://deb.example.invalid/debian is unreachable") {
				t.Fatalf("want the repository named, got %v", err)
			}
			if strings.Contains(rec.Argv(), "apt-get install") {
				t.Error("install attempted after the repository failed")
			}
		})
	}
}

func TestNoPackageManager(t *testing.T) {
	if _, err := PackageManager(t.TempDir()); err == nil || !strings.Contains(err.Error(), "system.package_manager") {
		t.Fatalf("got %v", err)
	}
}

func uuids(dev string) string { return "UUID-OF-" + strings.ReplaceAll(dev, "/", "-") }

func TestGrubBIOSOnEveryMirrorDisk(t *testing.T) {
	p := load(t, "server-raid1.yaml")
	root := fakeRoot(t)
	rec := &run.Recorder{}
	err := newChroot(root, rec).InstallBootloader(context.Background(), Boot{Loader: p.Bootloader, Disks: map[string]string{"a": "/dev/sda", "b": "/dev/sdb"}, KernelArgs: KernelArgs(p, uuids)})
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "grub-bios.argv", argv(rec, root))
	cfg, _ := os.ReadFile(filepath.Join(root, "etc/default/grub.d/50-strata.cfg"))
	golden(t, "grub-bios.cfg", string(cfg))
}

// Re-running grub-efi replaces the old boot entry instead of adding one.
func TestGrubEFIReplacesBootEntry(t *testing.T) {
	p := load(t, "laptop-uefi.yaml")
	root := fakeRoot(t, "boot/efi/EFI/debian/grubx64.efi")
	rec := &run.Recorder{Respond: func(c run.Cmd) (run.Result, error) {
		if strings.HasSuffix(c.String(), " efibootmgr") {
			return run.Result{Stdout: []byte("BootCurrent: 0001\nBootOrder: 0003,0001,0000\nBoot0000* UiApp\tFvVol(...)\nBoot0001* UEFI QEMU HARDDISK\tPciRoot(0x0)\nBoot0003* debian\tHD(1,GPT,...)/File(\\EFI\\debian\\grubx64.efi)\nBoot0004* debian\tHD(1,GPT,...)\n")}, nil
		}
		return run.Result{}, nil
	}}
	b := Boot{Loader: p.Bootloader, ESP: "/boot/efi", ESPDisk: "/dev/vda", ESPPart: 1, EFIVars: true, KernelArgs: KernelArgs(p, uuids)}
	if err := newChroot(root, rec).InstallBootloader(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	golden(t, "grub-efi.argv", argv(rec, root))
	if _, err := os.Stat(filepath.Join(root, "boot/efi/EFI/BOOT/BOOTX64.EFI")); err != nil {
		t.Errorf("removable fallback path not written: %v", err)
	}
	if got := KernelArgs(p, uuids); got != "root=UUID=UUID-OF-vg0-root resume=UUID=UUID-OF-vg0-swap quiet" {
		t.Errorf("KernelArgs = %q", got)
	}
}

func TestSystemdBoot(t *testing.T) {
	p := load(t, "btrfs-subvolumes.yaml")
	root := fakeRoot(t, "boot/vmlinuz-6.1.0-56-amd64", "boot/loader/.keep")
	rec := &run.Recorder{}
	b := Boot{Loader: p.Bootloader, ESP: "/boot", KernelArgs: KernelArgs(p, uuids)}
	if err := newChroot(root, rec).InstallBootloader(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	golden(t, "systemd-boot.argv", argv(rec, root))
	cmdline, _ := os.ReadFile(filepath.Join(root, "etc/kernel/cmdline"))
	if string(cmdline) != "root=UUID=UUID-OF-main-root rootflags=subvol=@ rw quiet\n" {
		t.Errorf("/etc/kernel/cmdline = %q", cmdline)
	}
}

func TestConfigure(t *testing.T) {
	p := load(t, "laptop-uefi.yaml")
	root := fakeRoot(t)
	os.WriteFile(filepath.Join(root, "etc/hosts"), []byte("127.0.0.1\tlocalhost\n127.0.1.1\told-name\n"), 0o644)
	if err := Configure(root, p, uuids); err != nil {
		t.Fatal(err)
	}
	var all strings.Builder
	for _, f := range []string{"etc/hostname", "etc/hosts", "etc/initramfs-tools/conf.d/resume", "etc/cryptsetup-initramfs/conf-hook"} {
		b, err := os.ReadFile(filepath.Join(root, f))
		if err != nil {
			t.Error(err)
		}
		all.WriteString("== " + f + "\n" + string(b))
	}
	golden(t, "configure.txt", all.String())
}

func TestUnknownBootloader(t *testing.T) {
	err := newChroot(t.TempDir(), &run.Recorder{}).InstallBootloader(context.Background(), Boot{Loader: &profile.Bootloader{Type: "lilo"}})
	if err == nil || errors.Is(err, nil) {
		t.Fatal("want an error for an unknown bootloader")
	}
}
