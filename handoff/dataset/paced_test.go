package dataset

import (
	"bytes"
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stratahq/strata/internal/run"
)

// Everything the child writes arrives, in order, across pauses and beyond
// one read's buffer; and a grandchild that keeps the pipe open does not
// hold the caller for long.
func TestPacedOutput(t *testing.T) {
	var got bytes.Buffer
	o, err := newPacedOutput(&got)
	if err != nil {
		t.Fatal(err)
	}
	// 300,000 bytes of lines (more than one read's 256 KiB), a pause, an
	// unterminated last line; then a background sleep holding stdout open.
	script := `i=0; while [ $i -lt 20000 ]; do echo "line $i......"; i=$((i+1)); done; sleep 0.05; printf tail; (sleep 30 2>/dev/null &)`
	if _, err := (run.Exec{}).Run(context.Background(), run.Cmd{Name: "sh", Args: []string{"-c", script}, Stdout: o.w}); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	o.close()
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("close waited %v for a pipe a grandchild holds", d)
	}
	lines := strings.Split(got.String(), "\n")
	if len(lines) != 20001 || lines[0] != "line 0......" || lines[19999] != "line 19999......" || lines[20000] != "tail" {
		t.Fatalf("got %d lines, first %q, last %q", len(lines), lines[0], lines[len(lines)-1])
	}
	for i, l := range lines[:20000] {
		if want := "line " + strconv.Itoa(i) + "......"; l != want {
			t.Fatalf("line %d is %q, want %q", i, l, want)
		}
	}
}
