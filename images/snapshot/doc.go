// Package snapshot unpacks image layers for overlayfs.
//
// Apply turns one uncompressed layer tar into a directory that overlayfs can
// use as a lower layer: OCI whiteouts (.wh.NAME) become 0/0 character devices,
// opaque markers (.wh..wh..opq) become the overlay "opaque" xattr on their
// directory (trusted.overlay.*, or user.overlay.* for userxattr mounts).
//
// Contract: the caller extracts into a fresh temporary directory and renames it
// into place only when Apply succeeds; on error the caller removes the whole
// directory. Apply therefore never has to undo a half-applied layer.
//
// Hostile tars: no entry can create or change anything outside the target
// directory. Entry names are cleaned as if rooted at the target ("/etc/x" and
// "../../etc/x" both land in <dir>/etc/x, as with Docker); parent directories
// are resolved inside the target with filepath-securejoin, so a symlink in a
// parent stays inside too; the last component is never followed (existing
// entries are replaced, not written through, and ownership, modes, xattrs and
// times use the no-follow calls); hard links may only point at entries inside
// the target. Devices are created as the tar says: layers are only ever used
// as overlay lower dirs, whose device nodes the container's own device cgroup
// and mount options govern.
//
// Apply keeps no state and takes no locks; concurrent Applys into different
// directories are independent.
package snapshot
