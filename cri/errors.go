package cri

import (
	"context"
	"errors"

	"github.com/containerd/errdefs"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// errorCodes maps the domain's error sentinels to gRPC codes, in the order they
// are tried (the first match wins for errors that wrap several).
var errorCodes = []struct {
	is   func(error) bool
	code codes.Code
}{
	{errdefs.IsInvalidArgument, codes.InvalidArgument},
	{errdefs.IsNotFound, codes.NotFound},
	{errdefs.IsAlreadyExists, codes.AlreadyExists},
	{errdefs.IsFailedPrecondition, codes.FailedPrecondition},
	{errdefs.IsConflict, codes.FailedPrecondition},
	{errdefs.IsUnavailable, codes.Unavailable},
	{errdefs.IsNotImplemented, codes.Unimplemented},
	{errdefs.IsPermissionDenied, codes.PermissionDenied},
	{errdefs.IsResourceExhausted, codes.ResourceExhausted},
	{errdefs.IsOutOfRange, codes.OutOfRange},
	{errdefs.IsAborted, codes.Aborted},
	{errdefs.IsUnauthorized, codes.Unauthenticated},
	{errdefs.IsDataLoss, codes.DataLoss},
	{errdefs.IsInternal, codes.Internal},
	{func(err error) bool { return errdefs.IsCanceled(err) || errors.Is(err, context.Canceled) }, codes.Canceled},
	{func(err error) bool {
		return errdefs.IsDeadlineExceeded(err) || errors.Is(err, context.DeadlineExceeded)
	}, codes.DeadlineExceeded},
}

// toGRPC turns a handler's error into a gRPC status error. Errors that already
// carry a gRPC status keep it; unknown errors become codes.Unknown. The message
// is the error's text, which names the object and the cause.
func toGRPC(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	for _, ec := range errorCodes {
		if ec.is(err) {
			return status.Error(ec.code, err.Error())
		}
	}
	return status.Error(codes.Unknown, err.Error())
}
