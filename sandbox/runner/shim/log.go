package shim

import (
	"bufio"
	"io"
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
type logWriter struct {
	mu  sync.Mutex
	out io.Writer
	now func() time.Time
}

// copyStream reads one stream to its end and writes it as records.
func (w *logWriter) copyStream(stream string, r io.Reader) error {
	br := bufio.NewReaderSize(r, maxLogLine)
	for {
		line, err := br.ReadSlice('\n')
		if len(line) > 0 {
			tag := "P"
			if line[len(line)-1] == '\n' {
				tag, line = "F", line[:len(line)-1]
			}
			if werr := w.record(stream, tag, line); werr != nil {
				return werr
			}
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

func (w *logWriter) record(stream, tag string, text []byte) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	buf := make([]byte, 0, len(text)+64)
	buf = w.now().UTC().AppendFormat(buf, time.RFC3339Nano)
	buf = append(buf, ' ')
	buf = append(buf, stream...)
	buf = append(buf, ' ')
	buf = append(buf, tag...)
	buf = append(buf, ' ')
	buf = append(buf, text...)
	buf = append(buf, '\n')
	_, err := w.out.Write(buf)
	return err
}
