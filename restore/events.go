// Package restore executes a plan.Plan: Apply runs each step whose check
// finds its state missing, reports what it does as Events, and stops at the
// first failure; a re-run resumes, since finished steps are skipped.
package restore

import (
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/stratahq/strata/profile"
)

// EventKind names an event. The values are stable: the CLI's --json
// output, the TUI and the QEMU drill read them.
type EventKind string

const (
	RunStarted  EventKind = "run-started"  // Total steps; DryRun
	StepStarted EventKind = "step-started" // a step's actions begin
	Progress    EventKind = "progress"     // Bytes of Total bytes done (streams: downloads, copies)
	Log         EventKind = "log"          // Message: a command run, a note, a warning
	StepDone    EventKind = "step-done"    // the step ran and its check now holds, or a kept item verified
	StepFailed  EventKind = "step-failed"  // Message: the error; the run stops
	StepSkipped EventKind = "step-skipped" // Message: why (already done)
	StepPending EventKind = "step-pending" // dry run: the step would run
	RunDone     EventKind = "run-done"     // Message: summary; Failed when a step failed
)

// Event is one thing Apply reports.
type Event struct {
	Kind    EventKind `json:"event"`
	Time    time.Time `json:"time"`
	Step    string    `json:"step,omitempty"`  // step ID
	Index   int       `json:"index,omitempty"` // 1-based position of the step in the plan
	Total   int       `json:"total,omitempty"` // steps in the plan
	Summary string    `json:"summary,omitempty"`
	Message string    `json:"message,omitempty"`
	Bytes   int64     `json:"bytes,omitempty"`       // Progress
	Of      int64     `json:"total_bytes,omitempty"` // Progress
	DryRun  bool      `json:"dry_run,omitempty"`
	Failed  bool      `json:"failed,omitempty"`
}

// Handler receives events, in order, from the goroutine that runs Apply.
type Handler func(Event)

// Channel adapts a channel to a Handler (the TUI's way); the caller drains it.
func Channel(ch chan<- Event) Handler { return func(e Event) { ch <- e } }

// JSONLines writes each event as one JSON object per line (--json, drills).
func JSONLines(w io.Writer) Handler {
	enc := json.NewEncoder(w)
	return func(e Event) { _ = enc.Encode(e) }
}

// Plain writes events for people reading a log or a terminal without the TUI.
func Plain(w io.Writer) Handler {
	return func(e Event) {
		switch e.Kind {
		case RunStarted:
			if e.DryRun {
				fmt.Fprintf(w, "dry run: checking %d steps against the disks, writing nothing\n", e.Total)
			} else {
				fmt.Fprintf(w, "restoring: %d steps\n", e.Total)
			}
		case StepStarted:
			fmt.Fprintf(w, "[%d/%d] %s: %s\n", e.Index, e.Total, e.Step, e.Summary)
		case Log:
			fmt.Fprintf(w, "        %s\n", e.Message)
		case Progress:
			if e.Of > 0 {
				fmt.Fprintf(w, "        %s of %s (%d%%)\n", profile.HumanBytes(e.Bytes), profile.HumanBytes(e.Of), e.Bytes*100/e.Of)
			} else {
				fmt.Fprintf(w, "        %s\n", profile.HumanBytes(e.Bytes))
			}
		case StepDone:
			fmt.Fprintf(w, "[%d/%d] %s: done%s\n", e.Index, e.Total, e.Step, suffix(e.Message))
		case StepSkipped:
			fmt.Fprintf(w, "[%d/%d] %s: skipped%s\n", e.Index, e.Total, e.Step, suffix(e.Message))
		case StepPending:
			fmt.Fprintf(w, "[%d/%d] %s: would run: %s\n", e.Index, e.Total, e.Step, e.Summary)
		case StepFailed:
			fmt.Fprintf(w, "[%d/%d] %s: FAILED: %s\n", e.Index, e.Total, e.Step, e.Message)
		case RunDone:
			fmt.Fprintf(w, "%s\n", e.Message)
		}
	}
}

func suffix(m string) string {
	if m == "" {
		return ""
	}
	return " (" + m + ")"
}
