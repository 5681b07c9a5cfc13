package qemutests

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stratahq/strata/drill"
	"github.com/stratahq/strata/initramfs"
	"github.com/stratahq/strata/qemu-tests/vm"
)

// wizardImage builds a live image of its own: the shared test-live
// directory may be rebuilt by another test binary (from another checkout)
// while this one waits for a VM slot.
func wizardImage(t *testing.T) initramfs.Result {
	liveImage(t)           // its skips: -short, no QEMU, no kernel
	wizardOnce.Do(func() { // the tests run in parallel: build once
		wizardImg, wizardErr = initramfs.Build(context.Background(), initramfs.Options{
			Out: filepath.Join(initramfs.DefaultCacheDir(), "test-live-wizard"), Log: func(string, ...any) {}})
	})
	if wizardErr != nil {
		t.Fatalf("build live image: %v", wizardErr)
	}
	return wizardImg
}

var (
	wizardOnce sync.Once
	wizardImg  initramfs.Result
	wizardErr  error
)

// TestWizardOnConsole boots the live image without parameters: the wizard
// takes the serial console (rescue shells stay elsewhere), and leaving it
// gives the console a shell.
func TestWizardOnConsole(t *testing.T) {
	t.Parallel() // VM tests share the machine's VM slots (qemu-tests/vm)
	img := wizardImage(t)
	v := vm.StartT(t, vm.Config{Kernel: img.Kernel, Initrd: img.Initramfs, Append: "console=ttyS0 panic=-1",
		Net: &vm.Net{}, Serial1: true, Timeout: 5 * time.Minute, NoReboot: true})
	w := &wiz{v: v, t: t, t0: time.Now()}
	w.see("starting the restore wizard on ttyS0", 3*time.Minute)
	w.see("1/8 Network", time.Minute)
	// The help line (in ASCII) comes with the first frame, the interfaces
	// once they are read.
	w.see(`enter next \| \^C shell`, time.Minute)
	w.see(`eth0 +52:54:00:12:34:56 up +10\.0\.2\.15/24`, time.Minute)
	if _, err := v.Serial1().Expect("rescue shell on ttyS1", time.Minute); err != nil {
		t.Fatal(err)
	}
	w.key("\x03")
	w.see("the wizard has ended; here is a shell", time.Minute)
	w.see(`strata-live:\S*# `, time.Minute)
	w.typeText("echo wiz-$((6*7))")
	w.key("\r")
	w.see("wiz-42", time.Minute)
}

// TestWizardPrefilled boots with a server and a profile but no strata.yes
// (a PXE menu entry): a person is at the console, so the wizard starts with
// the server filled in rather than the unattended run stopping unconfirmed.
func TestWizardPrefilled(t *testing.T) {
	t.Parallel() // VM tests share the machine's VM slots (qemu-tests/vm)
	img := wizardImage(t)
	v := vm.StartT(t, vm.Config{Kernel: img.Kernel, Initrd: img.Initramfs,
		Append:  "console=ttyS0 panic=-1 strata.server=http://10.0.2.2:8099 strata.profile=laptop strata.net=none strata.rescue=none",
		Timeout: 5 * time.Minute, NoReboot: true})
	w := &wiz{v: v, t: t, t0: time.Now()}
	w.see(`no strata\.yes: the wizard starts with the kernel command line's server, profile and disks filled in`, 3*time.Minute)
	w.see("1/8 Network", time.Minute)
	w.see(`File server +\[http://10\.0\.2\.2:8099 `, time.Minute)
	if out := v.Console().Output(); strings.Contains(out, "STRATA RESTORE") || strings.Contains(out, "plan: unattended restore") {
		t.Errorf("the unattended run started without strata.yes:\n%s", v.Tail(30))
	}
}

