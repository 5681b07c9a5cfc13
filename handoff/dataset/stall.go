package dataset

import (
	"errors"
	"sync/atomic"
	"time"

	"github.com/stratahq/strata/internal/proctree"
)

// defaultStallLimit is how long an rsync transfer may move nothing before
// it is taken for a dead connection. A link that dies without a reset
// sends nothing more, and rsync, waiting to read, would wait for ever: its
// own --timeout would notice, but it costs 10,000 small files 8% (the
// server gets it too; see docs/handoff.md), so strata watches instead.
const defaultStallLimit = 2 * time.Minute

// errStalled is a transfer the stall watch stopped.
var errStalled = errors.New("taken for a dead connection and stopped")

// stallWatch watches a transfer's processes: when none has read or written
// a byte (socket, pipe or file) for limit, it kills them all, and the
// transfer fails as one that can be resumed. A resume of a large file
// spends minutes reading it for checksums; that is reading, so it counts.
type stallWatch struct {
	stalled atomic.Bool
	stop    chan struct{}
	done    chan struct{}
}

func watchStall(pid int, limit time.Duration, log func(string, ...any)) *stallWatch {
	w := &stallWatch{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		tick := time.NewTicker(max(limit/8, 10*time.Millisecond))
		defer tick.Stop()
		last, since := int64(-1), time.Now()
		for {
			select {
			case <-w.stop:
				return
			case <-tick.C:
			}
			tree, err := proctree.Tree(pid)
			if err == nil {
				var n int64
				if n, err = proctree.IO(tree); err == nil && n != last {
					last, since = n, time.Now()
					continue
				}
			}
			if err != nil {
				log("dataset: cannot watch rsync for a dead connection: %v", err)
				return
			}
			if time.Since(since) >= limit {
				w.stalled.Store(true)
				log("dataset: rsync moved no byte for %s: taken for a dead connection, stopped", limit)
				proctree.Kill(tree)
				return
			}
		}
	}()
	return w
}

// end stops watching and says whether the watch stopped the transfer.
func (w *stallWatch) end() bool {
	if w == nil {
		return false
	}
	close(w.stop)
	<-w.done
	return w.stalled.Load()
}
