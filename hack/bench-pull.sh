#!/usr/bin/env bash
# hack/bench-pull.sh — pull benchmark, Berth against containerd in the same run:
# pull the 120 MiB multi-layer test image (berth-test/big:1) from the local
# registry into an empty store, N times each (fresh root every time), and
# report wall time, MB/s, and the daemon's CPU seconds, with the ratio.
# containerd is Debian's package, unpacked into the cache (not installed, no
# service), run with its own temp root, state and socket.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

[[ $(id -u) -eq 0 ]] || die "run as root"
RUNS="${BENCH_RUNS:-3}"
IMAGE="$BERTH_REGISTRY/berth-test/big:1"
CRICTL="$BERTH_BIN/crictl"
export CRI_CONFIG_FILE=/dev/null # quiets crictl's search for /etc/crictl.yaml
WORK=$(mktemp -d /tmp/berth-bench.XXXXXX)

cleanup() {
	stop_daemon
	rm -rf "$WORK"
}
trap cleanup EXIT

stop_daemon() {
	[[ -n $DAEMON_PID ]] || return 0
	stop_pid "$DAEMON_PID"
	DAEMON_PID=""
	unmount_under "$WORK" # containerd mounts nothing for a pull, but be sure
}

start_berthd() {
	local d=$1
	printf '[image]\nmax_concurrent_downloads = %s\n\n[nri]\nenable = false\n' "${BERTH_DOWNLOADS:-3}" >"$d/berth.toml"
	"$BERTH_REPO/bin/berthd" --config "$d/berth.toml" --root "$d/root" --state "$d/state" --listen "$d/berth.sock" \
		--log-level warn >"$d/log" 2>&1 &
	DAEMON_PID=$!
	wait_cri "$d/berth.sock" "$d/log"
	SOCK="$d/berth.sock"
}

start_containerd() {
	local d=$1
	cat >"$d/config.toml" <<TOML
version = 2
root = "$d/root"
state = "$d/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$d/containerd.sock"
[ttrpc]
  address = "$d/containerd.sock.ttrpc"
[debug]
  level = "warn"
[plugins."io.containerd.grpc.v1.cri".registry.mirrors."$BERTH_REGISTRY"]
  endpoint = ["http://$BERTH_REGISTRY"]
[plugins."io.containerd.internal.v1.opt"]
  path = "$d/opt"
TOML
	sed -i '/^disabled_plugins/d' "$d/config.toml"
	PATH="$CTRD_DIR/usr/bin:$PATH" "$CTRD_DIR/usr/bin/containerd" --config "$d/config.toml" >"$d/log" 2>&1 &
	DAEMON_PID=$!
	wait_cri "$d/containerd.sock" "$d/log"
	SOCK="$d/containerd.sock"
}

cpu_seconds() { awk '{printf "%.2f", ($14 + $15) / 100}' "/proc/$1/stat"; }

# bench NAME START_FN: prints "NAME seconds cpu" per run on stdout.
bench() {
	local name=$1 start=$2 i d t0 t1 c0 c1
	for i in $(seq "$RUNS"); do
		d="$WORK/$name-$i"
		mkdir -p "$d"
		"$start" "$d"
		c0=$(cpu_seconds "$DAEMON_PID")
		t0=$(date +%s.%N)
		"$CRICTL" -i "unix://$SOCK" --timeout 300s pull "$IMAGE" >/dev/null
		t1=$(date +%s.%N)
		c1=$(cpu_seconds "$DAEMON_PID")
		stop_daemon
		rm -rf "$d"
		echo "$name $(echo "$t1 - $t0" | bc -l) $(echo "$c1 - $c0" | bc -l)"
	done
}

[[ -x $BERTH_REPO/bin/berthd ]] || die "run make build first"
command -v bc >/dev/null || die "bc is missing (hack/install-deps.sh installs it)"
fetch_peer_binaries
"$BERTH_REPO/hack/registry.sh" status >/dev/null || die "start the registry first: hack/registry.sh start && hack/test-images.sh"
size=$(curl -fsS -H 'Accept: application/vnd.oci.image.manifest.v1+json' \
	"http://$BERTH_REGISTRY/v2/berth-test/big/manifests/1" | jq '[.layers[].size] | add')
log "image $IMAGE: $((size / 1048576)) MiB compressed, $RUNS runs each"

results="$WORK/results"
{ bench berth start_berthd; bench containerd start_containerd; } >"$results"
awk -v size="$size" '
	{ t[$1] += $2; c[$1] += $3; n[$1]++ }
	END {
		for (r in t) {
			mt[r] = t[r] / n[r]; mc[r] = c[r] / n[r]
			printf "pull %-10s %6.2f s  %7.1f MB/s  %5.2f CPU s  (mean of %d)\n", r, mt[r], size / 1e6 / mt[r], mc[r], n[r]
		}
		printf "pull throughput berth/containerd: %.2fx; CPU seconds berth/containerd: %.2fx\n", mt["containerd"] / mt["berth"], mc["berth"] / mc["containerd"]
	}' "$results"
