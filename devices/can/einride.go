package can

import (
	"fmt"

	einride "go.einride.tech/can"
)

// FromEinride converts an einride frame (classical CAN only: einride's
// Frame has no FD or error flags). The timestamp is left zero.
func FromEinride(f einride.Frame) Frame {
	out := Frame{ID: f.ID, Extended: f.IsExtended, Remote: f.IsRemote}
	n := min(int(f.Length), einride.MaxDataLength)
	if f.IsRemote {
		out.RemoteLen = uint8(n)
	} else {
		out.Data = append([]byte(nil), f.Data[:n]...)
	}
	return out
}

// ToEinride converts f to an einride frame. It refuses, with an error
// wrapping [ErrInvalidFrame], the frames einride cannot express: CAN FD
// frames, error frames and frames with more than 8 data bytes. The
// timestamp is dropped (einride carries it beside the frame, if at all).
func ToEinride(f Frame) (einride.Frame, error) {
	switch {
	case f.FD:
		return einride.Frame{}, fmt.Errorf("to einride frame: %w: einride frames cannot carry CAN FD", ErrInvalidFlags)
	case f.Error:
		return einride.Frame{}, fmt.Errorf("to einride frame: %w: einride frames cannot carry error frames", ErrInvalidFlags)
	case len(f.Data) > einride.MaxDataLength:
		return einride.Frame{}, fmt.Errorf("to einride frame: %w: %d data bytes", ErrInvalidLength, len(f.Data))
	case f.RemoteLen > einride.MaxDataLength:
		return einride.Frame{}, fmt.Errorf("to einride frame: %w: remote length %d", ErrInvalidLength, f.RemoteLen)
	}
	out := einride.Frame{ID: f.ID, IsExtended: f.Extended, IsRemote: f.Remote}
	if f.Remote {
		out.Length = f.RemoteLen
	} else {
		out.Length = uint8(copy(out.Data[:], f.Data))
	}
	return out, nil
}
