package canwire

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/berth-io/berth/devices/can"
)

// Redial timing: the wait before each redial starts at redialMin and
// doubles up to redialMax; a session that lasted redialMax resets it.
// Each attempt (dial and hello) is bounded by redialTimeout.
const (
	redialMin     = 50 * time.Millisecond
	redialMax     = time.Second
	redialTimeout = 5 * time.Second
)

// link keeps a client's session on a device socket. When the server goes
// away without the client closing (it hung up, ECONNRESET, EPIPE), the
// link dials the same path with the same hello, with back-off, until a
// new session is up, the new server refuses the hello for good (see
// refusedForGood) or the client closes. Without redialing
// ([WithoutRedial]) it ends with the session.
type link struct {
	path  string
	hello Hello
	o     options
	// deliver takes every session's received frames, from its reader
	// goroutine; it must not block.
	deliver func([]can.Frame)
	// ended is called when the link ends other than by close.
	ended func()

	ctx    context.Context // ends on close; bounds redials
	cancel context.CancelFunc

	mu      sync.Mutex
	s       *clientSession // nil while redialing or ended
	mode    can.Mode
	err     error     // why the link ended for good; nil while open
	hungUp  bool      // err is the server hanging up (without redialing)
	since   time.Time // when s came up
	backoff time.Duration
}

// openLink dials path and says hello h; ctx bounds this first dial and
// hello only, whose failure is returned (no redial).
func openLink(ctx context.Context, path string, h Hello, o options, deliver func([]can.Frame), ended func()) (*link, error) {
	cs, err := dialSession(ctx, path, h, o)
	if err != nil {
		return nil, err
	}
	l := &link{path: path, hello: h, o: o, deliver: deliver, ended: ended, backoff: redialMin}
	l.ctx, l.cancel = context.WithCancel(context.Background())
	l.mu.Lock()
	l.install(cs)
	l.mu.Unlock()
	return l, nil
}

// install makes cs the session and starts its reader. l.mu is held.
func (l *link) install(cs *clientSession) {
	l.s, l.mode, l.since = cs, cs.mode, time.Now()
	cs.deliver = l.deliver
	cs.ended = func(err error) { l.lost(cs, err) }
	cs.start()
}

// lost is called when session cs ends, with its error.
func (l *link) lost(cs *clientSession, err error) {
	l.mu.Lock()
	if l.s != cs || l.err != nil {
		l.mu.Unlock() // closed by the client, or already replaced
		return
	}
	l.s = nil
	if !l.o.redial {
		l.err, l.hungUp = err, true
		l.mu.Unlock()
		l.ended()
		return
	}
	if time.Since(l.since) >= redialMax {
		l.backoff = redialMin
	}
	wait := l.backoff
	l.mu.Unlock()
	l.o.report(err)
	go l.redial(wait)
}

// redial dials until a session is up, the hello is refused for good or
// the link is closed, waiting wait before the first attempt and doubling
// it after each.
func (l *link) redial(wait time.Duration) {
	for {
		t := time.NewTimer(wait)
		select {
		case <-l.ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		wait = min(2*wait, redialMax)
		ctx, cancel := context.WithTimeout(l.ctx, redialTimeout)
		cs, err := dialSession(ctx, l.path, l.hello, l.o)
		cancel()
		if l.ctx.Err() != nil {
			if cs != nil {
				cs.closeSession()
			}
			return
		}
		if err == nil {
			l.mu.Lock()
			open := l.err == nil
			if open {
				l.backoff = wait
				l.install(cs)
			}
			l.mu.Unlock()
			if !open {
				cs.closeSession()
			}
			return
		}
		if refusedForGood(err) {
			err = fmt.Errorf("redial %s: %w", l.path, err)
			l.mu.Lock()
			open := l.err == nil
			if open {
				l.err = err
			}
			l.mu.Unlock()
			if open {
				l.o.report(err)
				l.ended()
			}
			return
		}
	}
}

// refusedForGood reports whether a failed hello ends the client: the
// server answered that the grant is gone (NotFound), not allowed
// (PermissionDenied) or that it cannot read the hello (InvalidArgument, a
// protocol it does not speak), or answered with something that is not the
// protocol. Everything else (no socket yet, connection refused, a hang-up
// before the answer, Unavailable) is retried.
func refusedForGood(err error) bool {
	var e *Error
	if errors.As(err, &e) {
		switch e.Code {
		case codes.NotFound, codes.PermissionDenied, codes.InvalidArgument:
			return true
		}
		return false
	}
	return errors.Is(err, ErrProtocol)
}

// current returns the session, or an error matching [ErrUnavailable]
// while redialing, or why the link ended.
func (l *link) current() (*clientSession, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.err != nil {
		return nil, l.err
	}
	if l.s == nil {
		return nil, fmt.Errorf("grant %q on %s: %w: the server hung up; the client is redialing, retry", l.hello.String(), l.path, ErrUnavailable)
	}
	return l.s, nil
}

// endErr returns why the link ended, nil while it is open (redialing or
// not); hungUp reports that it ended because the server hung up.
func (l *link) endErr() (hungUp bool, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.hungUp, l.err
}

// busMode returns the mode of the last session's bus.
func (l *link) busMode() can.Mode {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.mode
}

// localAddr returns the session's local address; unnamed while
// redialing.
func (l *link) localAddr() net.Addr {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.s != nil {
		return l.s.uc.LocalAddr()
	}
	return &net.UnixAddr{Net: Network}
}

// close ends the link: the session's socket is closed, a redial stops,
// and later calls fail with the closed error. Calling it twice is safe.
func (l *link) close() {
	l.mu.Lock()
	l.err, l.hungUp = errSessionClosed, false
	s := l.s
	l.s = nil
	l.mu.Unlock()
	l.cancel()
	if s != nil {
		s.closeSession()
	}
}
