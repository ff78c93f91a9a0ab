//! The report behind `spiperelay status` (whose client is in
//! [`super::control::client`]): what a running daemon is doing, per pipe — its listeners and target,
//! live and past connections, bytes, and the key table that `keys status` shows — read from
//! the metrics [`Board`] through the control socket, as text or (`--json`) as one JSON object.
//!
//! The control request is `report` (text) or `report json`; the daemon answers from
//! [`Board::collect`] ([`answer`]), so `status` and `/metrics` always agree. Counts that the
//! event loops do not keep (an engine without [`PipeCounters`](super::metrics::PipeCounters))
//! are left out of the text and are `null` in the JSON.

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use super::control::utc_text;
use super::keys::{KeyStatus, RingMode};
use super::metrics::{
    Board, CLEAN, PipeCounters, PipeTotals, ProcessSnapshot, key_state, mode_label, ring_mode,
};
use crate::cli::Mode;

/// The control request for the text report.
pub const REQUEST_TEXT: &[u8] = b"report";

/// The control request for the JSON report.
pub const REQUEST_JSON: &[u8] = b"report json";

/// The control socket's answer to a `report` request (`json`: `report json`).
pub fn answer(board: &Board, json: bool) -> String {
    let snap = board.collect();
    if json {
        render_json(&snap)
    } else {
        render_text(&snap)
    }
}

/// The key table as `keys status` prints it: a header line, then one line per key,
/// `key <fingerprint> <state> live=<n> handshakes=<n> last_used=<UTC time> (<n> s ago)|never`
/// (states: [`key_state`]).
pub fn render_key_table(
    mode: RingMode,
    max_keys: usize,
    keys: &[KeyStatus],
    now: SystemTime,
) -> String {
    let accepted = keys.iter().filter(|s| s.accepted).count();
    let mut out = format!(
        "{} end: {accepted} key(s) accepted, at most {max_keys} (--max-keys)",
        match mode {
            RingMode::Encrypt => "-e",
            RingMode::Decrypt => "-d",
        },
    );
    for s in keys {
        let used = match s.last_used {
            None => "never".to_owned(),
            Some(t) => {
                let ago = now.duration_since(t).map(|d| d.as_secs()).unwrap_or(0);
                format!("{} ({ago} s ago)", utc_text(t))
            }
        };
        out.push_str(&format!(
            "\nkey {} {} live={} handshakes={} last_used={used}",
            s.fingerprint,
            key_state(s, mode),
            s.live,
            s.handshakes
        ));
    }
    out
}

/// Bytes (from clients, to clients, from targets, to targets) of a pipe in `mode`.
fn client_bytes(mode: Mode, c: &PipeCounters) -> [u64; 4] {
    // Side indexes: 0 plaintext, 1 encrypted; with -e the clients are on the plaintext side.
    let (client, target) = match mode {
        Mode::Encrypt => (0, 1),
        Mode::Decrypt => (1, 0),
    };
    [
        c.received_bytes[client],
        c.sent_bytes[client],
        c.received_bytes[target],
        c.sent_bytes[target],
    ]
}

fn flag(mode: Mode) -> &'static str {
    match mode {
        Mode::Encrypt => "-e",
        Mode::Decrypt => "-d",
    }
}

/// The text report: a process line, then per pipe its setup, connections, bytes and keys.
pub fn render_text(s: &ProcessSnapshot) -> String {
    let up = s
        .taken
        .duration_since(s.info.started)
        .map_or(0, |d| d.as_secs());
    let mut out = format!(
        "spiperelay {}, io backend {}, up {up} s (since {}), {} event loop(s), reloads: {} ok, \
         {} failed",
        s.info.version,
        s.info.backend,
        utc_text(s.info.started),
        s.loops,
        s.reloads_ok,
        s.reloads_failed
    );
    if s.pipes.is_empty() {
        out.push_str("\nno pipes");
    }
    for p in &s.pipes {
        out.push_str(&pipe_text(p, s.taken));
    }
    out
}

