package wizard

import (
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"strings"

	"github.com/charmbracelet/bubbles/textinput"
	tea "github.com/charmbracelet/bubbletea"

	"github.com/stratahq/strata/profile"
	"github.com/stratahq/strata/restore/target"
)

// ---- 1. network ----

func (m *Model) updateNetwork(msg tea.Msg) (tea.Model, tea.Cmd) {
	switch msg := msg.(type) {
	case ifacesMsg:
		m.busy = ""
		if msg.err != nil {
			m.fail("interfaces", msg.err)
		}
		m.ifaces = msg.ifaces
		m.netCur = min(m.netCur, max(0, len(m.ifaces)-1))
		return m, nil
	case netMsg:
		m.busy = "reading the network interfaces"
		if msg.err != nil {
			m.fail(msg.what, msg.err)
		} else {
			m.status = msg.what + ": done"
		}
		return m, m.readIfaces()
	case entriesMsg:
		m.busy = ""
		if msg.err != nil {
			m.fail("profiles from "+msg.server, msg.err)
			return m, nil
		}
		m.usedSrv, m.entries = msg.server, msg.entries
		m.profCur = m.preselect()
		m.prof = nil
		m.goTo(scrProfile)
		if len(m.entries) == 0 {
			m.status = "the file server lists no profiles (profiles/*.yaml)"
		}
		return m, nil
	case tea.KeyMsg:
		if m.static != nil {
			return m.updateStatic(msg)
		}
		k := msg.String()
		if m.netFocus == 1 {
			switch k {
			case "tab", "shift+tab", "up", "down":
				m.netFocus = 0
				m.server.Blur()
				return m, nil
			case "enter":
				return m.submitServer()
			}
			var cmd tea.Cmd
			m.server, cmd = m.server.Update(msg)
			return m, cmd
		}
		switch k {
		case "up", "k":
			m.netCur = max(0, m.netCur-1)
		case "down", "j":
			m.netCur = min(len(m.ifaces)-1, m.netCur+1)
		case "tab", "shift+tab":
			m.netFocus = 1
			return m, m.server.Focus()
		case "r":
			m.busy = "reading the network interfaces"
			return m, m.readIfaces()
		case "d":
			if len(m.ifaces) > 0 {
				m.busy = "asking for an address (DHCP) on " + m.ifaces[m.netCur].Name
				return m, m.dhcp(m.ifaces[m.netCur].Name)
			}
		case "s":
			if len(m.ifaces) > 0 {
				m.static = []textinput.Model{m.newInput("10.0.2.50/24", false), m.newInput("optional", false), m.newInput("optional", false)}
				m.staticAt = 0
				return m, m.static[0].Focus()
			}
		case "enter":
			return m.submitServer()
		}
	}
	return m, nil
}

func (m *Model) updateStatic(msg tea.KeyMsg) (tea.Model, tea.Cmd) {
	switch msg.String() {
	case "esc":
		m.static = nil
		return m, nil
	case "tab", "down":
		return m, m.focusStatic(m.staticAt + 1)
	case "shift+tab", "up":
		return m, m.focusStatic(m.staticAt + len(m.static) - 1)
	case "enter":
		s, err := parseStatic(m.static[0].Value(), m.static[1].Value(), m.static[2].Value())
		if err != nil {
			m.status = err.Error()
			return m, nil
		}
		m.static = nil
		name := m.ifaces[m.netCur].Name
		m.busy = "setting " + s.Addr.String() + " on " + name
		return m, m.setStatic(name, s)
	}
	var cmd tea.Cmd
	m.static[m.staticAt], cmd = m.static[m.staticAt].Update(msg)
	return m, cmd
}

func (m *Model) focusStatic(i int) tea.Cmd {
	return refocus(func(i int) *textinput.Model { return &m.static[i] }, len(m.static), &m.staticAt, i)
}

// refocus moves the focus among n fields from *at to i (modulo n).
func refocus(field func(int) *textinput.Model, n int, at *int, i int) tea.Cmd {
	field(*at).Blur()
	*at = i % n
	return field(*at).Focus()
}

