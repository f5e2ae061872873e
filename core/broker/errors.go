package broker

import (
	"errors"
	"fmt"

	"github.com/berth-io/berth/devices/can/canwire"
)

// Sentinel errors of the broker. The first three are canwire's own, so the
// device socket server answers a container with the matching code
// (PermissionDenied, ResourceExhausted, Unavailable) without knowing the
// broker. Malformed frames are refused with the can package's
// can.ErrInvalidFrame family and a closed session with can.ErrClosed.
var (
	// ErrPermissionDenied: the grant does not allow the request (a send of
	// an ID outside its send list). The error is a [*DeniedError] naming
	// the container and the grant.
	ErrPermissionDenied = canwire.ErrPermissionDenied
	// ErrRateLimited: a send waited for the grant's send rate and its ctx
	// ended first.
	ErrRateLimited = canwire.ErrRateLimited
	// ErrUnavailable: the device's plugin is down (crashed, restarting);
	// the session resumes by itself once it is back. Errors caused by the
	// plugin host also wrap devices.ErrUnavailable.
	ErrUnavailable = canwire.ErrUnavailable
	// ErrInvalidFilter: a receive or send filter is not well formed.
	ErrInvalidFilter = errors.New("invalid CAN filter")
	// ErrInvalidGrant: a grant is not well formed (no name, no device, a
	// negative rate, a bad filter).
	ErrInvalidGrant = errors.New("invalid grant")
)

// DeniedError is a request a session's grant refused. Its text names the
// container and the grant and says what the grant allows, e.g.
//
//	container app: grant "body" does not allow sending 0x321: its send list is 0x100-0x1FF
//
// It matches (errors.Is) Err, and Cause when set.
type DeniedError struct {
	// Container and Grant say whose request it was.
	Container, Grant string
	// Reason completes the sentence after the grant's name.
	Reason string
	// Err is the sentinel: [ErrPermissionDenied], [ErrRateLimited] or
	// can.ErrFDOnClassicalBus.
	Err error
	// Cause is what ended the request, if anything (a ctx error).
	Cause error
}

func (e *DeniedError) Error() string {
	return fmt.Sprintf("container %s: grant %q %s", e.Container, e.Grant, e.Reason)
}

// Unwrap returns Err and Cause.
func (e *DeniedError) Unwrap() []error {
	if e.Cause != nil {
		return []error{e.Err, e.Cause}
	}
	return []error{e.Err}
}
