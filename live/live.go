package live

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/stratahq/strata/initramfs/manifest"
	"github.com/stratahq/strata/internal/run"
	"github.com/stratahq/strata/source"
)

// ReadyMarker starts the report; everything after it describes the machine.
const ReadyMarker = "STRATA READY"

// Session is what an unattended run gets to work with.
type Session struct {
	Params    Params
	Inventory Inventory
	Runner    run.Runner
	Out       io.Writer // the console
	Log       run.Logger
	// Medium is the live medium, mounted read-only; nil when there is none.
	Medium *Medium
	// Sources are where profiles come from, in the order they are
	// searched: the server (strata.server=), then the medium's strata/
	// directory. See ProfileSources.
	Sources []source.Source
}

// Unattended runs the restore for an unattended boot (strata.server= or
// strata.profile=).
// It is nil until the restore is wired in; Run then only prints the plan.
// It must not write anything unless s.Params.Yes.
var Unattended func(ctx context.Context, s *Session) error

// Config configures Run.
type Config struct {
	// Cmdline is the kernel command line; default: /proc/cmdline.
	Cmdline string
	// Manifest is the image manifest; default manifest.Path.
	Manifest string
	// Out receives the report; default os.Stdout. The live system (System)
	// writes it to the command line's consoles instead when any opens.
	Out io.Writer
	// System makes Run act as the image's uinit: mount /run, create
	// directories, load modules, configure the network, start rescue
	// shells, and never return (shell, reboot or poweroff at the end).
	// Without it Run only reports, which is safe on any machine.
	System bool
	// Runner runs the tools; default run.Exec logging to the live log.
	Runner run.Runner
	// SysRoot is sysfs; default /sys.
	SysRoot string
	// MediumDir stands for the live medium's strata/ directory. Without it,
	// System finds the medium by its label and mounts it (MediumMount).
	MediumDir string
}

// LogPath is the live environment's log: every command strata ran.
const LogPath = "/run/strata/live.log"

