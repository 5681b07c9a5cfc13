package wizard

import (
	"context"
	"fmt"
	"strings"

	"github.com/charmbracelet/bubbles/textinput"
	"github.com/charmbracelet/x/ansi"

	"github.com/stratahq/strata/profile"
	"github.com/stratahq/strata/restore"
	"github.com/stratahq/strata/restore/plan"
	"github.com/stratahq/strata/restore/probe"
)

// View draws the current screen: a title line, the body, a status line and
// the help line with the keys, cut to the terminal's size.
func (m *Model) View() string {
	if m.quit {
		return ""
	}
	title := fmt.Sprintf("strata restore  %d/8 %s", int(m.scr)+1, screenTitles[m.scr])
	if m.prof != nil && m.scr > scrProfile {
		title += "  host " + m.prof.Host.Name
	}
	rule := "-"
	if m.st.unicode {
		rule = "─"
	}
	var body []string
	var help string
	switch m.scr {
	case scrNetwork:
		body, help = m.viewNetwork(), m.helpNetwork()
	case scrProfile:
		body, help = m.viewProfile(), m.helpProfile()
	case scrDisks:
		body, help = m.viewDisks(), m.helpDisks()
	case scrPlan:
		body, help = m.viewPlan(), m.helpPlan()
	case scrSecrets:
		body, help = m.viewSecrets(), m.helpSecrets()
	case scrConfirm:
		body, help = m.viewConfirm(), m.helpConfirm()
	case scrProgress:
		body, help = m.viewProgress(), m.helpProgress()
	case scrDone:
		body, help = m.viewDone(), m.helpDone()
	}
	n := m.bodyHeight()
	if len(body) > n {
		body = body[:n]
	}
	for len(body) < n {
		body = append(body, "")
	}
	status := m.status
	if m.busy != "" {
		status = m.busy + " ..."
	}
	lines := append([]string{m.st.title.Render(title), m.st.dim.Render(strings.Repeat(rule, m.w))}, body...)
	lines = append(lines, m.st.warn.Render(status), help)
	for i, l := range lines {
		if !m.st.unicode {
			l = asciiGlyphs.Replace(l)
		}
		lines[i] = ansi.Truncate(l, m.w, "")
	}
	return strings.Join(lines, "\n")
}

// asciiGlyphs stand in for the few non-ASCII marks a vt100 cannot show.
var asciiGlyphs = strings.NewReplacer(" · ", " | ", "↑↓", "up/down", "~", "~")

// bodyHeight is what is left for a screen's body: title, rule, status and
// help take four lines.
func (m *Model) bodyHeight() int { return max(4, m.h-4) }

// keys renders "key action" pairs for the help line.
func keys(pairs ...string) string {
	var out []string
	for i := 0; i+1 < len(pairs); i += 2 {
		if pairs[i] == "" {
			out = append(out, pairs[i+1])
			continue
		}
		out = append(out, pairs[i]+" "+pairs[i+1])
	}
	return strings.Join(out, " · ")
}

// item is a list line, marked when chosen (also without colour: "> ").
func (m *Model) item(sel bool, s string) string {
	if sel {
		return m.st.sel.Render("> " + s)
	}
	return "  " + s
}

// field is a text input in brackets, so an empty one is still visible on a
// terminal without colour.
func (m *Model) field(in textinput.Model, focus bool) string {
	in.Cursor.Style = m.st.cursor
	in.Cursor.TextStyle = m.st.input
	if !focus {
		in.Blur()
	}
	return "[" + in.View() + "]"
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n-1] + "~"
}

// wrap breaks s into lines of at most w columns, each after the first
// indented by indent.
func wrap(s string, w int, indent string) []string {
	if w < 20 {
		w = 20
	}
	var out []string
	for _, para := range strings.Split(s, "\n") {
		// The first line keeps its own indentation.
		line := para[:len(para)-len(strings.TrimLeft(para, " "))]
		first := line
		for _, word := range strings.Fields(para) {
			if line != first && line != indent && ansi.StringWidth(line)+1+ansi.StringWidth(word) > w {
				out = append(out, line)
				line = indent
			}
			if line != first && line != indent {
				line += " "
			}
			line += word
		}
		out = append(out, line)
	}
	return out
}

