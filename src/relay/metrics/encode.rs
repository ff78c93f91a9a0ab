//! The metrics of a [`ProcessSnapshot`] in the Prometheus text format (version 0.0.4, what
//! `promtool check metrics` reads) or in OpenMetrics, encoded with the `prometheus-client`
//! crate.
//!
//! The crate's own metric types hold atomics meant to be updated in place; ours are plain
//! integers kept per event loop and summed at scrape time, so the snapshot is encoded through a
//! [`Collector`] with the crate's descriptor and sample encoders: the crate still writes every
//! name, suffix (`_total`, `_info`, the unit), label escape and number.
//!
//! Every name starts with `spiperelay_`; base units (seconds, bytes); counters end in
//! `_total`. The families (labels in braces):
//!
//! | name | type | meaning |
//! |---|---|---|
//! | `build_info{version}` | gauge (1) | this build |
//! | `io_backend_info{backend}` | gauge (1) | `io_uring` or `epoll` |
//! | `start_time_seconds` | gauge | process start, Unix time |
//! | `event_loops` | gauge | event loops reporting |
//! | `reloads_total{result}` | counter | configuration reloads, `ok` or `failed` |
//! | `key_pair_pool_ready{kind}` | gauge | handshake key pairs ready (`x25519`, `group14`) |
//! | `key_pairs_total{kind,source}` | counter | key pairs taken, `pool` or `inline` |
//! | `pipe_info{pipe,mode}` | gauge (1) | each pipe, `encrypt` or `decrypt` |
//! | `connections_accepted_total{pipe}` | counter | connections accepted |
//! | `connections_active{pipe}` | gauge | connections open now |
//! | `connections_closed_total{pipe,reason}` | counter | by drop reason, or `clean` |
//! | `handshake_duration_seconds{pipe}` | histogram | completed handshakes |
//! | `handshake_failures_total{pipe,reason}` | counter | connections closed in the handshake |
//! | `target_connect_duration_seconds{pipe}` | histogram | successful target connects |
//! | `received_bytes_total{pipe,side}` | counter | bytes read, `plaintext` or `encrypted` side |
//! | `sent_bytes_total{pipe,side}` | counter | bytes written, by side |
//! | `connection_limit_reached_total{pipe}` | counter | times accepting paused at `-n` |
//! | `accept_backoffs_total{pipe}` | counter | accept pauses (`EMFILE`, ...) |
//! | `key_info{pipe,fingerprint,state}` | gauge (1) | each key and its state |
//! | `key_connections{pipe,fingerprint}` | gauge | live connections using the key |
//! | `key_handshakes_total{pipe,fingerprint}` | counter | handshakes with the key |
//!
//! Per-pipe families that only an event loop with counters fills (all but `pipe_info`,
//! `connections_active` and the key families) are left out for pipes without counters.

use std::fmt;
use std::time::UNIX_EPOCH;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::{Registry, Unit};

use super::{
    Histogram, PipeCounters, PipeTotals, ProcessSnapshot, SIDES, key_state, mode_label, ring_mode,
};

/// The prefix of every metric name (followed by `_`).
pub const PREFIX: &str = "spiperelay";

/// The `Content-Type` of [`prometheus_text`].
pub const PROMETHEUS_CONTENT_TYPE: &str =
    prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// The `Content-Type` of [`openmetrics_text`].
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// `snap` in the Prometheus text format, version 0.0.4.
pub fn prometheus_text(snap: &ProcessSnapshot) -> String {
    let mut out = String::new();
    // Writing to a String cannot fail, and the collector returns only the writer's errors.
    let _ = prometheus_client::encoding::prometheus_text::encode(&mut out, &registry(snap));
    out
}

/// `snap` in the OpenMetrics text format (ends with `# EOF`).
pub fn openmetrics_text(snap: &ProcessSnapshot) -> String {
    let mut out = String::new();
    let _ = prometheus_client::encoding::text::encode(&mut out, &registry(snap));
    out
}

fn registry(snap: &ProcessSnapshot) -> Registry {
    let mut r = Registry::with_prefix(PREFIX);
    r.register_collector(Box::new(SnapshotCollector(snap.clone())));
    r
}

/// Encodes a [`ProcessSnapshot`] (see the module docs for the families).
#[derive(Debug)]
struct SnapshotCollector(ProcessSnapshot);

