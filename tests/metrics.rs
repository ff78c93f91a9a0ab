//! The metrics exposition and its HTTP server, through the library's public API: the encoded
//! text passes `promtool check metrics` (Debian's `prometheus` package; SKIP without it, a
//! failure under `CI=true`), and real loopback TCP and Unix-socket requests get the right
//! status codes. Every socket operation is bounded by a timeout.

mod bin_common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bin_common::{TempDir, promtool_check};
use spiperelay::cli::Mode;
use spiperelay::proto::key::{Key, KeySet};
use spiperelay::relay::keys::{KeyRing, RingMode};
use spiperelay::relay::metrics::encode::prometheus_text;
use spiperelay::relay::metrics::http::{
    MAX_REQUEST_HEAD, MetricsAddr, MetricsListener, REQUEST_TIMEOUT,
};
use spiperelay::relay::metrics::{
    Board, LoopSnapshot, PipeCounters, PipeSample, PoolSample, ProcessInfo,
};

const IO: Duration = Duration::from_secs(20);

/// A board with two loops serving two pipes, one `-d` with two keys (one removed while in
/// use), with every counter moved.
fn busy_board() -> Arc<Board> {
    let board = Board::new(ProcessInfo::new("io_uring"));
    let old = Key::from_key_file(b"old key");
    let new = Key::from_key_file(b"new key");
    let ring = KeyRing::new(
        KeySet::new(vec![old.clone(), new.clone()]).expect("keys"),
        4,
        RingMode::Decrypt,
    )
    .expect("ring");
    let claim = ring.begin_use(&old).expect("claim");
    ring.replace(&KeySet::single(new)).expect("reload");
    let mut c = PipeCounters::default();
    c.on_accepted();
    c.on_accepted();
    c.on_target_connected(Duration::from_micros(300));
    c.on_handshake_done(Duration::from_millis(2));
    c.on_received(0, 1000);
    c.on_sent(1, 1064);
    c.on_received(1, 64);
    c.on_sent(0, 32);
    c.on_closed(None, false);
    c.on_closed(Some("bad_mac"), true);
    c.on_closed(Some("target_refused"), false);
    c.on_closed(Some("key_removed"), true);
    c.on_limit_reached();
    c.on_accept_backoff();
    for _ in 0..2 {
        board.publisher().publish(
            Instant::now(),
            LoopSnapshot {
                pipes: vec![
                    PipeSample {
                        name: Arc::from("redis"),
                        mode: Mode::Decrypt,
                        active: 1,
                        counters: Some(c.clone()),
                        keys: Some(ring.clone()),
                    },
                    PipeSample {
                        name: Arc::from("client-side"),
                        mode: Mode::Encrypt,
                        active: 0,
                        counters: Some(PipeCounters::default()),
                        keys: None,
                    },
                ],
                pools: vec![PoolSample {
                    kind: "group14",
                    ready: 4,
                    pooled: 10,
                    inline: 2,
                }],
            },
        );
    }
    board.reload_done(true);
    board.reload_done(false);
    // The old key keeps its live connection (never handed back): it stays listed as removed.
    drop(claim);
    board
}

#[test]
fn exposition_passes_promtool_check_metrics() {
    let text = prometheus_text(&busy_board().collect());
    let Some((ok, msg)) = promtool_check(&text) else {
        return;
    };
    assert!(
        ok,
        "promtool check metrics failed:\n{msg}\n--- exposition:\n{text}"
    );
    assert!(msg.trim().is_empty(), "promtool found problems:\n{msg}");
}

#[test]
fn an_idle_process_passes_promtool_too() {
    // No loop has published yet: only the process-wide families, some without samples.
    let board = Board::new(ProcessInfo::new("epoll"));
    let text = prometheus_text(&board.collect());
    let Some((ok, msg)) = promtool_check(&text) else {
        return;
    };
    assert!(ok && msg.trim().is_empty(), "{msg}\n---\n{text}");
}

/// Sends `request` and returns the whole answer (the server closes after one).
fn exchange<S: Read + Write>(mut s: S, request: &[u8]) -> String {
    s.write_all(request).expect("send request");
    let mut answer = Vec::new();
    s.take(16 << 20)
        .read_to_end(&mut answer)
        .expect("read answer");
    String::from_utf8(answer).expect("utf-8 answer")
}

fn tcp(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect_timeout(&addr, IO).expect("connect");
    s.set_read_timeout(Some(IO)).expect("timeout");
    s.set_write_timeout(Some(IO)).expect("timeout");
    s
}

