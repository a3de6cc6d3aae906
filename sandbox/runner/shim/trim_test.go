package shim

import (
	"context"
	"encoding/json"
	"testing"
)

// A trimmed handler answers as its handler does and arms the trimmer once,
// however many calls come.
func TestTrimmed(t *testing.T) {
	var tr trimmer
	h := trimmed(&tr, func(context.Context, json.RawMessage) (any, error) { return 42, nil })
	for range 3 {
		if v, err := h(context.Background(), nil); v != 42 || err != nil {
			t.Fatalf("handler = %v, %v", v, err)
		}
	}
	tr.mu.Lock()
	defer tr.mu.Unlock()
	if tr.timer == nil {
		t.Fatal("the trimmer was not armed")
	}
}
