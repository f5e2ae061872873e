package can

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"

	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	pb "github.com/berth-io/berth/devices/can/proto"
)

// maxWireBatch bounds the frames of one SendBatch message (512 FD frames
// of 64 bytes make about 40 KiB, far below gRPC's 4 MiB message limit).
const maxWireBatch = MaxBatch

// maxInFlight bounds the batches on the wire awaiting their results. While
// they are out, Sends queue up and go together in the next batch: one
// batch is being sent by the plugin while the next travels, and a burst
// of concurrent Sends costs a few round trips, not one each.
const maxInFlight = 2

// errStreamEnded: the plugin ended a SendStream the host had not ended.
var errStreamEnded = errors.New("the plugin ended the send stream")

// errStrayResult: the plugin answered a batch the host never sent.
var errStrayResult = errors.New("the plugin answered a send batch the host did not send")

// sender carries one bus handle's Sends over SendStream: callers queue
// frames, one writer goroutine at a time writes what is queued as one
// batch (so concurrent Sends coalesce while a batch is on the wire), and
// a reader goroutine per stream hands each batch's results back to its
// callers. The stream is opened at the first Send and again after it
// breaks; frames in flight on a broken stream fail with its error (the
// plugin's Unavailable when the process died).
type sender struct {
	c      pb.CANClient
	handle uint64
	device string
	ctx    context.Context // ends at close; the streams live in it
	cancel context.CancelFunc

	mu      sync.Mutex
	queue   []*sendCall // not yet written, in Send order
	cur     *sendStream // nil: the writer opens one
	writing bool        // a writer goroutine runs
	closed  bool

	// slots holds a token per batch in flight: the writer puts one in
	// before it writes a batch, the reader takes it out once the batch
	// has its results or is lost.
	slots chan struct{}
}

// sendCall is one Send, or one chunk of a SendBatch, waiting for the
// results of its frames.
type sendCall struct {
	ctx      context.Context
	frames   []*pb.Frame // encoded at Send, so the caller may reuse its Data
	deadline int64       // ctx's deadline in unix ns; 0 for none
	errs     []error     // per frame; nil while every frame is fine
	done     chan struct{}
}

// sendStream is one SendStream and the batches written on it that await
// their results, oldest first (guarded by sender.mu).
type sendStream struct {
	s        pb.CAN_SendStreamClient
	cancel   context.CancelFunc
	inflight [][]*sendCall
	err      error // why it ended; nil while it works
}

func newSender(c pb.CANClient, handle uint64, device string) *sender {
	s := &sender{c: c, handle: handle, device: device, slots: make(chan struct{}, maxInFlight)}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	return s
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

// enqueue queues calls, which keep their order and stay together, and
// starts the writer if none runs.
func (s *sender) enqueue(calls ...*sendCall) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return fmt.Errorf("send %s: %w", s.device, ErrClosed)
	}
	s.queue = append(s.queue, calls...)
	if !s.writing {
		s.writing = true
		go s.write()
	}
	return nil
}

// newCall encodes frames for the wire.
func newCall(ctx context.Context, frames []Frame) *sendCall {
	c := &sendCall{ctx: ctx, frames: make([]*pb.Frame, len(frames)), done: make(chan struct{})}
	for i, f := range frames {
		f.Data = append([]byte(nil), f.Data...)
		c.frames[i] = frameToProto(f)
	}
	if dl, ok := ctx.Deadline(); ok {
		c.deadline = dl.UnixNano()
	}
	return c
}

// send sends frames (already validated) in order, in calls of at most
// maxWireBatch frames queued together so no other Send comes between
// them, and waits for their results or for ctx. It returns each frame's
// error, or nil when every frame was sent.
func (s *sender) send(ctx context.Context, frames []Frame) []error {
	if len(frames) == 0 {
		return nil
	}
	calls := make([]*sendCall, 0, (len(frames)+maxWireBatch-1)/maxWireBatch)
	for i := 0; i < len(frames); i += maxWireBatch {
		calls = append(calls, newCall(ctx, frames[i:min(i+maxWireBatch, len(frames))]))
	}
	var errs []error
	set := func(i int, err error) {
		if errs == nil {
			errs = make([]error, len(frames))
		}
		errs[i] = err
	}
	if err := s.enqueue(calls...); err != nil {
		for i := range frames {
			set(i, err)
		}
		return errs
	}
	off := 0
	for _, c := range calls {
		select {
		case <-c.done:
			for i, err := range c.errs {
				if err != nil {
					set(off+i, err)
				}
			}
		case <-ctx.Done():
			err := fmt.Errorf("send %s: %w", s.device, ctx.Err())
			for i := range c.frames {
				set(off+i, err)
			}
		}
		off += len(c.frames)
	}
	return errs
}

