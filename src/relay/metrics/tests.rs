use super::*;
use crate::proto::key::{Key, KeySet};

#[test]
fn histogram_buckets_by_upper_bound() {
    let mut h = Histogram::default();
    h.observe(Duration::from_micros(100)); // on the first bound: first bucket
    h.observe(Duration::from_micros(101));
    h.observe(Duration::from_millis(3));
    h.observe(Duration::from_secs(60)); // beyond the last bound: +Inf
    assert_eq!(h.count(), 4);
    let b = h.buckets();
    assert_eq!(b.len(), DURATION_BUCKETS_NANOS.len());
    assert_eq!(b[0], (0.0001, 1));
    assert_eq!(b[1], (0.00025, 1));
    assert_eq!(b[5], (0.005, 1));
    assert_eq!(b.iter().map(|&(_, n)| n).sum::<u64>(), 3);
    assert!((h.sum_seconds() - 60.003_201).abs() < 1e-9);
    let mut sum = h.clone();
    sum.merge(&h);
    assert_eq!(sum.count(), 8);
    assert_eq!(sum.buckets()[0], (0.0001, 2));
}

#[test]
fn reasons_are_seeded_and_new_labels_kept() {
    let mut c = PipeCounters::default();
    assert_eq!(c.closed.iter().count(), close_reasons().len());
    assert!(c.closed.iter().all(|(_, n)| n == 0));
    c.on_closed(None, false);
    c.on_closed(Some("bad_mac"), true);
    c.on_closed(Some("peer_reset"), true); // a reset during the handshake
    c.on_closed(Some("peer_reset"), false);
    c.on_closed(Some("some_future_reason"), false);
    assert_eq!(c.closed.get(CLEAN), 1);
    assert_eq!(c.closed.get("bad_mac"), 1);
    assert_eq!(c.closed.get("peer_reset"), 2);
    assert_eq!(c.closed.get("some_future_reason"), 1);
    assert_eq!(c.closed.total(), 5);
    assert_eq!(c.handshake_failures.get("bad_mac"), 1);
    assert_eq!(c.handshake_failures.get("peer_reset"), 1);
    assert_eq!(c.handshake_failures.total(), 2);
    // A clean close never counts as a handshake failure.
    c.on_closed(None, true);
    assert_eq!(c.handshake_failures.get(CLEAN), 0);
}

#[test]
fn conn_meter_times_phases_and_counts_bytes() {
    let t0 = Instant::now();
    let mut m = ConnMeter::new(t0, SystemTime::now());
    assert!(!m.in_handshake());
    m.connect_started(t0);
    assert_eq!(
        m.connect_finished(t0 + Duration::from_millis(2)),
        Some(Duration::from_millis(2))
    );
    assert_eq!(m.connect_finished(t0), None, "one connect, one observation");
    m.handshake_started(t0 + Duration::from_millis(2));
    m.handshake_started(t0 + Duration::from_millis(3)); // ignored
    assert!(m.in_handshake());
    let d = m.handshake_finished(t0 + Duration::from_millis(7), Some("fp"));
    assert_eq!(d, Some(Duration::from_millis(5)));
    assert!(!m.in_handshake());
    assert_eq!(m.fingerprint(), Some("fp"));
    m.on_received(0, 10);
    m.on_received(1, 30);
    m.on_sent(1, 50);
    m.on_received(7, 1_000); // not a side: ignored
    assert_eq!(m.received(), [10, 30]);
    assert_eq!(m.sent(), [0, 50]);
    assert_eq!(m.age(t0 + Duration::from_secs(1)), Duration::from_secs(1));

    // A handshake whose key was removed meanwhile is timed but not done: its close counts as
    // a failed handshake.
    let mut m = ConnMeter::new(t0, SystemTime::now());
    m.handshake_started(t0);
    let d = m.handshake_finished(t0 + Duration::from_millis(4), None);
    assert_eq!(d, Some(Duration::from_millis(4)));
    assert!(m.in_handshake());
    assert_eq!(m.fingerprint(), None);
}

