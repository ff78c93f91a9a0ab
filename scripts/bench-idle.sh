#!/usr/bin/env bash
# Memory per idle connection: RSS of each end of an -e/-d pair holding N established, idle
# connections, for spiperelay and (if installed) spiped.
#
# usage: scripts/bench-idle.sh [N] [--no-build] [--no-spiped] [--flags "FLAGS"]
#
# For each relay: an echo server on loopback, a -d end in front of it, a -e end in front of
# that (both with "-n 0" plus FLAGS), then a client that opens N connections to the -e end in
# batches, sends one byte on each and waits for its echo (so every connection has finished
# its handshake and carried data), and keeps them all open and idle. VmRSS of each end
# (/proc/PID/status) is read after one warm-up connection (opened, echoed, closed) and again
# with the N connections idle; the table shows the difference divided by N.
#
# N defaults to 10000. Each relay end holds 2 descriptors per connection: the script raises
# its soft RLIMIT_NOFILE to the hard limit and refuses an N that does not fit in it.
# Environment: SPIPERELAY_BENCH_BIN replaces the relay binary; IDLE_TIMEOUT bounds the setup of
# the connections (default 300 s). spiped accepts ever more slowly as its connections pile up
# (about 6600 in 600 s on a 2-core VM), so for a large N give it a separate, smaller run:
# SPIPERELAY_BENCH_BIN=/usr/bin/spiped scripts/bench-idle.sh 3000 --no-spiped.
# Loopback only. Every loop and wait is bounded; only the processes this script started are
# signalled, by PID.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD

n=10000 build=1 flags="" spiped=1
while [ $# -gt 0 ]; do
	case "$1" in
	--no-build) build=0 ;;
	--no-spiped) spiped=0 ;;
	--flags) flags=$2; shift ;;
	-h | --help) sed -n '2,21p' "$0"; exit 0 ;;
	[0-9]*) n=$1 ;;
	*) echo "unknown argument: $1" >&2; exit 2 ;;
	esac
	shift
done
TIMEOUT=${IDLE_TIMEOUT:-300}
command -v python3 >/dev/null || { echo "python3 not found" >&2; exit 1; }

ulimit -n "$(ulimit -Hn)"
limit=$(ulimit -n)
need=$((2 * n + 64))
if [ "$limit" != unlimited ] && [ "$need" -gt "$limit" ]; then
	echo "N=$n needs $need descriptors per relay end, but RLIMIT_NOFILE is $limit here;" \
		"try N=$(((limit - 64) / 2))" >&2
	exit 1
fi

# shellcheck source=scripts/bench-relay-bin.sh
. "$ROOT/scripts/bench-relay-bin.sh"

DIR=$(mktemp -d /tmp/bench-idle.XXXXXX)
PIDS=()
cleanup() {
	local p
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	sleep 0.3
	for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$DIR"
}
trap cleanup EXIT
head -c 32 /dev/urandom >"$DIR/key"

# The echo server and the client, in one file: `idle.py server PORT` / `idle.py client PORT N`.
cat >"$DIR/idle.py" <<'PY'
import os, selectors, socket, sys, time

def server(port):
    sel = selectors.DefaultSelector()
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", port)); ls.listen(4096); ls.setblocking(False)
    sel.register(ls, selectors.EVENT_READ)
    print("ready", flush=True)
    while True:  # runs until the script kills it
        for key, _ in sel.select(1.0):
            s = key.fileobj
            if s is ls:
                while True:
                    try:
                        c, _ = ls.accept()
                    except BlockingIOError:
                        break
                    c.setblocking(False)
                    sel.register(c, selectors.EVENT_READ)
                continue
            try:
                data = s.recv(65536)
            except OSError:
                data = b""
            if data:
                try:
                    s.sendall(data)
                except OSError:
                    pass
            else:
                sel.unregister(s); s.close()

def client(port, n, timeout):
    deadline = time.monotonic() + timeout
    socks, batch = [], 200
    while len(socks) < n:
        if time.monotonic() > deadline:
            sys.exit(f"timed out with {len(socks)} of {n} connections established")
        group = []
        for _ in range(min(batch, n - len(socks))):
            s = socket.create_connection(("127.0.0.1", port), timeout=60)
            s.sendall(b"x")
            group.append(s)
        for s in group:
            if s.recv(1) != b"x":
                sys.exit(f"connection {len(socks)} got no echo")
            socks.append(s)
    print(f"established {len(socks)}", flush=True)
    # Hold the connections until the script closes our stdin (or kills us).
    sys.stdin.read()

