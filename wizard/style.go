package wizard

import (
	"io"
	"strings"

	"github.com/charmbracelet/lipgloss"
	"github.com/muesli/termenv"
)

// Style is how the wizard draws: colours when the terminal has them, and
// line-drawing glyphs only where the terminal can show them. A serial
// console with TERM=vt100 gets plain ASCII; nothing relies on colour
// alone (states are words and marks too).
type Style struct {
	name     string
	r        *lipgloss.Renderer
	unicode  bool
	title    lipgloss.Style
	dim      lipgloss.Style
	sel      lipgloss.Style
	ok       lipgloss.Style
	warn     lipgloss.Style
	bad      lipgloss.Style
	key      lipgloss.Style
	input    lipgloss.Style
	cursor   lipgloss.Style
	barFull  string
	barEmpty string
}

// StyleFor picks the style for a terminal type and the environment's
// NO_COLOR/COLORTERM; w is where the wizard draws.
func StyleFor(w io.Writer, term string, noColor bool, colorTerm string) Style {
	p := termenv.ANSI
	uni := true
	switch {
	case noColor:
		p = termenv.Ascii
	case term == "" || term == "dumb" || strings.HasPrefix(term, "vt1") || strings.HasPrefix(term, "vt2"):
		p, uni = termenv.Ascii, false
	case colorTerm == "truecolor" || colorTerm == "24bit":
		p = termenv.TrueColor
	case strings.Contains(term, "256color"):
		p = termenv.ANSI256
	}
	if term == "" || term == "dumb" || strings.HasPrefix(term, "vt") {
		uni = false
	}
	return newStyle(w, p, uni)
}

// PlainStyle is ASCII without colour: what a vt100 gets.
func PlainStyle() Style { return newStyle(io.Discard, termenv.Ascii, false) }

// ColourStyle is 16 colours with line drawing: the Linux console.
func ColourStyle() Style { return newStyle(io.Discard, termenv.ANSI, true) }

func newStyle(w io.Writer, p termenv.Profile, uni bool) Style {
	// The profile and background are given, never queried: a query waits
	// for an answer a serial console may never send.
	r := lipgloss.NewRenderer(w, termenv.WithProfile(p))
	r.SetColorProfile(p)
	r.SetHasDarkBackground(true)
	s := Style{name: "plain", r: r, unicode: uni, barFull: "#", barEmpty: "-"}
	if p != termenv.Ascii {
		s.name = "colour"
	}
	if uni {
		s.barFull, s.barEmpty = "█", "░"
	}
	n := r.NewStyle
	s.title = n().Bold(true).Foreground(lipgloss.Color("14"))
	s.dim = n().Foreground(lipgloss.Color("8"))
	s.sel = n().Reverse(true)
	s.ok = n().Foreground(lipgloss.Color("10"))
	s.warn = n().Foreground(lipgloss.Color("11"))
	s.bad = n().Bold(true).Foreground(lipgloss.Color("9"))
	s.key = n().Bold(true)
	s.input = n().Foreground(lipgloss.Color("15"))
	s.cursor = n().Reverse(true)
	return s
}

// tree glyphs: branch, last branch, continuing line, blank.
func (s Style) tree() (string, string, string, string) {
	if s.unicode {
		return "├─ ", "└─ ", "│  ", "   "
	}
	return "|- ", "`- ", "|  ", "   "
}

// mark is a step's state as a fixed-width word, readable without colour.
func (s Style) mark(st stepState) string {
	switch st {
	case stateRunning:
		return s.warn.Render("[ >> ]")
	case stateDone:
		return s.ok.Render("[ ok ]")
	case stateSkipped:
		return s.dim.Render("[skip]")
	case stateFailed:
		return s.bad.Render("[FAIL]")
	}
	return s.dim.Render("[    ]")
}
