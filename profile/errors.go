package profile

import (
	"fmt"
	"sort"
	"strings"
)

// Pos is a place in the YAML source.
type Pos struct{ Line, Col int }

// Error is one problem in a profile: where it is, which key, and what is wrong.
type Error struct {
	File string
	Pos  Pos
	Path string // profile path, e.g. disks.main.partitions[2].size
	Msg  string
}

func (e *Error) Error() string {
	var b strings.Builder
	if e.File != "" {
		b.WriteString(e.File)
		b.WriteByte(':')
	}
	if e.Pos.Line > 0 {
		fmt.Fprintf(&b, "%d:%d:", e.Pos.Line, e.Pos.Col)
	}
	if b.Len() > 0 {
		b.WriteByte(' ')
	}
	if e.Path != "" {
		b.WriteString(e.Path)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Errors is every problem found in one profile, in source order.
type Errors []*Error

func (es Errors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

func (es Errors) sort() {
	sort.SliceStable(es, func(i, j int) bool {
		a, b := es[i].Pos, es[j].Pos
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		return a.Col < b.Col
	})
}

// positions maps profile paths to where their values stand in the source.
type positions map[string]Pos

// of finds the position of path, or of its nearest parent that has one, so an
// error about a missing key points at the block that lacks it.
func (ps positions) of(path string) Pos {
	for p := path; ; {
		if pos, ok := ps[p]; ok {
			return pos
		}
		i := strings.LastIndexAny(p, ".[")
		if i < 0 {
			return ps[""]
		}
		p = p[:i]
	}
}
