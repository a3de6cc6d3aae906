#!/usr/bin/env bash
# hack/selinux-policy.sh — builds the SELinux policy that hack/vm.sh's VM loads
# with VM_LSM=selinux: Debian's reference policy (selinux-policy-default) plus
# its container module, which Debian ships in source (selinux-policy-src) but
# does not build, and hack/selinux/berth_vm.* (how the VM's init starts
# berthd, how the host's files shared over 9p are labelled). Nothing is installed or activated on this host: the packages are
# unpacked under $BERTH_CACHE/vm/selinux and the policy store is built there
# with semodule's alternate root. Prints the dir that the VM mounts on
# /etc/selinux (config, default/policy/policy.33, default/contexts/...).
# Cached: a second run costs nothing until this script or a module changes.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

[[ $(id -u) -eq 0 ]] || die "run as root"
SE_DIR="$BERTH_CACHE/vm/selinux"
TOOLS="$SE_DIR/tools"   # the unpacked packages
ROOT="$SE_DIR/root"     # the alternate root: etc/selinux, var/lib/selinux
ETC="$ROOT/etc/selinux" # what the VM mounts on /etc/selinux
POLICY_VERSION=2:2.20221101-9
PACKAGES=(selinux-policy-default selinux-policy-dev selinux-policy-src policycoreutils semodule-utils selinux-utils checkpolicy m4)
MODULES=("$BERTH_REPO/hack/selinux/berth_vm.te") # built with the devel Makefile
CIL=("$BERTH_REPO/hack/selinux/berth_vm_fs.cil")   # installed as they are

unpack() {
	stamp_ok selinux-tools "$POLICY_VERSION ${PACKAGES[*]}" && return
	log "fetching ${PACKAGES[*]} (unpacked, not installed)"
	rm -rf "$TOOLS"
	mkdir -p "$TOOLS"
	local tmp deb
	tmp=$(mktemp -d)
	(cd "$tmp" && apt-get download -o APT::Sandbox::User=root "${PACKAGES[@]}" >/dev/null) || { rm -rf "$tmp"; die "apt-get download failed"; }
	ls "$tmp"/selinux-policy-default_*"${POLICY_VERSION#*:}"_all.deb >/dev/null 2>&1 || { rm -rf "$tmp"; die "selinux-policy-default is not $POLICY_VERSION"; }
	for deb in "$tmp"/*.deb; do dpkg-deb -x "$deb" "$TOOLS"; done
	rm -rf "$tmp"
	mkdir -p "$TOOLS/src"
	tar -C "$TOOLS/src" -xf "$TOOLS/usr/src/selinux-policy-src.tar.zst"
	stamp_set selinux-tools "$POLICY_VERSION ${PACKAGES[*]}"
}

# build_modules DIR: the container module and ours, as policy packages in DIR,
# with the devel Makefile of selinux-policy-dev (MCS, as the default policy).
build_modules() {
	local dir=$1 dev="$TOOLS/usr/share/selinux/devel/include"
	cp "$TOOLS/src/selinux-policy-src/policy/modules/services/container."{te,fc} "${MODULES[@]}" "$dir/"
	make -s -C "$dir" -f "$dev/Makefile" HEADERDIR="$dev" NAME=default TYPE=mcs AWK=awk M4="$TOOLS/usr/bin/m4" \
		CHECKMODULE="$TOOLS/usr/bin/checkmodule -M" SEMOD_PKG="$TOOLS/usr/bin/semodule_package" >/dev/null ||
		die "building the policy modules failed"
}

build_policy() {
	local tmp m mods=() share="$TOOLS/usr/share/selinux/default"
	log "building the SELinux policy (Debian's default policy and its container module)"
	tmp=$(mktemp -d)
	build_modules "$tmp"
	rm -rf "$ROOT"
	mkdir -p "$ETC" "$ROOT/var/lib/selinux"
	cp -a "$TOOLS/etc/selinux/default" "$ETC/"
	# libsemanage reads <root>/etc/selinux/semanage.conf: the helpers it runs
	# are the unpacked ones.
	cat >"$ETC/semanage.conf" <<CONF
module-store = direct
expand-check = 0
compiler-directory = $TOOLS/usr/libexec/selinux/hll
[sefcontext_compile]
path = $TOOLS/usr/sbin/sefcontext_compile
args = \$@
[end]
[setfiles]
path = $TOOLS/sbin/setfiles
args = -q -c \$@ \$<
[end]
CONF
	printf 'SELINUX=enforcing\nSELINUXTYPE=default\n' >"$ETC/config"
	for m in $(cat "$share/.modules"); do mods+=("-i$share/$m.pp.bz2"); done
	for m in "$tmp"/*.pp "${CIL[@]}"; do mods+=("-i$m"); done
	# The user-less warnings of genhomedircon (users of other hosts) are noise.
	"$TOOLS/usr/sbin/semodule" -p "$ROOT" -s default -n -X 100 "${mods[@]}" 2>&1 | grep -v 'not in password file' >&2 || true
	rm -rf "$tmp"
	[[ -s $ETC/default/policy/policy.33 ]] || die "semodule built no policy"
	touch "$ROOT/built"
}

policy_stale() {
	local m
	[[ -f $ROOT/built && $ROOT/built -nt $0 ]] || return 0
	for m in "${MODULES[@]}" "${CIL[@]}"; do [[ $m -nt $ROOT/built ]] && return 0; done
	return 1
}

unpack
policy_stale && build_policy
echo "$ETC"
