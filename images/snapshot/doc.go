// Package snapshot unpacks image layers for overlayfs.
//
// Apply turns one uncompressed layer tar into a directory that overlayfs can
// use as a lower layer: OCI whiteouts (.wh.NAME) become 0/0 character devices,
// opaque markers (.wh..wh..opq) become the overlay "opaque" xattr on their
// directory (trusted.overlay.*, or user.overlay.* for userxattr mounts).
//
// Contract: the caller extracts into a fresh temporary directory and renames it
// into place only when Apply succeeds; on error the caller removes the whole
// directory. Apply therefore never has to undo a half-applied layer. Nothing
// else writes to that directory while Apply runs.
//
// Hostile tars: no entry can create or change anything outside the target
// directory, and no operation follows a link out of it:
//   - Entry names are cleaned as if rooted at the target ("/etc/x" and
//     "../../etc/x" both land in <dir>/etc/x, as with Docker); "./", "/" and
//     ".." name the target itself, whose metadata they set (they must be
//     directories).
//   - Apply opens the target once (O_PATH) and reaches every entry from that
//     fd (resolve.go): an entry's parent is walked one component at a time,
//     each opened O_NOFOLLOW relative to the previous one; a symlink met on
//     the way is read and resolved as if the target were "/" (an absolute
//     link restarts at the target, ".." stops there; at most 40 links), so a
//     symlinked parent stays inside. Missing parents are created the same way.
//   - The entry's own name is never followed. It is created with *at calls
//     relative to its parent's fd (O_CREAT|O_EXCL|O_NOFOLLOW for files); what
//     stood there is removed, not written through (a symlink is unlinked, a
//     directory emptied through O_NOFOLLOW fds); owner, xattrs, mode and
//     times are set with fchownat and utimensat (AT_SYMLINK_NOFOLLOW),
//     lsetxattr on /proc/self/fd/<parent>/<name>, and fchmodat2
//     (AT_SYMLINK_NOFOLLOW) or, on kernels before 6.6, chmod of the
//     /proc/self/fd link of an O_PATH|O_NOFOLLOW fd (the kernel resolves
//     those fd links to exactly the fd's inode; /proc must be mounted). A
//     symlink gets no chmod at all: Linux symlinks have no mode of their own.
//   - Hard links point at an existing non-directory inside the target,
//     resolved like a parent; linkat does not follow the target's name, so a
//     hard link to a symlink is that symlink, and is treated as one.
//   - Overlay xattrs (trusted.overlay.*, user.overlay.*) in a tar are dropped:
//     a layer cannot set redirects, metacopy or opaque itself; only the
//     whiteout and opaque conversion above writes them.
//   - File content is written with holes where a chunk is all zeros, so a
//     sparse entry (GNU sparse in PAX: any size for a few bytes of tar) or a
//     compressed run of zeros takes no more disk than its data; reading an
//     entry's content stops as soon as the context ends, not only between
//     entries (one entry can declare terabytes).
//   - Entries that cannot be applied as asked (a hard link to a directory or
//     to the root, a parent that is a file, a symlink loop, a bad whiteout
//     name, an unknown type) fail with errdefs.ErrInvalidArgument.
//
// Devices are created as the tar says: layers are only ever used as overlay
// lower dirs, whose device nodes the container's own device cgroup and mount
// options govern. Directory times are set last, deepest first; a directory
// that a later entry removed or replaced is skipped.
//
// Apply keeps no state and takes no locks; concurrent Applys into different
// directories are independent.
package snapshot
