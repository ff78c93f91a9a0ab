#!/usr/bin/env bash
# Installs spiperelay into PREFIX/bin (default /usr/local/bin), and with --links also the
# drop-in names `spiped` and `spipe` as symbolic links to it: invoked under those names, the
# binary behaves as those programs, so existing scripts and systemd units work unchanged.
#
#   scripts/install.sh [--prefix DIR] [--links] [--force] [--bin PATH]
#
#   --prefix DIR  install into DIR/bin (created if missing); default /usr/local
#   --links       also create DIR/bin/spiped and DIR/bin/spipe -> spiperelay
#   --force       replace an existing spiped/spipe that is not already our link
#   --bin PATH    install this binary instead of building target/release/spiperelay
#
# Without --bin it runs `cargo build --release --locked` (a no-op when up to date).
set -euo pipefail

usage() {
	sed -n '2,12s/^# \{0,1\}//p' "${BASH_SOURCE[0]}" >&2
	exit "${1:-1}"
}

prefix=/usr/local links=0 force=0 bin=
while [ $# -gt 0 ]; do
	case "$1" in
	--prefix) [ $# -ge 2 ] || usage; prefix=$2; shift 2 ;;
	--prefix=*) prefix=${1#--prefix=}; shift ;;
	--links) links=1; shift ;;
	--force) force=1; shift ;;
	--bin) [ $# -ge 2 ] || usage; bin=$2; shift 2 ;;
	--bin=*) bin=${1#--bin=}; shift ;;
	-h | --help) usage 0 ;;
	*) echo "install.sh: unknown argument: $1" >&2; usage ;;
	esac
done
[ -n "$prefix" ] || { echo "install.sh: --prefix needs a directory" >&2; exit 1; }
case "$prefix" in /*) ;; *) prefix=$PWD/$prefix ;; esac

if [ -z "$bin" ]; then
	cd "$(dirname "${BASH_SOURCE[0]}")/.."
	echo "== cargo build --release --locked" >&2
	cargo build --release --locked
	bin=$PWD/target/release/spiperelay
fi
[ -f "$bin" ] && [ -x "$bin" ] || { echo "install.sh: not an executable: $bin" >&2; exit 1; }

dest=$prefix/bin
mkdir -p "$dest"
# Copy to a temporary name and rename, so a running spiperelay is never overwritten in place.
install -m 0755 "$bin" "$dest/.spiperelay.new"
mv -f "$dest/.spiperelay.new" "$dest/spiperelay"
echo "installed $dest/spiperelay" >&2

if [ "$links" -eq 1 ]; then
	for name in spiped spipe; do
		link=$dest/$name
		if [ -e "$link" ] || [ -L "$link" ]; then
			if [ "$(readlink "$link" 2>/dev/null || true)" != spiperelay ] && [ "$force" -ne 1 ]; then
				echo "install.sh: $link exists and is not our link; not replacing it (use --force)" >&2
				exit 1
			fi
			rm -f "$link"
		fi
		ln -s spiperelay "$link"
		echo "linked $link -> spiperelay" >&2
	done
fi
