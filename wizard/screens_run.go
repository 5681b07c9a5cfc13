package wizard

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/charmbracelet/bubbles/textinput"
	tea "github.com/charmbracelet/bubbletea"

	"github.com/stratahq/strata/profile"
	"github.com/stratahq/strata/restore"
)

// ---- 4. plan ----

func (m *Model) updatePlan(msg tea.Msg) (tea.Model, tea.Cmd) {
	k, ok := msg.(tea.KeyMsg)
	if !ok {
		return m, nil
	}
	lines := len(m.planTree())
	page := max(1, m.bodyHeight()-1)
	switch k.String() {
	case "up", "k":
		m.planTop--
	case "down", "j":
		m.planTop++
	case "pgup", "b":
		m.planTop -= page
	case "pgdown", "f", " ":
		m.planTop += page
	case "esc":
		m.goTo(scrDisks)
		return m, nil
	case "enter":
		m.secrets = m.secretFields()
		m.secCur = 0
		if len(m.secrets) == 0 {
			return m, m.toConfirm()
		}
		m.goTo(scrSecrets)
		return m, m.secrets[0].in.Focus()
	}
	m.planTop = max(0, min(m.planTop, lines-page))
	return m, nil
}

func (m *Model) viewPlan() []string {
	all := m.planTree()
	out := []string{m.st.title.Render(fmt.Sprintf("Plan for %s: %d steps", m.plan.Host, len(m.plan.Steps))) + "   " + m.st.bad.Render("ERASE") + " = erased"}
	n := m.bodyHeight() - 1
	top := max(0, min(m.planTop, len(all)-n))
	end := min(len(all), top+n)
	out = append(out, all[top:end]...)
	if end < len(all) {
		out[len(out)-1] = m.st.dim.Render(fmt.Sprintf("  ... %d more lines (down, pgdown)", len(all)-end+1))
	}
	return out
}

func (m *Model) helpPlan() string {
	return keys("↑↓ pgup pgdn", "scroll", "enter", "looks right", "esc", "back")
}

// ---- 5. secrets ----

// needsPrompt: a LUKS key the profile leaves to a person.
func needsPrompt(k profile.Key) bool {
	return k.Prompt || (k.File == "" && k.URL == "" && k.Literal == "")
}

func (m *Model) secretFields() []secret {
	var out []secret
	for _, l := range m.prof.LUKS {
		if !needsPrompt(l.Key) {
			continue
		}
		if _, ok := m.typed[l.Name]; ok {
			continue // typed already (back and forth between screens)
		}
		out = append(out,
			secret{label: "LUKS passphrase for " + l.Name, luks: l.Name, kind: "pass", in: m.newInput("", true)},
			secret{label: "the same again", luks: l.Name, kind: "again", in: m.newInput("", true)})
	}
	if u := m.credURL(); u != "" && m.creds.Len() == 0 {
		url := m.newInput("", false)
		url.SetValue(u)
		out = append(out,
			secret{label: "repositories: URL prefix", kind: "cred-url", in: url},
			secret{label: "user (empty: none)", kind: "cred-user", in: m.newInput("optional", false)},
			secret{label: "password", kind: "cred-pass", in: m.newInput("", true)})
	}
	return out
}

// credURL is the server part of the first remote repo or dataset: where
// credentials would be needed.
func (m *Model) credURL() string {
	var urls []string
	for _, r := range m.prof.Repos {
		urls = append(urls, r.URL)
	}
	for _, d := range m.prof.Datasets {
		urls = append(urls, d.Source)
	}
	for _, u := range urls {
		if i := strings.Index(u, "://"); i > 0 && strings.HasPrefix(u, "http") {
			if j := strings.Index(u[i+3:], "/"); j >= 0 {
				return u[:i+3+j+1]
			}
			return u + "/"
		}
	}
	return ""
}

