package broker

import (
	"context"
	"errors"
	"runtime"
	"sync"
	"time"

	"github.com/berth-io/berth/devices/can"
)

// errSessionClosed: the session closed before its frame was taken; Send
// reports it as the session's can.ErrClosed error.
var errSessionClosed = errors.New("session closed")

// sender is a device's send path: sessions queue the frames their grants
// accepted, and one goroutine at a time (started when the queue fills,
// gone when it empties) takes whatever is queued, across sessions and in
// arrival order, sends it with one can.SendBatch on the plugin bus, loops
// the frames that went out back to the other sessions in that order, and
// answers each waiting Send. While a batch is out, new Sends queue up and
// go together in the next one, so concurrent senders cost a round trip
// per batch, not per frame.
type sender struct {
	d *device

	mu      sync.Mutex
	queue   []*sendCall // not yet taken, in arrival order
	running bool        // a drain goroutine runs
	batches uint64      // batches sent, for the benchmark
}

// sendCall is one session's Send (or SendBatch): frames checked against
// its grant, waiting for their results.
type sendCall struct {
	s      *session
	ctx    context.Context
	frames []can.Frame // owned: their Data is a copy
	errs   []error     // per frame, set before done closes; nil when all went out
	taken  bool        // the sender took it (guarded by sender.mu)
	gone   bool        // the caller left before it was taken (guarded by sender.mu)
	done   chan struct{}
}

func (c *sendCall) fail(i int, err error) {
	if c.errs == nil {
		c.errs = make([]error, len(c.frames))
	}
	c.errs[i] = err
}

func (c *sendCall) failAll(err error) {
	for i := range c.frames {
		c.fail(i, err)
	}
	close(c.done)
}

// enqueue queues c. When nothing else is queued or out, it takes c at
// once and reports true: the caller sends c itself ([sender.lead]), with
// no goroutine between it and the plugin. Otherwise c waits for the drain
// goroutine, started here if none runs.
func (q *sender) enqueue(c *sendCall) (lead bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if !q.running && len(q.queue) == 0 {
		q.running, c.taken = true, true
		return true
	}
	q.queue = append(q.queue, c)
	if !q.running {
		q.running = true
		go q.drain()
	}
	return false
}

// lead sends c, which enqueue took, on its caller's ctx (so the caller
// waits no longer than its ctx, as on a plugin bus), then leaves what was
// queued meanwhile to the drain goroutine.
func (q *sender) lead(c *sendCall) {
	q.send(c.ctx, []*sendCall{c})
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.queue) > 0 {
		go q.drain()
	} else {
		q.running = false
	}
}

// withdraw takes c off the queue unless the sender has taken it already,
// and reports whether it did: a withdrawn call's frames are never sent.
func (q *sender) withdraw(c *sendCall) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if c.taken {
		return false
	}
	c.gone = true
	return true
}

// take takes whole calls off the queue, up to can.MaxBatch frames (one
// call at least), skipping those whose caller left.
func (q *sender) take() []*sendCall {
	q.mu.Lock()
	defer q.mu.Unlock()
	var batch []*sendCall
	n, i := 0, 0
	for ; i < len(q.queue); i++ {
		c := q.queue[i]
		if c.gone {
			continue
		}
		if len(batch) > 0 && n+len(c.frames) > can.MaxBatch {
			break
		}
		c.taken = true
		batch = append(batch, c)
		n += len(c.frames)
	}
	rest := copy(q.queue, q.queue[i:])
	clear(q.queue[rest:])
	q.queue = q.queue[:rest]
	if len(batch) == 0 {
		q.running = false
	}
	return batch
}

// drain sends what is queued, a batch at a time, until the queue is
// empty.
func (q *sender) drain() {
	for {
		batch := q.take()
		if len(batch) == 0 {
			return
		}
		q.send(q.d.ctx, batch)
		if len(batch) > 1 {
			// Several sessions are sending: let those just answered
			// queue their next frames, so they go in the next batch
			// rather than one batch each.
			runtime.Gosched()
		}
	}
}

