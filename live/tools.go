package live

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/stratahq/strata/initramfs/manifest"
	"github.com/stratahq/strata/internal/run"
)

// ToolResult is the outcome of running one tool's probe.
type ToolResult struct {
	Tool   manifest.Tool
	OK     bool
	Detail string // first line of its output, or why it failed
}

// loaderFailures are what the dynamic loader prints when a library or
// symbol is missing; they fail a probe whatever the exit status.
var loaderFailures = []string{"error while loading shared libraries", "symbol lookup error", "cannot open shared object", "not found (required by"}

// judgeProbe decides a probe's outcome from what the runner returned.
func judgeProbe(t manifest.Tool, res run.Result, err error) ToolResult {
	out := strings.TrimSpace(string(res.Stdout) + "\n" + string(res.Stderr))
	first := strings.TrimSpace(strings.SplitN(out, "\n", 2)[0])
	for _, f := range loaderFailures {
		if i := strings.Index(out, f); i >= 0 {
			line := out[strings.LastIndex(out[:i], "\n")+1:]
			line, _, _ = strings.Cut(line, "\n")
			return ToolResult{Tool: t, Detail: strings.TrimSpace(line)}
		}
	}
	var ee *run.ExitError
	switch {
	case err == nil:
		return ToolResult{Tool: t, OK: true, Detail: first}
	case errors.As(err, &ee) && t.AnyExit && ee.Code != 126 && ee.Code != 127 && ee.Code >= 0:
		// Usage errors prove the program and its libraries load.
		return ToolResult{Tool: t, OK: true, Detail: first}
	default:
		return ToolResult{Tool: t, Detail: strings.TrimSpace(fmt.Sprintf("%v", err))}
	}
}

// CheckTools runs each tool's probe (through the runner, so it is logged)
// and reports which run. A missing library, a missing interpreter or a
// crash is a failure.
func CheckTools(ctx context.Context, r run.Runner, tools []manifest.Tool) []ToolResult {
	out := make([]ToolResult, 0, len(tools))
	for _, t := range tools {
		c, cancel := context.WithTimeout(ctx, 20*time.Second)
		res, err := r.Run(c, run.Cmd{Name: t.Path, Args: t.Probe, Stdin: strings.NewReader("")})
		cancel()
		out = append(out, judgeProbe(t, res, err))
	}
	return out
}

// WriteToolResults prints `tool NAME ok: DETAIL` or `tool NAME FAIL: WHY`.
func WriteToolResults(w io.Writer, rs []ToolResult) (failed int) {
	for _, r := range rs {
		status := "ok"
		if !r.OK {
			status = "FAIL"
			failed++
		}
		detail := r.Detail
		if len(detail) > 100 {
			detail = detail[:100] + "…"
		}
		fmt.Fprintf(w, "tool %s %s: %s\n", r.Tool.Name, status, detail)
	}
	return failed
}
