#!/usr/bin/env bash
# hack/vm.sh — runs a command in a QEMU virtual machine that boots Debian's
# generic kernel with cgroup v2 (all controllers) and AppArmor, which this host
# lacks (cgroup v1, no LSM); with VM_LSM=selinux, SELinux instead, enforcing
# the policy hack/selinux-policy.sh builds (Debian's default policy and its
# container module), the host's root labelled bin_t as a whole. The VM's root is this host's filesystem, shared
# read-only over 9p, with a scratch ext4 disk on /tmp and tmpfs on the other
# writable paths; the command's output dir ($VM_OUT, default a temp dir) is
# shared read-write; the host's loopback is reachable as 10.0.2.2 (QEMU user
# networking), and the host's loopback ports in $VM_FORWARD (e.g. "5000", the
# test registry) are forwarded to the same ports on the VM's loopback. The
# scratch disk hides the host's /tmp but for the repo and the paths in
# $VM_KEEP. $VM_KERNEL_ARGS adds to the kernel's command line; $VM_NICE is the
# emulator's niceness (default -10). The kernel's
# warnings, soft lockups and RCU stalls with their stacks show on the
# console; its whole log ends up in the output dir's dmesg.
#
#   hack/vm.sh run CMD [ARG...]   boot, run CMD as root in the VM, exit with its status
#   hack/vm.sh prepare            only fetch the kernel and build the initramfs (cached)
#
# Software emulation (no usable KVM here): boot takes seconds, CPU-heavy work
# runs many times slower than on the host. Installs nothing on the host but
# qemu-system-x86 (hack/install-deps.sh); the kernel and busybox packages are
# unpacked under $BERTH_CACHE/vm, not installed.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

[[ $(id -u) -eq 0 ]] || die "run as root"
VM_LSM=${VM_LSM:-apparmor}
[[ $VM_LSM == apparmor || $VM_LSM == selinux ]] || die "VM_LSM must be apparmor or selinux"
VM_KERNEL_VERSION=6.1.0-47-amd64
VM_DIR="$BERTH_CACHE/vm"
KDIR="$VM_DIR/kernel-$VM_KERNEL_VERSION"
MODULES="$KDIR/lib/modules/$VM_KERNEL_VERSION"
BUSYBOX="$VM_DIR/busybox"
INITRD="$VM_DIR/initrd-$VM_KERNEL_VERSION.gz"

# Modules the initramfs loads to reach the host's filesystem and network, and
# those the VM loads once on the host's root (from $MODULES: this host has no
# /lib/modules): its scratch disk, overlayfs for rootfs mounts, what pod
# networking uses.
INITRD_MODULES=(virtio_pci 9pnet_virtio 9p virtio_net)
VM_MODULES=(crc32c_generic virtio_blk ext4 loop overlay veth bridge br_netfilter nf_tables nft_chain_nat nft_compat xt_MASQUERADE xt_comment xt_mark
	xt_addrtype xt_conntrack xt_multiport xt_nat xt_tcpudp nf_conntrack_netlink)
VM_MODULE_LIST="$VM_DIR/modules-$VM_KERNEL_VERSION"

