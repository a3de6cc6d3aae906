// Package sandbox owns pod sandboxes: their records and state machine, the
// pod's pinned namespaces, cgroup, and the per-pod files (hostname, hosts,
// resolv.conf, shm). It never imports sandbox/container.
//
// Today it holds the namespace pins: a pod's network, IPC and UTS namespaces
// are created without any process in them and kept alive by bind mounts of
// their nsfs files onto files under the state dir (<state>/ns/<pod>/{net,ipc,uts}),
// so that no pause process is needed for them. A pin is removed by unmounting
// and deleting it; both steps are idempotent.
//
// A pod with a user namespace of its own (userns.go) gets it from a holder
// process (berth-runtime hold) cloned into a new user namespace with the pod's
// mappings and new network, IPC and UTS namespaces, which the user namespace
// therefore owns; the five are pinned from /proc/<holder>/ns and the holder
// ends (a multi-threaded Go process cannot enter a user namespace itself).
//
// Namespaces are made on a locked OS thread that moves back into its own
// namespaces before it is unlocked, so no other goroutine ever runs in them. No locks: callers pin and unpin a pod's
// namespaces from under that pod's lock.
package sandbox
