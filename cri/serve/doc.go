// Package serve is berthd's outer shell around the CRI server: it claims the
// root directory with a lock file, listens on the CRI unix socket, serves gRPC
// with Berth's interceptors, and stops gracefully. Under systemd it notifies
// readiness and stopping (notify.go), and JournalHook sends the logs to the
// journal with their fields (log_format = "journald").
//
// On disk: <root>/berthd.lock (flock(2)-held for the daemon's lifetime, holds its
// pid for the error message of a second instance) and the socket at the listen
// path (mode 0660, parent directories created 0711). A socket left by a crashed
// berthd is replaced; a socket that still answers is never taken over.
//
// The lock is what makes one berthd per root: flock is released by the kernel
// when the process dies, so a crash never leaves a stale lock behind.
package serve
