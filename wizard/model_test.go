package wizard

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	tea "github.com/charmbracelet/bubbletea"

	"github.com/stratahq/strata/restore"
	"github.com/stratahq/strata/restore/probe"
)

// toPlan walks from the network screen to the plan screen with the
// laptop profile on the blank disk.
func toPlan(t *testing.T, f *fakes) *harness {
	h := newHarness(t, f, Options{Server: "http://10.0.2.2:8080"})
	h.want(scrNetwork)
	h.keys("enter")
	h.want(scrProfile)
	if h.m.profCur != 1 {
		t.Fatalf("preselected %d, want the matching laptop (1)", h.m.profCur)
	}
	h.keys("enter") // load
	h.viewHas("Profile laptop", "LUKS cryptroot", "press enter again")
	h.keys("enter")
	h.want(scrDisks)
	if h.m.plan == nil {
		t.Fatalf("no plan: %v %s\n%s", h.m.problems, h.m.planErr, h.m.View())
	}
	h.keys("enter")
	h.want(scrPlan)
	return h
}

func events(step string, kinds ...restore.EventKind) []restore.Event {
	var out []restore.Event
	for _, k := range kinds {
		e := restore.Event{Kind: k, Step: step, Time: t0}
		if k == restore.StepFailed {
			e.Message = "git clone https://files.example.org/git/etc.git: exit status 128: fatal: unable to access"
		}
		out = append(out, e)
	}
	return out
}

func TestHappyPath(t *testing.T) {
	f := newFakes()
	f.runs = [][]restore.Event{append(events("wipe:main", restore.StepStarted, restore.StepDone),
		events("handoff", restore.StepStarted, restore.StepDone)...)}
	h := toPlan(t, f)
	h.viewHas("main /dev/vda", "ERASE", "cryptroot", "vg0", "/home")
	h.keys("enter")
	h.want(scrSecrets)
	h.keys("secret", "enter", "secret", "enter", "enter", "enter", "enter")
	h.want(scrConfirm)
	h.viewHas("type the disk's name (vda)")
	h.keys("vda", "enter")
	h.want(scrDone)
	h.viewHas("The restore of laptop is done.", "at boot, type the passphrase of cryptroot")
	if len(f.jobs) != 1 {
		t.Fatalf("%d runs", len(f.jobs))
	}
	j := f.jobs[0]
	pw, err := j.Keys.Passphrase(t.Context(), "cryptroot", true)
	if err != nil || string(pw) != "secret" {
		t.Errorf("passphrase %q %v", pw, err)
	}
	if j.Server != "http://10.0.2.2:8080" || j.Plan.Disks[0].Device != "/dev/vda" {
		t.Errorf("job %+v", j)
	}
	h.keys("p")
	if r := h.m.Result(); r.Action != "poweroff" || !r.Restored {
		t.Errorf("result %+v", r)
	}
	want := []string{"interfaces", "list http://10.0.2.2:8080", "load laptop-uefi.yaml", "probe", "plan map[]"}
	if strings.Join(f.calls, "|") != strings.Join(want, "|") {
		t.Errorf("calls %q, want %q", f.calls, want)
	}
}

