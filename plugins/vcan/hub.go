package vcan

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"golang.org/x/sys/unix"

	"github.com/berth-io/berth/devices/can"
)

// peerQueue bounds the bytes the hub queues for one member (about 11,000
// classical frames). A member further behind loses the newest frames,
// which only it loses; the hub tells it how many.
const peerQueue = 256 << 10

// helloTimeout bounds how long a new connection may take to say hello.
const helloTimeout = 5 * time.Second

// hub is the bus itself: it accepts members on the socket, puts every
// frame a member sends into one bus order with one timestamp, and hands it
// to every other member of the same bus. One process per socket hosts it.
type hub struct {
	log  hclog.Logger
	ln   net.Listener
	lock *os.File // held while hosting a filesystem socket; nil for abstract
	path string   // filesystem socket to remove on close; "" for abstract

	mu     sync.Mutex
	buses  map[string]*hubBus
	peers  map[*peer]struct{}
	last   int64 // last timestamp handed out, unix ns
	closed bool
	wg     sync.WaitGroup
}

type hubBus struct {
	name  string
	mode  can.Mode
	peers map[*peer]struct{}
}

// tryHost starts hosting the hub at addr in this process, or returns nil
// and no error when another process already hosts it. An abstract address
// ("@name") is its own lock: the kernel lets one socket bind it and frees
// it when the process dies. A filesystem socket is guarded by an flock on
// addr+".lock", so a stale socket file left by a dead host is replaced.
func tryHost(addr string, log hclog.Logger) (*hub, error) {
	h := &hub{log: log, buses: make(map[string]*hubBus), peers: make(map[*peer]struct{})}
	if !strings.HasPrefix(addr, "@") {
		lock, err := os.OpenFile(addr+".lock", os.O_CREATE|os.O_RDWR, 0o600)
		if err != nil {
			return nil, fmt.Errorf("host vcan hub %s: %w", addr, err)
		}
		if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
			lock.Close()
			if errors.Is(err, unix.EWOULDBLOCK) {
				return nil, nil
			}
			return nil, fmt.Errorf("host vcan hub %s: lock: %w", addr, err)
		}
		if err := os.Remove(addr); err != nil && !errors.Is(err, os.ErrNotExist) {
			lock.Close()
			return nil, fmt.Errorf("host vcan hub %s: remove stale socket: %w", addr, err)
		}
		h.lock, h.path = lock, addr
	}
	ln, err := net.Listen("unix", addr)
	if err != nil {
		if h.lock != nil {
			h.lock.Close()
		}
		if errors.Is(err, syscall.EADDRINUSE) {
			return nil, nil
		}
		return nil, fmt.Errorf("host vcan hub: %w", err)
	}
	if ul, ok := ln.(*net.UnixListener); ok {
		ul.SetUnlinkOnClose(false) // close removes it, under the lock
	}
	h.ln = ln
	h.wg.Add(1)
	go h.serve()
	log.Info("hosting vcan hub", "socket", addr)
	return h, nil
}

func (h *hub) serve() {
	defer h.wg.Done()
	for {
		c, err := h.ln.Accept()
		if err != nil {
			h.mu.Lock()
			closed := h.closed
			h.mu.Unlock()
			if !closed {
				h.log.Error("vcan hub stopped accepting", "error", err)
			}
			return
		}
		h.wg.Add(1)
		go h.member(c)
	}
}

// close stops the hub: no more members, every member's connection closed
// (members in other processes then host or join a new hub). Safe to call
// twice.
func (h *hub) close() {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return
	}
	h.closed = true
	for q := range h.peers {
		q.c.Close()
	}
	h.mu.Unlock()
	h.ln.Close()
	h.wg.Wait()
	if h.lock != nil {
		os.Remove(h.path)
		h.lock.Close()
	}
}

