package shim

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
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

// flakyLog fails every write with ENOSPC while full, writing the first part
// bytes of it, and says when it refused a write that holds marker.
type flakyLog struct {
	mu     sync.Mutex
	full   bool
	part   int
	out    bytes.Buffer
	marker string
	seen   chan struct{}
}

func (f *flakyLog) Write(p []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.full {
		return f.out.Write(p)
	}
	if f.marker != "" && bytes.Contains(p, []byte(f.marker)) {
		close(f.seen)
		f.marker = ""
	}
	n := min(f.part, len(p))
	f.out.Write(p[:n])
	return n, syscall.ENOSPC
}

func (f *flakyLog) setFull(full bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.full = full
}

// A log that cannot be written must not stop the reading: the container
// would block on its full pipe. What is lost is counted, reported once, and
// writing resumes when the log takes writes again.
func TestLogWriterKeepsDrainingWhenFull(t *testing.T) {
	flaky := &flakyLog{full: true, marker: "marker", seen: make(chan struct{})}
	var reports []string
	w := &logWriter{out: flaky, now: time.Now, name: "c", warn: func(m string) { reports = append(reports, m) }}
	r, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer pw.Close()
	copied := make(chan error, 1)
	go func() { copied <- w.copyStream("stdout", r) }()
	// Far more than a pipe holds (64 KiB), while every write fails.
	const lines, size uint64 = 1000, 1024
	line := strings.Repeat("x", int(size-1)) + "\n"
	produced := make(chan error, 1)
	go func() {
		var err error
		for i := uint64(0); i < lines && err == nil; i++ {
			_, err = pw.WriteString(line)
		}
		if err == nil {
			_, err = pw.WriteString("marker\n")
		}
		produced <- err
	}()
	select {
	case err := <-copied:
		t.Fatalf("the reader stopped before the stream ended (%v): the writer would block", err)
	case err := <-produced:
		if err != nil {
			t.Fatal(err)
		}
	}
	<-flaky.seen // every line before the marker was read and dropped
	flaky.setFull(false)
	if _, err := pw.WriteString("after\n"); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	if err := <-copied; err != nil {
		t.Fatal(err)
	}
	if got, want := w.drops(), (dropCount{bytes: lines*(size-1) + uint64(len("marker")), records: lines + 1}); got != want {
		t.Errorf("dropped %s, want %s", got, want)
	}
	if out := flaky.out.String(); !strings.HasSuffix(out, " stdout F after\n") || strings.Count(out, "\n") != 1 {
		t.Errorf("log = %.200q, want only the line written after space came back", out)
	}
	if len(reports) != 2 || !strings.Contains(reports[0], "no space left") ||
		!strings.Contains(reports[1], "1023006 bytes in 1001 records dropped") {
		t.Errorf("reports = %q, want one when writes fail and one when they resume", reports)
	}
}

// A record written in part (the disk filled in its middle) does not swallow
// the next one: that starts on a line of its own.
func TestLogWriterTornRecord(t *testing.T) {
	flaky := &flakyLog{full: true, part: 10}
	w := &logWriter{out: flaky, now: time.Now, warn: func(string) {}}
	w.record("stdout", "F", []byte("lost"))
	flaky.setFull(false)
	w.record("stdout", "F", []byte("kept"))
	w.record("stdout", "F", []byte("next"))
	lines := strings.Split(flaky.out.String(), "\n")
	if len(lines) != 4 || len(lines[0]) != 10 || !strings.HasSuffix(lines[1], " stdout F kept") ||
		!strings.HasSuffix(lines[2], " stdout F next") || lines[3] != "" {
		t.Errorf("log = %q", flaky.out.String())
	}
}

// On a real full disk: a record that fits only in part is taken back (the
// file holds whole records only), and writing resumes once there is room.
func TestLogWriterOnAFullDisk(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root (mounts a small tmpfs)")
	}
	dir := t.TempDir()
	if err := unix.Mount("tmpfs", dir, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "size=64k"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Unmount(dir, unix.MNT_DETACH) })
	f, err := openLog(filepath.Join(dir, "c.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var reports []string
	w := &logWriter{out: f, now: time.Now, warn: func(m string) { reports = append(reports, m) }}
	w.record("stdout", "F", []byte("first"))
	filler := filepath.Join(dir, "filler")
	if err := os.WriteFile(filler, make([]byte, 1<<20), 0o600); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("filling the disk: %v", err)
	}
	// More than the room left in the log's last page: written in part.
	w.record("stdout", "F", bytes.Repeat([]byte("x"), 3*os.Getpagesize()))
	if got := readRecords(t, f.Name()); len(got) != 1 || !strings.HasSuffix(got[0], " F first") {
		t.Fatalf("log while full = %.200q", got)
	}
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	w.record("stdout", "F", []byte("after"))
	if got := readRecords(t, f.Name()); len(got) != 2 || !strings.HasSuffix(got[1], " F after") {
		t.Fatalf("log once there is room = %.200q", got)
	}
	if d := w.drops(); d.records != 1 || d.bytes != uint64(3*os.Getpagesize()) || len(reports) != 2 {
		t.Errorf("dropped %s, reports %q", d, reports)
	}
}

// readRecords reads a log's records; the file must end with a newline.
func readRecords(t *testing.T, path string) []string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasSuffix(data, []byte("\n")) {
		t.Fatalf("log ends in a torn record: %.200q", data)
	}
	return strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
}
