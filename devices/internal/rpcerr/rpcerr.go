// Package rpcerr maps the device contracts' sentinel errors to gRPC status
// codes at the shim's edge and back, keeping the original message and the
// sentinel identity (errors.Is works on the host side as in the plugin).
package rpcerr

import (
	"context"
	"errors"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Domain is the ErrorInfo domain the shims tag their errors with.
const Domain = "devices.berth.io"

// Sentinel ties a sentinel error to its wire reason and gRPC code.
type Sentinel struct {
	Err    error
	Reason string
	Code   codes.Code
}

// Table is the set of sentinels one shim knows, most specific first
// (a sentinel that wraps another must come before it).
type Table []Sentinel

// ToStatus turns err into a gRPC status error. Context errors become
// Canceled / DeadlineExceeded; a known sentinel becomes its code with an
// ErrorInfo naming it; anything else is Unknown.
func (t Table) ToStatus(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	code, reason := codes.Unknown, ""
	switch {
	case errors.Is(err, context.Canceled):
		code = codes.Canceled
	case errors.Is(err, context.DeadlineExceeded):
		code = codes.DeadlineExceeded
	default:
		for _, s := range t {
			if errors.Is(err, s.Err) {
				code, reason = s.Code, s.Reason
				break
			}
		}
	}
	st := status.New(code, err.Error())
	if reason != "" {
		if d, derr := st.WithDetails(&errdetails.ErrorInfo{Reason: reason, Domain: Domain}); derr == nil {
			st = d
		}
	}
	return st.Err()
}

// FromStatus turns a gRPC status error back into an error that wraps the
// sentinel it came from, with the plugin's message. ctx is the call's
// context: a Canceled status on a call whose ctx ended gives ctx.Err().
func (t Table) FromStatus(ctx context.Context, err error) error {
	if err == nil {
		return nil
	}
	st, ok := status.FromError(err)
	if !ok {
		return err
	}
	switch st.Code() {
	case codes.Canceled:
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return &remoteError{msg: st.Message(), err: context.Canceled}
	case codes.DeadlineExceeded:
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return &remoteError{msg: st.Message(), err: context.DeadlineExceeded}
	}
	for _, d := range st.Details() {
		info, ok := d.(*errdetails.ErrorInfo)
		if !ok || info.Domain != Domain {
			continue
		}
		for _, s := range t {
			if s.Reason == info.Reason {
				return &remoteError{msg: st.Message(), err: s.Err, status: err}
			}
		}
	}
	return err
}

// remoteError carries the plugin's message and unwraps to the sentinel (and
// to the status error, so status.Code still sees the code).
type remoteError struct {
	msg    string
	err    error
	status error
}

func (e *remoteError) Error() string { return e.msg }

func (e *remoteError) Unwrap() []error {
	if e.status == nil {
		return []error{e.err}
	}
	return []error{e.err, e.status}
}

// GRPCStatus lets status.FromError and status.Code see the original code.
func (e *remoteError) GRPCStatus() *status.Status {
	if e.status == nil {
		return nil
	}
	st, _ := status.FromError(e.status)
	return st
}
