package wizard

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/charmbracelet/bubbles/cursor"
	"github.com/charmbracelet/bubbles/textinput"
	tea "github.com/charmbracelet/bubbletea"

	"github.com/stratahq/strata/handoff/creds"
	"github.com/stratahq/strata/profile"
	"github.com/stratahq/strata/restore"
	"github.com/stratahq/strata/restore/plan"
	"github.com/stratahq/strata/restore/probe"
	"github.com/stratahq/strata/restore/target"
)

type screen int

const (
	scrNetwork screen = iota
	scrProfile
	scrDisks
	scrPlan
	scrSecrets
	scrConfirm
	scrProgress
	scrDone
)

var screenTitles = [...]string{"Network", "Host profile", "Disks", "Plan", "Secrets", "Confirm", "Restore", "Done"}

// Options preset the wizard, from the kernel command line or the CLI.
type Options struct {
	Server  string            // file server URL, prefilled
	Profile string            // host profile to preselect ("" or "auto": the one matching this machine)
	Disks   map[string]string // profile disk name → device, preselected
	Creds   *creds.Store      // credentials already loaded (strata.credentials)
	Style   Style
	// Now is the clock (tests fix it).
	Now func() time.Time
}

// Result is how the wizard ended.
type Result struct {
	// Action is what the user chose last: "reboot", "poweroff" or "shell".
	Action   string
	Restored bool  // the restore finished
	Err      error // the restore's error when it was aborted
}

// Model is the wizard's state. Create it with New.
type Model struct {
	ctx  context.Context
	deps Deps
	opt  Options
	st   Style
	w, h int
	scr  screen

	status string // one line: what went wrong, or what happens
	busy   string // a command is running: what it does

	// network
	ifaces   []Iface
	netCur   int
	netFocus int // 0: interfaces, 1: server URL
	server   textinput.Model
	static   []textinput.Model // non-nil: the static address form for ifaces[netCur]
	staticAt int

	// host profile
	entries   []Entry
	profCur   int
	prof      *profile.Profile
	profEntry Entry
	usedSrv   string // the server the entries came from

	// disks
	disks    []probe.Disk
	diskCur  int
	pdiskCur int
	mapping  map[string]string
	problems []target.Problem
	planErr  string
	plan     *plan.Plan

	// plan
	planTop int

	// secrets
	secrets []secret
	secCur  int

	// confirm
	confirm     textinput.Model
	confirmWant string

	// progress
	steps    []stepLine
	stepIdx  map[string]int
	logs     []string
	showLog  bool
	logTop   int // lines scrolled back from the end
	prog     progress
	failure  *failure
	skip     map[string]string
	running  bool
	attempt  int
	started  time.Time
	finished time.Time
	typed    map[string][]byte
	creds    *creds.Store

	result Result
	quit   bool
}

// secret is one masked field of the secrets screen.
type secret struct {
	label string
	luks  string // LUKS volume, or "" for credentials
	kind  string // "pass", "again", "cred-url", "cred-user", "cred-pass"
	in    textinput.Model
}

type stepState int

const (
	statePending stepState = iota
	stateRunning
	stateDone
	stateSkipped
	stateFailed
)

type stepLine struct {
	id, summary, note string
	state             stepState
}

// progress is the current transfer of a long step.
type progress struct {
	step      string
	bytes, of int64
	t0        time.Time
	b0        int64
	last      time.Time
}

// failure is a failed run, with the user's choices.
type failure struct {
	step, message string
	err           error
	canSkip       bool
}

// skippable are stages the restored machine boots without: configs and
// datasets can be fetched again later with strata handoff, packages with
// the package manager. Everything else is needed to boot.
var skippable = map[string]string{
	"handoff":         "configs and datasets: run strata handoff after the first boot",
	"system:packages": "the package list: install it with the package manager after the first boot",
}

// New makes the wizard's model.
func New(ctx context.Context, deps Deps, opt Options) *Model {
	if opt.Now == nil {
		opt.Now = time.Now
	}
	m := &Model{ctx: ctx, deps: deps, opt: opt, st: opt.Style, w: 80, h: 24, mapping: map[string]string{}, skip: map[string]string{}, creds: opt.Creds}
	if m.st.name == "" {
		m.st = PlainStyle()
	}
	for k, v := range opt.Disks {
		m.mapping[k] = v
	}
	m.server = m.newInput("http://SERVER:PORT", false)
	m.server.SetValue(opt.Server)
	m.server.CharLimit = 200
	m.confirm = m.newInput("", false)
	if opt.Server == "" {
		m.netFocus = 1
		m.server.Focus()
	}
	return m
}

func (m *Model) newInput(placeholder string, masked bool) textinput.Model {
	in := textinput.New()
	in.Placeholder = placeholder
	in.Prompt = ""
	in.Width = 36
	in.Cursor.SetMode(cursor.CursorStatic) // a steady cursor: blinking redraws a serial line twice a second
	in.TextStyle = m.st.input
	in.PlaceholderStyle = m.st.dim
	if masked {
		in.EchoMode = textinput.EchoPassword
		in.EchoCharacter = '*'
	}
	return in
}

// Result reports how the wizard ended, after the program returned.
func (m *Model) Result() Result { return m.result }

// Init starts reading the interfaces.
func (m *Model) Init() tea.Cmd {
	m.busy = "reading the network interfaces"
	return m.readIfaces()
}

// ---- messages ----

type ifacesMsg struct {
	ifaces []Iface
	err    error
}

type netMsg struct {
	what string
	err  error
}

type entriesMsg struct {
	server  string
	entries []Entry
	err     error
}

type profileMsg struct {
	entry Entry
	p     *profile.Profile
	err   error
}

type disksMsg struct {
	disks []probe.Disk
	err   error
}

