// Package shim is the server side of berth-shim: it runs a pod's containers
// with runc's libcontainer (linked in), holds their stdio, writes their logs in
// the CRI format and records how they exited.
//
// It serves berthd the shim protocol on a unix socket (runner/wire.go, rpc.go):
// the container lifecycle on libcontainer (Create → Start → Wait / Signal /
// Update / Exec → Delete), durable exit records, the pod's pause process, log
// reopening. One shim runs per pod, as child subreaper, and outlives berthd.
// A container's stdio are pipes, or a pseudo-terminal whose master the init
// sends back over a console socket (tty.go); the shim holds stdin open when
// the container asks for it.
//
// Locking: Containers.mu guards the map; each container's exit is recorded
// once by the goroutine that waits for it.
package shim
