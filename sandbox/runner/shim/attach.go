package shim

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"sync"

	"github.com/containerd/errdefs"

	"github.com/berth-cri/berth/sandbox/runner"
)

// tap copies one output stream of a container to the sessions attached to it.
// Each attached session has its own goroutine and a bounded queue, so that a
// slow reader never holds up the container or its log: what does not fit is
// dropped for that reader.
type tap struct {
	mu     sync.Mutex
	subs   map[*attached]bool
	closed bool
}

type attached struct {
	f     *os.File
	queue chan []byte
}

const attachQueue = 256 // chunks (of up to 64 KiB)

func newTap() *tap { return &tap{subs: map[*attached]bool{}} }

func (t *tap) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for a := range t.subs {
		select {
		case a.queue <- bytes.Clone(p):
		default: // this reader is behind: the chunk is dropped for it
		}
	}
	return len(p), nil
}

// add attaches f; after the stream ended, f is closed at once (EOF).
func (t *tap) add(f *os.File) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		f.Close()
		return
	}
	a := &attached{f: f, queue: make(chan []byte, attachQueue)}
	t.subs[a] = true
	go t.feed(a)
}

// feed writes a's queue to its FIFO until the stream ends or the reader goes.
func (t *tap) feed(a *attached) {
	defer a.f.Close()
	for b := range a.queue {
		if _, err := a.f.Write(b); err != nil {
			t.remove(a)
			return
		}
	}
}

func (t *tap) remove(a *attached) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.subs[a] {
		delete(t.subs, a)
		close(a.queue)
	}
}

// close ends every attached reader's stream (the container's output ended).
func (t *tap) close() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.closed = true
	for a := range t.subs {
		delete(t.subs, a)
		close(a.queue)
	}
}

// Attach connects a session's FIFOs to a running container: its output
// streams from now on, and the session's stdin into the container's (when it
// has one; with stdin_once, the container's stdin is closed when the
// session's ends). A session detaches by closing its FIFOs.
func (cs *Containers) Attach(a runner.AttachArgs) error {
	c, err := cs.running(a.ID)
	if err != nil {
		return err
	}
	f, err := openFifos(a.Stdin, a.Stdout, a.Stderr)
	if err != nil {
		return err
	}
	for _, s := range []struct {
		file *os.File
		tap  *tap
	}{{f.stdout, c.taps["stdout"]}, {f.stderr, c.taps["stderr"]}} {
		switch {
		case s.file == nil:
		case s.tap == nil: // a terminal has no stderr
			s.file.Close()
		default:
			s.tap.add(s.file)
		}
	}
	if f.stdin != nil {
		go c.feedStdin(f.stdin)
	}
	return nil
}

// feedStdin copies an attached session's stdin into the container's.
func (c *container) feedStdin(in *os.File) {
	defer in.Close()
	w := c.stdinWriter()
	if w == nil {
		return
	}
	_, _ = io.Copy(w, in)
	if c.stdinOnce && c.stdio.console == nil {
		c.stdio.stdin.Close() // the container reads EOF
	}
}

// stdinWriter is where the container's stdin is written: its terminal, or
// its stdin pipe (nil without stdin).
func (c *container) stdinWriter() io.Writer {
	switch {
	case c.stdio.console != nil:
		return c.stdio.console
	case c.stdio.stdin != nil:
		return c.stdio.stdin
	}
	return nil
}

// ResizeContainer sets the terminal size of a tty container.
func (cs *Containers) ResizeContainer(id string, width, height uint16) error {
	c, err := cs.running(id)
	if err != nil {
		return err
	}
	if c.stdio.console == nil {
		return fmt.Errorf("container %s has no terminal: %w", id, errdefs.ErrFailedPrecondition)
	}
	return setWinsize(c.stdio.console, width, height)
}
