#!/usr/bin/env bash
# Runs the Debian package under a real systemd: boots Debian bookworm (debootstrap minbase,
# systemd 252) as a container with systemd-nspawn, installs the .deb from scripts/package.sh in
# it, and checks with systemctl that spiperelay.service
#   - reaches "active" through Type=notify (READY=1), with the relay's STATUS= line,
#   - runs as the spiperelay user, on io_uring (the unit's syscall filter lets it through),
#   - carries traffic (spipe -> relay -> an echo server),
#   - survives WatchdogSec=2s (its event loop pings),
#   - reloads (systemctl reload: RELOADING=1 ... READY=1, same main PID),
#   - stops cleanly: SIGTERM drains, the connection still open is cut at the shutdown timeout,
#     well within TimeoutStopSec, result "success",
#   - is socket-activated by spiperelay-pipe@default.socket, whose socket it never unlinks,
#   - runs as an instance (spiperelay@second.service, /run/spiperelay/second/),
#   - and carries Redis commands to a real redis-server over its Unix socket
#     (spiperelay@redis.service, the seed's Redis host),
# and that dpkg --purge removes the user. Until the daemon reads --config, a drop-in runs the
# spiped-style command line instead (the unit is otherwise the shipped one).
#
# Needs root, debootstrap and systemd-nspawn (Debian packages debootstrap, systemd-container;
# installed here if missing) and access to Debian's package mirror (debootstrap's default) for the first run (the
# bootstrapped root is kept in target/nspawn/bookworm and copied for each run). Otherwise it
# says SKIP, or fails under CI=true. Every wait is bounded; the container is powered off (or
# killed) and its copy removed on every path.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

skip() {
	if [ "${CI:-}" = true ]; then
		echo "test-systemd: FAIL: $*" >&2
		exit 1
	fi
	echo "test-systemd: SKIP: $*" >&2
	exit 0
}
fail() {
	echo "test-systemd: FAIL: $*" >&2
	if [ -n "${leader:-}" ]; then
		echo "---- journal of spiperelay in the container:" >&2
		in_ct journalctl --no-pager -n 60 -u spiperelay -u 'spiperelay-pipe@*' >&2 || true
	fi
	exit 1
}

[ "$(id -u)" -eq 0 ] || skip "needs root (systemd-nspawn)"
if ! command -v debootstrap >/dev/null || ! command -v systemd-nspawn >/dev/null; then
	command -v apt-get >/dev/null || skip "no apt-get to install debootstrap and systemd-container"
	echo "== apt-get install debootstrap systemd-container" >&2
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
		debootstrap systemd-container >&2 || skip "cannot install debootstrap and systemd-container"
fi

# Absolute: debootstrap changes directory while it works, so a relative target breaks it.
base=$PWD/target/nspawn/bookworm
mkdir -p "$(dirname "$base")"
if [ ! -x "$base/lib/systemd/systemd" ]; then
	echo "== debootstrap bookworm into $base (once)" >&2
	rm -rf "$base.tmp"
	timeout 900 debootstrap --variant=minbase --include=systemd,systemd-sysv,dbus,adduser,procps,socat,redis-server \
		bookworm "$base.tmp" >&2 || {
		rm -rf "$base.tmp"
		skip "debootstrap failed (no network?)"
	}
	mv "$base.tmp" "$base"
fi

if [ ! -x "$base/bin/kill" ] || [ ! -x "$base/usr/bin/redis-server" ]; then
	# procps is the package's dependency; redis-server the seed's target. Added to a root
	# bootstrapped before they were in the list above.
	echo "== apt-get install procps redis-server in $base" >&2
	timeout 600 systemd-nspawn --register=no --keep-unit -q -D "$base" --pipe sh -c \
		'apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends procps redis-server' >&2 ||
		skip "cannot install procps and redis-server into $base (no network?)"
fi

mapfile -t debs < <(scripts/package.sh --fast)
main=${debs[0]}

