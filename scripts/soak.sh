#!/usr/bin/env bash
# Soak: long transfers through an -e/-d pair, every byte checked, with the relays' RSS and
# descriptor counts sampled throughout (reliability catalogue 4.6).
#
# usage: scripts/soak.sh [--short] [--no-build] [--bin PATH] [--backends "io_uring epoll"]
#
# Per backend: a Python echo server, a -d end in front of it, a -e end in front of that
# (SPIPERELAY_BACKEND forced, "-n 0"), then
#   1. one connection carrying 10 GiB each way (--short: 256 MiB),
#   2. 64 connections at once carrying 1 GiB each way each (--short: 8 x 16 MiB).
# Each connection's stream is distinct (an offset stamped into every 4 KiB), its SHA-256 is
# computed as sent and as echoed back, and the two must match. Every second the VmRSS and the
# descriptor count of both ends are sampled. Pass: all hashes match; at the end each end holds
# the descriptors it held before the first transfer; RSS at the end of the run is within
# SOAK_RSS_SLACK_KIB (default 16384) of what it was after the first 10 % of the single stream
# (so the buffers are warm). Exits 1 on any failure.
# Environment: SPIPERELAY_BENCH_BIN replaces the relay binary (--bin too). Loopback only;
# every wait is bounded; only processes this script started are signalled, by PID.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD

short=0 build=1 backends="io_uring epoll"
while [ $# -gt 0 ]; do
	case "$1" in
	--short) short=1 ;;
	--no-build) build=0 ;;
	--bin) export SPIPERELAY_BENCH_BIN=$2; shift ;;
	--backends) backends=$2; shift ;;
	-h | --help) sed -n '2,19p' "$0"; exit 0 ;;
	*) echo "unknown argument: $1" >&2; exit 2 ;;
	esac
	shift
done
if [ "$short" = 1 ]; then
	one=$((256 << 20)) many=8 each=$((16 << 20)) limit=600
else
	one=$((10 << 30)) many=64 each=$((1 << 30)) limit=14400
fi
slack=${SOAK_RSS_SLACK_KIB:-16384}
command -v python3 >/dev/null || { echo "python3 not found" >&2; exit 1; }

# shellcheck source=scripts/bench-relay-bin.sh
. "$ROOT/scripts/bench-relay-bin.sh"

DIR=$(mktemp -d /tmp/soak.XXXXXX)
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

cat >"$DIR/soak.py" <<'PY'
import hashlib, os, selectors, socket, sys, time

CHUNK = 1 << 20
BASE = os.urandom(CHUNK)

def stream_chunk(conn_id, off):
    # 1 MiB of the connection's stream at offset `off`: BASE with (conn_id, offset) stamped
    # into the first 16 bytes of every 4 KiB, so no two 4 KiB blocks anywhere are alike.
    b = bytearray(BASE)
    for k in range(0, CHUNK, 4096):
        b[k:k + 16] = conn_id.to_bytes(8, "little") + (off + k).to_bytes(8, "little")
    return bytes(b)

def server(port):
    sel = selectors.DefaultSelector()
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", port)); ls.listen(1024); ls.setblocking(False)
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
                    out[c] = [bytearray(), False]
                    sel.register(c, selectors.EVENT_READ)
                continue
            st = out[s]; buf = st[0]
            if ev & selectors.EVENT_WRITE and buf:
                try:
                    k = s.send(buf); del buf[:k]
                except BlockingIOError:
                    pass
                except OSError:
                    buf.clear(); st[1] = True
            if ev & selectors.EVENT_READ and not st[1] and len(buf) < (4 << 20):
                try:
                    d = s.recv(1 << 18)
                except BlockingIOError:
                    d = None
                except OSError:
                    d = b""
                if d == b"":
                    st[1] = True
                elif d:
                    buf += d
            if st[1] and not buf:
                try:
                    s.shutdown(socket.SHUT_WR)
                except OSError:
                    pass
                sel.unregister(s); s.close(); del out[s]; continue
            want = (selectors.EVENT_READ if not st[1] and len(buf) < (4 << 20) else 0) | (selectors.EVENT_WRITE if buf else 0)
            sel.modify(s, want or selectors.EVENT_READ)

def client(port, n, nbytes, timeout):
    deadline = time.monotonic() + timeout
    sel = selectors.DefaultSelector()
    conns = {}
    for i in range(n):
        s = socket.create_connection(("127.0.0.1", port), timeout=30)
        s.setblocking(False)
        conns[s] = dict(id=i + 1, sent=0, got=0, tx=hashlib.sha256(), rx=hashlib.sha256(), cur=b"", pos=0)
        sel.register(s, selectors.EVENT_READ | selectors.EVENT_WRITE)
    done = 0; bad = 0
    t0 = time.monotonic()
    while done < n:
        if time.monotonic() > deadline:
            sys.exit(f"timed out: {done} of {n} streams finished")
        for key, ev in sel.select(1.0):
            s = key.fileobj; c = conns[s]
            if ev & selectors.EVENT_WRITE and c["sent"] < nbytes:
                if c["pos"] == len(c["cur"]):
                    ch = stream_chunk(c["id"], c["sent"])[: nbytes - c["sent"]]
                    c["tx"].update(ch); c["cur"] = ch; c["pos"] = 0
                try:
                    k = s.send(memoryview(c["cur"])[c["pos"]:])
                    c["pos"] += k; c["sent"] += k
                except BlockingIOError:
                    pass
                if c["sent"] >= nbytes:
                    s.shutdown(socket.SHUT_WR)
                    sel.modify(s, selectors.EVENT_READ)
            if ev & selectors.EVENT_READ:
                try:
                    d = s.recv(1 << 18)
                except BlockingIOError:
                    continue
                except OSError as e:
                    sys.exit(f"connection {c['id']}: {e} after {c['got']} bytes")
                if d:
                    c["rx"].update(d); c["got"] += len(d)
                else:
                    ok = c["got"] == nbytes and c["rx"].digest() == c["tx"].digest()
                    bad += not ok
                    print(f"conn {c['id']}: {c['got']} bytes back, sha256 sent {c['tx'].hexdigest()[:16]} "
                          f"echoed {c['rx'].hexdigest()[:16]} {'OK' if ok else 'MISMATCH'}", flush=True)
                    sel.unregister(s); s.close(); done += 1
    dt = time.monotonic() - t0
    print(f"{n} x {nbytes} bytes each way in {dt:.1f} s ({2 * n * nbytes / dt / 1e6:.0f} MB/s total)", flush=True)
    sys.exit(1 if bad else 0)

