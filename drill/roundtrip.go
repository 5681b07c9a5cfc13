package drill

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/stratahq/strata/capture"
	"github.com/stratahq/strata/capture/diff"
	"github.com/stratahq/strata/profile"
	"github.com/stratahq/strata/qemu-tests/vm"
)

// The capture round trip: after the restore, still in the live system,
// strata opens the restored disks again as the profile describes them
// (strata open --read-only: every layer verified, nothing written),
// captures them with strata capture --root (recording what it read), and
// closes them. The host replays the recording, merges the capture into the
// served profile and compares: every field the profile sets must come back
// as it was, bootloader and system included.

// captureScript is served to the live system and run from its shell. Its
// markers are printed by the script, never typed, so the echo of the
// command line cannot match them.
func (d *drill) captureScript() string {
	var disks []string
	for _, disk := range d.rep.Disks {
		disks = append(disks, "--disk "+disk.Name+"="+disk.Device)
	}
	flags := strings.Join(disks, " ")
	return strings.Join([]string{
		"P=/tmp/drill-profile.yaml",
		"busybox wget -q -O $P " + d.url + "profiles/" + d.name + ".yaml || { echo STRATA-CAPTURE-END fetch; exit 0; }",
		"if strata open $P --read-only " + flags + " > /tmp/open.log 2>&1; then",
		"  strata capture -root /mnt/strata -record /tmp/rec.txt > /tmp/captured.yaml 2> /tmp/capture.err; rc=$?",
		"else rc=open; busybox tail -n 25 /tmp/open.log; fi",
		"echo STRATA-CAPTURE-WARNINGS; busybox cat /tmp/capture.err 2>/dev/null",
		// gzip: a recording with a checkout of /etc is over half a megabyte,
		// nearly a minute at 115200 baud.
		"echo STRATA-CAPTURE-BEGIN; busybox gzip -c /tmp/rec.txt 2>/dev/null | busybox base64",
		"echo STRATA-CAPTURE-END rc=$rc",
		"strata restore $P --close " + flags + " > /tmp/close.log 2>&1 || { echo STRATA-CLOSE-FAILED; busybox tail -n 15 /tmp/close.log; }",
		"sync; busybox poweroff -f",
		"",
	}, "\n")
}

const captureScriptPath = "drill/capture.sh"

func (d *drill) writeCaptureScript(srvDir string) error {
	p := filepath.Join(srvDir, captureScriptPath)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	return os.WriteFile(p, []byte(d.captureScript()), 0o644)
}

// captureEndRE: the whole line, or "rc=0" would be read as "r".
var captureEndRE = `STRATA-CAPTURE-END (\S+)\r?\n`

// roundTrip runs the capture in the live system v (at its shell after the
// restore) and adds its checks to the report. v powers off at the end.
func (d *drill) roundTrip(ctx context.Context, v *vm.VM, ph *Phase) error {
	defer v.Kill()
	ph.Log = v.LogPath()
	fail := func(err error) error { ph.Tail = v.Tail(40); return err }
	if err := v.WaitPrompt(vm.LivePrompt, 3*time.Minute); err != nil {
		return fail(fmt.Errorf("no live shell after the restore: %w", err))
	}
	from := len(v.Console().Output())
	line := "busybox wget -q -O /tmp/c.sh " + d.url + captureScriptPath + " && busybox sh /tmp/c.sh"
	if err := v.TypeLine(line, time.Minute); err != nil {
		return fail(err)
	}
	m, err := v.Expect(captureEndRE, d.opt.Timeouts.Checks)
	if err != nil {
		return fail(fmt.Errorf("the capture did not finish: %w", err))
	}
	out := v.Console().Output()[from:]
	if m[1] != "rc=0" {
		return fail(fmt.Errorf("capture in the live system failed (%s)", m[1]))
	}
	rec, warnings, err := captureOutput(out)
	if err != nil {
		return fail(err)
	}
	if err := v.Wait(3 * time.Minute); err != nil {
		return fail(fmt.Errorf("the live system did not close the disks and power off after the capture: %w", err))
	}
	if strings.Contains(out, "STRATA-CLOSE-FAILED") {
		return fail(fmt.Errorf("strata restore --close failed after the capture"))
	}
	checks, err := compareCapture(ctx, filepath.Join(d.opt.WorkDir, "server", "profiles", d.name+".yaml"), rec)
	if err != nil {
		return err
	}
	if warnings != "" {
		d.opt.Log("drill: capture warnings:\n%s", warnings)
	}
	d.rep.Checks = append(d.rep.Checks, checks...)
	return failedChecks(checks)
}