func (m *Model) updateSecrets(msg tea.Msg) (tea.Model, tea.Cmd) {
	k, ok := msg.(tea.KeyMsg)
	if !ok {
		return m, nil
	}
	switch k.String() {
	case "esc":
		m.goTo(scrPlan)
		return m, nil
	case "tab", "down":
		return m, m.focusSecret(m.secCur + 1)
	case "shift+tab", "up":
		return m, m.focusSecret(m.secCur + len(m.secrets) - 1)
	case "enter":
		if m.secCur < len(m.secrets)-1 {
			return m, m.focusSecret(m.secCur + 1)
		}
		return m.submitSecrets()
	}
	var cmd tea.Cmd
	m.secrets[m.secCur].in, cmd = m.secrets[m.secCur].in.Update(msg)
	return m, cmd
}

func (m *Model) focusSecret(i int) tea.Cmd {
	return refocus(func(i int) *textinput.Model { return &m.secrets[i].in }, len(m.secrets), &m.secCur, i)
}

// submitSecrets checks the fields: each passphrase typed the same twice
// and not empty; a user needs a password. On a mismatch both fields are
// cleared and asked again.
func (m *Model) submitSecrets() (tea.Model, tea.Cmd) {
	typed := map[string][]byte{}
	var credURL, user, pass string
	for i := 0; i < len(m.secrets); i++ {
		s := m.secrets[i]
		switch s.kind {
		case "pass":
			a, b := s.in.Value(), m.secrets[i+1].in.Value()
			if a == "" {
				m.status = "the passphrase for " + s.luks + " is empty"
				return m, m.focusSecret(i)
			}
			if a != b {
				m.secrets[i].in.Reset()
				m.secrets[i+1].in.Reset()
				m.status = "the two passphrases for " + s.luks + " differ: type them again"
				return m, m.focusSecret(i)
			}
			typed[s.luks] = []byte(a)
			i++
		case "cred-url":
			credURL = strings.TrimSpace(s.in.Value())
		case "cred-user":
			user = strings.TrimSpace(s.in.Value())
		case "cred-pass":
			pass = s.in.Value()
			if user != "" && pass == "" {
				m.status = "a user for " + credURL + " needs a password"
				return m, m.focusSecret(i)
			}
		}
	}
	if m.typed == nil {
		m.typed = map[string][]byte{}
	}
	for k, v := range typed {
		m.typed[k] = v
	}
	if user != "" && credURL != "" {
		m.creds = m.creds.WithBasic(credURL, user, pass)
	}
	return m, m.toConfirm()
}

func (m *Model) viewSecrets() []string {
	out := []string{m.st.title.Render("Secrets"), "  Nothing typed here is shown, logged or written to the disks.", ""}
	for i, s := range m.secrets {
		out = append(out, fmt.Sprintf("  %-32s %s", s.label, m.field(s.in, i == m.secCur)))
	}
	return out
}

func (m *Model) helpSecrets() string {
	return keys("type", "masked", "tab", "next field", "enter", "next / done", "esc", "back")
}

// ---- 6. confirm ----

func (m *Model) toConfirm() tea.Cmd {
	var names []string
	for _, d := range m.plan.Disks {
		names = append(names, baseName(d.Device))
	}
	m.confirmWant = strings.Join(names, " ")
	m.confirm.Reset()
	m.goTo(scrConfirm)
	return m.confirm.Focus()
}

func (m *Model) updateConfirm(msg tea.Msg) (tea.Model, tea.Cmd) {
	k, ok := msg.(tea.KeyMsg)
	if !ok {
		return m, nil
	}
	switch k.String() {
	case "esc":
		if len(m.secrets) > 0 {
			m.goTo(scrSecrets)
		} else {
			m.goTo(scrPlan)
		}
		return m, nil
	case "enter":
		got := strings.Join(strings.Fields(m.confirm.Value()), " ")
		if got != m.confirmWant {
			m.status = fmt.Sprintf("%q is not %q: nothing was written", got, m.confirmWant)
			m.confirm.Reset()
			return m, nil
		}
		m.goTo(scrProgress)
		m.initSteps()
		m.started = m.opt.Now()
		return m, m.startRun()
	}
	var cmd tea.Cmd
	m.confirm, cmd = m.confirm.Update(msg)
	return m, cmd
}

