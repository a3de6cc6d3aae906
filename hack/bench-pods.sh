#!/usr/bin/env bash
# hack/bench-pods.sh — pod benchmark, Berth against containerd in the same
# run: RunPodSandbox and StopPodSandbox+RemovePodSandbox latency over
# BENCH_PODS (default 50) sequential pods on a bridge network of the script's
# own, p50/p90 and ratios, and Berth's network share (CNI ADD and DEL p50/p90,
# from its log). Then hack/benchcri over the CRI socket: pod start with a
# busybox sleep container (run + create + start), stop+remove, ExecSync of
# /bin/true, and the RSS of the daemon and of each shim with 10 pods running;
# then density: BENCH_DENSITY (110) pods with a busybox container each,
# started at once by 10 clients (wall time, per-pod p50 / p99, errors, relist
# and stats latency, RSS and PSS of all the runtime's processes, concurrent
# stop + remove, what is left). `hack/bench-pods.sh soak` (make soak) runs
# only the soak: 20 clients churn pods on berthd for BENCH_SOAK (10m), its
# and its shims' memory and open fds reported first minute against last.
# Two containerds, one after the other: Debian's 1.6 (unpacked, with Debian's
# runc) and the current peer, 2.4 with runc 1.4 (built from the Go module
# proxy: build_current_peer in lib.sh); each runs with its own temp root,
# state, socket, CNI dir, bridge and cgroup parent, NRI off, and the local
# berth-test/pause:1 as its sandbox image.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

[[ $(id -u) -eq 0 ]] || die "run as root"
PODS="${BENCH_PODS:-50}"
CRICTL="$BERTH_BIN/crictl"
export CRI_CONFIG_FILE=/dev/null
WORK=$(mktemp -d /tmp/berth-benchpods.XXXXXX)
FORWARD_BEFORE=$(cat /proc/sys/net/ipv4/ip_forward)
PORTMAP_BEFORE=no
portmap_chains_present && PORTMAP_BEFORE=yes
# Every containerd puts its shims' sockets in /run/containerd/s, whatever
# its config says; the dir is removed afterwards unless it was there before.
CTRD_RUN_BEFORE=no
[[ -e /run/containerd ]] && CTRD_RUN_BEFORE=yes

stop_daemon() {
	[[ -n $DAEMON_PID ]] || return 0
	"$CRICTL" -r "unix://$SOCK" --timeout 30s rmp -fa >/dev/null 2>&1 || true
	stop_pid "$DAEMON_PID"
	DAEMON_PID=""
}