// member serves one connection: hello, then frames until it ends.
func (h *hub) member(c net.Conn) {
	defer h.wg.Done()
	defer c.Close()
	r := newReader(c)
	c.SetReadDeadline(time.Now().Add(helloTimeout))
	q, err := h.join(c, r)
	if err != nil {
		h.log.Warn("vcan member refused", "error", err)
		c.SetWriteDeadline(time.Now().Add(helloTimeout))
		c.Write(appendRefuse(nil, err.Error()))
		return
	}
	c.SetReadDeadline(time.Time{})
	defer h.leave(q)
	writerDone := make(chan struct{})
	go func() {
		defer close(writerDone)
		q.writeLoop()
	}()
	defer func() { q.stop(); <-writerDone }()

	var batch []byte
	var offs []int
	for {
		batch, offs = batch[:0], offs[:0]
		for {
			typ, body, err := r.next()
			if err != nil {
				h.forward(q, batch, offs)
				return
			}
			if typ != msgFrame || len(body) < frameHeaderLen || len(body) > frameHeaderLen+can.MaxFDData {
				h.log.Warn("vcan member sent a malformed message; dropping it", "bus", q.bus.name, "type", typ, "len", len(body))
				h.forward(q, batch, offs)
				return
			}
			offs = append(offs, len(batch))
			batch = append(appendHeader(batch, msgFrame, len(body)), body...)
			if !r.buffered() || len(offs) >= can.MaxBatch {
				break
			}
		}
		h.forward(q, batch, offs)
	}
}

func (h *hub) join(c net.Conn, r *reader) (*peer, error) {
	typ, body, err := r.next()
	if err != nil {
		return nil, fmt.Errorf("read hello: %w", err)
	}
	if typ != msgHello || len(body) < 3 {
		return nil, fmt.Errorf("%w: first message is not a hello", errProtocol)
	}
	if body[0] != protocolVersion {
		return nil, fmt.Errorf("%w: protocol version %d, this hub speaks %d", errProtocol, body[0], protocolVersion)
	}
	mode, name := can.Mode(body[1]), string(body[2:])
	if mode != can.Classical && mode != can.FD {
		return nil, fmt.Errorf("%w: mode %d", errProtocol, body[1])
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil, fmt.Errorf("hub closing")
	}
	b := h.buses[name]
	if b == nil {
		b = &hubBus{name: name, mode: mode, peers: make(map[*peer]struct{})}
		h.buses[name] = b
	}
	if b.mode != mode {
		return nil, fmt.Errorf("bus %s runs %s CAN on this hub, not %s: give it the same fd setting in every board that shares it", name, b.mode, mode)
	}
	q := &peer{c: c, bus: b, wake: make(chan struct{}, 1), done: make(chan struct{})}
	q.out = appendHeader(q.out, msgWelcome, 0)
	q.wake <- struct{}{}
	b.peers[q] = struct{}{}
	h.peers[q] = struct{}{}
	return q, nil
}

func (h *hub) leave(q *peer) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(q.bus.peers, q)
	delete(h.peers, q)
}

// forward stamps the frames in batch (messages starting at offs) with bus
// time and queues them for every member of from's bus but from.
func (h *hub) forward(from *peer, batch []byte, offs []int) {
	if len(offs) == 0 {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	now := time.Now().UnixNano()
	for _, off := range offs {
		if now <= h.last {
			now = h.last + 1
		}
		h.last = now
		binary.LittleEndian.PutUint64(batch[off+5+6:], uint64(now))
		now++
	}
	for q := range from.bus.peers {
		if q != from {
			q.enqueue(batch, offs)
		}
	}
}

// peer is one member connection as the hub sees it.
type peer struct {
	c    net.Conn
	bus  *hubBus
	wake chan struct{}
	done chan struct{}

	mu   sync.Mutex
	out  []byte
	lost uint64
}

// enqueue queues the messages of batch that fit; it never blocks.
func (q *peer) enqueue(batch []byte, offs []int) {
	q.mu.Lock()
	room := peerQueue - len(q.out)
	n := len(batch)
	if n > room {
		// Keep whole messages only.
		n = 0
		for i := range offs {
			end := len(batch)
			if i+1 < len(offs) {
				end = offs[i+1]
			}
			if end > room {
				q.lost += uint64(len(offs) - i)
				break
			}
			n = end
		}
	}
	q.out = append(q.out, batch[:n]...)
	q.mu.Unlock()
	if n > 0 {
		select {
		case q.wake <- struct{}{}:
		default:
		}
	}
}

func (q *peer) stop() { close(q.done) }

func (q *peer) writeLoop() {
	var spare []byte
	for {
		select {
		case <-q.wake:
		case <-q.done:
			return
		}
		q.mu.Lock()
		buf, lost := q.out, q.lost
		q.out, q.lost = spare[:0], 0
		q.mu.Unlock()
		if lost > 0 {
			buf = append(appendLost(nil, lost), buf...)
		}
		if _, err := q.c.Write(buf); err != nil {
			q.c.Close()
			return
		}
		spare = buf
	}
}
