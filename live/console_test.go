package live

import (
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestKernelConsoles(t *testing.T) {
	got := kernelConsoles("quiet console=tty0 console=ttyS0,115200n8 console=/dev/ttyS1 console=ttyS0 console= console=../x -- console=ttyS2")
	if want := []string{"tty0", "ttyS0", "ttyS1"}; !reflect.DeepEqual(got, want) {
		t.Errorf("kernelConsoles = %q, want %q", got, want)
	}
}

func TestOpenConsolesWritesToEach(t *testing.T) {
	dev := t.TempDir()
	for _, n := range []string{"tty0", "ttyS0"} {
		writeFile(t, filepath.Join(dev, n), "")
	}
	// A console whose writes fail (a UART with nothing behind it gives
	// EIO) must not keep the report from the others.
	if err := os.Symlink("/dev/full", filepath.Join(dev, "ttyS1")); err != nil {
		t.Fatal(err)
	}
	w, closeAll := openConsoles("console=ttyS1 console=tty0 console=ttyS9 console=ttyS0,115200", dev)
	if w == nil {
		t.Fatal("openConsoles: no writer for existing consoles")
	}
	if _, err := io.WriteString(w, "STRATA READY\n"); err != nil {
		t.Fatalf("write: %v", err)
	}
	closeAll()
	for _, n := range []string{"tty0", "ttyS0"} {
		b, err := os.ReadFile(filepath.Join(dev, n))
		if err != nil || string(b) != "STRATA READY\n" {
			t.Errorf("%s holds %q (%v), want the report", n, b, err)
		}
	}
	if w, _ := openConsoles("quiet console=ttyS9", dev); w != nil {
		t.Error("openConsoles: a writer though no named console exists")
	}
}

// The image's uinit runs with System and is handed a stdout (init's pipe,
// through cmd/strata): the report must go to the consoles all the same.
func TestReportToConsolesInTheLiveSystem(t *testing.T) {
	dev := t.TempDir()
	writeFile(t, filepath.Join(dev, "ttyS0"), "")
	var given strings.Builder
	cfg := Config{System: true, Out: &given, Cmdline: "console=ttyS0,115200n8 strata.yes"}
	w, closeAll := reportTo(cfg, dev)
	io.WriteString(w, "summary\n")
	closeAll()
	if b, _ := os.ReadFile(filepath.Join(dev, "ttyS0")); string(b) != "summary\n" || given.Len() != 0 {
		t.Errorf("console got %q, the given Out %q; want all on the console", b, given.String())
	}
	// Not the live system (strata live on a workstation): the given Out.
	cfg.System = false
	w, closeAll = reportTo(cfg, dev)
	io.WriteString(w, "report\n")
	closeAll()
	if given.String() != "report\n" {
		t.Errorf("Out got %q, want the report", given.String())
	}
}