root=$(mktemp -d /var/tmp/spiperelay-nspawn.XXXXXX)
nspawn_pid="" leader=""
cleanup() {
	set +e
	if [ -n "$nspawn_pid" ] && kill -0 "$nspawn_pid" 2>/dev/null; then
		[ -n "$leader" ] || leader=$(ps -o pid= --ppid "$nspawn_pid" | head -n 1 | tr -d ' ')
		[ -n "$leader" ] && nsenter -t "$leader" -a systemctl poweroff >/dev/null 2>&1
		for _ in $(seq 1 150); do
			kill -0 "$nspawn_pid" 2>/dev/null || break
			sleep 0.2
		done
		if kill -0 "$nspawn_pid" 2>/dev/null; then
			echo "test-systemd: the container did not power off; killing it" >&2
			# Its PID 1 first: killing it ends every process of the container.
			[ -n "$leader" ] && kill -KILL "$leader"
			kill -KILL "$nspawn_pid"
		fi
		wait "$nspawn_pid" 2>/dev/null
	fi
	if [ -n "$leader" ]; then
		for _ in $(seq 1 50); do
			kill -0 "$leader" 2>/dev/null || break
			sleep 0.1
		done
	fi
	rm -rf "$root"
	rm -f "$root.console"
}
trap cleanup EXIT

echo "== copy the root to $root and boot it" >&2
cp -a --reflink=auto "$base/." "$root/"
cp "$main" "$root/root/spiperelay.deb"
systemd-nspawn --register=no --keep-unit -q -b -D "$root" --machine="spiperelay-$$" \
	>"$root.console" 2>&1 </dev/null &
nspawn_pid=$!
# The container's PID 1 is nspawn's child, once it has executed systemd.
for _ in $(seq 1 200); do
	leader=$(ps -o pid= --ppid "$nspawn_pid" | head -n 1 | tr -d ' ') || true
	[ -n "$leader" ] && [ "$(cat "/proc/$leader/comm" 2>/dev/null)" = systemd ] && break
	sleep 0.1
done
[ -n "$leader" ] && [ "$(cat "/proc/$leader/comm" 2>/dev/null)" = systemd ] || {
	leader=""
	fail "systemd-nspawn started no systemd: $(cat "$root.console")"
}

in_ct() { timeout 60 nsenter -t "$leader" -a "$@"; }

# "offline" until systemd has set itself up; bounded at 90 s.
state=""
for _ in $(seq 1 180); do
	state=$(in_ct systemctl is-system-running 2>/dev/null || true)
	case "$state" in running | degraded) break ;; esac
	sleep 0.5
done
case "$state" in
running | degraded) echo "== container systemd: $state" >&2 ;;
*) fail "container systemd is '$state' after 90 s" ;;
esac

echo "== dpkg -i spiperelay" >&2
in_ct env DEBIAN_FRONTEND=noninteractive dpkg -i /root/spiperelay.deb >&2
in_ct runuser -u spiperelay -- spiperelay keygen /etc/spiperelay/spiperelay.key >&2

# A target: an echo server the relay's user may connect to.
in_ct systemd-run --quiet --unit=echo socat UNIX-LISTEN:/run/echo.sock,fork,mode=0666 EXEC:cat
for _ in $(seq 1 50); do in_ct test -S /run/echo.sock && break; sleep 0.1; done

# The spiped-style command line where --config is not there yet, plus a short watchdog.
probe=$(in_ct spiperelay --config /nonexistent 2>&1 || true)
if grep -q 'illegal option' <<<"$probe"; then
	mode="spiped-style command line (drop-in)"
	exec_lines='ExecStart=
ExecStart=/usr/bin/spiperelay -F -d -s /run/spiperelay/default.sock -t /run/echo.sock -k /etc/spiperelay/spiperelay.key --shutdown-timeout 3
ExecReload=
ExecReload=/bin/kill -HUP $MAINPID'
else
	mode="--config /etc/spiperelay/spiperelay.toml"
	in_ct sh -c 'cat > /etc/spiperelay/spiperelay.toml' <<'TOML'
