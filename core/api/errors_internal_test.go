package api

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/hashicorp/hcl/v2"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func TestToStatusCodes(t *testing.T) {
	tests := []struct {
		err  error
		want codes.Code
	}{
		{fmt.Errorf("x: %w", ErrNotFound), codes.NotFound},
		{fmt.Errorf("x: %w", ErrAlreadyExists), codes.AlreadyExists},
		{fmt.Errorf("x: %w", ErrConflict), codes.FailedPrecondition},
		{fmt.Errorf("x: %w", ErrInvalid), codes.InvalidArgument},
		{fmt.Errorf("x: %w", ErrUnsupported), codes.Unimplemented},
		{fmt.Errorf("x: %w", &DiagnosticsError{Diags: hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "bad"}}}), codes.InvalidArgument},
		{fmt.Errorf("x: %w", context.Canceled), codes.Canceled},
		{fmt.Errorf("x: %w", context.DeadlineExceeded), codes.DeadlineExceeded},
		{errors.New("disk on fire"), codes.Internal},
	}
	for _, tt := range tests {
		st := status.Convert(toStatus(tt.err))
		if st.Code() != tt.want || st.Message() != tt.err.Error() {
			t.Errorf("toStatus(%v) = %v %q, want %v with the error's message", tt.err, st.Code(), st.Message(), tt.want)
		}
	}
	if toStatus(nil) != nil {
		t.Error("toStatus(nil) != nil")
	}
}

func TestFromStatusUnavailable(t *testing.T) {
	c := &Client{socket: "/run/berth/berthd.sock"}
	err := c.fromStatus(status.Error(codes.Unavailable, "connection refused"))
	if !errors.Is(err, ErrUnreachable) {
		t.Fatalf("fromStatus(Unavailable) = %v, want ErrUnreachable", err)
	}
	if err := c.fromStatus(status.Error(codes.Canceled, "x")); !errors.Is(err, context.Canceled) {
		t.Fatalf("fromStatus(Canceled) = %v, want context.Canceled", err)
	}
}
