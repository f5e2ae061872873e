package daemon

import (
	"sync/atomic"
	"testing"
	"time"
)

// TestTrimmerDebounces checks that a burst of work trims once, after the
// burst, and that stop cancels a scheduled trim.
func TestTrimmerDebounces(t *testing.T) {
	var trims atomic.Int32
	done := make(chan struct{}, 10)
	tr := &trimmer{quiet: 300 * time.Millisecond, trim: func() { trims.Add(1); done <- struct{}{} }}
	for range 5 {
		tr.soon()
	}
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("no trim after the burst")
	}
	time.Sleep(600 * time.Millisecond) // two more quiet periods
	if n := trims.Load(); n != 1 {
		t.Fatalf("%d trims after a burst of 5, want 1", n)
	}
	tr.soon()
	tr.stop()
	time.Sleep(600 * time.Millisecond)
	if n := trims.Load(); n != 1 {
		t.Errorf("%d trims after stop, want still 1", n)
	}
}
