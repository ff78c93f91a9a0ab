#!/usr/bin/env bash
# Builds the Debian packages with cargo-deb ([package.metadata.deb] in Cargo.toml):
#   target/debian/spiperelay_<version>-1_<arch>.deb          the relay, units, example config,
#                                                            man pages, maintainer scripts
#   target/debian/spiperelay-spiped_<version>-1_<arch>.deb   /usr/bin/spiped and spipe links
# and prints their paths, one a line, on standard output. Installs cargo-deb first if missing
# (`cargo install cargo-deb --locked`). Extra arguments go to `cargo deb` (e.g. --fast).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# Files other parts of the tree provide; a clear error beats a cargo-deb one.
for f in dist/spiperelay.toml dist/man/spiperelay.1 dist/man/spiperelay.toml.5 dist/systemd/spiperelay.service; do
	[ -f "$f" ] || {
		echo "package.sh: $f is missing" >&2
		exit 1
	}
done

if ! cargo deb --version >/dev/null 2>&1; then
	echo "== cargo install cargo-deb --locked" >&2
	cargo install cargo-deb --locked >&2
fi

echo "== cargo deb (release build)" >&2
main=$(cargo deb --locked "$@" | tail -n 1)
echo "== cargo deb --variant spiped" >&2
compat=$(cargo deb --locked --no-build --variant spiped "$@" | tail -n 1)
for deb in "$main" "$compat"; do
	[ -f "$deb" ] || {
		echo "package.sh: cargo deb did not report a package file (got: $deb)" >&2
		exit 1
	}
	echo "$deb"
done
