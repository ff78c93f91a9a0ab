# Sourced by the bench scripts: sets RELAY to $SPIPERELAY_BENCH_BIN if set, else to the release
# binary, building it first when $build is 1. Exits 1 if there is no executable there.
# Needs ROOT (the project root) and build.
if [ -n "${SPIPERELAY_BENCH_BIN:-}" ]; then
	RELAY=$SPIPERELAY_BENCH_BIN
else
	[ "$build" = 1 ] && cargo build --release --locked --bin spiperelay
	RELAY=$ROOT/target/release/spiperelay
fi
[ -x "$RELAY" ] || { echo "no relay binary at $RELAY" >&2; exit 1; }
