// Package cgroups owns Berth's view of the host's cgroups: which driver can be
// used, and the stats of pod and container cgroups on cgroup v1 and v2 (with
// the file descriptors of their processes, counted in /proc). It is the only
// package that imports github.com/containerd/cgroups.
//
// It holds no state; what it writes (limits, kills, removal) is in update.go,
// kill.go and remove.go.
package cgroups
