package canwire

import (
	"context"
	"errors"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/berth-io/berth/devices/can"
)

// Sentinel errors of the protocol. A session's bus (the broker's) wraps
// the first four in its errors so that the server sends the matching
// code; the client's errors wrap them again (see [Error]).
var (
	// ErrPermissionDenied: the grant does not allow the request (a send
	// of an ID outside it). The text names the grant.
	ErrPermissionDenied = errors.New("permission denied")
	// ErrRateLimited: the grant's send rate is used up.
	ErrRateLimited = errors.New("send rate exceeded")
	// ErrUnavailable: the device is briefly unavailable (its plugin is
	// restarting); retry.
	ErrUnavailable = errors.New("device unavailable")
	// ErrUnknownGrant: the container has no grant of that name. Client
	// errors with this code also match can.ErrUnknownDevice.
	ErrUnknownGrant = errors.New("unknown grant")
	// ErrProtocol: a message broke the protocol (a bad hello, a record
	// of the wrong size).
	ErrProtocol = errors.New("canwire protocol error")
)

// Code is a status code on the wire. The values are gRPC's, so the codes
// the broker uses at its gRPC edge keep their numbers here.
type Code = codes.Code

// Detail is the finer reason an Error message carries, so that the client
// gives back the CAN class's exact sentinels.
type Detail uint8

// The details.
const (
	DetailNone Detail = iota
	DetailInvalidID
	DetailInvalidLength
	DetailInvalidFlags
	DetailFDOnClassicalBus
	DetailBusOff
	DetailBusStopped
	DetailClosed
)

// details maps each detail to its sentinel; the order matters for
// detailOf, most specific first.
var details = []struct {
	d   Detail
	err error
}{
	{DetailInvalidID, can.ErrInvalidID},
	{DetailInvalidLength, can.ErrInvalidLength},
	{DetailInvalidFlags, can.ErrInvalidFlags},
	{DetailFDOnClassicalBus, can.ErrFDOnClassicalBus},
	{DetailBusOff, can.ErrBusOff},
	{DetailBusStopped, can.ErrBusStopped},
	{DetailClosed, can.ErrClosed},
}

// codeOf returns the code and detail the server sends for err.
func codeOf(err error) (Code, Detail) {
	d := DetailNone
	for _, x := range details {
		if errors.Is(err, x.err) {
			d = x.d
			break
		}
	}
	switch {
	case errors.Is(err, ErrPermissionDenied):
		return codes.PermissionDenied, d
	case errors.Is(err, ErrRateLimited):
		return codes.ResourceExhausted, d
	case errors.Is(err, ErrUnavailable):
		return codes.Unavailable, d
	case errors.Is(err, ErrUnknownGrant), errors.Is(err, can.ErrUnknownDevice):
		return codes.NotFound, d
	case errors.Is(err, can.ErrInvalidFrame), errors.Is(err, ErrProtocol):
		return codes.InvalidArgument, d
	case errors.Is(err, can.ErrBusOff), errors.Is(err, can.ErrBusStopped):
		return codes.FailedPrecondition, d
	case errors.Is(err, can.ErrClosed):
		return codes.Unavailable, d
	case errors.Is(err, context.Canceled):
		return codes.Canceled, d
	case errors.Is(err, context.DeadlineExceeded):
		return codes.DeadlineExceeded, d
	}
	if s, ok := status.FromError(err); ok && s.Code() != codes.OK {
		return s.Code(), d
	}
	return codes.Unknown, d
}

// Error is an error the server sent. Its text is the server's, unchanged;
// it matches (errors.Is) the sentinel of its code (PermissionDenied:
// [ErrPermissionDenied]; ResourceExhausted: [ErrRateLimited];
// Unavailable: [ErrUnavailable]; NotFound: [ErrUnknownGrant] and
// can.ErrUnknownDevice; InvalidArgument: can.ErrInvalidFrame) and that of
// its detail (can.ErrInvalidID, can.ErrBusOff, ...).
type Error struct {
	Code    Code
	Detail  Detail
	Message string
}

func (e *Error) Error() string { return e.Message }

// Unwrap returns the sentinels e matches.
func (e *Error) Unwrap() []error {
	var out []error
	switch e.Code {
	case codes.PermissionDenied:
		out = append(out, ErrPermissionDenied)
	case codes.ResourceExhausted:
		out = append(out, ErrRateLimited)
	case codes.Unavailable:
		out = append(out, ErrUnavailable)
	case codes.NotFound:
		out = append(out, ErrUnknownGrant, can.ErrUnknownDevice)
	case codes.InvalidArgument:
		out = append(out, can.ErrInvalidFrame)
	case codes.Canceled:
		out = append(out, context.Canceled)
	case codes.DeadlineExceeded:
		out = append(out, context.DeadlineExceeded)
	}
	for _, x := range details {
		if x.d == e.Detail {
			out = append(out, x.err)
		}
	}
	return out
}

// errorMessage builds the Error message the server sends for err.
func errorMessage(seq uint64, err error) []byte {
	code, d := codeOf(err)
	text := err.Error()
	if len(text) > MaxText {
		text = text[:MaxText]
	}
	return appendControl(nil, control{Kind: KindError, Code: uint8(code), Detail: uint8(d), Seq: seq, Payload: []byte(text)})
}

// remoteError turns a received Error message into an *Error.
func remoteError(c control) error {
	return &Error{Code: Code(c.Code), Detail: Detail(c.Detail), Message: string(c.Payload)}
}