func (m *Model) viewConfirm() []string {
	out := []string{m.st.bad.Render("This erases everything on:")}
	probed := map[string]string{}
	for _, d := range m.disks {
		probed[d.Path] = contents(d)
	}
	for _, d := range m.plan.Disks {
		id := strings.TrimSpace(d.Model + " " + d.Serial)
		out = append(out, fmt.Sprintf("  %-10s %s  %s  (profile disk %s)", d.Device, profile.HumanBytes(d.Size), id, d.Name))
		if c := probed[d.Device]; c != "" {
			out = append(out, "    now: "+c)
		}
	}
	what := fmt.Sprintf("the disk's name (%s)", m.st.key.Render(m.confirmWant))
	if len(m.plan.Disks) > 1 {
		what = fmt.Sprintf("the disks' names (%s), separated by spaces,", m.st.key.Render(m.confirmWant))
	}
	out = append(out, "")
	out = append(out, wrap(fmt.Sprintf("To restore %s, type %s and press enter:", m.plan.Host, what), m.w-2, "")...)
	out = append(out, "  "+m.field(m.confirm, true))
	return out
}

func (m *Model) helpConfirm() string {
	return keys("type", "disk name", "enter", "erase and restore", "esc", "back", "^C", "shell")
}

// ---- 7. progress ----

func (m *Model) initSteps() {
	m.steps, m.stepIdx = nil, map[string]int{}
	for _, s := range m.plan.Steps {
		m.stepIdx[s.ID] = len(m.steps)
		m.steps = append(m.steps, stepLine{id: s.ID, summary: s.Summary})
	}
}

func (m *Model) step(e restore.Event) *stepLine {
	i, ok := m.stepIdx[e.Step]
	if !ok {
		i = len(m.steps)
		m.stepIdx[e.Step] = i
		m.steps = append(m.steps, stepLine{id: e.Step})
	}
	if e.Summary != "" {
		m.steps[i].summary = e.Summary
	}
	return &m.steps[i]
}

func (m *Model) updateProgress(msg tea.Msg) (tea.Model, tea.Cmd) {
	switch msg := msg.(type) {
	case eventMsg:
		m.event(msg.ev)
		return m, msg.stream.next()
	case runDoneMsg:
		m.running = false
		m.finished = m.opt.Now()
		if msg.err == nil {
			m.result.Restored = true
			m.goTo(scrDone)
			return m, nil
		}
		f := &failure{err: msg.err, message: errText(msg.err)}
		for _, s := range m.steps {
			if s.state == stateFailed {
				f.step, f.message = s.id, s.note
				break
			}
		}
		_, f.canSkip = skippable[f.step]
		m.failure = f
		return m, nil
	case shellDoneMsg:
		if msg.err != nil {
			m.fail("shell", msg.err)
		}
		return m, nil
	case tea.KeyMsg:
		switch msg.String() {
		case "l":
			m.showLog = !m.showLog
			m.logTop = 0
			return m, nil
		case "up", "k":
			m.logTop = min(m.logTop+1, max(0, len(m.logs)-1))
			return m, nil
		case "down", "j":
			m.logTop = max(0, m.logTop-1)
			return m, nil
		}
		if m.failure == nil {
			return m, nil
		}
		switch msg.String() {
		case "r":
			m.status = "retrying: finished steps are skipped"
			m.keepDone()
			return m, m.startRun()
		case "s":
			if !m.failure.canSkip {
				m.status = m.failure.step + " cannot be skipped: the machine would not boot without it"
				return m, nil
			}
			m.skip[m.failure.step] = "skipped by the user: " + skippable[m.failure.step]
			m.status = "skipping " + m.failure.step
			m.keepDone()
			return m, m.startRun()
		case "h":
			if m.deps.System == nil {
				return m, nil
			}
			return m, tea.ExecProcess(m.deps.System.Shell(), func(err error) tea.Msg { return shellDoneMsg{err} })
		case "a":
			m.result.Err = m.failure.err
			m.goTo(scrDone)
			return m, nil
		}
	}
	return m, nil
}