// write writes what is queued, a batch at a time once a slot is free,
// until the queue is empty.
func (s *sender) write() {
	msg := &pb.SendBatch{Handle: s.handle}
	for {
		select {
		case s.slots <- struct{}{}:
		case <-s.ctx.Done():
			s.mu.Lock()
			s.writing = false
			s.mu.Unlock()
			return // close fails what is queued
		}
		s.mu.Lock()
		batch := s.takeLocked()
		if len(batch) == 0 {
			s.writing = false
			s.mu.Unlock()
			<-s.slots
			return
		}
		st := s.cur
		s.mu.Unlock()

		// A caller whose ctx ended has gone: its frames never reach the
		// wire.
		live := batch[:0]
		for _, c := range batch {
			if err := c.ctx.Err(); err != nil {
				c.failAll(fmt.Errorf("send %s: %w", s.device, err))
				continue
			}
			live = append(live, c)
		}
		if len(live) == 0 {
			<-s.slots
			continue
		}
		st, err := s.push(st, live)
		if err != nil {
			for _, c := range live {
				c.failAll(s.wireErr(c.ctx, err))
			}
			<-s.slots
			continue
		}
		msg.Frames, msg.DeadlinesUnixNano = msg.Frames[:0], msg.DeadlinesUnixNano[:0]
		deadlines := false
		for _, c := range live {
			msg.Frames = append(msg.Frames, c.frames...)
			deadlines = deadlines || c.deadline != 0
		}
		if deadlines {
			for _, c := range live {
				for range c.frames {
					msg.DeadlinesUnixNano = append(msg.DeadlinesUnixNano, c.deadline)
				}
			}
		}
		// On error the stream is done; its reader gets the status and
		// fails every batch in flight, this one too.
		_ = st.s.Send(msg)
	}
}

// push records batch as in flight on st, or on a new stream when st is
// nil or has ended (the batch has not been written, so it may go on
// another stream), and returns the stream to write it on.
func (s *sender) push(st *sendStream, batch []*sendCall) (*sendStream, error) {
	var err error
	for range 2 {
		if st == nil {
			if st, err = s.open(); err != nil {
				return nil, err
			}
		}
		s.mu.Lock()
		if err = st.err; err == nil {
			st.inflight = append(st.inflight, batch)
		}
		s.mu.Unlock()
		if err == nil {
			return st, nil
		}
		if s.ctx.Err() != nil {
			break
		}
		st = nil
	}
	return nil, err
}

// takeLocked takes whole calls off the queue, up to maxWireBatch frames
// (one call at least).
func (s *sender) takeLocked() []*sendCall {
	n, i := 0, 0
	for ; i < len(s.queue); i++ {
		if k := len(s.queue[i].frames); i > 0 && n+k > maxWireBatch {
			break
		} else {
			n += k
		}
	}
	batch := make([]*sendCall, i)
	copy(batch, s.queue[:i])
	rest := copy(s.queue, s.queue[i:])
	clear(s.queue[rest:])
	s.queue = s.queue[:rest]
	return batch
}

// open opens a stream and starts its reader; only the writer calls it.
func (s *sender) open() (*sendStream, error) {
	ctx, cancel := context.WithCancel(s.ctx)
	stream, err := s.c.SendStream(ctx)
	if err != nil {
		cancel()
		return nil, err
	}
	st := &sendStream{s: stream, cancel: cancel}
	s.mu.Lock()
	s.cur = st
	s.mu.Unlock()
	go s.read(st)
	return st, nil
}

// read hands the results of st's batches to their callers until st
// ends, then fails the batches still in flight with st's error.
func (s *sender) read(st *sendStream) {
	for {
		res, err := st.s.Recv()
		s.mu.Lock()
		if err == nil && len(st.inflight) == 0 {
			err = errStrayResult
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = errStreamEnded
			}
			st.err = err
			if s.cur == st {
				s.cur = nil
			}
			lost := st.inflight
			st.inflight = nil
			s.mu.Unlock()
			st.cancel()
			for _, batch := range lost {
				for _, c := range batch {
					c.failAll(s.wireErr(c.ctx, err))
				}
				<-s.slots
			}
			return
		}
		batch := st.inflight[0]
		st.inflight[0] = nil
		st.inflight = st.inflight[1:]
		s.mu.Unlock()
		s.deliver(batch, res)
		<-s.slots
	}
}

// deliver sets the errors res names on the frames of batch and wakes
// their callers.
func (s *sender) deliver(batch []*sendCall, res *pb.SendResult) {
	for _, e := range res.GetErrors() {
		i := int(e.GetIndex())
		for _, c := range batch {
			if i < len(c.frames) {
				c.fail(i, s.frameErr(c.ctx, e.GetStatus()))
				break
			}
			i -= len(c.frames)
		}
	}
	for _, c := range batch {
		close(c.done)
	}
}

// frameErr decodes a frame's error from its serialized status.
func (s *sender) frameErr(ctx context.Context, raw []byte) error {
	var st spb.Status
	if err := proto.Unmarshal(raw, &st); err != nil {
		return fmt.Errorf("send %s: the plugin's error does not decode: %w", s.device, err)
	}
	return fmt.Errorf("send %s: %w", s.device, errTable.FromStatus(ctx, status.ErrorProto(&st)))
}

// wireErr is the error of a frame lost with its stream: ErrClosed after
// close, else the stream's status (Unavailable when the plugin died).
func (s *sender) wireErr(ctx context.Context, err error) error {
	if s.ctx.Err() != nil {
		return fmt.Errorf("send %s: %w", s.device, ErrClosed)
	}
	return fmt.Errorf("send %s: %w", s.device, errTable.FromStatus(ctx, err))
}

// close ends the streams and fails every Send not yet answered with
// ErrClosed. Safe to call twice.
func (s *sender) close() {
	s.mu.Lock()
	s.closed = true
	queued := s.queue
	s.queue = nil
	s.mu.Unlock()
	s.cancel()
	for _, c := range queued {
		c.failAll(fmt.Errorf("send %s: %w", s.device, ErrClosed))
	}
}