// Run is `strata live`.
func Run(ctx context.Context, cfg Config) error {
	if cfg.Out == nil {
		cfg.Out = os.Stdout
	}
	if cfg.Manifest == "" {
		cfg.Manifest = manifest.Path
	}
	if cfg.SysRoot == "" {
		cfg.SysRoot = "/sys"
	}
	start := time.Now()
	var setupErrs []string
	if cfg.System {
		setupErrs = append(setupErrs, prepareFS()...)
	}
	if cfg.Cmdline == "" {
		b, err := os.ReadFile("/proc/cmdline")
		if err != nil {
			return fmt.Errorf("live: %w", err)
		}
		cfg.Cmdline = string(b)
	}
	params, perr := ParseCmdline(cfg.Cmdline)
	out, closeConsoles := reportTo(cfg, "/dev")
	defer closeConsoles()

	logf := openLog(out, params.Debug, cfg.System)
	if cfg.Runner == nil {
		cfg.Runner = run.Exec{Log: logf}
	}
	man, merr := manifest.Read(cfg.Manifest)
	if merr != nil {
		setupErrs = append(setupErrs, merr.Error())
	}

	var modRep *ModuleReport
	if cfg.System && man != nil {
		t := time.Now()
		r := LoadModules(man, "/lib/modules", params.ModuleParams)
		modRep = &r
		logf("live: modules: %d loaded, %d already present, %d failed in %s", r.Loaded, r.Already, len(r.Failed), time.Since(t).Round(time.Millisecond))
	}
	console := ""
	if cfg.System {
		console = conversationConsole(params.Console, cfg.SysRoot)
		for _, tty := range params.Rescue {
			if tty != console {
				go rescueShell(tty, logf)
			}
		}
	}

	nics, _ := ReadNICs(cfg.SysRoot, nil)
	var names []string
	for _, n := range nics {
		names = append(names, n.Name)
	}
	var netErr error
	if cfg.System {
		if plan, err := PlanNetwork(params.Net, names); err != nil {
			netErr = err
		} else {
			netErr = ApplyNetwork(ctx, cfg.Runner, plan)
		}
	}

	var medium *Medium
	var mediumErr error
	switch {
	case cfg.MediumDir != "":
		medium = &Medium{Device: "(given)", FSType: "dir", Label: MediumLabel, Mount: cfg.MediumDir, Dir: cfg.MediumDir}
	case cfg.System:
		medium, mediumErr = mountMedium(cfg.SysRoot, mediumWait(params), logf)
	}

	var inv Inventory
	var invErrs []string
	var err error
	if inv.Disks, err = ReadDisks(cfg.SysRoot); err != nil {
		invErrs = append(invErrs, err.Error())
	}
	if inv.NICs, err = ReadNICs(cfg.SysRoot, HostAddrs); err != nil {
		invErrs = append(invErrs, err.Error())
	}
	var tools []ToolResult
	if man != nil {
		tools = CheckTools(ctx, cfg.Runner, man.Tools)
	}

	// The report: one marker line, then facts, one per line.
	fmt.Fprintln(out, ReadyMarker)
	WriteInventory(out, inv)
	if cfg.System || cfg.MediumDir != "" {
		WriteMedium(out, medium, mediumErr)
	}
	if modRep != nil {
		fmt.Fprintf(out, "modules %d loaded, %d already present, %d not for this machine, %d failed\n", modRep.Loaded, modRep.Already, len(modRep.NoDev), len(modRep.Failed))
		if len(modRep.NoDev) > 0 {
			fmt.Fprintf(out, "modules not for this machine (no device or CPU feature): %s\n", strings.Join(modRep.NoDev, " "))
		}
		for _, f := range modRep.Failed {
			fmt.Fprintf(out, "module FAIL: %s\n", f)
		}
	}
	if man != nil && len(man.MissingModules) > 0 {
		fmt.Fprintf(out, "modules not in this kernel: %s\n", strings.Join(man.MissingModules, " "))
	}
	failed := WriteToolResults(out, tools)
	for _, e := range append(append(append(setupErrs, invErrs...), errString(netErr)...), errString(mediumErr)...) {
		fmt.Fprintf(out, "warning: %s\n", e)
	}
	nmods := 0
	if man != nil {
		nmods = len(man.Modules)
	}
	fmt.Fprintf(out, "summary: %d disks, %d nics, %d/%d tools ok, %d modules, ready after %s\n",
		len(inv.Disks), len(inv.NICs), len(tools)-failed, len(tools), nmods, time.Since(start).Round(10*time.Millisecond))

	if medium != nil && medium.Mount == "" {
		medium = nil // found but not mounted: of no use
	}
	sess := &Session{Params: params, Inventory: inv, Runner: cfg.Runner, Out: out, Log: logf,
		Medium: medium, Sources: ProfileSources(params, medium)}
	done := "shell"
	switch {
	case perr != nil:
		fmt.Fprintf(out, "strata: kernel command line errors (nothing will run unattended):\n")
		for _, l := range strings.Split(perr.Error(), "\n") {
			fmt.Fprintf(out, "  %s\n", l)
		}
	case params.Unattended() && !params.Yes && cfg.System && Interactive != nil && wizardWanted(cfg.Cmdline) && isTerminal(console):
		// A server or profile without strata.yes (a PXE menu entry, a
		// stick): a person is at the console to confirm, so the wizard
		// starts with them filled in instead of stopping "not confirmed".
		fmt.Fprintln(out, "strata: no strata.yes: the wizard starts with the kernel command line's server, profile and disks filled in")
		done = interactive(ctx, sess, console)
	case params.Unattended():
		WritePlan(out, params, sess.Sources)
		switch {
		case Unattended == nil:
			fmt.Fprintln(out, "restore: not available in this build yet; nothing was written")
		case failed > 0:
			fmt.Fprintf(out, "restore: not started: %d tools fail to run\n", failed)
		default:
			if err := Unattended(ctx, sess); err != nil {
				fmt.Fprintf(out, "restore: FAILED: %v\n", err)
			} else {
				fmt.Fprintln(out, "restore: done")
				done = params.Done
			}
		}
	case cfg.System && Interactive != nil && wizardWanted(cfg.Cmdline):
		done = interactive(ctx, sess, console)
	default:
		fmt.Fprintln(out, "strata: no strata.profile or strata.server on the kernel command line: nothing to do unattended.")
		fmt.Fprintln(out, "strata: no wizard (strata.wizard=off); here is a shell.")
	}
	if !cfg.System {
		if perr != nil {
			return fmt.Errorf("live: %w", perr)
		}
		return nil
	}
	finish(done, console, params.Rescue, logf, out)
	return nil
}

func errString(err error) []string {
	if err == nil {
		return nil
	}
	return []string{err.Error()}
}

// mediumWait is how long the live system waits for the medium to show up:
// long when the profile must come from it, not at all when a server is
// given, a little otherwise (the wizard lists the medium's profiles).
func mediumWait(p Params) time.Duration {
	switch {
	case p.Profile != "" && p.Server == "":
		return 20 * time.Second
	case p.Server != "":
		return 0
	}
	return 3 * time.Second
}