func TestNetwork(t *testing.T) {
	f := newFakes()
	h := newHarness(t, f, Options{})
	// No server given: the URL field has the focus; enter without one
	// looks on the stick alone, and says why there is nothing.
	f.listErr = errors.New("no profile source: no strata.server= and no medium labelled STRATA")
	h.keys("enter")
	h.want(scrNetwork)
	if !strings.Contains(h.m.status, "no profile source") {
		t.Errorf("status %q", h.m.status)
	}
	f.listErr = nil
	h.keys("ftp://x", "enter")
	if !strings.Contains(h.m.status, "is not an http(s) URL") {
		t.Errorf("status %q", h.m.status)
	}
	h.keys("tab", "d")
	h.keys("s", "10.0.2.50/24", "tab", "10.9.9.9", "enter")
	if !strings.Contains(h.m.status, "gateway") {
		t.Errorf("bad gateway accepted: %q", h.m.status)
	}
	h.keys("tab", "tab", "tab") // back on the gateway field
	h.m.static[1].SetValue("10.0.2.2")
	h.keys("enter")
	want := []string{"interfaces", "list ", "dhcp eth0", "interfaces", "static eth0 10.0.2.50/24 gw 10.0.2.2 dns invalid IP", "interfaces"}
	if strings.Join(f.calls, "|") != strings.Join(want, "|") {
		t.Errorf("calls %q, want %q", f.calls, want)
	}
	f.netErr = errors.New("no lease")
	h.keys("d")
	if !strings.Contains(h.m.status, "DHCP on eth0: no lease") {
		t.Errorf("status %q", h.m.status)
	}
	// A server whose index cannot be read: stay, say why.
	f.listErr = errors.New("connection refused")
	h.keys("tab")
	h.m.server.SetValue("http://10.0.2.2:1")
	h.keys("enter")
	h.want(scrNetwork)
	if !strings.Contains(h.m.status, "connection refused") {
		t.Errorf("status %q", h.m.status)
	}
	if _, cmd := h.m.Update(tea.KeyMsg{Type: tea.KeyCtrlL}); cmd == nil || fmt.Sprintf("%T", cmd()) != "tea.clearScreenMsg" {
		t.Error("ctrl+l does not redraw")
	}
	h.keys("ctrl+c")
	if h.m.Result().Action != "shell" {
		t.Errorf("ctrl+c: %+v", h.m.Result())
	}
}

func TestProfileScreen(t *testing.T) {
	f := newFakes()
	h := newHarness(t, f, Options{Server: "http://s", Profile: "bios-msdos"})
	h.keys("enter")
	h.want(scrProfile)
	if h.m.profCur != 0 {
		t.Errorf("strata.profile=bios-msdos preselects %d", h.m.profCur)
	}
	h.keys("down", "down", "enter")
	h.want(scrProfile)
	if !strings.Contains(h.m.status, "does not load: line 3") {
		t.Errorf("invalid profile: %q", h.m.status)
	}
	h.keys("up", "enter")
	h.viewHas("Profile laptop")
	h.keys("up") // moving on forgets the loaded one
	if h.m.prof != nil {
		t.Error("profile kept after moving")
	}
	h.keys("esc")
	h.want(scrNetwork)
}

func TestDiskRefusals(t *testing.T) {
	f := newFakes()
	f.disks[1].Mounts = []probe.Mount{{Device: "vda1", Point: "/mnt", FSType: "ext4"}}
	h := newHarness(t, f, Options{Server: "http://s"})
	h.keys("enter", "enter", "enter")
	h.want(scrDisks)
	if h.m.plan != nil || len(h.m.problems) == 0 {
		t.Fatalf("a mounted disk was accepted: %v", h.m.problems)
	}
	h.viewHas("refused:", "is in use")
	h.keys("enter")
	h.want(scrDisks)
	// The live stick, chosen by hand: refused with the reason.
	h.keys("up", "space")
	h.viewHas("refused:", "/dev/sda is the strata live medium")
	if h.m.plan != nil {
		t.Fatal("the live medium was accepted")
	}
	// Unmounted and rescanned, vda is fine again when chosen.
	f.disks[1].Mounts = nil
	h.keys("r", "down", "space")
	if h.m.plan == nil {
		t.Fatalf("vda refused: %v %s", h.m.problems, h.m.planErr)
	}
	h.viewHas("ok main -> /dev/vda")
	h.keys("enter")
	h.want(scrPlan)
}