// parseStatic checks the static form: an IPv4 address with its prefix, and
// optionally a gateway inside it and a DNS server.
func parseStatic(addr, gw, dns string) (Static, error) {
	var s Static
	p, err := netip.ParsePrefix(strings.TrimSpace(addr))
	if err != nil || !p.Addr().Is4() {
		return s, fmt.Errorf("address %q: give an IPv4 address with its prefix length, e.g. 192.168.1.20/24", addr)
	}
	s.Addr = p
	if gw = strings.TrimSpace(gw); gw != "" {
		g, err := netip.ParseAddr(gw)
		if err != nil || !g.Is4() || !p.Masked().Contains(g) {
			return s, fmt.Errorf("gateway %q: give an IPv4 address inside %s", gw, p.Masked())
		}
		s.Gateway = g
	}
	if dns = strings.TrimSpace(dns); dns != "" {
		d, err := netip.ParseAddr(dns)
		if err != nil {
			return s, fmt.Errorf("DNS server %q is not an IP address", dns)
		}
		s.DNS = d
	}
	return s, nil
}

func (m *Model) submitServer() (tea.Model, tea.Cmd) {
	srv := strings.TrimRight(strings.TrimSpace(m.server.Value()), "/")
	u, err := url.Parse(srv)
	switch {
	case srv == "":
		// Profiles on the stick need no server.
		m.busy = "reading the profiles on the stick"
		return m, m.listProfiles("")
	case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
		m.status = fmt.Sprintf("%q is not an http(s) URL with a host", srv)
	default:
		m.busy = "reading the profile index of " + srv
		return m, m.listProfiles(srv)
	}
	return m, nil
}

func (m *Model) viewNetwork() []string {
	out := []string{m.st.title.Render("Network interfaces")}
	if len(m.ifaces) == 0 {
		out = append(out, "  (none found)")
	}
	for i, f := range m.ifaces {
		addrs := strings.Join(f.Addrs, " ")
		if addrs == "" {
			addrs = "(no address)"
		}
		line := fmt.Sprintf("%-10s %-17s %-5s %s", f.Name, f.MAC, f.State, addrs)
		out = append(out, m.item(i == m.netCur && m.netFocus == 0 && m.static == nil, line))
	}
	out = append(out, "", m.st.title.Render("File server")+"  "+m.field(m.server, m.netFocus == 1))
	if m.static != nil {
		out = append(out, "", m.st.title.Render("Static address for "+m.ifaces[m.netCur].Name))
		for i, l := range []string{"Address/prefix", "Gateway       ", "DNS server    "} {
			out = append(out, "  "+l+"  "+m.field(m.static[i], i == m.staticAt))
		}
	}
	return out
}

func (m *Model) helpNetwork() string {
	switch {
	case m.static != nil:
		return keys("tab", "next field", "enter", "apply", "esc", "cancel")
	case m.netFocus == 1:
		return keys("type", "server URL", "tab", "interfaces", "enter", "next", "^C", "shell")
	}
	return keys("↑↓", "iface", "d", "DHCP", "s", "static", "r", "refresh", "tab", "URL", "enter", "next", "^C", "shell")
}

// ---- 2. host profile ----

// preselect is the profile named on the command line, else the one that
// matches this machine, else the first that loads.
func (m *Model) preselect() int {
	first := -1
	match := -1
	for i, e := range m.entries {
		if m.opt.Profile != "" && m.opt.Profile != "auto" && (e.Name == m.opt.Profile || strings.TrimSuffix(baseName(e.File), ".yaml") == m.opt.Profile) {
			return i
		}
		if e.Error == "" && first < 0 {
			first = i
		}
		if e.Matches && e.Error == "" {
			if match >= 0 {
				match = -2 // ambiguous: preselect nothing special
			} else if match == -1 {
				match = i
			}
		}
	}
	if match >= 0 {
		return match
	}
	return max(first, 0)
}

func baseName(p string) string { return p[strings.LastIndex(p, "/")+1:] }

