// Package vm runs qemu-system-x86_64 guests for tests and for `strata drill`.
//
// It is a thin layer over QEMU: Config is turned into an argv by the pure
// function Args, the guest's first serial port (ttyS0) is the conversation
// (Expect/Send), and everything the guest prints is kept in a log file per VM.
// Every wait has a timeout and every VM has a hard deadline, so a hung guest
// fails a test instead of hanging it.
package vm

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Firmware selects what the guest boots with.
type Firmware int

const (
	BIOS Firmware = iota // SeaBIOS, QEMU's default
	UEFI                 // OVMF with a private copy of the variable store
)

func (f Firmware) String() string {
	if f == UEFI {
		return "uefi"
	}
	return "bios"
}

// OVMF firmware files (Debian's ovmf package). Variables are overridable for
// other distributions.
var (
	OVMFCode = "/usr/share/OVMF/OVMF_CODE_4M.fd"
	OVMFVars = "/usr/share/OVMF/OVMF_VARS_4M.fd"
)

// QEMUBinary is the emulator that Start runs.
var QEMUBinary = "qemu-system-x86_64"

// Disk is one block device attached to the guest.
type Disk struct {
	Path   string
	Format string // "raw" (default) or "qcow2"
	// Interface is the controller: "virtio" (default, virtio-blk), "nvme",
	// "ide" (an ATA disk on the q35 AHCI controller), "usb" (usb-storage on
	// xhci), "scsi" (scsi-hd on virtio-scsi).
	Interface string
	Serial    string // shows up in /sys/block/*/serial, /dev/disk/by-id
	ReadOnly  bool
	Boot      bool // bootindex=0: firmware boots this disk first
	// SectorSize sets the logical and physical block size the guest sees
	// (e.g. 4096 for a 4Kn disk); 0 is QEMU's default, 512.
	SectorSize int
}

// Net is one NIC on QEMU's user-mode network (guest 10.0.2.15, host 10.0.2.2).
type Net struct {
	TFTPDir  string // served by QEMU's built-in TFTP server
	BootFile string // DHCP boot file name (PXE); the NIC becomes bootable
	NIC      string // "virtio-net-pci" (default), "e1000", ...
	MAC      string // e.g. "52:54:00:12:34:56"; QEMU picks one when empty
	// HostFwd forwards host ports into the guest, QEMU syntax
	// ("tcp:127.0.0.1:2222-:22"). Optional.
	HostFwd []string
}

// Config describes one guest.
type Config struct {
	Name     string // used for log file names; "vm" when empty
	Firmware Firmware
	// Direct kernel boot; leave Kernel empty to boot from disks/CD/network.
	Kernel, Initrd, Append string
	Disks                  []Disk
	CDROM                  string // ISO image attached as a CD-ROM drive
	Net                    *Net   // nil: no NIC at all
	MemoryMB               int    // default 2048
	CPUs                   int    // default 1
	LogDir                 string // default <module root>/qemu-tests/logs
	ExtraArgs              []string
	// Timeout is a hard deadline: the VM is killed after it. Default 10 min.
	Timeout time.Duration
	// Accel is QEMU's accelerator list, "tcg" by default (KVM hangs guests on
	// the project's machines); "kvm:tcg" tries KVM first. STRATA_QEMU_ACCEL
	// overrides it.
	Accel string
	// Machine is QEMU's -machine type, "q35" by default.
	Machine string
	// CPU is QEMU's -cpu model, "max" by default: under TCG it emulates
	// AES-NI, PCLMUL and SSE4.2, so the guest loads the same accelerated
	// crypto modules as on real hardware.
	CPU string
	// NoReboot makes a guest reboot exit QEMU (like a poweroff).
	NoReboot bool
	// Serial1 attaches a second serial port (ttyS1) reachable with VM.Serial1.
	Serial1 bool
	// NoTerminalReplies turns off answering cursor-position queries
	// (ESC [6n) on the serial ports. By default the harness answers them as
	// a terminal emulator would, since shells' line editors (busybox ash,
	// gosh) send them and otherwise wait, eating the first keystrokes.
	NoTerminalReplies bool
}

// VM is a running guest.
type VM struct {
	cfg     Config
	cmd     *exec.Cmd
	stdin   io.WriteCloser
	con     *Console
	con1    *Console
	logPath string
	tmpDir  string
	stderr  *lockedBuffer

	done    chan struct{} // closed when QEMU has exited
	waitErr error         // QEMU's exit status, valid after done
	timer   *time.Timer
	killed  sync.Once
}

