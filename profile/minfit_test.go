package profile

import (
	"strings"
	"testing"
	"time"
)

// A layout larger than any disk is an error, found in bounded time (an
// 8e18-byte partition once made the search's upper bound overflow and loop).
func TestMinimumFitTooLarge(t *testing.T) {
	size, err := ParseSize("8000000000000000000")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := MinimumFit([]Request{{Name: "root", Size: size}}, 1<<20)
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "cannot fit any disk") {
			t.Errorf("err = %v, want the layout cannot fit any disk", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("MinimumFit did not return")
	}
}
