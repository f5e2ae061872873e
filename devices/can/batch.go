package can

import (
	"context"
	"errors"
	"fmt"
	"strings"
)

// BatchSender is an optional interface of a [Bus] that sends many frames
// in one call, for callers that have a burst at hand (the broker, a
// container's device socket). [SendBatch] uses it when a bus has it.
type BatchSender interface {
	// SendBatch sends frames in order, as that many Send calls made one
	// after another would: each frame is sent or refused on its own, with
	// the error Send would give it, and a refused frame does not keep the
	// frames after it off the bus. It returns nil when every frame was
	// sent and a [*BatchError] otherwise. Frames not yet accepted when
	// ctx ends fail with ctx's error. The bus does not keep frames.
	SendBatch(ctx context.Context, frames []Frame) error
}

// SendBatch sends frames on b in order: with b's own SendBatch when b is
// a [BatchSender], else with one b.Send per frame. It returns nil when
// every frame was sent and a [*BatchError] otherwise; see
// [BatchSender.SendBatch]. Use [FrameErrors] for each frame's error.
func SendBatch(ctx context.Context, b Bus, frames []Frame) error {
	if bs, ok := b.(BatchSender); ok {
		return bs.SendBatch(ctx, frames)
	}
	return sendEach(ctx, b, frames)
}

// sendEach sends frames one Send at a time; once ctx ends, the rest fail
// with its error without being tried.
func sendEach(ctx context.Context, b Bus, frames []Frame) error {
	var errs []error
	for i, f := range frames {
		err := ctx.Err()
		if err != nil {
			err = fmt.Errorf("send %s: %w", f, err)
		} else {
			err = b.Send(ctx, f)
		}
		if err != nil {
			if errs == nil {
				errs = make([]error, len(frames))
			}
			errs[i] = err
		}
	}
	if errs == nil {
		return nil
	}
	return &BatchError{Errs: errs}
}

// BatchError reports the frames of a batch that were not sent.
type BatchError struct {
	// Errs holds one entry per frame of the batch, in order: nil for a
	// frame that was sent, its error for one that was not.
	Errs []error
}

// Failed returns how many frames were not sent.
func (e *BatchError) Failed() int {
	n := 0
	for _, err := range e.Errs {
		if err != nil {
			n++
		}
	}
	return n
}

// Error names how many frames failed and the first few errors.
func (e *BatchError) Error() string {
	const shown = 3
	var b strings.Builder
	fmt.Fprintf(&b, "%d of %d frames not sent", e.Failed(), len(e.Errs))
	n := 0
	for i, err := range e.Errs {
		if err == nil {
			continue
		}
		if n == shown {
			b.WriteString("; ...")
			break
		}
		fmt.Fprintf(&b, "; frame %d: %v", i, err)
		n++
	}
	return b.String()
}

// Unwrap returns the errors of the frames that failed, so errors.Is
// finds a sentinel any of them wraps.
func (e *BatchError) Unwrap() []error {
	out := make([]error, 0, len(e.Errs))
	for _, err := range e.Errs {
		if err != nil {
			out = append(out, err)
		}
	}
	return out
}

// FrameErrors returns the error of each of the n frames of a batch whose
// SendBatch returned err: nil when err is nil, the entries of a
// [*BatchError] of n frames, and err for every frame otherwise (a batch
// that failed as a whole).
func FrameErrors(err error, n int) []error {
	out := make([]error, n)
	if err == nil {
		return out
	}
	var be *BatchError
	if errors.As(err, &be) && len(be.Errs) == n {
		copy(out, be.Errs)
		return out
	}
	for i := range out {
		out[i] = err
	}
	return out
}