func TestPassphraseMismatch(t *testing.T) {
	f := newFakes()
	h := toPlan(t, f)
	h.keys("enter")
	h.keys("pw-first", "enter", "pw-second", "enter", "enter", "enter", "enter")
	h.want(scrSecrets)
	if !strings.Contains(h.m.status, "differ: type them again") || h.m.secCur != 0 || h.m.secrets[0].in.Value() != "" || h.m.secrets[1].in.Value() != "" {
		t.Fatalf("mismatch: status %q, field %d", h.m.status, h.m.secCur)
	}
	if v := h.m.View(); strings.Contains(v, "pw-first") || strings.Contains(v, "pw-second") {
		t.Errorf("a passphrase shows:\n%s", v)
	}
	h.keys("enter", "enter", "enter", "enter", "enter")
	if !strings.Contains(h.m.status, "is empty") {
		t.Errorf("empty passphrase: %q", h.m.status)
	}
	// A user without password is refused; with one, credentials are kept.
	h.keys("pw", "enter", "pw", "enter", "enter", "me", "enter", "enter")
	if !strings.Contains(h.m.status, "needs a password") {
		t.Errorf("user without password: %q", h.m.status)
	}
	h.keys("hunter2", "enter")
	h.want(scrConfirm)
	if h.m.creds.Len() != 1 || string(h.m.typed["cryptroot"]) != "pw" {
		t.Errorf("creds %d, typed %q", h.m.creds.Len(), h.m.typed)
	}
	h.keys("esc")
	h.want(scrSecrets)
}

func TestConfirmTypedWrong(t *testing.T) {
	f := newFakes()
	h := toPlan(t, f)
	h.keys("enter", "pw", "enter", "pw", "enter", "enter", "enter", "enter")
	h.want(scrConfirm)
	h.keys("sda", "enter")
	h.want(scrConfirm)
	if !strings.Contains(h.m.status, `"sda" is not "vda": nothing was written`) || len(f.jobs) != 0 {
		t.Fatalf("status %q, %d runs", h.m.status, len(f.jobs))
	}
	if h.m.confirm.Value() != "" {
		t.Error("the wrong name stays in the field")
	}
	h.keys("esc")
	h.want(scrSecrets)
}

// fail runs to the progress screen with a restore whose first attempt
// fails at step.
func failAt(t *testing.T, step string, more ...[]restore.Event) (*harness, *fakes) {
	f := newFakes()
	f.runs = append([][]restore.Event{append(append(events("wipe:main", restore.StepStarted, restore.StepDone),
		events("system:image", restore.StepStarted, restore.StepDone)...), events(step, restore.StepStarted, restore.StepFailed)...)}, more...)
	f.errs = []error{fmt.Errorf("%s: %w", step, errBoom)}
	h := toPlan(t, f)
	h.keys("enter", "pw", "enter", "pw", "enter", "enter", "enter", "enter", "vda", "enter")
	h.want(scrProgress)
	if h.m.failure == nil || h.m.failure.step != step {
		t.Fatalf("failure %+v", h.m.failure)
	}
	return h, f
}

func TestErrorRetry(t *testing.T) {
	h, f := failAt(t, "system:bootloader")
	h.viewHas("FAILED: system:bootloader", "exit status 128", "r retry", "h shell", "a abort")
	h.keys("s")
	if len(f.jobs) != 1 || !strings.Contains(h.m.status, "cannot be skipped") {
		t.Fatalf("skipped the bootloader: %d runs, %q", len(f.jobs), h.m.status)
	}
	h.keys("r")
	h.want(scrDone)
	if len(f.jobs) != 2 || h.m.attempt != 2 || !h.m.result.Restored {
		t.Fatalf("%d runs, attempt %d", len(f.jobs), h.m.attempt)
	}
	// The second attempt does not redo the stage the first finished.
	if f.jobs[1].Skip["system:image"] != "done in an earlier attempt" || f.jobs[1].Skip["system:bootloader"] != "" {
		t.Errorf("skip %v", f.jobs[1].Skip)
	}
}

func TestErrorSkip(t *testing.T) {
	h, f := failAt(t, "handoff")
	h.viewHas("s skip: configs and datasets")
	h.keys("s")
	h.want(scrDone)
	if got := f.jobs[1].Skip["handoff"]; !strings.HasPrefix(got, "skipped by the user") {
		t.Errorf("skip %v", f.jobs[1].Skip)
	}
	h.viewHas("you skipped handoff: configs and datasets")
}

