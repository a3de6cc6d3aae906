#!/usr/bin/env bash
# Shared settings and helpers for hack/ scripts. Source it; it sets nothing else.

BERTH_CACHE="${BERTH_CACHE:-/var/cache/berth-dev}"   # survives fresh clones (CI clones anew each run)
BERTH_BIN="$BERTH_CACHE/bin"
BERTH_REGISTRY="${BERTH_REGISTRY:-127.0.0.1:5000}"
BERTH_REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

CRI_TOOLS_VERSION=v1.37.0
CNI_PLUGINS_VERSION=v1.9.1
CNI_BIN_DIR="${CNI_BIN_DIR:-/opt/cni/bin}"
STATICCHECK_VERSION=v0.8.2
DISTRIBUTION_VERSION=v3.1.2

export PATH="/usr/local/go/bin:$PATH"
export GOFLAGS="${GOFLAGS:-} -mod=mod"
export GONOSUMDB="k8s.io,sigs.k8s.io"

log() { printf '%s %s\n' "[$(basename "$0")]" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# stamp_ok NAME VERSION: true when NAME was last built at VERSION.
stamp_ok() { [[ -f "$BERTH_CACHE/stamps/$1" && "$(cat "$BERTH_CACHE/stamps/$1")" == "$2" ]]; }
stamp_set() { mkdir -p "$BERTH_CACHE/stamps"; printf '%s\n' "$2" >"$BERTH_CACHE/stamps/$1"; }

# go_build_tool NAME MODULE VERSION OUTDIR PACKAGE... : build packages of a Go
# module at VERSION in a scratch module under the cache (the proxy serves the
# module; replace directives of its own go.mod do not apply).
go_build_tool() {
	local name=$1 module=$2 version=$3 out=$4
	shift 4
	local dir="$BERTH_CACHE/src/$name"
	mkdir -p "$dir" "$out"
	if [[ ! -f "$dir/go.mod" ]] || ! grep -q "$module $version" "$dir/go.mod"; then
		rm -f "$dir/go.mod" "$dir/go.sum"
		(cd "$dir" && go mod init "berth-tools/$name" >/dev/null 2>&1 && go get "$module@$version" >/dev/null)
	fi
	(cd "$dir" && go build -trimpath -o "$out/" "$@")
}

# The portmap CNI plugin creates these nat chains (and jumps to them) on its
# first use and never removes them. Scripts that run pods note whether they
# existed before and, if not, remove them afterwards.
PORTMAP_CHAINS=(CNI-HOSTPORT-DNAT CNI-HOSTPORT-MASQ CNI-HOSTPORT-SETMARK)
portmap_chains_present() { iptables -w -t nat -S 2>/dev/null | grep -q -- '-N CNI-HOSTPORT-DNAT'; }
remove_portmap_chains() {
	local rule c
	{ iptables -w -t nat -S | grep -E -- '-A (PREROUTING|OUTPUT|POSTROUTING) .*-j CNI-HOSTPORT-' || true; } | sed 's/^-A/-D/' |
		while read -r rule; do eval iptables -w -t nat "$rule"; done
	for c in "${PORTMAP_CHAINS[@]}"; do iptables -w -t nat -F "$c" 2>/dev/null && iptables -w -t nat -X "$c" 2>/dev/null; done
	return 0
}

# berthd puts pods without a cgroup parent under its own cgroup, /berth, and
# leaves it. Scripts that run pods note whether it existed before and, if not,
# remove it afterwards (rmdir: never a cgroup that still has children).
own_cgroup_dirs() {
	local d
	if [[ -f /sys/fs/cgroup/cgroup.controllers ]]; then # v2: one tree
		d=/sys/fs/cgroup/berth
		if [[ -d $d ]]; then echo "$d"; fi
	else # v1: one hierarchy per controller
		for d in /sys/fs/cgroup/*/berth; do
			if [[ -d $d ]]; then echo "$d"; fi
		done
	fi
}
own_cgroup_present() { [[ -n $(own_cgroup_dirs) ]]; }
remove_own_cgroup() {
	local d
	own_cgroup_dirs | while read -r d; do rmdir "$d" 2>/dev/null || true; done
	return 0
}

# fetch_peer_binaries unpacks Debian's containerd and runc packages (not
# installed: no service, nothing on PATH) into $BERTH_CACHE/containerd, for
# side-by-side benchmarks.
CTRD_DIR="$BERTH_CACHE/containerd"
fetch_peer_binaries() {
	[[ -x $CTRD_DIR/usr/bin/containerd && -x $CTRD_DIR/usr/sbin/runc ]] && return
	log "fetching Debian's containerd and runc packages (unpacked, not installed)"
	mkdir -p "$CTRD_DIR/debs"
	(cd "$CTRD_DIR/debs" && { apt-get download containerd runc 2>/dev/null || { apt-get update -qq && apt-get download containerd runc; }; }) >/dev/null
	local deb
	for deb in "$CTRD_DIR"/debs/*.deb; do dpkg-deb -x "$deb" "$CTRD_DIR"; done
}

# The current peer, built from the Go module proxy (build_current_peer):
# containerd with its runc shim, and runc with seccomp (libseccomp-dev), into
# $PEER_DIR/bin. Nothing is installed: benchmarks run it on a root, state
# dir, socket, bridge and cgroup parent of their own.
PEER_CONTAINERD_VERSION=v2.4.2
PEER_RUNC_VERSION=v1.4.4
PEER_DIR="$BERTH_CACHE/containerd-${PEER_CONTAINERD_VERSION#v}"
build_current_peer() {
	local v="$PEER_CONTAINERD_VERSION runc $PEER_RUNC_VERSION" bin="$PEER_DIR/bin"
	if stamp_ok current-peer "$v" && [[ -x $bin/containerd && -x $bin/containerd-shim-runc-v2 && -x $bin/runc ]]; then
		return
	fi
	log "building containerd $PEER_CONTAINERD_VERSION and runc $PEER_RUNC_VERSION from the Go module proxy into $bin"
	go_build_tool containerd github.com/containerd/containerd/v2 "$PEER_CONTAINERD_VERSION" "$bin" \
		github.com/containerd/containerd/v2/cmd/containerd github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2
	go_build_tool runc github.com/opencontainers/runc "$PEER_RUNC_VERSION" "$bin" -tags seccomp github.com/opencontainers/runc
	stamp_set current-peer "$v"
}

# Benchmarks run one daemon at a time: its pid in DAEMON_PID, its socket in SOCK.
DAEMON_PID=""
SOCK=""

# stop_pid PID: SIGTERM, up to 10 s, then SIGKILL; reaps it if it is our child.
stop_pid() {
	kill -TERM "$1" 2>/dev/null || true
	for _ in $(seq 100); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done
	kill -KILL "$1" 2>/dev/null || true
	wait "$1" 2>/dev/null || true
}

# wait_cri SOCKET LOG: wait until a CRI daemon (DAEMON_PID) answers on SOCKET.
wait_cri() {
	for _ in $(seq 200); do
		CRI_CONFIG_FILE=/dev/null "$BERTH_BIN/crictl" -r "unix://$1" --timeout 2s version >/dev/null 2>&1 && return
		kill -0 "$DAEMON_PID" 2>/dev/null || break
		sleep 0.05
	done
	die "daemon did not come up (log in $2)"
}

# unmount_under DIR: unmount everything mounted below DIR, deepest first.
unmount_under() {
	awk -v w="$1/" 'index($5, w) == 1 {print $5}' /proc/self/mountinfo | sort -r | while read -r m; do umount -l "$m"; done
}

# need_vm_test_setup: what the VM test scripts need: root, make build done,
# and the test registry on the host's loopback (the VM reaches it there).
need_vm_test_setup() {
	[[ $(id -u) -eq 0 ]] || die "run as root"
	[[ -x $BERTH_REPO/bin/berthd && -x $BERTH_REPO/bin/berth-shim && -x $BERTH_REPO/bin/berth-runtime ]] || die "run make build first"
	[[ ${BERTH_REGISTRY%:*} == 127.0.0.1 ]] || die "BERTH_REGISTRY must be on 127.0.0.1 (the VM reaches the host's loopback)"
}

# keep_critest_report DIR NAME: when the script exits, the critest reports a
# VM suite left in DIR/critest are copied to _output/NAME, and DIR is removed.
keep_critest_report() {
	local report="$BERTH_REPO/_output/$2"
	# shellcheck disable=SC2064 # expanded now, on purpose
	trap "rm -rf '$report'; mkdir -p '$report'; cp -r '$1/critest/.' '$report/' 2>/dev/null; rm -rf '$1'" EXIT
}
