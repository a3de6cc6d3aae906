// Package container keeps Berth's container records and their state machine.
// It never imports sandbox/ (pods); cri/ links the two by pod ID.
//
//	CREATED --start--> RUNNING --exit--> EXITED
//	   \_______exit (killed before start)__/
//	any --shim lost--> UNKNOWN --shim found again--> RUNNING | EXITED
//
// Every change goes through Store.Update, which checks the transition, writes
// the record (sandbox/store: temp file, fsync, rename) and only then changes
// memory. One mutex per container; Store.mu guards only the map.
//
// A record that Load cannot read (corrupt, or a newer Berth's schema) is left
// as it is: its container is not listed, its id stays taken, and Unreadable
// names it so that recovery (cri/recover.go) keeps its process, rootfs and
// snapshot.
package container