[process]
shutdown_timeout = 3

[pipe.default]
mode = "decrypt"
source = "/run/spiperelay/default.sock"
target = "/run/echo.sock"
keys = ["/etc/spiperelay/spiperelay.key"]

[pipe.extra]
mode = "decrypt"
source = "/run/spiperelay/extra.sock"
target = "/run/echo.sock"
keys = ["/etc/spiperelay/spiperelay.key"]
TOML
	exec_lines=''
fi
echo "== runs: $mode" >&2
in_ct mkdir -p /etc/systemd/system/spiperelay.service.d
in_ct sh -c 'cat > /etc/systemd/system/spiperelay.service.d/test.conf' <<EOF2
[Service]
WatchdogSec=2s
$exec_lines
EOF2
in_ct systemctl daemon-reload

echo "== systemctl enable --now spiperelay" >&2
in_ct systemctl enable --now spiperelay.service >&2 || fail "enable --now failed"
show() { in_ct systemctl show -p "$1" --value spiperelay.service; }
[ "$(show ActiveState)" = active ] || fail "not active after start: $(show ActiveState)"
[ "$(show Type)" = notify ] || fail "Type is $(show Type)"
status=$(show StatusText)
grep -Eq 'pipes? listening' <<<"$status" || fail "StatusText is '$status'"
pid=$(show MainPID)
uid=$(in_ct awk '/^Uid:/ {print $2}' "/proc/$pid/status")
[ "$uid" = "$(in_ct id -u spiperelay)" ] || fail "main process runs as uid $uid"
if in_ct journalctl --no-pager -u spiperelay | grep -q 'using the epoll backend'; then
	backend="epoll (io_uring refused: $(in_ct journalctl --no-pager -u spiperelay | grep -m1 'epoll backend'))"
else
	backend="io_uring"
fi
echo "== active (Type=notify), status '$status', uid $uid, backend $backend" >&2

spipe() { printf '%s' "$1" | in_ct spiperelay spipe -t /run/spiperelay/default.sock -k /etc/spiperelay/spiperelay.key; }
[ "$(spipe hello-systemd)" = hello-systemd ] || fail "no echo through the relay"

sleep 5 # more than two watchdog intervals
[ "$(show NRestarts)" = 0 ] || fail "restarted $(show NRestarts) times (watchdog?)"
[ "$(show ActiveState)" = active ] || fail "not active after 5 s with WatchdogSec=2s"
[ "$(show MainPID)" = "$pid" ] || fail "main PID changed"

echo "== systemctl reload spiperelay" >&2
if [ -z "$exec_lines" ]; then
	# Two pipes in one process; the reload adds a third.
	pipe_echo() { printf '%s' "$2" | in_ct spiperelay spipe -t "/run/spiperelay/$1.sock" -k /etc/spiperelay/spiperelay.key; }
	[ "$(pipe_echo extra two-pipes)" = two-pipes ] || fail "no echo through the second pipe"
	in_ct sh -c 'cat >> /etc/spiperelay/spiperelay.toml' <<'TOML'

[pipe.third]
mode = "decrypt"
source = "/run/spiperelay/third.sock"
target = "/run/echo.sock"
keys = ["/etc/spiperelay/spiperelay.key"]
TOML
fi
in_ct systemctl reload spiperelay.service || fail "reload failed"
for _ in $(seq 1 50); do
	in_ct journalctl --no-pager -u spiperelay | grep -q 'SIGHUP: reloaded' && break
	sleep 0.1
