package canwire

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"time"

	"github.com/berth-io/berth/devices/can"
)

// Conn is a session as a net.Conn that carries classical CAN frames as
// Linux's 16-byte struct can_frame records, the way a CAN_RAW socket does,
// so einride's socketcan package uses it unchanged:
//
//	conn, err := canwire.Dial(ctx, canwire.DefaultSocket, "body")
//	rx := socketcan.NewReceiver(conn)
//	tx := socketcan.NewTransmitter(conn)
//
// Read returns received frames as a byte stream of can_frame records (as
// many whole records as fit; a buffer shorter than a record gets the rest
// on the next Read). Error frames have CAN_ERR_FLAG set; CAN FD frames are
// not delivered, as on a CAN_RAW socket without CAN_RAW_FD_FRAMES (use
// [OpenBus] for FD and timestamps). A reader that falls behind loses the
// newest frames once [WithDepth] are queued ([Conn.Drops] counts them).
//
// Write sends one frame per call: a 16-byte can_frame or a 72-byte
// canfd_frame record. It returns once the server has sent the frame, or
// with the server's refusal, whose text names the grant (an [*Error]
// matching [ErrPermissionDenied], can.ErrInvalidFrame, ...).
//
// The Conn survives a restart of the server (berthd): see [Dial].
//
// Deadlines work as on any net.Conn. Methods are safe for concurrent use;
// concurrent Reads are serialized.
type Conn struct {
	l  *link
	rd *deadline
	wd *deadline

	qmu   sync.Mutex
	queue []can.Frame
	wake  chan struct{}
	drops uint64

	readMu  sync.Mutex
	pending []byte
}

var _ net.Conn = (*Conn)(nil)

// Dial opens a session for the CAN grant named grant (its name in the
// container's playbook) on the device socket at path (usually
// [DefaultSocket]) and returns it as a [Conn]. ctx bounds the dial and the
// hello only. A grant the container does not hold fails with an error
// naming it that matches [ErrUnknownGrant]. The caller closes the Conn.
//
// When the server goes away without the client closing (berthd killed or
// restarted: it hung up, ECONNRESET, EPIPE), the client redials path with
// the same hello, waiting 50ms before the first attempt and doubling up to
// 1s, for as long as it is open. Containers outlive berthd, and the new
// berthd serves the same socket again. While the client is away, Read
// blocks (deadlines and Close still end it), Write fails at once with an
// error matching [ErrUnavailable] (the error a plugin restart gives, so a
// caller that retries those needs nothing more), and received frames
// resume on the new session. Frames the bus carried while the client was
// away are not seen, and nothing counts them: the client cannot know of
// them. A redial whose hello the new server refuses for good (the grant
// is gone or not allowed: NotFound, PermissionDenied; or it cannot read
// the hello: InvalidArgument) ends the client: Read returns that error
// and Write fails with it. Unavailable answers, a missing socket and
// refused connections are retried. [WithoutRedial] turns this off.
func Dial(ctx context.Context, path, grant string, opts ...Option) (*Conn, error) {
	o := makeOptions(opts)
	c := &Conn{rd: newDeadline(), wd: newDeadline(), wake: make(chan struct{}, 1)}
	deliver := func(frames []can.Frame) {
		c.qmu.Lock()
		n := min(len(frames), o.depth-len(c.queue))
		c.queue = append(c.queue, frames[:n]...)
		c.drops += uint64(len(frames) - n)
		c.qmu.Unlock()
		c.notify()
	}
	l, err := openLink(ctx, path, Hello{Flags: FlagAck | FlagBatch, Class: "can", Grant: grant}, o, deliver, c.notify)
	if err != nil {
		return nil, err
	}
	c.l = l
	return c, nil
}

func (c *Conn) notify() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// Mode returns the mode of the bus the grant is on.
func (c *Conn) Mode() can.Mode { return c.l.busMode() }

// Drops returns how many received frames were lost because the reader
// fell behind.
func (c *Conn) Drops() uint64 {
	c.qmu.Lock()
	defer c.qmu.Unlock()
	return c.drops
}

