package cri

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/containerd/errdefs"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func TestToGRPC(t *testing.T) {
	tests := []struct {
		err  error
		want codes.Code
	}{
		{errdefs.ErrInvalidArgument, codes.InvalidArgument},
		{fmt.Errorf("pod %q: %w", "x", errdefs.ErrNotFound), codes.NotFound},
		{fmt.Errorf("name reserved: %w", errdefs.ErrAlreadyExists), codes.AlreadyExists},
		{errdefs.ErrFailedPrecondition, codes.FailedPrecondition},
		{errdefs.ErrConflict, codes.FailedPrecondition},
		{errdefs.ErrUnavailable, codes.Unavailable},
		{errdefs.ErrNotImplemented, codes.Unimplemented},
		{errdefs.ErrPermissionDenied, codes.PermissionDenied},
		{errdefs.ErrResourceExhausted, codes.ResourceExhausted},
		{errdefs.ErrOutOfRange, codes.OutOfRange},
		{errdefs.ErrAborted, codes.Aborted},
		{errdefs.ErrUnauthenticated, codes.Unauthenticated},
		{errdefs.ErrDataLoss, codes.DataLoss},
		{errdefs.ErrInternal, codes.Internal},
		{context.Canceled, codes.Canceled},
		{context.DeadlineExceeded, codes.DeadlineExceeded},
		{fmt.Errorf("pull: %w", context.Canceled), codes.Canceled},
		{fmt.Errorf("exec: %w", context.DeadlineExceeded), codes.DeadlineExceeded},
		{errors.New("disk on fire"), codes.Unknown},
		{status.Error(codes.OutOfRange, "already a status"), codes.OutOfRange},
	}
	for _, tt := range tests {
		t.Run(tt.err.Error(), func(t *testing.T) {
			got := toGRPC(tt.err)
			if status.Code(got) != tt.want {
				t.Fatalf("toGRPC(%v) code = %v, want %v", tt.err, status.Code(got), tt.want)
			}
			if s, _ := status.FromError(got); s.Message() != tt.err.Error() && tt.want != codes.OutOfRange {
				t.Fatalf("message %q, want %q", s.Message(), tt.err.Error())
			}
		})
	}
	if toGRPC(nil) != nil {
		t.Fatal("toGRPC(nil) != nil")
	}
}
