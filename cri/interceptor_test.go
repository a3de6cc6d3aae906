package cri

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
	"github.com/containerd/log"
	"github.com/sirupsen/logrus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// testLogger returns a context whose logger writes JSON lines to the buffer.
func testLogger() (context.Context, *bytes.Buffer) {
	var buf bytes.Buffer
	l := logrus.New()
	l.SetOutput(&buf)
	l.SetLevel(logrus.DebugLevel)
	l.SetFormatter(&logrus.JSONFormatter{})
	return log.WithLogger(context.Background(), logrus.NewEntry(l)), &buf
}

func logLines(t *testing.T, buf *bytes.Buffer) []map[string]any {
	t.Helper()
	var lines []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		m := map[string]any{}
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("log line %q: %v", l, err)
		}
		lines = append(lines, m)
	}
	return lines
}

func TestUnaryInterceptorLogsAndMapsErrors(t *testing.T) {
	ctx, buf := testLogger()
	info := &grpc.UnaryServerInfo{FullMethod: "/runtime.v1.RuntimeService/StopPodSandbox"}
	var handlerReq any
	handler := func(ctx context.Context, req any) (any, error) {
		handlerReq = req
		log.G(ctx).Info("inside handler")
		return nil, fmt.Errorf("pod %q: %w", "p1", errdefs.ErrNotFound)
	}
	_, err := UnaryInterceptor(ctx, "request", info, handler)
	if status.Code(err) != codes.NotFound || !strings.Contains(err.Error(), `pod "p1"`) {
		t.Fatalf("err = %v, want NotFound naming the pod", err)
	}
	if handlerReq != "request" {
		t.Fatalf("handler got %v", handlerReq)
	}
	lines := logLines(t, buf)
	if len(lines) != 2 {
		t.Fatalf("got %d log lines, want 2: %s", len(lines), buf)
	}
	inside, done := lines[0], lines[1]
	if inside["rpc"] != "StopPodSandbox" || inside["req"] == "" || inside["req"] != done["req"] {
		t.Errorf("handler log lacks rpc/request id of the call: %v / %v", inside, done)
	}
	if done["msg"] != "rpc failed" || done["code"] != "NotFound" || done["duration"] == nil {
		t.Errorf("final log line = %v", done)
	}
}

func TestUnaryInterceptorRequestIDsDiffer(t *testing.T) {
	ctx, buf := testLogger()
	info := &grpc.UnaryServerInfo{FullMethod: "/runtime.v1.RuntimeService/Version"}
	ok := func(ctx context.Context, req any) (any, error) { return "resp", nil }
	for i := 0; i < 2; i++ {
		resp, err := UnaryInterceptor(ctx, nil, info, ok)
		if err != nil || resp != "resp" {
			t.Fatalf("got %v, %v", resp, err)
		}
	}
	lines := logLines(t, buf)
	if len(lines) != 2 || lines[0]["req"] == lines[1]["req"] || lines[0]["msg"] != "rpc done" {
		t.Fatalf("want two 'rpc done' lines with distinct request ids, got %v", lines)
	}
}

type fakeStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (f *fakeStream) Context() context.Context     { return f.ctx }
func (f *fakeStream) SetHeader(metadata.MD) error  { return nil }
func (f *fakeStream) SendHeader(metadata.MD) error { return nil }
func (f *fakeStream) SetTrailer(metadata.MD)       {}
func (f *fakeStream) SendMsg(any) error            { return nil }
func (f *fakeStream) RecvMsg(any) error            { return nil }

func TestStreamInterceptor(t *testing.T) {
	ctx, buf := testLogger()
	info := &grpc.StreamServerInfo{FullMethod: "/runtime.v1.RuntimeService/GetContainerEvents"}
	handler := func(srv any, ss grpc.ServerStream) error {
		log.G(ss.Context()).Info("streaming")
		return errdefs.ErrUnavailable
	}
	err := StreamInterceptor(nil, &fakeStream{ctx: ctx}, info, handler)
	if status.Code(err) != codes.Unavailable {
		t.Fatalf("err = %v, want Unavailable", err)
	}
	lines := logLines(t, buf)
	if len(lines) != 2 || lines[0]["rpc"] != "GetContainerEvents" || lines[1]["code"] != "Unavailable" {
		t.Fatalf("log lines = %v", lines)
	}
}
