package wizard

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	tea "github.com/charmbracelet/bubbletea"

	"github.com/stratahq/strata/profile"
	"github.com/stratahq/strata/restore"
	"github.com/stratahq/strata/restore/plan"
	"github.com/stratahq/strata/restore/probe"
)

// fakes stand for the machine: they record what the wizard asked for.
type fakes struct {
	mu      sync.Mutex
	calls   []string
	ifaces  []Iface
	netErr  error
	entries []Entry
	listErr error
	disks   []probe.Disk
	// restore: the events to send and the error to return, per attempt.
	runs [][]restore.Event
	errs []error
	jobs []Job
}

func (f *fakes) record(format string, a ...any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, fmt.Sprintf(format, a...))
}

func (f *fakes) Interfaces(context.Context) ([]Iface, error) {
	f.record("interfaces")
	return f.ifaces, nil
}

func (f *fakes) DHCP(_ context.Context, iface string) error {
	f.record("dhcp %s", iface)
	return f.netErr
}

func (f *fakes) SetStatic(_ context.Context, iface string, s Static) error {
	f.record("static %s %s gw %s dns %s", iface, s.Addr, s.Gateway, s.DNS)
	return f.netErr
}

func (f *fakes) List(_ context.Context, server string) ([]Entry, error) {
	f.record("list %s", server)
	return f.entries, f.listErr
}

func (f *fakes) Load(_ context.Context, server string, e Entry) (*profile.Profile, error) {
	f.record("load %s", e.File)
	return profile.Load(filepath.Join("..", "examples", e.File))
}

func (f *fakes) Probe(context.Context) ([]probe.Disk, error) {
	f.record("probe")
	return f.disks, nil
}

func (f *fakes) Plan(p *profile.Profile, disks []probe.Disk, mapping map[string]string) (*plan.Plan, error) {
	f.record("plan %v", mapping)
	return plan.Build(p, disks, plan.Options{Disks: mapping})
}

func (f *fakes) Restore(ctx context.Context, j Job, events restore.Handler) error {
	f.mu.Lock()
	n := len(f.jobs)
	f.jobs = append(f.jobs, j)
	f.mu.Unlock()
	if n < len(f.runs) {
		for _, e := range f.runs[n] {
			events(e)
		}
	}
	if n < len(f.errs) {
		return f.errs[n]
	}
	return nil
}

func (f *fakes) Shell() *exec.Cmd { return exec.Command("true") }

func (f *fakes) deps() Deps {
	return Deps{Network: f, Profiles: f, Disks: f, Planner: f, Restorer: f, System: f}
}

// newFakes is a machine with one NIC, a blank 10 GiB disk and the live
// stick, and a server listing the laptop example (matching) and another.
func newFakes() *fakes {
	return &fakes{
		ifaces: []Iface{{Name: "eth0", MAC: "52:54:00:12:34:56", State: "up", Addrs: []string{"10.0.2.15/24"}}},
		entries: []Entry{
			{Name: "bios-msdos", File: "bios-msdos.yaml", Source: "server", Description: "an old BIOS box"},
			{Name: "laptop", File: "laptop-uefi.yaml", Source: "server", Description: "ThinkPad, daily driver", Matches: true},
			{Name: "broken", File: "broken.yaml", Source: "stick", Error: "line 3: unknown key"},
		},
		disks: []probe.Disk{
			{Name: "sda", Path: "/dev/sda", Size: 4 << 30, LogicalSectorSize: 512, PhysicalSectorSize: 512, Transport: "usb", Model: "Stick", Serial: "S1",
				LiveMedium: true, Partitions: []probe.Partition{{Name: "sda1", Path: "/dev/sda1", Number: 1, Start: 1 << 20, Size: 1 << 30,
					Signatures: []probe.Signature{{Type: "vfat", Label: "STRATA"}}}}},
			{Name: "vda", Path: "/dev/vda", Size: 10 << 30, LogicalSectorSize: 512, PhysicalSectorSize: 512, Transport: "virtio", Serial: "strata-main"},
		},
	}
}

var t0 = time.Date(2026, 11, 25, 23, 0, 0, 0, time.UTC)

func init() { tickEvery = time.Microsecond }

// harness runs the model like tea.Program does, but synchronously: each
// command's message is fed back until none is left (ticks are dropped).
type harness struct {
	t   *testing.T
	m   *Model
	f   *fakes
	now time.Time
}

func newHarness(t *testing.T, f *fakes, opt Options) *harness {
	h := &harness{t: t, f: f, now: t0}
	opt.Now = func() time.Time { return h.now }
	h.m = New(context.Background(), f.deps(), opt)
	h.run(h.m.Init())
	return h
}

func (h *harness) run(cmd tea.Cmd) {
	queue := []tea.Cmd{cmd}
	for len(queue) > 0 {
		c := queue[0]
		queue = queue[1:]
		if c == nil {
			continue
		}
		msg := c()
		switch msg := msg.(type) {
		case nil, tickMsg:
			continue
		case tea.BatchMsg:
			queue = append(queue, msg...)
			continue
		case tea.QuitMsg:
			continue
		}
		if strings.HasPrefix(fmt.Sprintf("%T", msg), "cursor.") {
			continue
		}
		_, next := h.m.Update(msg)
		queue = append(queue, next)
	}
}

// send feeds messages (keys) in order, running what they start.
func (h *harness) send(msgs ...tea.Msg) {
	for _, m := range msgs {
		_, cmd := h.m.Update(m)
		h.run(cmd)
	}
}

// keys sends named keys ("enter", "tab", "up") and text ("vda").
func (h *harness) keys(ks ...string) {
	for _, k := range ks {
		h.send(keyMsg(k))
	}
}

func keyMsg(k string) tea.KeyMsg {
	switch k {
	case "enter":
		return tea.KeyMsg{Type: tea.KeyEnter}
	case "tab":
		return tea.KeyMsg{Type: tea.KeyTab}
	case "esc":
		return tea.KeyMsg{Type: tea.KeyEsc}
	case "up":
		return tea.KeyMsg{Type: tea.KeyUp}
	case "down":
		return tea.KeyMsg{Type: tea.KeyDown}
	case "space":
		return tea.KeyMsg{Type: tea.KeySpace, Runes: []rune{' '}}
	case "ctrl+c":
		return tea.KeyMsg{Type: tea.KeyCtrlC}
	}
	return tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune(k)}
}

func (h *harness) screen() screen { return h.m.scr }

func (h *harness) want(s screen) {
	h.t.Helper()
	if h.m.scr != s {
		h.t.Fatalf("screen %s, want %s (status %q)\n%s", screenTitles[h.m.scr], screenTitles[s], h.m.status, h.m.View())
	}
}

func (h *harness) viewHas(subs ...string) {
	h.t.Helper()
	v := h.m.View()
	for _, s := range subs {
		if !strings.Contains(v, s) {
			h.t.Errorf("screen %s lacks %q:\n%s", screenTitles[h.m.scr], s, v)
		}
	}
}

var errBoom = errors.New("boom")
