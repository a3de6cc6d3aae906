#!/usr/bin/env bash
# hack/critest.sh — runs critest v1.37.0 against a berthd of its own (temp root,
# state, socket, CNI conf dir, bridge name, NRI socket: critest's 13 NRI specs
# connect there as a plugin, -nri-socket), writes JUnit and JSON reports,
# prints "critest: N passed, M failed, K skipped", and fails when a spec failed
# or a spec named in test/critest/must-pass.txt did not pass.
#
# Env: BERTHD (default bin/berthd), CRITEST (the critest binary, default the cache's), CRITEST_FOCUS (ginkgo focus regexp),
# CRITEST_SKIP (ginkgo skip regexp; default the one spec that cannot pass offline), CRITEST_ARGS (extra critest args),
# CRITEST_REPORT_DIR (default _output/critest), CRITEST_MUST_PASS (ratchet file),
# BERTH_REGISTRY_PROVIDED (set: the registry with the test images already
# serves on $BERTH_REGISTRY, as the host's does in hack/vm.sh's VM).
set -euo pipefail
source "$(dirname "$0")/lib.sh"

[[ $(id -u) -eq 0 ]] || die "run as root"
BERTHD="${BERTHD:-$BERTH_REPO/bin/berthd}" # hack/test-vm-selinux.sh runs a labelled copy
CRITEST="${CRITEST:-$BERTH_BIN/critest}"
MUST_PASS="${CRITEST_MUST_PASS:-$BERTH_REPO/test/critest/must-pass.txt}"
# "public image with digest" pulls an upstream digest that no offline registry
# can serve (a digest cannot be rebuilt): skipped, not counted as a failure.
SKIP="${CRITEST_SKIP-public image with digest should be pulled and removed}"
REPORT_DIR="${CRITEST_REPORT_DIR:-$BERTH_REPO/_output/critest}"
[[ -x $BERTHD ]] || die "$BERTHD is missing: run make build first"
[[ -x $CRITEST ]] || die "$CRITEST is missing: run hack/install-deps.sh first"
[[ -f $MUST_PASS ]] || die "$MUST_PASS is missing"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/berth-critest.XXXXXX")
chmod 711 "$WORK" # user-namespaced pods' roots walk the path to their rootfs
SOCK="$WORK/state/berth.sock"
NRI_SOCK="$WORK/nri.sock"
BERTHD_PID=""
STARTED_REGISTRY=""
SHM_BEFORE="$WORK/shm-before"
mkdir -p "$REPORT_DIR" "$WORK/net.d" "$WORK/tmp"

shm_ids() { ipcs -m 2>/dev/null | awk '$1 ~ /^0x/ {print $2}' | sort; }

BRIDGE=berthct0
FORWARD_BEFORE=$(cat /proc/sys/net/ipv4/ip_forward)
PORTMAP_BEFORE=no
portmap_chains_present && PORTMAP_BEFORE=yes
OWN_CGROUP_BEFORE=no
own_cgroup_present && OWN_CGROUP_BEFORE=yes

cleanup() {
	local rc=$?
	if [[ -n $BERTHD_PID ]] && kill -0 "$BERTHD_PID" 2>/dev/null; then
		# Pods a failed spec left behind: removing them detaches their network.
		CRI_CONFIG_FILE=/dev/null "$BERTH_BIN/crictl" -r "unix://$SOCK" --timeout 30s rmp -fa >/dev/null 2>&1 || true
		kill -TERM "$BERTHD_PID" 2>/dev/null || true
		for _ in $(seq 100); do kill -0 "$BERTHD_PID" 2>/dev/null || break; sleep 0.1; done
		kill -KILL "$BERTHD_PID" 2>/dev/null || true
	fi
	# SysV shm segments created during the run (HostIpc specs leave them).
	if [[ -f $SHM_BEFORE ]]; then
		comm -13 "$SHM_BEFORE" <(shm_ids) | while read -r id; do ipcrm -m "$id" 2>/dev/null || true; done
	fi
	# Unmount only what lies under our own work dir, deepest first.
	awk -v w="$WORK/" 'index($5, w) == 1 {print $5}' /proc/self/mountinfo | sort -r | while read -r m; do umount -l "$m" 2>/dev/null || true; done
	[[ -d /sys/class/net/$BRIDGE ]] && ip link del "$BRIDGE"
	echo "$FORWARD_BEFORE" >/proc/sys/net/ipv4/ip_forward # the bridge plugin turns it on
	[[ $PORTMAP_BEFORE == yes ]] || remove_portmap_chains
	[[ $OWN_CGROUP_BEFORE == yes ]] || remove_own_cgroup
	[[ -n $STARTED_REGISTRY ]] && "$BERTH_REPO/hack/registry.sh" stop
	[[ -f $WORK/berthd.log ]] && cp "$WORK/berthd.log" "$REPORT_DIR/berthd.log"
	rm -rf "$WORK"
	exit $rc
}
trap cleanup EXIT