fetch_deb() { # fetch_deb PACKAGE DIR: unpack a Debian package into DIR
	local tmp
	tmp=$(mktemp -d)
	(cd "$tmp" && apt-get download -o APT::Sandbox::User=root "$1" >/dev/null) || { rm -rf "$tmp"; die "apt-get download $1 failed"; }
	mkdir -p "$2"
	dpkg-deb -x "$tmp"/*.deb "$2"
	rm -rf "$tmp"
}

# module_paths NAME: the paths (under $KDIR) of module NAME and of the modules
# it needs, each after its own dependencies: the order to load them in.
module_paths() {
	local path deps d
	path=$(awk -v n="/$1.ko:" 'index($1, n) && substr($1, length($1) - length(n) + 1) == n {print $1; exit}' "$MODULES/modules.dep")
	[[ -n $path ]] || die "module $1 is not in $MODULES"
	path=${path%:}
	deps=$(awk -v p="$path:" '$1 == p {for (i = 2; i <= NF; i++) print $i}' "$MODULES/modules.dep")
	for d in $deps; do module_paths "$(basename "$d" .ko)"; done
	echo "/lib/modules/$VM_KERNEL_VERSION/$path"
}

prepare() {
	command -v qemu-system-x86_64 >/dev/null || die "qemu-system-x86_64 is missing (hack/install-deps.sh installs it)"
	mkdir -p "$VM_DIR"
	if [[ ! -x $BUSYBOX ]]; then
		log "fetching busybox-static"
		fetch_deb busybox-static "$VM_DIR/busybox-static"
		cp "$VM_DIR/busybox-static/bin/busybox" "$BUSYBOX"
		rm -rf "$VM_DIR/busybox-static"
	fi
	if [[ ! -f $MODULES/modules.dep ]]; then
		log "fetching linux-image-$VM_KERNEL_VERSION (unpacked, not installed)"
		rm -rf "$KDIR"
		fetch_deb "linux-image-$VM_KERNEL_VERSION-unsigned" "$KDIR"
		"$BUSYBOX" depmod -b "$KDIR" "$VM_KERNEL_VERSION"
	fi
	if [[ ! -f $VM_MODULE_LIST || $VM_MODULE_LIST -ot $0 ]]; then
		# Each once, and none the initramfs loaded.
		{
			for m in "${INITRD_MODULES[@]}"; do module_paths "$m" | sed 's/^/initrd /'; done
			for m in "${VM_MODULES[@]}"; do module_paths "$m"; done
		} | awk '$1 == "initrd" {seen[$2]++; next} !seen[$0]++' | sed "s|^|$KDIR|" >"$VM_MODULE_LIST"
	fi
	if [[ $VM_LSM == selinux ]]; then
		SELINUX_ETC=$("$BERTH_REPO/hack/selinux-policy.sh")
	fi
	[[ -f $INITRD && $INITRD -nt $BERTH_REPO/hack/vm-init.sh && $INITRD -nt $0 ]] && return
	log "building the initramfs"
	local root
	root=$(mktemp -d)
	mkdir -p "$root"/{bin,dev,proc,sys,newroot}
	cp "$BUSYBOX" "$root/bin/busybox"
	local m
	for m in "${INITRD_MODULES[@]}"; do module_paths "$m"; done | awk '!seen[$0]++' >"$root/modules"
	while read -r m; do
		mkdir -p "$root$(dirname "$m")"
		cp "$KDIR$m" "$root$m"
	done <"$root/modules"
	cp "$BERTH_REPO/hack/vm-init.sh" "$root/init"
	chmod +x "$root/init"
	(cd "$root" && find . | "$BUSYBOX" cpio -o -H newc 2>/dev/null | gzip -1 >"$INITRD.tmp")
	mv "$INITRD.tmp" "$INITRD"
	rm -rf "$root"
}

run() {
	prepare
	local out="${VM_OUT:-}" own_out=""
	if [[ -z $out ]]; then
		out=$(mktemp -d "$VM_DIR/out.XXXXXX") # not under /tmp: the VM mounts a tmpfs there
		own_out=1
	fi
	mkdir -p "$out"
	rm -f "$out/rc"
	printf '%q ' "$@" >"$out/cmd"
	printf '%s\n' ${VM_FORWARD:-} >"$out/forward"
	printf '%s\n' "$BERTH_REPO" ${VM_KEEP:-} >"$out/keep"
	printf '%s\n' "$VM_MODULE_LIST" "$BUSYBOX" "$BERTH_REPO/hack/vm-init.sh" >"$out/paths"
	local lsm="apparmor=1 security=apparmor"
	rm -f "$out/selinux"
	if [[ $VM_LSM == selinux ]]; then
		# The dir to mount on /etc/selinux, and the unpacked tools (load_policy).
		printf '%s\n' "$SELINUX_ETC" "$BERTH_CACHE/vm/selinux/tools" >"$out/selinux"
		lsm="selinux=1 security=selinux berth.lsm=selinux"
	fi
	# A scratch ext4 disk for /tmp, where the tests keep their state: ext4
	# takes idmapped mounts (tmpfs only from Linux 6.3) and overlay upper dirs.
	local disk="$out/scratch.img"
	truncate -s "${VM_DISK:-8G}" "$disk"
	mkfs.ext4 -q -F "$disk"
	# Kernel arguments for software emulation:
	#  - transparent_hugepage=never init_on_alloc=0: Debian's kernel backs a
	#    first touch of anonymous memory with a 2 MiB page and zeroes it
	#    whole at allocation, without a point to reschedule (init_on_alloc;
	#    the fault zeroes it once more). Emulated on a busy host, that held
	#    a new berthd's heap growing in one fault for over 20 s ("soft lockup
	#    ... [berthd]" in clear_page_erms < get_page_from_freelist <
	#    do_huge_pmd_anonymous_page), the whole process with it: the test
	#    saw no answer to Version for a minute. A 4 KiB page at a time, each
	#    fault is short and the process's other threads run.
	#  - tsc=reliable: the emulated TSC follows the host's clock, the same
	#    for every vCPU, but without the invariant-TSC flag the kernel takes
	#    it for unsynchronized and reads the HPET instead: a trap to the
	#    emulator, under its global lock, for every clock read (Go reads the
	#    clock all the time) instead of a read in the vDSO: time.Now took
	#    5.5-7.7 us with the HPET, 0.64 us with the TSC (a busy host).
	local kargs="transparent_hugepage=never init_on_alloc=0 tsc=reliable"
	# The emulator runs at a higher priority than the host's other work
	# (VM_NICE, -10 by default; as root): each vCPU is a host thread, and a
	# host busy with a build and tests of its own gave the guest so little
	# CPU that its CPUs stood still for up to a minute ("soft lockup",
	# rcu_preempt stalls), while its clock, the host's, ran on: CRI calls
	# in the VM hit their 2-minute deadlines. Without the privilege, nice
	# warns and the VM runs at the default priority.
	# Its memory is allocated whole at boot (-mem-prealloc): here a host
	# page's first touch can be slow (this host is a VM too, its memory
	# backed lazily: 3 GiB took 0.04-5.4 s to touch), and a guest that
	# first touched a page while the host was busy stood in one 4 KiB
	# clear_page for over 20 s ("soft lockup ... [berthd]" in
	# clear_page_erms < get_page_from_freelist, the other vCPU idle).
	log "booting the VM (cgroup v2, $VM_LSM) for: $*"
	timeout "${VM_TIMEOUT:-1800}" nice -n "${VM_NICE:--10}" qemu-system-x86_64 -machine q35 -cpu max -smp 2 -m "${VM_MEMORY:-3072}" -mem-prealloc \
		-nographic -no-reboot -monitor none -serial stdio \
		-kernel "$KDIR/boot/vmlinuz-$VM_KERNEL_VERSION" -initrd "$INITRD" \
		-append "console=ttyS0 quiet panic=-1 $lsm $kargs berth.out=$out ${VM_KERNEL_ARGS:-}" \
		-virtfs local,path=/,mount_tag=hostroot,security_model=passthrough,readonly=on,multidevs=remap \
		-virtfs "local,path=$out,mount_tag=out,security_model=passthrough" \
		-drive "file=$disk,format=raw,if=virtio,cache=unsafe" \
		-netdev user,id=n0 -device virtio-net-pci,netdev=n0 </dev/null || true
	rm -f "$disk"
	local rc=1
	[[ -f $out/rc ]] && rc=$(cat "$out/rc")
	[[ -n $own_out ]] && rm -rf "$out"
	log "the command in the VM exited with $rc"
	return "$rc"
}

case "${1:-}" in
prepare) prepare ;;
run)
	shift
	[[ $# -gt 0 ]] || die "usage: hack/vm.sh run CMD [ARG...]"
	run "$@"
	;;
*) die "usage: hack/vm.sh prepare | run CMD [ARG...]" ;;
esac
