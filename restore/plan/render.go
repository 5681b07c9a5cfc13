package plan

import (
	"encoding/json"
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/stratahq/strata/internal/run"
	"github.com/stratahq/strata/profile"
)

// JSON is the plan as indented JSON, for --json, diffs and tools.
func (p *Plan) JSON() ([]byte, error) {
	b, err := json.MarshalIndent(p, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("plan: %w", err)
	}
	return append(b, '\n'), nil
}

// String renders an action the way the plan prints it.
func (a Action) String() string {
	switch {
	case a.Run != nil:
		s := "$ " + run.Quote(a.Run)
		if a.Key != "" {
			s += "   (passphrase of " + a.Key + " on stdin)"
		}
		if a.UnlessExists != "" {
			s += "   (unless " + a.UnlessExists + " exists)"
		}
		if a.MayFail {
			s += "   (may fail)"
		}
		if a.Input != "" {
			s += "   <<EOF\n" + a.Input + "EOF"
		}
		return s
	case a.Mkdir != "":
		return "mkdir -p " + a.Mkdir
	case a.WriteTable != "":
		return "write the partition table to " + a.WriteTable + " (go-diskfs)"
	case a.Reread != "":
		return "make the kernel re-read the table of " + a.Reread + " (BLKRRPART; if refused: partx --delete, partx --add)"
	case a.Wait != nil:
		return "wait for " + strings.Join(a.Wait, " ")
	case a.Write != "":
		return "write /etc/" + a.Write + " of the target"
	case a.LVMIDs != "":
		return "set the profile's UUIDs in " + a.LVMIDs
	case a.Swapoff != "":
		return "swapoff " + a.Swapoff + " (swapoff(2))"
	}
	return "(nothing)"
}

func size(n int64) string {
	if n == 0 {
		return "-"
	}
	return fmt.Sprintf("%s (%d)", profile.HumanBytes(n), n)
}

func ident(uuid, from string) string {
	switch {
	case uuid == "":
		return "-"
	case from == "":
		return uuid
	}
	return uuid + " (" + from + ")"
}

// Text renders the plan for people: disks, devices with final sizes and
// identities, the steps with their commands, fstab and crypttab.
func (p *Plan) Text() string {
	var b strings.Builder
	fmt.Fprintf(&b, "Plan for host %s", p.Host)
	if p.Profile != "" {
		fmt.Fprintf(&b, " (%s)", p.Profile)
	}
	fmt.Fprintf(&b, "\ntarget root %s, work directory %s", p.TargetRoot, p.WorkDir)
	if !p.Udev {
		b.WriteString(", no udev")
	}
	if p.Fresh {
		b.WriteString(", fresh: what is not kept is made again")
	}
	b.WriteString("\n\nDISKS\n")
	tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
	for _, d := range p.Disks {
		id := strings.TrimSpace(strings.Join([]string{d.Model, serial(d.Serial)}, " "))
		if id == "" {
			id = "-"
		}
		table := "no table"
		if d.Table != nil {
			table = d.Table.Type
			if d.KeepTable {
				table += " (kept)"
			}
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%d-byte sectors\t%s\t%s\tmatched by %s\n", d.Name, d.Device, size(d.Size), d.SectorSize, table, id, d.Matched)
	}
	tw.Flush()

	b.WriteString("\nDEVICES\n")
	tw = tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  REF\tDEVICE\tSTART\tSIZE\tTYPE\tIDENTITY\tCONTENT\tACTION")
	for _, d := range p.Devices {
		start := "-"
		if d.Kind == "partition" {
			start = profile.FormatBytes(d.Start)
		}
		typ := d.Type
		if typ == "" {
			typ = d.Kind
		}
		if d.Label != "" {
			typ += fmt.Sprintf(" %q", d.Label)
		}
		content, action := "-", "create"
		if d.Keep {
			action = "keep"
		}
		if d.Kind == "vg" {
			typ = fmt.Sprintf("vg, %d extents", d.Extents)
		}
		if f := d.FS; f != nil {
			content = f.Type
			if f.Label != "" {
				content += fmt.Sprintf(" %q", f.Label)
			}
			content += " " + ident(f.UUID, f.UUIDFrom)
			if len(f.Mounts) > 0 {
				content += " on " + strings.Join(f.Mounts, ", ")
			}
			if f.Keep {
				action = "keep"
			} else if d.Keep {
				action = "keep, new filesystem"
			}
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", d.Ref, d.Path, start, size(d.Size), typ, ident(d.UUID, d.UUIDFrom), content, action)
	}
	tw.Flush()

	fmt.Fprintf(&b, "\nSTEPS (%d)\n", len(p.Steps))
	for i, s := range p.Steps {
		fmt.Fprintf(&b, "%3d. %s: %s\n", i+1, s.ID, s.Summary)
		if len(s.After) > 0 {
			fmt.Fprintf(&b, "     after %s\n", strings.Join(s.After, ", "))
		}
		check := s.Check.Text
		if s.Kind.Verifies() {
			check = "must hold, else the restore stops: " + check
		} else if s.Check.Kind != "" {
			check = "skipped when " + strings.TrimPrefix(check, "done when ")
		}
		if s.Redo {
			check += " (redone: --fresh)"
		}
		fmt.Fprintf(&b, "     %s\n", check)
		for _, a := range s.Actions {
			fmt.Fprintf(&b, "       %s\n", strings.ReplaceAll(a.String(), "\n", "\n         "))
		}
	}
	if len(p.Fstab) > 0 {
		fmt.Fprintf(&b, "\nFSTAB (%s/etc/fstab; UUIDs marked * are read back with blkid)\n", strings.TrimSuffix(p.TargetRoot, "/"))
		tw = tabwriter.NewWriter(&b, 0, 4, 1, ' ', 0)
		for _, e := range p.Fstab {
			fmt.Fprintf(tw, "  UUID=%s%s\t%s\t%s\t%s\t%d\t%d\n", e.UUID, star(e.Resolve), e.Path, e.Type, e.Options, e.Dump, e.Pass)
		}
		tw.Flush()
	}
	if len(p.Crypttab) > 0 {
		b.WriteString("\nCRYPTTAB\n")
		tw = tabwriter.NewWriter(&b, 0, 4, 1, ' ', 0)
		for _, e := range p.Crypttab {
			fmt.Fprintf(tw, "  %s\tUUID=%s%s\t%s\t%s\n", e.Name, e.UUID, star(e.Resolve), e.KeyFile, e.Options)
		}
		tw.Flush()
	}
	if len(p.Warnings) > 0 {
		b.WriteString("\nWARNINGS\n")
		for _, w := range p.Warnings {
			fmt.Fprintf(&b, "  - %s\n", w)
		}
	}
	if len(p.Assumptions) > 0 {
		b.WriteString("\nASSUMPTIONS (sizes above the partitions)\n")
		for _, a := range p.Assumptions {
			fmt.Fprintf(&b, "  - %s\n", a)
		}
	}
	return b.String()
}

func serial(s string) string {
	if s == "" {
		return ""
	}
	return "serial " + s
}

func star(b bool) string {
	if b {
		return "*"
	}
	return ""
}
