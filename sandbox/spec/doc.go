// Package spec builds the OCI runtime spec of a container from the CRI config,
// the image config and the paths the runtime prepared. It is pure: no I/O, no
// state, no locks; every rule is a table test.
//
// Build assembles the spec: the process (Docker's entrypoint/cmd rules as the
// kubelet expects them, the environment, the user and groups resolved through
// the image's /etc/passwd and /etc/group by ResolveUser), the pod's namespaces
// and shared files, default mounts, Docker's default capabilities, masked and
// read-only /proc and /sys paths, a deny-all device cgroup with the devices
// the config asks for (host nodes found by the caller's ResolveDevice, their
// permissions as allow rules), the CRI resources (oom_score_adj clamped to
// what the runtime may set, with a warning), the security context
// (capabilities with ambient ones, privileged, seccomp, AppArmor, SELinux
// labels). What it cannot build is refused with the CRI field named, never
// dropped: cdi_devices (Unimplemented), a device whose permissions are not a
// subset of "rwm" or whose host path is no device node nor directory of them,
// an environment variable a process cannot carry (InvalidArgument).
package spec