fn status_line(answer: &str) -> &str {
    answer.lines().next().unwrap_or("")
}

fn body(answer: &str) -> &str {
    answer.split_once("\r\n\r\n").map_or("", |(_, b)| b)
}

#[test]
fn http_over_loopback_tcp() {
    let listener = MetricsListener::bind(&MetricsAddr::Tcp("127.0.0.1:0".parse().expect("addr")))
        .expect("bind");
    let addr = listener.local_addr().expect("local addr");
    let server = listener.start(busy_board()).expect("start");

    let a = exchange(tcp(addr), b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(status_line(&a), "HTTP/1.1 200 OK", "{a}");
    assert!(a.contains("\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n"));
    let text = body(&a);
    let len: usize = a
        .lines()
        .find_map(|l| l.strip_prefix("Content-Length: "))
        .and_then(|v| v.trim().parse().ok())
        .expect("content length");
    assert_eq!(len, text.len());
    assert!(text.contains("spiperelay_connections_accepted_total{pipe=\"redis\"} 4\n"));
    assert!(text.contains("spiperelay_connections_active{pipe=\"redis\"} 2\n"));
    assert!(text.contains(
        "spiperelay_handshake_failures_total{pipe=\"redis\",reason=\"key_removed\"} 2\n"
    ));
    // Both loops report the process's one group-14 pool: taken once, not added up.
    assert!(text.contains("spiperelay_key_pair_pool_ready{kind=\"group14\"} 4\n"));
    assert!(text.contains("state=\"removed\"} 1\n"), "{text}");
    if let Some((ok, msg)) = promtool_check(text) {
        assert!(ok && msg.trim().is_empty(), "{msg}");
    }

    let a = exchange(
        tcp(addr),
        b"GET /metrics HTTP/1.1\r\nAccept: application/openmetrics-text; version=1.0.0\r\n\r\n",
    );
    assert!(
        a.contains("Content-Type: application/openmetrics-text"),
        "{a}"
    );
    assert!(a.ends_with("# EOF\n"));

    let a = exchange(tcp(addr), b"HEAD /metrics HTTP/1.1\r\n\r\n");
    assert_eq!(status_line(&a), "HTTP/1.1 200 OK");
    assert_eq!(body(&a), "");

    let a = exchange(tcp(addr), b"GET / HTTP/1.1\r\n\r\n");
    assert_eq!(status_line(&a), "HTTP/1.1 404 Not Found");
    let a = exchange(
        tcp(addr),
        b"POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
    );
    assert_eq!(status_line(&a), "HTTP/1.1 405 Method Not Allowed");
    assert!(a.contains("\r\nAllow: GET, HEAD\r\n"));
    let a = exchange(tcp(addr), b"hello\r\n\r\n");
    assert_eq!(status_line(&a), "HTTP/1.1 400 Bad Request");
    let mut big = b"GET /metrics HTTP/1.1\r\nX: ".to_vec();
    big.resize(MAX_REQUEST_HEAD + 2048, b'a');
    let a = exchange(tcp(addr), &big);
    assert_eq!(
        status_line(&a),
        "HTTP/1.1 431 Request Header Fields Too Large"
    );

    // A client that never finishes its request is dropped after REQUEST_TIMEOUT; the next
    // one is then served.
    let mut stalled = tcp(addr);
    stalled
        .write_all(b"GET /metrics HTTP/1.1\r\n")
        .expect("send");
    let t = Instant::now();
    let mut rest = Vec::new();
    let _ = stalled.read_to_end(&mut rest);
    assert!(rest.is_empty(), "a stalled request got an answer");
    assert!(
        t.elapsed() < REQUEST_TIMEOUT + IO,
        "the stalled client was kept {:?}",
        t.elapsed()
    );
    let a = exchange(tcp(addr), b"GET /metrics HTTP/1.0\r\n\r\n");
    assert_eq!(status_line(&a), "HTTP/1.1 200 OK");

    drop(server);
    // The listener is closed with the server.
    assert!(TcpStream::connect_timeout(&addr, IO).is_err());
}

#[test]
fn http_over_a_unix_socket() {
    let dir = TempDir::new("metrics");
    let path = dir.sock_path("m");
    let server = MetricsListener::bind(&MetricsAddr::Unix(path.clone()))
        .expect("bind")
        .start(busy_board())
        .expect("start");
    let s = UnixStream::connect(&path).expect("connect");
    s.set_read_timeout(Some(IO)).expect("timeout");
    let a = exchange(s, b"GET /metrics HTTP/1.1\r\n\r\n");
    assert_eq!(status_line(&a), "HTTP/1.1 200 OK");
    assert!(body(&a).contains("spiperelay_build_info{version="));
    // A second server on the same live path is refused.
    assert!(MetricsListener::bind(&MetricsAddr::Unix(path.clone())).is_err());
    drop(server);
    assert!(!path.exists(), "the socket file is removed with the server");
}

/// `spiperelay status --json` against a running `-d` daemon, polled until `check` holds
/// (bounded: 10 s); returns the last report.
fn status_until(
    control: &std::path::Path,
    what: &str,
    check: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut last = String::new();
    for _ in 0..200 {
        let out = bin_common::run_bounded(
            &bin_common::relay_bin(),
            &bin_common::args([
                "status".into(),
                "--json".into(),
                std::ffi::OsString::from("--control"),
                control.as_os_str().to_owned(),
            ]),
            b"",
            Duration::from_secs(10),
        );
        assert_eq!(out.code(), Some(0), "status failed: {out:?}");
        last = String::from_utf8_lossy(&out.stdout).into_owned();
        let v: serde_json::Value = serde_json::from_str(&last).expect("status --json is JSON");
        if check(&v) {
            return v;
        }
        if Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("status never showed {what}: {last}");
}

#[test]
fn status_of_a_running_daemon() {
    use bin_common::{Echo, Fam, Reply, relay_bin, start_end};
    let dir = TempDir::new("status");
    let key = dir.key("k");
    let control = dir.sock_path("ctl");
    let echo = Echo::start(Fam::Unix, &dir, Reply::Stream);
    let ctl = control.to_str().expect("utf-8 path").to_owned();
    let dec = start_end(
        &dir,
        "dec",
        &relay_bin(),
        "-d",
        Fam::Unix,
        &echo.addr,
        &key,
        &["--control", &ctl],
    );
    let enc = start_end(
        &dir,
        "enc",
        &relay_bin(),
        "-e",
        Fam::Unix,
        dec.addr(),
        &key,
        &[],
    );
    let fp = Key::from_key_file(&std::fs::read(&key).expect("key")).fingerprint();

    let v = status_until(&control, "the idle pipe", |v| {
        v["pipes"][0]["connections"]["active"] == 0
    });
    assert_eq!(v["version"], env!("CARGO_PKG_VERSION"));
    assert!(v["backend"] == "io_uring" || v["backend"] == "epoll", "{v}");
    let p = &v["pipes"][0];
    assert_eq!(p["name"], "default");
    assert_eq!(p["mode"], "decrypt");
    assert_eq!(p["listen"][0], dec.addr().spiped().as_str());
    assert_eq!(p["target"], echo.addr.spiped().as_str());
    assert_eq!(p["keys"][0]["fingerprint"], fp.as_str());
    assert_eq!(p["keys"][0]["state"], "accepted");
    // The start-up probes (connections to the `-e` end) may have made handshakes already.
    let before = p["keys"][0]["handshakes"].as_u64().expect("handshakes");

    // One connection through both ends, held open: it shows as active, on its key.
    let mut conn = enc.addr().connect().expect("connect");
    conn.set_timeouts(IO).expect("timeouts");
    conn.write_all(b"ping").expect("send");
    let mut got = [0u8; 4];
    conn.read_exact(&mut got).expect("echo");
    assert_eq!(&got, b"ping");
    status_until(&control, "one live connection", |v| {
        v["pipes"][0]["connections"]["active"] == 1 && v["pipes"][0]["keys"][0]["live"] == 1
    });
    drop(conn);
    let v = status_until(&control, "the connection gone", |v| {
        v["pipes"][0]["connections"]["active"] == 0 && v["pipes"][0]["keys"][0]["live"] == 0
    });
    let after = v["pipes"][0]["keys"][0]["handshakes"]
        .as_u64()
        .expect("handshakes");
    assert!(after > before, "handshakes {before} -> {after}");

    // A SIGHUP reload is counted.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(dec.pid() as i32),
        nix::sys::signal::Signal::SIGHUP,
    )
    .expect("SIGHUP");
    status_until(&control, "one reload", |v| v["reloads"]["ok"] == 1);

    // The text form says the same.
    let out = bin_common::run_bounded(
        &relay_bin(),
        &bin_common::args(["status", "--control", &ctl]),
        b"",
        Duration::from_secs(10),
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!(
            "\npipe default (-d): listening on {}",
            dec.addr().spiped()
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!("  key {fp} accepted live=0 handshakes={after}")),
        "{text}"
    );
}