// ProfileSources are the places profiles are looked up, in order: the file
// server (strata.server=), then the live medium's strata/ directory. The
// server comes first because it was asked for explicitly and is where
// profiles are kept up to date; the medium holds a copy made when it was
// built, and profiles only it has. See package source for the rules.
func ProfileSources(p Params, m *Medium) []source.Source {
	var out []source.Source
	if p.Server != "" {
		out = append(out, source.FromServer(p.Server))
	}
	if m != nil && m.Dir != "" {
		out = append(out, source.FromDir("stick", m.Dir))
	}
	return out
}

// WritePlan prints what an unattended run is going to do, with the
// profile sources in the order they are searched.
func WritePlan(w io.Writer, p Params, sources []source.Source) {
	fmt.Fprintln(w, "plan: unattended restore")
	if len(sources) == 0 {
		fmt.Fprintln(w, "  sources: none: no strata.server and no medium labelled "+MediumLabel+" with a "+MediumDataDir+"/ directory")
	}
	for _, s := range sources {
		if s.Kind == source.Server {
			fmt.Fprintf(w, "  server:  %s\n", s.Base)
		} else {
			fmt.Fprintf(w, "  %-8s %s\n", s.Name+":", s.Path)
		}
	}
	if len(sources) > 1 {
		fmt.Fprintln(w, "  lookup:  the profile from the first of these that has it")
	}
	if p.Profile == "auto" {
		fmt.Fprintln(w, "  profile: auto (match this machine's MAC addresses and DMI data)")
	} else {
		fmt.Fprintf(w, "  profile: %s\n", p.Profile)
	}
	if p.DiskAuto {
		fmt.Fprintln(w, "  disks:   auto (match the profile's disks by serial, size and model)")
	} else {
		names := make([]string, 0, len(p.Disks))
		for n := range p.Disks {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			fmt.Fprintf(w, "  disk:    %s = %s\n", n, p.Disks[n])
		}
	}
	if p.Yes {
		fmt.Fprintln(w, "  confirm: strata.yes given: the target disks will be erased")
	} else {
		fmt.Fprintln(w, "  confirm: missing: nothing is written without strata.yes")
	}
	fmt.Fprintf(w, "  then:    %s\n", p.Done)
}

// openLog returns a logger writing to LogPath (in the image) and, with
// strata.log=debug, to the console too.
func openLog(console io.Writer, debug, system bool) run.Logger {
	var mu sync.Mutex
	var file io.Writer = io.Discard
	if system {
		if f, err := os.OpenFile(LogPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644); err == nil {
			file = f
		}
	}
	return func(format string, args ...any) {
		line := time.Now().Format("15:04:05.000 ") + fmt.Sprintf(format, args...) + "\n"
		mu.Lock()
		defer mu.Unlock()
		_, _ = io.WriteString(file, line)
		if debug {
			_, _ = io.WriteString(console, line)
		}
	}
}

// prepareFS creates what the tools expect of a running system: a tmpfs /run
// (cryptsetup's and LVM's locks, mdadm's map), /var/run and /var/lock,
// /dev/fd, /etc/mtab and a home directory.
func prepareFS() []string {
	var errs []string
	if !isMountPoint("/run") {
		_ = os.MkdirAll("/run", 0o755)
		if err := unix.Mount("tmpfs", "/run", "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "mode=0755"); err != nil {
			errs = append(errs, fmt.Sprintf("mount /run: %v", err))
		}
	}
	for _, d := range []string{"/run/lock", "/run/lock/lvm", "/run/lvm", "/run/cryptsetup", "/run/mdadm", "/run/strata", "/root", "/mnt", "/var/lib", "/var/tmp", "/tmp"} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			errs = append(errs, err.Error())
		}
	}
	for link, target := range map[string]string{
		"/var/run": "/run", "/var/lock": "/run/lock", "/etc/mtab": "/proc/self/mounts",
		"/dev/fd": "/proc/self/fd", "/dev/stdin": "/proc/self/fd/0", "/dev/stdout": "/proc/self/fd/1", "/dev/stderr": "/proc/self/fd/2",
	} {
		if _, err := os.Lstat(link); err == nil {
			continue
		}
		if err := os.Symlink(target, link); err != nil {
			errs = append(errs, err.Error())
		}
	}
	os.Setenv("HOME", "/root")
	if os.Getenv("TERM") == "" {
		os.Setenv("TERM", "linux")
	}
	return errs
}

func isMountPoint(p string) bool {
	b, err := os.ReadFile("/proc/self/mounts")
	if err != nil {
		return false
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) > 1 && f[1] == p {
			return true
		}
	}
	return false
}

