#!/usr/bin/env bash
# Many pipes in one process: relay CPU per request with N pipes against one pipe carrying the
# same load, and (--idle) threads and RSS of 1 and 100 idle pipes.
#
# usage: scripts/bench-pipes.sh [--pipes N] [--requests R] [--clients C] [--reps K]
#                               [--threads T] [--no-build]
#        scripts/bench-pipes.sh --idle [--pipes N] [--no-build]
#
# Load (default): one redis-server on a Unix socket; two encrypting spiperelay processes in
# front of two decrypting ones, started from config files, all four running at once:
#   "N pipes":  one -e process with N pipes ([127.0.0.1]:FRONT_i -> [127.0.0.1]:MID_i) and
#               one -d process with N pipes ([127.0.0.1]:MID_i -> redis.sock);
#   "1 pipe":   the same with one pipe.
# Each run starts N redis-benchmark processes at once (`-t get -P 1 -c C -n R/N` each; N = 10
# by default, C = 5, so 50 clients in all), one per pipe of the "N pipes" processes, or all N
# on the one pipe of the "1 pipe" processes: the same clients and requests either way. Relay
# CPU is utime+stime (/proc/PID/stat) of the -e and -d process, before and after the run;
# requests are what redis-benchmark reports done; req/s is requests over the wall time of the
# run (all N clients). The two cases alternate, K rounds (default 5, R = 200000); the table
# shows medians (min-max) and the ratio N pipes / 1 pipe of the medians and (paired) the
# median of each round's ratio.
#
# --idle: for threads = 1 and threads = 2, one process with 1 pipe and one with N pipes
# (default 100; even pipes decrypt from a TCP port, odd pipes encrypt from a Unix socket), with
# a control socket (as in dist/spiperelay.toml) and without, no connection; once every listener is up and the
# process's CPU time has stopped moving, Threads and VmRSS from /proc/PID/status, the CPU
# time used over the next 5 s (an idle relay should use none), and the thread names.
#
# Environment: SPIPERELAY_BENCH_BIN replaces the relay binary; BENCH_PIPES_PORT_BASE is the
# first TCP port tried (default 26100; busy ports are skipped); BENCH_TIMEOUT bounds each
# redis-benchmark run (default 300 s). Loopback and Unix sockets only. Every loop and wait is
# bounded; only the processes this script started are signalled, by PID; its temporary
# directory is removed on every exit.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD

idle=0 pipes="" requests=200000 clients=5 reps=5 threads=1 build=1
while [ $# -gt 0 ]; do
	case "$1" in
	--idle) idle=1 ;;
	--pipes) pipes=${2:?--pipes needs a number}; shift ;;
	--requests) requests=${2:?--requests needs a number}; shift ;;
	--clients) clients=${2:?--clients needs a number}; shift ;;
	--reps) reps=${2:?--reps needs a number}; shift ;;
	--threads) threads=${2:?--threads needs a number}; shift ;;
	--no-build) build=0 ;;
	-h | --help) sed -n '2,33p' "$0"; exit 0 ;;
	*) echo "bench-pipes.sh: unknown argument: $1 (see --help)" >&2; exit 2 ;;
	esac
	shift
done
if [ -z "$pipes" ]; then
	if [ "$idle" = 1 ]; then pipes=100; else pipes=10; fi
fi
for v in "$pipes" "$requests" "$clients" "$reps" "$threads"; do
	case "$v" in '' | *[!0-9]* | 0) echo "bench-pipes.sh: numbers must be positive whole numbers" >&2; exit 2 ;; esac
done
[ "$pipes" -le 1000 ] || { echo "bench-pipes.sh: at most 1000 pipes" >&2; exit 2; }
TIMEOUT=${BENCH_TIMEOUT:-300}
CLK=$(getconf CLK_TCK)

# shellcheck source=scripts/bench-relay-bin.sh
. "$ROOT/scripts/bench-relay-bin.sh"
tools=(python3)
[ "$idle" = 1 ] || tools+=(redis-server redis-benchmark redis-cli)
for t in "${tools[@]}"; do
	command -v "$t" >/dev/null || { echo "bench-pipes.sh: $t not found (Debian: python3, redis-server, redis-tools)" >&2; exit 1; }
done
ulimit -Sn "$(ulimit -Hn)" 2>/dev/null || true

TMP=$(mktemp -d "${TMPDIR:-/tmp}/bench-pipes.XXXXXX")
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
chmod 600 "$TMP/key"

