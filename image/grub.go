package image

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/stratahq/strata/internal/run"
)

// grubStandalone builds a standalone GRUB image with grub-mkstandalone: the
// modules and the embedded config travel inside one file, so nothing but
// that file has to be on the boot medium's EFI partition.
//
// format is a grub-mkstandalone target (x86_64-efi, i386-pc-pxe), moddir its
// module directory, and out the file to write.
func (b *build) grubStandalone(ctx context.Context, format, moddir, out, embedded string, modules []string) error {
	if err := needLoader(moddir); err != nil {
		return fmt.Errorf("image: %w", err)
	}
	tmp, err := os.MkdirTemp("", "strata-grub-")
	if err != nil {
		return fmt.Errorf("image: %w", err)
	}
	defer os.RemoveAll(tmp)
	cfg := filepath.Join(tmp, "grub.cfg")
	if err := os.WriteFile(cfg, []byte(embedded), 0o644); err != nil {
		return fmt.Errorf("image: %w", err)
	}
	_, err = b.run.Run(ctx, run.Cmd{Name: "grub-mkstandalone", Args: grubStandaloneArgs(format, moddir, out, cfg, modules)})
	if errors.Is(err, run.ErrNotFound) {
		return fmt.Errorf("image: build GRUB %s: %w (install the Debian package grub-common)", format, err)
	}
	if err != nil {
		return fmt.Errorf("image: build GRUB %s: %w", format, err)
	}
	return nil
}

// grubStandaloneArgs is the argv of grub-mkstandalone without the program.
// Locales, themes and fonts are left out: GRUB's text menu needs none, and
// they would triple the image.
func grubStandaloneArgs(format, moddir, out, cfg string, modules []string) []string {
	return []string{
		"--format=" + format,
		"--directory=" + moddir,
		"--output=" + out,
		"--install-modules=" + strings.Join(modules, " "),
		"--locales=", "--themes=", "--fonts=",
		"boot/grub/grub.cfg=" + cfg,
	}
}

// grubEFI builds BOOTX64.EFI for the removable media and returns it.
func (b *build) grubEFI(ctx context.Context) ([]byte, error) {
	tmp, err := os.MkdirTemp("", "strata-grubefi-")
	if err != nil {
		return nil, fmt.Errorf("image: %w", err)
	}
	defer os.RemoveAll(tmp)
	out := filepath.Join(tmp, "BOOTX64.EFI")
	if err := b.grubStandalone(ctx, "x86_64-efi", b.o.Loaders.GRUBEFI, out, grubEmbedded(b.marker), grubEFIModules); err != nil {
		return nil, err
	}
	data, err := os.ReadFile(out)
	if err != nil {
		return nil, fmt.Errorf("image: %w", err)
	}
	return data, nil
}
