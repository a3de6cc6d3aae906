// Package shim is the server side of berth-shim: it runs a pod's containers
// with runc's libcontainer, holds their stdio, writes their logs in the CRI
// format and records how they exited.
//
// It serves berthd the shim protocol on a unix socket (runner/wire.go,
// runner/server.go): the container lifecycle (Create → Start → Wait / Signal
// / Update / ExecStart → Delete), durable exit records, the pod's pause
// process, log reopening. One shim runs per pod, as child subreaper, and
// outlives berthd. It links no libcontainer (nor cgo): a shim lives as long
// as its pod, and what it links it pays for in memory all that time. Each
// libcontainer operation runs in a short-lived berth-runtime helper
// (runner/helper.go, helper.go here); a created init is the helper's child
// until the helper exits, then the shim's, which reaps it through a pidfd.
// Start reads the init's exec FIFO itself, as runc start does.
// A container's stdio are pipes, or a pseudo-terminal whose master the init
// sends back over a console socket (tty.go); the shim holds stdin open when
// the container asks for it. Its output is always read: what the log cannot
// take (a full disk) is dropped and counted (log.go), never left to block
// the container. When the init of a container that shares a PID namespace
// exits, what it left in the container's cgroup is killed before the exit
// is reported (leftovers.go).
//
// Locking: Containers.mu guards the map; each container's exit is recorded
// once by the goroutine that waits for it.
package shim
