#!/usr/bin/env bash
# Run spiperelay from a one-pipe configuration file built from a spiped command line, so that a
# benchmark can compare the two ways of starting the same pipe side by side in one run.
#
# usage: scripts/relay-as-config.sh [--as-config] SPIPED-FLAGS...
#
# Without --as-config the arguments go to spiperelay unchanged (exec, same PID). With
# --as-config (anywhere among the arguments) the spiped flags are turned into the TOML of one
# pipe, named "default" as the command line's pipe is, and the script execs
#     spiperelay --config /dev/fd/3
# where descriptor 3 holds that file, already deleted: nothing is left behind, and the relay
# runs in place of this script (same PID, so /proc CPU accounting sees only the relay).
#
# With the benchmark harness, both kinds in one run:
#     RELAY_BIN=scripts/relay-as-config.sh RELAY_NAME=spiperelay \
#         ../shared/bench/bench.py bulk --kinds 'relay,relay:--as-config'
# (scripts/bench-config.sh does this for the bulk and Redis tests.)
#
# Flags understood with --as-config: -e -d -s -t -k (repeatable) -F -f -g -j -n -o -r -R -b
# -D -p --x25519 --max-keys --handshake-limit --threads --shutdown-timeout --control; any
# other flag is an error (exit 2). Without -F the file says daemonize = true, as spiped's
# default is.
#
# Two more flags, with no spiped equivalent, set the [process] table's observability options:
#     --metrics ADDR     metrics = ADDR   (Prometheus GET /metrics; an address or socket path)
#     --audit-log PATH   audit_log = PATH (one JSON line per closed connection, or "stderr")
# In their values "%p" becomes the relay's process id, so that the two ends of one benchmark
# chain, which get the same flags, listen and write on paths of their own.
#
# Environment: SPIPERELAY_BENCH_BIN is the relay binary (default target/release/spiperelay
# beside this script).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
RELAY=${SPIPERELAY_BENCH_BIN:-$ROOT/target/release/spiperelay}

as_config=0
for a in "$@"; do
	[ "$a" = --as-config ] && as_config=1
done
if [ "$as_config" = 0 ]; then
	exec "$RELAY" "$@"
fi

die() {
	echo "relay-as-config.sh: $*" >&2
	exit 2
}
# A TOML basic string: quotes and backslashes escaped; control characters refused.
str() {
	case "$1" in *[[:cntrl:]]*) die "control character in argument: $1" ;; esac
	local s=${1//\\/\\\\}
	printf '"%s"' "${s//\"/\\\"}"
}
num() {
	case "$2" in '' | *[!0-9.]*) die "$1 needs a number, got: $2" ;; esac
	printf '%s' "$2"
}

mode="" source="" target="" keys=() proc=() pipe=() daemonize=true
while [ $# -gt 0 ]; do
	a=$1
	shift
	case "$a" in
	--as-config) continue ;;
	-e) mode=encrypt; continue ;;
	-d) mode=decrypt; continue ;;
	-F) daemonize=false; continue ;;
	-f) pipe+=('pfs = "disabled"'); continue ;;
	-g) pipe+=('pfs = "required"'); continue ;;
	-j) pipe+=("keepalive = false"); continue ;;
	-R) pipe+=("re_resolve = false"); continue ;;
	-D) proc+=("wait_for_dns = true"); continue ;;
	--x25519) pipe+=("x25519 = true"); continue ;;
	-s | -t | -k | -n | -o | -r | -b | -p | --max-keys | --handshake-limit | --threads) ;;
	--shutdown-timeout | --control | --metrics | --audit-log) ;;
	*) die "flag not handled with --as-config: $a" ;;
	esac
	[ $# -gt 0 ] || die "$a needs a value"
	v=$1
	shift
	case "$a" in
	-s) source=$(str "$v") ;;
	-t) target=$(str "$v") ;;
	-k) keys+=("$(str "$v")") ;;
	-n) pipe+=("max_connections = $(num "$a" "$v")") ;;
	-o) pipe+=("timeout = $(num "$a" "$v")") ;;
	-r) pipe+=("resolve_interval = $(num "$a" "$v")") ;;
	-b) pipe+=("bind = $(str "$v")") ;;
	-p) proc+=("pidfile = $(str "$v")") ;;
	--max-keys) pipe+=("max_keys = $(num "$a" "$v")") ;;
	--handshake-limit) pipe+=("handshake_limit = $(num "$a" "$v")") ;;
	--threads) proc+=("threads = $(num "$a" "$v")") ;;
	--shutdown-timeout) proc+=("shutdown_timeout = $(num "$a" "$v")") ;;
	--control) proc+=("control = $(str "$v")") ;;
	--metrics) proc+=("metrics = $(str "${v//%p/$$}")") ;;
	--audit-log) proc+=("audit_log = $(str "${v//%p/$$}")") ;;
	esac
done
[ -n "$mode" ] || die "one of -e and -d is needed"
{ [ -n "$source" ] && [ -n "$target" ]; } || die "-s and -t are needed"
[ "${#keys[@]}" -gt 0 ] || die "-k is needed"

conf=$(mktemp "${TMPDIR:-/tmp}/relay-as-config.XXXXXX")
{
	echo "[process]"
	echo "daemonize = $daemonize"
	for l in "${proc[@]}"; do echo "$l"; done
	echo
	echo "[pipe.default]"
	echo "mode = \"$mode\""
	echo "source = $source"
	echo "target = $target"
	(IFS=,; echo "keys = [${keys[*]}]")
	for l in "${pipe[@]}"; do echo "$l"; done
} >"$conf"
exec 3<"$conf"
rm -f "$conf"
exec "$RELAY" --config /dev/fd/3
