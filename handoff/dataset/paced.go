package dataset

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// pacedOutput is a child's stdout, handed to dst a batch at a time. rsync
// writes a progress line and a name line for every file; read as each is
// written (os/exec's copy goes through the runtime's poller, which wakes a
// thread per write), 10,000 small files cost about 20,000 wake-ups on the
// cores the transfer needs. Here the read end is polled every pace instead,
// outside the poller, so a batch of lines costs one read and the writes
// wake nobody.
type pacedOutput struct {
	w    *os.File // for the child (Cmd.Stdout)
	r    int
	stop atomic.Bool
	wake chan struct{} // the child has exited: read what is left now, once
	done chan struct{}
}

// pace is how long output may wait in the pipe: well under the progress
// reports' 50 ms, and rsync's lines for a second of small files fit the
// pipe's buffer many times over.
const pace = 5 * time.Millisecond

func newPacedOutput(dst io.Writer) (*pacedOutput, error) {
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		return nil, fmt.Errorf("pipe: %w", err)
	}
	if err := unix.SetNonblock(p[0], true); err != nil {
		unix.Close(p[0])
		unix.Close(p[1])
		return nil, fmt.Errorf("pipe: %w", err)
	}
	_, _ = unix.FcntlInt(uintptr(p[0]), unix.F_SETPIPE_SZ, 1<<20) // more slack when it can
	o := &pacedOutput{w: os.NewFile(uintptr(p[1]), "stdout"), r: p[0], wake: make(chan struct{}, 1), done: make(chan struct{})}
	go o.copy(dst)
	return o, nil
}

func (o *pacedOutput) copy(dst io.Writer) {
	defer close(o.done)
	defer unix.Close(o.r)
	buf := make([]byte, 256<<10)
	pause := time.NewTimer(pace)
	defer pause.Stop()
	for {
		n, err := unix.Read(o.r, buf)
		switch {
		case n > 0:
			dst.Write(buf[:n])
			if n == len(buf) {
				continue // more is waiting
			}
		case errors.Is(err, unix.EINTR):
			continue
		case errors.Is(err, unix.EAGAIN):
		default:
			return // the end: every write end is closed (or the pipe failed)
		}
		if o.stop.Load() {
			return
		}
		pause.Reset(pace)
		select {
		case <-pause.C:
		case <-o.wake:
		}
	}
}

// close is called once the child has exited: it closes this process's write
// end and waits until what is left is read, or, if something the child
// started still holds the pipe open, for a second at most.
func (o *pacedOutput) close() {
	o.w.Close()
	o.wake <- struct{}{} // (one read at once, then the pace again: something the child started may hold the pipe)
	select {
	case <-o.done:
	case <-time.After(time.Second):
		o.stop.Store(true)
		<-o.done
	}
}
