package cri

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"path"
	"time"

	"github.com/containerd/log"
	"google.golang.org/grpc"
	"google.golang.org/grpc/status"
)

// UnaryInterceptor gives each call a request id and a context logger carrying
// the RPC name, logs the call with its duration, and maps errors to gRPC codes.
func UnaryInterceptor(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	ctx, done := startCall(ctx, info.FullMethod)
	resp, err := handler(ctx, req)
	err = toGRPC(err)
	done(err)
	return resp, err
}

// StreamInterceptor does for streaming RPCs what UnaryInterceptor does.
func StreamInterceptor(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	ctx, done := startCall(ss.Context(), info.FullMethod)
	err := toGRPC(handler(srv, &loggedStream{ServerStream: ss, ctx: ctx}))
	done(err)
	return err
}

// startCall returns the call's context with its logger, and a function that
// logs the end of the call.
func startCall(ctx context.Context, fullMethod string) (context.Context, func(error)) {
	start := time.Now()
	entry := log.G(ctx).WithFields(log.Fields{"rpc": path.Base(fullMethod), "req": newRequestID()})
	ctx = log.WithLogger(ctx, entry)
	method := path.Base(fullMethod)
	return ctx, func(err error) {
		took := time.Since(start)
		callDuration.WithLabelValues(method, status.Code(err).String()).Observe(took.Seconds())
		e := entry.WithField("duration", took.String())
		if err != nil {
			e.WithField("code", status.Code(err).String()).WithError(err).Debug("rpc failed")
			return
		}
		e.Debug("rpc done")
	}
}

func newRequestID() string {
	var b [8]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on Linux
	return hex.EncodeToString(b[:])
}

// loggedStream hands the call's context (with its logger) to stream handlers.
type loggedStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *loggedStream) Context() context.Context { return s.ctx }
