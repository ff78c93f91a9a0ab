#!/usr/bin/env bash
# Timing-leak check of the group-14 exponentiations over their secret exponent (dudect-style
# fixed-vs-random Welch t-test; examples/dudect_modexp.rs explains the method), once with the
# BMI2/ADX kernel (SPIPERELAY_KERNELS=fast) and once with the portable arithmetic
# (SPIPERELAY_KERNELS=reference), for comparison.
#
# usage: scripts/dudect-modexp.sh [SAMPLES] [SECONDS] [--no-build] [--kernels "fast reference"]
#
# SAMPLES (default 100000) measurements per exponentiation, each stopped after SECONDS
# (default 50): at most 5 x SECONDS + 20 s in all (two exponentiations, two kernel sets, and
# two positive controls: a leaky square-and-multiply, which must be found to leak, else the
# harness is blind, and shared_secret plus one squaring for odd exponents, a ~1 µs leak whose
# verdict shows what this machine's noise lets the check see; that one is reported, not
# required). Prints the CPU, each run's lines and a verdict per
# kernel set; exits 1 if any run finds |t| > 4.5 (a leak is likely) or the control is missed. A measurement, not a test: CI does not run it. Quietest on an idle
# machine; other processes add noise (less power to find a difference), not a false leak,
# since the classes are interleaved at random.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

samples=100000 seconds=50 build=1 kernels="fast reference" pos=()
while [ $# -gt 0 ]; do
	case "$1" in
	--no-build) build=0 ;;
	--kernels) kernels=$2; shift ;;
	-h | --help) sed -n '2,15p' "$0"; exit 0 ;;
	-*) echo "unknown option $1" >&2; exit 2 ;;
	*) pos+=("$1") ;;
	esac
	shift
done
[ ${#pos[@]} -ge 1 ] && samples=${pos[0]}
[ ${#pos[@]} -ge 2 ] && seconds=${pos[1]}

if [ "$build" = 1 ]; then
	cargo build --release --locked --example dudect_modexp
fi
bin=${CARGO_TARGET_DIR:-target}/release/examples/dudect_modexp
[ -x "$bin" ] || { echo "$bin missing (build it, or drop --no-build)" >&2; exit 2; }

echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')" \
	"(family $(grep -m1 '^cpu family' /proc/cpuinfo | cut -d: -f2 | tr -d ' ')," \
	"model $(grep -m1 '^model[[:space:]]*:' /proc/cpuinfo | cut -d: -f2 | tr -d ' ')," \
	"$(grep -c ^processor /proc/cpuinfo) cpus)"
echo "samples $samples per exponentiation, at most ${seconds}s each"
status=0
for k in $kernels; do
	echo "== SPIPERELAY_KERNELS=$k"
	if ! SPIPERELAY_KERNELS=$k "$bin" "$samples" "$seconds"; then
		status=1
	fi
done
echo "== small control (SPIPERELAY_KERNELS=fast, --control-small): a ~1 µs leak"
if SPIPERELAY_KERNELS=fast "$bin" --control-small "$samples" "$seconds"; then
	echo "small control: not detected at this sample count and noise"
else
	echo "small control: detected"
fi
echo "== control (SPIPERELAY_KERNELS=fast, --control)"
control_samples=$((samples < 5000 ? samples : 5000))
if out=$(SPIPERELAY_KERNELS=fast "$bin" --control "$control_samples" 20); then
	echo "$out"
	echo "control: the leaky exponentiation was NOT detected; the harness cannot be trusted"
	status=1
else
	echo "$out"
	echo "control: leak detected, as it must be"
fi
exit $status
