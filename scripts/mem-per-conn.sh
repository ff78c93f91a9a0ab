#!/usr/bin/env bash
# Memory per active connection: peak RSS growth of each end of an -e/-d pair while N
# connections stream at once, on each io backend, and what is given back after the burst.
#
# usage: scripts/mem-per-conn.sh [N] [--bytes B] [--no-build] [--backends "io_uring epoll"]
#                                [--budget KIB] [--check] [--trim]
#
# For each backend: an echo server on loopback (Python), a -d end in front of it, a -e end in
# front of that (both "-n 0", SPIPERELAY_BACKEND forced), one warm-up connection, then N
# clients at once, each writing B bytes (default 1 MiB) and reading the echo back while it
# writes (so every connection is streaming in both directions at the same time). Per end:
# VmRSS before the burst, VmHWM (peak) during it, VmRSS 2 s after the last client closed.
# "KiB/conn" is (peak - before) / N. With --check the script exits 1 if any end exceeds
# --budget KiB per connection (default 64). With --trim the ends run as the relay_trim example
# (the same relay, built in release, with a measurement hook): after the "2 s after" reading
# each end calls spiperelay::os::memory::release_free_heap (malloc_trim(0)) and its VmRSS is
# read again, which shows what returning free heap after a burst gives back.
# Environment: SPIPERELAY_BENCH_BIN replaces the relay binary (e.g. target/debug/spiperelay to
# skip the release build). Loopback only; every wait is bounded; only processes this script
# started are signalled, by PID.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD

n=256 bytes=$((1 << 20)) build=1 backends="io_uring epoll" budget=64 check=0 trim=0
while [ $# -gt 0 ]; do
	case "$1" in
	--no-build) build=0 ;;
	--bytes) bytes=$2; shift ;;
	--backends) backends=$2; shift ;;
	--budget) budget=$2; shift ;;
	--check) check=1 ;;
	--trim) trim=1 ;;
	-h | --help) sed -n '2,21p' "$0"; exit 0 ;;
	[0-9]*) n=$1 ;;
	*) echo "unknown argument: $1" >&2; exit 2 ;;
	esac
	shift
done
command -v python3 >/dev/null || { echo "python3 not found" >&2; exit 1; }
ulimit -n "$(ulimit -Hn)"

if [ "$trim" = 1 ]; then
	[ "$build" = 1 ] && cargo build --release --locked --example relay_trim
	RELAY=${CARGO_TARGET_DIR:-$ROOT/target}/release/examples/relay_trim
	[ -x "$RELAY" ] || { echo "no relay_trim example at $RELAY" >&2; exit 1; }
else
	# shellcheck source=scripts/bench-relay-bin.sh
	. "$ROOT/scripts/bench-relay-bin.sh"
fi

DIR=$(mktemp -d /tmp/mem-per-conn.XXXXXX)
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
chmod 600 "$DIR/key"

cat >"$DIR/stream.py" <<'PY'
import selectors, socket, sys, time

def server(port):
    sel = selectors.DefaultSelector()
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", port)); ls.listen(4096); ls.setblocking(False)
    sel.register(ls, selectors.EVENT_READ)
    out = {}
    while True:  # runs until the script kills it
        for key, ev in sel.select(1.0):
            s = key.fileobj
            if s is ls:
                while True:
                    try:
                        c, _ = ls.accept()
                    except BlockingIOError:
                        break
                    c.setblocking(False)
                    out[c] = bytearray()
                    sel.register(c, selectors.EVENT_READ)
                continue
            buf = out[s]
            if ev & selectors.EVENT_WRITE and buf:
                try:
                    k = s.send(buf); del buf[:k]
                except BlockingIOError:
                    pass
                except OSError:
                    buf.clear()
            if ev & selectors.EVENT_READ and len(buf) < (1 << 20):
                try:
                    data = s.recv(65536)
                except BlockingIOError:
                    data = None
                except OSError:
                    data = b""
                if data == b"":
                    sel.unregister(s); s.close(); del out[s]; continue
                if data:
                    buf += data
            want = (selectors.EVENT_READ if len(buf) < (1 << 20) else 0) | (selectors.EVENT_WRITE if buf else 0)
            sel.modify(s, want or selectors.EVENT_READ)

def client(port, n, nbytes, timeout):
    deadline = time.monotonic() + timeout
    sel = selectors.DefaultSelector()
    chunk = bytes(range(256)) * 256
    state = {}
    for i in range(n):
        s = socket.create_connection(("127.0.0.1", port), timeout=30)
        s.setblocking(False)
        state[s] = [0, 0]  # sent, received
        sel.register(s, selectors.EVENT_READ | selectors.EVENT_WRITE)
    done = 0
    while done < n:
        if time.monotonic() > deadline:
            sys.exit(f"timed out: {done} of {n} streams finished")
        for key, ev in sel.select(1.0):
            s = key.fileobj; st = state[s]
            if ev & selectors.EVENT_WRITE and st[0] < nbytes:
                try:
                    st[0] += s.send(chunk[: min(len(chunk), nbytes - st[0])])
                except BlockingIOError:
                    pass
                if st[0] >= nbytes:
                    s.shutdown(socket.SHUT_WR)
                    sel.modify(s, selectors.EVENT_READ)
            if ev & selectors.EVENT_READ:
                try:
                    d = s.recv(65536)
                except BlockingIOError:
                    continue
                if not d:
                    if st[1] != nbytes:
                        sys.exit(f"stream ended after {st[1]} of {nbytes} bytes")
                    sel.unregister(s); s.close(); done += 1
                else:
                    st[1] += len(d)
    print("done", flush=True)