fn counters(accepted: u64, plain_in: usize) -> PipeCounters {
    let mut c = PipeCounters::default();
    for _ in 0..accepted {
        c.on_accepted();
    }
    c.on_received(0, plain_in);
    c.on_sent(1, plain_in + 32);
    c.on_handshake_done(Duration::from_millis(1));
    c.on_target_connected(Duration::from_micros(200));
    c.on_closed(Some("target_refused"), false);
    c.on_limit_reached();
    c.on_accept_backoff();
    c
}

fn sample(name: &str, active: u64, c: Option<PipeCounters>, ring: Option<KeyRing>) -> PipeSample {
    PipeSample {
        name: Arc::from(name),
        mode: Mode::Decrypt,
        active,
        counters: c,
        keys: ring,
    }
}

#[test]
fn loops_are_summed_by_pipe_name_and_pools_taken_once_by_kind() {
    let a = LoopSnapshot {
        pipes: vec![
            sample("redis", 2, Some(counters(3, 100)), None),
            sample("other", 1, None, None),
        ],
        pools: vec![PoolSample {
            kind: "x25519",
            ready: 10,
            pooled: 5,
            inline: 1,
        }],
    };
    let b = LoopSnapshot {
        pipes: vec![sample("redis", 1, Some(counters(4, 50)), None)],
        pools: vec![PoolSample {
            kind: "x25519",
            ready: 7,
            pooled: 2,
            inline: 0,
        }],
    };
    let (pipes, pools) = sum_loops([&a, &b]);
    assert_eq!(pipes.len(), 2);
    let redis = &pipes[0].0;
    assert_eq!(&*redis.name, "redis");
    assert_eq!(redis.active, 3);
    let c = redis.counters.as_ref().expect("counters");
    assert_eq!(c.accepted, 7);
    assert_eq!(c.received_bytes, [150, 0]);
    assert_eq!(c.sent_bytes, [0, 214]);
    assert_eq!(c.closed.get("target_refused"), 2);
    assert_eq!(c.handshake_duration.count(), 2);
    assert_eq!(c.target_connect_duration.count(), 2);
    assert_eq!(c.limit_reached, 2);
    assert_eq!(c.accept_backoffs, 2);
    assert!(pipes[1].0.counters.is_none());
    // The loops share the process's one pool per kind: it is taken once, at its latest
    // sample (the most pairs handed out), not added up.
    assert_eq!(
        pools,
        vec![PoolSample {
            kind: "x25519",
            ready: 10,
            pooled: 5,
            inline: 1
        }]
    );
}

#[test]
fn board_collects_latest_snapshots_keys_and_reloads() {
    let board = Board::new(ProcessInfo::new("epoll"));
    let ring = KeyRing::new(
        KeySet::single(Key::from_key_file(b"k1")),
        2,
        RingMode::Decrypt,
    )
    .expect("ring");
    let mut p1 = board.publisher();
    let mut p2 = board.publisher();
    let t0 = Instant::now();
    assert!(p1.due(t0), "the first snapshot is due at once");
    p1.publish(
        t0,
        LoopSnapshot {
            pipes: vec![sample("redis", 1, Some(counters(1, 5)), Some(ring.clone()))],
            pools: vec![],
        },
    );
    assert!(!p1.due(t0 + PUBLISH_INTERVAL / 2));
    assert!(p1.due(t0 + PUBLISH_INTERVAL));
    // A loop that has not published yet is not counted.
    let snap = board.collect();
    assert_eq!(snap.loops, 1);
    p2.publish(
        t0,
        LoopSnapshot {
            pipes: vec![sample("redis", 2, Some(counters(2, 5)), Some(ring.clone()))],
            pools: vec![],
        },
    );
    // A later snapshot replaces the earlier one of the same loop.
    p1.publish(
        t0 + PUBLISH_INTERVAL,
        LoopSnapshot {
            pipes: vec![sample("redis", 0, Some(counters(5, 5)), Some(ring.clone()))],
            pools: vec![],
        },
    );
    board.reload_done(true);
    board.reload_done(false);
    board.reload_done(false);
    board.describe_pipes(vec![PipeDescription {
        name: Arc::from("redis"),
        listen: vec!["[127.0.0.1]:8025".into()],
        target: "/run/redis.sock".into(),
    }]);
    let snap = board.collect();
    assert_eq!(snap.loops, 2);
    assert_eq!((snap.reloads_ok, snap.reloads_failed), (1, 2));
    assert_eq!(snap.info.backend, "epoll");
    assert_eq!(snap.info.version, env!("CARGO_PKG_VERSION"));
    let p = &snap.pipes[0];
    assert_eq!(p.active, 2);
    assert_eq!(p.counters.as_ref().map(|c| c.accepted), Some(7));
    assert_eq!(p.max_keys, 2);
    assert_eq!(p.keys.len(), 1);
    assert_eq!(
        p.keys[0].fingerprint,
        Key::from_key_file(b"k1").fingerprint()
    );
    assert_eq!(
        p.description.as_ref().map(|d| d.target.as_str()),
        Some("/run/redis.sock")
    );
}

