// Package drill rehearses a restore in QEMU: it serves an adapted copy of the
// profile and a base image, boots the live image against blank virtual disks,
// lets strata restore unattended, boots the restored disks alone through the
// profile's firmware, unlocks them, logs in, and verifies the result against
// the profile. Every phase has a deadline; every failure names its phase and
// shows the last console lines; every console log is kept.
package drill

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/stratahq/strata/profile"
	"github.com/stratahq/strata/qemu-tests/vm"
	"github.com/stratahq/strata/serve"
)

// Options configure a drill.
type Options struct {
	Profile string // the host profile to rehearse
	// DiskSizes overrides a disk's size (profile disk name → bytes), to
	// rehearse a move to a smaller or larger disk.
	DiskSizes map[string]int64
	// Firmware is "auto" (from the profile's bootloader), "bios" or "uefi".
	Firmware string
	// Kernel and Initrd are the live image.
	Kernel, Initrd string
	// SystemImage replaces the profile's system.image with a local archive
	// (and its sha256); the drill serves it.
	SystemImage string
	// WorkDir holds the disks, the served directory, the logs and the report.
	WorkDir string
	// Passphrase is given to every LUKS volume for the drill.
	Passphrase string
	// Login is "user:password" for the checks in the restored system.
	Login string
	// Extra kernel parameters for the live system (e.g. strata.log=debug).
	LiveAppend string
	// Files is a directory served at the top of the drill's file server,
	// beside profiles/ and images/: copies of repos (bare git repositories
	// after git update-server-info) and datasets for a drill that cannot
	// reach the real ones.
	Files string
	// URLMap rewrites the profile's repo URLs and dataset sources by prefix
	// (the longest match wins). A replacement that is not an absolute URL is
	// a path on the drill's file server, e.g.
	// "https://files.example.org/" → "/" with Files holding git/ and datasets/.
	URLMap map[string]string
	// Drive, when set, replaces the unattended restore: the live system
	// boots with neither server nor confirmation on its command line, so
	// its console wizard starts, and Drive works the console (the wizard's
	// end-to-end test). LUKS keys the profile leaves to a prompt stay
	// prompts, for Drive to type Passphrase. The guest must power off.
	Drive func(ctx context.Context, v *vm.VM, l Live) error
	// NoCapture skips the capture round trip: after an unattended restore
	// the live system opens the restored disks again, captures them and
	// the drill checks that the capture gives back the profile.
	NoCapture bool
	Timeouts  Timeouts
	Log       func(format string, args ...any)
}

// Live is what Drive needs to know: the file server as the guest sees
// it, the profile's name there, and the blank disks.
type Live struct {
	Server, Profile, Passphrase string
	Disks                       []Disk
}

// Timeouts bound each phase (TCG defaults; KVM users can shorten them).
type Timeouts struct {
	LiveBoot, Restore, Reboot, Checks time.Duration
}

func (t *Timeouts) defaults() {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&t.LiveBoot, 3*time.Minute)
	def(&t.Restore, 45*time.Minute)
	def(&t.Reboot, 8*time.Minute)
	def(&t.Checks, 3*time.Minute)
}

// Phase is one stage of the drill.
type Phase struct {
	Name    string  `json:"name"`
	Pass    bool    `json:"pass"`
	Seconds float64 `json:"seconds"`
	// Waited is the part of Seconds spent waiting for a VM slot (other
	// guests on this machine), not in the drill itself.
	Waited float64 `json:"waited_seconds,omitempty"`
	Error  string  `json:"error,omitempty"`
	Log    string  `json:"console_log,omitempty"`
	Tail   string  `json:"last_console_lines,omitempty"`
}

// Report is the drill's outcome.
type Report struct {
	Profile  string  `json:"profile"`
	Host     string  `json:"host"`
	Firmware string  `json:"firmware"`
	Disks    []Disk  `json:"disks"`
	Pass     bool    `json:"pass"`
	Seconds  float64 `json:"seconds"`
	Phases   []Phase `json:"phases"`
	Checks   []Check `json:"checks"`
	// Steps are the restore's own steps, timed from its console lines.
	Steps   []Step `json:"steps,omitempty"`
	WorkDir string `json:"work_dir"`
}

