package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/stratahq/strata/handoff/creds"
	"github.com/stratahq/strata/live"
	"github.com/stratahq/strata/profile"
	"github.com/stratahq/strata/restore"
	"github.com/stratahq/strata/restore/fetch"
	"github.com/stratahq/strata/restore/flow"
	"github.com/stratahq/strata/serve"
)

// Console markers of an unattended restore, for people and for the drill.
const (
	markerOK     = "STRATA RESTORE OK"
	markerFailed = "STRATA RESTORE FAILED"
)

func init() { live.Unattended = unattendedRestore }

// unattendedRestore is the live image's restore from kernel parameters:
// fetch the profile (by name, or matched to this machine), restore it onto
// the mapped disks, and print a marker line with the outcome.
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
	server := s.Params.Server
	idx, err := fetchIndex(ctx, server)
	if err != nil {
		return err
	}
	var entry serve.Entry
	if s.Params.Profile == "" || s.Params.Profile == "auto" {
		entry, err = idx.Select(machineFacts(s.Inventory))
	} else {
		entry, err = idx.Find(s.Params.Profile)
	}
	if err != nil {
		return err
	}
	data, err := fetchAll(ctx, server, entry.File)
	if err != nil {
		return err
	}
	p, err := profile.Parse(entry.File, data)
	if err != nil {
		return fmt.Errorf("profile %s:\n%w", entry.File, err)
	}
	fmt.Fprintf(s.Out, "restore: profile %s (host %s) from %s\n", entry.File, p.Host.Name, server)
	if !s.Params.Yes {
		return errors.New("not confirmed: add strata.yes to the kernel command line to let the restore erase the target disks")
	}
	o := flow.Options{Profile: p, Server: server, Runner: s.Runner, Log: s.Log, Events: restore.Plain(s.Out), Keys: restore.NewProfileKeys(p)}
	if !s.Params.DiskAuto {
		o.Plan.Disks = s.Params.Disks
	}
	if s.Params.Credentials != "" {
		// Never logged, never written to the target: handoff keeps them in memory.
		if o.Creds, err = creds.Load(s.Params.Credentials, nil, nil); err != nil {
			return fmt.Errorf("credentials %s: %w", s.Params.Credentials, err)
		}
	}
	return flow.Restore(ctx, o)
}

func fetchAll(ctx context.Context, server, path string) ([]byte, error) {
	r, err := fetch.Open(ctx, path, fetch.Options{Base: server})
	if err != nil {
		return nil, err
	}
	defer r.Close()
	return io.ReadAll(io.LimitReader(r, 16<<20))
}

func fetchIndex(ctx context.Context, server string) (serve.Index, error) {
	b, err := fetchAll(ctx, server, strings.TrimPrefix(serve.IndexPath, "/"))
	if err != nil {
		return serve.Index{}, fmt.Errorf("profile index: %w", err)
	}
	var idx serve.Index
	if err := json.Unmarshal(b, &idx); err != nil {
		return idx, fmt.Errorf("profile index from %s: %w", server, err)
	}
	return idx, nil
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