// keepDone: stages a failed attempt finished need not run again (their
// work is on the disks); the layer steps check their own state anyway.
func (m *Model) keepDone() {
	layers := map[string]bool{}
	for _, s := range m.plan.Steps {
		layers[s.ID] = true
	}
	for _, s := range m.steps {
		if s.state == stateDone && !layers[s.id] && s.id != "close" && s.id != "system:configure" {
			m.skip[s.id] = "done in an earlier attempt"
		}
	}
}

func (m *Model) event(e restore.Event) {
	switch e.Kind {
	case restore.StepStarted:
		s := m.step(e)
		s.state, s.note = stateRunning, ""
		m.prog = progress{step: e.Step}
	case restore.Progress:
		p := &m.prog
		if p.step != e.Step || p.t0.IsZero() {
			*p = progress{step: e.Step, t0: e.Time, b0: e.Bytes}
		}
		p.bytes, p.of, p.last = e.Bytes, e.Of, e.Time
	case restore.Log:
		for _, l := range strings.Split(e.Message, "\n") {
			m.logs = append(m.logs, l)
		}
		if len(m.logs) > 1000 {
			m.logs = m.logs[len(m.logs)-1000:]
		}
	case restore.StepDone:
		m.step(e).state = stateDone
	case restore.StepSkipped:
		s := m.step(e)
		s.state, s.note = stateSkipped, e.Message
	case restore.StepFailed:
		s := m.step(e)
		if s.state != stateFailed {
			s.state, s.note = stateFailed, e.Message
		}
		m.logs = append(m.logs, "FAILED "+e.Step+": "+e.Message)
	}
}

func (m *Model) viewProgress() []string {
	now := m.opt.Now()
	if !m.running && !m.finished.IsZero() {
		now = m.finished
	}
	head := fmt.Sprintf("Restoring %s onto %s  attempt %d  %s", m.plan.Host, m.confirmWant, m.attempt, clock(now.Sub(m.started)))
	out := []string{m.st.title.Render(head)}
	var tail []string
	hasBar := m.prog.of > 0 && m.running
	if p := m.prog; hasBar {
		tail = append(tail, "       "+m.bar(p))
	}
	if f := m.failure; f != nil {
		tail = append(tail, m.st.bad.Render("FAILED: "+f.step))
		tail = append(tail, wrap("  "+f.message, m.w-2, "  ")...)
		skip := "s skip (not possible here)"
		if f.canSkip {
			skip = "s skip: " + skippable[f.step]
		}
		tail = append(tail, wrap("  r retry · "+skip+" · h shell · a abort", m.w-2, "  ")...)
	}
	if m.showLog {
		// The log goes between the bar and the error, its newest line last.
		n := max(3, (m.bodyHeight()-len(tail))/2)
		end := max(0, len(m.logs)-m.logTop)
		start := max(0, end-n)
		pane := append([]string{m.st.dim.Render(fmt.Sprintf("---- log (%d lines, ↑↓ scroll) ----", len(m.logs)))}, m.logs[start:end]...)
		at := 0
		if hasBar {
			at = 1
		}
		tail = append(append(append([]string{}, tail[:at]...), pane...), tail[at:]...)
	}
	room := max(1, m.bodyHeight()-1-len(tail))
	// A window of steps around the current one.
	cur := 0
	for i, s := range m.steps {
		if s.state != statePending {
			cur = i
		}
	}
	top := max(0, min(cur-room/2, len(m.steps)-room))
	for i := top; i < min(len(m.steps), top+room); i++ {
		s := m.steps[i]
		line := fmt.Sprintf("%s %3d %s  %s", m.st.mark(s.state), i+1, s.id, m.st.dim.Render(s.summary))
		if s.note != "" && s.state == stateSkipped {
			line += m.st.dim.Render(" (" + s.note + ")")
		}
		out = append(out, line)
	}
	return append(out, tail...)
}

