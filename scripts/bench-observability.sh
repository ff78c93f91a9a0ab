#!/usr/bin/env bash
# What do the Prometheus metrics and the audit log cost? One run, side by side, with the same
# release binary: a one-pipe configuration file with metrics and the audit log off ("off")
# against the same file with `metrics` (a Unix socket, scraped every second during the whole
# run) and `audit_log` (a file in the temporary directory) on ("on"). Prints medians and ratios
# (on / off) for bulk MB/s, relay CPU per GiB, Redis GET -P 1 req/s and relay CPU per request,
# then (unless --no-ir) instruction counts under callgrind, which do not depend on the load of
# the machine.
#
# usage: scripts/bench-observability.sh [--rounds N] [--bytes N] [--requests N] [--no-ir]
#                                       [--ir-only] [--ir-reps N] [--out DIR] [--no-build]
#
#   --rounds N    rounds of the wall-clock benchmark (default 7); each round runs every kind
#                 once, "off" first in odd rounds and "on" first in even ones
#   --bytes N     bytes per bulk transfer (default 1 GiB)
#   --requests N  requests per redis-benchmark -c 50 -P 1 GET run (default 200000)
#   --no-ir       skip the callgrind instruction counts
#   --ir-only     only the callgrind instruction counts
#   --ir-reps N   repetitions of each instruction count (default 3)
#   --out DIR     where the JSON and logs go (default /tmp/spiperelay-obs-<date>)
#   --no-build    use target/release/spiperelay as it is
#
# Both ends of every chain (spiperelay -e and -d, each started through scripts/relay-as-config.sh
# --as-config) get the same options, so with "on" both serve metrics and both write audit lines.
# The harness is bench.py (found as scripts/bench.sh finds it); its relay CPU is the CPU time of
# both relay processes, all threads, the metrics server's included. Loopback and Unix sockets
# only; every step is bounded in time; only processes this script started are signalled, by
# PID; the temporary directory is removed on every path.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD

rounds=7 bytes=1073741824 requests=200000 ir=1 ir_reps=3 out="" build=1 wall=1
while [ $# -gt 0 ]; do
	case "$1" in
	--rounds) rounds=${2:?--rounds needs a number}; shift ;;
	--bytes) bytes=${2:?--bytes needs a number}; shift ;;
	--requests) requests=${2:?--requests needs a number}; shift ;;
	--no-ir) ir=0 ;;
	--ir-only) wall=0 ;;
	--ir-reps) ir_reps=${2:?--ir-reps needs a number}; shift ;;
	--out) out=${2:?--out needs a directory}; shift ;;
	--no-build) build=0 ;;
	-h | --help) sed -n '2,28p' "$0"; exit 0 ;;
	*) echo "bench-observability.sh: unknown argument: $1 (see --help)" >&2; exit 2 ;;
	esac
	shift
done
for n in "$rounds" "$bytes" "$requests" "$ir_reps"; do
	case "$n" in '' | *[!0-9]* | 0) echo "bench-observability.sh: counts must be positive whole numbers" >&2; exit 2 ;; esac
done
reps=1 mode=quick SCRIPT=bench-observability.sh
# shellcheck source=bench-common.sh
. "$ROOT/scripts/bench-common.sh"
for t in curl python3; do
	command -v "$t" >/dev/null || { echo "bench-observability.sh: $t is needed" >&2; exit 1; }
done
if [ "$ir" = 1 ]; then
	for t in valgrind socat redis-server redis-benchmark ss; do
		command -v "$t" >/dev/null || { echo "bench-observability.sh: $t is needed (or --no-ir)" >&2; exit 1; }
	done
fi

if [ "$build" = 1 ]; then
	cargo build --release --locked --bin spiperelay
fi
RELAY=$ROOT/target/release/spiperelay
[ -x "$RELAY" ] || { echo "bench-observability.sh: no relay binary at $RELAY" >&2; exit 1; }