// Step is one step of the live restore and how long it took.
type Step struct {
	Name    string  `json:"name"`
	Seconds float64 `json:"seconds"`
}

// Disk is a blank virtual disk the drill restores onto.
type Disk struct {
	Name   string `json:"name"`
	Device string `json:"device"`
	Path   string `json:"path"`
	Size   int64  `json:"size"`
}

// Run performs the drill. The error is for bad options only; everything that
// goes wrong in the drill itself is a failed phase in the report.
func Run(ctx context.Context, opt Options) (*Report, error) {
	if opt.Profile == "" || opt.Kernel == "" || opt.Initrd == "" {
		return nil, errors.New("drill: profile, kernel and initrd are required")
	}
	opt.Timeouts.defaults()
	if opt.Passphrase == "" {
		opt.Passphrase = "strata-drill"
	}
	if opt.Login == "" {
		opt.Login = "root:strata"
	}
	if opt.Log == nil {
		opt.Log = func(string, ...any) {}
	}
	if opt.WorkDir == "" {
		d, err := os.MkdirTemp("", "strata-drill-")
		if err != nil {
			return nil, fmt.Errorf("drill: %w", err)
		}
		opt.WorkDir = d
	}
	rep := &Report{Profile: opt.Profile, WorkDir: opt.WorkDir}
	start := time.Now()
	defer func() { rep.Seconds = time.Since(start).Seconds() }()
	d := &drill{opt: opt, rep: rep}
	d.run(ctx)
	rep.Pass = len(rep.Phases) > 0
	for _, ph := range rep.Phases {
		rep.Pass = rep.Pass && ph.Pass
	}
	for _, c := range rep.Checks {
		rep.Pass = rep.Pass && c.Pass
	}
	return rep, nil
}

type drill struct {
	opt      Options
	rep      *Report
	p        *profile.Profile
	name     string // profile name on the file server
	url      string // the file server as the guest sees it
	hostBase string // the same, as the host reaches it
	logDir   string
	stopSrv  func()
}

// liveBootStep is the live system's boot, from QEMU's start to its ready marker.
const liveBootStep = "live:boot"

// restorePhase is the phase whose steps the report breaks down.
const restorePhase = "live boot and restore"

// capturePhase is the capture round trip in the live system after the restore.
const capturePhase = "capture from the live image"

// capture tells whether the drill runs the capture round trip.
func (d *drill) capture() bool { return !d.opt.NoCapture && d.opt.Drive == nil }

// phase runs fn as a named phase; it returns false when the phase failed.
func (d *drill) phase(name string, fn func(ph *Phase) error) bool {
	d.opt.Log("drill: %s ...", name)
	ph := Phase{Name: name}
	start := time.Now()
	err := fn(&ph)
	ph.Seconds = time.Since(start).Seconds()
	ph.Pass = err == nil
	if err != nil {
		ph.Error = err.Error()
	}
	d.rep.Phases = append(d.rep.Phases, ph)
	d.opt.Log("drill: %s: %s (%.0f s)", name, map[bool]string{true: "PASS", false: "FAIL"}[ph.Pass], ph.Seconds)
	return ph.Pass
}

func (d *drill) run(ctx context.Context) {
	defer func() {
		if d.stopSrv != nil {
			d.stopSrv()
		}
	}()
	if !d.phase("prepare", func(*Phase) error { return d.prepare() }) {
		return
	}
	var live *vm.VM
	if !d.phase(restorePhase, func(ph *Phase) (err error) { live, err = d.restore(ctx, ph); return err }) {
		return
	}
	if live != nil {
		d.phase(capturePhase, func(ph *Phase) error { return d.roundTrip(ctx, live, ph) })
	}
	if d.p.System == nil || d.p.Bootloader == nil {
		return // nothing that boots by itself: the restore of the layout is the drill
	}
	var v *vm.VM
	if !d.phase("boot restored disks", func(ph *Phase) (err error) { v, err = d.reboot(ctx, ph); return err }) {
		return
	}
	d.phase("checks", func(ph *Phase) error { return d.checks(v, ph) })
}

