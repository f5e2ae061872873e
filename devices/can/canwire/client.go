package canwire

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"time"

	"github.com/berth-io/berth/devices/can"
)

// Option configures the client ([Dial], [OpenBus], [NewDriver]).
type Option func(*options)

type options struct {
	onError func(error)
	depth   int
	redial  bool
}

// WithErrorHandler sets a function called with the errors the server
// reports outside any request: a receive stream that failed while the
// device's plugin restarts (wrapping [ErrUnavailable]; frames resume by
// themselves), or the session ended by the broker; and with the client's
// own session events: the server hung up and the client redials (wrapping
// [ErrUnavailable]), or a redial was refused and the client has ended. It
// is called from the client's goroutines and must not block.
func WithErrorHandler(f func(error)) Option { return func(o *options) { o.onError = f } }

// WithoutRedial turns redialing off: when the server hangs up, the client
// ends for good, as a net.Conn would (Read returns io.EOF, receive streams
// end with can.ErrClosed, requests fail with can.ErrClosed). For callers
// that should fail fast when berthd is gone, such as `berth can` on the
// operator socket. See [Dial] for what redialing does.
func WithoutRedial() Option { return func(o *options) { o.redial = false } }

// WithDepth sets how many received frames the client buffers for a reader
// that falls behind before it drops the newest (default
// can.DefaultDepth), like a socket's receive buffer.
func WithDepth(n int) Option { return func(o *options) { o.depth = n } }

func makeOptions(opts []Option) options {
	o := options{depth: can.DefaultDepth, redial: true}
	for _, f := range opts {
		f(&o)
	}
	if o.depth <= 0 {
		o.depth = can.DefaultDepth
	}
	return o
}

// reply is the answer to one request.
type reply struct {
	c   control
	err error
}

// clientSession is the client side of one connection: the hello, a reader
// goroutine, and requests matched to their answers by sequence number.
type clientSession struct {
	uc    *net.UnixConn
	path  string
	hello Hello
	mode  can.Mode
	o     options

	// deliver takes received frames; set before start, called from the
	// reader goroutine, must not block.
	deliver func([]can.Frame)
	// ended is called once when the reader stops, with the session's
	// error (see end).
	ended func(error)

	mu      sync.Mutex
	seq     uint64
	waiting map[uint64]chan reply
	err     error // why the session ended; nil while it runs
}

// errSessionClosed is what requests on a closed session return.
var errSessionClosed = fmt.Errorf("canwire session: %w", can.ErrClosed)

// dialSession connects to path and says hello h. ctx bounds the dial
// and the hello.
func dialSession(ctx context.Context, path string, h Hello, o options) (*clientSession, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, Network, path)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", path, err)
	}
	uc := c.(*net.UnixConn)
	cs, err := hello(ctx, uc, h)
	if err != nil {
		_ = uc.Close()
		return nil, err
	}
	cs.path, cs.hello, cs.o = path, h, o
	return cs, nil
}

