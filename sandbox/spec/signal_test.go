package spec

import (
	"syscall"
	"testing"
)

func TestParseSignal(t *testing.T) {
	for in, want := range map[string]syscall.Signal{
		"": syscall.SIGTERM, "SIGTERM": syscall.SIGTERM, "term": syscall.SIGTERM, "9": syscall.SIGKILL,
		"SIGQUIT": syscall.SIGQUIT, "SIGNAL_SIGINT": syscall.SIGINT, "SIGNAL_RUNTIME_DEFAULT": syscall.SIGTERM,
		"SIGRTMIN": 34, "SIGRTMIN+3": 37, "RTMAX-1": 63, "SIGNAL_SIGRTMINPLUS3": 37, "SIGNAL_SIGRTMAXMINUS2": 62,
		"SIGUSR1": syscall.SIGUSR1,
	} {
		got, err := ParseSignal(in)
		if err != nil || got != want {
			t.Errorf("ParseSignal(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"SIGNOPE", "0", "65", "SIGRTMIN+x", "-1"} {
		if _, err := ParseSignal(bad); err == nil {
			t.Errorf("ParseSignal(%q) worked", bad)
		}
	}
}

func TestSignalNameRoundTrips(t *testing.T) {
	for n := 1; n <= 64; n++ {
		name := SignalName(syscall.Signal(n))
		if name == "" {
			continue // unnamed (32, 33: glibc's)
		}
		if got, err := ParseSignal("SIGNAL_" + name); err != nil || got != syscall.Signal(n) {
			t.Errorf("signal %d named %q parses back to %v, %v", n, name, got, err)
		}
	}
}