write_config() {
	cat >"$WORK/berth.toml" <<TOML
[cni]
conf_dir = "$WORK/net.d"
bin_dirs = ["$CNI_BIN_DIR"]
default_bridge = "$BRIDGE"
default_subnet = "10.89.0.0/16"

# critest's NRI specs connect to this socket as a plugin (-nri-socket);
# its sync specs hold a plugin about 2 s, past the 2 s default.
[nri]
socket_path = "$NRI_SOCK"
plugin_path = "$WORK/nri/plugins"
plugin_config_path = "$WORK/nri/conf.d"
plugin_request_timeout = "10s"
TOML
	# Mirror critest's registries to the local test registry once berthd
	# supports registry mirrors (the image service).
	if "$BERTHD" config default | grep -q '^# \[registries\.'; then
		for host in registry.k8s.io k8s.gcr.io gcr.io public.ecr.aws; do
			printf '\n[registries."%s"]\nmirrors = ["http://%s"]\nmirrors_only = true\n' "$host" "$BERTH_REGISTRY" >>"$WORK/berth.toml"
		done
		[[ -n ${BERTH_REGISTRY_PROVIDED:-} ]] && return # a VM run: the host serves the images
		if ! "$BERTH_REPO/hack/registry.sh" status >/dev/null; then
			"$BERTH_REPO/hack/registry.sh" start
			STARTED_REGISTRY=1
		fi
		"$BERTH_REPO/hack/test-images.sh"
	fi
}

start_berthd() {
	"$BERTHD" --config "$WORK/berth.toml" --root "$WORK/root" --state "$WORK/state" --listen "$SOCK" \
		--log-level debug >"$WORK/berthd.log" 2>&1 &
	BERTHD_PID=$!
	for _ in $(seq 150); do
		[[ -S $SOCK ]] && return
		kill -0 "$BERTHD_PID" 2>/dev/null || break
		sleep 0.1
	done
	cat "$WORK/berthd.log" >&2
	die "berthd did not start"
}

write_config
start_berthd
shm_ids >"$SHM_BEFORE"

# critest runs "sudo apparmor_parser" on hosts with AppArmor; as root, sudo
# has nothing to add, and a host without it gets a stand-in.
if ! command -v sudo >/dev/null; then
	mkdir -p "$WORK/bin"
	printf '#!/bin/sh\nexec "$@"\n' >"$WORK/bin/sudo"
	chmod +x "$WORK/bin/sudo"
	export PATH="$WORK/bin:$PATH"
fi

log "running critest (reports in $REPORT_DIR)"
set +e
# shellcheck disable=SC2086
TMPDIR="$WORK/tmp" "$CRITEST" \
	--runtime-endpoint "unix://$SOCK" --image-endpoint "unix://$SOCK" -nri-socket "$NRI_SOCK" \
	-ginkgo.junit-report="$REPORT_DIR/junit.xml" -ginkgo.json-report="$REPORT_DIR/report.json" \
	-ginkgo.timeout=60m -ginkgo.no-color ${CRITEST_FOCUS:+-ginkgo.focus="$CRITEST_FOCUS"} ${SKIP:+-ginkgo.skip="$SKIP"} ${CRITEST_ARGS:-} \
	>"$REPORT_DIR/critest.log" 2>&1
critest_rc=$?
set -e
[[ -s $REPORT_DIR/report.json ]] || { tail -30 "$REPORT_DIR/critest.log" >&2; die "critest wrote no report (exit $critest_rc)"; }

# One line per spec: state<TAB>full name (container texts and leaf text).
jq -r '.[].SpecReports[] | select(.LeafNodeType == "It")
	| [.State, ((.ContainerHierarchyTexts + [.LeafNodeText]) | join(" "))] | @tsv' \
	"$REPORT_DIR/report.json" >"$REPORT_DIR/specs.tsv"

passed=$(awk -F'\t' '$1 == "passed"' "$REPORT_DIR/specs.tsv" | wc -l)
skipped=$(awk -F'\t' '$1 == "skipped" || $1 == "pending"' "$REPORT_DIR/specs.tsv" | wc -l)
failed=$(awk -F'\t' '$1 != "passed" && $1 != "skipped" && $1 != "pending"' "$REPORT_DIR/specs.tsv" | wc -l)
awk -F'\t' '$1 != "passed" && $1 != "skipped" && $1 != "pending" {print "  " $1 ": " $2}' "$REPORT_DIR/specs.tsv" \
	>"$REPORT_DIR/failed.txt"

echo "critest: $passed passed, $failed failed, $skipped skipped"
if [[ -s $REPORT_DIR/failed.txt ]]; then
	echo "specs that did not pass (see $REPORT_DIR/critest.log):"
	cat "$REPORT_DIR/failed.txt"
fi

# The ratchet: every spec in must-pass.txt must have passed.
must=0
missed=0
while IFS= read -r spec; do
	[[ -z $spec || $spec == \#* ]] && continue
	must=$((must + 1))
	if ! awk -F'\t' -v s="$spec" '$1 == "passed" && $2 == s {found=1} END {exit !found}' "$REPORT_DIR/specs.tsv"; then
		echo "must-pass spec did not pass: $spec"
		missed=$((missed + 1))
	fi
done <"$MUST_PASS"
echo "must-pass: $((must - missed)) passed, $missed failed"
[[ $missed -eq 0 && $failed -eq 0 ]]