type planMsg struct {
	plan *plan.Plan
	err  error
}

type eventMsg struct {
	ev     restore.Event
	stream *stream
}

type runDoneMsg struct{ err error }

type shellDoneMsg struct{ err error }

type tickMsg time.Time

// ---- commands: all I/O happens in these ----

func (m *Model) readIfaces() tea.Cmd {
	ctx, n := m.ctx, m.deps.Network
	return func() tea.Msg {
		ifs, err := n.Interfaces(ctx)
		return ifacesMsg{ifs, err}
	}
}

func (m *Model) dhcp(iface string) tea.Cmd {
	ctx, n := m.ctx, m.deps.Network
	return func() tea.Msg { return netMsg{"DHCP on " + iface, n.DHCP(ctx, iface)} }
}

func (m *Model) setStatic(iface string, s Static) tea.Cmd {
	ctx, n := m.ctx, m.deps.Network
	return func() tea.Msg { return netMsg{"static address on " + iface, n.SetStatic(ctx, iface, s)} }
}

func (m *Model) listProfiles(server string) tea.Cmd {
	ctx, p := m.ctx, m.deps.Profiles
	return func() tea.Msg {
		es, err := p.List(ctx, server)
		return entriesMsg{server, es, err}
	}
}

func (m *Model) loadProfile(e Entry) tea.Cmd {
	ctx, p, srv := m.ctx, m.deps.Profiles, m.usedSrv
	return func() tea.Msg {
		pr, err := p.Load(ctx, srv, e)
		return profileMsg{e, pr, err}
	}
}

func (m *Model) probeDisks() tea.Cmd {
	ctx, d := m.ctx, m.deps.Disks
	return func() tea.Msg {
		ds, err := d.Probe(ctx)
		return disksMsg{ds, err}
	}
}

func (m *Model) makePlan() tea.Cmd {
	pl, p, disks := m.deps.Planner, m.prof, m.disks
	mapping := map[string]string{}
	for k, v := range m.mapping {
		mapping[k] = v
	}
	return func() tea.Msg {
		r, err := pl.Plan(p, disks, mapping)
		return planMsg{r, err}
	}
}

// stream carries one run's events to the model, in order.
type stream struct {
	events chan restore.Event
	done   chan error
}

func (s *stream) next() tea.Cmd {
	return func() tea.Msg {
		e, ok := <-s.events
		if !ok {
			return runDoneMsg{<-s.done}
		}
		return eventMsg{e, s}
	}
}

func (m *Model) startRun() tea.Cmd {
	m.attempt++
	m.running = true
	m.failure = nil
	m.prog = progress{}
	skip := map[string]string{}
	for k, v := range m.skip {
		skip[k] = v
	}
	srv := m.profEntry.Base
	if srv == "" {
		srv = m.usedSrv
	}
	job := Job{Profile: m.prof, Plan: m.plan, Server: srv, Keys: typedKeys{typed: m.typed, rest: restore.NewProfileKeys(m.prof)}, Creds: m.creds, Skip: skip}
	s := &stream{events: make(chan restore.Event, 256), done: make(chan error, 1)}
	ctx, r := m.ctx, m.deps.Restorer
	launch := func() tea.Msg {
		go func() {
			s.done <- r.Restore(ctx, job, restore.Channel(s.events))
			close(s.events)
		}()
		return nil
	}
	return tea.Batch(launch, s.next(), tick())
}

// tickEvery redraws the elapsed time while the restore runs.
var tickEvery = time.Second

func tick() tea.Cmd {
	return tea.Tick(tickEvery, func(t time.Time) tea.Msg { return tickMsg(t) })
}

// ---- Update ----

// Update handles one message; it never does I/O itself.
func (m *Model) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	switch msg := msg.(type) {
	case tea.WindowSizeMsg:
		// A serial console reports 0x0: keep 80x24 then.
		if msg.Width > 0 && msg.Height > 0 {
			m.w, m.h = msg.Width, msg.Height
		}
		return m, nil
	case tickMsg:
		if m.running {
			return m, tick()
		}
		return m, nil
	case tea.KeyMsg:
		if msg.String() == "ctrl+c" && !m.running && m.failure == nil && m.scr != scrProgress {
			return m.finish("shell")
		}
		if msg.String() == "ctrl+l" {
			// Kernel messages on a console overwrite the screen: redraw it.
			return m, tea.ClearScreen
		}
		if m.busy != "" && m.scr != scrProgress {
			return m, nil // one command at a time; keys typed meanwhile are dropped
		}
	}
	switch m.scr {
	case scrNetwork:
		return m.updateNetwork(msg)
	case scrProfile:
		return m.updateProfile(msg)
	case scrDisks:
		return m.updateDisks(msg)
	case scrPlan:
		return m.updatePlan(msg)
	case scrSecrets:
		return m.updateSecrets(msg)
	case scrConfirm:
		return m.updateConfirm(msg)
	case scrProgress:
		return m.updateProgress(msg)
	case scrDone:
		return m.updateDone(msg)
	}
	return m, nil
}

func (m *Model) finish(action string) (tea.Model, tea.Cmd) {
	m.result.Action = action
	m.quit = true
	return m, tea.Quit
}

func (m *Model) goTo(s screen) {
	m.scr = s
	m.status = ""
}

func errText(err error) string {
	var te *target.Error
	if errors.As(err, &te) {
		var out []string
		for _, p := range te.Problems {
			out = append(out, p.String())
		}
		return strings.Join(out, "; ")
	}
	return strings.ReplaceAll(err.Error(), "\n", "; ")
}

func (m *Model) fail(what string, err error) {
	m.status = fmt.Sprintf("%s: %s", what, errText(err))
}
