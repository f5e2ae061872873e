package vcan

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/berth-io/berth/devices/can"
	"github.com/berth-io/berth/plugins/internal/canplugin"
)

// sendQueue bounds the bytes a handle queues for the hub; Send blocks
// (bounded by its ctx) while it is full, as a full controller transmit
// queue would.
const sendQueue = 256 << 10

// Reconnect back-off after the hub is lost.
const (
	minBackoff = 5 * time.Millisecond
	maxBackoff = 500 * time.Millisecond
)

// member is one bus handle's connection to the hub: a
// canplugin.BatchPort. When the hub goes away (its host process died),
// the member hosts a new hub or joins the one another process now hosts,
// and carries on; frames in flight at that moment are lost, as on a bus
// that glitched.
type member struct {
	p       *Plugin
	bus     string
	mode    can.Mode
	deliver canplugin.Deliver
	log     hclog.Logger

	wake    chan struct{}
	ctx     context.Context // ends at Close
	cancel  context.CancelFunc
	stopped chan struct{} // closed when run returns

	mu      sync.Mutex
	conn    *hubConn
	out     []byte
	drained chan struct{} // closed and replaced whenever the writer takes out
	closed  bool
}

var _ canplugin.BatchPort = (*member)(nil)

// join connects a new member to bus; it fails if the hub refuses it.
func (p *Plugin) join(ctx context.Context, bus string, mode can.Mode, deliver canplugin.Deliver) (*member, error) {
	conn, err := p.connect(ctx, bus, mode)
	if err != nil {
		return nil, err
	}
	m := &member{p: p, bus: bus, mode: mode, deliver: deliver, log: p.log.With("bus", bus),
		wake: make(chan struct{}, 1), stopped: make(chan struct{}),
		conn: conn, drained: make(chan struct{})}
	m.ctx, m.cancel = context.WithCancel(context.Background())
	go m.run(conn)
	return m, nil
}

// hubConn is a connection to the hub and its reader (which may already
// hold messages that followed the welcome).
type hubConn struct {
	net.Conn
	r *reader
}

// connect dials the hub, hosting it first when no process does, and says
// hello for bus. It retries while a hub is changing hands.
func (p *Plugin) connect(ctx context.Context, bus string, mode can.Mode) (*hubConn, error) {
	addr := p.socket()
	backoff := minBackoff
	for {
		if err := p.ensureHub(addr); err != nil {
			return nil, err
		}
		var d net.Dialer
		c, err := d.DialContext(ctx, "unix", addr)
		if err == nil {
			hc := &hubConn{Conn: c, r: newReader(c)}
			err = hc.hello(ctx, bus, mode)
			if err == nil {
				return hc, nil
			}
			c.Close()
			if errors.Is(err, ErrRefused) {
				return nil, fmt.Errorf("join vcan bus %s on %s: %w", bus, addr, err)
			}
		}
		// No hub yet (its host is starting), or it went away mid-hello.
		if !errors.Is(err, syscall.ECONNREFUSED) && !errors.Is(err, syscall.ENOENT) && !isEOF(err) {
			return nil, fmt.Errorf("join vcan bus %s on %s: %w", bus, addr, err)
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("join vcan bus %s on %s: %w (last: %v)", bus, addr, ctx.Err(), err)
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, maxBackoff)
	}
}

