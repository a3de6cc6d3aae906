// Package volumes turns a container's CRI mounts and its image's VOLUMEs into
// OCI mounts.
//
// Host paths are checked and resolved on the host (symlinks followed, a
// missing path created as a directory, as Docker and containerd do); container
// paths must be absolute and are resolved inside the container's rootfs by the
// runtime at mount time (runc resolves them without leaving the rootfs).
// Propagation needs the host side of the mount to cooperate: rslave
// (HOST_TO_CONTAINER) needs a shared or slave host mount, rshared
// (BIDIRECTIONAL) a shared one; recursive read-only needs read-only and private
// propagation, as CRI specifies. Mount options (KEP-5855) may only take rights
// away: noexec, nodev and nosuid are added to the bind; any other option is
// refused before the host path is touched. Image VOLUMEs get an empty directory of the
// container's own, unless a CRI mount already covers the path.
//
// An image mount's sub path (ResolveImageSubPath) is resolved inside the
// image's read-only tree, symlinks as the image means them, never leaving it.
//
// The package reads /proc/self/mountinfo, walks image trees (lstat, readlink)
// and creates directories; it keeps no state and takes no locks.
package volumes