fn pipe_text(p: &PipeTotals, now: SystemTime) -> String {
    use fmt::Write as _;
    let mut out = format!("\npipe {} ({})", p.name, flag(p.mode));
    if let Some(d) = &p.description {
        let _ = write!(
            out,
            ": listening on {}, target {}",
            d.listen.join(", "),
            d.target
        );
    }
    let _ = write!(out, "\n  connections: {} active", p.active);
    if let Some(c) = &p.counters {
        let clean = c.closed.get(CLEAN);
        let closed = c.closed.total();
        let _ = write!(
            out,
            ", {} accepted, {closed} closed ({clean} clean, {} dropped), {} handshake failures",
            c.accepted,
            closed - clean,
            c.handshake_failures.total()
        );
        let drops: Vec<String> = c
            .closed
            .iter()
            .filter(|&(r, n)| n > 0 && r != CLEAN)
            .map(|(r, n)| format!("{r}={n}"))
            .collect();
        if !drops.is_empty() {
            let _ = write!(out, "\n  dropped: {}", drops.join(" "));
        }
        let [fc, tc, ft, tt] = client_bytes(p.mode, c);
        let _ = write!(
            out,
            "\n  bytes: {fc} from clients, {tc} to clients, {ft} from the target, {tt} to the \
             target"
        );
    }
    if p.max_keys > 0 {
        for line in render_key_table(ring_mode(p.mode), p.max_keys, &p.keys, now).lines() {
            let _ = write!(out, "\n  {line}");
        }
    }
    out
}

fn time_json(t: Option<SystemTime>) -> Value {
    t.map_or(Value::Null, |t| Value::from(utc_text(t)))
}

