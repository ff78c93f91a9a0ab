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

echo "== cargo fmt --check" >&2
cargo fmt --all --check
echo "== cargo clippy --all-targets -D warnings" >&2
cargo clippy --locked --all-targets -- -D warnings
echo "== cargo test" >&2
cargo test --locked "$@"
