package sandbox

import (
	"fmt"
	"os"
	"regexp"
	"strings"

	"github.com/containerd/errdefs"
)

// A sysctl name: segments of lower-case letters, digits, '_' and '-',
// separated by '.' — or by '/' when a segment holds a dot (an interface
// name like eth0.100), as Kubernetes writes them.
var (
	sysctlDotted  = regexp.MustCompile(`^[a-z0-9]([-_a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-_a-z0-9]*[a-z0-9])?)*$`)
	sysctlSlashed = regexp.MustCompile(`^[a-z0-9]([-_a-z0-9]*[a-z0-9])?(/[a-z0-9]([-_.a-z0-9]*[a-z0-9])?)*$`)
)

// ipcSysctls are the IPC namespace's sysctls (exact names, or prefixes
// ending in '.' or in a partial name).
var ipcSysctls = []string{"kernel.shm", "kernel.msg", "kernel.sem", "fs.mqueue."}

// ValidateSysctls checks a pod's sysctls: only namespaced ones, each in a
// namespace the pod has of its own (net.* in its network namespace; the IPC
// ones in its IPC namespace), so that none reaches the host; names that stay
// under /proc/sys; values of printable characters (no newline or other
// control character that could smuggle in a second setting).
func ValidateSysctls(sysctls map[string]string, spec Spec) error {
	for name, value := range sysctls {
		dotted, err := normalSysctl(name)
		if err != nil {
			return err
		}
		switch {
		case strings.HasPrefix(dotted, "net."):
			if spec.NetworkMode == ModeNode {
				return fmt.Errorf("sysctl %q would change the host's network namespace: %w", name, errdefs.ErrInvalidArgument)
			}
		case isIPCSysctl(dotted):
			if spec.IPCMode == ModeNode {
				return fmt.Errorf("sysctl %q would change the host's IPC namespace: %w", name, errdefs.ErrInvalidArgument)
			}
		default:
			return fmt.Errorf("sysctl %q is not namespaced (allowed: net.*, kernel.shm*, kernel.msg*, kernel.sem, fs.mqueue.*): %w",
				name, errdefs.ErrInvalidArgument)
		}
		for _, r := range value {
			if (r < ' ' && r != '\t') || r == 0x7f {
				return fmt.Errorf("sysctl %q: value %q holds a control character: %w", name, value, errdefs.ErrInvalidArgument)
			}
		}
	}
	return nil
}

// normalSysctl checks a name and returns it with '.' separators (segments
// that hold dots keep them, which only matters for the namespace checks).
func normalSysctl(name string) (string, error) {
	switch {
	case sysctlDotted.MatchString(name):
		return name, nil
	case sysctlSlashed.MatchString(name) && !strings.Contains(name, ".."):
		return strings.ReplaceAll(name, "/", "."), nil
	}
	return "", fmt.Errorf("sysctl name %q is malformed: %w", name, errdefs.ErrInvalidArgument)
}

func isIPCSysctl(name string) bool {
	for _, p := range ipcSysctls {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}

// sysctlPath is where a validated sysctl is under /proc/sys.
func sysctlPath(name string) string {
	if strings.Contains(name, "/") {
		return "/proc/sys/" + name
	}
	return "/proc/sys/" + strings.ReplaceAll(name, ".", "/")
}

// writeSysctls sets sysctls in the calling thread's namespaces (the kernel
// picks the network and IPC sysctls of the writer's namespaces).
func writeSysctls(sysctls map[string]string) error {
	for name, value := range sysctls {
		f, err := os.OpenFile(sysctlPath(name), os.O_WRONLY, 0)
		if err != nil {
			return fmt.Errorf("sysctl %s: %w", name, err)
		}
		_, err = f.WriteString(value)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("sysctl %s=%q: %w", name, value, err)
		}
	}
	return nil
}