// Start boots a guest. The VM runs until it powers off, Kill is called, ctx
// is cancelled or cfg.Timeout passes.
func Start(ctx context.Context, cfg Config) (*VM, error) {
	cfg = withDefaults(cfg)
	if _, err := exec.LookPath(QEMUBinary); err != nil {
		return nil, fmt.Errorf("vm: %s: %w", QEMUBinary, err)
	}
	if err := os.MkdirAll(cfg.LogDir, 0o755); err != nil {
		return nil, fmt.Errorf("vm: log dir: %w", err)
	}
	slotCtx := ctx
	if slotCtx == nil {
		slotCtx = context.Background()
	}
	release, err := acquireSlot(slotCtx)
	if err != nil {
		return nil, err
	}
	tmp, err := os.MkdirTemp("", "strata-vm-")
	if err != nil {
		release()
		return nil, fmt.Errorf("vm: %w", err)
	}
	v := &VM{cfg: cfg, tmpDir: tmp, done: make(chan struct{}), stderr: &lockedBuffer{}}
	ok := false
	defer func() {
		if !ok {
			os.RemoveAll(tmp)
			release()
		}
	}()

	rt := runtimePaths{TmpDir: tmp}
	if cfg.Firmware == UEFI {
		rt.OVMFVars = filepath.Join(tmp, "OVMF_VARS.fd")
		if err := copyFile(OVMFVars, rt.OVMFVars); err != nil {
			return nil, fmt.Errorf("vm: private OVMF variable store: %w", err)
		}
		if _, err := os.Stat(OVMFCode); err != nil {
			return nil, fmt.Errorf("vm: OVMF firmware: %w", err)
		}
	}
	if cfg.Serial1 {
		rt.Serial1Socket = filepath.Join(tmp, "ttyS1.sock")
	}
	args, err := Args(cfg, rt)
	if err != nil {
		return nil, err
	}

	base := filepath.Join(cfg.LogDir, sanitize(cfg.Name))
	v.logPath = base + ".serial.log"
	logf, err := os.Create(v.logPath)
	if err != nil {
		return nil, fmt.Errorf("vm: %w", err)
	}
	qlog, err := os.Create(base + ".qemu.log")
	if err != nil {
		logf.Close()
		return nil, fmt.Errorf("vm: %w", err)
	}
	fmt.Fprintf(qlog, "%s\n", quoteArgv(append([]string{QEMUBinary}, args...)))

	cmd := exec.Command(QEMUBinary, args...)
	// If this process dies without Kill (a test binary killed by -timeout,
	// a crash), the kernel kills QEMU too instead of leaving a guest
	// burning a core.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, fmt.Errorf("vm: %w", err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("vm: %w", err)
	}
	cmd.Stderr = io.MultiWriter(v.stderr, qlog)
	if err := cmd.Start(); err != nil {
		logf.Close()
		qlog.Close()
		return nil, fmt.Errorf("vm: start %s: %w", QEMUBinary, err)
	}
	ok = true
	v.cmd, v.stdin = cmd, stdin
	v.con = newConsole("ttyS0", stdin, v.done, v.exitInfo)
	v.con.answerDSR = !cfg.NoTerminalReplies
	copied := make(chan struct{})
	go func() {
		v.con.pump(stdout, logf)
		close(copied)
	}()
	go func() {
		err := cmd.Wait()
		<-copied // all output is in the buffer before anyone sees "exited"
		logf.Close()
		qlog.Close()
		v.waitErr = err
		close(v.done)
		os.RemoveAll(tmp)
		release()
	}()
	v.timer = time.AfterFunc(cfg.Timeout, v.Kill)
	if ctx != nil && ctx.Done() != nil {
		go func() {
			select {
			case <-ctx.Done():
				v.Kill()
			case <-v.done:
			}
		}()
	}
	if cfg.Serial1 {
		if err := v.attachSerial1(rt.Serial1Socket, base+".ttyS1.log"); err != nil {
			v.Kill()
			return nil, err
		}
	}
	return v, nil
}

// attachSerial1 connects to QEMU's ttyS1 socket (QEMU creates it shortly
// after starting, so this retries briefly).
func (v *VM) attachSerial1(sock, logPath string) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := dialUnix(sock)
		if err == nil {
			lf, err := os.Create(logPath)
			if err != nil {
				c.Close()
				return fmt.Errorf("vm: %w", err)
			}
			v.con1 = newConsole("ttyS1", c, v.done, v.exitInfo)
			v.con1.answerDSR = !v.cfg.NoTerminalReplies
			go func() {
				v.con1.pump(c, lf)
				lf.Close()
			}()
			return nil
		}
		select {
		case <-v.done:
			return fmt.Errorf("vm: QEMU exited before ttyS1 was ready: %s", v.exitInfo())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("vm: connect ttyS1 socket: %w", err)
		}
	}
}

