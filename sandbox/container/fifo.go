package container

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"

	"golang.org/x/sys/unix"
)

// Fifos are the FIFOs of one exec or attach session, in a dir of their own:
// the paths the shim opens and berthd's ends of them (nil when the stream is
// left out). berthd opens first, without blocking: stdin read-write (so the
// shim's read end opens at once and sees EOF only when berthd closes it),
// the outputs read-only.
type Fifos struct {
	Dir                               string
	StdinPath, StdoutPath, StderrPath string
	Stdin, Stdout, Stderr             *os.File
}

// NewFifos makes dir and the FIFOs asked for in it, and opens berthd's ends.
// On an SELinux host they carry mountLabel at level s0 (see RelabelShared): a
// process exec'd in a container reads and writes them itself.
func NewFifos(dir string, stdin, stdout, stderr bool, mountLabel string) (_ *Fifos, retErr error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	f := &Fifos{Dir: dir}
	defer func() {
		if retErr != nil {
			f.Close()
		}
	}()
	for _, s := range []struct {
		want bool
		name string
		path *string
		file **os.File
		flag int
	}{
		{stdin, "stdin", &f.StdinPath, &f.Stdin, os.O_RDWR},
		{stdout, "stdout", &f.StdoutPath, &f.Stdout, os.O_RDONLY | syscall.O_NONBLOCK},
		{stderr, "stderr", &f.StderrPath, &f.Stderr, os.O_RDONLY | syscall.O_NONBLOCK},
	} {
		if !s.want {
			continue
		}
		p := filepath.Join(dir, s.name)
		if err := unix.Mkfifo(p, 0o600); err != nil {
			return nil, fmt.Errorf("fifo %s: %w", p, err)
		}
		file, err := os.OpenFile(p, s.flag|syscall.O_CLOEXEC, 0)
		if err != nil {
			return nil, fmt.Errorf("open fifo %s: %w", p, err)
		}
		*s.path, *s.file = p, file
	}
	return f, RelabelShared(dir, mountLabel)
}

// CloseStdin closes berthd's end of stdin: the process reads EOF.
func (f *Fifos) CloseStdin() {
	if f.Stdin != nil {
		f.Stdin.Close()
	}
}

// Close closes berthd's ends and removes the FIFOs.
func (f *Fifos) Close() error {
	for _, file := range []*os.File{f.Stdin, f.Stdout, f.Stderr} {
		if file != nil {
			file.Close()
		}
	}
	err := os.RemoveAll(f.Dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	return err
}

// RemoveSessionDirs removes the FIFO dirs under dir that sessions of an
// earlier berthd left (sessions end with the berthd that served them).
func RemoveSessionDirs(dir string) error { return os.RemoveAll(dir) }
