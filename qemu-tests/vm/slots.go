package vm

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"
)

// Slots bounds how many guests run at once on this machine, across every
// process (go test runs packages in parallel): TCG guests beyond the number
// of cores only make each other miss their deadlines. STRATA_VM_SLOTS
// overrides it; 0 or less means no limit.
func Slots() int {
	if n, err := strconv.Atoi(os.Getenv("STRATA_VM_SLOTS")); err == nil {
		return n
	}
	return 2
}

// acquireSlot takes a machine-wide slot (an flock on a file in the temp
// directory) and returns its release, waiting while all are taken.
func acquireSlot(ctx context.Context) (func(), error) {
	n := Slots()
	if n <= 0 {
		return func() {}, nil
	}
	for {
		for i := range n {
			f, err := os.OpenFile(filepath.Join(os.TempDir(), fmt.Sprintf("strata-vm-slot-%d.lock", i)), os.O_CREATE|os.O_RDWR, 0o666)
			if err != nil {
				return nil, fmt.Errorf("vm: slot: %w", err)
			}
			if syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) == nil {
				return func() { f.Close() }, nil
			}
			f.Close()
		}
		select {
		case <-time.After(250 * time.Millisecond):
		case <-ctx.Done():
			return nil, fmt.Errorf("vm: waiting for a free VM slot (%d in use): %w", n, ctx.Err())
		}
	}
}