// bar is a progress bar with bytes, rate and estimate.
func (m *Model) bar(p progress) string {
	frac := min(1, float64(p.bytes)/float64(p.of))
	s := fmt.Sprintf(" %3d%%  %s of %s", int(frac*100), profile.HumanBytes(p.bytes), profile.HumanBytes(p.of))
	if d := p.last.Sub(p.t0).Seconds(); d > 0 && p.bytes > p.b0 {
		rate := float64(p.bytes-p.b0) / d
		s += fmt.Sprintf("  %s/s", profile.HumanBytes(int64(rate)))
		if left := p.of - p.bytes; left > 0 {
			s += "  " + clock(time.Duration(float64(left)/rate*float64(time.Second))) + " left"
		}
	}
	// The bar takes what the numbers leave of the line.
	width := max(10, min(40, m.w-9-len(s)))
	n := int(frac * float64(width))
	return "[" + strings.Repeat(m.st.barFull, n) + strings.Repeat(m.st.barEmpty, width-n) + "]" + s
}

func clock(d time.Duration) string {
	d = d.Round(time.Second)
	if d >= time.Hour {
		return fmt.Sprintf("%d:%02d:%02d", int(d.Hours()), int(d.Minutes())%60, int(d.Seconds())%60)
	}
	return fmt.Sprintf("%02d:%02d", int(d.Minutes()), int(d.Seconds())%60)
}

func (m *Model) helpProgress() string {
	if m.failure != nil {
		return keys("r", "retry", "s", "skip", "h", "shell", "a", "abort", "l", "log")
	}
	return keys("l", "log", "↑↓", "scroll log", "", "the restore runs; wait")
}

// ---- 8. done ----

func (m *Model) updateDone(msg tea.Msg) (tea.Model, tea.Cmd) {
	k, ok := msg.(tea.KeyMsg)
	if !ok {
		return m, nil
	}
	switch k.String() {
	case "r":
		return m.finish("reboot")
	case "p":
		return m.finish("poweroff")
	case "s", "q":
		return m.finish("shell")
	}
	return m, nil
}

func (m *Model) viewDone() []string {
	var out []string
	if m.result.Restored {
		out = append(out, m.st.ok.Render("The restore of "+m.plan.Host+" is done."))
	} else {
		out = append(out, m.st.bad.Render("The restore of "+m.plan.Host+" was aborted."))
		out = append(out, wrap("  "+errText(m.result.Err), m.w-2, "  ")...)
	}
	count := map[stepState]int{}
	for _, s := range m.steps {
		count[s.state]++
	}
	out = append(out, fmt.Sprintf("  took %s (%d attempts), %s to %s", clock(m.finished.Sub(m.started)), m.attempt, m.started.Format("15:04:05"), m.finished.Format("15:04:05")))
	out = append(out, fmt.Sprintf("  disks: %s", m.confirmWant))
	out = append(out, fmt.Sprintf("  steps: %d done, %d skipped, %d failed, %d not run", count[stateDone], count[stateSkipped], count[stateFailed], count[statePending]+count[stateRunning]))
	var skipped []string
	for id, why := range m.skip {
		if strings.HasPrefix(why, "skipped by the user") {
			skipped = append(skipped, id)
		}
	}
	sort.Strings(skipped)
	out = append(out, "", m.st.title.Render("Next"))
	if m.result.Restored {
		out = append(out, "  - remove the live medium and reboot into the restored system")
		for _, l := range m.prof.LUKS {
			out = append(out, "  - at boot, type the passphrase of "+l.Name)
		}
		for _, id := range skipped {
			out = append(out, wrap("  - you skipped "+id+": "+skippable[id], m.w-2, "    ")...)
		}
	} else {
		out = append(out, "  - the disks are partly written; start the wizard again to resume:",
			"    finished steps are skipped. The log is in the shell: "+"/run/strata")
	}
	return out
}

func (m *Model) helpDone() string {
	return keys("r", "reboot", "p", "power off", "s", "shell")
}