done
in_ct journalctl --no-pager -u spiperelay | grep -q 'SIGHUP: reloaded' || fail "no reload in the journal"
for _ in $(seq 1 50); do [ "$(show ActiveState)" = active ] && break; sleep 0.1; done
[ "$(show ActiveState)" = active ] || fail "not active after reload: $(show ActiveState)"
[ "$(show MainPID)" = "$pid" ] || fail "reload changed the main PID"
grep -q 'reloaded' <<<"$(show StatusText)" || fail "StatusText after reload: $(show StatusText)"
[ "$(spipe after-reload)" = after-reload ] || fail "no echo after reload"
if [ -z "$exec_lines" ]; then
	[ "$(pipe_echo third added-by-reload)" = added-by-reload ] || fail "the pipe added by the reload does not serve"
	[ "$(in_ct ls /proc/"$pid"/task | wc -l)" -lt 12 ] || fail "threads: $(in_ct ls /proc/"$pid"/task | wc -l)"
	echo "== reload added a third pipe to the running process" >&2
fi

echo "== systemctl stop spiperelay, one connection held open (shutdown timeout 3 s)" >&2
timeout 60 nsenter -t "$leader" -a sh -c 'sleep 30 | spiperelay spipe -t /run/spiperelay/default.sock -k /etc/spiperelay/spiperelay.key' >/dev/null 2>&1 &
held=$!
for _ in $(seq 1 50); do
	in_ct journalctl --no-pager -u spiperelay | grep -c 'connection established' | grep -qx 3 && break
	sleep 0.1
done
t0=$(date +%s%N)
in_ct systemctl stop spiperelay.service || fail "stop failed"
took_ms=$((($(date +%s%N) - t0) / 1000000))
kill "$held" 2>/dev/null || true
wait "$held" 2>/dev/null || true
[ "$(show ActiveState)" = inactive ] || fail "after stop: $(show ActiveState)"
[ "$(show Result)" = success ] || fail "stop result: $(show Result)"
in_ct journalctl --no-pager -u spiperelay | grep -q 'shutdown timeout of 3 s reached; closing the 1 connections' ||
	fail "no cut connection logged"
[ "$took_ms" -ge 2500 ] && [ "$took_ms" -lt 45000 ] || fail "stop took $took_ms ms"
echo "== stopped in $took_ms ms, 1 connection cut at the deadline" >&2
in_ct test ! -e /run/spiperelay/default.sock || fail "the relay left its socket behind"

# With a config, every pipe gets its socket unit (a pipe without one is a startup error).
sockets=spiperelay-pipe@default.socket
[ -z "$exec_lines" ] && sockets="$sockets spiperelay-pipe@extra.socket spiperelay-pipe@third.socket"
echo "== socket activation: $sockets" >&2
# shellcheck disable=SC2086 # a list of unit names
in_ct systemctl start $sockets || fail "socket units did not start"
in_ct test -S /run/spiperelay/default.sock || fail "no socket from the socket unit"
[ "$(spipe activated)" = activated ] || fail "no echo through the activated relay"
[ "$(show ActiveState)" = active ] || fail "the connection did not start the service"
in_ct journalctl --no-pager -u spiperelay | grep -q 'passed by systemd' ||
	fail "the relay did not use the passed socket"
if [ -z "$exec_lines" ]; then
	[ "$(pipe_echo third activated-third)" = activated-third ] || fail "no echo through the third passed socket"
fi
in_ct systemctl stop spiperelay.service
in_ct test -S /run/spiperelay/default.sock || fail "the relay unlinked systemd's socket"
# shellcheck disable=SC2086
in_ct systemctl stop $sockets

echo "== spiperelay@second.service (an instance, its own runtime directory)" >&2
in_ct mkdir -p /etc/systemd/system/spiperelay@second.service.d
if [ -n "$exec_lines" ]; then
	in_ct sh -c 'cat > /etc/systemd/system/spiperelay@second.service.d/test.conf' <<'EOF2'
[Service]
ExecStart=
ExecStart=/usr/bin/spiperelay -F -d -s /run/spiperelay/second/relay.sock -t /run/echo.sock -k /etc/spiperelay/spiperelay.key
ExecReload=
ExecReload=/bin/kill -HUP $MAINPID
EOF2
else
	in_ct sh -c 'cat > /etc/spiperelay/second.toml' <<'TOML'
