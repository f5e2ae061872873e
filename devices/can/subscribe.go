package can

import "context"

// Subscriber is implemented by a [Bus] that can push received frames to a
// callback instead of a [Stream], which saves a goroutine hand-off per
// batch: a reader that only copies frames out (to a socket, say) can take
// them on the bus's own dispatch goroutine.
//
// Subscribe calls deliver with the frames Receive would stream, in bus
// order, one call at a time, from the goroutine that dispatches the bus's
// frames, until ctx ends or the bus is closed; done is closed then, after
// the last call of deliver. A subscription pauses and resumes as a
// Receive stream does.
//
// deliver must not block nor call the bus. The slice is valid only during
// the call: copy the frames kept (their Data may be kept, never changed).
// deliver returns how many of frames, from the first, it took; the rest
// count as dropped, as the frames a slow stream reader loses do.
type Subscriber interface {
	Subscribe(ctx context.Context, deliver func(frames []Frame) (taken int)) (done <-chan struct{}, err error)
}