/// A value of one family: a gauge, a counter or an info (always 1).
enum Value {
    Counter(u64),
    Gauge(i64),
    GaugeF(f64),
    Info,
}

/// Writes one family: its descriptor, then one sample per `(labels, value)`.
fn family<'l>(
    enc: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    unit: Option<Unit>,
    kind: MetricType,
    samples: impl IntoIterator<Item = (Vec<(&'l str, &'l str)>, Value)>,
) -> fmt::Result {
    let mut m = enc.encode_descriptor(name, help, unit.as_ref(), kind)?;
    for (labels, value) in samples {
        match value {
            Value::Info => m.encode_info(&labels)?,
            Value::Counter(v) => ConstCounter::new(v).encode(m.encode_family(&labels)?)?,
            Value::Gauge(v) => ConstGauge::new(v).encode(m.encode_family(&labels)?)?,
            Value::GaugeF(v) => ConstGauge::new(v).encode(m.encode_family(&labels)?)?,
        }
    }
    Ok(())
}

/// Writes one histogram family, one histogram per `(labels, histogram)`.
fn histograms<'l>(
    enc: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    samples: impl IntoIterator<Item = (Vec<(&'l str, &'l str)>, &'l Histogram)>,
) -> fmt::Result {
    let mut m = enc.encode_descriptor(name, help, Some(&Unit::Seconds), MetricType::Histogram)?;
    for (labels, h) in samples {
        m.encode_family(&labels)?.encode_histogram::<NoLabelSet>(
            h.sum_seconds(),
            h.count(),
            &h.buckets(),
            None,
        )?;
    }
    Ok(())
}

fn gauge(v: u64) -> Value {
    Value::Gauge(i64::try_from(v).unwrap_or(i64::MAX))
}

impl Collector for SnapshotCollector {
    fn encode(&self, mut enc: DescriptorEncoder<'_>) -> fmt::Result {
        let s = &self.0;
        let e = &mut enc;
        family(
            e,
            "build",
            "This build of spiperelay.",
            None,
            MetricType::Info,
            [(vec![("version", s.info.version)], Value::Info)],
        )?;
        family(
            e,
            "io_backend",
            "The io backend the event loops run on.",
            None,
            MetricType::Info,
            [(vec![("backend", s.info.backend)], Value::Info)],
        )?;
        let start = s
            .info
            .started
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        family(
            e,
            "start_time",
            "When the process started, in seconds since the Unix epoch.",
            Some(Unit::Seconds),
            MetricType::Gauge,
            [(vec![], Value::GaugeF(start))],
        )?;
        family(
            e,
            "event_loops",
            "Event loops reporting to this scrape.",
            None,
            MetricType::Gauge,
            [(vec![], gauge(s.loops as u64))],
        )?;
        family(
            e,
            "reloads",
            "Configuration reloads: applied (ok) or refused with nothing changed (failed).",
            None,
            MetricType::Counter,
            [
                (vec![("result", "ok")], Value::Counter(s.reloads_ok)),
                (vec![("result", "failed")], Value::Counter(s.reloads_failed)),
            ],
        )?;
        family(
            e,
            "key_pair_pool_ready",
            "Handshake key pairs computed ahead and ready now.",
            None,
            MetricType::Gauge,
            s.pools
                .iter()
                .map(|p| (vec![("kind", p.kind)], gauge(p.ready))),
        )?;
        family(
            e,
            "key_pairs",
            "Handshake key pairs taken: ready from the pool, or computed inline because it was \
             empty.",
            None,
            MetricType::Counter,
            s.pools.iter().flat_map(|p| {
                [
                    (
                        vec![("kind", p.kind), ("source", "pool")],
                        Value::Counter(p.pooled),
                    ),
                    (
                        vec![("kind", p.kind), ("source", "inline")],
                        Value::Counter(p.inline),
                    ),
                ]
            }),
        )?;
        encode_pipes(e, &s.pipes)
    }
}

fn pipe(p: &PipeTotals) -> Vec<(&str, &str)> {
    vec![("pipe", &*p.name)]
}

