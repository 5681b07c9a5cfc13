package drill

import (
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"os"
	"strings"
)

// Text writes the report for people: PASS/FAIL per phase and check, times,
// and where the console logs are.
func (r *Report) Text(w io.Writer) {
	verdict := map[bool]string{true: "PASS", false: "FAIL"}
	fmt.Fprintf(w, "drill %s (host %s, %s firmware): %s in %.0f s\n", r.Profile, r.Host, r.Firmware, verdict[r.Pass], r.Seconds)
	for _, d := range r.Disks {
		fmt.Fprintf(w, "  disk %-8s %s  %s (%s)\n", d.Name, d.Device, humanSize(d.Size), d.Path)
	}
	for _, ph := range r.Phases {
		fmt.Fprintf(w, "  %s  %-24s %6.0f s", verdict[ph.Pass], ph.Name, ph.Seconds)
		if ph.Waited > 0 {
			fmt.Fprintf(w, " (%.0f s of it waiting for a VM slot)", ph.Waited)
		}
		if ph.Log != "" {
			fmt.Fprintf(w, "  log %s", ph.Log)
		}
		fmt.Fprintln(w)
		if ph.Name == restorePhase && len(r.Steps) > 0 {
			var parts []string
			for _, s := range r.Breakdown() {
				parts = append(parts, fmt.Sprintf("%s %.0f s", s.Name, s.Seconds))
			}
			fmt.Fprintf(w, "        %s\n", strings.Join(parts, " · "))
		}
		if ph.Error != "" {
			fmt.Fprintf(w, "        %s\n", ph.Error)
		}
		if ph.Tail != "" {
			fmt.Fprintf(w, "        last console lines:\n")
			for _, l := range strings.Split(strings.TrimRight(ph.Tail, "\n"), "\n") {
				fmt.Fprintf(w, "        | %s\n", strings.TrimRight(l, "\r"))
			}
		}
	}
	for _, c := range r.Checks {
		fmt.Fprintf(w, "  %s  check %-30s %s\n", verdict[c.Pass], c.Name, c.Detail)
	}
}

// Breakdown sums the restore's steps into the stages a person thinks in:
// the live boot, layout (every storage step), base system, packages and bootloader,
// hand-off, close. Stages that did not run are left out.
func (r *Report) Breakdown() []Step {
	order := []string{"live boot", "layout", "base system", "packages and bootloader", "hand-off", "close"}
	sum := map[string]float64{}
	seen := map[string]bool{}
	for _, s := range r.Steps {
		stage := "layout"
		switch s.Name {
		case "system:image", "system:configure":
			stage = "base system"
		case "system:packages", "system:initramfs", "system:bootloader":
			stage = "packages and bootloader"
		case "handoff":
			stage = "hand-off"
		case liveBootStep:
			stage = "live boot"
		case "close":
			stage = "close"
		}
		sum[stage] += s.Seconds
		seen[stage] = true
	}
	var out []Step
	for _, st := range order {
		if seen[st] {
			out = append(out, Step{Name: st, Seconds: sum[st]})
		}
	}
	return out
}

func humanSize(n int64) string {
	return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
}

// WriteJSON writes the report as JSON.
func (r *Report) WriteJSON(path string) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

type junitSuite struct {
	XMLName  xml.Name    `xml:"testsuite"`
	Name     string      `xml:"name,attr"`
	Tests    int         `xml:"tests,attr"`
	Failures int         `xml:"failures,attr"`
	Time     float64     `xml:"time,attr"`
	Cases    []junitCase `xml:"testcase"`
}

type junitCase struct {
	Name      string        `xml:"name,attr"`
	Classname string        `xml:"classname,attr"`
	Time      float64       `xml:"time,attr"`
	Failure   *junitFailure `xml:"failure,omitempty"`
	SystemOut string        `xml:"system-out,omitempty"`
}

type junitFailure struct {
	Message string `xml:"message,attr"`
	Text    string `xml:",chardata"`
}

// WriteJUnit writes the report as JUnit XML, one test case per phase and check.
func (r *Report) WriteJUnit(path string) error {
	s := junitSuite{Name: "strata drill " + r.Host, Time: r.Seconds}
	for _, ph := range r.Phases {
		c := junitCase{Name: ph.Name, Classname: "drill." + r.Host, Time: ph.Seconds, SystemOut: ph.Log}
		if !ph.Pass {
			c.Failure = &junitFailure{Message: ph.Error, Text: ph.Tail}
		}
		s.Cases = append(s.Cases, c)
	}
	for _, ch := range r.Checks {
		c := junitCase{Name: "check " + ch.Name, Classname: "drill." + r.Host}
		if !ch.Pass {
			c.Failure = &junitFailure{Message: ch.Detail}
		}
		s.Cases = append(s.Cases, c)
	}
	s.Tests = len(s.Cases)
	for _, c := range s.Cases {
		if c.Failure != nil {
			s.Failures++
		}
	}
	b, err := xml.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append([]byte(xml.Header), append(b, '\n')...), 0o644)
}
