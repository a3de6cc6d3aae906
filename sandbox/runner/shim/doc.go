// Package shim is the server side of berth-shim: it runs a pod's containers
// with runc's libcontainer (linked in), holds their stdio, writes their logs in
// the CRI format and records how they exited.
//
// Today it holds the log writer and the container lifecycle on libcontainer
// (Create → Start → Wait / Signal → Delete); the shim's socket protocol and its
// process model (one shim per pod, subreaper, surviving berthd restarts) come
// next.
//
// Locking: Containers.mu guards the map; each container's exit is recorded
// once by the goroutine that waits for it.
package shim