[pipe.second]
mode = "decrypt"
source = "/run/spiperelay/second/relay.sock"
target = "/run/echo.sock"
keys = ["/etc/spiperelay/spiperelay.key"]
TOML
fi
in_ct systemctl daemon-reload
in_ct systemctl start spiperelay@second.service || fail "spiperelay@second did not start"
[ "$(in_ct systemctl show -p ActiveState --value spiperelay@second.service)" = active ] ||
	fail "spiperelay@second is not active"
got=$(printf second | in_ct spiperelay spipe -t /run/spiperelay/second/relay.sock -k /etc/spiperelay/spiperelay.key)
[ "$got" = second ] || fail "no echo through spiperelay@second"
in_ct systemctl reload spiperelay@second.service || fail "spiperelay@second did not reload"
in_ct systemctl stop spiperelay@second.service
[ "$(in_ct systemctl show -p Result --value spiperelay@second.service)" = success ] ||
	fail "spiperelay@second did not stop cleanly"

echo "== the seed's Redis host: spiperelay@redis.service in front of redis-server's Unix socket" >&2
in_ct sed -i -e 's|^# *unixsocket .*|unixsocket /run/redis/redis-server.sock|' \
	-e 's|^# *unixsocketperm .*|unixsocketperm 770|' /etc/redis/redis.conf
in_ct adduser --quiet spiperelay redis
in_ct systemctl restart redis-server.service || fail "redis-server did not restart"
for _ in $(seq 1 50); do in_ct test -S /run/redis/redis-server.sock && break; sleep 0.1; done
in_ct mkdir -p /etc/systemd/system/spiperelay@redis.service.d
if [ -n "$exec_lines" ]; then
	in_ct sh -c 'cat > /etc/systemd/system/spiperelay@redis.service.d/test.conf' <<'EOF2'
[Service]
ExecStart=
ExecStart=/usr/bin/spiperelay -F -d -s /run/spiperelay/redis/relay.sock -t /run/redis/redis-server.sock -k /etc/spiperelay/spiperelay.key
ExecReload=
ExecReload=/bin/kill -HUP $MAINPID
EOF2
else
	in_ct sh -c 'cat > /etc/spiperelay/redis.toml' <<'TOML'
[pipe.redis]
mode = "decrypt"
source = "/run/spiperelay/redis/relay.sock"
target = "/run/redis/redis-server.sock"
keys = ["/etc/spiperelay/spiperelay.key"]
TOML
fi
in_ct systemctl daemon-reload
in_ct systemctl start spiperelay@redis.service || fail "spiperelay@redis did not start"
reply=$(printf 'SET seed through-spiperelay\r\nGET seed\r\n' |
	in_ct spiperelay spipe -t /run/spiperelay/redis/relay.sock -k /etc/spiperelay/spiperelay.key | tr -d '\r')
[ "$reply" = "$(printf '+OK\n$18\nthrough-spiperelay')" ] || fail "Redis through the relay answered: $reply"
[ "$(in_ct redis-cli -s /run/redis/redis-server.sock GET seed)" = through-spiperelay ] ||
	fail "the value did not reach Redis"
in_ct systemctl stop spiperelay@redis.service

echo "== dpkg --purge spiperelay" >&2
in_ct env DEBIAN_FRONTEND=noninteractive dpkg --purge spiperelay >&2
in_ct getent passwd spiperelay >/dev/null && fail "the spiperelay user survived the purge"
in_ct test ! -e /etc/spiperelay || fail "/etc/spiperelay survived the purge"
in_ct test ! -e /etc/systemd/system/multi-user.target.wants/spiperelay.service ||
	fail "the enablement link survived the purge"

echo "test-systemd: ok ($mode; backend $backend)" >&2
