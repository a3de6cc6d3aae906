#!/usr/bin/env bash
# hack/install.sh install | uninstall — Berth on a node (make install, make
# uninstall), under $DESTDIR (empty: the node itself) and $PREFIX
# (/usr/local).
#
# install puts bin/berthd, berth-shim and berth-runtime in $PREFIX/bin and
# berth.service in $PREFIX/lib/systemd/system; and, only where absent, a
# default /etc/berth/berth.toml, /etc/crictl.yaml pointing at Berth's socket,
# and the CNI plugins Berth's default network uses in /opt/cni/bin (copied
# from $CNI_BIN_DIR, or built from the Go module proxy). Each file it writes
# is listed with its checksum in /etc/berth/installed. On a node whose PID 1
# is systemd (and no DESTDIR) it reloads systemd and enables and starts the
# service; a second install restarts it (the pods keep running).
#
# uninstall stops and disables the service, then removes each file of the
# list that is unchanged since install (a config you edited stays, and is
# named). Pods and containers are left running, as a runtime's package
# removal leaves them: remove them first (crictl rmp -fa) if they should go.
# The state in /var/lib/berth and /run/berth stays.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

DESTDIR=${DESTDIR:-}
PREFIX=${PREFIX:-/usr/local}
MANIFEST="$DESTDIR/etc/berth/installed"
UNIT="$DESTDIR$PREFIX/lib/systemd/system/berth.service"
CNI_PLUGINS=(bridge host-local loopback portmap)

# systemd_here: systemd is PID 1 and the install is for this node.
systemd_here() { [[ -z $DESTDIR && -d /run/systemd/system ]]; }

# put SRC DST MODE: install a file and list it in the manifest.
put() {
	install -D -m "$3" "$1" "$2"
	note "$2"
}

note() {
	{ awk -v p="$1" '$2 != p' "$MANIFEST" 2>/dev/null || true; } >"$MANIFEST.new"
	sha256sum "$1" >>"$MANIFEST.new"
	mv "$MANIFEST.new" "$MANIFEST"
}

# listed PATH: the manifest's line of PATH, if any.
listed() { awk -v p="$1" '$2 == p' "$MANIFEST" 2>/dev/null || true; }

# absent_then PATH: whether PATH is to be written (absent, or written by a
# former install and unchanged since).
absent_then() {
	[[ ! -e $1 ]] || { [[ -n $(listed "$1") ]] && listed "$1" | sha256sum -c --status; }
}

# have_all DIR NAME...: whether DIR holds every plugin named.
have_all() {
	local dir=$1 p
	shift
	for p; do [[ -x $dir/$p ]] || return 1; done
}

install_cni() {
	local dir="$DESTDIR/opt/cni/bin" missing=() p
	for p in "${CNI_PLUGINS[@]}"; do
		absent_then "$dir/$p" && missing+=("$p")
	done
	[[ ${#missing[@]} -eq 0 ]] && return
	if [[ $dir != "$CNI_BIN_DIR" ]] && have_all "$CNI_BIN_DIR" "${missing[@]}"; then
		for p in "${missing[@]}"; do put "$CNI_BIN_DIR/$p" "$dir/$p" 0755; done
		return
	fi
	log "building CNI plugins $CNI_PLUGINS_VERSION: ${missing[*]}"
	local build="$BERTH_CACHE/cni-install" pkgs=() m=github.com/containernetworking/plugins/plugins
	for p in "${missing[@]}"; do
		case $p in
		host-local) pkgs+=("$m/ipam/host-local") ;;
		portmap) pkgs+=("$m/meta/portmap") ;;
		*) pkgs+=("$m/main/$p") ;;
		esac
	done
	rm -rf "$build"
	CGO_ENABLED=0 go_build_tool cni-plugins github.com/containernetworking/plugins "$CNI_PLUGINS_VERSION" "$build" "${pkgs[@]}"
	for p in "${missing[@]}"; do put "$build/$p" "$dir/$p" 0755; done
}

do_install() {
	[[ -x $BERTH_REPO/bin/berthd ]] || die "run make build first"
	mkdir -p "$(dirname "$MANIFEST")"
	local b
	for b in berthd berth-shim berth-runtime; do
		put "$BERTH_REPO/bin/$b" "$DESTDIR$PREFIX/bin/$b" 0755
	done
	local tmp
	tmp=$(mktemp -d)
	sed "s|/usr/local/bin/berthd|$PREFIX/bin/berthd|" "$BERTH_REPO/cmd/berthd/berth.service" >"$tmp/berth.service"
	put "$tmp/berth.service" "$UNIT" 0644
	if absent_then "$DESTDIR/etc/berth/berth.toml"; then
		"$BERTH_REPO/bin/berthd" config default >"$tmp/berth.toml"
		put "$tmp/berth.toml" "$DESTDIR/etc/berth/berth.toml" 0644
	fi
	if absent_then "$DESTDIR/etc/crictl.yaml"; then
		printf '# Berth: crictl talks to berthd (make install wrote this; make uninstall removes it unless changed)\nruntime-endpoint: unix:///run/berth/berth.sock\nimage-endpoint: unix:///run/berth/berth.sock\ntimeout: 30\n' >"$tmp/crictl.yaml"
		put "$tmp/crictl.yaml" "$DESTDIR/etc/crictl.yaml" 0644
	fi
	rm -rf "$tmp"
	install_cni
	if systemd_here; then
		systemctl daemon-reload
		systemctl enable berth.service
		systemctl restart berth.service
		log "berth.service enabled and running"
	fi
	log "installed under ${DESTDIR:-/} (list: $MANIFEST)"
}

do_uninstall() {
	if systemd_here && systemctl cat berth.service >/dev/null 2>&1; then
		systemctl disable --now berth.service
	fi
	[[ -f $MANIFEST ]] || die "nothing installed by hack/install.sh under ${DESTDIR:-/} ($MANIFEST is missing)"
	local sum path kept=0
	while read -r sum path; do
		[[ -e $path ]] || continue
		if echo "$sum  $path" | sha256sum -c --status; then
			rm -f "$path"
		else
			log "keeping $path: changed since install"
			kept=1
		fi
	done <"$MANIFEST"
	rm -f "$MANIFEST"
	rmdir "$DESTDIR/etc/berth" 2>/dev/null || true
	if systemd_here; then systemctl daemon-reload; fi
	log "uninstalled from ${DESTDIR:-/}$([[ $kept == 1 ]] && echo ' (changed files kept)')"
}

case "${1:-}" in
install) do_install ;;
uninstall) do_uninstall ;;
*) die "usage: hack/install.sh install | uninstall" ;;
esac
