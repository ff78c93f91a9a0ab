#!/usr/bin/env bash
# Redis replication between two hosts through spiperelay, on one machine. Two network
# namespaces stand for the hosts A and B, joined by a veth pair addressed from 169.254.79.0/30
# (nothing outside the namespaces is addressed). Each host runs a redis-server on 127.0.0.1:6379
# and one spiperelay process with examples/replication-a.toml or -b.toml (host addresses, key
# and control-socket paths substituted): a `receive` pipe (decrypt, veth -> local Redis) and a
# `send` pipe (encrypt, 127.0.0.1:6380 -> the other host's receive pipe). The master in A gets
# a data set of tens of MB, the replica in B runs `REPLICAOF 127.0.0.1 6380`, writes go on
# while the link is cut and B's spiperelay is restarted (SIGTERM, then started again), and the
# two DEBUG DIGESTs are printed.
# Everything it starts is stopped by PID, and the namespaces removed, on exit.
#
# Usage: sudo scripts/demo-replication.sh
#   SPIPERELAY_BIN=path/to/spiperelay   use that binary instead of `cargo build --release`
# Needs root (network namespaces), ip (iproute2), redis-server, redis-cli and redis-benchmark
# (redis-tools), and cargo unless SPIPERELAY_BIN is set.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

ADDR_A=169.254.79.1
ADDR_B=169.254.79.2

missing=()
[ "$(id -u)" -eq 0 ] || missing+=("root: creating network namespaces needs it (run with sudo)")
command -v ip >/dev/null 2>&1 || missing+=("ip: Debian package iproute2")
command -v redis-server >/dev/null 2>&1 || missing+=("redis-server: Debian package redis-server")
for t in redis-cli redis-benchmark; do
	command -v "$t" >/dev/null 2>&1 || missing+=("$t: Debian package redis-tools")
done
if [ -z "${SPIPERELAY_BIN:-}" ]; then
	command -v cargo >/dev/null 2>&1 || missing+=("cargo (or SPIPERELAY_BIN=path/to/spiperelay)")
elif [ ! -x "$SPIPERELAY_BIN" ]; then
	missing+=("SPIPERELAY_BIN=$SPIPERELAY_BIN is not an executable")