func withDefaults(cfg Config) Config {
	if cfg.Name == "" {
		cfg.Name = "vm"
	}
	if cfg.MemoryMB == 0 {
		cfg.MemoryMB = 2048
	}
	if cfg.CPUs == 0 {
		cfg.CPUs = 1
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 10 * time.Minute
	}
	if a := os.Getenv("STRATA_QEMU_ACCEL"); a != "" {
		cfg.Accel = a
	}
	if cfg.Accel == "" {
		cfg.Accel = "tcg"
	}
	if cfg.Machine == "" {
		cfg.Machine = "q35"
	}
	if cfg.CPU == "" {
		cfg.CPU = "max"
	}
	if cfg.LogDir == "" {
		cfg.LogDir = DefaultLogDir()
	}
	return cfg
}

// DefaultLogDir is <module root>/qemu-tests/logs (gitignored), found by
// walking up from the working directory to strata's go.mod; outside the
// source tree it is $TMPDIR/strata-qemu-logs. STRATA_QEMU_LOGS overrides.
func DefaultLogDir() string {
	if d := os.Getenv("STRATA_QEMU_LOGS"); d != "" {
		return d
	}
	dir, err := os.Getwd()
	for err == nil {
		if b, e := os.ReadFile(filepath.Join(dir, "go.mod")); e == nil && bytes.Contains(b, []byte("module github.com/stratahq/strata\n")) {
			return filepath.Join(dir, "qemu-tests", "logs")
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			break
		}
		dir = parent
	}
	return filepath.Join(os.TempDir(), "strata-qemu-logs")
}

// PID is QEMU's process id.
func (v *VM) PID() int { return v.cmd.Process.Pid }

// LogPath is the file holding everything the guest wrote on ttyS0.
func (v *VM) LogPath() string { return v.logPath }

// Tail returns the last n lines of ttyS0 output.
func (v *VM) Tail(n int) string { return v.con.Tail(n) }

// Expect waits for re to match ttyS0 output written since the previous match
// and returns the match and its submatches. It fails on timeout, or as soon
// as QEMU exits without the output matching; the error includes the last 30
// lines.
func (v *VM) Expect(re string, timeout time.Duration) ([]string, error) {
	return v.con.Expect(re, timeout)
}

// Send types s on ttyS0.
func (v *VM) Send(s string) error { return v.con.Send(s) }

// Console returns ttyS0.
func (v *VM) Console() *Console { return v.con }

// Serial1 returns ttyS1, or nil unless Config.Serial1 was set.
func (v *VM) Serial1() *Console { return v.con1 }

// Done is closed when QEMU has exited.
func (v *VM) Done() <-chan struct{} { return v.done }

// Wait waits up to timeout for QEMU to exit, which it does when the guest
// powers off. It returns nil for a clean exit. On timeout the VM keeps
// running (call Kill).
func (v *VM) Wait(timeout time.Duration) error {
	select {
	case <-v.done:
	case <-time.After(timeout):
		return fmt.Errorf("vm %s: still running after %s; last lines:\n%s", v.cfg.Name, timeout, v.Tail(30))
	}
	if v.waitErr != nil {
		return fmt.Errorf("vm %s: %s", v.cfg.Name, v.exitInfo())
	}
	return nil
}

// Kill stops QEMU at once and waits (briefly) for it to be reaped. Safe to
// call more than once and after exit.
func (v *VM) Kill() {
	v.killed.Do(func() {
		if v.timer != nil {
			v.timer.Stop()
		}
		select {
		case <-v.done:
			return
		default:
		}
		_ = v.cmd.Process.Kill()
	})
	select {
	case <-v.done:
	case <-time.After(10 * time.Second):
	}
}

// exitInfo describes how QEMU ended, with its stderr.
func (v *VM) exitInfo() string {
	var st string
	select {
	case <-v.done:
		st = "exit status 0"
		if v.waitErr != nil {
			st = v.waitErr.Error()
		}
	default:
		st = "running"
	}
	if e := strings.TrimSpace(v.stderr.String()); e != "" {
		st += "; qemu stderr: " + lastLines(e, 10)
	}
	return st
}

