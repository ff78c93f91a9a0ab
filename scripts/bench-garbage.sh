#!/usr/bin/env bash
# CPU cost of unauthenticated handshakes (issue 7, "Abuse"): floods a `-d` end with random
# 320-byte handshakes (32-byte "nonce" + 288-byte "y ‖ h") over loopback while a real client
# keeps connecting through a matching `-e` end (in a second flood, so the real handshakes do not
# count in the CPU figure), and reports the `-d` process's CPU time per
# garbage handshake and whether every real client got through within the timeout.
#
# Usage: scripts/bench-garbage.sh [COUNT] [PARALLEL]
#   COUNT     garbage connections per run (default 20000)
#   PARALLEL  flooding threads (default 2)
# Environment:
#   BIN=target/release/spiperelay   the relay under test (built with `cargo build --release`)
#   REF=/usr/bin/spiped             also measure the reference spiped -d (set REF= to skip)
#   MODES="compat x25519"           which of our modes to measure
#   TIMEOUT=5                       -o of both ends; a real client must finish within it
#
# Everything runs on 127.0.0.1 with ports picked by the kernel; every loop is bounded by COUNT
# and by socket timeouts; only processes started here are killed, by PID. This is a benchmark:
# run it on a quiet machine. The CPU time comes from /proc/<pid>/stat (utime + stime).
set -euo pipefail

COUNT=${1:-20000}
PARALLEL=${2:-2}
BIN=${BIN:-target/release/spiperelay}
REF=${REF-/usr/bin/spiped}
MODES=${MODES:-"compat x25519"}
TIMEOUT=${TIMEOUT:-5}

command -v python3 >/dev/null || { echo "bench-garbage: needs python3" >&2; exit 1; }
[ -x "$BIN" ] || { echo "bench-garbage: $BIN not found (cargo build --release)" >&2; exit 1; }

dir=$(mktemp -d)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
    rm -rf "$dir"
}
trap cleanup EXIT
head -c 32 /dev/urandom >"$dir/key"

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# An echo target for the real client.
echo_port=$(free_port)
python3 - "$echo_port" <<'EOF' &
import socket, sys, threading
srv = socket.socket(); srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", int(sys.argv[1]))); srv.listen(128)
def serve(c):
    c.settimeout(30)
    try:
        while True:
            d = c.recv(65536)
            if not d: break
            c.sendall(d)
        c.shutdown(socket.SHUT_WR)
    except OSError: pass
    finally: c.close()
while True:
    c, _ = srv.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
EOF
pids+=($!)

wait_port() {
    for _ in $(seq 1 100); do
        python3 -c 'import socket,sys; socket.create_connection(("127.0.0.1",int(sys.argv[1])),0.2).close()' "$1" 2>/dev/null && return 0
        sleep 0.05
    done
    echo "bench-garbage: port $1 never opened" >&2
    return 1
}

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

