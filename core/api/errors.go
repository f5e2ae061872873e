package api

import (
	"context"
	"errors"
	"fmt"
	"syscall"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	apiv1 "github.com/berth-io/berth/core/api/v1"
)

// Sentinels a Backend wraps with %w so the server can pick a gRPC code; the
// Client wraps the same sentinels around the errors it returns, so callers
// test them with errors.Is on either side of the socket.
var (
	// ErrNotFound: no such container, stack or image (codes.NotFound).
	ErrNotFound = errors.New("not found")
	// ErrAlreadyExists: the thing to create is there already (codes.AlreadyExists).
	ErrAlreadyExists = errors.New("already exists")
	// ErrConflict: the request is valid but not in the current state, e.g.
	// pausing a stopped container or removing an image in use
	// (codes.FailedPrecondition).
	ErrConflict = errors.New("conflict")
	// ErrInvalid: a malformed request (codes.InvalidArgument).
	ErrInvalid = errors.New("invalid argument")
	// ErrUnsupported: this berthd does not offer the operation
	// (codes.Unimplemented).
	ErrUnsupported = errors.New("not supported")
	// ErrUnreachable: the client could not reach berthd (codes.Unavailable).
	// Only the Client returns it, as an *UnreachableError.
	ErrUnreachable = errors.New("berthd unreachable")
)

// UnreachableError says that berthd's socket could not be reached, and what
// the user can do about it.
type UnreachableError struct {
	Socket string
	Err    error
}

func (e *UnreachableError) Error() string {
	if errors.Is(e.Err, syscall.EACCES) || errors.Is(e.Err, syscall.EPERM) {
		return fmt.Sprintf("cannot reach berthd at %s: permission denied (the socket is root-only by default: run berth as root, or ask for berthd's socket group)", e.Socket)
	}
	return fmt.Sprintf("cannot reach berthd at %s: is berthd running? (start it with `berthd` or `systemctl start berthd`; set --host / BERTH_HOST for another socket)", e.Socket)
}

func (e *UnreachableError) Unwrap() error { return e.Err }

// Is makes errors.Is(err, ErrUnreachable) true.
func (e *UnreachableError) Is(target error) bool { return target == ErrUnreachable }

// remoteError is an error that came back from berthd: its text is the
// server's message, and it unwraps to the sentinel its code maps to.
type remoteError struct {
	msg      string
	sentinel error
}

func (e *remoteError) Error() string { return e.msg }
func (e *remoteError) Unwrap() error { return e.sentinel }

// toStatus maps a Backend error to the gRPC status the client sees.
func toStatus(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	var de *DiagnosticsError
	if errors.As(err, &de) {
		st := status.New(codes.InvalidArgument, err.Error())
		if withDetails, derr := st.WithDetails(diagnosticsToProto(de.Diags)); derr == nil {
			st = withDetails
		}
		return st.Err()
	}
	code := codes.Internal
	switch {
	case errors.Is(err, ErrNotFound):
		code = codes.NotFound
	case errors.Is(err, ErrAlreadyExists):
		code = codes.AlreadyExists
	case errors.Is(err, ErrConflict):
		code = codes.FailedPrecondition
	case errors.Is(err, ErrInvalid):
		code = codes.InvalidArgument
	case errors.Is(err, ErrUnsupported):
		code = codes.Unimplemented
	case errors.Is(err, context.Canceled):
		code = codes.Canceled
	case errors.Is(err, context.DeadlineExceeded):
		code = codes.DeadlineExceeded
	}
	return status.Error(code, err.Error())
}

// fromStatus maps an error from a gRPC call back to the API's errors: a
// *DiagnosticsError, a context error, an *UnreachableError, or an error
// wrapping the sentinel for its code.
func (c *Client) fromStatus(err error) error {
	if err == nil {
		return nil
	}
	st, ok := status.FromError(err)
	if !ok {
		return err
	}
	for _, d := range st.Details() {
		if pd, ok := d.(*apiv1.Diagnostics); ok {
			return &DiagnosticsError{Diags: diagnosticsFromProto(pd)}
		}
	}
	var sentinel error
	switch st.Code() {
	case codes.NotFound:
		sentinel = ErrNotFound
	case codes.AlreadyExists:
		sentinel = ErrAlreadyExists
	case codes.FailedPrecondition:
		sentinel = ErrConflict
	case codes.InvalidArgument:
		sentinel = ErrInvalid
	case codes.Unimplemented:
		sentinel = ErrUnsupported
	case codes.Canceled:
		return context.Canceled
	case codes.DeadlineExceeded:
		return context.DeadlineExceeded
	case codes.Unavailable:
		return &UnreachableError{Socket: c.socket, Err: errors.New(st.Message())}
	default:
		return errors.New(st.Message())
	}
	return &remoteError{msg: st.Message(), sentinel: sentinel}
}
