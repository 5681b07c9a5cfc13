// Package fstab renders the restored system's /etc/fstab and /etc/crypttab.
// Devices are named by UUID, so the files keep working whatever the disks
// are called on the next boot.
package fstab

import (
	"fmt"
	"strings"
	"text/tabwriter"
)

// Entry is one fstab line.
type Entry struct {
	Ref     string `json:"ref"`    // profile reference of the device, for messages
	Device  string `json:"device"` // device path now, to read the UUID back
	UUID    string `json:"uuid,omitempty"`
	Resolve bool   `json:"resolve,omitempty"` // UUID not fixed by the profile: read back with blkid
	Path    string `json:"path"`              // mount point, or "none" for swap
	Type    string `json:"type"`
	Options string `json:"options"`
	Dump    int    `json:"dump"`
	Pass    int    `json:"pass"`
}

// CryptEntry is one crypttab line.
type CryptEntry struct {
	Name    string `json:"name"`
	Device  string `json:"device"`
	UUID    string `json:"uuid,omitempty"`
	Resolve bool   `json:"resolve,omitempty"`
	KeyFile string `json:"keyfile"`
	Options string `json:"options"`
}

// Render writes fstab; every entry must have its UUID by now.
func Render(host string, entries []Entry) (string, error) {
	var b strings.Builder
	fmt.Fprintf(&b, "# /etc/fstab of %s, written by strata restore.\n# <file system>\t<mount point>\t<type>\t<options>\t<dump>\t<pass>\n", host)
	tw := tabwriter.NewWriter(&b, 0, 8, 1, ' ', 0)
	for _, e := range entries {
		if e.UUID == "" {
			return "", fmt.Errorf("fstab: no UUID for %s (%s)", e.Ref, e.Device)
		}
		fmt.Fprintf(tw, "UUID=%s\t%s\t%s\t%s\t%d\t%d\n", e.UUID, e.Path, e.Type, e.Options, e.Dump, e.Pass)
	}
	if err := tw.Flush(); err != nil {
		return "", err
	}
	return b.String(), nil
}

// RenderCrypttab writes crypttab.
func RenderCrypttab(host string, entries []CryptEntry) (string, error) {
	var b strings.Builder
	fmt.Fprintf(&b, "# /etc/crypttab of %s, written by strata restore.\n# <target name>\t<source device>\t<key file>\t<options>\n", host)
	tw := tabwriter.NewWriter(&b, 0, 8, 1, ' ', 0)
	for _, e := range entries {
		if e.UUID == "" {
			return "", fmt.Errorf("crypttab: no UUID for %s (%s)", e.Name, e.Device)
		}
		fmt.Fprintf(tw, "%s\tUUID=%s\t%s\t%s\n", e.Name, e.UUID, e.KeyFile, e.Options)
	}
	if err := tw.Flush(); err != nil {
		return "", err
	}
	return b.String(), nil
}
