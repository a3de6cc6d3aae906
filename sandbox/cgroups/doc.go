// Package cgroups owns Berth's view of the host's cgroups: which driver can be
// used, and (later) pod cgroups and their stats on cgroup v1 and v2. It is the
// only package that imports github.com/containerd/cgroups.
//
// Today it only probes the host; it writes nothing and holds no state.
package cgroups
