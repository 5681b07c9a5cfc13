package vm

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"
)

// LivePrompt matches the strata live image's root shell prompt
// (PS1='strata-live:$PWD# ').
const LivePrompt = `strata-live:\S*# `

// ErrTimeout is wrapped by Expect's error when the pattern did not appear
// in time while the console was still open.
var ErrTimeout = errors.New("timed out")

// WaitPrompt waits up to timeout for the shell prompt re (such as
// LivePrompt). Every 20 s without it, it presses Enter: a CI run once saw
// the live image's console fall silent for over a minute between "here is a
// shell" and the prompt under TCG, and an empty line makes a running shell
// prompt again (or is discarded harmlessly while it starts).
func (v *VM) WaitPrompt(re string, timeout time.Duration) error {
	return v.con.waitPrompt(re, timeout, 20*time.Second)
}

// waitPrompt: see VM.WaitPrompt; Enter is pressed every nudge.
func (c *Console) waitPrompt(re string, timeout, nudge time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		_, err := c.Expect(re, max(0, min(nudge, time.Until(deadline))))
		if err == nil || !errors.Is(err, ErrTimeout) || time.Until(deadline) <= 0 {
			return err
		}
		if err := c.Send("\r"); err != nil {
			return fmt.Errorf("vm: waiting for %q: %w", re, err)
		}
	}
}

// TypeLine types line on ttyS0 eight characters at a time, waits up to
// timeout for the guest's line editor to echo each piece before sending the
// next, and ends with Enter. Sent at once, long input loses keystrokes under
// TCG (seen: a lost Enter). The echo may be wrapped at 80 columns (the shell
// redraws the line with a line break), so a piece matches with white space
// between any two of its characters.
func (v *VM) TypeLine(line string, timeout time.Duration) error {
	return v.con.TypeLine(line, timeout)
}

// TypeLine: see VM.TypeLine.
func (c *Console) TypeLine(line string, timeout time.Duration) error {
	for i := 0; i < len(line); i += 8 {
		piece := line[i:min(i+8, len(line))]
		if err := c.Send(piece); err != nil {
			return fmt.Errorf("vm: typing %q: %w", line, err)
		}
		if _, err := c.Expect(echoPattern(piece), timeout); err != nil {
			return fmt.Errorf("vm: typing %q: no echo of %q: %w", line, piece, err)
		}
	}
	if err := c.Send("\r"); err != nil {
		return fmt.Errorf("vm: typing %q: %w", line, err)
	}
	return nil
}

// echoPattern matches a typed piece as the line editor echoes it: leading
// blanks may be swallowed by a wrap, and a line break may fall between any
// two characters.
func echoPattern(piece string) string {
	var rx strings.Builder
	for j, r := range strings.TrimLeft(piece, " ") {
		if j > 0 {
			rx.WriteString(`\s*`)
		}
		rx.WriteString(regexp.QuoteMeta(string(r)))
	}
	return rx.String()
}
