package can

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	pb "github.com/berth-io/berth/devices/can/proto"
)

// closeTimeout bounds the Close RPC, which has no ctx of its own.
const closeTimeout = 10 * time.Second

// client is the host side of the CAN class: a [Driver] that calls a plugin
// process over gRPC.
type client struct {
	c pb.CANClient
}

var _ Driver = (*client)(nil)

func (c *client) Open(ctx context.Context, device string) (Bus, error) {
	resp, err := c.c.Open(ctx, &pb.OpenRequest{Device: device})
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", device, errTable.FromStatus(ctx, err))
	}
	mode := Classical
	if resp.GetFd() {
		mode = FD
	}
	b := &clientBus{c: c.c, device: device, handle: resp.GetHandle(), mode: mode}
	if resp.GetSendStream() {
		b.tx = newSender(c.c, b.handle, device)
	}
	return b, nil
}

// clientBus is a bus handle in the plugin. Its Sends go over the
// plugin's SendStream (tx), or one Send call each to a plugin that
// predates it.
type clientBus struct {
	c      pb.CANClient
	device string
	handle uint64
	mode   Mode
	tx     *sender // nil: the plugin has no SendStream

	mu     sync.Mutex
	closed bool
}

func (b *clientBus) Mode() Mode { return b.mode }

func (b *clientBus) isClosed() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.closed
}

func (b *clientBus) errf(op string, ctx context.Context, err error) error {
	return fmt.Errorf("%s %s: %w", op, b.device, errTable.FromStatus(ctx, err))
}

// Send sends f over the send stream, batched with the frames of
// concurrent Sends, and waits for its own result. A frame that fails
// Validate is refused here, with the error the plugin would give, so a
// malformed frame never reaches the stream.
func (b *clientBus) Send(ctx context.Context, f Frame) error {
	if b.isClosed() {
		return fmt.Errorf("send %s: %w", b.device, ErrClosed)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("send %s: %w", b.device, err)
	}
	if b.tx == nil {
		if _, err := b.c.Send(ctx, &pb.SendRequest{Handle: b.handle, Frame: frameToProto(f)}); err != nil {
			return b.errf("send", ctx, err)
		}
		return nil
	}
	if err := b.validate(ctx, f); err != nil {
		return err
	}
	if errs := b.tx.send(ctx, []Frame{f}); errs != nil {
		return errs[0]
	}
	return nil
}

// SendBatch implements [BatchSender]: the frames go in order over the
// send stream, in batches that no concurrent Send interleaves with.
func (b *clientBus) SendBatch(ctx context.Context, frames []Frame) error {
	if b.tx == nil {
		return sendEach(ctx, b, frames)
	}
	errs := make([]error, len(frames))
	failed := false
	if err := ctx.Err(); err != nil || b.isClosed() {
		if err == nil {
			err = ErrClosed
		}
		for i := range errs {
			errs[i] = fmt.Errorf("send %s: %w", b.device, err)
		}
		return &BatchError{Errs: errs}
	}
	valid := make([]Frame, 0, len(frames))
	pos := make([]int, 0, len(frames))
	for i, f := range frames {
		if err := b.validate(ctx, f); err != nil {
			errs[i], failed = err, true
			continue
		}
		valid, pos = append(valid, f), append(pos, i)
	}
	for k, err := range b.tx.send(ctx, valid) {
		if err != nil {
			errs[pos[k]], failed = err, true
		}
	}
	if !failed {
		return nil
	}
	return &BatchError{Errs: errs}
}

// validate refuses a frame the plugin would refuse for the bus's mode,
// with the same error as if the plugin had (the sentinel and the
// InvalidArgument code).
func (b *clientBus) validate(ctx context.Context, f Frame) error {
	if err := f.Validate(b.mode); err != nil {
		return b.errf("send", ctx, errTable.ToStatus(fmt.Errorf("send %s: %w", f, err)))
	}
	return nil
}

func (b *clientBus) Receive(ctx context.Context) (Stream, error) {
	if b.isClosed() {
		return nil, fmt.Errorf("receive %s: %w", b.device, ErrClosed)
	}
	stream, err := b.c.Receive(ctx, &pb.ReceiveRequest{Handle: b.handle})
	if err != nil {
		return nil, b.errf("receive", ctx, err)
	}
	// Wait for the plugin's empty first batch: it is subscribed now.
	if _, err := stream.Recv(); err != nil {
		return nil, b.errf("receive", ctx, err)
	}
	return &clientStream{b: b, ctx: ctx, s: stream}, nil
}

func (b *clientBus) status(ctx context.Context) (*pb.StatusResponse, error) {
	if b.isClosed() {
		return nil, fmt.Errorf("status %s: %w", b.device, ErrClosed)
	}
	resp, err := b.c.Status(ctx, &pb.StatusRequest{Handle: b.handle})
	if err != nil {
		return nil, b.errf("status", ctx, err)
	}
	return resp, nil
}

func (b *clientBus) State(ctx context.Context) (State, error) {
	resp, err := b.status(ctx)
	if err != nil {
		return StateUnknown, err
	}
	return stateFromProto(resp.GetState()), nil
}

func (b *clientBus) Counters(ctx context.Context) (Counters, error) {
	resp, err := b.status(ctx)
	if err != nil {
		return Counters{}, err
	}
	return Counters{RxFrames: resp.GetRxFrames(), TxFrames: resp.GetTxFrames(),
		Errors: resp.GetErrors(), Drops: resp.GetDrops()}, nil
}

func (b *clientBus) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	b.mu.Unlock()
	if b.tx != nil {
		b.tx.close()
	}
	ctx, cancel := context.WithTimeout(context.Background(), closeTimeout)
	defer cancel()
	if _, err := b.c.Close(ctx, &pb.CloseRequest{Handle: b.handle}); err != nil {
		return b.errf("close", ctx, err)
	}
	return nil
}

type clientStream struct {
	b   *clientBus
	ctx context.Context
	s   pb.CAN_ReceiveClient
}

func (s *clientStream) Recv() ([]Frame, error) {
	resp, err := s.s.Recv()
	if err != nil {
		if s.ctx.Err() != nil {
			return nil, s.ctx.Err()
		}
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("receive %s: %w", s.b.device, ErrClosed)
		}
		return nil, s.b.errf("receive", s.ctx, err)
	}
	frames := make([]Frame, len(resp.GetFrames()))
	for i, p := range resp.GetFrames() {
		frames[i] = frameFromProto(p)
	}
	return frames, nil
}
