// Package wait holds the waits that tests of concurrency share: each fails
// the test with a clear message when what it waits for hangs, so that a
// deadlock is reported instead of stalling the suite. Bound is far beyond
// what any awaited step takes, also under load: the waits are not timed
// assertions.
package wait

import (
	"os"
	"testing"
	"time"
)

// Bound is how long a wait lasts before the test calls the step hung.
const Bound = 2 * time.Minute

// Within runs f and fails the test if it errs or hangs.
func Within(t *testing.T, what string, f func() error) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- f() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	case <-time.After(Bound):
		t.Fatalf("%s hung", what)
	}
}

// Receive returns what ch gives, failing the test if nothing comes.
func Receive[T any](t *testing.T, what string, ch <-chan T) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(Bound):
		t.Fatalf("%s hung", what)
		var zero T
		return zero
	}
}

// Until polls cond until it holds, failing the test if it never does.
func Until(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(Bound); !cond(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s never happened", what)
		}
	}
}

// ForFile waits until path exists.
func ForFile(t *testing.T, path string) {
	t.Helper()
	Until(t, path+" to appear", func() bool { _, err := os.Stat(path); return err == nil })
}