func TestErrorAbortAndShell(t *testing.T) {
	h, f := failAt(t, "system:packages")
	h.keys("l")
	h.viewHas("---- log", "FAILED system:packages")
	h.keys("h")
	h.want(scrProgress)
	h.keys("a")
	h.want(scrDone)
	if len(f.jobs) != 1 || h.m.result.Restored || !errors.Is(h.m.result.Err, errBoom) {
		t.Fatalf("abort: %d runs, %+v", len(f.jobs), h.m.result)
	}
	h.viewHas("was aborted", "finished steps are skipped")
	h.keys("r")
	if h.m.Result().Action != "reboot" {
		t.Errorf("result %+v", h.m.Result())
	}
}

func TestProgressBar(t *testing.T) {
	f := newFakes()
	h := toPlan(t, f)
	h.keys("enter", "pw", "enter", "pw", "enter", "enter", "enter", "enter")
	m := h.m
	m.goTo(scrProgress)
	m.initSteps()
	m.started = t0
	m.running = true
	m.confirmWant = "vda"
	for _, e := range []restore.Event{
		{Kind: restore.StepStarted, Step: "system:image", Summary: "base system images/debian.tar.zst"},
		{Kind: restore.Progress, Step: "system:image", Bytes: 0, Of: 200 << 20, Time: t0},
		{Kind: restore.Progress, Step: "system:image", Bytes: 50 << 20, Of: 200 << 20, Time: t0.Add(10 * time.Second)},
	} {
		m.event(e)
	}
	h.now = t0.Add(12 * time.Second)
	h.viewHas("25%", "50 MiB of 200 MiB", "5 MiB/s", "00:30 left", "[ >> ]", "system:image", "00:12")
}

// Two profile disks, chosen by hand: tab picks the profile disk, space
// gives it the highlighted device; one device for both is refused.
func TestTwoDisks(t *testing.T) {
	f := newFakes()
	f.entries = []Entry{{Name: "server", File: "server-raid1.yaml", Source: "server"}}
	f.disks = append(f.disks, probe.Disk{Name: "vdb", Path: "/dev/vdb", Size: 10 << 30, LogicalSectorSize: 512, PhysicalSectorSize: 512, Transport: "virtio", Serial: "b"})
	h := newHarness(t, f, Options{Server: "http://s"})
	h.keys("enter", "enter", "enter")
	h.want(scrDisks)
	h.viewHas("(tab: the next profile disk)", "space use for a")
	if h.m.plan != nil {
		t.Fatal("by_path selectors matched virtio disks")
	}
	h.keys("down", "space") // a = vda
	h.keys("tab")
	h.viewHas("space use for b")
	h.keys("space") // b = vda too
	h.viewHas("refused:", "already the target of disk a")
	h.keys("down", "space") // b = vdb
	if h.m.plan == nil {
		t.Fatalf("no plan: %v %s", h.m.problems, h.m.planErr)
	}
	h.viewHas("ok a -> /dev/vda", "ok b -> /dev/vdb")
	h.keys("enter")
	h.want(scrPlan)
	h.keys("enter")
	h.want(scrConfirm) // no LUKS, no remote repos: nothing to ask
	h.viewHas("type the disks' names (vda vdb), separated by spaces,", "and press enter:")
	h.keys("vda", "enter")
	h.want(scrConfirm)
	h.m.confirm.SetValue("vda  vdb")
	h.keys("enter")
	h.want(scrDone)
}

func TestDiskTooSmall(t *testing.T) {
	f := newFakes()
	f.disks[1].Size = 512 << 20
	h := newHarness(t, f, Options{Server: "http://s", Disks: map[string]string{"main": "vda"}})
	h.keys("enter", "enter", "enter")
	h.want(scrDisks)
	h.viewHas("refused:", "/dev/vda (512 MiB) is too small", "short by")
	h.keys("enter")
	h.want(scrDisks)
}
