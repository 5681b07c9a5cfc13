package fetch

import (
	"bytes"
	"errors"
	"io"
	"math/rand"
	"testing"
	"testing/iotest"
)

func TestReadAhead(t *testing.T) {
	data := make([]byte, 5<<20+123)
	rand.New(rand.NewSource(1)).Read(data)
	ra := NewReadAhead(iotest.HalfReader(bytes.NewReader(data)), 3, 64<<10)
	got, err := io.ReadAll(iotest.OneByteReader(io.LimitReader(ra, 1000)))
	if err != nil || !bytes.Equal(got, data[:1000]) {
		t.Fatalf("first 1000 bytes: %v", err)
	}
	rest, err := io.ReadAll(ra)
	if err != nil || !bytes.Equal(rest, data[1000:]) {
		t.Fatalf("rest: %d bytes, %v", len(rest), err)
	}
	ra.Close()

	boom := errors.New("boom")
	ra = NewReadAhead(io.MultiReader(bytes.NewReader(data[:100]), iotest.ErrReader(boom)), 2, 64)
	got, err = io.ReadAll(ra)
	if !errors.Is(err, boom) || !bytes.Equal(got, data[:100]) {
		t.Fatalf("error: %v after %d bytes", err, len(got))
	}
	// Close while the goroutine waits for a free buffer.
	ra = NewReadAhead(bytes.NewReader(data), 2, 1024)
	ra.Read(make([]byte, 10))
	ra.Close()
}