// contents says what is on a disk now, and what makes it unusable.
func contents(d probe.Disk) string {
	var what []string
	switch {
	case d.LiveMedium:
		what = append(what, "LIVE MEDIUM")
	case d.SystemDisk:
		what = append(what, "RUNNING SYSTEM")
	case d.ReadOnly:
		what = append(what, "read-only")
	}
	if use := d.InUse(); use != "" {
		what = append(what, "in use")
	}
	var sigs []string
	for _, s := range d.Signatures {
		sigs = append(sigs, sig(s))
	}
	if len(d.Partitions) > 0 {
		var parts []string
		for _, p := range d.Partitions {
			for _, s := range p.Signatures {
				parts = append(parts, sig(s))
			}
		}
		desc := fmt.Sprintf("%d partitions", len(d.Partitions))
		if len(parts) > 0 {
			desc += ": " + strings.Join(parts, ", ")
		}
		sigs = append(sigs, desc)
	}
	if len(sigs) == 0 {
		sigs = append(sigs, "empty")
	}
	return strings.Join(append(what, sigs...), "; ")
}

func sig(s probe.Signature) string {
	if s.Label != "" {
		return fmt.Sprintf("%s %q", s.Type, s.Label)
	}
	return s.Type
}

// planTree is the plan as a tree: disk → partitions → RAID/LUKS → VG →
// LVs, each with its exact size and what goes on it. A device made of
// several others is drawn in full under the first.
func (m *Model) planTree() []string {
	pl := m.plan
	children := map[string][]plan.Device{}
	drawn := map[string]bool{}
	for _, d := range pl.Devices {
		switch {
		case d.Kind == "disk":
		case d.Kind == "partition":
			disk, _, _ := strings.Cut(d.Ref, "/")
			children[disk] = append(children[disk], d)
		default:
			for _, on := range d.On {
				children[on] = append(children[on], d)
			}
		}
	}
	br, last, cont, blank := m.st.tree()
	var out []string
	var walk func(ref, prefix string)
	walk = func(ref, prefix string) {
		kids := children[ref]
		for i, d := range kids {
			lead, next := br, cont
			if i == len(kids)-1 {
				lead, next = last, blank
			}
			if drawn[d.Ref] {
				out = append(out, prefix+lead+m.st.dim.Render(d.Ref+" (above)"))
				continue
			}
			drawn[d.Ref] = true
			out = append(out, prefix+lead+m.node(d))
			if c := m.content(d); c != "" {
				pad := cont
				if len(children[d.Ref]) == 0 {
					pad = blank
				}
				out = append(out, prefix+next+pad+c)
			}
			walk(d.Ref, prefix+next)
		}
	}
	probed := map[string]probe.Disk{}
	for _, d := range m.disks {
		probed[d.Path] = d
	}
	for _, d := range pl.Disks {
		table := "no table"
		if d.Table != nil {
			table = d.Table.Type
		}
		mark := m.st.bad.Render("ERASE")
		if d.KeepTable {
			mark = m.st.ok.Render("keep table")
		}
		out = append(out, fmt.Sprintf("%s %s  %s  %s  %s", m.st.key.Render(d.Name), d.Device, exact(d.Size), table, mark))
		if p, ok := probed[d.Device]; ok {
			out = append(out, "   now: "+contents(p))
		}
		walk(d.Name, "")
	}
	for _, w := range pl.Warnings {
		out = append(out, wrap(m.st.warn.Render("warning: ")+w, m.w-2, "  ")...)
	}
	return out
}

func exact(n int64) string { return fmt.Sprintf("%s (%d B)", profile.HumanBytes(n), n) }

func (m *Model) node(d plan.Device) string {
	name := d.Ref
	if i := strings.LastIndex(name, "/"); i >= 0 && d.Kind != "vg" {
		name = name[i+1:]
	}
	kind := d.Kind
	if d.Type != "" && d.Kind != "lv" {
		kind = d.Type
	}
	act := m.st.bad.Render("new")
	if d.Keep {
		act = m.st.ok.Render("keep")
	}
	return fmt.Sprintf("%s %s %s %s %s", m.st.key.Render(name), kind, d.Path, exact(d.Size), act)
}

func (m *Model) content(d plan.Device) string {
	f := d.FS
	if f == nil {
		return ""
	}
	s := f.Type
	if f.Label != "" {
		s += fmt.Sprintf(" %q", f.Label)
	}
	if len(f.Mounts) > 0 {
		s += " on " + strings.Join(f.Mounts, ", ")
	}
	if f.Keep {
		s += " " + m.st.ok.Render("(kept, not formatted)")
	} else if d.Keep {
		s += " " + m.st.bad.Render("(formatted)")
	}
	return s
}

// typedKeys serves the passphrases typed on the secrets screen and leaves
// the other key sources (file, url) to the profile's.
type typedKeys struct {
	typed map[string][]byte
	rest  restore.KeySource
}

func (k typedKeys) Passphrase(ctx context.Context, name string, confirm bool) ([]byte, error) {
	if b, ok := k.typed[name]; ok {
		return b, nil
	}
	return k.rest.Passphrase(ctx, name, confirm)
}
