// Package nri is Berth's host of NRI, the Node Resource Interface
// (github.com/containerd/nri, its runtime adaptation): plugins, pre-installed
// ones that berthd starts and external ones that connect to a unix socket,
// see every pod and container event in order and may adjust a container's
// OCI spec before it is created, update other containers' resources, or
// refuse a request. critest's NRI specs act as such a plugin.
//
// The package knows nothing of Berth's domains: cri/ gives each hook the pod
// and container as NRI API values (api.PodSandbox, api.Container; ContainerSpec
// fills a container's spec part), and implements Domain, through which the
// host lists what exists (to synchronise a plugin that registers) and applies
// what plugins ask of other containers. It owns no state on disk; the socket
// ([nri] socket_path) is its only file, created by Start and removed by Stop.
//
// # How cri/ calls the hooks
//
// One hook per NRI event, called at these points of the CRI RPCs (a hook
// that returns an error after the fact, marked "log", is logged and does
// not fail the RPC):
//
//	RunPodSandbox:    namespaces, network, then
//	                  unblock := h.Block()       (not across the network set-up: slow)
//	                  h.RunPodSandbox            error fails the RPC
//	                  record READY (Domain.List sees it); unblock()
//	                  on failure after RunPodSandbox: h.RemovePodSandbox (it sends Stop first)
//	StopPodSandbox:   stop every container (each: h.StopContainer), then
//	                  h.StopPodSandbox (log), then tear the network down
//	RemovePodSandbox: remove every container (each: h.RemoveContainer), then
//	                  h.RemovePodSandbox (log) once the pod is gone
//	UpdatePodSandboxResources:
//	                  h.UpdatePodSandbox (error fails), apply, h.PostUpdatePodSandbox (log)
//	CreateContainer:  build the spec; ctr := container values + ContainerSpec(ctr, spec)
//	                  unblock := h.Block()
//	                  adj, _, err := h.CreateContainer(ctx, pod, ctr)   err fails the RPC
//	                  ApplyAdjustment(spec, adj)                        err fails the RPC
//	                  create in the shim; commit the record; unblock()
//	                  h.PostCreateContainer (log)
//	                  on any failure after h.CreateContainer was called (its own
//	                  error included): h.RemoveContainer (it sends Stop first)
//	StartContainer:   h.StartContainer (error fails; then h.StopContainer), start,
//	                  h.PostStartContainer (log); a failed start: h.StopContainer
//	UpdateContainerResources:
//	                  res, err := h.UpdateContainer(ctx, pod, ctr, asked)  err fails
//	                  apply res (res.ToOCI()); h.PostUpdateContainer (log)
//	StopContainer:    once the container has exited: h.StopContainer (log)
//	exit watcher:     a container's init exited: h.StopContainer (log)
//	RemoveContainer:  once it is gone: h.RemoveContainer (log)
//
// StopContainer and StopPodSandbox go out once per object whoever calls them
// first; RemoveContainer and RemovePodSandbox send the Stop event first when
// it has not gone out. The state a hook is given is the object's state at
// the call (a StopContainer event carries the exit code and time).
//
// # Locks
//
// Three, always taken in this order: the plugin sync lock (Block, shared by
// creations; taken for writing by the nri library while it synchronises a
// plugin), the host's mutex (events one at a time, in call order, and the
// once-only Stop bookkeeping), the nri library's own lock. A plugin
// registering is synchronised under the first two, so it either finds an
// object in Domain.List or sees its events, never neither, and no event
// overtakes its synchronisation. Domain methods must not call the host.
// Updates and evictions that plugins ask for are applied through Domain
// outside the host's mutex. Hooks hold the host's mutex while plugins
// answer (each bounded by [nri] plugin_request_timeout): one slow plugin
// delays every event, as in containerd.
//
// Disabled ([nri] enable = false), before Start and after Stop, every hook is
// a no-op that returns what leaves the object unchanged, and Block returns a
// no-op, so cri/ calls them unconditionally.
package nri
