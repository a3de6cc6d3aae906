#!/usr/bin/env bash
# hack/registry.sh start|stop|status — the local OCI test registry (CNCF
# distribution, built by install-deps.sh) on $BERTH_REGISTRY (loopback only),
# storing under $BERTH_CACHE/registry. Started with a PID file and stopped by
# that PID only.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

DATA="$BERTH_CACHE/registry"
PIDFILE="$BERTH_CACHE/registry.pid"
LOGFILE="$BERTH_CACHE/registry.log"
CONFIG="$BERTH_CACHE/registry.yml"

case "$BERTH_REGISTRY" in
127.*:* | localhost:*) ;;
*) die "BERTH_REGISTRY=$BERTH_REGISTRY must be a loopback host:port" ;;
esac

# our_pid prints the registry's PID when the PID file names a live process
# running our registry binary.
our_pid() {
	[[ -f $PIDFILE ]] || return 1
	local pid
	pid=$(cat "$PIDFILE")
	[[ $pid =~ ^[0-9]+$ ]] || return 1
	[[ "$(readlink "/proc/$pid/exe" 2>/dev/null)" == "$BERTH_BIN/registry" ]] || return 1
	echo "$pid"
}

healthy() { curl -fsS -o /dev/null --max-time 2 "http://$BERTH_REGISTRY/v2/" 2>/dev/null; }

start() {
	if our_pid >/dev/null && healthy; then
		return
	fi
	[[ -x $BERTH_BIN/registry ]] || die "registry binary missing: run hack/install-deps.sh"
	if healthy; then
		die "something else answers on $BERTH_REGISTRY; set BERTH_REGISTRY to a free loopback port"
	fi
	mkdir -p "$DATA"
	cat >"$CONFIG" <<YML
version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $DATA
  delete:
    enabled: true
http:
  addr: $BERTH_REGISTRY
YML
	OTEL_TRACES_EXPORTER=none setsid "$BERTH_BIN/registry" serve "$CONFIG" >>"$LOGFILE" 2>&1 </dev/null &
	echo $! >"$PIDFILE"
	for _ in $(seq 100); do
		healthy && { log "registry serving on $BERTH_REGISTRY (pid $(cat "$PIDFILE"))"; return; }
		our_pid >/dev/null || break
		sleep 0.1
	done
	tail -5 "$LOGFILE" >&2 || true
	stop
	die "registry did not come up on $BERTH_REGISTRY (log: $LOGFILE)"
}

stop() {
	local pid
	if pid=$(our_pid); then
		kill -TERM "$pid"
		for _ in $(seq 50); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
		log "registry stopped"
	fi
	rm -f "$PIDFILE"
}

status() {
	if our_pid >/dev/null && healthy; then
		echo "running on $BERTH_REGISTRY (pid $(cat "$PIDFILE"))"
	else
		echo "not running"
		return 1
	fi
}

case "${1:-}" in
start) start ;;
stop) stop ;;
status) status ;;
*) die "usage: $0 start|stop|status" ;;
esac
