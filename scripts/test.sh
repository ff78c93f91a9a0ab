#!/usr/bin/env bash
# Runs every check the project gates on: formatting, clippy (all targets, warnings are errors),
# and the full test suite with the committed Cargo.lock. This is the README's test command and
# what CI (.ci/run) calls. It installs what the tests need first, so it works on a bare machine.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# Toolchain components used below (present on the project machines; added if missing).
if command -v rustup >/dev/null 2>&1; then
	rustup component list --installed 2>/dev/null | grep -q '^rustfmt' || rustup component add rustfmt
	rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy
fi

# Debian packages the black-box tests drive (tests/interop.rs, tests/cli.rs, tests/redis.rs;
# systemd for systemd-analyze and systemd-socket-activate in tests/dist_units.rs and
# tests/systemd.rs; groff-base and man-db for the man-page checks; prometheus for promtool in
# tests/metrics.rs):
# the reference spiped/spipe, socat, and redis. Installed only if missing, and only as root or
# with passwordless sudo; otherwise those tests print SKIP (or fail under CI=true).
# SPIPERELAY_NO_APT=1 skips this step.
install_test_packages() {
	local pkgs=(spiped socat redis-server redis-tools systemd groff-base man-db prometheus iproute2) missing=() p sudo=()
	command -v dpkg-query >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1 || {
		echo "== not a Debian system; install ${pkgs[*]} yourself" >&2
		return 0
	}
	for p in "${pkgs[@]}"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' ||
			missing+=("$p")
	done
	[ ${#missing[@]} -eq 0 ] && return 0
	if [ "$(id -u)" -ne 0 ]; then
		if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
			sudo=(sudo -n)
		else
			echo "== missing ${missing[*]} and not root (no passwordless sudo); tests needing them will SKIP" >&2
			return 0
		fi
	fi
	echo "== apt-get install ${missing[*]}" >&2
	# Keep the redis-server postinst from starting a system redis: the tests run their own on a
	# private socket. policy-rc.d exit 101 = "action forbidden"; only ours is removed afterwards.
	local policy=/usr/sbin/policy-rc.d placed=0
	if [ ! -e "$policy" ]; then
		printf '#!/bin/sh\nexit 101\n' | "${sudo[@]}" tee "$policy" >/dev/null &&
			"${sudo[@]}" chmod 755 "$policy" && placed=1
	fi
	local rc=0
	"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q &&
		"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
			apt-get install -y -q --no-install-recommends "${missing[@]}" || rc=$?
	[ "$placed" -eq 1 ] && "${sudo[@]}" rm -f "$policy"
	return "$rc"
}
[ "${SPIPERELAY_NO_APT:-0}" = 1 ] || install_test_packages

echo "== cargo fmt --check" >&2
cargo fmt --all --check
echo "== cargo clippy --all-targets -D warnings" >&2
cargo clippy --locked --all-targets -- -D warnings
echo "== cargo test" >&2
cargo test --locked "$@"

# The interop and tamper tests again with only the reference RustCrypto paths (no kernel crates),
# so a kernel bug and a relay bug can be told apart (README "Kernels").
echo "== cargo test (SPIPERELAY_KERNELS=reference): interop, tamper, kernels" >&2
SPIPERELAY_KERNELS=reference cargo test --locked --test interop --test tamper --test kernels "$@"

# The Debian package: built, installed with dpkg -i, checked and purged. Only as root (CI runs
# as root) or under CI=true, where not being able to is a failure.
if [ "${CI:-}" = true ] || [ "$(id -u)" -eq 0 ]; then
	echo "== scripts/test-package.sh" >&2
	scripts/test-package.sh
fi

# The package under a real systemd in a container (boots Debian bookworm with systemd-nspawn;
# needs root and, the first time, access to Debian's package mirror). Opt-in.
if [ "${SPIPERELAY_TEST_SYSTEMD:-0}" = 1 ]; then
	echo "== scripts/test-systemd.sh" >&2
	scripts/test-systemd.sh
fi