if sys.argv[1] == "server":
    server(int(sys.argv[2]))
else:
    client(int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]))
PY

free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }

# Waits (bounded) until something listens on 127.0.0.1:$1.
wait_listen() {
	local i
	for i in $(seq 1 100); do
		python3 -c 'import socket,sys; socket.create_connection(("127.0.0.1",int(sys.argv[1])),1).close()' "$1" \
			2>/dev/null && return 0
		sleep 0.1
	done
	echo "nothing listens on port $1" >&2
	return 1
}

# run NAME BIN: appends "NAME enc_before enc_after dec_before dec_after" to $DIR/results
run() {
	local name=$1 bin=$2 sp dp ep srv dec enc cli fifo
	sp=$(free_port) dp=$(free_port) ep=$(free_port)
	python3 "$DIR/idle.py" server "$sp" >/dev/null & srv=$!; PIDS+=("$srv")
	wait_listen "$sp"
	# shellcheck disable=SC2086
	"$bin" -F -d -n 0 $flags -s "[127.0.0.1]:$dp" -t "[127.0.0.1]:$sp" -k "$DIR/key" 2>>"$DIR/$name.log" & dec=$!
	PIDS+=("$dec")
	# shellcheck disable=SC2086
	"$bin" -F -e -n 0 $flags -s "[127.0.0.1]:$ep" -t "[127.0.0.1]:$dp" -k "$DIR/key" 2>>"$DIR/$name.log" & enc=$!
	PIDS+=("$enc")
	wait_listen "$dp"
	wait_listen "$ep"
	# Warm-up: one connection through the pair, echoed, closed.
	timeout 30 python3 "$DIR/idle.py" client "$ep" 1 30 </dev/null >/dev/null
	sleep 0.5
	local eb db ea da
	eb=$(rss_kib "$enc") db=$(rss_kib "$dec")
	fifo=$DIR/hold-$name
	mkfifo "$fifo"
	timeout "$((TIMEOUT + 30))" python3 "$DIR/idle.py" client "$ep" "$n" "$TIMEOUT" <"$fifo" \
		>"$DIR/client-$name.out" & cli=$!
	PIDS+=("$cli")
	exec 7>"$fifo"
	local i
	for i in $(seq 1 "$((TIMEOUT * 10))"); do
		grep -q established "$DIR/client-$name.out" 2>/dev/null && break
		kill -0 "$cli" 2>/dev/null || break
		sleep 0.1
	done
	if ! grep -q established "$DIR/client-$name.out"; then
		exec 7>&-
		echo "$name: the client did not establish $n connections" >&2
		return 1
	fi
	sleep 1
	ea=$(rss_kib "$enc") da=$(rss_kib "$dec")
	exec 7>&-
	wait "$cli" 2>/dev/null || true
	kill "$enc" "$dec" "$srv" 2>/dev/null || true
	echo "$name $eb $ea $db $da" >>"$DIR/results"
	echo "$name: -e RSS $eb -> $ea KiB, -d RSS $db -> $da KiB with $n idle connections" >&2
}

run "$(basename "$RELAY")" "$RELAY" || echo "$RELAY: no result" >&2
if [ "$spiped" = 0 ]; then
	:
elif command -v spiped >/dev/null; then
	run spiped "$(command -v spiped)" || echo "spiped: no result" >&2
else
	echo "spiped not installed: skipping it" >&2
fi
[ -s "$DIR/results" ] || exit 1

printf '\n%d idle connections through an -e/-d pair (flags: -n 0 %s)\n\n' "$n" "$flags"
printf '| relay | -e RSS before → after (KiB) | -e KiB/conn | -d RSS before → after (KiB) | -d KiB/conn |\n'
printf '|---|---|---:|---|---:|\n'
while read -r name eb ea db da; do
	awk -v name="$name" -v eb="$eb" -v ea="$ea" -v db="$db" -v da="$da" -v n="$n" 'BEGIN {
		printf "| %s | %d → %d | %.2f | %d → %d | %.2f |\n", name, eb, ea, (ea-eb)/n, db, da, (da-db)/n }'
done <"$DIR/results"
