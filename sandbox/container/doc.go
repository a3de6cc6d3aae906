// Package container is Berth's container domain: the records and their
// state machine, and the Service that makes, runs, stops, removes and
// recovers containers. cri/ translates CRI requests into Service calls and
// orders them with the other domains (pod → network → container); this
// package never imports sandbox/ (pods), the image store, CRI types or grpc.
// What it needs of a pod comes as plain values (Pod); the OCI spec is built
// by cri (CreateInput.Build: it needs the CRI config), called once the
// rootfs it reads /etc/passwd from is mounted.
//
// # Records
//
//	CREATED --start--> RUNNING --exit--> EXITED
//	   \_______exit (killed before start)__/
//	any --shim lost--> UNKNOWN --shim found again--> RUNNING | EXITED
//
// Every change goes through Store.Update, which checks the transition, writes
// the record (sandbox/store: temp file, fsync, rename) and only then changes
// memory. A record is written last at create (once the rootfs and the shim's
// container exist) and deleted last at remove.
//
// A record that Load cannot read (corrupt, or a newer Berth's schema) is left
// as it is: its container is not listed, its id stays taken, and Unreadable
// names it so that recovery keeps its process, rootfs and snapshot.
//
// # Seams
//
// The Service reaches the world through three small interfaces, each faked in
// the tests with error injection: Runner (the pods' shims: create, start,
// signal, wait, delete, list, exits, pause; runner.Pool through PoolRunner),
// Snapshots (the image store's writable layers and read-only views) and OS
// (overlay mounts, dirs, cgroup kill and removal; HostOS).
//
// # Layout
//
// Under berthd's state dir, containers/<id>/ holds rootfs/ (the overlay of
// snapshot <id>), image-mounts/<n> (image mount n, read-only, snapshot
// <id>.image<n>; image-mounts/.empty under a one-layer image), volumes/ (the
// image's VOLUMEs) and, when the pod has no log dir, container.log. Records
// are <root>/containers/<id>.json.
//
// # Locking and claims
//
// One mutex per record; Store.mu guards only the map. A change and its
// notification (SetNotify: cri's container events) are ordered per
// container by a striped lock held from the write to the notification. No
// lock is held across a shim call or a mount: Start, Remove (exclusive) and
// Stop (shared with other stops) claim the container (sandbox/claim) for
// their slow work; cri claims the pod around them. Create needs no claim:
// nobody sees the container before its record exists.
//
// # Failures
//
// Create undoes each step it took, last first, on a fresh bounded context
// (cleanupContext): the request's context is often why it fails. A mount
// that will not go keeps what is under it (its snapshot, the dir) for
// RemoveContainer or recovery. Each pod's shim has an exit watcher
// (exits.go); Recover (recover.go) reconciles records with the shims,
// mounts, dirs and snapshots that survived a restart.
package container