// send sends the frames of batch in one can.SendBatch on the plugin bus
// with ctx,
// echoes those that went out and answers the calls. A call whose session
// closed or whose ctx ended while it was queued is answered without
// sending its frames.
func (q *sender) send(ctx context.Context, batch []*sendCall) {
	d := q.d
	live := batch[:0]
	var frames []can.Frame
	for _, c := range batch {
		switch {
		case c.s.closed():
			c.failAll(errSessionClosed)
		case c.ctx.Err() != nil:
			c.failAll(c.ctx.Err())
		default:
			live = append(live, c)
			frames = append(frames, c.frames...)
		}
	}
	if len(live) == 0 {
		return
	}
	q.mu.Lock()
	q.batches++
	q.mu.Unlock()
	bus, err := d.current()
	var errs []error
	if err == nil {
		// A batch of the drain goroutine outlives each caller's ctx: a
		// caller that leaves after its frame was taken gets ctx's error,
		// and the frame may go out, as with can.Bus.Send.
		errs = can.FrameErrors(can.SendBatch(ctx, bus, frames), len(frames))
		for i, e := range errs {
			if e != nil {
				errs[i] = d.failed(bus, e)
			}
		}
	} else {
		errs = can.FrameErrors(err, len(frames))
	}
	d.echo(live, errs)
	k := 0
	for _, c := range live {
		sent := 0
		for i := range c.frames {
			if errs[k] != nil {
				c.fail(i, errs[k])
			} else {
				sent++
			}
			k++
		}
		c.s.sent.Add(uint64(sent))
		close(c.done)
	}
}

// echo hands the frames of calls that went out (errs[i] is nil, in the
// order of the calls' frames) to the device's other sessions, in that
// order, as a kernel CAN interface loops a socket's frames back to the
// other sockets: the plugin bus does not receive its own frames. They are
// stamped now, each after the frame dispatched before it.
func (d *device) echo(calls []*sendCall, errs []error) {
	now := time.Now()
	d.mu.Lock()
	defer d.mu.Unlock()
	k := 0
	for _, c := range calls {
		run := make([]can.Frame, 0, len(c.frames))
		for _, f := range c.frames {
			if errs[k] == nil {
				if !now.After(d.last) {
					now = d.last.Add(time.Nanosecond)
				}
				f.Timestamp = now
				run = append(run, f)
				d.last = now
			}
			k++
		}
		d.sent += uint64(len(run))
		if len(run) > 0 {
			d.dispatchLocked(c.s, run)
		}
	}
}

// send queues the frames (checked against the grant) for the device's
// sender and waits for their results; it returns one error per frame
// (unwrapped), or nil when every frame went out. When ctx ends or the
// session closes before the sender took the frames, none is sent; when
// ctx ends after, the frames' fate is not known and each fails with
// ctx's error.
func (s *session) send(ctx context.Context, frames []can.Frame) []error {
	c := &sendCall{s: s, ctx: ctx, frames: make([]can.Frame, len(frames)), done: make(chan struct{})}
	for i, f := range frames {
		c.frames[i] = f.Clone()
	}
	q := &s.d.tx
	if q.enqueue(c) {
		q.lead(c)
		return c.errs
	}
	fail := func(err error) []error {
		errs := make([]error, len(frames))
		for i := range errs {
			errs[i] = err
		}
		return errs
	}
	select {
	case <-c.done:
		return c.errs
	case <-ctx.Done():
		q.withdraw(c)
		return fail(ctx.Err())
	case <-s.done:
		if q.withdraw(c) {
			return fail(errSessionClosed)
		}
	}
	select { // taken: the batch is out and answers soon
	case <-c.done:
		return c.errs
	case <-ctx.Done():
		return fail(ctx.Err())
	}
}
