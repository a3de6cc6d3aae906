package shim

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"sync"
	"time"
)

// maxLogLine is the longest line written as one record; longer lines are
// split into partial ("P") records, as the kubelet's log reader expects.
const maxLogLine = 16 << 10

// logWriter writes the CRI log format,
//
//	<RFC3339Nano time> <stdout|stderr> <F|P> <text>
//
// to one file shared by a container's streams; mu orders whole records.
//
// A record that cannot be written (a full disk) is dropped and counted, and
// the streams are read on regardless: a reader that stopped would leave the
// container blocked on a full pipe. Each record is tried, so writing resumes
// as soon as the disk has room; each episode of failures is reported once
// when it starts and once when it ends (the shim's stderr).
type logWriter struct {
	mu   sync.Mutex
	out  io.Writer
	now  func() time.Time
	name string // the container, in reports
	// warn reports an episode; nil reports on the shim's stderr.
	warn func(msg string)
	// failing is the first error of the episode in progress; episode
	// counts what it dropped and dropped what every episode did.
	failing          error
	episode, dropped dropCount
	// torn says the file ends in a part of a record that could not be
	// taken back: the next record starts on a line of its own.
	torn bool
}

// dropCount counts lost output: text bytes, in records.
type dropCount struct{ bytes, records uint64 }

// copyStream reads one stream to its end and writes it as records; only a
// read error ends it early.
func (w *logWriter) copyStream(stream string, r io.Reader) error {
	br := bufio.NewReaderSize(r, maxLogLine)
	for {
		line, err := br.ReadSlice('\n')
		if len(line) > 0 {
			tag := "P"
			if line[len(line)-1] == '\n' {
				tag, line = "F", line[:len(line)-1]
			}
			w.record(stream, tag, line)
		}
		switch err {
		case nil, bufio.ErrBufferFull:
			continue
		case io.EOF:
			return nil
		default:
			return err
		}
	}
}

// replace makes the writer write to out from the next record on, and
// returns what it wrote to before.
func (w *logWriter) replace(out io.Writer) io.Writer {
	w.mu.Lock()
	defer w.mu.Unlock()
	old := w.out
	w.out = out
	return old
}

// close stops writing (the streams ended), reports an episode still in
// progress and returns what the writer wrote to.
func (w *logWriter) close() io.Writer {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.failing != nil {
		w.report(fmt.Sprintf("log closed while still failing (%v): %s dropped", w.failing, w.episode))
	}
	old := w.out
	w.out = io.Discard
	return old
}

// drops returns what every episode dropped so far.
func (w *logWriter) drops() dropCount {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.dropped
}

func (w *logWriter) record(stream, tag string, text []byte) {
	w.mu.Lock()
	defer w.mu.Unlock()
	buf := make([]byte, 0, len(text)+64)
	if w.torn {
		buf = append(buf, '\n')
	}
	buf = w.now().UTC().AppendFormat(buf, time.RFC3339Nano)
	buf = append(buf, ' ')
	buf = append(buf, stream...)
	buf = append(buf, ' ')
	buf = append(buf, tag...)
	buf = append(buf, ' ')
	buf = append(buf, text...)
	buf = append(buf, '\n')
	n, err := w.out.Write(buf)
	if err == nil {
		w.torn = false
		if w.failing != nil {
			w.report(fmt.Sprintf("log writable again: %s dropped", w.episode))
			w.failing, w.episode = nil, dropCount{}
		}
		return
	}
	if n > 0 && !w.takeBack(n) {
		w.torn = true
	}
	if w.failing == nil {
		w.failing = err
		w.report(fmt.Sprintf("log write failed: %v; dropping output until it can be written", err))
	}
	lost := dropCount{bytes: uint64(len(text)), records: 1}
	w.episode.add(lost)
	w.dropped.add(lost)
}

// takeBack truncates the n bytes a failed write left at the end of the
// file, so that no record is torn; false if it cannot.
func (w *logWriter) takeBack(n int) bool {
	f, ok := w.out.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Size() >= int64(n) && f.Truncate(fi.Size()-int64(n)) == nil
}

func (w *logWriter) report(msg string) {
	if w.warn != nil {
		w.warn(msg)
		return
	}
	fmt.Fprintf(os.Stderr, "berth-shim: container %s: %s\n", w.name, msg)
}

func (d *dropCount) add(o dropCount) { d.bytes += o.bytes; d.records += o.records }

func (d dropCount) String() string {
	return fmt.Sprintf("%d bytes in %d records", d.bytes, d.records)
}
