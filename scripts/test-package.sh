#!/usr/bin/env bash
# Builds the Debian packages (scripts/package.sh), installs spiperelay with dpkg -i, checks
# that its files, user, directory modes, man pages and units are in place and that the
# installed binary works, then purges it and checks that nothing named spiperelay is left on
# the machine. Needs root (or passwordless sudo) and dpkg; otherwise says SKIP, except under
# CI=true, where that is a failure. Refuses to run if spiperelay is already installed.
#
# spiperelay-spiped (the spiped/spipe names) is checked as a package file only: installing it
# would replace Debian's spiped, which the interop tests use.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

skip() {
	if [ "${CI:-}" = true ]; then
		echo "test-package: FAIL: $*" >&2
		exit 1
	fi
	echo "test-package: SKIP: $*" >&2
	exit 0
}
fail() {
	echo "test-package: FAIL: $*" >&2
	exit 1
}

command -v dpkg >/dev/null 2>&1 || skip "not a Debian system (no dpkg)"
sudo=()
if [ "$(id -u)" -ne 0 ]; then
	if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
		sudo=(sudo -n)
	else
		skip "needs root or passwordless sudo to install a package"
	fi
fi
if dpkg-query -W -f='${Status}' spiperelay 2>/dev/null | grep -q 'installed'; then
	fail "spiperelay is already installed here; not touching it"
fi
for f in dist/spiperelay.toml dist/man/spiperelay.1; do
	[ -f "$f" ] || skip "$f is not in this tree yet"
done

# Everything named spiperelay outside the build trees (this checkout, wherever it is, and
# cargo's target directory), before and after.
tree=$(pwd -P)
target=$(realpath -m "${CARGO_TARGET_DIR:-$tree/target}")
leftovers() {
	"${sudo[@]}" find / -xdev \( -path /proc -o -path /sys -o -path /tmp -o -path /work \
		-o -path /root -o -path /home -o -path /var/tmp -o -path /var/cache/man \
		-o -path "$tree" -o -path "$target" \) -prune \
		-o -name '*spiperelay*' -print 2>/dev/null | sort
	getent passwd spiperelay || true
	getent group spiperelay || true
}
before=$(mktemp)
after=$(mktemp)
trap 'rm -f "$before" "$after"; if dpkg-query -W -f="\${Status}" spiperelay 2>/dev/null | grep -q installed; then "${sudo[@]}" dpkg --purge spiperelay >/dev/null 2>&1 || true; fi' EXIT
leftovers >"$before"

mapfile -t debs < <(scripts/package.sh --fast)
[ ${#debs[@]} -eq 2 ] || fail "package.sh printed ${#debs[@]} package paths, not 2"
main=${debs[0]} compat=${debs[1]}
echo "== built $main and $compat" >&2

# The drop-in package: two links, and a conflict with Debian's spiped.
field() { dpkg-deb -f "$1" "$2"; }
[ "$(field "$compat" Package)" = spiperelay-spiped ] || fail "compat package name"
for f in Conflicts Replaces Provides; do
	[ "$(field "$compat" $f)" = spiped ] || fail "spiperelay-spiped: $f is '$(field "$compat" $f)', not spiped"
done
compat_files=$(dpkg-deb -c "$compat")
main_files=$(dpkg-deb -c "$main")
grep -q '\./usr/bin/spiped -> spiperelay$' <<<"$compat_files" || fail "no spiped link in $compat"
grep -q '\./usr/bin/spipe -> spiperelay$' <<<"$compat_files" || fail "no spipe link in $compat"
if grep -Eq '/usr/bin/spipe(d)?$' <<<"$main_files"; then
	fail "the main package must not ship spiped/spipe (Debian's spiped has them)"
fi

# The package's dependencies, so that dpkg -i can configure it.
missing=()
for p in adduser procps; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
	echo "== apt-get install ${missing[*]}" >&2
	"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
		"${missing[@]}" >&2 || fail "cannot install ${missing[*]}"
fi

echo "== dpkg -i $main" >&2
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive dpkg -i "$main" >&2
# Installing enables and starts nothing: the relay needs a key and a config first.
for l in /etc/systemd/system/*.wants/spiperelay*; do
	[ -e "$l" ] && fail "installing enabled $l"
done

for f in /usr/bin/spiperelay /lib/systemd/system/spiperelay.service \
	/lib/systemd/system/spiperelay@.service /lib/systemd/system/spiperelay-pipe@.socket \
	/etc/spiperelay/spiperelay.toml /usr/share/man/man1/spiperelay.1.gz \
	/usr/share/man/man5/spiperelay.toml.5.gz /usr/share/doc/spiperelay/copyright; do
	"${sudo[@]}" test -e "$f" || fail "$f is not installed"
done
dpkg-query -W -f='${Conffiles}\n' spiperelay | grep -q '/etc/spiperelay/spiperelay.toml' ||
	fail "/etc/spiperelay/spiperelay.toml is not a conffile"
uid=$(getent passwd spiperelay | cut -d: -f3) || fail "no spiperelay user"
[ "$uid" -lt 1000 ] || fail "spiperelay is not a system user (uid $uid)"
[ "$("${sudo[@]}" stat -c '%a %U %G' /etc/spiperelay)" = "700 spiperelay spiperelay" ] ||
	fail "/etc/spiperelay is $("${sudo[@]}" stat -c '%a %U %G' /etc/spiperelay), not 700 spiperelay spiperelay"

version=$(/usr/bin/spiperelay --version)
[ "$version" = "spiperelay $(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)" ] ||
	fail "spiperelay --version printed '$version'"
echo "== $version" >&2

for page in /usr/share/man/man1/spiperelay.1.gz /usr/share/man/man5/spiperelay.toml.5.gz; do
	warnings=$(zcat "$page" | groff -man -ww -z -Tutf8 2>&1) || fail "groff failed on $page"
	[ -z "$warnings" ] || fail "$page: $warnings"
	LC_ALL=C.UTF-8 MANWIDTH=80 man -l "$page" >/dev/null 2>&1 || fail "man -l $page"
done

# The installed units, against the installed binary and man pages.
if command -v systemd-analyze >/dev/null 2>&1; then
	out=$(cd /lib/systemd/system && systemd-analyze verify spiperelay.service \
		spiperelay@example.service spiperelay-pipe@redis.socket 2>&1) ||
		fail "systemd-analyze verify: $out"
	[ -z "$out" ] || fail "systemd-analyze verify: $out"
fi

# The example config with a key made the documented way, if this build has check-config.
probe=$(/usr/bin/spiperelay check-config /nonexistent 2>&1 || true)
if ! grep -q 'unknown command' <<<"$probe"; then
	"${sudo[@]}" runuser -u spiperelay -- /usr/bin/spiperelay keygen /etc/spiperelay/spiperelay.key >&2
	"${sudo[@]}" runuser -u spiperelay -- /usr/bin/spiperelay check-config /etc/spiperelay/spiperelay.toml >&2 ||
		fail "check-config on the installed example"
else
	echo "test-package: check-config is not in this build; not checked" >&2
fi

echo "== dpkg --purge spiperelay" >&2
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive dpkg --purge spiperelay >&2
leftovers >"$after"
if ! diff -u "$before" "$after" >&2; then
	fail "left behind after purge (diff above)"
fi
echo "test-package: ok ($main installed, checked, purged; nothing left)" >&2