func hello(ctx context.Context, uc *net.UnixConn, h Hello) (*clientSession, error) {
	if dl, ok := ctx.Deadline(); ok {
		_ = uc.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { _ = uc.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	fail := func(err error) (*clientSession, error) {
		if ctx.Err() != nil {
			err = ctx.Err()
		}
		return nil, fmt.Errorf("hello %q: %w", h.String(), err)
	}
	if _, err := uc.Write(appendHello(nil, h)); err != nil {
		return fail(err)
	}
	buf := make([]byte, HeaderSize+MaxText)
	n, err := uc.Read(buf)
	if err != nil {
		return fail(err)
	}
	c, err := decodeControl(buf[:n])
	if err != nil {
		return fail(err)
	}
	switch c.Kind {
	case KindError:
		return nil, remoteError(c)
	case KindHelloOK:
	default:
		return fail(fmt.Errorf("%w: answer kind %d to a hello", ErrProtocol, c.Kind))
	}
	if !stop() {
		return fail(ctx.Err())
	}
	_ = uc.SetDeadline(time.Time{})
	cs := &clientSession{uc: uc, waiting: make(map[uint64]chan reply)}
	if c.Code == 1 {
		cs.mode = can.FD
	}
	return cs, nil
}

// start starts the reader goroutine.
func (cs *clientSession) start() { go cs.read() }

func (cs *clientSession) read() {
	ts := cs.hello.Flags&FlagTimestamp != 0
	buf := make([]byte, MaxMessage)
	for {
		n, err := cs.uc.Read(buf)
		if err != nil {
			cs.end(err)
			return
		}
		msg := buf[:n]
		if !isControl(msg) {
			frames, err := decodeRecords(msg, ts)
			if len(frames) > 0 {
				cs.deliver(frames)
			}
			if err != nil {
				cs.report(fmt.Errorf("receive: %w", err))
			}
			continue
		}
		c, err := decodeControl(msg)
		if err != nil {
			cs.report(fmt.Errorf("receive: %w", err))
			continue
		}
		c.Payload = append([]byte(nil), c.Payload...)
		if c.Seq == 0 {
			if c.Kind == KindError {
				cs.report(remoteError(c))
			}
			continue
		}
		r := reply{c: c}
		if c.Kind == KindError {
			r.err = remoteError(c)
		}
		cs.mu.Lock()
		ch := cs.waiting[c.Seq]
		delete(cs.waiting, c.Seq)
		cs.mu.Unlock()
		if ch != nil {
			ch <- r
		}
	}
}

func (cs *clientSession) report(err error) { cs.o.report(err) }

func (o options) report(err error) {
	if o.onError != nil {
		o.onError(err)
	}
}

// end records why the session ended and fails every waiting request.
func (cs *clientSession) end(err error) {
	cs.mu.Lock()
	if cs.err == nil {
		if errors.Is(err, net.ErrClosed) {
			cs.err = errSessionClosed
		} else {
			cs.err = cs.lost(err)
		}
	}
	for seq, ch := range cs.waiting {
		ch <- reply{err: cs.err}
		delete(cs.waiting, seq)
	}
	err = cs.err
	cs.mu.Unlock()
	if cs.ended != nil {
		cs.ended(err)
	}
}

// lost returns the error for requests on a connection the server dropped
// (cause says how): with redialing it matches [ErrUnavailable], so callers
// retry as they do while a plugin restarts; without, can.ErrClosed.
func (cs *clientSession) lost(cause error) error {
	if cs.o.redial {
		return fmt.Errorf("grant %q on %s: %w: the server hung up (%v); the client is redialing, retry", cs.hello.String(), cs.path, ErrUnavailable, cause)
	}
	return fmt.Errorf("canwire session ended: %w (%w)", can.ErrClosed, cause)
}

// closeSession closes the socket; the reader then ends the session.
func (cs *clientSession) closeSession() {
	cs.mu.Lock()
	if cs.err == nil {
		cs.err = errSessionClosed
	}
	cs.mu.Unlock()
	_ = cs.uc.Close()
}

// request sends msg and waits for its answer until ctx ends or expired
// is closed (then it returns os.ErrDeadlineExceeded). dl bounds the
// socket write. A request given up on may still be carried out.
func (cs *clientSession) request(ctx context.Context, expired <-chan struct{}, dl time.Time, msg []byte) (control, error) {
	if d, ok := ctx.Deadline(); ok && (dl.IsZero() || d.Before(dl)) {
		dl = d
	}
	ch := make(chan reply, 1)
	cs.mu.Lock()
	if cs.err != nil {
		err := cs.err
		cs.mu.Unlock()
		return control{}, err
	}
	// Numbered and written under one lock, so numbers follow the order
	// the server reads messages in.
	cs.seq++
	seq := cs.seq
	cs.waiting[seq] = ch
	_ = cs.uc.SetWriteDeadline(dl)
	_, err := cs.uc.Write(msg)
	if err != nil {
		delete(cs.waiting, seq)
		switch {
		case cs.err != nil:
			err = cs.err
		case !errors.Is(err, os.ErrDeadlineExceeded):
			// EPIPE, ECONNRESET: the reader sees the hang-up next.
			err = cs.lost(err)
		}
		cs.mu.Unlock()
		return control{}, err
	}
	cs.mu.Unlock()
	select {
	case r := <-ch:
		return r.c, r.err
	case <-ctx.Done():
		cs.forget(seq)
		return control{}, ctx.Err()
	case <-expired:
		cs.forget(seq)
		return control{}, os.ErrDeadlineExceeded
	}
}

func (cs *clientSession) forget(seq uint64) {
	cs.mu.Lock()
	delete(cs.waiting, seq)
	cs.mu.Unlock()
}