/// The JSON report: one object (see [`render_text`] for the fields' meaning; counts the loops
/// do not keep are `null`).
pub fn render_json(s: &ProcessSnapshot) -> String {
    let unix = |t: SystemTime| t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let pipes: Vec<Value> = s
        .pipes
        .iter()
        .map(|p| {
            let counters = p.counters.as_ref();
            let closed = counters.map(|c| {
                c.closed
                    .iter()
                    .map(|(r, n)| (r.to_owned(), Value::from(n)))
                    .collect::<serde_json::Map<_, _>>()
            });
            let failures = counters.map(|c| {
                c.handshake_failures
                    .iter()
                    .map(|(r, n)| (r.to_owned(), Value::from(n)))
                    .collect::<serde_json::Map<_, _>>()
            });
            let bytes = counters.map(|c| {
                let [fc, tc, ft, tt] = client_bytes(p.mode, c);
                json!({
                    "from_clients": fc,
                    "to_clients": tc,
                    "from_target": ft,
                    "to_target": tt,
                })
            });
            let keys: Vec<Value> = p
                .keys
                .iter()
                .map(|k| {
                    json!({
                        "fingerprint": k.fingerprint,
                        "state": key_state(k, ring_mode(p.mode)),
                        "live": k.live,
                        "handshakes": k.handshakes,
                        "last_used": time_json(k.last_used),
                    })
                })
                .collect();
            json!({
                "name": &*p.name,
                "mode": mode_label(p.mode),
                "listen": p.description.as_ref().map(|d| d.listen.clone()),
                "target": p.description.as_ref().map(|d| d.target.clone()),
                "connections": {
                    "active": p.active,
                    "accepted": counters.map(|c| c.accepted),
                    "closed": closed,
                    "handshake_failures": failures,
                },
                "bytes": bytes,
                "max_keys": p.max_keys,
                "keys": keys,
            })
        })
        .collect();
    json!({
        "version": s.info.version,
        "backend": s.info.backend,
        "started": utc_text(s.info.started),
        "uptime_seconds": unix(s.taken).saturating_sub(unix(s.info.started)),
        "event_loops": s.loops,
        "reloads": { "ok": s.reloads_ok, "failed": s.reloads_failed },
        "pipes": pipes,
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::key::{Key, KeySet};
    use crate::relay::keys::KeyRing;
    use crate::relay::metrics::{
        LoopSnapshot, PipeDescription, PipeSample, ProcessInfo, Publisher,
    };
    use std::sync::Arc;
    use std::time::Instant;

    fn publish(publisher: &mut Publisher, ring: &KeyRing, counters: Option<PipeCounters>) {
        publisher.publish(
            Instant::now(),
            LoopSnapshot {
                pipes: vec![PipeSample {
                    name: Arc::from("redis"),
                    mode: Mode::Decrypt,
                    active: 2,
                    counters,
                    keys: Some(ring.clone()),
                }],
                pools: vec![],
            },
        );
    }

    fn board_with(counters: Option<PipeCounters>) -> (Arc<Board>, String) {
        let key = Key::from_key_file(b"k");
        let ring = KeyRing::new(KeySet::single(key.clone()), 2, RingMode::Decrypt).expect("ring");
        let claim = ring.begin_use(&key).expect("claim");
        let board = Board::new(ProcessInfo::new("epoll"));
        board.describe_pipes(vec![PipeDescription {
            name: Arc::from("redis"),
            listen: vec!["[0.0.0.0]:8025".into()],
            target: "/run/redis/redis-server.sock".into(),
        }]);
        publish(&mut board.publisher(), &ring, counters);
        ring.end_use(claim);
        (board, key.fingerprint())
    }

    #[test]
    fn text_report_without_counters_shows_what_is_known() {
        let (board, fp) = board_with(None);
        let text = answer(&board, false);
        let lines: Vec<&str> = text.lines().collect();
        assert!(
            lines[0].starts_with(&format!(
                "spiperelay {}, io backend epoll, up ",
                env!("CARGO_PKG_VERSION")
            )),
            "{text}"
        );
        assert!(lines[0].ends_with("1 event loop(s), reloads: 0 ok, 0 failed"));
        assert_eq!(
            lines[1],
            "pipe redis (-d): listening on [0.0.0.0]:8025, target /run/redis/redis-server.sock"
        );
        assert_eq!(lines[2], "  connections: 2 active");
        assert_eq!(
            lines[3],
            "  -d end: 1 key(s) accepted, at most 2 (--max-keys)"
        );
        assert!(
            lines[4].starts_with(&format!(
                "  key {fp} accepted live=0 handshakes=1 last_used="
            )),
            "{text}"
        );
        assert_eq!(lines.len(), 5, "{text}");
    }

    #[test]
    fn text_report_with_counters() {
        let mut c = PipeCounters::default();
        for _ in 0..5 {
            c.on_accepted();
        }
        c.on_closed(None, false);
        c.on_closed(Some("bad_mac"), true);
        c.on_closed(Some("target_refused"), false);
        c.on_received(1, 700); // -d: the client is on the encrypted side
        c.on_sent(1, 300);
        c.on_received(0, 200);
        c.on_sent(0, 600);
        let (board, _) = board_with(Some(c));
        let text = answer(&board, false);
        assert!(
            text.contains(
                "\n  connections: 2 active, 5 accepted, 3 closed (1 clean, 2 dropped), \
                 1 handshake failures\n  dropped: bad_mac=1 target_refused=1\n  bytes: 700 \
                 from clients, 300 to clients, 200 from the target, 600 to the target\n"
            ),
            "{text}"
        );
    }

    #[test]
    fn json_report() {
        let mut c = PipeCounters::default();
        c.on_accepted();
        c.on_closed(Some("bad_mac"), true);
        c.on_received(1, 7);
        let (board, fp) = board_with(Some(c));
        board.reload_done(false);
        let v: Value = serde_json::from_str(&answer(&board, true)).expect("JSON");
        assert_eq!(v["version"], env!("CARGO_PKG_VERSION"));
        assert_eq!(v["backend"], "epoll");
        assert_eq!(v["event_loops"], 1);
        assert_eq!(v["reloads"]["failed"], 1);
        let p = &v["pipes"][0];
        assert_eq!(p["name"], "redis");
        assert_eq!(p["mode"], "decrypt");
        assert_eq!(p["listen"][0], "[0.0.0.0]:8025");
        assert_eq!(p["target"], "/run/redis/redis-server.sock");
        assert_eq!(p["connections"]["active"], 2);
        assert_eq!(p["connections"]["accepted"], 1);
        assert_eq!(p["connections"]["closed"]["bad_mac"], 1);
        assert_eq!(p["connections"]["closed"]["clean"], 0);
        assert_eq!(p["connections"]["handshake_failures"]["bad_mac"], 1);
        assert_eq!(p["bytes"]["from_clients"], 7);
        assert_eq!(p["max_keys"], 2);
        assert_eq!(p["keys"][0]["fingerprint"], fp.as_str());
        assert_eq!(p["keys"][0]["state"], "accepted");
        assert_eq!(p["keys"][0]["handshakes"], 1);
        assert!(p["keys"][0]["last_used"].is_string());
        // Without counters, the counts are null rather than 0.
        let (board, _) = board_with(None);
        let v: Value = serde_json::from_str(&answer(&board, true)).expect("JSON");
        assert!(v["pipes"][0]["connections"]["accepted"].is_null());
        assert!(v["pipes"][0]["bytes"].is_null());
        assert_eq!(v["pipes"][0]["connections"]["active"], 2);
    }

    #[test]
    fn key_table_matches_keys_status() {
        let ring = KeyRing::new(
            KeySet::new(vec![Key::from_key_file(b"a"), Key::from_key_file(b"b")]).expect("keys"),
            3,
            RingMode::Encrypt,
        )
        .expect("ring");
        let now = SystemTime::now();
        let t = render_key_table(RingMode::Encrypt, 3, &ring.status(), now);
        assert_eq!(
            t,
            format!(
                "-e end: 2 key(s) accepted, at most 3 (--max-keys)\nkey {} current live=0 \
                 handshakes=0 last_used=never\nkey {} standby live=0 handshakes=0 \
                 last_used=never",
                Key::from_key_file(b"a").fingerprint(),
                Key::from_key_file(b"b").fingerprint()
            )
        );
    }
}