func (m *Model) updateProfile(msg tea.Msg) (tea.Model, tea.Cmd) {
	switch msg := msg.(type) {
	case profileMsg:
		m.busy = ""
		if msg.err != nil {
			m.fail("profile "+msg.entry.File, msg.err)
			return m, nil
		}
		m.prof, m.profEntry = msg.p, msg.entry
		// What was chosen for another profile does not carry over.
		m.typed, m.secrets, m.plan, m.problems, m.planErr = nil, nil, nil, nil, ""
		m.mapping = map[string]string{}
		for k, v := range m.opt.Disks {
			m.mapping[k] = v
		}
		m.status = "press enter again to go on with " + msg.p.Host.Name
		return m, nil
	case tea.KeyMsg:
		switch msg.String() {
		case "up", "k":
			m.profCur = max(0, m.profCur-1)
			m.prof = nil
		case "down", "j":
			m.profCur = min(len(m.entries)-1, m.profCur+1)
			m.prof = nil
		case "esc":
			m.goTo(scrNetwork)
		case "enter":
			if len(m.entries) == 0 {
				return m, nil
			}
			e := m.entries[m.profCur]
			if m.prof != nil && m.profEntry == e {
				m.goTo(scrDisks)
				m.busy = "probing this machine's disks"
				return m, m.probeDisks()
			}
			if e.Error != "" {
				m.status = "this profile does not load: " + e.Error
				return m, nil
			}
			m.busy = "loading " + e.File
			return m, m.loadProfile(e)
		}
	}
	return m, nil
}

func (m *Model) viewProfile() []string {
	from := m.usedSrv
	if from == "" {
		from = "the stick"
	}
	out := []string{m.st.title.Render("Host profiles from " + from)}
	for i, e := range m.entries {
		note := e.Description
		switch {
		case e.Error != "":
			note = m.st.bad.Render("INVALID: ") + e.Error
		case e.Matches:
			note = m.st.ok.Render("matches this machine") + "  " + note
		}
		out = append(out, m.item(i == m.profCur, fmt.Sprintf("%-14s %-6s %-24s %s", e.Name, e.Source, e.File, note)))
	}
	if p := m.prof; p != nil {
		out = append(out, "", m.st.title.Render("Profile "+p.Host.Name))
		out = append(out, summary(p)...)
	}
	return out
}

// summary is a profile in a few lines.
func summary(p *profile.Profile) []string {
	var out []string
	if p.Host.Description != "" {
		out = append(out, "  "+p.Host.Description)
	}
	for i := range p.Disks {
		d := &p.Disks[i]
		need := ""
		if n, err := target.MinimumSize(d); err == nil {
			need = ", needs at least " + profile.HumanBytes(n)
		}
		out = append(out, fmt.Sprintf("  disk %s: %s, %d partitions%s", d.Name, d.Table, len(d.Partitions), need))
	}
	var stack []string
	for _, r := range p.RAID {
		stack = append(stack, "RAID "+r.Name)
	}
	for _, l := range p.LUKS {
		stack = append(stack, "LUKS "+l.Name)
	}
	for _, vg := range p.VolumeGroups {
		stack = append(stack, fmt.Sprintf("LVM %s (%d LVs)", vg.Name, len(vg.LVs)))
	}
	if len(stack) > 0 {
		out = append(out, "  "+strings.Join(stack, ", "))
	}
	var fs []string
	for _, f := range p.Filesystems {
		s := f.Type
		if f.Mount != nil && f.Mount.Path != "" {
			s += " " + f.Mount.Path
		}
		fs = append(fs, s)
	}
	if len(fs) > 0 {
		out = append(out, "  filesystems: "+strings.Join(fs, ", "))
	}
	if s := p.System; s != nil {
		line := fmt.Sprintf("  system: %s, %d packages", s.Distribution, len(s.Packages))
		if p.Bootloader != nil {
			line += ", bootloader " + p.Bootloader.Type
		}
		out = append(out, line)
	}
	if len(p.Repos)+len(p.Datasets) > 0 {
		out = append(out, fmt.Sprintf("  hand-off: %d repos, %d datasets", len(p.Repos), len(p.Datasets)))
	}
	return out
}

func (m *Model) helpProfile() string {
	return keys("↑↓", "choose", "enter", "load / next", "esc", "back", "^C", "shell")
}

// ---- 3. disks ----

