package wizard

import (
	"context"
	"fmt"
	"os"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/lipgloss"
)

// Run shows the wizard on the terminal in/out until the user leaves it,
// and says how it ended.
func Run(ctx context.Context, deps Deps, opt Options, in, out *os.File) (Result, error) {
	if opt.Style.name == "" {
		opt.Style = StyleFor(out, os.Getenv("TERM"), os.Getenv("NO_COLOR") != "", os.Getenv("COLORTERM"))
	}
	// The bubbles' own default styles (a text input's cursor) follow the
	// same profile, without querying the terminal.
	lipgloss.SetDefaultRenderer(opt.Style.r)
	m := New(ctx, deps, opt)
	p := tea.NewProgram(m, tea.WithInput(in), tea.WithOutput(out), tea.WithAltScreen(), tea.WithContext(ctx))
	if _, err := p.Run(); err != nil {
		return m.Result(), fmt.Errorf("wizard: %w", err)
	}
	return m.Result(), nil
}
