#!/usr/bin/env python3
"""Combine the JSON files that scripts/bench.sh writes into one side-by-side table.

usage: scripts/bench_table.py OUTDIR

Reads OUTDIR/{bulk,connrate,redis,redis-many}.json (the shared harness's bench.py --json output;
a missing file leaves its columns empty) and prints markdown: the machine, one row per chain
with the medians of every measurement, and the ratios of spiperelay to spiped and to stunnel.
"""
import json
import os
import sys

CHAINS = [  # (row label, harness kinds that belong to the row)
    ("spiped", ("spiped",)),
    ("stunnel", ("stunnel",)),
    ("spiperelay", ("relay",)),
    ("spiped, Unix outer ends", ("spiped-unix",)),
    ("spiperelay, Unix outer ends", ("relay-unix",)),
    # connrate's connection-setup modes (issue 7): a kind with these exact flags is its own row.
    ("spiped -f (no DH)", ("spiped:-f",)),
    ("spiperelay --x25519", ("relay:--x25519",)),
]


def load(outdir, name):
    path = os.path.join(outdir, name + ".json")
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def base(kind):
    """'relay:-n 0' -> 'relay' (per-test flags do not make another chain)."""
    return kind.split(":", 1)[0]


def row_of(rows, owner, kind):
    """The row of a harness kind: its own row if CHAINS names it with its flags, else its base's."""
    return rows.get(owner.get(kind) or owner.get(base(kind)))


def med(summary):
    if not summary or not summary.get("n"):
        return None
    return summary.get("median")


def collect(outdir):
    rows = {label: {} for label, _ in CHAINS}
    owner = {k: label for label, kinds in CHAINS for k in kinds}
    machine = None

    bulk = load(outdir, "bulk")
    if bulk:
        machine = bulk.get("machine")
        for kind, r in bulk["kinds"].items():
            row = row_of(rows, owner, kind)
            if row is not None:
                row["MB/s"] = med(r["MBps"])
                row["CPU-s/GiB"] = med(r["relay_cpu_s_per_GiB"])

    conn = load(outdir, "connrate")
    if conn:
        machine = machine or conn.get("machine")
        for c in conn["cases"]:
            row = row_of(rows, owner, c["kind"])
            if row is not None:
                t = c["concurrency"]
                row[f"conn/s ({t} thr)"] = med(c["conn_per_s"])
                if t == 1:
                    row["p50 ms (1 thr)"] = med(c["p50_ms"])
                    row["CPU µs/conn"] = med(c["relay_cpu_us_per_conn"])

    for name in ("redis", "redis-many"):
        red = load(outdir, name)
        if not red:
            continue
        machine = machine or red.get("machine")
        for c in red["cases"]:
            row = row_of(rows, owner, c["kind"])
            if row is None:
                continue
            col = f"GET req/s -c {c['clients']} -P {c['pipeline']}"
            get = c["tests"].get("GET") or next(iter(c["tests"].values()), None)
            failed = sum(1 for x in c["runs"] if x["timed_out"] or x["rc"] or not x["rows"])
            value = med(get["rps"]) if get else None
            row[col] = (value, failed, len(c["runs"]))
            if c["clients"] == 50 and c["pipeline"] == 1:
                row["CPU µs/GET"] = med(c.get("relay_cpu_us_per_req"))
    return machine, rows


def cell(v):
    if v is None:
        return "–"
    if isinstance(v, tuple):
        value, failed, total = v
        text = cell(value) if value is not None else "no result"
        return text + (f" ({failed}/{total} failed)" if failed else "")
    if v >= 100:
        return f"{v:,.0f}".replace(",", " ")
    return f"{v:.2f}"


def num(v):
    return v[0] if isinstance(v, tuple) else v


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: bench_table.py OUTDIR")
    machine, rows = collect(sys.argv[1])
    cols = []
    for r in rows.values():
        for k in r:
            if k not in cols:
                cols.append(k)
    if machine:
        print(f"Machine: {machine.get('cpu', '?')}, {machine.get('cores', '?')} cores, "
              f"kernel {machine.get('kernel', '?')}; {machine.get('spiped', '')}, "
              f"{machine.get('stunnel4', '')}, {machine.get('openssl', '')}\n")
    print("Medians over the repetitions. CPU = both relay ends (lower is better).\n")
    print("| chain | " + " | ".join(cols) + " |")
    print("|---|" + "---|" * len(cols))
    for label, r in rows.items():
        if r:
            print(f"| {label} | " + " | ".join(cell(r.get(c)) for c in cols) + " |")
    for mine, peer in (("spiperelay", "spiped"), ("spiperelay", "stunnel"),
                       ("spiperelay --x25519", "spiped")):
        ours, theirs = rows.get(mine, {}), rows.get(peer, {})
        if not ours or not theirs:
            continue
        ratios = []
        for c in cols:
            a, b = num(ours.get(c)), num(theirs.get(c))
            ratios.append(f"{a / b:.2f}×" if a is not None and b else "–")
        print(f"| {mine} / {peer} | " + " | ".join(ratios) + " |")
    unix, tcp = rows.get("spiperelay, Unix outer ends", {}), rows.get("spiperelay", {})
    if unix.get("MB/s") and tcp.get("MB/s"):
        print(f"\nspiperelay bulk, Unix outer ends / TCP outer ends: {unix['MB/s'] / tcp['MB/s']:.2f}×")


if __name__ == "__main__":
    main()