out=${out:-/tmp/spiperelay-obs-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$out"
tmp=$(mktemp -d "${TMPDIR:-/tmp}/spiperelay-obs.XXXXXX")
pids=()
cleanup() {
	touch "$tmp/stop"
	local p
	for p in "${pids[@]}"; do
		kill -TERM "$p" 2>/dev/null || true
	done
	for p in "${pids[@]}"; do
		wait "$p" 2>/dev/null || true
	done
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

{
	echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
	echo "commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
	echo "cpu: $(grep -m1 '^model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $(nproc) cores"
	echo "kernel: $(uname -r)"
	echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
} | tee "$out/machine.txt" >&2

# ---------------------------------------------------------------------------------------------
# 1. Wall clock and CPU, bench.py, both settings in each round.
wall_clock() {
obs=$tmp/obs
mkdir -p "$obs"
export RELAY_BIN=$ROOT/scripts/relay-as-config.sh RELAY_NAME=spiperelay SPIPERELAY_BENCH_BIN=$RELAY
off='--as-config'
on="--as-config --metrics $obs/m-%p.sock --audit-log $obs/a-%p.log"

# The scraper: every second, GET /metrics from every metrics socket there is; one line per
# successful scrape in $tmp/scrapes. Stops when $tmp/stop appears, or after 4 hours.
(
	for _ in $(seq 14400); do
		[ -e "$tmp/stop" ] && break
		for s in "$obs"/m-*.sock; do
			[ -S "$s" ] || continue
			if curl -sf -o /dev/null --max-time 2 --unix-socket "$s" http://localhost/metrics; then
				echo "$s" >>"$tmp/scrapes"
			fi
		done
		sleep 1
	done
) &
pids+=($!)

step() { # name, time bound in seconds, bench.py arguments...
	local name=$1 bound=$2
	shift 2
	echo "== $name: bench.py $*" >&2
	# bench.py takes ports upward from BENCH_PORT_BASE (below 32000); a base of its own for
	# each step keeps it clear of another bench.py run on the same machine.
	if ! BENCH_PORT_BASE=$((24100 + RANDOM % 7000)) timeout --signal=INT --kill-after=30 "$bound" python3 "$HARNESS" "$@" \
		--json "$out/$name.json" >"$out/$name.md" 2>"$out/$name.log"; then
		echo "bench-observability.sh: step $name failed; see $out/$name.log" >&2
		rm -f "$out/$name.json"
	fi
}

for r in $(seq "$rounds"); do
	if [ $((r % 2)) = 1 ]; then first=$off second=$on; else first=$on second=$off; fi
	step "bulk-$r" 900 bulk --reps 1 --bytes "$bytes" \
		--kinds "relay:$first,relay:$second,relay-unix:$first,relay-unix:$second"
	step "redis-$r" 900 redis --reps 1 --tests get --modes "50x1x$requests" \
		--kinds "relay:$first,relay:$second"
done
touch "$tmp/stop"
scrapes=$(wc -l <"$tmp/scrapes" 2>/dev/null || echo 0)
audit_lines=$(cat "$obs"/a-*.log 2>/dev/null | wc -l)
echo "scrapes answered during the run: $scrapes; audit lines written: $audit_lines" |
	tee "$out/observability.txt" >&2

python3 - "$out" <<'EOF' | tee "$out/table.md"
import glob, json, statistics, sys
out = sys.argv[1]
med = statistics.median
def setting(spec):
    return "on" if "--metrics" in spec else "off"
bulk, redis = {}, {}   # (chain, setting) -> list of (round, value dict)
for f in sorted(glob.glob(f"{out}/bulk-*.json")):
    rnd = int(f.rsplit("-", 1)[1].split(".")[0])
    for spec, k in json.load(open(f))["kinds"].items():
        for run in k["runs"]:
            if "error" not in run:
                bulk.setdefault((spec.split(":")[0], setting(spec)), []).append(
                    (rnd, run["MBps"], run["relay_cpu_s_per_GiB"]))
for f in sorted(glob.glob(f"{out}/redis-*.json")):
    rnd = int(f.rsplit("-", 1)[1].split(".")[0])
    for case in json.load(open(f))["cases"]:
        for run in case["runs"]:
            if run["rows"] and not run["timed_out"] and "GET" in run["rows"]:
                redis.setdefault((case["kind"].split(":")[0], setting(case["kind"])), []).append(
                    (rnd, run["rows"]["GET"]["rps"], run["relay_cpu_s"] / case["n"] * 1e6))
def rows(data, names):
    for chain in sorted({c for c, _ in data}):
        a, b = data.get((chain, "off"), []), data.get((chain, "on"), [])
        if not a or not b:
            continue
        for i, name in enumerate(names):
            ma, mb = med(x[i + 1] for x in a), med(x[i + 1] for x in b)
            ra = {x[0]: x[i + 1] for x in a}
            paired = [y[i + 1] / ra[y[0]] for y in b if y[0] in ra and ra[y[0]]]
            pm = f"{med(paired):.3f}" if paired else "-"
            print(f"| {chain} | {name} | {len(a)}/{len(b)} | {ma:.4g} | {mb:.4g} | {mb / ma:.3f} | {pm} |")
print("| chain | measure | runs off/on | median off | median on | on/off | median of per-round on/off |")
print("|---|---|---|---|---|---|---|")
rows(bulk, ["bulk MB/s", "relay CPU s/GiB"])
rows(redis, ["GET -P 1 req/s", "relay CPU µs/request"])
EOF
}
[ "$wall" = 0 ] || wall_clock

# ---------------------------------------------------------------------------------------------
# 2. Instruction counts (valgrind callgrind on the -e end, epoll backend: valgrind does not know
# io_uring). The -d end and the sink or Redis run natively. The cost per MiB or per request is
# the slope between a small and a large run, so start-up, handshakes and the audit lines of the
# few connections cancel out. Metrics are on but not scraped during these runs (under valgrind
# the run takes some 50 times longer, so a scrape a second would be counted 50 times over);
# the cost of one scrape is measured on its own, as the slope between 0 and 40 scrapes. The
# audit log's cost is per connection (getpeername at accept, one line at close), so it shows in
# the slope between 50 and 250 short connections (TCP clients, one at a time, no PFS).
[ "$ir" = 1 ] || exit 0
irtmp=$tmp/ir
mkdir -p "$irtmp"
conf() { # file, mode, source, target, key, setting, dir
	{
		echo "[process]"
		echo "daemonize = false"
		if [ "$6" = on ]; then
			echo "metrics = \"$7/m.sock\""
			echo "audit_log = \"$7/a.log\""
		fi
		echo "[pipe.default]"
		echo "mode = \"$2\""
		echo "source = \"$3\""
		echo "target = \"$4\""
		echo "keys = [\"$5\"]"
		echo 'pfs = "disabled"'
	} >"$1"
}
wait_for() { # condition command...; up to 30 s
	local _i
	for _i in $(seq 300); do
		"$@" && return 0
		sleep 0.1
	done
	return 1
}
listening() { ss -ltnH "sport = :$1" | grep -q .; }
ir_of() { grep -m1 '^summary:' "$1" | awk '{print $2}'; }
# Starts the -e end under callgrind; sets enc.
start_enc() { # dir, setting, source, target
	conf "$1/enc.toml" encrypt "$3" "$4" "$1/key" "$2" "$1"
	SPIPERELAY_BACKEND=epoll valgrind --tool=callgrind --callgrind-out-file="$1/cg.out" \
		"$RELAY" --config "$1/enc.toml" 2>"$1/enc.log" &
	enc=$!
	pids+=("$enc")
}
stop_pid() {
	kill -TERM "$1" 2>/dev/null || true
	wait "$1" 2>/dev/null || true
}

ir_bulk() { # setting, bytes -> Ir of the -e end
	local d port
	d=$(mktemp -d "$irtmp/bulk.XXXXXX")
	port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
	head -c 32 /dev/urandom >"$d/key"
	chmod 600 "$d/key"
	socat -u UNIX-LISTEN:"$d/sink",fork OPEN:/dev/null &
	local sink=$!
	pids+=("$sink")
	conf "$d/dec.toml" decrypt "[127.0.0.1]:$port" "$d/sink" "$d/key" off "$d"
	"$RELAY" --config "$d/dec.toml" 2>"$d/dec.log" &
	local dec=$!
	pids+=("$dec")
	start_enc "$d" "$1" "$d/front" "[127.0.0.1]:$port"
	wait_for test -S "$d/front" && wait_for listening "$port"
	head -c "$2" /dev/zero | timeout 600 socat -u - UNIX-CONNECT:"$d/front"
	sleep 1
	stop_pid "$enc"
	stop_pid "$dec"
	stop_pid "$sink"
	ir_of "$d/cg.out"
}
ir_redis() { # setting, requests -> Ir of the -e end
	local d p
	d=$(mktemp -d "$irtmp/redis.XXXXXX")
	p=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
	head -c 32 /dev/urandom >"$d/key"
	chmod 600 "$d/key"
	redis-server --port 0 --unixsocket "$d/redis.sock" --save '' --appendonly no \
		--daemonize no >"$d/redis.log" 2>&1 &
	local rs=$!
	pids+=("$rs")
	conf "$d/dec.toml" decrypt "$d/mid.sock" "$d/redis.sock" "$d/key" off "$d"
	wait_for test -S "$d/redis.sock"
	"$RELAY" --config "$d/dec.toml" 2>"$d/dec.log" &
	local dec=$!
	pids+=("$dec")
	start_enc "$d" "$1" "[127.0.0.1]:$p" "$d/mid.sock"
	wait_for test -S "$d/mid.sock" && wait_for listening "$p"
	timeout 600 redis-benchmark -h 127.0.0.1 -p "$p" -t get -n "$2" -c 10 -P 1 -q >"$d/rb.txt" 2>&1
	sleep 1
	stop_pid "$enc"
	stop_pid "$dec"
	stop_pid "$rs"
	ir_of "$d/cg.out"
}
ir_scrapes() { # scrapes -> Ir of an idle -e end with metrics on, after that many scrapes
	local d i
	d=$(mktemp -d "$irtmp/scrape.XXXXXX")
	head -c 32 /dev/urandom >"$d/key"
	chmod 600 "$d/key"
	start_enc "$d" on "$d/front" "$d/nowhere"
	wait_for test -S "$d/m.sock"
	for i in $(seq "$1"); do
		curl -sf -o /dev/null --max-time 20 --unix-socket "$d/m.sock" http://localhost/metrics ||
			echo "bench-observability.sh: scrape $i failed" >&2
	done
	sleep 1
	stop_pid "$enc"
	ir_of "$d/cg.out"
}

ir_conns() { # setting, connections -> Ir of the -e end after that many short connections
	local d p
	d=$(mktemp -d "$irtmp/conns.XXXXXX")
	p=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
	head -c 32 /dev/urandom >"$d/key"
	chmod 600 "$d/key"
	socat -u UNIX-LISTEN:"$d/sink",fork OPEN:/dev/null &
	local sink=$!
	pids+=("$sink")
	conf "$d/dec.toml" decrypt "$d/mid.sock" "$d/sink" "$d/key" off "$d"
	"$RELAY" --config "$d/dec.toml" 2>"$d/dec.log" &
	local dec=$!
	pids+=("$dec")
	start_enc "$d" "$1" "[127.0.0.1]:$p" "$d/mid.sock"
	wait_for test -S "$d/mid.sock" && wait_for listening "$p"
	# One at a time: connect, send a byte, half-close, read to the end (bounded: 10 minutes).
	timeout 600 python3 - "$p" "$2" <<'PY'
import socket, sys
port, n = int(sys.argv[1]), int(sys.argv[2])
for _ in range(n):
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    s.sendall(b"x")
    s.shutdown(socket.SHUT_WR)
    while s.recv(4096):
        pass
    s.close()
PY
	sleep 1
	stop_pid "$enc"
	stop_pid "$dec"
	stop_pid "$sink"
	ir_of "$d/cg.out"
}

small_b=8388608 large_b=134217728 small_r=2000 large_r=12000 small_c=50 large_c=250
echo "== instruction counts, $ir_reps reps each, alternating off/on" >&2
: >"$out/ir.txt"
for r in $(seq "$ir_reps"); do
	if [ $((r % 2)) = 1 ]; then order="off on"; else order="on off"; fi
	for s in $order; do
		a=$(ir_bulk "$s" $small_b) b=$(ir_bulk "$s" $large_b)
		echo "bulk $s $r $a $b" | tee -a "$out/ir.txt" >&2
		a=$(ir_redis "$s" $small_r) b=$(ir_redis "$s" $large_r)
		echo "redis $s $r $a $b" | tee -a "$out/ir.txt" >&2
		a=$(ir_conns "$s" $small_c) b=$(ir_conns "$s" $large_c)
		echo "conns $s $r $a $b" | tee -a "$out/ir.txt" >&2
	done
	a=$(ir_scrapes 0) b=$(ir_scrapes 40)
	echo "scrape on $r $a $b" | tee -a "$out/ir.txt" >&2
done
python3 - "$out/ir.txt" "$small_b" "$large_b" "$small_r" "$large_r" "$small_c" "$large_c" <<'EOF' | tee "$out/ir.md"
import statistics, sys
path, sb, lb, sr, lr, sc, lc = sys.argv[1], *map(int, sys.argv[2:])
per = {"bulk": (lb - sb) / 2**20, "redis": lr - sr, "conns": lc - sc, "scrape": 40}
unit = {"bulk": "Ir/MiB", "redis": "Ir/request", "conns": "Ir/connection", "scrape": "Ir/scrape"}
v = {}
for line in open(path):
    test, s, _, a, b = line.split()
    if a.isdigit() and b.isdigit():
        v.setdefault((test, s), []).append((int(b) - int(a)) / per[test])
print("| test | off | on | on/off |")
print("|---|---|---|---|")
for test in ("bulk", "redis", "conns"):
    if (test, "off") in v and (test, "on") in v:
        a, b = statistics.median(v[(test, "off")]), statistics.median(v[(test, "on")])
        print(f"| {test} ({unit[test]}, -e end, median of {len(v[(test, 'off')])}) | {a:,.0f} | {b:,.0f} | {b / a:.5f} |")
if ("scrape", "on") in v:
    print(f"| one scrape of GET /metrics (Ir/scrape, idle -e end) | | {statistics.median(v[('scrape', 'on')]):,.0f} | |")
EOF
