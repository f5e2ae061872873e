package canwire

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"syscall"
	"time"

	"github.com/berth-io/berth/devices/can"
)

// OpenFunc opens the bus a grant names, for one session: grant is the
// grant's name as the hello gives it ("body" in "can body"). Its errors
// reach the client as the hello's answer, so they should name the grant
// and wrap [ErrUnknownGrant] (or can.ErrUnknownDevice), [ErrUnavailable] or
// [ErrPermissionDenied]. The server owns the returned bus and closes it
// when the session ends.
type OpenFunc func(ctx context.Context, grant string) (can.Bus, error)

// ServerOption configures [Serve] and [ServeConn].
type ServerOption func(*server)

// WithLogger sets the logger sessions log to (default: none).
func WithLogger(l *slog.Logger) ServerOption { return func(s *server) { s.log = l } }

// WithHelloTimeout bounds how long a client may take to send its hello
// (default 5s).
func WithHelloTimeout(d time.Duration) ServerOption { return func(s *server) { s.helloTimeout = d } }

// WithRetry sets how long a session waits before reopening a receive
// stream that failed (default 100ms, doubling up to 2s).
func WithRetry(d time.Duration) ServerOption { return func(s *server) { s.retry = d } }

type server struct {
	open         OpenFunc
	log          *slog.Logger
	helloTimeout time.Duration
	retry        time.Duration
}

func newServer(open OpenFunc, opts []ServerOption) *server {
	s := &server{open: open, log: slog.New(slog.DiscardHandler), helloTimeout: 5 * time.Second, retry: 100 * time.Millisecond}
	for _, o := range opts {
		o(s)
	}
	return s
}

// Serve accepts sessions on l, which must be a unix SOCK_SEQPACKET
// listener ([Network]), and serves each in its own goroutines until ctx
// ends: it then closes l, ends every session (closing its bus) and
// returns nil once they are gone. It returns early with an error only if
// Accept fails. A session that does not read its socket blocks only
// itself: its bus drops the frames it cannot take.
func Serve(ctx context.Context, l net.Listener, open OpenFunc, opts ...ServerOption) error {
	if n := l.Addr().Network(); n != Network {
		return fmt.Errorf("serve canwire: listener network %q, want %q", n, Network)
	}
	s := newServer(open, opts)
	var wg sync.WaitGroup
	defer wg.Wait()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(ctx, func() { _ = l.Close() })
	defer stop()
	for {
		c, err := l.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("serve canwire on %s: %w", l.Addr(), err)
		}
		uc, ok := c.(*net.UnixConn)
		if !ok {
			_ = c.Close()
			continue
		}
		wg.Go(func() {
			if err := s.serveConn(ctx, uc); err != nil {
				s.log.Debug("canwire session ended", "err", err)
			}
		})
	}
}

// ServeConn serves one session on c, a connected SOCK_SEQPACKET socket,
// until the client hangs up, the bus ends the session or ctx ends. It
// owns c and closes it, and closes the session's bus. It returns nil when
// the client hung up or ctx ended, else why the session ended.
func ServeConn(ctx context.Context, c *net.UnixConn, open OpenFunc, opts ...ServerOption) error {
	return newServer(open, opts).serveConn(ctx, c)
}

// session is the server side of one connection.
type session struct {
	s     *server
	c     *net.UnixConn
	hello Hello
	bus   can.Bus
}

func (s *server) serveConn(ctx context.Context, c *net.UnixConn) error {
	defer c.Close()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// Closing the socket is what unblocks its reads and writes.
	stop := context.AfterFunc(ctx, func() { _ = c.Close() })
	defer stop()

	buf := make([]byte, MaxMessage)
	_ = c.SetReadDeadline(time.Now().Add(s.helloTimeout))
	n, err := c.Read(buf)
	if err != nil {
		return fmt.Errorf("read hello: %w", err)
	}
	h, err := decodeHello(buf[:n])
	if err != nil {
		_, _ = c.Write(errorMessage(0, err))
		return err
	}
	if h.Class != "can" {
		err := fmt.Errorf("grant %q: %w: this socket serves class can, not %q", h.String(), ErrUnknownGrant, h.Class)
		_, _ = c.Write(errorMessage(0, err))
		return err
	}
	bus, err := s.open(ctx, h.Grant)
	if err != nil {
		err = fmt.Errorf("grant %q: %w", h.String(), err)
		_, _ = c.Write(errorMessage(0, err))
		return err
	}
	defer bus.Close()
	// The stream starts before the client hears OK, so it gets every
	// frame from then on.
	stream, err := bus.Receive(ctx)
	if err != nil {
		err = fmt.Errorf("grant %q: %w", h.String(), err)
		_, _ = c.Write(errorMessage(0, err))
		return err
	}
	var mode uint8
	if bus.Mode() == can.FD {
		mode = 1
	}
	if _, err := c.Write(appendControl(nil, control{Kind: KindHelloOK, Code: mode})); err != nil {
		return fmt.Errorf("grant %q: write hello answer: %w", h.String(), err)
	}
	_ = c.SetReadDeadline(time.Time{})
	s.log.Debug("canwire session open", "grant", h.String(), "flags", h.Flags)

	ss := &session{s: s, c: c, hello: h, bus: bus}
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	wg.Go(func() {
		defer cancel()
		ss.receive(ctx, stream)
	})
	err = ss.transmit(ctx, buf)
	if ctx.Err() != nil {
		return nil
	}
	return err
}