func (m *Model) updateDisks(msg tea.Msg) (tea.Model, tea.Cmd) {
	switch msg := msg.(type) {
	case disksMsg:
		m.busy = ""
		if msg.err != nil {
			m.fail("probe disks", msg.err)
			return m, nil
		}
		m.disks = msg.disks
		m.diskCur = min(m.diskCur, max(0, len(m.disks)-1))
		m.busy = "fitting the profile to the disks"
		return m, m.makePlan()
	case planMsg:
		m.busy = ""
		m.plan, m.problems, m.planErr = msg.plan, nil, ""
		var te *target.Error
		switch {
		case errors.As(msg.err, &te):
			m.problems = te.Problems
		case msg.err != nil:
			m.planErr = errText(msg.err)
		}
		if m.plan != nil {
			for _, d := range m.plan.Disks {
				m.mapping[d.Name] = d.Device
			}
		}
		return m, nil
	case tea.KeyMsg:
		pd := m.profileDisks()
		switch msg.String() {
		case "up", "k":
			m.diskCur = max(0, m.diskCur-1)
		case "down", "j":
			m.diskCur = min(len(m.disks)-1, m.diskCur+1)
		case "tab":
			m.pdiskCur = (m.pdiskCur + 1) % max(1, len(pd))
		case " ", "u":
			if len(m.disks) == 0 || len(pd) == 0 {
				return m, nil
			}
			m.mapping[pd[m.pdiskCur]] = m.disks[m.diskCur].Path
			m.busy = "fitting the profile to the disks"
			return m, m.makePlan()
		case "a":
			m.mapping = map[string]string{}
			m.busy = "fitting the profile to the disks"
			return m, m.makePlan()
		case "r":
			m.busy = "probing this machine's disks"
			return m, m.probeDisks()
		case "esc":
			m.goTo(scrProfile)
		case "enter":
			switch {
			case m.plan == nil && len(m.problems) > 0:
				m.status = "refused: choose another disk (space) for the disk marked !"
			case m.plan == nil:
				m.status = "no plan: " + m.planErr
			default:
				m.goTo(scrPlan)
				m.planTop = 0
			}
		}
	}
	return m, nil
}

func (m *Model) profileDisks() []string {
	var out []string
	if m.prof != nil {
		for _, d := range m.prof.Disks {
			out = append(out, d.Name)
		}
	}
	return out
}

func (m *Model) viewDisks() []string {
	out := []string{m.st.title.Render("This machine's disks")}
	if len(m.disks) == 0 {
		out = append(out, "  (none found)")
	}
	for i, d := range m.disks {
		id := strings.TrimSpace(d.Model + " " + d.Serial)
		line := fmt.Sprintf("%-8s %9s  %-24s ", d.Name, profile.HumanBytes(d.Size), clip(id, 24))
		rest := wrap(contents(d), m.w-len(line)-2, strings.Repeat(" ", len(line)+2))
		out = append(out, m.item(i == m.diskCur, line+rest[0]))
		out = append(out, rest[1:]...)
	}
	pds := m.profileDisks()
	head := m.st.title.Render("Profile disk -> device")
	if len(pds) > 1 {
		head += "  (tab: the next profile disk)"
	}
	out = append(out, "", head)
	for i, name := range pds {
		dev := m.mapping[name]
		how := ""
		if m.plan != nil {
			for _, d := range m.plan.Disks {
				if d.Name == name {
					dev, how = d.Device, "("+d.Matched+")"
				}
			}
		}
		if dev == "" {
			dev = "?"
		}
		cur := "  "
		if i == m.pdiskCur && len(pds) > 1 {
			cur = "> "
		}
		mark := m.st.ok.Render("ok")
		for _, p := range m.problems {
			if p.Disk == name {
				mark = m.st.bad.Render("! ")
			}
		}
		if m.plan == nil && len(m.problems) == 0 {
			mark = "  "
		}
		out = append(out, fmt.Sprintf("%s%s %s -> %s %s", cur, mark, name, dev, m.st.dim.Render(how)))
	}
	for _, p := range m.problems {
		out = append(out, wrap("  "+m.st.bad.Render("refused: ")+p.String(), m.w-2, "    ")...)
	}
	if m.planErr != "" {
		out = append(out, wrap("  "+m.st.bad.Render("no plan: ")+m.planErr, m.w-2, "    ")...)
	}
	if m.plan != nil {
		for _, w := range m.plan.Warnings {
			out = append(out, wrap("  "+m.st.warn.Render("warning: ")+w, m.w-2, "    ")...)
		}
	}
	return out
}

func (m *Model) helpDisks() string {
	target := ""
	if pd := m.profileDisks(); len(pd) > 0 {
		target = pd[min(m.pdiskCur, len(pd)-1)]
	}
	return keys("↑↓", "disk", "space", "use for "+target, "a", "auto", "r", "rescan", "enter", "plan", "esc", "back")
}
