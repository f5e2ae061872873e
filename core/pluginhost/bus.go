package pluginhost

import (
	"context"
	"errors"
	"fmt"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/berth-io/berth/devices"
	"github.com/berth-io/berth/devices/can"
)

// bus is a CAN bus opened through the host: the plugin's bus, with errors
// caused by the plugin going away turned into devices.ErrUnavailable. It keeps the
// plugin bus's batching: it is a can.BatchSender.
type bus struct {
	can.Bus
	inst *instance
	name string
}

func (b *bus) Send(ctx context.Context, f can.Frame) error {
	return b.inst.wrap(ctx, "send "+b.name, b.Bus.Send(ctx, f))
}

var _ can.BatchSender = (*bus)(nil)

// SendBatch sends frames in one can.SendBatch on the plugin's bus (one
// round trip per batch on the wire). Each frame's error is wrapped as Send
// wraps it, devices.ErrUnavailable included when the plugin went away; the result
// is nil or a *can.BatchError with one entry per frame.
func (b *bus) SendBatch(ctx context.Context, frames []can.Frame) error {
	err := can.SendBatch(ctx, b.Bus, frames)
	if err == nil {
		return nil
	}
	errs := can.FrameErrors(err, len(frames))
	for i, e := range errs {
		errs[i] = b.inst.wrap(ctx, "send "+b.name, e)
	}
	return &can.BatchError{Errs: errs}
}

func (b *bus) Receive(ctx context.Context) (can.Stream, error) {
	s, err := b.Bus.Receive(ctx)
	if err != nil {
		return nil, b.inst.wrap(ctx, "receive "+b.name, err)
	}
	return &stream{Stream: s, ctx: ctx, b: b}, nil
}

func (b *bus) State(ctx context.Context) (can.State, error) {
	st, err := b.Bus.State(ctx)
	return st, b.inst.wrap(ctx, "state "+b.name, err)
}

func (b *bus) Counters(ctx context.Context) (can.Counters, error) {
	c, err := b.Bus.Counters(ctx)
	return c, b.inst.wrap(ctx, "counters "+b.name, err)
}

// Close releases the plugin's handle. On a bus whose plugin is gone there
// is nothing left to release, and Close returns nil.
func (b *bus) Close() error {
	err := b.Bus.Close()
	if err != nil && b.inst.dead() {
		return nil
	}
	return err
}

type stream struct {
	can.Stream
	ctx context.Context
	b   *bus
}

func (s *stream) Recv() ([]can.Frame, error) {
	fs, err := s.Stream.Recv()
	if err != nil {
		return nil, s.b.inst.wrap(s.ctx, "receive "+s.b.name, err)
	}
	return fs, nil
}

// wrap returns err, prefixed with op, wrapping devices.ErrUnavailable as well when
// the error comes from the plugin having gone away rather than from the
// plugin's verdict or from ctx: the instance is dead, or the transport
// says so. A transport that reports Unavailable gets the instance declared
// dead, so the host restarts the plugin without waiting to notice itself.
// nil stays nil.
func (i *instance) wrap(ctx context.Context, op string, err error) error {
	if err == nil {
		return nil
	}
	st, isStatus := status.FromError(err)
	var gone bool
	switch {
	case i.dead():
		gone = true
	case isStatus && st.Code() == codes.Unavailable:
		gone = true
		i.p.declareDead(i, fmt.Sprintf("plugin unreachable: %v", err))
	case isStatus && (st.Code() == codes.Unknown || st.Code() == codes.Internal),
		ctx.Err() == nil && errors.Is(err, context.Canceled):
		// A transport failure the client did not classify: the process
		// is most likely exiting; give go-plugin a moment to notice.
		gone = waitExited(i, exitPoll)
	}
	if gone {
		return fmt.Errorf("%s: %w: plugin %s went away: %w", op, devices.ErrUnavailable, i.p.spec.Name, err)
	}
	return fmt.Errorf("%s: %w", op, err)
}
