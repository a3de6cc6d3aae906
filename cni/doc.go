// Package cni owns pod networking through CNI (github.com/containernetworking/cni/libcni).
//
// The pod network is the first config in the conf dir by name (.conflist,
// .conf or .json, as containerd and CRI-O choose it); with none and the
// default network enabled, it is Berth's embedded bridge network, whose
// subnet is the config's default_subnet, else the node's pod CIDR that the
// kubelet gave (SetPodCIDR), else FallbackSubnet. A network is usable (Status)
// when its config parses, every plugin it names is in a bin dir, and CNI 1.1
// plugins answer STATUS.
//
// Setup and Teardown attach and detach pods (ADD, DEL); Collect detaches
// what no live pod owns and runs CNI GC. Every CNI operation has a deadline
// (Options.PluginTimeout); each plugin runs in a process group of its own
// that is killed whole at the deadline. A failed ADD is undone on a fresh
// bounded context.
//
// On disk: libcni's cache of attachments (CacheDir/results), Berth's notes of
// the ADDs in flight (CacheDir/pending, written before the plugins run, so
// that an ADD cut short by a crash is DELeted too: pending.go), the default
// network's host-local leases (DataDir/berth-default), and the kubelet's pod
// CIDRs (PodCIDRFile, written temp → fsync → rename). The pod CIDRs are
// guarded by a mutex; everything else is read per call.
package cni
