package image

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"

	"github.com/stratahq/strata/internal/run"
)

// Test inputs: the cached Debian kernel and a marker initramfs.

// sharedDirs are temporary directories shared by several tests (built once
// per test binary); TestMain removes them.
var (
	sharedMu   sync.Mutex
	sharedDirs []string
)

func sharedTempDir(pattern string) (string, error) {
	dir, err := os.MkdirTemp("", pattern)
	if err == nil {
		sharedMu.Lock()
		sharedDirs = append(sharedDirs, dir)
		sharedMu.Unlock()
	}
	return dir, err
}

func TestMain(m *testing.M) {
	code := m.Run()
	for _, d := range sharedDirs {
		os.RemoveAll(d)
	}
	os.Exit(code)
}

// testKernel returns the kernel unpacked by `make deps`, or skips.
func testKernel(t testing.TB) string {
	t.Helper()
	if k := os.Getenv("STRATA_TEST_KERNEL"); k != "" {
		return k
	}
	cache := os.Getenv("STRATA_CACHE")
	if cache == "" {
		home, _ := os.UserHomeDir()
		cache = filepath.Join(home, ".cache", "strata")
	}
	m, _ := filepath.Glob(filepath.Join(cache, "kernel", "current", "root", "boot", "vmlinuz-*"))
	if len(m) == 0 {
		t.Skipf("skipping: no kernel in %s/kernel/current (run make deps)", cache)
	}
	return m[0]
}

// markerInit is /init of the marker initramfs: it prints the line the real
// live system prints, with the command line, and powers off.
const markerInit = `#!/bin/busybox sh
/bin/busybox mkdir -p /proc /dev
/bin/busybox mount -t proc proc /proc
/bin/busybox mount -t devtmpfs dev /dev
echo "STRATA READY (marker initramfs) cmdline: $(/bin/busybox cat /proc/cmdline)" > /dev/ttyS0
/bin/busybox poweroff -f
`

var (
	markerOnce sync.Once
	markerPath string
	markerErr  error
)

// markerInitrd builds (once per test binary) a tiny initramfs from
// busybox-static that prints "STRATA READY" on ttyS0.
func markerInitrd(t testing.TB) string {
	t.Helper()
	bb, err := exec.LookPath("busybox")
	if err != nil {
		t.Skip("skipping: busybox not on PATH (apt-get install busybox-static)")
	}
	markerOnce.Do(func() {
		var data []byte
		data, markerErr = os.ReadFile(bb)
		if markerErr != nil {
			return
		}
		var buf bytes.Buffer
		w := cpioWriter{w: &buf}
		w.dir("bin")
		w.dir("dev")
		w.dir("proc")
		w.file("bin/busybox", 0o755, data)
		w.file("init", 0o755, []byte(markerInit))
		w.trailer()
		dir, err := sharedTempDir("strata-marker-")
		if err != nil {
			markerErr = err
			return
		}
		markerPath = filepath.Join(dir, "marker.cpio")
		markerErr = os.WriteFile(markerPath, buf.Bytes(), 0o644)
	})
	if markerErr != nil {
		t.Fatalf("marker initramfs: %v", markerErr)
	}
	return markerPath
}

// cpioWriter writes the newc format the kernel unpacks.
type cpioWriter struct {
	w   *bytes.Buffer
	ino int
}

func (c *cpioWriter) entry(name string, mode uint32, data []byte) {
	c.ino++
	fmt.Fprintf(c.w, "070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X",
		c.ino, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(name)+1, 0)
	c.w.WriteString(name)
	c.w.WriteByte(0)
	c.pad()
	c.w.Write(data)
	c.pad()
}

func (c *cpioWriter) pad() {
	for c.w.Len()%4 != 0 {
		c.w.WriteByte(0)
	}
}

func (c *cpioWriter) dir(name string)                         { c.entry(name, 0o040755, nil) }
func (c *cpioWriter) file(name string, perm uint32, b []byte) { c.entry(name, 0o100000|perm, b) }
func (c *cpioWriter) trailer()                                { c.entry("TRAILER!!!", 0, nil) }

// needTools skips the test when a program is missing.
func needTools(t testing.TB, names ...string) {
	t.Helper()
	for _, n := range names {
		if _, err := exec.LookPath(n); err != nil {
			t.Skipf("skipping: %s not on PATH", n)
		}
	}
}

// testOptions returns Options for a build into a fresh directory, logging
// to the test.
func testOptions(t testing.TB, initrd string) Options {
	t.Helper()
	return Options{
		Kernel: testKernel(t),
		Initrd: initrd,
		Out:    t.TempDir(),
		Log:    func(format string, a ...any) { t.Logf(format, a...) },
	}
}

// output runs a command for a structure check and returns its stdout.
func output(t testing.TB, name string, args ...string) string {
	t.Helper()
	res, err := run.Exec{}.Run(context.Background(), run.Cmd{Name: name, Args: args, Env: []string{"MTOOLS_SKIP_CHECK=1"}})
	if err != nil {
		t.Fatalf("%v", err)
	}
	return string(res.Stdout)
}
