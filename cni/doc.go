// Package cni owns pod networking through CNI (github.com/containernetworking/cni/libcni).
//
// Today it answers one question, for the runtime's NetworkReady condition: is
// there a usable pod network? The pod network is the first config in the conf
// dir by name (.conflist, .conf or .json, as containerd and CRI-O choose it);
// with none and the default network enabled, it is Berth's embedded bridge
// network. A network is usable when its config parses and every plugin it names
// is found in one of the bin dirs.
//
// The package reads the conf dir and stats plugin binaries; it writes nothing.
// It keeps no state between calls, so it needs no locking.
package cni
