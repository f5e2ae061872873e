package broker

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/berth-io/berth/devices/can"
)

// Clock is the time source of the send rate limiter; [WithClock] replaces
// the real one in tests.
type Clock interface {
	Now() time.Time
	// NewTimer returns a channel that receives once d has passed, and a
	// stop function that releases the timer early.
	NewTimer(d time.Duration) (c <-chan time.Time, stop func() bool)
}

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }

func (realClock) NewTimer(d time.Duration) (<-chan time.Time, func() bool) {
	t := time.NewTimer(d)
	return t.C, t.Stop
}

// bucket is a token bucket in the reservation style: a sender takes a
// token at once, which may leave the bucket in debt, and waits until the
// debt would have been refilled. Senders are served in the order they
// arrive, so one flooding goroutine of a session cannot starve another.
type bucket struct {
	clock Clock
	rate  float64 // tokens a second
	burst float64

	mu     sync.Mutex
	tokens float64
	last   time.Time
}

func newBucket(r Rate, c Clock) *bucket {
	b := float64(r.burst())
	return &bucket{clock: c, rate: r.PerSecond, burst: b, tokens: b, last: c.Now()}
}

// take takes one token at now and returns how long to wait for it.
func (b *bucket) take(now time.Time) time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	if now.After(b.last) {
		b.tokens = min(b.burst, b.tokens+now.Sub(b.last).Seconds()*b.rate)
		b.last = now
	}
	b.tokens--
	if b.tokens >= 0 {
		return 0
	}
	return time.Duration(-b.tokens / b.rate * float64(time.Second))
}

// give returns a token taken but not used.
func (b *bucket) give() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.tokens = min(b.burst, b.tokens+1)
}

// wait takes a token, waiting as long as the rate says. It fails, without
// using the token, with ctx's error when ctx ends first or cannot last
// long enough, and with can.ErrClosed when done is closed.
func (b *bucket) wait(ctx context.Context, done <-chan struct{}) error {
	d := b.take(b.clock.Now())
	if d == 0 {
		return nil
	}
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) < d {
		b.give()
		return context.DeadlineExceeded
	}
	c, stop := b.clock.NewTimer(d)
	select {
	case <-c:
		return nil
	case <-ctx.Done():
		stop()
		b.give()
		return ctx.Err()
	case <-done:
		stop()
		b.give()
		return fmt.Errorf("session closed: %w", can.ErrClosed)
	}
}
