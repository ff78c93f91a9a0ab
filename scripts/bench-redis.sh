#!/usr/bin/env bash
# GET throughput of redis through spiped and through spiperelay, side by side.
#
# usage: scripts/bench-redis.sh [--fallback] [--no-build] [--reps N]
#
# Builds the release binary, then:
# - if the shared harness exists (../shared/bench/bench.py, see its README.md), runs
#     bench.py redis --tests get --kinds spiped,relay --modes 50x1x100000
#     bench.py redis --tests get --kinds 'spiped:-n 0,relay:-n 0' --modes 1000x1x50000
#   with RELAY_BIN=target/release/spiperelay, and prints its tables;
# - otherwise (or with --fallback) a self-contained run: one redis-server on a private Unix
#   socket, an -e/-d pair of spiperelay (and of spiped, if installed) in front of it, and
#     redis-benchmark -c 50 -n 100000 -t get -q
#     redis-benchmark -c 1000 -n 50000 -t get -q      (both relay ends with -n 0)
#   printing the GET requests/s of each in one table.
#
# Environment: SPIPERELAY_BENCH_BIN replaces the relay binary (e.g. /usr/bin/spiped, to check
# the script itself); BENCH_TIMEOUT bounds each redis-benchmark run (default 300 s);
# MANY_FLAGS replaces the relay flags of the 1000-client run (default "-n 0"; with spiped's
# default -o 5, 1000 simultaneous handshakes can time out and reset: try "-n 0 -o 60").
# Loopback only. Every wait is bounded; only processes this script started are signalled, by PID.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD

fallback=0 build=1 reps=1
while [ $# -gt 0 ]; do
	case "$1" in
	--fallback) fallback=1 ;;
	--no-build) build=0 ;;
	--reps) reps=$2; shift ;;
	-h | --help) sed -n '2,21p' "$0"; exit 0 ;;
	*) echo "unknown argument: $1" >&2; exit 2 ;;
	esac
	shift
done
TIMEOUT=${BENCH_TIMEOUT:-300}
read -r -a MANY <<<"${MANY_FLAGS:--n 0}"

# shellcheck source=scripts/bench-relay-bin.sh
. "$ROOT/scripts/bench-relay-bin.sh"
for t in redis-server redis-benchmark redis-cli; do
	command -v "$t" >/dev/null || { echo "$t not found (Debian: redis-server, redis-tools)" >&2; exit 1; }
done
HAVE_SPIPED=0
command -v spiped >/dev/null && HAVE_SPIPED=1

# --- the shared harness ------------------------------------------------------------------------
BENCH=$ROOT/../shared/bench/bench.py
if [ "$fallback" = 0 ] && [ -f "$BENCH" ] && command -v python3 >/dev/null; then
	kinds=relay kinds_many="relay:${MANY[*]}"
	if [ "$HAVE_SPIPED" = 1 ]; then
		kinds=spiped,relay kinds_many="spiped:${MANY[*]},relay:${MANY[*]}"
	fi
	export RELAY_BIN=$RELAY RELAY_NAME=spiperelay
	echo "== bench.py redis, 50 clients" >&2
	timeout $((TIMEOUT * (reps + 1) * 3)) python3 "$BENCH" redis --tests get --kinds "$kinds" \
		--modes 50x1x100000 --reps "$reps" --timeout "$TIMEOUT"
	echo "== bench.py redis, 1000 clients (${MANY[*]} on both ends)" >&2
	timeout $((TIMEOUT * (reps + 1) * 3)) python3 "$BENCH" redis --tests get --kinds "$kinds_many" \
		--modes 1000x1x50000 --reps "$reps" --timeout "$TIMEOUT"
	exit 0
fi

