package util

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// Berthd is a berthd process started by a test, with its own temp dirs.
type Berthd struct {
	Dir     string // temp dir holding everything below
	Root    string
	State   string
	Socket  string
	Config  string // path of the config file written for it
	LogPath string

	cmd  *exec.Cmd
	done chan struct{}
	err  error // Wait's result, valid after done is closed
}

// RequireIntegration skips the test unless it runs as root with BERTHD set to a
// berthd binary, and returns that binary's path.
func RequireIntegration(t *testing.T) string {
	t.Helper()
	bin := os.Getenv("BERTHD")
	if bin == "" {
		t.Skip("integration test: set BERTHD to a berthd binary (make test does)")
	}
	if os.Geteuid() != 0 {
		t.Skip("integration test: needs root")
	}
	abs, err := filepath.Abs(bin)
	if err != nil {
		t.Fatal(err)
	}
	return abs
}

// NewBerthd prepares temp dirs and a config file holding configTOML (which may
// be empty) for a berthd; Start runs it.
func NewBerthd(t *testing.T, configTOML string) *Berthd {
	t.Helper()
	// Short dir: socket paths are limited to 107 bytes.
	dir, err := os.MkdirTemp("", "berth-it-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// Whatever a failed test left mounted under its dir goes first.
		for _, m := range MountsUnder(dir) {
			_ = unix.Unmount(m, unix.MNT_DETACH)
		}
		os.RemoveAll(dir)
	})
	b := &Berthd{
		Dir:     dir,
		Root:    filepath.Join(dir, "root"),
		State:   filepath.Join(dir, "state"),
		Socket:  filepath.Join(dir, "state", "berth.sock"),
		Config:  filepath.Join(dir, "berth.toml"),
		LogPath: filepath.Join(dir, "berthd.log"),
	}
	if err := os.WriteFile(b.Config, []byte(configTOML), 0o644); err != nil {
		t.Fatal(err)
	}
	return b
}

// Args are the command-line arguments that point berthd at the test's dirs.
func (b *Berthd) Args(extra ...string) []string {
	return append([]string{"--config", b.Config, "--root", b.Root, "--state", b.State,
		"--listen", b.Socket, "--log-level", "debug"}, extra...)
}

// Start runs berthd in the background and waits until its socket answers. The
// process is stopped (SIGKILL) when the test ends, if still running.
func (b *Berthd) Start(t *testing.T, bin string, extra ...string) {
	t.Helper()
	logf, err := os.OpenFile(b.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	b.cmd = exec.Command(bin, b.Args(extra...)...)
	b.cmd.Stdout, b.cmd.Stderr = logf, logf
	if err := b.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	logf.Close()
	b.done = make(chan struct{})
	go func() { b.err = b.cmd.Wait(); close(b.done) }()
	t.Cleanup(func() { b.Kill(t) })
	if err := b.waitReady(15 * time.Second); err != nil {
		t.Fatalf("berthd did not come up: %v\n%s", err, b.Log())
	}
}

func (b *Berthd) waitReady(timeout time.Duration) error {
	conn := b.conn()
	defer conn.Close()
	client := runtime.NewRuntimeServiceClient(conn)
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		select {
		case <-b.done:
			return fmt.Errorf("berthd exited: %v", b.err)
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err := client.Version(ctx, &runtime.VersionRequest{})
		cancel()
		if err == nil {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return errors.New("timed out waiting for the CRI socket")
}

// Log returns what berthd wrote so far.
func (b *Berthd) Log() string {
	data, _ := os.ReadFile(b.LogPath)
	return string(data)
}

// Pid is the berthd process id.
func (b *Berthd) Pid() int { return b.cmd.Process.Pid }

// Signal sends sig to berthd and waits up to timeout for it to exit; it returns
// the exit code (-1 when killed by a signal).
func (b *Berthd) Signal(t *testing.T, sig syscall.Signal, timeout time.Duration) int {
	t.Helper()
	if err := b.cmd.Process.Signal(sig); err != nil {
		t.Fatalf("signal berthd: %v", err)
	}
	select {
	case <-b.done:
	case <-time.After(timeout):
		t.Fatalf("berthd did not exit within %v after %v\n%s", timeout, sig, b.Log())
	}
	return b.cmd.ProcessState.ExitCode()
}

// Kill stops berthd with SIGKILL if it still runs (a crash, as far as berthd knows).
func (b *Berthd) Kill(t *testing.T) {
	select {
	case <-b.done:
		return
	default:
	}
	_ = b.cmd.Process.Kill()
	<-b.done
}

func (b *Berthd) conn() *grpc.ClientConn {
	conn, err := grpc.NewClient("unix://"+b.Socket, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		panic(err) // NewClient fails only on a malformed target
	}
	return conn
}

// Clients returns CRI runtime and image clients connected to berthd; the
// connection is closed when the test ends.
func (b *Berthd) Clients(t *testing.T) (runtime.RuntimeServiceClient, runtime.ImageServiceClient) {
	conn := b.conn()
	t.Cleanup(func() { conn.Close() })
	return runtime.NewRuntimeServiceClient(conn), runtime.NewImageServiceClient(conn)
}

// Run runs berthd in the foreground with the given arguments and returns its
// exit code and combined output (for tests of start-up failures).
func Run(t *testing.T, bin string, args ...string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	var exitErr *exec.ExitError
	if err != nil && !errors.As(err, &exitErr) {
		t.Fatalf("run %s: %v", bin, err)
	}
	return cmd.ProcessState.ExitCode(), out.String()
}

// MountsUnder lists the mount points under dir, deepest first.
func MountsUnder(dir string) []string {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	var out []string
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) > 4 && strings.HasPrefix(f[4], dir+"/") {
			out = append(out, f[4])
		}
	}
	sort.Sort(sort.Reverse(sort.StringSlice(out)))
	return out
}
