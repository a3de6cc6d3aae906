package shim

import (
	"io"
	"os"
	"testing"
	"time"
)

// A tap copies to every attached reader, ends their streams when the output
// ends, and lets a reader that went away go.
func TestTap(t *testing.T) {
	tp := newTap()
	r1, w1, _ := os.Pipe()
	r2, w2, _ := os.Pipe()
	tp.add(w1)
	tp.add(w2)
	r2.Close() // this reader is gone: its writes fail and it is dropped
	tp.Write([]byte("one "))
	tp.Write([]byte("two"))
	deadline := time.Now().Add(5 * time.Second)
	for {
		tp.mu.Lock()
		n := len(tp.subs)
		tp.mu.Unlock()
		if n == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d readers attached, want 1", n)
		}
		time.Sleep(10 * time.Millisecond)
	}
	tp.close()
	got, err := io.ReadAll(r1)
	if err != nil || string(got) != "one two" {
		t.Fatalf("reader got %q, %v", got, err)
	}
	r3, w3, _ := os.Pipe()
	tp.add(w3) // after the end: EOF at once
	if got, _ := io.ReadAll(r3); len(got) != 0 {
		t.Fatalf("late reader got %q", got)
	}
}