if sys.argv[1] == "server":
    server(int(sys.argv[2]))
else:
    client(int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5]))
PY

free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
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
rss() { awk '$1 == "VmRSS:" {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
fds() { find "/proc/$1/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l; }

fail=0
summary=()
run() {
	local be=$1 sp dp ep srv dec enc sampler
	sp=$(free_port) dp=$(free_port) ep=$(free_port)
	python3 "$DIR/soak.py" server "$sp" & srv=$!; PIDS+=("$srv")
	wait_listen "$sp"
	SPIPERELAY_BACKEND=$be "$RELAY" -F -d -n 0 -o 30 -s "[127.0.0.1]:$dp" -t "[127.0.0.1]:$sp" \
		-k "$DIR/key" 2>>"$DIR/$be-dec.log" & dec=$!
	PIDS+=("$dec")
	SPIPERELAY_BACKEND=$be "$RELAY" -F -e -n 0 -o 30 -s "[127.0.0.1]:$ep" -t "[127.0.0.1]:$dp" \
		-k "$DIR/key" 2>>"$DIR/$be-enc.log" & enc=$!
	PIDS+=("$enc")
	wait_listen "$dp"
	wait_listen "$ep"
	sleep 0.3
	local fe0 fd0
	fe0=$(fds "$enc") fd0=$(fds "$dec")
	: >"$DIR/$be.samples"
	(
		for _ in $(seq 1 "$limit"); do
			echo "$(date +%s) $(rss "$enc") $(rss "$dec") $(fds "$enc") $(fds "$dec")" >>"$DIR/$be.samples"
			sleep 1
		done
	) & sampler=$!
	PIDS+=("$sampler")
	local ok=1 t0 warm_at
	t0=$(date +%s)
	echo "== $be: 1 connection, $one bytes each way" >&2
	timeout "$limit" python3 "$DIR/soak.py" client "$ep" 1 "$one" "$limit" >"$DIR/$be-one.out" || ok=0
	cat "$DIR/$be-one.out" >&2
	echo "== $be: $many connections, $each bytes each way each" >&2
	timeout "$limit" python3 "$DIR/soak.py" client "$ep" "$many" "$each" "$limit" >"$DIR/$be-many.out" || ok=0
	grep -v OK "$DIR/$be-many.out" >&2 || true
	sleep 2
	kill "$sampler" 2>/dev/null || true
	local fe1 fd1 re1 rd1
	fe1=$(fds "$enc") fd1=$(fds "$dec") re1=$(rss "$enc") rd1=$(rss "$dec")
	# The RSS once the single stream had run 10 % of its time (buffers warm).
	local lines warm
	lines=$(wc -l <"$DIR/$be.samples")
	warm=$(awk -v n="$lines" 'NR == int(n * 0.1) + 1 || (NR == 1 && n < 10) {print $2, $3; exit}' "$DIR/$be.samples")
	local rew rdw peak_e peak_d
	read -r rew rdw <<<"$warm"
	peak_e=$(awk 'BEGIN{m=0} $2>m{m=$2} END{print m}' "$DIR/$be.samples")
	peak_d=$(awk 'BEGIN{m=0} $3>m{m=$3} END{print m}' "$DIR/$be.samples")
	[ "$fe1" -le "$fe0" ] || { echo "$be: -e holds $fe1 descriptors, $fe0 before" >&2; ok=0; }
	[ "$fd1" -le "$fd0" ] || { echo "$be: -d holds $fd1 descriptors, $fd0 before" >&2; ok=0; }
	[ "$re1" -le $((rew + slack)) ] || { echo "$be: -e RSS $re1 KiB at the end, $rew KiB when warm" >&2; ok=0; }
	[ "$rd1" -le $((rdw + slack)) ] || { echo "$be: -d RSS $rd1 KiB at the end, $rdw KiB when warm" >&2; ok=0; }
	kill "$enc" "$dec" "$srv" 2>/dev/null || true
	local verdict=PASS
	[ "$ok" = 1 ] || { verdict=FAIL; fail=1; }
	summary+=("| $be | $(tail -1 "$DIR/$be-one.out" | sed 's/ bytes each way//') | $(tail -1 "$DIR/$be-many.out" | sed 's/ bytes each way//') | $fe0 → $fe1 / $fd0 → $fd1 | $rew → $re1 (peak $peak_e) | $rdw → $rd1 (peak $peak_d) | $verdict |")
	echo "== $be: $verdict in $(($(date +%s) - t0)) s" >&2
}

for be in $backends; do
	run "$be"
done
printf '\nsoak (%s), relay %s\n\n' "$([ "$short" = 1 ] && echo short || echo full)" "$RELAY"
printf '| backend | single stream | concurrent streams | fds -e / -d (before → after) | -e RSS KiB (warm → end) | -d RSS KiB (warm → end) | result |\n'
printf '|---|---|---|---|---|---|---|\n'
printf '%s\n' "${summary[@]}"
exit "$fail"
