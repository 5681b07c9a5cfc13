package live

import (
	"io"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// reportTo is where Run writes its report: in the live system, the
// command line's consoles themselves when any opens (see openConsoles),
// whatever cfg.Out is (the image's uinit is handed init's pipe as stdout);
// otherwise cfg.Out.
func reportTo(cfg Config, devDir string) (io.Writer, func()) {
	if cfg.System {
		if w, closeAll := openConsoles(cfg.Cmdline, devDir); w != nil {
			return w, closeAll
		}
	}
	return cfg.Out, func() {}
}

// kernelConsoles lists the devices the command line's console= parameters
// name, in order, each once, without their line settings
// ("console=ttyS0,115200n8" is ttyS0).
func kernelConsoles(cmdline string) []string {
	var names []string
	seen := map[string]bool{}
	for _, tok := range SplitCmdline(cmdline) {
		if tok == "--" {
			break
		}
		v, ok := strings.CutPrefix(tok, "console=")
		if !ok {
			continue
		}
		name, _, _ := strings.Cut(v, ",")
		name = strings.TrimPrefix(name, "/dev/")
		if name == "" || seen[name] || strings.Contains(name, "/") {
			continue
		}
		seen[name] = true
		names = append(names, name)
	}
	return names
}

// openConsoles opens the command line's consoles under devDir for writing,
// as one writer, so the report goes to the terminals directly. u-root's
// init hands its uinit a pipe when the command line names consoles and
// copies the pipe to each of them on its own time: a shell's banner,
// written to a terminal directly, could overtake the end of the report
// (seen in CI). Written to the terminal itself, the report is in the
// terminal's queue before anything strata writes afterwards. It returns
// nil when no console is named or none opens; closeAll closes them.
func openConsoles(cmdline, devDir string) (w io.Writer, closeAll func()) {
	var files []*os.File
	var ws []io.Writer
	for _, name := range kernelConsoles(cmdline) {
		// Opened without waiting for a modem's carrier (O_NONBLOCK), then
		// written to blocking, so no line is dropped when the UART is
		// behind.
		p := filepath.Join(devDir, name)
		fd, err := unix.Open(p, unix.O_WRONLY|unix.O_NOCTTY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
		if err != nil {
			continue // (console=null, or a UART that is not there)
		}
		if err := unix.SetNonblock(fd, false); err != nil {
			unix.Close(fd)
			continue
		}
		f := os.NewFile(uintptr(fd), p)
		files = append(files, f)
		ws = append(ws, skipErrors{f})
	}
	if len(files) == 0 {
		return nil, func() {}
	}
	return io.MultiWriter(ws...), func() {
		for _, f := range files {
			f.Close()
		}
	}
}

// skipErrors keeps one console that fails (EIO from a UART with nothing
// behind it) from silencing the others in a MultiWriter.
type skipErrors struct{ w io.Writer }

func (s skipErrors) Write(p []byte) (int, error) {
	_, _ = s.w.Write(p)
	return len(p), nil
}
