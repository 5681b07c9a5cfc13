package handoff

import (
	"fmt"
	"time"
)

// EventType says what happened to an item.
type EventType string

// Event types, in the order an item sees them.
const (
	Started  EventType = "started"  // work on the item begins
	Phase    EventType = "phase"    // a step of it begins (clone, checkout, place, ...)
	Progress EventType = "progress" // bytes and files so far
	Done     EventType = "done"     // complete, verified and marked done
	Skipped  EventType = "skipped"  // already done by an earlier run
	Failed   EventType = "failed"   // stopped with Err; not marked done
)

// Item names one repo or dataset of the profile.
type Item struct {
	Kind string // "repo" or "dataset"
	Name string
	Path string // destination in the restored system
}

func (i Item) String() string { return i.Kind + " " + i.Name }

// Counts are bytes and files; a total is -1 while unknown.
type Counts struct {
	Bytes, TotalBytes int64
	Files, TotalFiles int64
}

// Event is one thing that happened during a hand-off. The CLI prints them;
// a TUI turns them into messages. Events are delivered one at a time, in
// order for each item; items running in parallel interleave.
type Event struct {
	Type   EventType
	Item   Item
	Phase  string // for Phase: clone, checkout, submodules, place, fetch, verify, ...
	Counts Counts // for Progress and Done
	// Detail is a one-line summary for Started, Done and Skipped
	// (what is fetched from where, the revision, how it was verified).
	Detail string
	Err    error // for Failed
	Time   time.Time
}

func (e Event) String() string {
	switch e.Type {
	case Phase:
		return fmt.Sprintf("%s: %s", e.Item, e.Phase)
	case Progress:
		return fmt.Sprintf("%s: %s", e.Item, e.Counts)
	case Failed:
		return fmt.Sprintf("%s: FAILED: %v", e.Item, e.Err)
	}
	if e.Detail != "" {
		return fmt.Sprintf("%s: %s: %s", e.Item, e.Type, e.Detail)
	}
	return fmt.Sprintf("%s: %s", e.Item, e.Type)
}

func (c Counts) String() string {
	s := HumanBytes(c.Bytes)
	if c.TotalBytes >= 0 {
		s += " of " + HumanBytes(c.TotalBytes)
	}
	if c.Files >= 0 {
		s += fmt.Sprintf(", %d", c.Files)
		if c.TotalFiles >= 0 {
			s += fmt.Sprintf(" of %d", c.TotalFiles)
		}
		s += " files"
	}
	return s
}

// HumanBytes renders a byte count with a binary unit.
func HumanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
