package wizard

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/x/ansi"

	"github.com/stratahq/strata/restore"
	"github.com/stratahq/strata/restore/probe"
)

var update = flag.Bool("update", false, "rewrite the golden screens in testdata/")

// screens drives the fakes through every screen and returns each as the
// model draws it, by name.
func screens(t *testing.T, st Style, w, h int) map[string]string {
	f := newFakes()
	f.runs = [][]restore.Event{append(append(events("wipe:main", restore.StepStarted, restore.StepDone),
		events("system:image", restore.StepStarted, restore.StepDone)...), events("handoff", restore.StepStarted, restore.StepFailed)...)}
	f.errs = []error{errBoom}
	hs := newHarness(t, f, Options{Server: "http://10.0.2.2:8080", Style: st})
	hs.send(tea.WindowSizeMsg{Width: w, Height: h})
	out := map[string]string{}
	shot := func(name string) { out[name] = hs.m.View() }
	shot("1-network")
	hs.keys("s", "10.0.2.50/24")
	shot("1-network-static")
	hs.keys("esc", "enter", "enter")
	shot("2-profile")
	hs.keys("enter")
	shot("3-disks")
	hs.keys("enter")
	shot("4-plan")
	hs.keys("enter", "secret", "enter", "secret")
	shot("5-secrets")
	hs.keys("enter", "enter", "enter", "enter", "sdb", "enter")
	shot("6-confirm-wrong")
	hs.keys("vda", "enter")
	hs.now = t0.Add(754 * time.Second)
	shot("7-progress-failed")
	hs.keys("s")
	hs.now = t0.Add(800 * time.Second)
	shot("8-done")

	// Progress while a long step runs, with the log open.
	m := hs.m
	m.goTo(scrProgress)
	m.initSteps()
	m.running, m.failure, m.started = true, nil, t0
	for _, e := range []restore.Event{
		{Kind: restore.StepStarted, Step: "wipe:main"}, {Kind: restore.StepDone, Step: "wipe:main"},
		{Kind: restore.Log, Step: "table:main", Message: "$ sfdisk --json /dev/vda"},
		{Kind: restore.StepStarted, Step: "system:image", Summary: "base system images/debian-12.tar.zst"},
		{Kind: restore.Progress, Step: "system:image", Of: 175 << 20, Time: t0},
		{Kind: restore.Progress, Step: "system:image", Bytes: 70 << 20, Of: 175 << 20, Time: t0.Add(20 * time.Second)},
	} {
		m.event(e)
	}
	hs.now = t0.Add(21 * time.Second)
	hs.keys("l")
	shot("7-progress-running")

	// A refused disk.
	f2 := newFakes()
	f2.disks[1].Mounts = []probe.Mount{{Device: "vda1", Point: "/mnt", FSType: "ext4"}}
	h2 := newHarness(t, f2, Options{Server: "http://10.0.2.2:8080", Style: st})
	h2.send(tea.WindowSizeMsg{Width: w, Height: h})
	h2.keys("enter", "enter", "enter")
	out["3-disks-refused"] = h2.m.View()
	return out
}

func TestGoldenScreens(t *testing.T) {
	for _, st := range []struct {
		name  string
		style Style
	}{{"plain", PlainStyle()}, {"colour", ColourStyle()}} {
		for _, size := range [][2]int{{80, 24}, {120, 36}} {
			got := screens(t, st.style, size[0], size[1])
			for name, view := range got {
				file := filepath.Join("testdata", fmt.Sprintf("%s-%dx%d-%s.golden", name, size[0], size[1], st.name))
				checkGeometry(t, file, view, size[0], size[1], st.name == "plain")
				if *update {
					if err := os.WriteFile(file, []byte(view), 0o644); err != nil {
						t.Fatal(err)
					}
					continue
				}
				want, err := os.ReadFile(file)
				if err != nil {
					t.Fatalf("%v (go test ./wizard -update writes it)", err)
				}
				if string(want) != view {
					t.Errorf("%s differs (go test ./wizard -update rewrites it); got:\n%s", file, view)
				}
			}
		}
	}
}

// checkGeometry: every screen fits the terminal exactly, shows its help
// line, and a plain screen is ASCII without escape sequences.
func checkGeometry(t *testing.T, file, view string, w, h int, plain bool) {
	t.Helper()
	lines := strings.Split(view, "\n")
	if len(lines) != h {
		t.Errorf("%s: %d lines, want %d", file, len(lines), h)
	}
	for i, l := range lines {
		if n := ansi.StringWidth(l); n > w {
			t.Errorf("%s: line %d is %d columns wide", file, i+1, n)
		}
	}
	if last := lines[len(lines)-1]; !strings.Contains(last, " · ") && !strings.Contains(last, " | ") {
		t.Errorf("%s: no help line: %q", file, last)
	}
	if plain {
		for i, r := range view {
			if r == 0x1b || r > 0x7e {
				t.Errorf("%s: not plain ASCII at byte %d: %q", file, i, r)
				break
			}
		}
	}
}