if sys.argv[1] == "server":
    server(int(sys.argv[2]))
else:
    client(int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5]))
PY

free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
field_kib() { awk -v f="$2:" '$1 == f {print $2}' "/proc/$1/status"; }
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

# Asks the relay_trim end whose trigger file is $1 to call malloc_trim(0); prints its VmRSS
# after the call (KiB), or fails if it did not answer within 10 s.
trim_rss() {
	local i
	rm -f "$1.done"
	: >"$1"
	for i in $(seq 1 100); do
		if [ -s "$1.done" ]; then
			awk '{ print $2 }' "$1.done"
			awk -v f="$1" '{ printf "%s: malloc_trim %s -> %s KiB in %s us; receive pool resident %s KiB\n", f, $1, $2, $4, $5 }' \
				"$1.done" >>"$DIR/trim-details"
			return 0
		fi
		sleep 0.1
	done
	echo "no answer to the trim request $1" >&2
	return 1
}

over=0
run() {
	local be=$1 sp dp ep srv dec enc
	sp=$(free_port) dp=$(free_port) ep=$(free_port)
	python3 "$DIR/stream.py" server "$sp" & srv=$!; PIDS+=("$srv")
	wait_listen "$sp"
	SPIPERELAY_TRIM_TRIGGER=$DIR/trim-$be-d SPIPERELAY_BACKEND=$be \
		"$RELAY" -F -d -n 0 -s "[127.0.0.1]:$dp" -t "[127.0.0.1]:$sp" -k "$DIR/key" 2>>"$DIR/$be.log" & dec=$!
	PIDS+=("$dec")
	SPIPERELAY_TRIM_TRIGGER=$DIR/trim-$be-e SPIPERELAY_BACKEND=$be \
		"$RELAY" -F -e -n 0 -s "[127.0.0.1]:$ep" -t "[127.0.0.1]:$dp" -k "$DIR/key" 2>>"$DIR/$be.log" & enc=$!
	PIDS+=("$enc")
	wait_listen "$dp"
	wait_listen "$ep"
	timeout 60 python3 "$DIR/stream.py" client "$ep" 1 65536 60 >/dev/null
	sleep 0.5
	# VmHWM can only be reset by writing 5 to clear_refs (own processes: allowed).
	echo 5 >"/proc/$enc/clear_refs" 2>/dev/null || true
	echo 5 >"/proc/$dec/clear_refs" 2>/dev/null || true
	local eb db
	eb=$(field_kib "$enc" VmRSS) db=$(field_kib "$dec" VmRSS)
	local t0 t1
	t0=$(date +%s.%N)
	if ! timeout 600 python3 "$DIR/stream.py" client "$ep" "$n" "$bytes" 590 >"$DIR/client-$be.out"; then
		echo "$be: the burst failed; relay log tail:" >&2
		tail -5 "$DIR/$be.log" >&2
		return 1
	fi
	t1=$(date +%s.%N)
	local eh dh
	eh=$(field_kib "$enc" VmHWM) dh=$(field_kib "$dec" VmHWM)
	sleep 2
	local ea da et=- dt=-
	ea=$(field_kib "$enc" VmRSS) da=$(field_kib "$dec" VmRSS)
	if [ "$trim" = 1 ]; then
		et=$(trim_rss "$DIR/trim-$be-e") || et=-
		dt=$(trim_rss "$DIR/trim-$be-d") || dt=-
	fi
	kill "$enc" "$dec" "$srv" 2>/dev/null || true
	echo "$be $eb $eh $ea $et $db $dh $da $dt $t0 $t1" >>"$DIR/results"
}

for be in $backends; do
	run "$be" || echo "$be: no result" >&2
done
[ -s "$DIR/results" ] || exit 1

printf '\n%d connections streaming %d bytes each way at once through an -e/-d pair (%s)\n\n' \
	"$n" "$bytes" "$RELAY"
printf '| backend | end | RSS before (KiB) | peak (KiB) | KiB/conn at peak | RSS 2 s after (KiB) | after malloc_trim (KiB) | burst (s) |\n'
printf '|---|---|---:|---:|---:|---:|---:|---:|\n'
while read -r be eb eh ea et db dh da dt t0 t1; do
	for end in e d; do
		if [ $end = e ]; then b=$eb h=$eh a=$ea t=$et; else b=$db h=$dh a=$da t=$dt; fi
		per=$(awk -v b="$b" -v h="$h" -v n="$n" 'BEGIN { printf "%.1f", (h - b) / n }')
		printf '| %s | -%s | %d | %d | %s | %d | %s | %.1f |\n' "$be" "$end" "$b" "$h" "$per" "$a" \
			"$t" "$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')"
		if awk -v p="$per" -v m="$budget" 'BEGIN { exit !(p > m) }'; then over=1; fi
	done
done <"$DIR/results"
if [ -s "$DIR/trim-details" ]; then
	echo
	sed "s|$DIR/trim-||" "$DIR/trim-details"
fi
if [ "$check" = 1 ] && [ "$over" = 1 ]; then
	echo "over the budget of $budget KiB per connection" >&2
	exit 1
fi