#[test]
fn key_states_read_as_keys_status_names_them() {
    let s = |accepted, primary| KeyStatus {
        fingerprint: "f".into(),
        accepted,
        primary,
        live: 0,
        handshakes: 0,
        last_used: None,
    };
    assert_eq!(key_state(&s(true, true), RingMode::Encrypt), "current");
    assert_eq!(key_state(&s(true, false), RingMode::Encrypt), "standby");
    assert_eq!(key_state(&s(true, true), RingMode::Decrypt), "accepted");
    assert_eq!(key_state(&s(false, false), RingMode::Decrypt), "removed");
    assert_eq!(key_state(&s(false, true), RingMode::Encrypt), "removed");
}

mod encoding {
    use super::*;
    use crate::relay::metrics::encode::{openmetrics_text, prometheus_text};

    fn snapshot() -> ProcessSnapshot {
        let board = Board::new(ProcessInfo::new("io_uring"));
        let ring = KeyRing::new(
            KeySet::single(Key::from_key_file(b"k1")),
            2,
            RingMode::Decrypt,
        )
        .expect("ring");
        let mut c = counters(3, 100);
        c.on_closed(None, false);
        c.on_closed(Some("bad_mac"), true);
        board.publisher().publish(
            Instant::now(),
            LoopSnapshot {
                pipes: vec![
                    sample("redis", 2, Some(c), Some(ring)),
                    // A name that needs escaping in a label value.
                    sample("we\"ird\\pipe", 0, None, None),
                ],
                pools: vec![PoolSample {
                    kind: "x25519",
                    ready: 3,
                    pooled: 9,
                    inline: 1,
                }],
            },
        );
        board.reload_done(true);
        board.collect()
    }