/// The per-pipe and per-key families.
fn encode_pipes(e: &mut DescriptorEncoder<'_>, pipes: &[PipeTotals]) -> fmt::Result {
    let counted = || {
        pipes
            .iter()
            .filter_map(|p| p.counters.as_ref().map(|c| (p, c)))
    };
    let per_pipe = |f: fn(&PipeCounters) -> u64| {
        counted().map(move |(p, c)| (vec![("pipe", &*p.name)], Value::Counter(f(c))))
    };
    family(
        e,
        "pipe",
        "Each pipe, with its mode (encrypt: -e, decrypt: -d).",
        None,
        MetricType::Info,
        pipes.iter().map(|p| {
            (
                vec![("pipe", &*p.name), ("mode", mode_label(p.mode))],
                Value::Info,
            )
        }),
    )?;
    family(
        e,
        "connections_accepted",
        "Connections accepted.",
        None,
        MetricType::Counter,
        per_pipe(|c| c.accepted),
    )?;
    family(
        e,
        "connections_active",
        "Connections open now, including those waiting at the -n limit.",
        None,
        MetricType::Gauge,
        pipes.iter().map(|p| (pipe(p), gauge(p.active))),
    )?;
    family(
        e,
        "connections_closed",
        "Connections closed, by reason: clean (both directions ended) or why it was dropped.",
        None,
        MetricType::Counter,
        counted().flat_map(|(p, c)| {
            c.closed
                .iter()
                .map(|(r, n)| (vec![("pipe", &*p.name), ("reason", r)], Value::Counter(n)))
        }),
    )?;
    histograms(
        e,
        "handshake_duration",
        "Time from the start of a handshake to its completion.",
        counted().map(|(p, c)| (pipe(p), &c.handshake_duration)),
    )?;
    family(
        e,
        "handshake_failures",
        "Connections closed while their handshake ran, by reason.",
        None,
        MetricType::Counter,
        counted().flat_map(|(p, c)| {
            c.handshake_failures
                .iter()
                .map(|(r, n)| (vec![("pipe", &*p.name), ("reason", r)], Value::Counter(n)))
        }),
    )?;
    histograms(
        e,
        "target_connect_duration",
        "Time a successful connect to the target took.",
        counted().map(|(p, c)| (pipe(p), &c.target_connect_duration)),
    )?;
    let by_side = |f: fn(&PipeCounters) -> [u64; 2]| {
        counted().flat_map(move |(p, c)| {
            let v = f(c);
            SIDES
                .iter()
                .zip(v)
                .map(|(side, n)| (vec![("pipe", &*p.name), ("side", *side)], Value::Counter(n)))
                .collect::<Vec<_>>()
        })
    };
    family(
        e,
        "received",
        "Bytes read from the plaintext or the encrypted socket of each connection.",
        Some(Unit::Bytes),
        MetricType::Counter,
        by_side(|c| c.received_bytes),
    )?;
    family(
        e,
        "sent",
        "Bytes written to the plaintext or the encrypted socket of each connection.",
        Some(Unit::Bytes),
        MetricType::Counter,
        by_side(|c| c.sent_bytes),
    )?;
    family(
        e,
        "connection_limit_reached",
        "Times accepting paused at the -n limit (new clients wait in the listen backlog).",
        None,
        MetricType::Counter,
        per_pipe(|c| c.limit_reached),
    )?;
    family(
        e,
        "accept_backoffs",
        "Times accepting paused after an accept error such as EMFILE (out of descriptors).",
        None,
        MetricType::Counter,
        per_pipe(|c| c.accept_backoffs),
    )?;
    let keys = || {
        pipes
            .iter()
            .flat_map(|p| p.keys.iter().map(move |k| (p, k)))
    };
    family(
        e,
        "key",
        "Each key of a pipe by fingerprint, with its state: accepted (-d), current or standby \
         (-e), removed (kept for its live connections).",
        None,
        MetricType::Info,
        keys().map(|(p, k)| {
            (
                vec![
                    ("pipe", &*p.name),
                    ("fingerprint", k.fingerprint.as_str()),
                    ("state", key_state(k, ring_mode(p.mode))),
                ],
                Value::Info,
            )
        }),
    )?;
    family(
        e,
        "key_connections",
        "Live connections established with the key.",
        None,
        MetricType::Gauge,
        keys().map(|(p, k)| {
            (
                vec![("pipe", &*p.name), ("fingerprint", k.fingerprint.as_str())],
                gauge(k.live as u64),
            )
        }),
    )?;
    family(
        e,
        "key_handshakes",
        "Handshakes completed with the key since it was added.",
        None,
        MetricType::Counter,
        keys().map(|(p, k)| {
            (
                vec![("pipe", &*p.name), ("fingerprint", k.fingerprint.as_str())],
                Value::Counter(k.handshakes),
            )
        }),
    )
}
