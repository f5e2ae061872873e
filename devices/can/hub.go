package can

import (
	"context"
	"fmt"
	"sync"
)

// MaxBatch is the most frames one [Stream.Recv] returns.
const MaxBatch = 512

// DefaultDepth is how many frames a [Hub] stream buffers before it drops.
const DefaultDepth = 4096

// Hub delivers the frames one bus handle receives to any number of
// streams: in order, in batches, and never blocking the publisher. A
// stream whose reader falls behind by more than the depth loses the newest
// frames (like a full socket receive buffer), which only it loses; the
// losses are counted. It is the plumbing between a driver's receive path
// and [Bus.Receive], so drivers need not write it.
//
// Methods are safe for concurrent use.
type Hub struct {
	depth int

	mu      sync.Mutex
	streams map[*hubStream]struct{}
	closed  bool
	c       Counters // RxFrames, Errors, Drops
}

// NewHub returns a hub whose streams each buffer up to depth frames;
// depth <= 0 means [DefaultDepth].
func NewHub(depth int) *Hub {
	if depth <= 0 {
		depth = DefaultDepth
	}
	return &Hub{depth: depth, streams: make(map[*hubStream]struct{})}
}

// Publish hands received frames to every stream, in the order given. It
// never blocks on a reader. The hub keeps the frames' Data slices: the
// caller must not change them afterwards. Publish after Close does
// nothing.
func (h *Hub) Publish(frames ...Frame) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return
	}
	for _, f := range frames {
		h.c.RxFrames++
		if f.Error {
			h.c.Errors++
		}
	}
	for s := range h.streams {
		room := h.depth - len(s.queue)
		n := min(room, len(frames))
		s.queue = append(s.queue, frames[:n]...)
		if lost := len(frames) - n; lost > 0 {
			h.c.Drops += uint64(lost)
		}
		if n > 0 {
			select {
			case s.wake <- struct{}{}:
			default:
			}
		}
	}
}

// Receive starts a stream of every frame published from now on; see
// [Bus.Receive] for its contract. It fails with [ErrClosed] after Close.
func (h *Hub) Receive(ctx context.Context) (Stream, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil, fmt.Errorf("receive: %w", ErrClosed)
	}
	s := &hubStream{h: h, ctx: ctx, wake: make(chan struct{}, 1)}
	h.streams[s] = struct{}{}
	// Forget the stream when its ctx ends, so an abandoned stream does
	// not collect frames forever.
	context.AfterFunc(ctx, func() { h.remove(s) })
	return s, nil
}

// Counters returns RxFrames, Errors and Drops as counted by the hub;
// TxFrames is the driver's to count.
func (h *Hub) Counters() Counters {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.c
}

// Close ends every stream with [ErrClosed] once it has returned the
// frames already queued. Safe to call twice.
func (h *Hub) Close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return
	}
	h.closed = true
	for s := range h.streams {
		s.closed = true
		select {
		case s.wake <- struct{}{}:
		default:
		}
	}
}

func (h *Hub) remove(s *hubStream) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.streams, s)
	s.queue = nil
}

type hubStream struct {
	h    *Hub
	ctx  context.Context
	wake chan struct{}

	// Guarded by h.mu.
	queue  []Frame
	closed bool
}

func (s *hubStream) Recv() ([]Frame, error) {
	for {
		if err := s.ctx.Err(); err != nil {
			return nil, err
		}
		s.h.mu.Lock()
		if n := min(len(s.queue), MaxBatch); n > 0 {
			batch := make([]Frame, n)
			copy(batch, s.queue)
			// Reuse the queue's memory once drained, else shift.
			if n == len(s.queue) {
				s.queue = s.queue[:0]
			} else {
				s.queue = append(s.queue[:0], s.queue[n:]...)
			}
			s.h.mu.Unlock()
			return batch, nil
		}
		if s.closed {
			s.h.mu.Unlock()
			return nil, fmt.Errorf("receive: %w", ErrClosed)
		}
		s.h.mu.Unlock()
		select {
		case <-s.wake:
		case <-s.ctx.Done():
			return nil, s.ctx.Err()
		}
	}
}
