package serve

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-cri/berth/cni"
	"github.com/berth-cri/berth/cri"
	"github.com/berth-cri/berth/cri/config"
	"github.com/berth-cri/berth/images"
)

func TestLockRootRefusesSecondHolder(t *testing.T) {
	root := filepath.Join(t.TempDir(), "root")
	l, err := LockRoot(root)
	if err != nil {
		t.Fatal(err)
	}
	_, err = LockRoot(root)
	if err == nil || !strings.Contains(err.Error(), "already running") || !strings.Contains(err.Error(), strconv.Itoa(os.Getpid())) {
		t.Fatalf("second LockRoot: %v, want 'already running' with our pid", err)
	}
	if err := l.Release(); err != nil {
		t.Fatal(err)
	}
	l2, err := LockRoot(root)
	if err != nil {
		t.Fatalf("LockRoot after Release: %v", err)
	}
	l2.Release()
}

func TestListenCreatesDirsAndMode(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a", "b", "berth.sock")
	l, err := Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o660 || fi.Mode().Type() != os.ModeSocket {
		t.Fatalf("socket mode = %v, want socket 0660", fi.Mode())
	}
}

func TestListenReplacesStaleSocket(t *testing.T) {
	path := filepath.Join(t.TempDir(), "berth.sock")
	stale, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	stale.SetUnlinkOnClose(false) // what a crash leaves behind: the file, nobody listening
	stale.Close()
	l, err := Listen(path)
	if err != nil {
		t.Fatalf("Listen over a stale socket: %v", err)
	}
	l.Close()
}

func TestListenRefusesLiveSocketAndOtherFiles(t *testing.T) {
	dir := t.TempDir()
	live := filepath.Join(dir, "live.sock")
	other, err := net.ListenUnix("unix", &net.UnixAddr{Name: live, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if _, err := Listen(live); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Fatalf("Listen on a live socket: %v, want 'in use'", err)
	}
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Listen(file); err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Fatalf("Listen on a regular file: %v, want 'not a socket'", err)
	}
	if _, err := os.Stat(file); err != nil {
		t.Fatalf("regular file was touched: %v", err)
	}
}

// okNetwork is a ready network that attaches nothing (no pod is run here).
type okNetwork struct{}

func (okNetwork) Status(context.Context) error { return nil }
func (okNetwork) Setup(context.Context, cni.Pod) (*cni.Attachment, error) {
	return nil, errors.New("not used by these tests")
}
func (okNetwork) Teardown(context.Context, cni.Pod) error  { return nil }
func (okNetwork) SetPodCIDR(context.Context, string) error { return nil }

func TestServeAnswersAndStopsCleanly(t *testing.T) {
	path := filepath.Join(t.TempDir(), "berth.sock")
	l, err := Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	store, err := images.New(context.Background(), images.Options{Root: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	srv := cri.New(cri.Options{Version: "0.0.1", Config: config.Default(), Network: okNetwork{}, Images: store})
	go func() { done <- Serve(ctx, l, srv) }()

	conn, err := grpc.NewClient("unix://"+path, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := runtime.NewRuntimeServiceClient(conn)
	rctx, rcancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer rcancel()
	v, err := client.Version(rctx, &runtime.VersionRequest{})
	if err != nil || v.RuntimeName != "berth" {
		t.Fatalf("Version = %v, %v", v, err)
	}
	_, err = client.CheckpointContainer(rctx, &runtime.CheckpointContainerRequest{})
	if status.Code(err) != codes.Unimplemented || !strings.Contains(err.Error(), "CheckpointContainer") {
		t.Fatalf("CheckpointContainer: %v, want Unimplemented naming it", err)
	}
	imgs, err := runtime.NewImageServiceClient(conn).ListImages(rctx, &runtime.ListImagesRequest{})
	if err != nil || len(imgs.Images) != 0 {
		t.Fatalf("ListImages on an empty store = %v, %v", imgs, err)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Serve returned %v after stop", err)
		}
	case <-time.After(GracePeriod + 5*time.Second):
		t.Fatal("Serve did not return after stop")
	}
	if _, err := os.Lstat(path); !os.IsNotExist(err) {
		t.Fatalf("socket still there after stop: %v", err)
	}
}

// slowServer answers Version only after release is closed.
type slowServer struct {
	*cri.Server
	entered chan struct{}
	release chan struct{}
}

func (s *slowServer) Version(ctx context.Context, req *runtime.VersionRequest) (*runtime.VersionResponse, error) {
	close(s.entered)
	<-s.release
	return s.Server.Version(ctx, req)
}

func TestStopLetsInFlightRPCFinish(t *testing.T) {
	path := filepath.Join(t.TempDir(), "berth.sock")
	l, err := Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	srv := &slowServer{
		Server:  cri.New(cri.Options{Version: "0.0.1", Config: config.Default(), Network: okNetwork{}}),
		entered: make(chan struct{}),
		release: make(chan struct{}),
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- Serve(ctx, l, srv) }()

	conn, err := grpc.NewClient("unix://"+path, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	answered := make(chan error, 1)
	go func() {
		_, err := runtime.NewRuntimeServiceClient(conn).Version(context.Background(), &runtime.VersionRequest{})
		answered <- err
	}()
	<-srv.entered
	cancel() // stop while Version is in flight
	select {
	case err := <-served:
		t.Fatalf("Serve returned (%v) before the in-flight RPC finished", err)
	case <-time.After(200 * time.Millisecond):
	}
	close(srv.release)
	if err := <-answered; err != nil {
		t.Fatalf("in-flight Version failed during stop: %v", err)
	}
	if err := <-served; err != nil {
		t.Fatalf("Serve: %v", err)
	}
}