cleanup() {
	local rc=$?
	stop_daemon
	# Shims of containerd's pods, if any outlived it: ours by their socket
	# paths under our own work dir, stopped by PID.
	local pid
	for pid in $(ps -eo pid=,args= | awk -v w="$WORK" 'index($0, w) && /containerd-shim/ {print $1}'); do
		kill -KILL "$pid" 2>/dev/null || true
	done
	unmount_under "$WORK"
	local br cg
	for br in berthbn0 ctrdbn0 ctrdbn1; do
		if [[ -d /sys/class/net/$br ]]; then ip link del "$br"; fi
	done
	for cg in /sys/fs/cgroup/*/berth-bench-*; do
		if [[ -d $cg ]]; then find "$cg" -depth -type d -exec rmdir {} + 2>/dev/null || true; fi
	done
	echo "$FORWARD_BEFORE" >/proc/sys/net/ipv4/ip_forward
	if [[ $PORTMAP_BEFORE != yes ]]; then remove_portmap_chains; fi
	if [[ $CTRD_RUN_BEFORE != yes && -d /run/containerd ]]; then find /run/containerd -depth -type d -empty -delete; fi
	rm -rf "$WORK"
	exit "$rc"
}
trap cleanup EXIT

start_berthd() {
	local d="$WORK/berth"
	mkdir -p "$d/net.d"
	printf '[cni]\nconf_dir = "%s"\nbin_dirs = ["%s"]\ndefault_bridge = "berthbn0"\ndefault_subnet = "10.203.0.0/24"\n\n[nri]\nenable = false\n' \
		"$d/net.d" "$CNI_BIN_DIR" >"$d/berth.toml"
	"$BERTH_REPO/bin/berthd" --config "$d/berth.toml" --root "$d/root" --state "$d/state" --listen "$d/berth.sock" \
		--log-level debug >"$d/log" 2>&1 &
	DAEMON_PID=$!
	SOCK="$d/berth.sock"
	wait_cri "$SOCK" "$d/log"
}

# timed_cni_dir: a copy of the CNI bin dir whose plugins are wrappers that log
# "<command> <container id> <microseconds>" of each call of the real plugin
# to $WORK/cni-times, so that containerd's network share is measured too.
timed_cni_dir() {
	local dir="$WORK/cni-timed" p
	mkdir -p "$dir"
	for p in "$CNI_BIN_DIR"/*; do
		cat >"$dir/$(basename "$p")" <<SH
#!/bin/sh
t0=\$(date +%s%N)
"$p" "\$@"
rc=\$?
echo "\$CNI_COMMAND \$CNI_CONTAINERID \$(( (\$(date +%s%N) - t0) / 1000 ))" >>"$WORK/cni-times"
exit \$rc
SH
		chmod +x "$dir/$(basename "$p")"
	done
	echo "$dir"
}

# containerd_net DIR BRIDGE SUBNET: a CNI conf dir for a containerd under DIR,
# on a bridge and subnet of its own.
containerd_net() {
	mkdir -p "$1/net.d"
	cat >"$1/net.d/10-bench.conflist" <<JSON
{"cniVersion":"1.0.0","name":"bench","plugins":[
 {"type":"bridge","bridge":"$2","isGateway":true,"ipMasq":true,"hairpinMode":true,
  "ipam":{"type":"host-local","ranges":[[{"subnet":"$3"}]],"routes":[{"dst":"0.0.0.0/0"}],"dataDir":"$1/ipam"}},
 {"type":"portmap","capabilities":{"portMappings":true}}]}
JSON
}

# run_containerd DIR BIN RUNTIME_PATH: containerd BIN on DIR/config.toml,
# then the sandbox image pulled.
run_containerd() {
	PATH="$3:$PATH" "$2" --config "$1/config.toml" >"$1/log" 2>&1 &
	DAEMON_PID=$!
	SOCK="$1/containerd.sock"
	wait_cri "$SOCK" "$1/log"
	"$CRICTL" -r "unix://$SOCK" -i "unix://$SOCK" --timeout 60s pull "$BERTH_REGISTRY/berth-test/pause:1" >/dev/null
}

# start_containerd16: Debian's containerd 1.6 and runc (config version 2).
start_containerd16() {
	local d="$WORK/containerd16"
	containerd_net "$d" ctrdbn0 10.204.0.0/24
	cat >"$d/config.toml" <<TOML
version = 2
root = "$d/root"
state = "$d/state"
[grpc]
  address = "$d/containerd.sock"
[ttrpc]
  address = "$d/containerd.sock.ttrpc"
[debug]
  level = "warn"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$BERTH_REGISTRY/berth-test/pause:1"
  # This host refuses negative oom_score_adj (no CAP_SYS_RESOURCE).
  restrict_oom_score_adj = true
[plugins."io.containerd.grpc.v1.cri".cni]
  bin_dir = "$(timed_cni_dir)"
  conf_dir = "$d/net.d"
[plugins."io.containerd.grpc.v1.cri".containerd]
  default_runtime_name = "runc"
[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"
[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
  BinaryName = "$CTRD_DIR/usr/sbin/runc"
  Root = "$d/runc"
[plugins."io.containerd.internal.v1.opt"]
  path = "$d/opt"
[plugins."io.containerd.grpc.v1.cri".registry.mirrors."$BERTH_REGISTRY"]
  endpoint = ["http://$BERTH_REGISTRY"]
TOML
	run_containerd "$d" "$CTRD_DIR/usr/bin/containerd" "$CTRD_DIR/usr/bin:$CTRD_DIR/usr/sbin"
}

# start_containerd24: the current peer, containerd 2.4 with runc 1.4 built
# from the Go module proxy (config version 4; registry hosts from certs.d;
# NRI off: its socket is node-wide).
start_containerd24() {
	local d="$WORK/containerd24"
	containerd_net "$d" ctrdbn1 10.205.0.0/24
	mkdir -p "$d/certs.d/$BERTH_REGISTRY"
	printf 'server = "http://%s"\n[host."http://%s"]\n  capabilities = ["pull", "resolve"]\n' \
		"$BERTH_REGISTRY" "$BERTH_REGISTRY" >"$d/certs.d/$BERTH_REGISTRY/hosts.toml"
	cat >"$d/config.toml" <<TOML
version = 4
root = "$d/root"
state = "$d/state"
[debug]
  level = "warn"
[plugins.'io.containerd.server.v1.grpc']
  address = "$d/containerd.sock"
[plugins.'io.containerd.server.v1.ttrpc']
  address = "$d/containerd.sock.ttrpc"
[plugins.'io.containerd.internal.v1.opt']
  path = "$d/opt"
[plugins.'io.containerd.nri.v1.nri']
  disable = true
[plugins.'io.containerd.cri.v1.images']
  [plugins.'io.containerd.cri.v1.images'.pinned_images]
    sandbox = "$BERTH_REGISTRY/berth-test/pause:1"
  [plugins.'io.containerd.cri.v1.images'.registry]
    config_path = "$d/certs.d"
[plugins.'io.containerd.cri.v1.runtime']
  restrict_oom_score_adj = true
  [plugins.'io.containerd.cri.v1.runtime'.cni]
    bin_dirs = ["$(timed_cni_dir)"]
    conf_dir = "$d/net.d"
  [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
    BinaryName = "$PEER_DIR/bin/runc"
    Root = "$d/runc"
TOML
	run_containerd "$d" "$PEER_DIR/bin/containerd" "$PEER_DIR/bin"
}

now_ms() { date +%s%N | awk '{printf "%.3f", $1 / 1e6}'; }

# bench NAME: one line per pod on stdout, "NAME run_ms stop_remove_ms".
bench() {
	local name=$1 i t0 t1 t2 id
	for i in $(seq "$PODS"); do
		printf '{"metadata":{"name":"bench-%s","namespace":"bench","uid":"uid-%s-%s"},"linux":{"cgroup_parent":"/berth-bench-%s"}}' \
			"$i" "$name" "$i" "$name" >"$WORK/pod.json"
		t0=$(now_ms)
		id=$("$CRICTL" -r "unix://$SOCK" --timeout 60s runp "$WORK/pod.json")
		t1=$(now_ms)
		"$CRICTL" -r "unix://$SOCK" --timeout 60s stopp "$id" >/dev/null
		"$CRICTL" -r "unix://$SOCK" --timeout 60s rmp "$id" >/dev/null
		t2=$(now_ms)
		echo "$name $(echo "$t1 - $t0" | bc) $(echo "$t2 - $t1" | bc)"
	done
}

# bench_cri NAME SHIM_MATCH PAUSE_MATCH [SERVER_MATCH]: hack/benchcri against
# the running daemon (SERVER_MATCH: a node-wide helper process of the daemon's).
bench_cri() {
	local image="$BERTH_REGISTRY/e2e-test-images/busybox:1.29-2"
	"$CRICTL" -r "unix://$SOCK" -i "unix://$SOCK" --timeout 60s pull "$image" >/dev/null
	"$WORK/benchcri" -socket "$SOCK" -image "$image" -cgroup-parent "/berth-bench-cri-$1" -cycles "$PODS" \
		-daemon-pid "$DAEMON_PID" -shim "$2" -under "$WORK" -pause "$3" -server "${4:-}" | sed "s/^/$1 /"
}

# bench_density NAME SHIM_MATCH PAUSE_MATCH [SERVER_MATCH]: BENCH_DENSITY
# (default 110) pods started at once by 10 clients, measured, removed
# (hack/benchcri -density); lines "NAME metric ..." to $WORK/density.
bench_density() {
	"$WORK/benchcri" -socket "$SOCK" -image "$BERTH_REGISTRY/e2e-test-images/busybox:1.29-2" \
		-cgroup-parent "/berth-bench-dense-$1" -density "${BENCH_DENSITY:-110}" -clients 10 \
		-daemon-pid "$DAEMON_PID" -shim "$2" -under "$WORK" -pause "$3" -server "${4:-}" | sed "s/^/$1 /" >>"$WORK/density"
}

# percentiles FILE COLUMN: "p50 p90" of a column of numbers.
percentiles() {
	sort -n "$1" | awk '{v[NR] = $1} END {printf "%.1f %.1f", v[int((NR + 1) * 0.5)], v[int(NR * 0.9 + 0.5)]}'
}

[[ -x $BERTH_REPO/bin/berthd ]] || die "run make build first"
"$BERTH_REPO/hack/registry.sh" status >/dev/null || die "start the registry first: hack/registry.sh start && hack/test-images.sh"
(cd "$BERTH_REPO" && go build -o "$WORK/benchcri" ./hack/benchcri)
if [[ ${1:-} == soak ]]; then
	# make soak: Berth alone, 20 clients churning pods for BENCH_SOAK (10m).
	log "soak: 20 clients churn pods on berthd for ${BENCH_SOAK:-10m}"
	start_berthd
	"$CRICTL" -r "unix://$SOCK" -i "unix://$SOCK" --timeout 60s pull "$BERTH_REGISTRY/e2e-test-images/busybox:1.29-2" >/dev/null
	"$WORK/benchcri" -socket "$SOCK" -image "$BERTH_REGISTRY/e2e-test-images/busybox:1.29-2" -cgroup-parent /berth-bench-soak \
		-soak "${BENCH_SOAK:-10m}" -clients 20 -daemon-pid "$DAEMON_PID" -shim "berth-shim serve" -under "$WORK"
	exit 0
fi
fetch_peer_binaries
build_current_peer
log "$PODS pods on each runtime"
start_berthd
bench berth >"$WORK/results"
bench_cri berth "berth-shim serve" "berth-runtime pause" "berth-runtime serve" >"$WORK/cri"
bench_density berth "berth-shim serve" "berth-runtime pause" "berth-runtime serve"
grep -o 'cni_add=[0-9.]*[mµ]*s' "$WORK/berth/log" | sed 's/cni_add=//' >"$WORK/add" || true
grep -o 'cni_del=[0-9.]*[mµ]*s' "$WORK/berth/log" | sed 's/cni_del=//' >"$WORK/del" || true
stop_daemon
for c in containerd16 containerd24; do
	rm -f "$WORK/cni-times"
	"start_$c"
	bench "$c" >>"$WORK/results"
	# containerd's CNI time per pod and command: the sum of its plugin calls.
	awk '$1 == "ADD" {t[$2] += $3} END {for (id in t) print t[id] / 1000}' "$WORK/cni-times" >"$WORK/$c-add-ms"
	awk '$1 == "DEL" {t[$2] += $3} END {for (id in t) print t[id] / 1000}' "$WORK/cni-times" >"$WORK/$c-del-ms"
	# containerd runs a pause container (here the test image berth-test/pause:1,
	# a busybox sleep, not Kubernetes' pause binary) in every pod.
	bench_cri "$c" "containerd-shim-runc-v2" "sleep 2147483647" >>"$WORK/cri"
	bench_density "$c" "containerd-shim-runc-v2" "sleep 2147483647"
	stop_daemon
done

to_ms() { awk '/µs$/ {sub("µs", ""); print $1 / 1000; next} /ms$/ {sub("ms", ""); print $1; next} /s$/ {sub("s", ""); print $1 * 1000}' "$1"; }
for r in berth containerd16 containerd24; do
	awk -v r=$r '$1 == r {print $2}' "$WORK/results" >"$WORK/$r-run"
	awk -v r=$r '$1 == r {print $3}' "$WORK/results" >"$WORK/$r-stop"
	read -r rp50 rp90 <<<"$(percentiles "$WORK/$r-run")"
	read -r sp50 sp90 <<<"$(percentiles "$WORK/$r-stop")"
	printf 'pods %-12s RunPodSandbox p50 %6.1f ms p90 %6.1f ms | Stop+Remove p50 %6.1f ms p90 %6.1f ms\n' "$r" "$rp50" "$rp90" "$sp50" "$sp90"
	declare "run_$r=$rp50" "stop_$r=$sp50"
done
to_ms "$WORK/add" >"$WORK/add-ms"
to_ms "$WORK/del" >"$WORK/del-ms"
read -r ap50 ap90 <<<"$(percentiles "$WORK/add-ms")"
read -r dp50 dp90 <<<"$(percentiles "$WORK/del-ms")"
printf 'berth network share: CNI ADD p50 %.1f ms p90 %.1f ms, CNI DEL p50 %.1f ms p90 %.1f ms\n' "$ap50" "$ap90" "$dp50" "$dp90"
for c in containerd16 containerd24; do
	read -r cap50 cap90 <<<"$(percentiles "$WORK/$c-add-ms")"
	read -r cdp50 cdp90 <<<"$(percentiles "$WORK/$c-del-ms")"
	printf '%s network share: CNI ADD p50 %.1f ms p90 %.1f ms, CNI DEL p50 %.1f ms p90 %.1f ms (sum of its plugin calls per pod, timed by wrappers)\n' \
		"$c" "$cap50" "$cap90" "$cdp50" "$cdp90"
	run_c="run_$c" stop_c="stop_$c"
	printf 'pod start berth/%s p50: %.2fx; stop+remove: %.2fx\n' "$c" \
		"$(echo "$run_berth / ${!run_c}" | bc -l)" "$(echo "$stop_berth / ${!stop_c}" | bc -l)"
done

# Containers: "<runtime> <metric> p50 <ms> p90 <ms>" and RSS lines from benchcri.
cri() { awk -v r="$1" -v m="$2" -v f="$3" '$1 == r && $2 == m {print $f}' "$WORK/cri"; }
for c in containerd16 containerd24; do
	for m in pod_start stop_remove exec_sync list_container_stats_100 list_pod_stats_10; do
		printf '%-24s berth p50 %6.1f ms p90 %6.1f ms | %s p50 %6.1f ms p90 %6.1f ms | p50 ratio %.2fx\n' "$m" \
			"$(cri berth $m 4)" "$(cri berth $m 6)" "$c" "$(cri $c $m 4)" "$(cri $c $m 6)" \
			"$(echo "$(cri berth $m 4) / $(cri $c $m 4)" | bc -l)"
	done
done
printf 'memory with 10 pods: berthd RSS %d KiB, berth-shim RSS %d KiB PSS %d KiB (avg of %s)\n' \
	"$(cri berth daemon_rss_kib 3)" "$(cri berth shims 5)" "$(cri berth shims 7)" "$(cri berth shims 3)"
printf "berth's runtime server (berthd's child, answers ExecSync; one per node): RSS %d KiB PSS %d KiB\n" \
	"$(cri berth servers 5)" "$(cri berth servers 7)"
printf 'pause, in a pod sharing its PID namespace: berth RSS %d KiB PSS %d KiB (avg of %s)\n' \
	"$(cri berth pauses 5)" "$(cri berth pauses 7)" "$(cri berth pauses 3)"
for c in containerd16 containerd24; do
	printf '%s with 10 pods: containerd RSS %d KiB, containerd-shim-runc-v2 RSS %d KiB PSS %d KiB (avg of %s); pause container RSS %d KiB PSS %d KiB (avg of %s, one per pod)\n' \
		"$c" "$(cri $c daemon_rss_kib 3)" "$(cri $c shims 5)" "$(cri $c shims 7)" "$(cri $c shims 3)" \
		"$(cri $c pauses 5)" "$(cri $c pauses 7)" "$(cri $c pauses 3)"
done

# Density: "<runtime> <metric> ..." lines from benchcri -density.
den() { awk -v r="$1" -v m="$2" -v f="$3" '$1 == r && $2 == m {print $f}' "$WORK/density"; }
for r in berth containerd16 containerd24; do
	printf 'density %-12s %s pods from 10 clients: errors %s, start-all %.0f ms, per pod p50 %.1f ms p99 %.1f ms; relist p50 %.1f ms; stats p50 %.1f ms (containers) %.1f ms (pods); memory of all %s processes RSS %d KiB PSS %d KiB; stop+remove-all %.0f ms; left: %s pods %s containers %s shims\n' \
		"$r" "$(den $r density_pods 3)" "$(den $r density_pods 7)" "$(den $r density_start_wall_ms 3)" \
		"$(den $r density_pod_start 4)" "$(den $r density_pod_start 6)" "$(den $r density_relist 4)" \
		"$(den $r density_list_container_stats 4)" "$(den $r density_list_pod_stats 4)" "$(den $r density_runtime_procs 3)" \
		"$(den $r density_runtime_procs 5)" "$(den $r density_runtime_procs 7)" "$(den $r density_remove_wall_ms 3)" \
		"$(den $r density_left_pods 3)" "$(den $r density_left_pods 5)" "$(den $r density_left_pods 7)"
done
for c in containerd16 containerd24; do
	printf 'density berth/%s: start-all %.2fx, memory (PSS) %.2fx, memory (RSS) %.2fx\n' "$c" \
		"$(echo "$(den berth density_start_wall_ms 3) / $(den $c density_start_wall_ms 3)" | bc -l)" \
		"$(echo "$(den berth density_runtime_procs 7) / $(den $c density_runtime_procs 7)" | bc -l)" \
		"$(echo "$(den berth density_runtime_procs 5) / $(den $c density_runtime_procs 5)" | bc -l)"
done
