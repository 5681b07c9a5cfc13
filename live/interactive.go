package live

import (
	"context"
	"fmt"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// Interactive runs the restore wizard on the conversation console tty
// (opened read-write, a terminal) and returns what to do after it:
// "shell", "reboot" or "poweroff". It is nil in builds without the wizard.
var Interactive func(ctx context.Context, s *Session, tty *os.File) (done string, err error)

// WizardParam turns the wizard off: strata.wizard=off leaves the console
// to a shell, as scripts driving the live shell want.
const WizardParam = "strata.wizard"

func init() {
	paramHelp[WizardParam] = "on | off: the restore wizard on the console when nothing runs unattended (default on)"
}

// wizardWanted reads strata.wizard from the kernel command line (the
// parser knows the name; its value is read here).
func wizardWanted(cmdline string) bool {
	for _, tok := range SplitCmdline(cmdline) {
		if v, ok := strings.CutPrefix(tok, WizardParam+"="); ok {
			return v != "off" && v != "0" && v != "no"
		}
	}
	return true
}

// isTerminal reports whether the console can carry the wizard.
func isTerminal(console string) bool {
	f, err := os.OpenFile("/dev/"+console, os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		return false
	}
	defer f.Close()
	_, err = unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

// interactive starts the wizard on the console when there is one that is a
// terminal; it returns what finish should do next.
func interactive(ctx context.Context, s *Session, console string) string {
	f, err := os.OpenFile("/dev/"+console, os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		fmt.Fprintf(s.Out, "strata: no wizard on %s: %v; here is a shell.\n", console, err)
		return "shell"
	}
	defer f.Close()
	fd := int(f.Fd())
	if _, err := unix.IoctlGetTermios(fd, unix.TCGETS); err != nil {
		fmt.Fprintf(s.Out, "strata: %s is not a terminal; here is a shell.\n", console)
		return "shell"
	}
	// A serial line does not know its size: assume the 80x24 every
	// terminal can show, so the wizard (and a shell after it) fit.
	if ws, err := unix.IoctlGetWinsize(fd, unix.TIOCGWINSZ); err == nil && (ws.Row == 0 || ws.Col == 0) {
		_ = unix.IoctlSetWinsize(fd, unix.TIOCSWINSZ, &unix.Winsize{Row: 24, Col: 80})
	}
	// Serial consoles get vt100 (ASCII, no colour: whatever is on the
	// other end shows it); virtual terminals the Linux console's colours.
	term := "vt100"
	if termFor(console) == "linux" {
		term = "linux"
	}
	os.Setenv("TERM", term)
	fmt.Fprintf(s.Out, "strata: starting the restore wizard on %s (strata.wizard=off for a shell instead)\n", console)
	done, err := Interactive(ctx, s, f)
	if err != nil {
		fmt.Fprintf(s.Out, "strata: wizard: %v\n", err)
	}
	switch done {
	case "reboot", "poweroff":
		return done
	}
	fmt.Fprintln(s.Out, "strata: the wizard has ended; here is a shell (strata wizard starts it again).")
	return "shell"
}