    #[test]
    fn prometheus_text_has_every_family_with_its_labels() {
        let text = prometheus_text(&snapshot());
        let fp = Key::from_key_file(b"k1").fingerprint();
        for line in [
            "# TYPE spiperelay_build_info gauge",
            &format!(
                "spiperelay_build_info{{version=\"{}\"}} 1",
                env!("CARGO_PKG_VERSION")
            ),
            "spiperelay_io_backend_info{backend=\"io_uring\"} 1",
            "# TYPE spiperelay_start_time_seconds gauge",
            "spiperelay_event_loops 1",
            "spiperelay_reloads_total{result=\"ok\"} 1",
            "spiperelay_reloads_total{result=\"failed\"} 0",
            "spiperelay_key_pair_pool_ready{kind=\"x25519\"} 3",
            "spiperelay_key_pairs_total{kind=\"x25519\",source=\"pool\"} 9",
            "spiperelay_key_pairs_total{kind=\"x25519\",source=\"inline\"} 1",
            "spiperelay_pipe_info{pipe=\"redis\",mode=\"decrypt\"} 1",
            "spiperelay_pipe_info{pipe=\"we\\\"ird\\\\pipe\",mode=\"decrypt\"} 1",
            "# TYPE spiperelay_connections_accepted_total counter",
            "spiperelay_connections_accepted_total{pipe=\"redis\"} 3",
            "spiperelay_connections_active{pipe=\"redis\"} 2",
            "spiperelay_connections_active{pipe=\"we\\\"ird\\\\pipe\"} 0",
            "spiperelay_connections_closed_total{pipe=\"redis\",reason=\"clean\"} 1",
            "spiperelay_connections_closed_total{pipe=\"redis\",reason=\"bad_mac\"} 1",
            "spiperelay_connections_closed_total{pipe=\"redis\",reason=\"target_refused\"} 1",
            "spiperelay_connections_closed_total{pipe=\"redis\",reason=\"key_removed\"} 0",
            "# TYPE spiperelay_handshake_duration_seconds histogram",
            "spiperelay_handshake_duration_seconds_bucket{pipe=\"redis\",le=\"0.001\"} 1",
            "spiperelay_handshake_duration_seconds_bucket{pipe=\"redis\",le=\"+Inf\"} 1",
            "spiperelay_handshake_duration_seconds_count{pipe=\"redis\"} 1",
            "spiperelay_handshake_failures_total{pipe=\"redis\",reason=\"bad_mac\"} 1",
            "spiperelay_handshake_failures_total{pipe=\"redis\",reason=\"handshake_timeout\"} 0",
            "spiperelay_target_connect_duration_seconds_bucket{pipe=\"redis\",le=\"0.00025\"} 1",
            "spiperelay_received_bytes_total{pipe=\"redis\",side=\"plaintext\"} 100",
            "spiperelay_received_bytes_total{pipe=\"redis\",side=\"encrypted\"} 0",
            "spiperelay_sent_bytes_total{pipe=\"redis\",side=\"encrypted\"} 132",
            "spiperelay_connection_limit_reached_total{pipe=\"redis\"} 1",
            "spiperelay_accept_backoffs_total{pipe=\"redis\"} 1",
            &format!(
                "spiperelay_key_info{{pipe=\"redis\",fingerprint=\"{fp}\",state=\"accepted\"}} 1"
            ),
            &format!("spiperelay_key_connections{{pipe=\"redis\",fingerprint=\"{fp}\"}} 0"),
            &format!("spiperelay_key_handshakes_total{{pipe=\"redis\",fingerprint=\"{fp}\"}} 0"),
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing line {line:?} in:\n{text}"
            );
        }
        // A pipe without counters has no counter samples.
        assert!(!text.contains("spiperelay_connections_accepted_total{pipe=\"we"));
        // Key material never appears: only the fingerprint names the key.
        let key = Key::from_key_file(b"k1");
        let hex: String = key.as_bytes().iter().map(|b| format!("{b:02x}")).collect();
        assert!(!text.contains(&hex));
    }

    #[test]
    fn openmetrics_text_ends_with_eof() {
        let text = openmetrics_text(&snapshot());
        assert!(text.ends_with("# EOF\n"), "{text}");
        assert!(text.contains("spiperelay_connections_accepted_total{pipe=\"redis\"} 3"));
    }
}

#[test]
fn label_lists_are_consistent() {
    let reasons = close_reasons();
    let mut all = reasons.clone();
    all.sort_unstable();
    all.dedup();
    assert_eq!(all.len(), reasons.len(), "a close reason is listed twice");
    for r in HANDSHAKE_FAILURE_REASONS {
        assert!(reasons.contains(&r), "{r} is not a close reason");
    }
    assert!(!HANDSHAKE_FAILURE_REASONS.contains(&CLEAN));
    // Prometheus label values we emit are plain lower-case words.
    for r in reasons.iter().chain(SIDES.iter()) {
        assert!(
            r.bytes()
                .all(|b| b.is_ascii_lowercase() || b == b'_' || b.is_ascii_digit())
        );
    }
    assert!(DURATION_BUCKETS_NANOS.windows(2).all(|w| w[0] < w[1]));
}