func isEOF(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// hello introduces a member and waits for the hub's answer.
func (c *hubConn) hello(ctx context.Context, bus string, mode can.Mode) error {
	dl := time.Now().Add(helloTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(dl) {
		dl = d
	}
	c.SetDeadline(dl)
	defer c.SetDeadline(time.Time{})
	if _, err := c.Write(appendHello(nil, bus, mode)); err != nil {
		return err
	}
	typ, body, err := c.r.next()
	if err != nil {
		return err
	}
	switch typ {
	case msgWelcome:
		return nil
	case msgRefuse:
		return fmt.Errorf("%w: %s", ErrRefused, body)
	}
	return fmt.Errorf("%w: hub answered hello with message type %d", errProtocol, typ)
}

// run moves frames over conn until it breaks, then reconnects, until Close.
func (m *member) run(conn *hubConn) {
	defer close(m.stopped)
	for {
		m.serve(conn)
		if m.ctx.Err() != nil {
			return
		}
		m.log.Warn("lost the vcan hub; reconnecting")
		var err error
		backoff := minBackoff
		for {
			if conn, err = m.p.connect(m.ctx, m.bus, m.mode); err == nil || m.ctx.Err() != nil {
				break
			}
			m.log.Error("cannot rejoin the vcan bus; retrying", "error", err)
			select {
			case <-m.ctx.Done():
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, maxBackoff)
		}
		if err != nil {
			return
		}
		m.mu.Lock()
		if m.closed {
			m.mu.Unlock()
			conn.Close()
			return
		}
		m.conn = conn
		m.mu.Unlock()
		m.log.Info("rejoined the vcan bus")
	}
}

// serve reads from conn in this goroutine and writes in another, until
// either fails or the member is closed.
func (m *member) serve(conn *hubConn) {
	connDone := make(chan struct{})
	writerDone := make(chan struct{})
	go func() {
		defer close(writerDone)
		m.writeLoop(conn, connDone)
	}()
	defer func() {
		close(connDone)
		conn.Close()
		<-writerDone
	}()
	r := conn.r
	var batch []can.Frame
	for {
		var lost uint64
		batch = batch[:0]
		for {
			typ, body, err := r.next()
			if err != nil {
				m.deliver(lost, batch...)
				return
			}
			switch typ {
			case msgFrame:
				f, err := decodeFrame(body)
				if err != nil {
					m.log.Error("bad frame from the vcan hub", "error", err)
					m.deliver(lost, batch...)
					return
				}
				batch = append(batch, f)
			case msgLost:
				if len(body) == 8 {
					lost += binary.LittleEndian.Uint64(body)
				}
			default:
				m.log.Error("unexpected message from the vcan hub", "type", typ)
				m.deliver(lost, batch...)
				return
			}
			if !r.buffered() || len(batch) >= can.MaxBatch {
				break
			}
		}
		m.deliver(lost, batch...)
	}
}

func (m *member) writeLoop(conn net.Conn, connDone <-chan struct{}) {
	var spare []byte
	for {
		m.mu.Lock()
		buf := m.out
		if len(buf) > 0 {
			m.out = spare[:0]
			close(m.drained)
			m.drained = make(chan struct{})
		}
		m.mu.Unlock()
		if len(buf) > 0 {
			if _, err := conn.Write(buf); err != nil {
				conn.Close()
				return
			}
			spare = buf
			continue
		}
		select {
		case <-m.wake:
		case <-connDone:
			return
		case <-m.ctx.Done():
			return
		}
	}
}

// Send queues f for the hub.
func (m *member) Send(ctx context.Context, f can.Frame) error {
	_, err := m.SendBatch(ctx, []can.Frame{f})
	return err
}

// SendBatch queues frames for the hub, in order, waiting while the queue
// is full; it implements canplugin.BatchPort.
func (m *member) SendBatch(ctx context.Context, frames []can.Frame) (int, error) {
	n := 0
	for n < len(frames) {
		m.mu.Lock()
		if m.closed {
			m.mu.Unlock()
			return n, can.ErrClosed
		}
		if len(m.out) < sendQueue {
			for ; n < len(frames) && len(m.out) < sendQueue; n++ {
				m.out = appendFrame(m.out, frames[n], 0)
			}
			m.mu.Unlock()
			select {
			case m.wake <- struct{}{}:
			default:
			}
			continue
		}
		drained := m.drained
		m.mu.Unlock()
		select {
		case <-drained:
		case <-ctx.Done():
			return n, fmt.Errorf("transmit queue full: %w", ctx.Err())
		case <-m.ctx.Done():
			return n, can.ErrClosed
		}
	}
	return n, nil
}

// State is error-active: the virtual bus has no error states.
func (m *member) State(context.Context) (can.State, error) { return can.StateErrorActive, nil }

// Close leaves the bus; frames still queued for the hub are dropped.
func (m *member) Close() error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil
	}
	m.closed = true
	conn := m.conn
	m.mu.Unlock()
	m.cancel()
	conn.Close()
	<-m.stopped
	return nil
}
