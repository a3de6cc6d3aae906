#!/usr/bin/env bash
# hack/test-images.sh — builds the test images (see hack/testimages/main.go for
# the list) from Debian binaries, without a Docker engine, and pushes them to
# the local registry ($BERTH_REGISTRY, started by hack/registry.sh). Idempotent:
# when neither the inputs nor the registry changed it only checks.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

WORK="$BERTH_CACHE/test-images"
DEBS="$WORK/debs"
STAGE="$WORK/stage"
LIST="$BERTH_CACHE/test-images.txt"
DEB_PACKAGES=(busybox nginx nginx-common)

inputs_hash() {
	cat "$BERTH_REPO"/hack/testimages/*.go "$BERTH_REPO"/hack/testimages/nnp/*.go "$0" \
		<(ls "$DEBS"/*.deb 2>/dev/null) | sha256sum | cut -c1-16
}

fetch_debs() {
	mkdir -p "$DEBS"
	local missing=()
	for p in "${DEB_PACKAGES[@]}"; do
		compgen -G "$DEBS/${p}_*.deb" >/dev/null || missing+=("$p")
	done
	[[ ${#missing[@]} -eq 0 ]] && return
	log "downloading ${missing[*]}"
	(cd "$DEBS" && { apt-get download "${missing[@]}" 2>/dev/null || { apt-get update -qq && apt-get download "${missing[@]}"; }; }) >/dev/null
}

# copy_with_libs ROOT FILE...: copy binaries and the shared libraries they
# need (resolved by the host's loader; Debian 12 host, Debian 12 binaries).
copy_with_libs() {
	local root=$1
	shift
	local f lib
	for f in "$@"; do
		install -D -m 0755 "$f" "$root/${f#"$DEBS/root"}"
		while read -r lib; do
			[[ -e "$root$lib" ]] || install -D -m 0755 "$lib" "$root$lib"
		done < <(ldd "$f" | awk '/=> \//{print $3} /^\t\/lib/{print $1}')
	done
}

stage_busybox() {
	local root="$STAGE/busybox"
	rm -rf "$root"
	mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,usr/local/bin,etc,tmp,root,var/run,var/www,proc,sys,dev,home}
	chmod 1777 "$root/tmp"
	copy_with_libs "$root" "$DEBS/root/bin/busybox"
	local applet
	for applet in $("$root/bin/busybox" --list-full); do
		[[ -e "$root/$applet" ]] || ln "$root/bin/busybox" "$root/$applet"
	done
	# busybox lacks pgrep (exec timeout spec) and ipcs (host IPC spec).
	rm -f "$root/usr/bin/pgrep" "$root/usr/bin/ipcs"
	copy_with_libs "$root" /usr/bin/pgrep /usr/bin/ipcs
	printf '%s\n' 'root:x:0:0:root:/root:/bin/sh' 'www-data:x:33:33:www-data:/var/www:/usr/sbin/nologin' \
		'nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin' >"$root/etc/passwd"
	printf '%s\n' 'root:x:0:' 'www-data:x:33:' 'users:x:100:' 'nogroup:x:65534:' >"$root/etc/group"
	echo "hosts: files dns" >"$root/etc/nsswitch.conf"
}

stage_nginx() {
	local root="$STAGE/nginx"
	rm -rf "$root"
	mkdir -p "$root"/{etc/nginx,usr/share/nginx/html,var/log/nginx,var/lib/nginx/body,var/run}
	copy_with_libs "$root" "$DEBS/root/usr/sbin/nginx"
	cp "$DEBS/root/etc/nginx/mime.types" "$root/etc/nginx/"
	echo "<html><body>Berth test nginx</body></html>" >"$root/usr/share/nginx/html/index.html"
}

stage_nonewprivs() {
	local root="$STAGE/nonewprivs"
	rm -rf "$root"
	mkdir -p "$root/usr/local/bin"
	(cd "$BERTH_REPO" && CGO_ENABLED=0 go build -trimpath -o "$root/usr/local/bin/nnp" ./hack/testimages/nnp)
	chmod 4755 "$root/usr/local/bin/nnp"
}

registry_has_images() {
	curl -fsS -o /dev/null --max-time 5 -H 'Accept: application/vnd.docker.distribution.manifest.v2+json' \
		"http://$BERTH_REGISTRY/v2/e2e-test-images/busybox/manifests/1.29-2" 2>/dev/null
}

fetch_debs
hash=$(inputs_hash)
if stamp_ok test-images "$hash" && registry_has_images && [[ -s $LIST ]]; then
	exit 0
fi
log "building test images"
rm -rf "$DEBS/root"
for deb in "$DEBS"/*.deb; do dpkg-deb -x "$deb" "$DEBS/root"; done
stage_busybox
stage_nginx
stage_nonewprivs
(cd "$BERTH_REPO" && go run ./hack/testimages --registry "$BERTH_REGISTRY" --stage "$STAGE" --list "$LIST")
stamp_set test-images "$hash"
log "pushed $(wc -l <"$LIST") image references to $BERTH_REGISTRY (list: $LIST)"