// prepare adapts the profile for the drill, serves it with the base image,
// and creates the blank disks.
func (d *drill) prepare() error {
	p, err := profile.Load(d.opt.Profile)
	if err != nil {
		return fmt.Errorf("profile %s: %w", d.opt.Profile, err)
	}
	d.p = p
	d.rep.Host = p.Host.Name
	d.name = p.Host.Name
	d.logDir = filepath.Join(d.opt.WorkDir, "logs")
	srvDir := filepath.Join(d.opt.WorkDir, "server")
	for _, dir := range []string{d.logDir, filepath.Join(srvDir, "profiles"), filepath.Join(srvDir, "images")} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
	}
	d.rep.Firmware = d.firmware()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("file server: %w", err)
	}
	srv := &http.Server{Handler: serve.Handler(srvDir, d.opt.Log), ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	d.stopSrv = func() { srv.Close() }
	port := ln.Addr().(*net.TCPAddr).Port
	d.url = fmt.Sprintf("http://10.0.2.2:%d/", port) // QEMU user-net's view of the host
	d.hostBase = fmt.Sprintf("http://127.0.0.1:%d/", port)
	d.adaptHandoff(p)
	// The drill's own passphrase, image and serial console; everything else as the user wrote it.
	for i := range p.LUKS {
		if d.opt.Drive == nil || !p.LUKS[i].Key.Prompt {
			p.LUKS[i].Key = profile.Key{Literal: d.opt.Passphrase}
		}
	}
	if p.System != nil {
		if d.opt.SystemImage == "" {
			return errors.New("the profile has a system: give a base image to serve (--system-image)")
		}
		img, sum, err := localImage(d.opt.SystemImage)
		if err != nil {
			return err
		}
		if err := os.Symlink(img, filepath.Join(srvDir, "images", filepath.Base(img))); err != nil {
			return err
		}
		p.System.Image = profile.Image{URL: "images/" + filepath.Base(img), SHA256: sum}
	}
	if d.opt.Files != "" {
		if err := serveFiles(d.opt.Files, srvDir); err != nil {
			return err
		}
	}
	if p.Bootloader != nil {
		p.Bootloader.Cmdline = strings.TrimSpace(p.Bootloader.Cmdline + " " + drillCmdline)
	}
	if err := p.Validate(); err != nil {
		return fmt.Errorf("adapted profile: %w", err)
	}
	if err := p.Save(filepath.Join(srvDir, "profiles", d.name+".yaml")); err != nil {
		return err
	}
	for i, disk := range p.Disks {
		size, err := d.diskSize(disk)
		if err != nil {
			return err
		}
		path := filepath.Join(d.opt.WorkDir, "disk-"+disk.Name+".img")
		f, err := os.Create(path)
		if err != nil {
			return err
		}
		err = f.Truncate(size) // sparse: a blank disk costs nothing
		f.Close()
		if err != nil {
			return err
		}
		d.rep.Disks = append(d.rep.Disks, Disk{Name: disk.Name, Device: "/dev/vd" + string(rune('a'+i)), Path: path, Size: size})
	}
	if d.capture() {
		return d.writeCaptureScript(srvDir)
	}
	return nil
}

// diskSize is the size given on the command line, or the smallest disk the
// selector allows, or what the layout needs plus room for the base system.
func (d *drill) diskSize(disk profile.Disk) (int64, error) {
	if s, ok := d.opt.DiskSizes[disk.Name]; ok {
		return s, nil
	}
	if disk.Select.MinSize.IsAbsolute() {
		return disk.Select.MinSize.Bytes, nil
	}
	var reqs []profile.Request
	for _, pt := range disk.Partitions {
		reqs = append(reqs, profile.Request{Name: pt.Name, Size: pt.Size, Min: pt.MinSize, Max: pt.MaxSize})
	}
	need, err := profile.MinimumFit(reqs, 1<<20)
	if err != nil {
		return 0, fmt.Errorf("disk %s: %w", disk.Name, err)
	}
	return max(need+profile.DiskOverhead(&disk), 8<<30), nil
}