// transmit reads the client's messages and answers them, in order, until
// the connection ends.
func (ss *session) transmit(ctx context.Context, buf []byte) error {
	var seq uint64
	for {
		n, err := ss.c.Read(buf)
		if err != nil {
			if isHangup(err) {
				return nil
			}
			return fmt.Errorf("grant %q: read: %w", ss.hello.String(), err)
		}
		seq++
		reply := ss.handle(ctx, seq, buf[:n])
		if reply == nil {
			continue
		}
		if _, err := ss.c.Write(reply); err != nil {
			return fmt.Errorf("grant %q: write answer: %w", ss.hello.String(), err)
		}
	}
}

// handle carries out one client message and returns the answer to send,
// or nil.
func (ss *session) handle(ctx context.Context, seq uint64, msg []byte) []byte {
	ok := func(code uint8, payload []byte) []byte {
		if ss.hello.Flags&FlagAck == 0 {
			return nil
		}
		return appendControl(nil, control{Kind: KindResult, Code: code, Seq: seq, Payload: payload})
	}
	f, c, err := decodeClientMessage(msg)
	switch {
	case err != nil:
		return errorMessage(seq, err)
	case c == nil:
		if err := ss.bus.Send(ctx, f); err != nil {
			return errorMessage(seq, err)
		}
		return ok(0, nil)
	case c.Kind == KindState:
		st, err := ss.bus.State(ctx)
		if err != nil {
			return errorMessage(seq, err)
		}
		return ok(uint8(st), nil)
	default: // KindCounters
		cs, err := ss.bus.Counters(ctx)
		if err != nil {
			return errorMessage(seq, err)
		}
		var p []byte
		for _, v := range []uint64{cs.RxFrames, cs.TxFrames, cs.Errors, cs.Drops} {
			p = binary.LittleEndian.AppendUint64(p, v)
		}
		return ok(0, p)
	}
}

// decodeClientMessage decodes a message a client sends after its hello:
// a frame to send (c nil) or a query.
func decodeClientMessage(msg []byte) (f can.Frame, c *control, err error) {
	if isControl(msg) {
		ctl, err := decodeControl(msg)
		if err != nil {
			return f, nil, err
		}
		if ctl.Kind != KindState && ctl.Kind != KindCounters {
			return f, nil, fmt.Errorf("%w: a client cannot send control message kind %d", ErrProtocol, ctl.Kind)
		}
		return f, &ctl, nil
	}
	if len(msg) != FrameSize && len(msg) != FDFrameSize {
		return f, nil, fmt.Errorf("decode frame: %w: a message to send is %d (can_frame) or %d (canfd_frame) bytes, not %d",
			can.ErrInvalidLength, FrameSize, FDFrameSize, len(msg))
	}
	f, err = decodeRecord(msg, false)
	if err != nil {
		return f, nil, fmt.Errorf("decode frame: %w", err)
	}
	return f, nil, nil
}

// receive streams the bus's frames to the client until ctx ends or the
// bus is closed. A stream that fails otherwise (the plugin restarting) is
// reported to the client as an Error message with sequence 0 and
// reopened after a back-off.
func (ss *session) receive(ctx context.Context, stream can.Stream) {
	ts := ss.hello.Flags&FlagTimestamp != 0
	fd := ss.hello.Flags&FlagFD != 0
	batch := ss.hello.Flags&FlagBatch != 0
	out := make([]byte, 0, MaxMessage)
	retry := ss.s.retry
	for {
		frames, err := stream.Recv()
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			_, _ = ss.c.Write(errorMessage(0, fmt.Errorf("grant %q: receive: %w", ss.hello.String(), err)))
			if errors.Is(err, can.ErrClosed) {
				return // the bus ended the session
			}
			if stream = ss.reopen(ctx, &retry); stream == nil {
				return
			}
			continue
		}
		retry = ss.s.retry
		out = out[:0]
		for _, f := range frames {
			if f.FD && !fd {
				continue
			}
			out = appendFrame(out, f, ts)
			if !batch || len(out)+FDFrameSize+TimestampSize > MaxMessage {
				if _, err := ss.c.Write(out); err != nil {
					return
				}
				out = out[:0]
			}
		}
		if len(out) > 0 {
			if _, err := ss.c.Write(out); err != nil {
				return
			}
		}
	}
}

// reopen opens a new receive stream after the back-off in *retry, which it
// doubles up to 2s. It returns nil when ctx ends or the bus is closed.
func (ss *session) reopen(ctx context.Context, retry *time.Duration) can.Stream {
	for {
		t := time.NewTimer(*retry)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
		*retry = min(2*(*retry), 2*time.Second)
		stream, err := ss.bus.Receive(ctx)
		if err == nil {
			return stream
		}
		if ctx.Err() != nil || errors.Is(err, can.ErrClosed) {
			return nil
		}
		ss.s.log.Debug("canwire reopen receive", "grant", ss.hello.String(), "err", err)
	}
}

// isHangup reports whether a read error is the peer going away.
func isHangup(err error) bool {
	return errors.Is(err, net.ErrClosed) || errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET)
}
