package images

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestPullGroupSharesOneRun(t *testing.T) {
	var g pullGroup
	var runs atomic.Int32
	release := make(chan struct{})
	fn := func(ctx context.Context) (*Image, error) {
		runs.Add(1)
		<-release
		return &Image{ID: "sha256:x"}, nil
	}
	var wg sync.WaitGroup
	results := make(chan *Image, 5)
	for i := 0; i < 5; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			img, err := g.do(context.Background(), "ref", fn)
			if err != nil {
				t.Error(err)
			}
			results <- img
		}()
	}
	// Let every caller join before the run finishes.
	for deadline := time.Now().Add(5 * time.Second); ; {
		g.mu.Lock()
		n := 0
		if c := g.calls["ref"]; c != nil {
			n = c.waiters
		}
		g.mu.Unlock()
		if n == 5 || time.Now().After(deadline) {
			break
		}
		time.Sleep(time.Millisecond)
	}
	close(release)
	wg.Wait()
	close(results)
	for img := range results {
		if img == nil || img.ID != "sha256:x" {
			t.Fatalf("result %v", img)
		}
	}
	if runs.Load() != 1 {
		t.Fatalf("fn ran %d times, want 1", runs.Load())
	}
}

func TestPullGroupCancelsOnlyWhenAllCallersLeave(t *testing.T) {
	var g pullGroup
	started := make(chan struct{})
	cancelled := make(chan struct{})
	fn := func(ctx context.Context) (*Image, error) {
		close(started)
		<-ctx.Done()
		close(cancelled)
		return nil, ctx.Err()
	}
	ctx1, cancel1 := context.WithCancel(context.Background())
	ctx2, cancel2 := context.WithCancel(context.Background())
	errs := make(chan error, 2)
	go func() { _, err := g.do(ctx1, "ref", fn); errs <- err }()
	<-started
	go func() { _, err := g.do(ctx2, "ref", fn); errs <- err }()
	for {
		g.mu.Lock()
		n := g.calls["ref"].waiters
		g.mu.Unlock()
		if n == 2 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	cancel1()
	if err := <-errs; !errors.Is(err, context.Canceled) {
		t.Fatalf("first caller got %v", err)
	}
	select {
	case <-cancelled:
		t.Fatal("pull cancelled while a caller still waits")
	case <-time.After(100 * time.Millisecond):
	}
	cancel2()
	<-errs
	select {
	case <-cancelled:
	case <-time.After(5 * time.Second):
		t.Fatal("pull not cancelled after every caller left")
	}
}
