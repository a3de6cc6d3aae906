package spec

import (
	"fmt"
	"strconv"
	"strings"
	"syscall"

	"github.com/containerd/errdefs"
	"golang.org/x/sys/unix"
)

// ParseSignal reads a stop signal as images write it ("SIGTERM", "TERM",
// "15", "SIGRTMIN+3", "RTMAX-1") or as CRI names it ("SIGNAL_SIGTERM",
// "SIGNAL_SIGRTMINPLUS3"). "" is SIGTERM.
func ParseSignal(name string) (syscall.Signal, error) {
	s := strings.ToUpper(strings.TrimSpace(name))
	if s == "" || s == "SIGNAL_RUNTIME_DEFAULT" {
		return syscall.SIGTERM, nil
	}
	if n, err := strconv.Atoi(s); err == nil {
		return checkSignal(name, n)
	}
	s = strings.TrimPrefix(s, "SIGNAL_")
	s = strings.Replace(s, "PLUS", "+", 1)
	s = strings.Replace(s, "MINUS", "-", 1)
	if !strings.HasPrefix(s, "SIG") {
		s = "SIG" + s
	}
	for _, rt := range []struct {
		prefix string
		base   int
		sign   int
	}{{"SIGRTMIN+", 34, 1}, {"SIGRTMAX-", 64, -1}} {
		if rest, ok := strings.CutPrefix(s, rt.prefix); ok {
			n, err := strconv.Atoi(rest)
			if err != nil {
				return 0, fmt.Errorf("signal %q: %w", name, errdefs.ErrInvalidArgument)
			}
			return checkSignal(name, rt.base+rt.sign*n)
		}
	}
	switch s {
	case "SIGRTMIN":
		return 34, nil
	case "SIGRTMAX":
		return 64, nil
	}
	if sig := unix.SignalNum(s); sig != 0 {
		return sig, nil
	}
	return 0, fmt.Errorf("unknown signal %q: %w", name, errdefs.ErrInvalidArgument)
}

func checkSignal(name string, n int) (syscall.Signal, error) {
	if n < 1 || n > 64 {
		return 0, fmt.Errorf("signal %q out of range: %w", name, errdefs.ErrInvalidArgument)
	}
	return syscall.Signal(n), nil
}

// SignalName names sig as CRI's Signal enum does without its "SIGNAL_"
// prefix: "SIGTERM", "SIGRTMIN", "SIGRTMINPLUS3", "SIGRTMAXMINUS2".
func SignalName(sig syscall.Signal) string {
	switch {
	case sig == 34:
		return "SIGRTMIN"
	case sig == 64:
		return "SIGRTMAX"
	case sig > 34 && sig <= 49:
		return "SIGRTMINPLUS" + strconv.Itoa(int(sig)-34)
	case sig > 49 && sig < 64:
		return "SIGRTMAXMINUS" + strconv.Itoa(64-int(sig))
	}
	return unix.SignalName(sig)
}