func (d *drill) firmware() string {
	switch d.opt.Firmware {
	case "bios", "uefi":
		return d.opt.Firmware
	}
	if b := d.p.Bootloader; b != nil && b.Type != "grub-bios" {
		return "uefi"
	}
	return "bios"
}

// vmDisks attaches the drill's disks; boot makes the first the firmware's
// boot disk (not for the live boot: -kernel takes that place).
func (d *drill) vmDisks(boot bool) []vm.Disk {
	var out []vm.Disk
	for i, disk := range d.rep.Disks {
		out = append(out, vm.Disk{Path: disk.Path, Serial: "strata-" + disk.Name, Boot: boot && i == 0})
	}
	return out
}

func (d *drill) fw() vm.Firmware {
	if d.rep.Firmware == "uefi" {
		return vm.UEFI
	}
	return vm.BIOS
}

// Console markers the live system prints around an unattended restore.
var (
	readyRE   = `STRATA READY`
	restoreRE = `STRATA RESTORE (OK|FAILED)[^\r\n]*`
	// stepRE is a step line of the plain restore log: "[3/12] mkfs:main/root: done".
	// Whole lines only: a line still arriving would be read as a new state.
	stepRE = `(?m)^\[\d+/\d+\] (\S+): ([^\r\n]*)\r?\n`
)

// restore boots the live system and lets it restore unattended. With the
// capture round trip it returns the live system at its shell, else nil
// once the live system has powered off.
func (d *drill) restore(ctx context.Context, ph *Phase) (*vm.VM, error) {
	var mapping []string
	for _, disk := range d.rep.Disks {
		mapping = append(mapping, disk.Name+"="+disk.Device)
	}
	done := "strata.done=poweroff"
	if d.capture() {
		done = "strata.done=shell"
	}
	appendLine := strings.Join([]string{
		"console=ttyS0,115200", "strata.server=" + d.url, "strata.profile=" + d.name,
		"strata.disk=" + strings.Join(mapping, ","), "strata.yes", done, d.opt.LiveAppend,
	}, " ")
	if d.opt.Drive != nil {
		appendLine = "console=ttyS0,115200 " + d.opt.LiveAppend
	}
	v, err := d.start(ctx, ph, vm.Config{
		Name: "drill-" + d.name + "-live", Firmware: d.fw(), Kernel: d.opt.Kernel, Initrd: d.opt.Initrd,
		Append: appendLine, Disks: d.vmDisks(false), Net: &vm.Net{}, MemoryMB: 2048, CPUs: 2, LogDir: d.logDir,
		Timeout: d.opt.Timeouts.LiveBoot + d.opt.Timeouts.Restore + d.opt.Timeouts.Checks + 5*time.Minute,
	})
	if err != nil {
		return nil, err
	}
	t0 := time.Now() // after Start, which may have waited for a VM slot
	handedOn := false
	defer func() {
		if !handedOn {
			v.Kill()
		}
	}()
	ph.Log = v.LogPath()
	fail := func(err error) (*vm.VM, error) { ph.Tail = v.Tail(40); return nil, err }
	if _, err := v.Expect(readyRE, d.opt.Timeouts.LiveBoot); err != nil {
		return fail(fmt.Errorf("the live system did not come up: %w", err))
	}
	d.rep.Steps = append(d.rep.Steps, Step{Name: liveBootStep, Seconds: time.Since(t0).Seconds()})
	if d.opt.Drive != nil {
		if err := d.opt.Drive(ctx, v, Live{Server: d.url, Profile: d.name, Passphrase: d.opt.Passphrase, Disks: d.rep.Disks}); err != nil {
			return fail(err)
		}
		if err := v.Wait(2 * time.Minute); err != nil {
			return fail(fmt.Errorf("the live system did not power off after the restore: %w", err))
		}
		return nil, nil
	}
	// Follow the restore's step lines to time each step (for the report and
	// bench/drill.sh) until the outcome marker.
	deadline := time.Now().Add(d.opt.Timeouts.Restore)
	started := map[string]time.Time{}
	var m []string
	for {
		m, err = v.Expect(stepRE+`|`+restoreRE, time.Until(deadline))
		if err != nil {
			return fail(fmt.Errorf("the restore did not finish: %w", err))
		}
		if m[1] == "" {
			break // the outcome marker
		}
		switch step, state := m[1], m[2]; {
		case state == "done" || strings.HasPrefix(state, "done (") || strings.HasPrefix(state, "skipped") || strings.HasPrefix(state, "FAILED"):
			if t0, ok := started[step]; ok {
				d.rep.Steps = append(d.rep.Steps, Step{Name: step, Seconds: time.Since(t0).Seconds()})
			}
		default:
			started[step] = time.Now()
		}
	}
	m = regexp.MustCompile(restoreRE).FindStringSubmatch(m[0])
	if m[1] != "OK" {
		return fail(fmt.Errorf("the restore failed: %s", strings.TrimSpace(m[0])))
	}
	if d.capture() {
		handedOn = true
		return v, nil
	}
	if err := v.Wait(2 * time.Minute); err != nil {
		return fail(fmt.Errorf("the live system did not power off after the restore: %w", err))
	}
	return nil, nil
}