// conversationConsole is the terminal strata talks on: strata.console, else
// the kernel's console (the last console= is /dev/console; tty0 means the
// foreground virtual terminal, tty1 at boot).
func conversationConsole(param, sysRoot string) string {
	if param != "" {
		return param
	}
	return activeConsole(readTrim(filepath.Join(sysRoot, "class", "tty", "console", "active")))
}

// activeConsole picks /dev/console's device from sysfs' "active" list
// (its last entry).
func activeConsole(active string) string {
	f := strings.Fields(active)
	if len(f) == 0 {
		return "console"
	}
	c := f[len(f)-1]
	if c == "tty0" {
		return "tty1"
	}
	return c
}

// rescueShell keeps a shell running on tty, restarting it when it exits.
func rescueShell(tty string, logf run.Logger) {
	banner := fmt.Sprintf("\r\nstrata live rescue shell on %s (log: %s)\r\n", tty, LogPath)
	if err := shellLoop(tty, banner, logf); err != nil {
		logf("live: no rescue shell on %s: %v", tty, err)
	}
}

// ShellCommand is the interactive shell strata starts on consoles: busybox's
// ash when the image has it, else /bin/sh (u-root's gosh). ash because
// gosh's line editor redraws the whole line on every key (about half a
// second per key under QEMU without KVM) and now and then stalls on Enter
// over a serial line; gosh remains available as `gosh`.
var ShellCommand = func() []string {
	for _, p := range []string{"/usr/bin/busybox", "/bin/busybox"} {
		if fi, err := os.Stat(p); err == nil && fi.Mode()&0o111 != 0 {
			return []string{p, "sh"}
		}
	}
	return []string{"/bin/sh"}
}

// ShellRC is read by interactive ash shells (ENV): prompt, and poweroff and
// reboot that work under u-root's init.
const ShellRC = "/etc/strata/shrc"

// shellLoop runs the shell on tty until it cannot be opened; a shell that
// exits immediately is restarted with growing delay.
func shellLoop(tty, banner string, logf run.Logger) error {
	delay := time.Second
	for {
		t0 := time.Now()
		if err := runShell(tty, banner); err != nil {
			var ee *exec.ExitError
			if !errors.As(err, &ee) {
				return err
			}
		}
		logf("live: shell on %s exited after %s", tty, time.Since(t0).Round(time.Second))
		if time.Since(t0) > 10*time.Second {
			delay = time.Second
		} else if delay < 30*time.Second {
			delay *= 2
		}
		time.Sleep(delay)
	}
}

func runShell(tty, banner string) error {
	dev := "/dev/" + tty
	f, err := os.OpenFile(dev, os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	if _, err := f.WriteString(banner); err != nil {
		return err // e.g. ttyS1 without a UART behind it: EIO
	}
	argv := ShellCommand()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = f, f, f
	cmd.Dir = "/root"
	cmd.Env = append(os.Environ(), "TERM="+termFor(tty), "ENV="+ShellRC)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	return cmd.Run()
}

// termFor is TERM for a shell on tty. Serial lines get "screen", a
// vt100-like terminal for which gosh's line editor (termenv v0.15) does not
// query colours: it would send OSC 10/11 + DSR and wait 5 s per query for
// answers a serial console or an expect script never sends, eating the
// first keystrokes.
func termFor(tty string) string {
	if strings.HasPrefix(tty, "tty") && len(tty) > 3 && tty[3] >= '0' && tty[3] <= '9' {
		return "linux"
	}
	return "screen"
}

// finish ends the live run: a shell on the conversation console, or a
// reboot or poweroff after a successful unattended run.
func finish(done, console string, rescue []string, logf run.Logger, out io.Writer) {
	switch done {
	case "reboot", "poweroff":
		fmt.Fprintf(out, "strata: %s\n", done)
		unix.Sync()
		cmd := unix.LINUX_REBOOT_CMD_RESTART
		if done == "poweroff" {
			cmd = unix.LINUX_REBOOT_CMD_POWER_OFF
		}
		if err := unix.Reboot(cmd); err != nil {
			fmt.Fprintf(out, "strata: %s: %v\n", done, err)
		}
	}
	others := ""
	if len(rescue) > 0 {
		others = " (rescue shells: " + strings.Join(rescue, ", ") + ")"
	}
	banner := fmt.Sprintf("strata live shell on %s%s\r\n", console, others)
	if err := shellLoop(console, banner, logf); err != nil {
		fmt.Fprintf(out, "strata: no shell on %s: %v; leaving it to init\n", console, err)
	}
}
