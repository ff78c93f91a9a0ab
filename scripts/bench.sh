#!/usr/bin/env bash
# Compare spiperelay with spiped and stunnel on this machine, side by side in one run, and print
# one table: bulk MB/s and relay CPU-s per GiB, connections per second (also spiped -f and our
# --x25519 mode), and Redis GET req/s.
#
# usage: scripts/bench.sh [--quick | --full] [--reps N] [--out DIR] [--no-build]
#
#   --quick   (default) 512 MiB bulk transfers, 1000 connections per connrate run, shorter Redis
#             runs; about 10 minutes on 2 cores.
#   --full    the sizes of the shared harness's run_all.sh (2 GiB bulk, 2000 connections,
#             -c 50 with 100k/1M requests, 1000 clients); about 40 minutes.
#   --reps N  repetitions of every measurement (default 3); medians are reported.
#   --out DIR where the per-test JSON, markdown and logs go (default /tmp/spiperelay-bench-<date>).
#
# It drives the benchmark harness `bench.py` (found at $BENCH_HARNESS, or ../shared/bench/bench.py
# beside the checkout), which starts every peer exactly as the relay: an encrypting and a
# decrypting end over loopback TCP, TCP or Unix sockets at the outer ends. The harness's setup.sh
# installs the peers that are missing (spiped, stunnel4, socat, redis-server, redis-tools) with
# apt-get. Loopback and Unix sockets only; every step is bounded in time; only processes the
# harness started are signalled, by PID.
#
# Compare only rows of one run: machines differ from day to day.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD

mode=quick reps=3 build=1 out=""
while [ $# -gt 0 ]; do
	case "$1" in
	--quick) mode=quick ;;
	--full) mode=full ;;
	--reps) reps=${2:?--reps needs a number}; shift ;;
	--out) out=${2:?--out needs a directory}; shift ;;
	--no-build) build=0 ;;
	-h | --help) sed -n '2,22p' "$0"; exit 0 ;;
	*) echo "bench.sh: unknown argument: $1 (see --help)" >&2; exit 2 ;;
	esac
	shift
done
SCRIPT=bench.sh
# shellcheck source=bench-common.sh
. "$ROOT/scripts/bench-common.sh"

if [ "$build" = 1 ]; then
	cargo build --release --locked --bin spiperelay
fi
RELAY=$ROOT/target/release/spiperelay
[ -x "$RELAY" ] || { echo "bench.sh: no relay binary at $RELAY (run without --no-build)" >&2; exit 1; }

out=${out:-/tmp/spiperelay-bench-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$out"
export RELAY_BIN=$RELAY RELAY_NAME=spiperelay

step() { # name, time bound in seconds, bench.py arguments...
	local name=$1 bound=$2
	shift 2
	echo "== $name: bench.py $*" >&2
	if ! timeout --signal=INT --kill-after=30 "$bound" python3 "$HARNESS" "$@" \
		--json "$out/$name.json" >"$out/$name.md" 2>"$out/$name.log"; then
		echo "bench.sh: step $name failed; see $out/$name.log" >&2
		rm -f "$out/$name.json"
	fi
}

step bulk 3000 bulk --reps "$reps" --bytes "$bulk_bytes" \
	--kinds spiped,spiped-unix,stunnel,relay,relay-unix
step connrate 2400 connrate --reps "$reps" --count "$conns" --concurrency 1,8 \
	--kinds 'spiped,spiped:-f,stunnel,relay,relay:--x25519'
step redis 3600 redis --reps "$reps" --tests get --modes "$modes" \
	--kinds spiped,stunnel,relay
step redis-many 3600 redis --reps "$reps" --tests get --modes "$many" --timeout 120 \
	--kinds 'spiped:-n 0,stunnel,relay:-n 0'

python3 "$ROOT/scripts/bench_table.py" "$out" | tee "$out/table.md"
echo "per-test tables and logs: $out" >&2