// TestWizard restores the laptop example through the console wizard onto a
// disk 30% smaller than the profile's (the drill case laptop-smaller, which
// CI leaves to this test), as a
// person at a serial terminal would: the test types on ttyS0 and reads
// what the wizard draws there (TERM=vt100: plain ASCII), from the network
// screen to the done screen, and chooses power off. The drill's pieces do
// the rest: file server, blank disk, booting the restored disk, unlocking
// LUKS with the passphrase typed in the wizard, and the login and checks.
func TestWizard(t *testing.T) {
	t.Parallel() // VM tests share the machine's VM slots (qemu-tests/vm)
	if os.Getenv("STRATA_WIZARD_E2E") == "0" {
		t.Skip("skipping: STRATA_WIZARD_E2E=0 (a full laptop restore through the wizard, 12-16 min under TCG)")
	}
	img := wizardImage(t)
	base := filepath.Join(initramfs.DefaultCacheDir(), "images", "test-image.tar.zst")
	if _, err := os.Stat(base); err != nil {
		t.Skipf("skipping: no base-system test image (%v): make test-image builds it", err)
	}
	work := drillWorkDir(t, "wizard-laptop")
	ctx, cancel := context.WithTimeout(context.Background(), 75*time.Minute) // slot waits included: every VM test of the package runs in parallel
	defer cancel()
	o := drill.Options{Profile: "../examples/laptop-uefi.yaml", DiskSizes: map[string]int64{"main": laptopSmaller},
		Kernel: img.Kernel, Initrd: img.Initramfs, SystemImage: base, WorkDir: work, Log: t.Logf,
		Drive: driveWizard(t, filepath.Join(work, "server", "images"))}
	o.Files, o.URLMap = laptopFiles(t, base)
	start := time.Now()
	rep, err := drill.Run(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	rep.Text(&b)
	t.Logf("\n%s\nwhole test: %s", b.String(), time.Since(start).Round(time.Second))
	_ = rep.WriteJSON(filepath.Join(work, "report.json"))
	if !rep.Pass {
		t.Fatalf("the restore through the wizard failed; serial logs in %s/logs", work)
	}
	files, _ := filepath.Glob(filepath.Join(work, "disk-*.img"))
	for _, f := range files {
		os.Remove(f)
	}
}

// driveWizard works the wizard screen by screen. Each wait names the
// screen it expects, so a failure says where the wizard stopped. The base
// image in images is hidden until the first attempt fails on it: the
// failure, the refused skip and the retry (which resumes on the layers
// already made) are real too.
func driveWizard(t *testing.T, images string) func(ctx context.Context, v *vm.VM, l drill.Live) error {
	return func(ctx context.Context, v *vm.VM, l drill.Live) error {
		w := &wiz{v: v, t: t, t0: time.Now()}
		hidden, _ := filepath.Glob(filepath.Join(images, "*"))
		for _, f := range hidden {
			if err := os.Rename(f, f+".hidden"); err != nil {
				return err
			}
		}
		server := strings.TrimRight(l.Server, "/")
		w.see("1/8 Network", 2*time.Minute)
		w.see(`File server  \[`, 30*time.Second)
		w.typeText(server)
		w.see(regexp.QuoteMeta("["+server)+` *\]`, time.Minute)
		w.key("\r")
		w.see("2/8 Host profile", time.Minute)
		// The laptop's host.match names the guest's MAC: it is preselected.
		w.see(`> `+l.Profile+` .*matches this machine`, 30*time.Second)
		w.key("\r")
		w.see("Profile "+l.Profile, time.Minute)
		w.key("\r")
		w.see("3/8 Disks", time.Minute)
		// The disk is 30% smaller than the profile's min_size: automatic
		// matching refuses it, and the person picks it by hand (space), as
		// someone moving to a smaller disk would.
		w.see(`is below min_size 8GiB`, 2*time.Minute)
		w.key(" ")
		w.see(`ok main -> /dev/vda`, 2*time.Minute)
		w.key("\r")
		w.see("4/8 Plan", time.Minute)
		w.see(`main /dev/vda .*ERASE`, 30*time.Second)
		w.key("\r")
		w.see("5/8 Secrets", time.Minute)
		w.see("the same again", 30*time.Second)
		time.Sleep(2 * time.Second) // the rest of the screen
		// Repository credentials are offered for the hand-off's server:
		// none are needed, enter passes over them.
		creds := 0
		if strings.Contains(v.Console().Output(), "repositories: URL prefix") {
			creds = 3
		}
		// Mistyped on purpose first: the wizard asks again.
		for _, again := range []string{l.Passphrase + "x", l.Passphrase} {
			w.typeText(l.Passphrase)
			w.key("\r")
			w.typeText(again)
			w.key("\r")
			for range creds {
				w.key("\r")
			}
			if again != l.Passphrase {
				w.see("differ: type them again", time.Minute)
			}
		}
		w.see("6/8 Confirm", time.Minute)
		w.typeText("vdb")
		w.key("\r")
		w.see(`"vdb" is not "vda": nothing was written`, time.Minute)
		w.typeText("vda")
		w.key("\r")
		w.see("7/8 Restore", time.Minute)
		w.see(`FAILED: system:image`, 30*time.Minute)
		w.see(`s skip \(not possible here\)`, time.Minute)
		t.Logf("wizard: the first attempt failed on the hidden base image after %s", time.Since(w.t0).Round(time.Second))
		w.key("s")
		w.see("system:image cannot be skipped", time.Minute)
		for _, f := range hidden {
			if err := os.Rename(f+".hidden", f); err != nil {
				return err
			}
		}
		w.key("r")
		w.see("attempt 2", time.Minute)
		m := w.see(`8/8 Done|FAILED: \S+`, 45*time.Minute)
		if m[0] != "8/8 Done" {
			w.see(`r retry`, time.Minute)
			return fmt.Errorf("the restore failed in the wizard (%s); last lines:\n%s", m[0], v.Tail(30))
		}
		w.see(`is done\.`, time.Minute)
		w.see(`\(2 attempts\)`, time.Minute)
		t.Logf("wizard: done screen after %s", time.Since(w.t0).Round(time.Second))
		w.key("p")
		return nil
	}
}

type wiz struct {
	v  *vm.VM
	t  *testing.T
	t0 time.Time
}

// see waits for re on the console, or fails the test with the console's
// last lines (Expect's error carries them).
func (w *wiz) see(re string, timeout time.Duration) []string {
	w.t.Helper()
	m, err := w.v.Expect(re, timeout)
	if err != nil {
		w.t.Fatalf("wizard after %s: %v", time.Since(w.t0).Round(time.Second), err)
	}
	return m
}

// key sends one key; typeText sends text a few keys at a time, since a
// serial line under TCG drops input sent in one burst.
func (w *wiz) key(k string) {
	w.t.Helper()
	time.Sleep(300 * time.Millisecond)
	if err := w.v.Send(k); err != nil {
		w.t.Fatal(err)
	}
}

func (w *wiz) typeText(s string) {
	w.t.Helper()
	for i := 0; i < len(s); i += 4 {
		w.key(s[i:min(i+4, len(s))])
	}
}
