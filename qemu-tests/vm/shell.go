package vm

import (
	"fmt"
	"regexp"
	"strings"
	"time"
)

// LivePrompt matches the strata live image's root shell prompt
// (PS1='strata-live:$PWD# ').
const LivePrompt = `strata-live:\S*# `

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