fi
if ((${#missing[@]})); then
	echo "demo-replication: cannot run; missing:" >&2
	printf '  %s\n' "${missing[@]}" >&2
	exit 1
fi

if [ -n "${SPIPERELAY_BIN:-}" ]; then
	BIN="$SPIPERELAY_BIN"
else
	echo "== cargo build --release" >&2
	cargo build --release --locked
	BIN=target/release/spiperelay
fi

TAG="sprdm$$"
NS_A="${TAG}a" NS_B="${TAG}b"
DIR="$(mktemp -d /tmp/spiperelay-demo-repl.XXXXXX)"
PIDS=()
RELAY_B=()
# PID...: whether any of them still runs.
alive() {
	local p
	for p in "$@"; do kill -0 "$p" 2>/dev/null && return 0; done
	return 1
}
cleanup() {
	local p i all=("${PIDS[@]}" "${RELAY_B[@]}")
	for p in "${all[@]}"; do kill "$p" 2>/dev/null || true; done
	# A relay drains its open connections on SIGTERM (the replication link never ends by
	# itself): give everything 5 s, then SIGKILL what is left.
	for ((i = 0; i < 50; i++)); do
		alive "${all[@]}" || break
		sleep 0.1
	done
	for p in "${all[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
	for p in "${all[@]}"; do wait "$p" 2>/dev/null || true; done
	ip netns del "$NS_A" 2>/dev/null || true
	ip netns del "$NS_B" 2>/dev/null || true
	rm -rf "$DIR"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Polls CMD... every 0.1 s for at most SECS seconds; fails with WHAT if it never succeeds.
wait_for() {
	local secs=$1 what=$2 i
	shift 2
	for ((i = 0; i < secs * 10; i++)); do
		"$@" >/dev/null 2>&1 && return 0
		sleep 0.1
	done
	echo "demo-replication: $what (waited ${secs} s)" >&2
	return 1
}

echo "== two hosts: namespaces $NS_A ($ADDR_A) and $NS_B ($ADDR_B), one veth pair" >&2
ip netns add "$NS_A"
ip netns add "$NS_B"
ip -n "$NS_A" link add "${TAG}a0" type veth peer name "${TAG}b0" netns "$NS_B"
ip -n "$NS_A" addr add "$ADDR_A/30" dev "${TAG}a0"
ip -n "$NS_B" addr add "$ADDR_B/30" dev "${TAG}b0"
for ns in "$NS_A" "$NS_B"; do
	ip -n "$ns" link set lo up
	ip -n "$ns" link set "${TAG}${ns: -1}0" up
done

echo "== one key for both hosts: spiperelay keygen" >&2
"$BIN" keygen "$DIR/replication.key" >&2

# HOST (a or b): that host's example with the demo's addresses and paths.
for host in a b; do
	sed -e "s/192\.0\.2\.10/$ADDR_A/g" -e "s/192\.0\.2\.20/$ADDR_B/g" \
		-e "s|/etc/spiperelay/|$DIR/|g" -e "s|/run/spiperelay/|$DIR/$host-|g" \
		"examples/replication-$host.toml" >"$DIR/$host.toml"
	echo "== host $host: spiperelay check-config (from examples/replication-$host.toml)" >&2
	"$BIN" check-config "$DIR/$host.toml"
done

# HOST NS: starts that host's spiperelay (one process, both pipes); its PID in STARTED.
start_relay() {
	ip netns exec "$2" "$BIN" --config "$DIR/$1.toml" </dev/null >>"$DIR/relay-$1.log" 2>&1 &
	STARTED=$!
}

# NS PORT: whether something in NS listens on TCP PORT.
listening() {
	[ -n "$(ip netns exec "$1" ss -Hltn sport = ":$2")" ]
}

for host in a b; do
	ns="$NS_A"
	[ "$host" = b ] && ns="$NS_B"
	ip netns exec "$ns" redis-server --bind 127.0.0.1 --port 6379 \
		--unixsocket "$DIR/redis-$host.sock" --unixsocketperm 700 --dir "$DIR" \
		--dbfilename "dump-$host.rdb" --save '' --appendonly no --daemonize no \
		--enable-debug-command yes --rdbcompression no \
		--repl-diskless-sync-delay 0 --repl-backlog-size 64mb </dev/null >"$DIR/redis-$host.log" 2>&1 &
	PIDS+=($!)
done
A="redis-cli -s $DIR/redis-a.sock"
B="redis-cli -s $DIR/redis-b.sock"
wait_for 10 "redis-server in A did not start" $A ping
wait_for 10 "redis-server in B did not start" $B ping

echo "== one spiperelay on each host, carrying both pipes of its file" >&2
start_relay a "$NS_A"
PIDS+=("$STARTED")
start_relay b "$NS_B"
RELAY_B=("$STARTED")
for ns in "$NS_A" "$NS_B"; do
	wait_for 10 "spiperelay does not listen in $ns" listening "$ns" 8025
	wait_for 10 "spiperelay does not listen in $ns" listening "$ns" 6380
done
ip netns exec "$NS_A" ss -Hltnp | grep spiperelay | awk -v h="host A:" '{print h, $4, $6}'
ip netns exec "$NS_B" ss -Hltnp | grep spiperelay | awk -v h="host B:" '{print h, $4, $6}'

echo "== master (A): DEBUG POPULATE 200000 keys of 200 bytes" >&2
$A debug populate 200000 key 200 >/dev/null
echo "master: $($A dbsize) keys, $($A info memory | grep '^used_memory_human' | tr -d '\r')"

echo "== replica (B): REPLICAOF 127.0.0.1 6380 (B's send pipe -> A's receive pipe -> master)" >&2
start=$(date +%s%N)
$B replicaof 127.0.0.1 6380
synced() {
	local info
	info="$($B info replication | tr -d '\r')"
	grep -q '^master_link_status:up' <<<"$info" && grep -q '^master_sync_in_progress:0' <<<"$info"
}
wait_for 60 "the replica's full sync did not finish" synced
echo "full sync: $($B dbsize) keys in $((($(date +%s%N) - start) / 1000000)) ms"

echo "== a stream of writes to the master while the link is cut for 3 s ..." >&2
redis-benchmark -s "$DIR/redis-a.sock" -q -n 200000 -r 50000 -d 100 -c 4 -t set,incr,lpush \
	</dev/null >"$DIR/bench.log" 2>&1 &
BENCH=$!
PIDS+=("$BENCH")
sleep 1
ip -n "$NS_A" link set "${TAG}a0" down
sleep 3
ip -n "$NS_A" link set "${TAG}a0" up
echo "== ... and while B's spiperelay is restarted: SIGTERM (it keeps the replication link" \
	"for its shutdown_timeout, then exits), then started again" >&2
t0=$(date +%s)
kill -TERM "${RELAY_B[@]}"
wait_for 20 "B's spiperelay did not exit after SIGTERM" bash -c "! kill -0 ${RELAY_B[*]}"
wait "${RELAY_B[@]}" 2>/dev/null || true
echo "B's spiperelay exited $(($(date +%s) - t0)) s after SIGTERM"
RELAY_B=()
wait_for 20 "the replica's link stayed up without B's relay" \
	bash -c "$B info replication | grep -q '^master_link_status:down'"
start_relay b "$NS_B"
RELAY_B=("$STARTED")
wait_for 20 "the replica did not reconnect" synced
wait "$BENCH" || true
echo "writes: $(tr '\r' '\n' <"$DIR/bench.log" | grep -E 'requests per second' | tr '\n' ' ')"

offsets_equal() {
	local m r
	m="$($A info replication | tr -d '\r' | sed -n 's/^master_repl_offset://p')"
	r="$($B info replication | tr -d '\r' | sed -n 's/^slave_repl_offset://p')"
	[ -n "$m" ] && [ "$m" = "$r" ]
}
wait_for 30 "the replica did not catch up" offsets_equal
echo "master: $($A info stats | tr -d '\r' | grep -E '^sync_(full|partial_ok)' | tr '\n' ' ')"
da="$($A debug digest)"
db="$($B debug digest)"
echo "master (A) DEBUG DIGEST: $da  ($($A dbsize) keys)"
echo "replica (B) DEBUG DIGEST: $db  ($($B dbsize) keys)"
echo "== the other direction: from A, redis-cli -p 6380 role (A's send pipe -> B's Redis)" >&2
ip netns exec "$NS_A" redis-cli -p 6380 role | head -1
if [ "$da" != "$db" ]; then
	echo "demo-replication: the digests differ" >&2
	exit 1
fi
echo "== demo ok: the replica holds the master's data" >&2