// Console is one serial port of the guest: its output is buffered for
// Expect and written to a log file as it arrives.
type Console struct {
	name   string
	w      io.Writer
	done   <-chan struct{}
	exited func() string

	answerDSR bool
	wmu       sync.Mutex // serialises writes to the guest

	mu      sync.Mutex
	buf     []byte // all output, with \r removed
	pos     int    // Expect searches from here
	changed chan struct{}
	eof     bool
}

func newConsole(name string, w io.Writer, done <-chan struct{}, exited func() string) *Console {
	return &Console{name: name, w: w, done: done, exited: exited, changed: make(chan struct{})}
}

// pump copies the guest's output into the buffer and the log until EOF.
func (c *Console) pump(r io.Reader, log io.Writer) {
	b := make([]byte, 32<<10)
	var tail []byte // end of the previous read, for queries split across reads
	for {
		n, err := r.Read(b)
		if n > 0 {
			_, _ = log.Write(b[:n])
			if c.answerDSR {
				win := append(tail, b[:n]...)
				for i := bytes.Count(win, dsrQuery) - bytes.Count(tail, dsrQuery); i > 0; i-- {
					go c.write(dsrReply)
				}
				tail = append([]byte(nil), win[max(0, len(win)-len(dsrQuery)+1):]...)
			}
			c.mu.Lock()
			c.buf = append(c.buf, bytes.ReplaceAll(b[:n], []byte("\r"), nil)...)
			close(c.changed)
			c.changed = make(chan struct{})
			c.mu.Unlock()
		}
		if err != nil {
			c.mu.Lock()
			c.eof = true
			close(c.changed)
			c.changed = make(chan struct{})
			c.mu.Unlock()
			return
		}
	}
}

// Expect: see VM.Expect. Carriage returns are removed from the output before
// matching, so (?m)^...$ works on serial lines.
func (c *Console) Expect(re string, timeout time.Duration) ([]string, error) {
	rx, err := regexp.Compile(re)
	if err != nil {
		return nil, fmt.Errorf("vm: expect: %w", err)
	}
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		c.mu.Lock()
		if loc := rx.FindSubmatchIndex(c.buf[c.pos:]); loc != nil {
			out := make([]string, len(loc)/2)
			for i := range out {
				if loc[2*i] >= 0 {
					out[i] = string(c.buf[c.pos+loc[2*i] : c.pos+loc[2*i+1]])
				}
			}
			c.pos += loc[1]
			c.mu.Unlock()
			return out, nil
		}
		changed, eof := c.changed, c.eof
		c.mu.Unlock()
		if eof {
			// The buffer is complete and did not match.
			select {
			case <-c.done:
				return nil, fmt.Errorf("vm: %s: QEMU exited before %q appeared (%s); last lines:\n%s", c.name, re, c.exited(), c.Tail(30))
			case <-deadline.C:
				return nil, fmt.Errorf("vm: %s: %q did not appear within %s (console closed); last lines:\n%s", c.name, re, timeout, c.Tail(30))
			}
		}
		select {
		case <-changed:
		case <-deadline.C:
			return nil, fmt.Errorf("vm: %s: %q did not appear within %s: %w; last lines:\n%s", c.name, re, timeout, ErrTimeout, c.Tail(30))
		}
	}
}

// Send types s on this serial port.
func (c *Console) Send(s string) error {
	select {
	case <-c.done:
		return fmt.Errorf("vm: %s: send: QEMU has exited (%s)", c.name, c.exited())
	default:
	}
	if err := c.write([]byte(s)); err != nil {
		return fmt.Errorf("vm: %s: send: %w", c.name, err)
	}
	return nil
}

// Cursor position query and the answer a 24x80 terminal with the cursor
// at the top left would give.
var (
	dsrQuery = []byte("\x1b[6n")
	dsrReply = []byte("\x1b[1;1R")
)

func (c *Console) write(b []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_, err := c.w.Write(b)
	return err
}

// Output returns everything received so far.
func (c *Console) Output() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return string(c.buf)
}

// Tail returns the last n lines received.
func (c *Console) Tail(n int) string {
	return lastLines(c.Output(), n)
}

func lastLines(s string, n int) string {
	s = strings.TrimRight(s, "\n")
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

var unsafeName = regexp.MustCompile(`[^A-Za-z0-9._-]+`)

func sanitize(name string) string { return unsafeName.ReplaceAllString(name, "_") }

func copyFile(src, dst string) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	return os.WriteFile(dst, b, 0o644)
}

func quoteArgv(argv []string) string {
	out := make([]string, len(argv))
	for i, a := range argv {
		if a == "" || strings.ContainsAny(a, " \t\n'\"\\$;&|<>*?()") {
			a = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
		out[i] = a
	}
	return strings.Join(out, " ")
}
