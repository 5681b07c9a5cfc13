package vm

import (
	"context"
	"net"
	"os/exec"
	"testing"
)

// StartT starts a guest for a test. It skips the test (with the reason) when
// QEMU is not installed, fails it when the guest cannot start, kills the VM
// on cleanup and, if the test failed, logs the serial log's path and the last
// 40 console lines. cfg.Name defaults to the test's name.
func StartT(t testing.TB, cfg Config) *VM {
	t.Helper()
	if _, err := exec.LookPath(QEMUBinary); err != nil {
		t.Skipf("skipping: %s not on PATH (apt-get install qemu-system-x86)", QEMUBinary)
	}
	if cfg.Name == "" {
		cfg.Name = t.Name()
	}
	v, err := Start(context.Background(), cfg)
	if err != nil {
		t.Fatalf("start VM: %v", err)
	}
	t.Cleanup(func() {
		v.Kill()
		if t.Failed() {
			t.Logf("VM %s: serial log %s; last 40 lines:\n%s", cfg.Name, v.LogPath(), v.Tail(40))
			if v.con1 != nil {
				t.Logf("VM %s ttyS1, last 20 lines:\n%s", cfg.Name, v.con1.Tail(20))
			}
		}
	})
	return v
}

func dialUnix(path string) (net.Conn, error) { return net.Dial("unix", path) }
