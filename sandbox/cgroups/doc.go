// Package cgroups owns Berth's view of the host's cgroups: which driver can be
// used, and the stats of pod and container cgroups on cgroup v1 and v2 (with
// the file descriptors of their processes, counted in /proc). Where the host
// has them, the stats also carry huge page use, pressure stall information,
// the memory reservation and the open-files limit of the container's root
// process (/proc/<pid>/limits); where it does not, they are left empty. It is
// the only package that imports github.com/containerd/cgroups.
//
// It holds no state; what it writes (limits, kills, removal) is in update.go,
// kill.go and remove.go.
package cgroups