// start starts a guest for phase ph, counting the wait for a VM slot
// (qemu-tests/vm shares them machine-wide) apart from the phase's work.
func (d *drill) start(ctx context.Context, ph *Phase, cfg vm.Config) (*vm.VM, error) {
	t0 := time.Now()
	v, err := vm.Start(ctx, cfg)
	if w := time.Since(t0); w > 2*time.Second {
		ph.Waited += w.Seconds()
	}
	return v, err
}

// drillCmdline is added to the restored system's kernel command line: its
// serial console for the drill to read, and a longer wait for devices than
// systemd's 90 s, since an emulated guest (TCG) on a busy host can stall
// for most of a minute (seen: both vCPUs stuck 45 s in modprobe, udev's
// device jobs timed out, emergency mode) without anything being wrong.
const drillCmdline = "console=ttyS0,115200 systemd.default_timeout_start_sec=300"

var unlockRE = `(Please unlock disk \S+|Enter passphrase for \S+)`

func (d *drill) reboot(ctx context.Context, ph *Phase) (*vm.VM, error) {
	v, err := d.start(ctx, ph, vm.Config{
		Name: "drill-" + d.name + "-restored", Firmware: d.fw(), Disks: d.vmDisks(true), Net: &vm.Net{}, CPUs: 2,
		MemoryMB: 2048, LogDir: d.logDir, Timeout: d.opt.Timeouts.Reboot + d.opt.Timeouts.Checks,
	})
	if err != nil {
		return nil, err
	}
	ph.Log = v.LogPath()
	fail := func(err error) (*vm.VM, error) { ph.Tail = v.Tail(40); v.Kill(); return nil, err }
	deadline := time.Now().Add(d.opt.Timeouts.Reboot)
	for range d.p.LUKS {
		if _, err := v.Expect(unlockRE+`|login:`, time.Until(deadline)); err != nil {
			return fail(fmt.Errorf("no LUKS passphrase prompt: %w", err))
		}
		if err := v.Send(d.opt.Passphrase + "\n"); err != nil {
			return fail(err)
		}
	}
	m, err := v.Expect(`login:|`+emergencyRE, time.Until(deadline))
	if err != nil {
		return fail(fmt.Errorf("the restored system did not reach a login prompt: %w", err))
	}
	if m[0] != "login:" {
		return fail(fmt.Errorf("the restored system stopped in emergency mode%s", bootFailures(v.Console().Output())))
	}
	return v, nil
}

// emergencyRE is systemd's emergency or rescue shell: the boot has failed, so
// waiting out the deadline for a login prompt would only hide why.
const emergencyRE = `You are in (emergency|rescue) mode`

