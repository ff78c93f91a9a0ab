#!/usr/bin/env bash
# What the io path costs without the protocol: the same benchmarks as scripts/bench.sh, run for
# spiperelay and, right after, for `plain_forward` (examples/plain_forward.rs: spiperelay's own
# event loop, io_uring driver, receive pool and backpressure, forwarding plaintext, with no
# handshake and no crypto), with spiped, socat (a plaintext relay too) and direct in the same run
# for scale. A target that plain_forward itself misses cannot be met by any relay built on this
# io path: what it costs is the kernel's TCP work that every relay in the middle pays.
#
# usage: scripts/bench-floor.sh [--quick | --full] [--reps N] [--out DIR] [--no-build] [--repl]
#
#   --quick   (default) the sizes of scripts/bench.sh --quick; --full those of bench.sh --full
#   --reps N  repetitions of every measurement (default 3); medians are reported
#   --out DIR where the per-test JSON, markdown and logs go (default /tmp/spiperelay-floor-<date>)
#   --repl    also the Redis full sync of a 1 GB data set (adds about 15 minutes)
#
# Needs the benchmark harness bench.py ($BENCH_HARNESS, or ../shared/bench/bench.py beside the
# checkout; its setup.sh installs the peers). Loopback and Unix sockets only; every step is
# bounded in time; only processes the harness started are signalled, by PID.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD

mode=quick reps=3 build=1 out="" repl=0
while [ $# -gt 0 ]; do
	case "$1" in
	--quick) mode=quick ;;
	--full) mode=full ;;
	--reps) reps=${2:?--reps needs a number}; shift ;;
	--out) out=${2:?--out needs a directory}; shift ;;
	--no-build) build=0 ;;
	--repl) repl=1 ;;
	-h | --help) sed -n '2,18p' "$0"; exit 0 ;;
	*) echo "bench-floor.sh: unknown argument: $1 (see --help)" >&2; exit 2 ;;
	esac
	shift
done
SCRIPT=bench-floor.sh
# shellcheck source=bench-common.sh
. "$ROOT/scripts/bench-common.sh"

if [ "$build" = 1 ]; then
	cargo build --release --locked --bin spiperelay --example plain_forward
fi
RELAY=$ROOT/target/release/spiperelay
PLAIN=$ROOT/target/release/examples/plain_forward
for b in "$RELAY" "$PLAIN"; do
	[ -x "$b" ] || { echo "bench-floor.sh: no binary at $b (run without --no-build)" >&2; exit 1; }
done

out=${out:-/tmp/spiperelay-floor-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$out"

# step NAME BOUND WHICH bench.py-arguments...: WHICH is "ours" (spiperelay as the relay kind)
# or "plain" (plain_forward as the relay kind)
step() {
	local name=$1 bound=$2 which=$3
	shift 3
	echo "== $name ($which): bench.py $*" >&2
	local env=(RELAY_BIN="$RELAY" RELAY_NAME=spiperelay)
	if [ "$which" = plain ]; then
		env=(RELAY_NAME=plain_forward
			RELAY_ENC="$PLAIN -s {SRC} -t {DST}" RELAY_DEC="$PLAIN -s {SRC} -t {DST}")
	fi
	if ! env "${env[@]}" timeout --signal=INT --kill-after=30 "$bound" python3 "$HARNESS" "$@" \
		--json "$out/$name-$which.json" >"$out/$name-$which.md" 2>"$out/$name-$which.log"; then
		echo "bench-floor.sh: step $name ($which) failed; see $out/$name-$which.log" >&2
		rm -f "$out/$name-$which.json"
	fi
}

step bulk 3000 ours bulk --reps "$reps" --bytes "$bulk_bytes" --kinds direct,socat,spiped,relay
step bulk 3000 plain bulk --reps "$reps" --bytes "$bulk_bytes" --kinds relay
step connrate 2400 ours connrate --reps "$reps" --count "$conns" --concurrency 1,8 \
	--kinds 'direct,socat,spiped,spiped:-f,relay,relay:--x25519'
step connrate 2400 plain connrate --reps "$reps" --count "$conns" --concurrency 1,8 --kinds relay
step redis 3600 ours redis --reps "$reps" --tests get --modes "$modes" --kinds direct,socat,spiped,relay
step redis 3600 plain redis --reps "$reps" --tests get --modes "$modes" --kinds relay
step redis-many 3600 ours redis --reps "$reps" --tests get --modes "$many" --timeout 120 \
	--kinds 'stunnel,relay:-n 0'
step redis-many 3600 plain redis --reps "$reps" --tests get --modes "$many" --timeout 120 --kinds relay
if [ "$repl" = 1 ]; then
	step repl 3600 ours repl --reps "$reps" --keys 1000000 --value-size 1000 --kinds direct,spiped,relay
	step repl 3600 plain repl --reps "$reps" --keys 1000000 --value-size 1000 --kinds relay
fi

for f in "$out"/*.md; do
	echo "### $(basename "$f" .md)"
	cat "$f"
	echo
done | tee "$out/all.md"
echo "per-test tables and logs: $out" >&2
