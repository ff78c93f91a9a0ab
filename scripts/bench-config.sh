#!/usr/bin/env bash
# The spiped command line against a one-pipe configuration file, side by side in one run: the
# same pipe started both ways must cost the same (one code path).
#
# usage: scripts/bench-config.sh [--quick | --full] [--rounds N] [--out DIR] [--no-build]
#
# Each round runs the benchmark harness bench.py (as scripts/bench.sh does, sizes of --quick
# or --full) once for each test, with both kinds, their order swapped every round:
#   bulk:   one connection, 512 MiB (--full: 2 GiB): MB/s and relay CPU-s per GiB;
#   redis:  redis-benchmark -t get -c 50 -P 1 -n 50000 (--full: 100000): req/s and relay CPU
#           per request.
# The kinds are "relay" (spiperelay -F -e|-d -s ... -t ... -k ..., the command line) and
# "relay:--as-config" (scripts/relay-as-config.sh turns those flags into a one-pipe TOML file
# and runs spiperelay --config on it). The table shows per kind the median (min–max) over
# the rounds, the ratio of the medians (file / command line) and the median of each round's
# ratio. --rounds (default 5) rounds; --out DIR keeps the per-round JSON, markdown and logs
# (default /tmp/spiperelay-bench-config-<date>).
#
# Loopback and Unix sockets only; every step is bounded in time; only processes the harness
# started are signalled, by PID.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD

mode=quick reps=5 build=1 out=""
while [ $# -gt 0 ]; do
	case "$1" in
	--quick) mode=quick ;;
	--full) mode=full ;;
	--rounds) reps=${2:?--rounds needs a number}; shift ;;
	--out) out=${2:?--out needs a directory}; shift ;;
	--no-build) build=0 ;;
	-h | --help) sed -n '2,20p' "$0"; exit 0 ;;
	*) echo "bench-config.sh: unknown argument: $1 (see --help)" >&2; exit 2 ;;
	esac
	shift
done
SCRIPT=bench-config.sh
# shellcheck source=scripts/bench-common.sh
. "$ROOT/scripts/bench-common.sh"
# shellcheck source=scripts/bench-relay-bin.sh
. "$ROOT/scripts/bench-relay-bin.sh"
requests=50000
[ "$mode" = full ] && requests=100000

out=${out:-/tmp/spiperelay-bench-config-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$out"
export SPIPERELAY_BENCH_BIN=$RELAY RELAY_BIN=$ROOT/scripts/relay-as-config.sh RELAY_NAME=spiperelay

step() { # name, time bound in seconds, bench.py arguments...
	local name=$1 bound=$2
	shift 2
	echo "== $name: bench.py $*" >&2
	if ! timeout --signal=INT --kill-after=30 "$bound" python3 "$HARNESS" "$@" \
		--json "$out/$name.json" >"$out/$name.md" 2>"$out/$name.log"; then
		echo "bench-config.sh: step $name failed; see $out/$name.log" >&2
		rm -f "$out/$name.json"
	fi
}

for ((r = 0; r < reps; r++)); do
	kinds='relay,relay:--as-config'
	((r % 2 == 0)) || kinds='relay:--as-config,relay'
	step "bulk-$r" 900 bulk --reps 1 --bytes "$bulk_bytes" --kinds "$kinds"
	step "redis-$r" 900 redis --reps 1 --tests get --modes "50x1x$requests" --kinds "$kinds"
done

python3 - "$out" "$reps" <<-'EOF' | tee "$out/table.md"
	import json, os, statistics as st, sys
	out, rounds = sys.argv[1], int(sys.argv[2])
	kinds = ("relay", "relay:--as-config")
	vals = {(t, k, m): [] for t in ("bulk", "redis") for k in kinds
	        for m in ("MBps", "cpu_GiB", "rps", "cpu_req")}
	paired = {m: [] for m in ("MBps", "cpu_GiB", "rps", "cpu_req")}
	machine = {}
	for r in range(rounds):
	    got = {}
	    for t in ("bulk", "redis"):
	        p = os.path.join(out, f"{t}-{r}.json")
	        if not os.path.exists(p):
	            continue
	        res = json.load(open(p))
	        machine = res.get("machine", machine)
	        if t == "bulk":
	            for k, v in res["kinds"].items():
	                if v["MBps"]["n"]:
	                    got[(k, "MBps")] = v["MBps"]["median"]
	                    got[(k, "cpu_GiB")] = v["relay_cpu_s_per_GiB"]["median"]
	        else:
	            for c in res["cases"]:
	                if "GET" in c["tests"] and c["relay_cpu_us_per_req"]["n"]:
	                    got[(c["kind"], "rps")] = c["tests"]["GET"]["rps"]["median"]
	                    got[(c["kind"], "cpu_req")] = c["relay_cpu_us_per_req"]["median"]
	    for (k, m), v in got.items():
	        vals[("bulk" if m in ("MBps", "cpu_GiB") else "redis", k, m)].append(v)
	    for m in paired:
	        if (kinds[0], m) in got and (kinds[1], m) in got:
	            paired[m].append(got[(kinds[1], m)] / got[(kinds[0], m)])
	def f(v, nd):
	    if not v:
	        return "n/a"
	    return f"{st.median(v):.{nd}f} ({min(v):.{nd}f}–{max(v):.{nd}f})"
	def ratio(t, m):
	    a, b = vals[(t, kinds[0], m)], vals[(t, kinds[1], m)]
	    if not a or not b:
	        return "n/a"
	    p = paired[m]
	    return (f"{st.median(b) / st.median(a):.3f} (per round: {st.median(p):.3f}, "
	            f"{min(p):.3f}–{max(p):.3f})")
	print(f"\n### Command line against a one-pipe config file, {rounds} rounds, median (min–max)\n")
	print(f"{machine.get('cpu', '?')}, {machine.get('cores', '?')} cores, kernel {machine.get('kernel', '?')}\n")
	print("| started with | bulk MB/s | relay CPU s/GiB | GET -c 50 -P 1 req/s | relay CPU µs/req |")
	print("|---|---|---|---|---|")
	for k, label in zip(kinds, ("command line (-e/-d -s -t -k)", "--config (one pipe)")):
	    print(f"| {label} | {f(vals[('bulk', k, 'MBps')], 0)} | {f(vals[('bulk', k, 'cpu_GiB')], 2)} | "
	          f"{f(vals[('redis', k, 'rps')], 0)} | {f(vals[('redis', k, 'cpu_req')], 2)} |")
	print(f"| file / command line | {ratio('bulk', 'MBps')} | {ratio('bulk', 'cpu_GiB')} | "
	      f"{ratio('redis', 'rps')} | {ratio('redis', 'cpu_req')} |")
EOF
echo "per-round tables and logs: $out" >&2
