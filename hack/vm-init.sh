#!/bin/busybox sh
# hack/vm-init.sh — the init of hack/vm.sh's VM, in two stages.
#  1. As /init of the initramfs (busybox only): load the modules that reach the
#     host, mount the host's root (9p, read-only) and the output dir (9p,
#     read-write), switch to the host's root and run stage 2 from there.
#  2. In the host's root: the scratch disk on /tmp, tmpfs on the other
#     writable paths, cgroup v2 with every
#     controller, securityfs (AppArmor), the modules listed, the network
#     (QEMU's user network: the host's loopback is 10.0.2.2, and <out>/forward
#     lists host ports to forward to the VM's loopback); run the command
#     the host wrote to <out>/cmd, write its status to <out>/rc, power off.

stage1() {
	bb=/bin/busybox
	$bb mount -t proc proc /proc
	$bb mount -t sysfs sys /sys
	$bb mount -t devtmpfs dev /dev
	for m in $($bb cat /modules); do $bb insmod "$m"; done
	out=$($bb sed -n 's/.*berth\.out=\([^ ]*\).*/\1/p' /proc/cmdline)
	opts=trans=virtio,version=9p2000.L,msize=262144
	$bb mount -t 9p -o "$opts,ro,cache=loose" hostroot /newroot || fail "mount the host's root"
	$bb mount -t 9p -o "$opts" out "/newroot$out" || fail "mount the output dir"
	busybox=$($bb sed -n 2p "/newroot$out/paths")
	script=$($bb sed -n 3p "/newroot$out/paths")
	for d in proc sys dev; do $bb mount --move "/$d" "/newroot/$d"; done
	exec $bb switch_root /newroot "$busybox" sh "$script" stage2 "$out" "$busybox"
}

stage2() {
	out=$1
	modules=$(bb sed -n 1p "$out/paths") # the list of modules to load, in order
	for m in $(bb cat "$modules"); do bb insmod "$m" || echo "berth-vm: could not load $m"; done
	for d in /run /var/tmp /var/log /root /mnt; do bb mount -t tmpfs -o mode=0755 tmpfs "$d"; done
	# The scratch disk hides the host's /tmp: the host paths listed in
	# <out>/keep (the repo, when it is a clone under /tmp) stay visible.
	bb mkdir /run/host-tmp
	bb mount --bind /tmp /run/host-tmp
	bb mount -t ext4 /dev/vda /tmp || fail "mount the scratch disk"
	bb chmod 1777 /tmp /var/tmp
	for p in $(bb cat "$out/keep"); do
		case $p in /tmp/*)
			bb mkdir -p "$p"
			bb mount --bind "/run/host-tmp/${p#/tmp/}" "$p"
			;;
		esac
	done
	bb mkdir -p /dev/pts /dev/shm /dev/mqueue
	bb ln -sf /proc/self/fd /dev/fd # what udev would make: bash's process substitution uses it
	bb ln -sf /proc/self/fd/0 /dev/stdin
	bb ln -sf /proc/self/fd/1 /dev/stdout
	bb ln -sf /proc/self/fd/2 /dev/stderr
	bb mount -t devpts -o newinstance,ptmxmode=0666 devpts /dev/pts
	bb mount -t tmpfs -o mode=1777 shm /dev/shm
	bb mount -t mqueue mqueue /dev/mqueue
	bb mount -t cgroup2 cgroup2 /sys/fs/cgroup
	for c in $(bb cat /sys/fs/cgroup/cgroup.controllers); do
		echo "+$c" >/sys/fs/cgroup/cgroup.subtree_control
	done
	bb mount -t securityfs securityfs /sys/kernel/security
	[ -s "$out/selinux" ] && load_selinux "$out/selinux"
	bb hostname berth-vm
	bb ip link set lo up
	bb ip link set eth0 up
	bb ip addr add 10.0.2.15/24 dev eth0
	bb ip route add default via 10.0.2.2
	for port in $(bb cat "$out/forward"); do
		socat "TCP-LISTEN:$port,bind=127.0.0.1,fork,reuseaddr" "TCP:10.0.2.2:$port" &
	done
	# The kernel boots quiet (console log level 4: errors only), which drops
	# the stack of a soft lockup or an RCU stall (printed at the default
	# level, 4): level 5 shows them, and warnings, not the notices (audit).
	# Each soft lockup also dumps every CPU's stack: what the other vCPU
	# was doing tells a stall of the emulation from a kernel path that loops.
	echo 5 >/proc/sys/kernel/printk
	echo 1 >/proc/sys/kernel/softlockup_all_cpu_backtrace
	export PATH=/usr/local/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin${SELINUX_PATH:-} HOME=/root
	echo "berth-vm: $(bb uname -r), cgroup2 controllers: $(bb cat /sys/fs/cgroup/cgroup.subtree_control)," \
		"LSMs: $(bb cat /sys/kernel/security/lsm)"
	sh -c "$(bb cat "$out/cmd")" </dev/null
	echo $? >"$out/rc"
	bb dmesg >"$out/dmesg" # the whole kernel log, info level included
	bb sync
	bb poweroff -f
}

# load_selinux FILE: mount the policy dir (FILE's line 1) on /etc/selinux, load
# its policy with the unpacked load_policy (FILE's line 2: the tools), label
# the scratch disk, enforce. The tools join the end of PATH (getenforce).
load_selinux() {
	etc=$(bb sed -n 1p "$1")
	tools=$(bb sed -n 2p "$1")
	bb mount --bind "$etc" /etc/selinux
	bb mount -t selinuxfs selinuxfs /sys/fs/selinux
	"$tools/sbin/load_policy" || fail "load the SELinux policy"
	# What udev and the boot scripts would label: the devices made before
	# the policy was loaded, the scratch disk's root.
	"$tools/sbin/restorecon" -R /dev || fail "label /dev"
	chcon system_u:object_r:tmp_t:s0 /tmp || fail "label /tmp"
	echo 1 >/sys/fs/selinux/enforce
	SELINUX_PATH=":$tools/usr/sbin:$tools/sbin"
}

fail() {
	echo "berth-vm: $*" >&2
	${BB:-/bin/busybox} poweroff -f
}

if [ "$1" = stage2 ]; then
	BB=$3
	bb() { "$BB" "$@"; }
	stage2 "$2"
else
	stage1
fi