// Read reads received frames as can_frame records; see [Conn]. It blocks
// while the client redials (see [Dial]). It returns net.ErrClosed after
// Close; once every frame is read, the error that ended the client (a
// redial refused), or io.EOF when the server hung up and redialing is off.
func (c *Conn) Read(p []byte) (int, error) {
	c.readMu.Lock()
	defer c.readMu.Unlock()
	for len(c.pending) == 0 {
		c.qmu.Lock()
		frames := c.queue
		c.queue = nil
		c.qmu.Unlock()
		for _, f := range frames {
			c.pending = appendFrame(c.pending, f, false)
		}
		if len(c.pending) > 0 {
			break
		}
		if hungUp, err := c.l.endErr(); err != nil {
			switch {
			case err == errSessionClosed:
				return 0, net.ErrClosed
			case hungUp:
				return 0, io.EOF
			}
			return 0, err
		}
		if len(p) == 0 {
			return 0, nil
		}
		select {
		case <-c.wake:
		case <-c.rd.wait():
			return 0, os.ErrDeadlineExceeded
		}
	}
	n := copy(p, c.pending)
	c.pending = c.pending[n:]
	return n, nil
}

// Write sends one frame record; see [Conn]. While the client redials it
// fails at once with an error matching [ErrUnavailable].
func (c *Conn) Write(p []byte) (int, error) {
	if len(p) != FrameSize && len(p) != FDFrameSize {
		return 0, fmt.Errorf("write: %w: write one %d-byte can_frame or %d-byte canfd_frame per call, not %d bytes",
			can.ErrInvalidLength, FrameSize, FDFrameSize, len(p))
	}
	f, err := decodeRecord(p, false)
	if err == nil {
		err = f.Validate(c.l.busMode())
	}
	if err != nil {
		return 0, fmt.Errorf("write %s: %w", f, err)
	}
	s, err := c.l.current()
	if err != nil {
		return 0, err
	}
	if _, err := s.request(context.Background(), c.wd.wait(), c.wd.get(), appendFrame(nil, f, false)); err != nil {
		return 0, err
	}
	return len(p), nil
}

// Close ends the session, or stops a redial. Blocked Reads and Writes
// return. Calling it twice is safe.
func (c *Conn) Close() error {
	c.l.close()
	c.notify()
	return nil
}

// LocalAddr returns the socket's local address (unnamed while the client
// redials).
func (c *Conn) LocalAddr() net.Addr { return c.l.localAddr() }

// RemoteAddr returns the device socket's address.
func (c *Conn) RemoteAddr() net.Addr { return &net.UnixAddr{Name: c.l.path, Net: Network} }

// SetDeadline sets the read and write deadlines.
func (c *Conn) SetDeadline(t time.Time) error {
	c.rd.set(t)
	c.wd.set(t)
	return nil
}

// SetReadDeadline sets the deadline for Read, also for a Read blocked now.
func (c *Conn) SetReadDeadline(t time.Time) error {
	c.rd.set(t)
	return nil
}

// SetWriteDeadline sets the deadline for Write, also for a Write blocked
// now.
func (c *Conn) SetWriteDeadline(t time.Time) error {
	c.wd.set(t)
	return nil
}

// deadline is a settable deadline whose channel closes when it passes
// (the same device as net.Pipe's).
type deadline struct {
	mu     sync.Mutex
	t      time.Time
	timer  *time.Timer
	cancel chan struct{} // closed when the deadline passes
}

func newDeadline() *deadline { return &deadline{cancel: make(chan struct{})} }

// set sets the deadline; the zero time means none.
func (d *deadline) set(t time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.timer != nil && !d.timer.Stop() {
		<-d.cancel // the timer fired: wait for it to close the channel
	}
	d.timer = nil
	d.t = t
	closed := isClosedChan(d.cancel)
	if closed {
		d.cancel = make(chan struct{})
	}
	if t.IsZero() {
		return
	}
	if dur := time.Until(t); dur > 0 {
		ch := d.cancel
		d.timer = time.AfterFunc(dur, func() { close(ch) })
		return
	}
	close(d.cancel)
}

// wait returns a channel that is closed when the deadline passes.
func (d *deadline) wait() chan struct{} {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.cancel
}

// get returns the deadline; zero means none.
func (d *deadline) get() time.Time {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.t
}

func isClosedChan(c <-chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}
