package shim

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

func TestLogWriter(t *testing.T) {
	var out bytes.Buffer
	w := &logWriter{out: &out, now: func() time.Time { return time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC) }}
	long := strings.Repeat("x", maxLogLine+10)
	input := "hello\nworld\n" + long + "\nno newline at end"
	if err := w.copyStream("stdout", strings.NewReader(input)); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	want := []string{
		"2026-01-02T03:04:05.000000006Z stdout F hello",
		"2026-01-02T03:04:05.000000006Z stdout F world",
		"2026-01-02T03:04:05.000000006Z stdout P " + strings.Repeat("x", maxLogLine),
		"2026-01-02T03:04:05.000000006Z stdout F " + strings.Repeat("x", 10),
		"2026-01-02T03:04:05.000000006Z stdout P no newline at end",
	}
	if len(lines) != len(want) {
		t.Fatalf("got %d records, want %d:\n%s", len(lines), len(want), out.String()[:200])
	}
	for i := range want {
		if lines[i] != want[i] {
			t.Errorf("record %d = %.80q, want %.80q", i, lines[i], want[i])
		}
	}
}
