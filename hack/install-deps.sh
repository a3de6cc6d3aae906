#!/usr/bin/env bash
# Installs everything Berth's build and tests need on a Debian 12 machine, as
# root, idempotently: a second run only checks and costs seconds.
#   - Debian packages (only when missing);
#   - CNI plugins built from the containernetworking/plugins module into /opt/cni/bin;
#   - crictl and critest from the cri-tools module, staticcheck, and the
#     distribution registry, into $BERTH_BIN.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

[[ $(id -u) -eq 0 ]] || die "run as root"
command -v go >/dev/null || die "Go is missing (expected in /usr/local/go/bin)"

# Packages that start no service on install.
PACKAGES=(
	gcc libc6-dev pkg-config libseccomp-dev    # cgo: libcontainer, seccomp
	iptables iproute2 conntrack socat iputils-ping  # pod networking, port forwarding
	procps util-linux psmisc                   # tests inspect processes and mounts
	jq curl bc ca-certificates xz-utils zstd   # scripts
	apparmor                                   # apparmor_parser: the default profile's compile test
	qemu-system-x86                            # hack/vm.sh: cgroup v2 and AppArmor tests in a VM
)

install_packages() {
	local missing=()
	for p in "${PACKAGES[@]}"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
	done
	[[ ${#missing[@]} -eq 0 ]] && return
	log "installing Debian packages: ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

install_cni_plugins() {
	if stamp_ok cni-plugins "$CNI_PLUGINS_VERSION" && [[ -x "$CNI_BIN_DIR/bridge" && -x "$CNI_BIN_DIR/loopback" ]]; then
		return
	fi
	log "building CNI plugins $CNI_PLUGINS_VERSION into $CNI_BIN_DIR"
	local m=github.com/containernetworking/plugins/plugins
	CGO_ENABLED=0 go_build_tool cni-plugins github.com/containernetworking/plugins "$CNI_PLUGINS_VERSION" "$CNI_BIN_DIR" \
		$m/main/bridge $m/main/loopback $m/main/ptp $m/main/macvlan $m/main/ipvlan $m/main/host-device $m/main/vlan \
		$m/ipam/host-local $m/ipam/static \
		$m/meta/portmap $m/meta/bandwidth $m/meta/firewall $m/meta/tuning
	stamp_set cni-plugins "$CNI_PLUGINS_VERSION"
}

install_cri_tools() {
	if stamp_ok cri-tools "$CRI_TOOLS_VERSION" && [[ -x "$BERTH_BIN/crictl" && -x "$BERTH_BIN/critest" ]]; then
		return
	fi
	log "building crictl and critest $CRI_TOOLS_VERSION"
	go_build_tool cri-tools sigs.k8s.io/cri-tools "$CRI_TOOLS_VERSION" "$BERTH_BIN" sigs.k8s.io/cri-tools/cmd/crictl
	# critest is a test binary: its test-only imports must be in the scratch module too.
	(cd "$BERTH_CACHE/src/cri-tools" && go get -t "sigs.k8s.io/cri-tools/cmd/critest@$CRI_TOOLS_VERSION" >/dev/null &&
		go test -c -trimpath -o "$BERTH_BIN/critest" sigs.k8s.io/cri-tools/cmd/critest)
	stamp_set cri-tools "$CRI_TOOLS_VERSION"
}

install_staticcheck() {
	stamp_ok staticcheck "$STATICCHECK_VERSION" && [[ -x "$BERTH_BIN/staticcheck" ]] && return
	log "building staticcheck $STATICCHECK_VERSION"
	go_build_tool staticcheck honnef.co/go/tools "$STATICCHECK_VERSION" "$BERTH_BIN" honnef.co/go/tools/cmd/staticcheck
	stamp_set staticcheck "$STATICCHECK_VERSION"
}

install_registry() {
	stamp_ok registry "$DISTRIBUTION_VERSION" && [[ -x "$BERTH_BIN/registry" ]] && return
	log "building the distribution registry $DISTRIBUTION_VERSION"
	go_build_tool registry github.com/distribution/distribution/v3 "$DISTRIBUTION_VERSION" "$BERTH_BIN" \
		github.com/distribution/distribution/v3/cmd/registry
	stamp_set registry "$DISTRIBUTION_VERSION"
}

mkdir -p "$BERTH_BIN"
install_packages
install_cni_plugins
install_cri_tools
install_staticcheck
install_registry
log "dependencies ready (tools in $BERTH_BIN, CNI plugins in $CNI_BIN_DIR)"