# free_ports K: K TCP ports on 127.0.0.1 that can be bound now, from NEXT_PORT upwards.
NEXT_PORT=${BENCH_PIPES_PORT_BASE:-26100}
PORTS=()
free_ports() {
	local out
	out=$(python3 - "$NEXT_PORT" "$1" <<-'EOF'
		import socket, sys
		p, want, got = int(sys.argv[1]), int(sys.argv[2]), []
		while len(got) < want and p < 60000:
		    s = socket.socket()
		    try:
		        s.bind(("127.0.0.1", p))
		        got.append(p)
		    except OSError:
		        pass
		    finally:
		        s.close()
		    p += 1
		if len(got) < want:
		    sys.exit("no free ports")
		print(" ".join(map(str, got)))
	EOF
	)
	read -r -a PORTS <<<"$out"
	NEXT_PORT=$((PORTS[${#PORTS[@]} - 1] + 1))
}

# cpu_ticks PID...: utime+stime of the processes (all their threads), in clock ticks.
cpu_ticks() {
	local p sum=0 f
	for p in "$@"; do
		f=$(sed 's/.*) //' "/proc/$p/stat")
		read -r -a f <<<"$f"
		sum=$((sum + f[11] + f[12]))
	done
	echo "$sum"
}

# listening PID PORT|PATH...: every TCP port / Unix path given is listening (bounded wait,
# 30 s); fails at once if PID has exited.
listening() {
	local pid=$1 i a ok
	shift
	for ((i = 0; i < 600; i++)); do
		kill -0 "$pid" 2>/dev/null || return 1
		ok=1
		for a in "$@"; do
			if [[ $a == /* ]]; then
				awk -v p="$a" '$4 == "00010000" && $8 == p { f = 1 } END { exit !f }' \
					/proc/net/unix || { ok=0; break; }
			else
				awk -v h="$(printf ':%04X' "$a")" \
					'$4 == "0A" && substr($2, length($2) - 4) == h { f = 1 } END { exit !f }' \
					/proc/net/tcp || { ok=0; break; }
			fi
		done
		[ "$ok" = 1 ] && return 0
		sleep 0.05
	done
	return 1
}

# start_relay NAME CONFIG LISTENERS...: starts `spiperelay --config CONFIG`, waits for its
# listeners, sets STARTED to its PID.
start_relay() {
	local name=$1 conf=$2
	shift 2
	"$RELAY" --config "$conf" >"$TMP/$name.log" 2>&1 &
	STARTED=$!
	PIDS+=("$STARTED")
	if ! listening "$STARTED" "$@"; then
		echo "bench-pipes.sh: $name did not start; its log:" >&2
		cat "$TMP/$name.log" >&2
		exit 1
	fi
}

# settle PID...: waits until the processes' CPU time stops moving for half a second (the
# key-pair pools fill at start), at most 20 s.
settle() {
	local i prev=-1 now
	for ((i = 0; i < 40; i++)); do
		now=$(cpu_ticks "$@")
		[ "$now" = "$prev" ] && return 0
		prev=$now
		sleep 0.5
	done
}

# ---------------------------------------------------------------------------------------------
# --idle
# ---------------------------------------------------------------------------------------------
if [ "$idle" = 1 ]; then
	echo "# idle pipes: $RELAY; $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2-), $(nproc) cores"
	echo
	echo "| control socket | threads | pipes | Threads | VmRSS kB | CPU s in 5 s idle | thread names (comm) |"
	echo "|---|---|---|---|---|---|---|"
	for ctl in yes no; do
		for t in 1 2; do
			for n in 1 "$pipes"; do
				name=idle-$ctl-t$t-n$n listeners=()
				conf=$TMP/$name.toml
				free_ports "$n"
				{
					printf '[process]\nthreads = %s\n' "$t"
					[ "$ctl" = no ] || printf 'control = "%s"\n' "$TMP/$name-ctl.sock"
					for ((i = 0; i < n; i++)); do
						if ((i % 2 == 0)); then
							printf '\n[pipe.p%s]\nmode = "decrypt"\nsource = "[127.0.0.1]:%s"\n' "$i" "${PORTS[i]}"
							printf 'target = "%s"\n' "$TMP/redis.sock"
							listeners+=("${PORTS[i]}")
						else
							printf '\n[pipe.p%s]\nmode = "encrypt"\nsource = "%s"\n' "$i" "$TMP/$name-$i.sock"
							printf 'target = "[127.0.0.1]:%s"\n' "${PORTS[i]}"
							listeners+=("$TMP/$name-$i.sock")
						fi
						printf 'keys = ["%s"]\n' "$TMP/key"
					done
				} >"$conf"
				start_relay "$name" "$conf" "${listeners[@]}"
				pid=$STARTED
				settle "$pid"
				c0=$(cpu_ticks "$pid")
				sleep 5
				cpu=$(awk -v t="$(($(cpu_ticks "$pid") - c0))" -v k="$CLK" 'BEGIN { printf "%.2f", t / k }')
				th=$(awk '/^Threads:/ { print $2 }' "/proc/$pid/status")
				rss=$(awk '/^VmRSS:/ { print $2 }' "/proc/$pid/status")
				names=$(cat /proc/"$pid"/task/*/comm | sort | uniq -c | awk '{ printf "%s%s x%s", s, $2, $1; s = ", " }')
				echo "| $ctl | $t | $n | $th | $rss | $cpu | $names |"
				kill "$pid"
				wait "$pid" 2>/dev/null || true
			done
		done
	done
	exit 0
fi

# ---------------------------------------------------------------------------------------------
# load: N pipes against 1 pipe
# ---------------------------------------------------------------------------------------------
redis-server --port 0 --unixsocket "$TMP/redis.sock" --unixsocketperm 700 --save '' \
	--appendonly no --daemonize no --dir "$TMP" >"$TMP/redis.log" 2>&1 &
PIDS+=("$!")
listening "$!" "$TMP/redis.sock" || { echo "bench-pipes.sh: redis-server did not start" >&2; cat "$TMP/redis.log" >&2; exit 1; }

# make_pair NAME K: configs of an -e and a -d process with K pipes; sets FRONTS, MIDS.
make_pair() {
	local name=$1 k=$2 i
	free_ports "$((2 * k))"
	FRONTS=("${PORTS[@]:0:k}") MIDS=("${PORTS[@]:k:k}")
	for mode in encrypt decrypt; do
		{
			printf '[process]\nthreads = %s\n' "$threads"
			for ((i = 0; i < k; i++)); do
				printf '\n[pipe.p%s]\nmode = "%s"\nmax_connections = 0\nkeys = ["%s"]\n' "$i" "$mode" "$TMP/key"
				if [ "$mode" = encrypt ]; then
					printf 'source = "[127.0.0.1]:%s"\ntarget = "[127.0.0.1]:%s"\n' "${FRONTS[i]}" "${MIDS[i]}"
				else
					printf 'source = "[127.0.0.1]:%s"\ntarget = "%s"\n' "${MIDS[i]}" "$TMP/redis.sock"
				fi
			done
		} >"$TMP/$name-$mode.toml"
	done
}

make_pair many "$pipes"
start_relay many-dec "$TMP/many-decrypt.toml" "${MIDS[@]}"
MANY_DEC=$STARTED
start_relay many-enc "$TMP/many-encrypt.toml" "${FRONTS[@]}"
MANY_ENC=$STARTED MANY_FRONTS=("${FRONTS[@]}")
make_pair one 1
start_relay one-dec "$TMP/one-decrypt.toml" "${MIDS[@]}"
ONE_DEC=$STARTED
start_relay one-enc "$TMP/one-encrypt.toml" "${FRONTS[@]}"
ONE_ENC=$STARTED ONE_FRONTS=("${FRONTS[@]}")

settle "$MANY_ENC" "$MANY_DEC" "$ONE_ENC" "$ONE_DEC"
per=$((requests / pipes))
[ "$per" -gt 0 ] || { echo "bench-pipes.sh: --requests must be at least --pipes" >&2; exit 2; }

# run_load CASE ENC DEC FRONTS...: one run; appends "CASE requests seconds cpu_ticks enc dec"
# to $TMP/runs.
run_load() {
	local case=$1 enc=$2 dec=$3 i t0 t1 c0 e0 d0 e1 d1 secs done_req=0 ok=1 rb=()
	shift 3
	local fronts=("$@")
	e0=$(cpu_ticks "$enc") d0=$(cpu_ticks "$dec")
	t0=$(date +%s.%N)
	for ((i = 0; i < pipes; i++)); do
		timeout --kill-after=10 "$TIMEOUT" redis-benchmark -h 127.0.0.1 \
			-p "${fronts[i % ${#fronts[@]}]}" -t get -P 1 -c "$clients" -n "$per" --csv \
			>"$TMP/rb-$i.csv" 2>"$TMP/rb-$i.err" &
		rb+=("$!")
	done
	for i in "${!rb[@]}"; do
		wait "${rb[i]}" || ok=0
	done
	t1=$(date +%s.%N)
	e1=$(cpu_ticks "$enc") d1=$(cpu_ticks "$dec")
	for ((i = 0; i < pipes; i++)); do
		if grep -q '^"GET"' "$TMP/rb-$i.csv"; then
			done_req=$((done_req + per))
		else
			ok=0
		fi
	done
	if [ "$ok" != 1 ]; then
		echo "bench-pipes.sh: a redis-benchmark run of case '$case' failed or timed out:" >&2
		cat "$TMP"/rb-*.err >&2
		exit 1
	fi
	c0=$((e1 - e0 + d1 - d0))
	secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.4f", b - a }')
	echo "$case $done_req $secs $c0 $((e1 - e0)) $((d1 - d0))" >>"$TMP/runs"
	awk -v c="$case" -v n="$done_req" -v s="$secs" -v t="$c0" -v k="$CLK" \
		'BEGIN { printf "  %-5s %d req in %.2f s: %.0f req/s, relay CPU %.2f s, %.2f us/req\n", c, n, s, n / s, t / k, t / k / n * 1e6 }' >&2
}

echo "== $pipes redis-benchmark processes (-t get -P 1 -c $clients -n $per each), $reps rounds;" \
	"threads = $threads" >&2
# warm-up: one short run each, not counted
per_saved=$per
per=$((per / 10 + 1))
run_load warm "$MANY_ENC" "$MANY_DEC" "${MANY_FRONTS[@]}"
run_load warm "$ONE_ENC" "$ONE_DEC" "${ONE_FRONTS[@]}"
per=$per_saved
: >"$TMP/runs"
for ((r = 0; r < reps; r++)); do
	if ((r % 2 == 0)); then
		run_load one "$ONE_ENC" "$ONE_DEC" "${ONE_FRONTS[@]}"
		run_load many "$MANY_ENC" "$MANY_DEC" "${MANY_FRONTS[@]}"
	else
		run_load many "$MANY_ENC" "$MANY_DEC" "${MANY_FRONTS[@]}"
		run_load one "$ONE_ENC" "$ONE_DEC" "${ONE_FRONTS[@]}"
	fi
done

python3 - "$TMP/runs" "$CLK" "$pipes" "$clients" "$per" "$reps" "$threads" "$RELAY" <<-'EOF'
	import statistics as st, sys
	path, clk, pipes, clients, per, reps, threads, relay = sys.argv[1:]
	clk = int(clk)
	runs = {"one": [], "many": []}
	for line in open(path):
	    case, n, secs, ticks, enc, dec = line.split()
	    n, secs = int(n), float(secs)
	    runs[case].append({"rps": n / secs, "us": int(ticks) / clk / n * 1e6,
	                       "enc": int(enc) / clk / n * 1e6, "dec": int(dec) / clk / n * 1e6})
	cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
	def m(case, k):
	    v = [r[k] for r in runs[case]]
	    return st.median(v), min(v), max(v)
	def f(t, nd):
	    return f"{t[0]:.{nd}f} ({t[1]:.{nd}f}–{t[2]:.{nd}f})"
	print(f"\n### {pipes} pipes in one process against 1 pipe, same load: {pipes} x redis-benchmark "
	      f"-t get -P 1 -c {clients} -n {per}; threads = {threads}; {reps} rounds, median (min–max)\n")
	print(f"{relay}; {cpu}, {__import__('os').cpu_count()} cores\n")
	print("| case | req/s (all clients) | relay CPU µs/req (-e + -d) | -e µs/req | -d µs/req |")
	print("|---|---|---|---|---|")
	for case, label in (("one", "1 pipe"), ("many", f"{pipes} pipes")):
	    print(f"| {label} | {f(m(case, 'rps'), 0)} | {f(m(case, 'us'), 2)} | {f(m(case, 'enc'), 2)} | {f(m(case, 'dec'), 2)} |")
	paired_us = [b["us"] / a["us"] for a, b in zip(runs["one"], runs["many"])]
	paired_rps = [b["rps"] / a["rps"] for a, b in zip(runs["one"], runs["many"])]
	print(f"\n{pipes} pipes / 1 pipe: CPU per request {m('many', 'us')[0] / m('one', 'us')[0]:.3f} "
	      f"(median of per-round ratios {st.median(paired_us):.3f}, {min(paired_us):.3f}–{max(paired_us):.3f}); "
	      f"req/s {m('many', 'rps')[0] / m('one', 'rps')[0]:.3f} "
	      f"(per-round {st.median(paired_rps):.3f}, {min(paired_rps):.3f}–{max(paired_rps):.3f})")
EOF
