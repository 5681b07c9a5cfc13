package restore

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/stratahq/strata/restore/fstab"
)

// Tabs renders the target's fstab and crypttab. UUIDs the profile did not
// fix are read back with blkid (and cryptsetup luksUUID), so the files name
// what is really on the disks.
func (a *applier) tabs(ctx context.Context) (fstabText, crypttabText string, err error) {
	entries := append([]fstab.Entry(nil), a.p.Fstab...)
	for i := range entries {
		e := &entries[i]
		if !e.Resolve {
			continue
		}
		got := a.uuids[e.Device]
		if got == "" {
			got = a.blkid(ctx, e.Device)["UUID"]
		}
		if got == "" {
			return "", "", fmt.Errorf("cannot read the UUID of %s (%s) for fstab", e.Device, e.Ref)
		}
		if e.UUID != "" && !strings.EqualFold(got, e.UUID) {
			a.log("%s has UUID %s, the plan expected %s: fstab uses %s", e.Device, got, e.UUID, got)
		}
		e.UUID = got
	}
	fstabText, err = fstab.Render(a.p.Host, entries)
	if err != nil {
		return "", "", err
	}
	if len(a.p.Crypttab) == 0 {
		return fstabText, "", nil
	}
	crypt := append([]fstab.CryptEntry(nil), a.p.Crypttab...)
	for i := range crypt {
		e := &crypt[i]
		if !e.Resolve {
			continue
		}
		res, err := a.query(ctx, []string{"cryptsetup", "luksUUID", e.Device})
		got := strings.TrimSpace(string(res.Stdout))
		if err != nil || got == "" {
			return "", "", fmt.Errorf("cannot read the LUKS UUID of %s for crypttab", e.Device)
		}
		e.UUID = got
	}
	crypttabText, err = fstab.RenderCrypttab(a.p.Host, crypt)
	return fstabText, crypttabText, err
}

func (a *applier) etc() string { return filepath.Join(a.p.TargetRoot, "etc") }

func (a *applier) writeTab(ctx context.Context, which string) error {
	f, c, err := a.tabs(ctx)
	if err != nil {
		return err
	}
	text := f
	if which == "crypttab" {
		text = c
	}
	path := filepath.Join(a.etc(), which)
	a.log("writing %s", path)
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

func (a *applier) checkTabs(ctx context.Context) (bool, string, error) {
	f, c, err := a.tabs(ctx)
	if err != nil {
		return false, err.Error(), nil
	}
	for _, t := range []struct{ name, want string }{{"fstab", f}, {"crypttab", c}} {
		if t.name == "crypttab" && len(a.p.Crypttab) == 0 {
			continue
		}
		got, err := os.ReadFile(filepath.Join(a.etc(), t.name))
		if err != nil || string(got) != t.want {
			return false, filepath.Join(a.etc(), t.name) + " differs from the plan", nil
		}
	}
	return true, "fstab and crypttab are as planned", nil
}
