#!/usr/bin/env bash
# The seed scenario on one machine, from nothing: installs what is missing (Debian packages
# redis-server and redis-tools, via apt-get), builds spiperelay, generates a key, starts Redis
# on a Unix socket, our `-d` in front of it and our `-e` on a local TCP port, then talks to Redis
# through the encrypted pipe with redis-cli. Everything it starts is stopped by PID on exit.
#
# Usage: scripts/demo.sh [PORT]   (PORT: the plaintext port of the -e end, default 16379)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

PORT="${1:-16379}"
ENC_PORT=$((PORT + 1))

need=()
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
command -v redis-cli >/dev/null 2>&1 || need+=(redis-tools)
if ((${#need[@]})); then
	SUDO=""
	[ "$(id -u)" -eq 0 ] || SUDO="sudo"
	echo "== installing ${need[*]}" >&2
	$SUDO apt-get update -q
	DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${need[@]}"
fi

echo "== cargo build --release" >&2
cargo build --release --locked
BIN=target/release/spiperelay

DIR="$(mktemp -d /tmp/spiperelay-demo.XXXXXX)"
PIDS=()
cleanup() {
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
	rm -rf "$DIR"
}
trap cleanup EXIT

echo "== key: spiperelay keygen $DIR/key (32 random bytes, mode 0600)" >&2
"$BIN" keygen "$DIR/key" >&2

redis-server --port 0 --unixsocket "$DIR/redis.sock" --save '' --appendonly no \
	--daemonize no >"$DIR/redis.log" 2>&1 &
PIDS+=($!)
# The decrypting end: encrypted TCP in, plaintext to Redis's Unix socket.
"$BIN" -F -d -s "[127.0.0.1]:$ENC_PORT" -t "$DIR/redis.sock" -k "$DIR/key" &
PIDS+=($!)
# The encrypting end: plaintext TCP in (where redis-cli connects), encrypted out.
"$BIN" -F -e -s "[127.0.0.1]:$PORT" -t "[127.0.0.1]:$ENC_PORT" -k "$DIR/key" &
PIDS+=($!)

for _ in $(seq 50); do
	[ -S "$DIR/redis.sock" ] && redis-cli -p "$PORT" ping >/dev/null 2>&1 && break
	sleep 0.1
done

echo "== redis-cli -p $PORT set test success; get test (through the pipe)" >&2
redis-cli -p "$PORT" set test success
got="$(redis-cli -p "$PORT" get test)"
echo "$got"
echo "== redis-cli -p $ENC_PORT ping (straight at the encrypted port: must fail)" >&2
if out="$(timeout 10 redis-cli -p "$ENC_PORT" ping 2>&1)" && [ "$out" = PONG ]; then
	echo "unexpected: the encrypted port answered in plaintext" >&2
	exit 1
fi
echo "refused as expected: ${out:-no reply}" >&2
[ "$got" = success ]
echo "== demo ok" >&2
