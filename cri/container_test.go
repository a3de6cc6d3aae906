package cri

import "testing"

func TestContainerLogPath(t *testing.T) {
	for _, tc := range []struct {
		podDir, logPath, want string
		bad                   bool
	}{
		{"/var/log/pods/x", "c/0.log", "/var/log/pods/x/c/0.log", false},
		{"/var/log/pods/x/", "c_0.log", "/var/log/pods/x/c_0.log", false},
		{"/var/log/pods/x", "../y/0.log", "", true},
		{"/var/log/pods/x", "/../../etc/passwd", "", true},
		{"/var/log/pods/x", "..", "", true},
		{"", "c/0.log", "/run/ctr/container.log", false},
		{"/var/log/pods/x", "", "/run/ctr/container.log", false},
	} {
		got, err := containerLogPath("/run/ctr", tc.podDir, tc.logPath)
		if (err != nil) != tc.bad || got != tc.want {
			t.Errorf("containerLogPath(%q, %q) = %q, %v", tc.podDir, tc.logPath, got, err)
		}
	}
}
