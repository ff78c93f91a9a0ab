# Sourced by scripts/bench.sh and scripts/bench-floor.sh after their options are parsed.
# Needs ROOT (the project root), SCRIPT (the calling script's name, for messages), mode (quick
# or full) and reps. Checks reps, finds the benchmark harness (sets HARNESS: $BENCH_HARNESS,
# else ../shared/bench/bench.py beside the checkout), runs its setup.sh (which installs the
# missing peers), checks for python3, raises the descriptor limit, and sets the sizes of the
# mode: bulk_bytes, conns (per connrate rep), modes (-c 50 runs), many (-c 1000 run).
case "$reps" in '' | *[!0-9]* | 0) echo "$SCRIPT: --reps must be a positive whole number" >&2; exit 2 ;; esac

HARNESS=${BENCH_HARNESS:-$ROOT/../shared/bench/bench.py}
if [ ! -f "$HARNESS" ]; then
	echo "$SCRIPT: the benchmark harness bench.py was not found at $HARNESS;" \
		"set BENCH_HARNESS=/path/to/bench.py" >&2
	exit 1
fi
HDIR=$(cd "$(dirname "$HARNESS")" && pwd)
if [ -f "$HDIR/setup.sh" ]; then
	bash "$HDIR/setup.sh"
fi
command -v python3 >/dev/null || { echo "$SCRIPT: python3 is needed" >&2; exit 1; }
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" || true

if [ "$mode" = full ]; then
	bulk_bytes=2147483648 conns=2000 modes=50x1x100000,50x16x1000000 many=1000x1x50000
else
	bulk_bytes=536870912 conns=1000 modes=50x1x50000,50x16x500000 many=1000x1x20000
fi
