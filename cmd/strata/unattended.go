package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/stratahq/strata/handoff/creds"
	"github.com/stratahq/strata/live"
	"github.com/stratahq/strata/profile"
	"github.com/stratahq/strata/restore"
	"github.com/stratahq/strata/restore/flow"
	"github.com/stratahq/strata/restore/plan"
	"github.com/stratahq/strata/restore/probe"
	"github.com/stratahq/strata/source"
)

// Console markers of an unattended restore, for people and for the drill.
const (
	markerOK     = "STRATA RESTORE OK"
	markerFailed = "STRATA RESTORE FAILED"
)

func init() { live.Unattended = unattendedRestore }

// unattendedRestore is the live image's restore from kernel parameters:
// fetch the profile (by name, or matched to this machine) from the server
// or the stick (s.Sources, in that order), restore it onto the mapped
// disks, and print a marker line with the outcome.
func unattendedRestore(ctx context.Context, s *live.Session) error {
	err := unattended(ctx, s)
	if err != nil {
		fmt.Fprintf(s.Out, "%s: %s\n", markerFailed, strings.ReplaceAll(err.Error(), "\n", "; "))
		return err
	}
	fmt.Fprintln(s.Out, markerOK)
	return nil
}

func unattended(ctx context.Context, s *live.Session) error {
	cat := source.List(ctx, s.Sources...)
	var entry source.Entry
	var err error
	if s.Params.Profile == "" || s.Params.Profile == "auto" {
		entry, err = cat.Select(machineFacts(s.Inventory))
	} else {
		entry, err = cat.Find(s.Params.Profile)
	}
	if err != nil {
		return err
	}
	p, err := source.Load(ctx, entry)
	if err != nil {
		return err
	}
	fmt.Fprintf(s.Out, "restore: profile %s (host %s) from %s\n", entry.File, p.Host.Name, entry.Source)
	for _, h := range entry.Hides {
		fmt.Fprintf(s.Out, "restore: %s has a profile %s too; the one from %s is used\n", h, path.Base(entry.File), entry.Source)
	}
	if !s.Params.Yes {
		return errors.New("not confirmed: add strata.yes to the kernel command line to let the restore erase the target disks")
	}
	// Relative URLs in the profile (base image, datasets) resolve against
	// the source it came from: the server, or the stick as a file:// URL.
	o := flow.Options{Profile: p, Server: entry.Source.Base, Runner: s.Runner, Log: s.Log, Events: restore.Plain(s.Out), Keys: restore.NewProfileKeys(p)}
	if !s.Params.DiskAuto {
		o.Plan.Disks = s.Params.Disks
	}
	if s.Params.Credentials != "" {
		// Never logged, never written to the target: handoff keeps them in memory.
		if o.Creds, err = creds.Load(s.Params.Credentials, nil, nil); err != nil {
			return fmt.Errorf("credentials %s: %w", s.Params.Credentials, err)
		}
	}
	// As flow.Restore, but the probe gets the runner: wipefs then reads the
	// signatures, which is how the probe recognises the live medium (label
	// STRATA) and keeps it out of automatic matching. Without them the
	// mounted stick is one more candidate and auto is ambiguous.
	disks, err := probe.Disks(ctx, probe.Options{Runner: s.Runner})
	if err != nil {
		return fmt.Errorf("probe disks: %w", err)
	}
	if o.Plan.Disks == nil {
		o.Plan.Disks = map[string]string{}
	}
	o.Plan.Has = plan.OnPath
	pl, err := plan.Build(p, disks, o.Plan)
	if err != nil {
		return fmt.Errorf("plan: %w", err)
	}
	for _, w := range pl.Warnings {
		fmt.Fprintf(s.Out, "restore: warning: %s\n", w)
	}
	return flow.Run(ctx, pl, o)
}

// machineFacts is what profile match rules are tested against.
func machineFacts(inv live.Inventory) profile.Facts {
	var f profile.Facts
	for _, n := range inv.NICs {
		if n.MAC != "" {
			f.MACs = append(f.MACs, n.MAC)
		}
	}
	read := func(name string) string {
		b, _ := os.ReadFile(filepath.Join("/sys/class/dmi/id", name))
		return strings.TrimSpace(string(b))
	}
	f.DMI = profile.DMIMatch{Vendor: read("sys_vendor"), Product: read("product_name"), Serial: read("product_serial")}
	return f
}
