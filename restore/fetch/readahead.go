package fetch

import (
	"io"
	"sync"
)

// ReadAhead reads r in a goroutine, up to n chunks of size bytes ahead of
// the consumer, so that receiving and hashing a stream overlaps with
// unpacking and writing it (two cores instead of one). Reading after an
// error returns that error.
type ReadAhead struct {
	full chan []byte
	free chan []byte
	err  error  // set before full is closed
	cur  []byte // unread part of orig
	orig []byte // the chunk being read, to hand back whole
	stop chan struct{}
	once sync.Once
}

// NewReadAhead starts reading r ahead of its consumer.
func NewReadAhead(r io.Reader, n, size int) *ReadAhead {
	ra := &ReadAhead{full: make(chan []byte, n), free: make(chan []byte, n), stop: make(chan struct{})}
	for i := 0; i < n; i++ {
		ra.free <- make([]byte, size)
	}
	go func() {
		defer close(ra.full)
		for {
			var buf []byte
			select {
			case buf = <-ra.free:
			case <-ra.stop:
				return
			}
			k, err := io.ReadFull(r, buf[:cap(buf)])
			if k > 0 {
				select {
				case ra.full <- buf[:k]:
				case <-ra.stop:
					return
				}
			}
			if err == io.ErrUnexpectedEOF {
				err = io.EOF
			}
			if err != nil {
				ra.err = err
				return
			}
		}
	}()
	return ra
}

func (ra *ReadAhead) Read(p []byte) (int, error) {
	for len(ra.cur) == 0 {
		if ra.orig != nil {
			ra.free <- ra.orig[:0]
			ra.orig = nil
		}
		buf, ok := <-ra.full
		if !ok {
			return 0, ra.err
		}
		ra.orig, ra.cur = buf, buf
	}
	n := copy(p, ra.cur)
	ra.cur = ra.cur[n:]
	return n, nil
}

// Close tells the reader goroutine to stop. It does not wait: the
// goroutine may be blocked reading the source, which its owner closes.
func (ra *ReadAhead) Close() error {
	ra.once.Do(func() { close(ra.stop) })
	return nil
}
