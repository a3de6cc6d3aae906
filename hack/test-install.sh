#!/usr/bin/env bash
# hack/test-install.sh — make install and make uninstall into a temp DESTDIR:
# every file in place (binaries, unit, default config, crictl.yaml, CNI
# plugins), a second install changes nothing but what it must, and
# uninstall removes all but a config changed since.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

D=$(mktemp -d /tmp/berth-install.XXXXXX)
trap 'rm -rf "$D"' EXIT
fail() { die "test-install: $*"; }

DESTDIR=$D "$BERTH_REPO/hack/install.sh" install
for b in berthd berth-shim berth-runtime; do
	cmp -s "$BERTH_REPO/bin/$b" "$D/usr/local/bin/$b" || fail "$b not installed"
	[[ -x $D/usr/local/bin/$b ]] || fail "$b not executable"
done
unit="$D/usr/local/lib/systemd/system/berth.service"
grep -qx 'Type=notify' "$unit" || fail "the unit is not Type=notify"
grep -qx 'ExecStart=/usr/local/bin/berthd --log-format journald' "$unit" || fail "the unit does not start berthd from the prefix"
grep -qx 'KillMode=process' "$unit" || fail "a restart of the unit would kill the pods"
cmp -s <("$BERTH_REPO/bin/berthd" config default) "$D/etc/berth/berth.toml" || fail "no default config"
grep -qx 'runtime-endpoint: unix:///run/berth/berth.sock' "$D/etc/crictl.yaml" || fail "crictl.yaml does not point at berthd"
for p in bridge host-local loopback portmap; do
	[[ -x $D/opt/cni/bin/$p ]] || fail "CNI plugin $p missing"
done
lines=$(wc -l <"$D/etc/berth/installed")

DESTDIR=$D "$BERTH_REPO/hack/install.sh" install
[[ $(wc -l <"$D/etc/berth/installed") == "$lines" ]] || fail "a second install listed files twice"

echo '# changed by hand' >>"$D/etc/berth/berth.toml"
DESTDIR=$D "$BERTH_REPO/hack/install.sh" uninstall
left=$(cd "$D" && find . -type f | sort)
[[ $left == "./etc/berth/berth.toml" ]] || fail "uninstall left: $left (want only the changed config)"
log "test-install: install, reinstall and uninstall under a DESTDIR work"