// captureOutput takes the recording (base64 between markers) and the
// capture's warnings from the console.
func captureOutput(console string) (rec []byte, warnings string, err error) {
	console = strings.ReplaceAll(console, "\r", "")
	_, rest, ok := strings.Cut(console, "STRATA-CAPTURE-WARNINGS\n")
	if !ok {
		return nil, "", fmt.Errorf("capture: no warnings marker on the console")
	}
	warnings, rest, ok = strings.Cut(rest, "STRATA-CAPTURE-BEGIN\n")
	if !ok {
		return nil, "", fmt.Errorf("capture: no recording on the console")
	}
	b64, _, _ := strings.Cut(rest, "STRATA-CAPTURE-END")
	gz, err := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(b64), ""))
	if err != nil {
		return nil, "", fmt.Errorf("capture: the recording is damaged: %w", err)
	}
	zr, err := gzip.NewReader(bytes.NewReader(gz))
	if err != nil {
		return nil, "", fmt.Errorf("capture: the recording is damaged: %w", err)
	}
	if rec, err = io.ReadAll(zr); err != nil {
		return nil, "", fmt.Errorf("capture: the recording is damaged: %w", err)
	}
	return rec, strings.TrimSpace(warnings), nil
}

// compareCapture replays the recording, merges the capture into the
// profile that was restored and turns the differences into checks.
func compareCapture(ctx context.Context, restoredFile string, recording []byte) ([]Check, error) {
	r, err := capture.ParseRecording(recording)
	if err != nil {
		return nil, fmt.Errorf("capture recording: %w", err)
	}
	o := r.Options
	res, err := capture.Capture(ctx, capture.Options{Root: o.Root, Disks: o.Disks, Storage: o.Storage, Runner: r, FS: r})
	if err != nil {
		return nil, fmt.Errorf("capture replay: %w", err)
	}
	var checks []Check
	if err := res.Profile.Validate(); err != nil {
		checks = append(checks, Check{Name: "capture: the captured profile validates", Detail: err.Error()})
	}
	restored, err := profile.Load(restoredFile)
	if err != nil {
		return nil, err
	}
	merged, err := profile.Load(restoredFile)
	if err != nil {
		return nil, err
	}
	capture.Merge(merged, res)
	return append(checks, roundTripChecks(diff.Profiles(restored, merged))...), nil
}

// relativeSize is a size the restore fitted to the disks: a capture can
// only state the size it finds.
var relativeSize = regexp.MustCompile(`(^rest$|%)`)

// machineSpecific are the fields that describe the hardware a profile is
// meant for (MAC addresses, DMI data, disk selectors): the drill restores
// onto QEMU's, so they cannot come back.
var machineSpecific = regexp.MustCompile(`^(host\.match\b|disks\.[^.]+\.select\b)`)

// roundTripChecks: a field the profile sets that comes back different or
// not at all fails; what the capture adds (UUIDs, settings the profile
// leaves open) passes; a relative size (60%, rest, 90%free) that became
// the fitted one passes with a note, with its min/max bounds.
func roundTripChecks(changes []diff.Change) []Check {
	var checks []Check
	added, fitted := 0, map[string]bool{}
	for _, c := range changes {
		if c.Kind == diff.Changed && strings.HasSuffix(c.Path, ".size") && relativeSize.MatchString(c.Old) {
			fitted[strings.TrimSuffix(c.Path, ".size")] = true
		}
	}
	for _, c := range changes {
		base := c.Path[:max(strings.LastIndex(c.Path, "."), 0)]
		switch {
		case c.Kind == diff.Added:
			added++
		case machineSpecific.MatchString(c.Path):
			checks = append(checks, Check{Name: "capture: " + c.Path + " (the drill's virtual machine, not the profile's hardware)", Pass: true, Detail: c.String()})
		case fitted[base] && (strings.HasSuffix(c.Path, ".size") || c.Kind == diff.Removed && (strings.HasSuffix(c.Path, ".min_size") || strings.HasSuffix(c.Path, ".max_size"))):
			checks = append(checks, Check{Name: "capture: " + c.Path + " (a relative size, fitted by the restore)", Pass: true, Detail: c.String()})
		default:
			checks = append(checks, Check{Name: "capture: " + c.Path + " comes back as restored", Detail: c.String()})
		}
	}
	checks = append(checks, Check{Name: "capture: every field the profile sets comes back", Pass: failedChecks(checks) == nil,
		Detail: fmt.Sprintf("%d fields the profile leaves open were captured", added)})
	return checks
}
