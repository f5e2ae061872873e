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
	"sync/atomic"
	"syscall"
	"time"

	"github.com/berth-io/berth/devices/can"
)

// OpenFunc opens the bus a grant names, for one session: grant is the
// grant's name as the hello gives it ("body" in "can body"). Its errors
// reach the client as the hello's answer, as they are, so they should
// name the grant (or the device, on an operator's socket) and wrap
// [ErrUnknownGrant] (or can.ErrUnknownDevice), [ErrUnavailable] or
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
	out   []byte // records being written, by receive or deliver

	// A subscribed session writes the socket from the bus's dispatch
	// (deliver) through rc, without blocking. Until the client has its
	// hello answer, deliver queues the frames in pending instead.
	rc      syscall.RawConn
	ready   atomic.Bool
	mu      sync.Mutex
	pending []can.Frame
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
	if err != nil { // it names the grant (see OpenFunc): sent as it is
		_, _ = c.Write(errorMessage(0, err))
		return fmt.Errorf("grant %q: %w", h.String(), err)
	}
	defer bus.Close()
	ss := &session{s: s, c: c, hello: h, bus: bus, out: make([]byte, 0, MaxMessage)}
	// Frames are taken from before the client hears OK, so it gets every
	// frame from then on.
	var stream can.Stream
	var subDone <-chan struct{}
	if sub, ok := bus.(can.Subscriber); ok {
		if ss.rc, err = c.SyscallConn(); err == nil {
			subDone, err = sub.Subscribe(ctx, func(fs []can.Frame) int { return ss.deliver(fs, cancel) })
		}
	} else {
		stream, err = bus.Receive(ctx)
	}
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
	s.log.Debug("canwire session open", "grant", h.String(), "flags", h.Flags, "subscribed", subDone != nil)

	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	if subDone != nil {
		if err := ss.flushPending(); err != nil {
			return nil // the client left
		}
		wg.Go(func() {
			defer cancel()
			<-subDone
			if ctx.Err() == nil { // the bus ended the session
				_, _ = c.Write(errorMessage(0, fmt.Errorf("grant %q: receive: %w", h.String(), can.ErrClosed)))
			}
		})
	} else {
		wg.Go(func() {
			defer cancel()
			ss.receive(ctx, stream)
		})
	}
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

// deliver is the session's can.Subscriber callback: it writes frames to
// the socket without waiting and returns how many the socket took; a
// client that does not read loses the rest, counted by the bus. A write
// that fails otherwise than on a full socket ends the session (cancel).
func (ss *session) deliver(frames []can.Frame, cancel context.CancelFunc) int {
	if !ss.ready.Load() {
		ss.mu.Lock()
		if !ss.ready.Load() {
			n := min(len(frames), can.DefaultDepth-len(ss.pending))
			ss.pending = append(ss.pending, frames[:n]...)
			ss.mu.Unlock()
			return n
		}
		ss.mu.Unlock()
	}
	n, err := ss.writeFrames(frames, ss.writeNow)
	if err != nil && !errors.Is(err, syscall.EAGAIN) {
		cancel()
	}
	return n
}

// writeNow writes msg as one message if the socket has room now, else
// fails with EAGAIN. It does not take the conn's write lock, which a
// blocked answer to the client may hold.
func (ss *session) writeNow(msg []byte) error {
	var werr error
	err := ss.rc.Control(func(fd uintptr) {
		for {
			werr = syscall.Sendto(int(fd), msg, syscall.MSG_DONTWAIT|syscall.MSG_NOSIGNAL, nil)
			if werr != syscall.EINTR {
				return
			}
		}
	})
	if err != nil {
		return err
	}
	return werr
}

// writeWait writes msg as one message, waiting for room.
func (ss *session) writeWait(msg []byte) error {
	_, err := ss.c.Write(msg)
	return err
}

// flushPending writes the frames deliver queued before the hello answer,
// then lets deliver write by itself.
func (ss *session) flushPending() error {
	for {
		ss.mu.Lock()
		fs := ss.pending
		ss.pending = nil
		if len(fs) == 0 {
			ss.ready.Store(true)
			ss.mu.Unlock()
			return nil
		}
		ss.mu.Unlock()
		if _, err := ss.writeFrames(fs, ss.writeWait); err != nil {
			return err
		}
	}
}

// writeFrames encodes frames as the records the client's hello asked for,
// one message per frame or batched, and writes each message; it returns
// how many frames, from the first, were written (or skipped: FD frames to
// a client without FlagFD) before write failed.
func (ss *session) writeFrames(frames []can.Frame, write func([]byte) error) (int, error) {
	ts := ss.hello.Flags&FlagTimestamp != 0
	fd := ss.hello.Flags&FlagFD != 0
	batch := ss.hello.Flags&FlagBatch != 0
	out, taken := ss.out[:0], 0
	for i, f := range frames {
		if f.FD && !fd {
			if len(out) == 0 {
				taken = i + 1
			}
			continue
		}
		out = appendFrame(out, f, ts)
		if !batch || len(out)+FDFrameSize+TimestampSize > MaxMessage {
			if err := write(out); err != nil {
				return taken, err
			}
			out, taken = out[:0], i+1
		}
	}
	if len(out) > 0 {
		if err := write(out); err != nil {
			return taken, err
		}
	}
	return len(frames), nil
}

// receive streams the bus's frames to the client until ctx ends or the
// bus is closed. A stream that fails otherwise (the plugin restarting) is
// reported to the client as an Error message with sequence 0 and
// reopened after a back-off.
func (ss *session) receive(ctx context.Context, stream can.Stream) {
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
		if _, err := ss.writeFrames(frames, ss.writeWait); err != nil {
			return
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