# One run: $1 label, $2 -d binary, $3 -e binary, $4... extra flags for both ends.
run() {
    local label=$1 dbin=$2 ebin=$3; shift 3
    local dport eport dpid epid
    dport=$(free_port); eport=$(free_port)
    "$dbin" -F -d -o "$TIMEOUT" -n 0 -s "[127.0.0.1]:$dport" -t "[127.0.0.1]:$echo_port" \
        -k "$dir/key" "$@" 2>"$dir/d.log" &
    dpid=$!; pids+=($dpid)
    "$ebin" -F -e -o "$TIMEOUT" -s "[127.0.0.1]:$eport" -t "[127.0.0.1]:$dport" \
        -k "$dir/key" "$@" 2>"$dir/e.log" &
    epid=$!; pids+=($epid)
    wait_port "$dport"; wait_port "$eport"
    # Let the key pool fill (its CPU is not a garbage handshake's) before sampling.
    sleep "${SETTLE:-1}"
    local before after hz
    hz=$(getconf CLK_TCK)
    # Phase 1 (no real clients): the -d end's CPU over COUNT garbage handshakes.
    before=$(cpu_ticks "$dpid")
    flood "$dport" "$eport" "$COUNT" "$PARALLEL" "$TIMEOUT" 0 >"$dir/result"
    after=$(cpu_ticks "$dpid")
    read -r n secs _ _ _ <"$dir/result"
    # Phase 2: the same flood while a real client connects through the -e end every 50 ms.
    flood "$dport" "$eport" "$COUNT" "$PARALLEL" "$TIMEOUT" 1 >"$dir/result2"
    read -r _ _ ok tries worst <"$dir/result2"
    kill "$dpid" "$epid" 2>/dev/null || true
    wait "$dpid" "$epid" 2>/dev/null || true
    python3 - "$label" "$n" "$secs" "$ok" "$tries" "$worst" "$before" "$after" "$hz" <<'EOF'
import sys
label, n, secs, ok, tries, worst, b, a, hz = sys.argv[1:]
n, secs, worst = int(n), float(secs), float(worst)
cpu = (int(a) - int(b)) / int(hz)
print(f"| {label} | {n} | {n/secs:.0f}/s | {cpu*1000:.0f} ms | {cpu/n*1e6 if n else 0:.1f} µs | {ok}/{tries} | {worst*1000:.1f} ms |")
EOF
}

# The flooder: $1 -d port, $2 -e port, $3 count, $4 threads, $5 timeout, $6 real clients (0/1).
# Prints: garbage connections done, seconds, real clients OK, real clients tried, worst latency.
flood() {
    python3 - "$@" <<'EOF'
import os, socket, sys, threading, time
dport, eport, count, par, timeout, clients = map(float, sys.argv[1:7])
dport, eport, count, par = int(dport), int(eport), int(count), int(par)
done = [0]; lock = threading.Lock(); stop = threading.Event()
def flood(n):
    for _ in range(n):
        try:
            s = socket.create_connection(("127.0.0.1", dport), timeout)
            s.settimeout(timeout)
            s.sendall(os.urandom(320))
            for _ in range(16):  # read the 32-byte nonce, then EOF or reset
                if not s.recv(4096): break
        except OSError:
            pass
        finally:
            try: s.close()
            except Exception: pass
        with lock: done[0] += 1
threads = [threading.Thread(target=flood, args=(count // par,)) for _ in range(par)]
t0 = time.monotonic()
for t in threads: t.start()
ok = tries = 0; worst = 0.0
payload = os.urandom(3000)
while clients and any(t.is_alive() for t in threads) and tries < 10000:
    tries += 1; c0 = time.monotonic()
    try:
        c = socket.create_connection(("127.0.0.1", eport), timeout)
        c.settimeout(timeout); c.sendall(payload); c.shutdown(socket.SHUT_WR)
        got = b""
        while len(got) <= len(payload):
            d = c.recv(65536)
            if not d: break
            got += d
        c.close()
        if got == payload and time.monotonic() - c0 < timeout: ok += 1
    except OSError:
        pass
    worst = max(worst, time.monotonic() - c0)
    time.sleep(0.05)
for t in threads: t.join()
print(done[0], time.monotonic() - t0, ok, tries, worst)
EOF
}

echo "| -d end | garbage handshakes | rate | -d CPU | CPU per garbage handshake | real clients OK | worst real client |"
echo "|---|---|---|---|---|---|---|"
for m in $MODES; do
    case $m in
        compat) run "spiperelay" "$BIN" "$BIN" ;;
        x25519) run "spiperelay --x25519" "$BIN" "$BIN" --x25519 ;;
        *) echo "bench-garbage: unknown mode $m" >&2; exit 1 ;;
    esac
done
if [ -n "$REF" ] && [ -x "$REF" ]; then
    run "spiped" "$REF" "$REF"
fi