# --- self-contained fallback -------------------------------------------------------------------
ulimit -Sn "$(ulimit -Hn)" 2>/dev/null || true
TMP=$(mktemp -d "${TMPDIR:-/tmp}/bench-redis.XXXXXX")
PIDS=()
cleanup() {
	local p
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
	rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

head -c 32 /dev/urandom >"$TMP/key"
redis-server --port 0 --unixsocket "$TMP/redis.sock" --unixsocketperm 700 --save '' \
	--appendonly no --daemonize no --dir "$TMP" >"$TMP/redis.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 100); do
	[ "$(timeout 2 redis-cli -s "$TMP/redis.sock" ping 2>/dev/null)" = PONG ] && break
	sleep 0.05
done
[ "$(timeout 2 redis-cli -s "$TMP/redis.sock" ping 2>/dev/null)" = PONG ] ||
	{ echo "redis-server did not start: $(cat "$TMP/redis.log")" >&2; exit 1; }

listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
NEXT_PORT=$((24600 + RANDOM % 2000))
free_port() { # bounded scan for a port nobody listens on
	local i
	for i in $(seq 200); do
		NEXT_PORT=$((NEXT_PORT + 1))
		listening "$NEXT_PORT" || { PORT=$NEXT_PORT; return 0; }
	done
	echo "no free port" >&2
	exit 1
}
wait_listen() { # $1 port, $2 pid
	local i
	for i in $(seq 250); do
		listening "$1" && return 0
		kill -0 "$2" 2>/dev/null || break
		sleep 0.02
	done
	echo "relay on port $1 did not start" >&2
	cat "$TMP"/*.err >&2 || true
	exit 1
}

# start_pair BIN EXTRA...: -d in front of redis, -e in front of -d; sets FRONT and PAIR.
start_pair() {
	local bin=$1
	shift
	free_port
	local pd=$PORT
	"$bin" -F -d -s "[127.0.0.1]:$pd" -t "$TMP/redis.sock" -k "$TMP/key" "$@" 2>>"$TMP/dec.err" &
	local dpid=$!
	PIDS+=("$dpid")
	wait_listen "$pd" "$dpid"
	free_port
	local pe=$PORT
	"$bin" -F -e -s "[127.0.0.1]:$pe" -t "[127.0.0.1]:$pd" -k "$TMP/key" "$@" 2>>"$TMP/enc.err" &
	local epid=$!
	PIDS+=("$epid")
	wait_listen "$pe" "$epid"
	FRONT=(-h 127.0.0.1 -p "$pe")
	PAIR=("$dpid" "$epid")
}
stop_pair() {
	local p
	for p in "${PAIR[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${PAIR[@]}"; do wait "$p" 2>/dev/null || true; done
}

# get_rps CLIENTS REQUESTS: best GET rps over $reps runs against FRONT ("-" if none finished).
get_rps() {
	local best=- r out
	for r in $(seq "$reps"); do
		timeout "$TIMEOUT" redis-benchmark "${FRONT[@]}" -c "$1" -n "$2" -t get -q \
			>"$TMP/rb.out" 2>&1 || true
		out=$(tr '\r' '\n' <"$TMP/rb.out" | grep 'requests per second' | tail -1 |
			sed -E 's/.*GET: ([0-9.]+) requests per second.*/\1/') || true
		if [ -z "$out" ]; then
			echo "   redis-benchmark -c $1 -n $2 gave no result: $(tr '\r' '\n' <"$TMP/rb.out" | grep -v '^ *$' | tail -2)" >&2
			continue
		fi
		if [ "$best" = - ] || awk -v a="$out" -v b="$best" 'BEGIN { exit !(a > b) }'; then
			best=$out
		fi
	done
	echo "$best"
}

declare -a ROWS=()
run_kind() { # label bin
	local label=$1 bin=$2 r50 r1000
	echo "== $label: -c 50 -n 100000" >&2
	start_pair "$bin"
	r50=$(get_rps 50 100000)
	stop_pair
	echo "== $label: -c 1000 -n 50000 (${MANY[*]} on both ends)" >&2
	start_pair "$bin" "${MANY[@]}"
	r1000=$(get_rps 1000 50000)
	stop_pair
	ROWS+=("$(printf '| %-12s | %24s | %26s |' "$label" "$r50" "$r1000")")
}

FRONT=(-s "$TMP/redis.sock")
echo "== direct (redis Unix socket)" >&2
ROWS+=("$(printf '| %-12s | %24s | %26s |' direct "$(get_rps 50 100000)" "$(get_rps 1000 50000)")")
[ "$HAVE_SPIPED" = 1 ] && run_kind spiped "$(command -v spiped)"
run_kind spiperelay "$RELAY"

echo
echo "GET requests per second (redis-benchmark -t get, best of $reps; '-' = failed or over ${TIMEOUT}s, see above)"
printf '| %-12s | %24s | %26s |\n' kind "-c 50 -n 100000" "-c 1000 -n 50000 (${MANY[*]})"
printf '|%s|%s|%s|\n' "--------------" "--------------------------" "----------------------------"
printf '%s\n' "${ROWS[@]}"