// bootFailures picks systemd's reasons (timed-out devices, failed units) from
// the console, without colours, for the drill's error.
func bootFailures(console string) string {
	var why []string
	for _, l := range strings.Split(ansiRE.ReplaceAllString(console, ""), "\n") {
		l = strings.TrimSpace(l)
		if strings.Contains(l, "Timed out waiting for device") || strings.Contains(l, "Dependency failed for") ||
			strings.Contains(l, "Failed to mount") || strings.Contains(l, "Failed to start") {
			why = append(why, l)
		}
	}
	if len(why) == 0 {
		return ""
	}
	return ": " + strings.Join(why, "; ")
}

var ansiRE = regexp.MustCompile(`\x1b\[[0-9;?=]*[A-Za-z]`)

func (d *drill) checks(v *vm.VM, ph *Phase) error {
	defer v.Kill()
	ph.Log = v.LogPath()
	fail := func(err error) error { ph.Tail = v.Tail(40); return err }
	user, pass, _ := strings.Cut(d.opt.Login, ":")
	steps := []struct{ send, expect string }{
		{user + "\n", `Password:`},
		{pass + "\n", `# $|# \S*$|:~# `},
		// The markers are built by the shell, so the echoed command line never matches them.
		{"M=STRATA-INVENTORY; echo $M-BEGIN; " + inventoryCommands + "; echo $M-END\n", `(?m)^` + InventoryEnd},
	}
	for _, s := range steps {
		if err := v.Send(s.send); err != nil {
			return fail(err)
		}
		if _, err := v.Expect(s.expect, d.opt.Timeouts.Checks); err != nil {
			return fail(fmt.Errorf("login and inventory: %w", err))
		}
	}
	inv, err := ParseInventory(v.Console().Output())
	if err != nil {
		return fail(err)
	}
	first := len(d.rep.Checks) // the capture's checks come before, in their own phase
	d.rep.Checks = append(d.rep.Checks, Verify(d.p, inv)...)
	if len(d.p.Repos)+len(d.p.Datasets) > 0 {
		cmd := "M=STRATA-HANDOFF; echo $M-BEGIN; " + handoffCommands(d.p) + "echo $M-END\n"
		if err := v.Send(cmd); err != nil {
			return fail(err)
		}
		if _, err := v.Expect(`(?m)^`+handoffEnd, d.opt.Timeouts.Checks); err != nil {
			return fail(fmt.Errorf("hand-off inventory: %w", err))
		}
		hinv, err := parseHandoff(v.Console().Output())
		if err != nil {
			return fail(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), d.opt.Timeouts.Checks)
		d.rep.Checks = append(d.rep.Checks, d.checkHandoff(ctx, hinv)...)
		cancel()
	}
	_ = v.Send("poweroff\n")
	_ = v.Wait(time.Minute)
	return failedChecks(d.rep.Checks[first:])
}

// failedChecks is an error naming the checks that failed, or nil.
func failedChecks(checks []Check) error {
	var failed []string
	for _, c := range checks {
		if !c.Pass {
			failed = append(failed, c.Name)
		}
	}
	if len(failed) > 0 {
		return fmt.Errorf("%d checks failed: %s", len(failed), strings.Join(failed, ", "))
	}
	return nil
}

// localImage resolves an archive and its sha256 (from FILE.sha256 when present).
func localImage(path string) (string, string, error) {
	real, err := filepath.EvalSymlinks(path)
	if err != nil {
		return "", "", fmt.Errorf("base image: %w", err)
	}
	b, err := os.ReadFile(real + ".sha256")
	if err != nil {
		return "", "", fmt.Errorf("base image %s: no %s.sha256 beside it (sha256sum FILE > FILE.sha256)", path, filepath.Base(real))
	}
	f := strings.Fields(string(b))
	if len(f) == 0 || !regexp.MustCompile(`^[0-9a-f]{64}$`).MatchString(f[0]) {
		return "", "", fmt.Errorf("base image %s: %s.sha256 holds no checksum", path, filepath.Base(real))
	}
	return real, f[0], nil
}
