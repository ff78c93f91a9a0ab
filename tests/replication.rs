//! Redis replication between two hosts through spiperelay, for real: the server-to-server case
//! of `examples/replication-a.toml` and `examples/replication-b.toml`.
//!
//! The test builds its own two "hosts": network namespaces A and B joined by a veth pair,
//! addressed only from 169.254.0.0/16 on that pair (nothing outside the namespaces is ever
//! addressed). Each host runs a real `redis-server` (master in A, replica in B) on
//! 127.0.0.1:6379 inside its namespace, and ONE spiperelay with the example's configuration
//! (its addresses and paths substituted, nothing else changed): a `receive` pipe (decrypt,
//! from the veth address to the local Redis) and a `send` pipe (encrypt, from 127.0.0.1:6380 to
//! the other host's `receive`).
//!
//! ```text
//!  ns A                                          ns B
//!  master :6379 ◀── receive ◀═══ veth ═══ send :6380 ◀── replica (REPLICAOF 127.0.0.1 6380)
//!         :6380 send ═══════ veth ═══════▶ receive ──▶ :6379 replica
//! ```
//!
//! The master gets a data set of tens of MB (random values, so the RDB does not compress);
//! the replica runs `REPLICAOF 127.0.0.1 6380` and makes its full sync through the pipes.
//! Then a stream of writes runs while the link is broken twice: the veth set down for a few
//! seconds, and B's spiperelay stopped and started again (killed on one run; on the other
//! stopped by SIGTERM, its `shutdown_timeout` cutting the link), the replica reconnecting and
//! continuing with a partial resync. In between, both relays reload their files (SIGHUP,
//! `spiperelay reload`) without touching the replication link. Once the writes stop, the
//! replica catches up (equal replication offsets) and both hold identical data (`DEBUG
//! DIGEST`, and `DBSIZE`). Last, A's `send` pipe reaches B's Redis (the other direction of
//! the pair serves too). The whole scenario runs once with the relays on io_uring (where the
//! kernel has it) and once on epoll.
//!
//! The test talks to both Redis servers over their Unix sockets (a path is reachable from any
//! network namespace) with a small RESP client. Needs root, `ip` (iproute2), redis-server and
//! redis-tools: otherwise it prints SKIP with the reason, except under `CI=true`, where that
//! is a failure. Namespaces and processes are removed on every path (drop guards); every
//! wait is bounded.

mod bin_common;
mod netns_common;

use std::ffi::OsString;
use std::fs;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use bin_common::{
    Proc, TempDir, anon_inodes, args, have_tool, pid_listens_on, random_bytes, relay_bin,
    run_bounded, wait_until,
};
use netns_common::{Net, cannot_make_namespaces, skip, spawn_in};

const REDIS_SERVER: &str = "/usr/bin/redis-server";
const REDIS_CLI: &str = "/usr/bin/redis-cli";
/// The veth pair's addresses (a /30 of its own; tests/dead_peer.rs uses 169.254.77.0/30).
const ADDR_A: &str = "169.254.78.1";
const ADDR_B: &str = "169.254.78.2";
/// The host addresses the examples use (documentation range), replaced by the above.
const EXAMPLE_ADDR_A: &str = "192.0.2.10";
const EXAMPLE_ADDR_B: &str = "192.0.2.20";
/// Where the examples keep key files and the control socket, replaced by the temp dir.
const EXAMPLE_KEYS: &str = "/etc/spiperelay/";
const EXAMPLE_RUN: &str = "/run/spiperelay/";
/// Redis's port inside each namespace (the `receive` pipes' target in the examples).
const REDIS_PORT: u16 = 6379;
/// The data set: this many keys of [`VALUE_LEN`] random bytes (40 MiB).
const KEYS: usize = 10_240;
const VALUE_LEN: usize = 4096;
/// Keys per pipelined batch while loading.
const BATCH: usize = 256;
/// How long the veth stays down.
const LINK_DOWN: Duration = Duration::from_secs(3);
/// Bound on the full sync, on catching up, and on each reconnect.
const SYNC_WAIT: Duration = Duration::from_secs(60);
const CATCH_UP_WAIT: Duration = Duration::from_secs(30);
const LINK_WAIT: Duration = Duration::from_secs(20);
/// Bound on one Redis reply.
const REDIS_TIMEOUT: Duration = Duration::from_secs(20);

// ---------------------------------------------------------------------------------------------
// A small RESP client (enough for the commands below)

/// A Redis reply.
#[derive(Debug, Clone, PartialEq)]
enum Reply {
    Status(String),
    Error(String),
    Int(i64),
    Bulk(Option<Vec<u8>>),
    Array(Option<Vec<Reply>>),
}

impl Reply {
    /// The reply as text (status, bulk string or integer), or a panic naming `what`.
    fn text(&self, what: &str) -> String {
        match self {
            Self::Status(s) => s.clone(),
            Self::Bulk(Some(b)) => String::from_utf8_lossy(b).into_owned(),
            Self::Int(i) => i.to_string(),
            other => panic!("{what}: unexpected reply {other:?}"),
        }
    }
}

/// One connection to a Redis server's Unix socket, with read and write timeouts.
struct Redis {
    w: io::BufWriter<UnixStream>,
    r: BufReader<UnixStream>,
    /// A label for messages.
    name: &'static str,
}

impl Redis {
    fn connect(sock: &Path, name: &'static str) -> io::Result<Redis> {
        let s = UnixStream::connect(sock)?;
        s.set_read_timeout(Some(REDIS_TIMEOUT))?;
        s.set_write_timeout(Some(REDIS_TIMEOUT))?;
        Ok(Redis {
            w: io::BufWriter::with_capacity(1 << 16, s.try_clone()?),
            r: BufReader::with_capacity(1 << 16, s),
            name,
        })
    }

    /// Queues one command (sent on the next [`Redis::flush`] or when the buffer fills).
    fn send(&mut self, argv: &[&[u8]]) -> io::Result<()> {
        write!(self.w, "*{}\r\n", argv.len())?;
        for a in argv {
            write!(self.w, "${}\r\n", a.len())?;
            self.w.write_all(a)?;
            self.w.write_all(b"\r\n")?;
        }
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.w.flush()
    }

    fn read_line(&mut self) -> io::Result<String> {
        let mut line = Vec::new();
        (&mut self.r).take(1 << 20).read_until(b'\n', &mut line)?;
        if !line.ends_with(b"\r\n") {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "reply line cut short",
            ));
        }
        line.truncate(line.len() - 2);
        String::from_utf8(line).map_err(|_| io::Error::other("reply line is not UTF-8"))
    }

    /// Reads one reply (arrays nested at most 4 deep).
    fn read_reply(&mut self) -> io::Result<Reply> {
        self.read_reply_at(0)
    }

    fn read_reply_at(&mut self, depth: usize) -> io::Result<Reply> {
        let bad = |l: &str| io::Error::other(format!("bad reply line {l:?}"));
        let line = self.read_line()?;
        let (kind, rest) = line.split_at_checked(1).ok_or_else(|| bad(&line))?;
        let num = || rest.parse::<i64>().map_err(|_| bad(&line));
        Ok(match kind {
            "+" => Reply::Status(rest.to_owned()),
            "-" => Reply::Error(rest.to_owned()),
            ":" => Reply::Int(num()?),
            "$" => {
                let n = num()?;
                if n < 0 {
                    Reply::Bulk(None)
                } else {
                    let mut b = vec![0u8; usize::try_from(n).map_err(|_| bad(&line))? + 2];
                    self.r.read_exact(&mut b)?;
                    b.truncate(b.len() - 2);
                    Reply::Bulk(Some(b))
                }
            }
            "*" if depth < 4 => {
                let n = num()?;
                if n < 0 {
                    Reply::Array(None)
                } else {
                    let mut items = Vec::new();
                    for _ in 0..n.min(1 << 20) {
                        items.push(self.read_reply_at(depth + 1)?);
                    }
                    Reply::Array(Some(items))
                }
            }
            _ => return Err(bad(&line)),
        })
    }

    /// Sends one command and reads its reply; an error reply or I/O error panics.
    fn cmd(&mut self, argv: &[&str]) -> Reply {
        let bytes: Vec<&[u8]> = argv.iter().map(|a| a.as_bytes()).collect();
        let reply = self
            .send(&bytes)
            .and_then(|()| self.flush())
            .and_then(|()| self.read_reply())
            .unwrap_or_else(|e| panic!("{}: {argv:?}: {e}", self.name));
        if let Reply::Error(e) = &reply {
            panic!("{}: {argv:?}: {e}", self.name);
        }
        reply
    }

    /// `INFO section` as `field -> value` pairs.
    fn info(&mut self, section: &str) -> Vec<(String, String)> {
        self.cmd(&["INFO", section])
            .text("INFO")
            .lines()
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.to_owned(), v.trim().to_owned()))
            .collect()
    }

    /// One field of `INFO section` ("" if absent).
    fn info_field(&mut self, section: &str, field: &str) -> String {
        self.info(section)
            .into_iter()
            .find(|(k, _)| k == field)
            .map(|(_, v)| v)
            .unwrap_or_default()
    }
}

// ---------------------------------------------------------------------------------------------
// The hosts

/// The generated configuration of one host: the example with its addresses and paths
/// substituted.
fn host_config(example: &str, dir: &TempDir, host: char) -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let path = root.join("examples").join(example);
    let text = fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    // Each substitution must find its text: a changed example fails here, not obscurely later.
    let mut out = text;
    for (from, to) in [
        (EXAMPLE_ADDR_A, ADDR_A.to_owned()),
        (EXAMPLE_ADDR_B, ADDR_B.to_owned()),
        (EXAMPLE_KEYS, format!("{}/", dir.path().display())),
        (EXAMPLE_RUN, format!("{}/{host}-", dir.path().display())),
    ] {
        assert!(
            out.contains(from),
            "examples/{example} no longer holds {from:?}; update tests/replication.rs"
        );
        out = out.replace(from, &to);
    }
    out
}

/// The `shutdown_timeout = N` of `config`'s `[process]` table.
fn shutdown_timeout(config: &str) -> Duration {
    config
        .lines()
        .find_map(|l| l.trim().strip_prefix("shutdown_timeout = "))
        .and_then(|v| v.trim().parse().ok())
        .map(Duration::from_secs)
        .unwrap_or_else(|| panic!("no shutdown_timeout in {config}"))
}

/// The `source = "..."` ports of `config`'s pipes, in order.
fn source_ports(config: &str) -> Vec<u16> {
    config
        .lines()
        .filter_map(|l| l.trim().strip_prefix("source = \""))
        .filter_map(|rest| rest.split('"').next()?.rsplit(':').next()?.parse().ok())
        .collect()
}

/// One host's spiperelay: one process carrying every pipe of the host's configuration.
struct Relay {
    proc: Proc,
}

impl Relay {
    /// Starts the host's relay in `ns` from `config` (written under `dir`) on io backend
    /// `backend` (`SPIPERELAY_BACKEND`, checked in `/proc/<pid>/fd`), and waits until every
    /// pipe listens.
    fn start(
        dir: &TempDir,
        ns: &str,
        backend: &str,
        (host, generation): (char, u32),
        config: &str,
    ) -> Relay {
        let name = format!("relay-{host}-{generation}");
        let file = dir.join(&format!("{host}.toml"));
        fs::write(&file, config).expect("write config");
        let mut p = spawn_in(
            dir,
            ns,
            &name,
            &[("SPIPERELAY_BACKEND", backend)],
            &relay_bin(),
            &args([OsString::from("--config"), file.into()]),
        );
        let ports = source_ports(config);
        assert_eq!(ports.len(), 2, "two TCP sources in {config}");
        let up = wait_until(Duration::from_secs(10), || {
            p.try_exit().is_some() || ports.iter().all(|&port| pid_listens_on(p.pid(), port))
        });
        assert!(
            up && p.try_exit().is_none(),
            "{name} did not listen on {ports:?}: {}",
            p.stderr()
        );
        let kind = if backend == "epoll" {
            "[eventpoll]"
        } else {
            "[io_uring]"
        };
        // The listeners are bound before the event loops start: wait for the loop's instance.
        let mut kinds = Vec::new();
        let on_it = wait_until(Duration::from_secs(10), || {
            kinds = anon_inodes(p.pid());
            kinds.iter().any(|k| k == kind)
        });
        assert!(on_it, "{name} runs on {kinds:?}, not {backend}");
        Relay { proc: p }
    }

    fn logs(&self) -> String {
        format!("{}: {}", self.proc.name, self.proc.stderr())
    }
}

/// Starts redis-server in `ns` on 127.0.0.1:[`REDIS_PORT`] and on a Unix socket in `dir`
/// (no persistence; its files in a directory of its own); killed on drop.
fn start_redis(dir: &TempDir, ns: &str, host: char) -> (Proc, PathBuf) {
    let data = dir.join(&format!("redis-{host}"));
    fs::create_dir(&data).expect("redis dir");
    let sock = dir.join(&format!("redis-{host}.sock"));
    let a = args([
        "--bind",
        "127.0.0.1",
        "--port",
        &REDIS_PORT.to_string(),
        "--unixsocket",
        &sock.display().to_string(),
        "--unixsocketperm",
        "700",
        "--save",
        "",
        "--appendonly",
        "no",
        "--daemonize",
        "no",
        "--dir",
        &data.display().to_string(),
        // DEBUG DIGEST.
        "--enable-debug-command",
        "yes",
        // The full sync starts at once, and the writes made while the link is broken fit in
        // the backlog (a partial resync afterwards).
        "--repl-diskless-sync-delay",
        "0",
        "--repl-backlog-size",
        "64mb",
    ]);
    let mut p = spawn_in(
        dir,
        ns,
        &format!("redis-{host}"),
        &[],
        Path::new(REDIS_SERVER),
        &a,
    );
    let up = wait_until(Duration::from_secs(10), || {
        p.try_exit().is_some() || Redis::connect(&sock, "probe").is_ok()
    });
    assert!(
        up && p.try_exit().is_none(),
        "redis-server in {ns} did not start: {}",
        p.stderr()
    );
    (p, sock)
}

/// Loads [`KEYS`] keys of [`VALUE_LEN`] random bytes into `r`, pipelined in batches.
fn load(r: &mut Redis) {
    let mut seed = 0x5eed_u64;
    for batch in 0..KEYS / BATCH {
        for i in 0..BATCH {
            let key = format!("data:{}", batch * BATCH + i);
            seed += 1;
            let value = random_bytes(seed, VALUE_LEN);
            r.send(&[b"SET", key.as_bytes(), &value]).expect("SET");
        }
        r.flush().expect("flush");
        for _ in 0..BATCH {
            match r.read_reply() {
                Ok(Reply::Status(s)) if s == "OK" => {}
                other => panic!("SET: {other:?}"),
            }
        }
    }
}

/// A client writing to the master until stopped (bounded): batches of SET, INCR and RPUSH.
struct Writer {
    stop: Arc<AtomicBool>,
    writes: Arc<AtomicU64>,
    thread: Option<thread::JoinHandle<Result<(), String>>>,
}

impl Writer {
    fn start(sock: &Path) -> Writer {
        let mut r = Redis::connect(sock, "writer").expect("writer connect");
        let stop = Arc::new(AtomicBool::new(false));
        let writes = Arc::new(AtomicU64::new(0));
        let (s, n) = (stop.clone(), writes.clone());
        let thread = thread::spawn(move || -> Result<(), String> {
            let deadline = Instant::now() + Duration::from_secs(180);
            let mut i = 0u64;
            while !s.load(Ordering::Relaxed) && Instant::now() < deadline {
                for _ in 0..32 {
                    i += 1;
                    let key = format!("stream:{}", i % 5000);
                    let value = random_bytes(i, 512);
                    let idx = i.to_string();
                    for argv in [
                        &[b"SET".as_slice(), key.as_bytes(), &value][..],
                        &[b"INCR", b"counter"],
                        &[b"RPUSH", b"log", idx.as_bytes()],
                    ] {
                        r.send(argv).map_err(|e| format!("send: {e}"))?;
                    }
                }
                r.flush().map_err(|e| format!("flush: {e}"))?;
                for _ in 0..32 * 3 {
                    match r.read_reply() {
                        Ok(Reply::Error(e)) => return Err(e),
                        Ok(_) => {}
                        Err(e) => return Err(format!("reply: {e}")),
                    }
                }
                n.fetch_add(32 * 3, Ordering::Relaxed);
                thread::sleep(Duration::from_millis(10));
            }
            Ok(())
        });
        Writer {
            stop,
            writes,
            thread: Some(thread),
        }
    }

    /// Stops the writer; returns how many writes it made, or its error.
    fn finish(mut self) -> Result<u64, String> {
        self.stop.store(true, Ordering::Relaxed);
        let result = self.thread.take().map(|t| t.join());
        match result {
            Some(Ok(Ok(()))) => Ok(self.writes.load(Ordering::Relaxed)),
            Some(Ok(Err(e))) => Err(e),
            _ => Err("writer panicked".into()),
        }
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Waits (bounded) until the replica's link is up and no sync is in progress.
fn link_up(replica: &mut Redis, wait: Duration) -> bool {
    wait_until(wait, || {
        let info = replica.info("replication");
        let get = |k: &str| info.iter().find(|(f, _)| f == k).map(|(_, v)| v.as_str());
        get("master_link_status") == Some("up") && get("master_sync_in_progress") == Some("0")
    })
}

fn int_field(r: &mut Redis, section: &str, field: &str) -> u64 {
    let v = r.info_field(section, field);
    v.parse()
        .unwrap_or_else(|_| panic!("{}: INFO {section} {field} = {v:?}", r.name))
}

#[test]
fn redis_replicates_between_two_hosts_through_their_relays() {
    if let Some(why) = cannot_make_namespaces() {
        skip("replication test", &why);
        return;
    }
    if !have_tool(REDIS_SERVER, "redis-server") || !have_tool(REDIS_CLI, "redis-tools") {
        return;
    }
    let mut ran = 0;
    for backend in ["io_uring", "epoll"] {
        if backend == "io_uring"
            && let Err(e) = spiperelay::io::uring::probe()
        {
            eprintln!("SKIP io_uring: {e}");
            continue;
        }
        let net = match Net::create(
            "sprrp",
            backend.chars().next().unwrap_or('x'),
            ADDR_A,
            ADDR_B,
        ) {
            Ok(n) => n,
            Err(e) => {
                skip(
                    "replication test",
                    &format!("cannot create the namespaces: {e}"),
                );
                return;
            }
        };
        replicate(&net, backend);
        ran += 1;
    }
    assert!(ran > 0, "no io backend ran");
}

/// The scenario of the module documentation on `net`, with every relay on `backend`.
fn replicate(net: &Net, backend: &str) {
    eprintln!("== {backend}");
    let started = Instant::now();
    let dir = TempDir::new("repl");
    let key = dir.join("replication.key");
    let out = run_bounded(
        &relay_bin(),
        &args([OsString::from("keygen"), key.clone().into()]),
        b"",
        Duration::from_secs(10),
    );
    assert_eq!(out.code(), Some(0), "keygen: {out:?}");

    let config_a = host_config("replication-a.toml", &dir, 'a');
    let config_b = host_config("replication-b.toml", &dir, 'b');
    for (host, text) in [('a', &config_a), ('b', &config_b)] {
        let file = dir.join(&format!("{host}.toml"));
        fs::write(&file, text).expect("write config");
        let out = run_bounded(
            &relay_bin(),
            &args([OsString::from("check-config"), file.into()]),
            b"",
            Duration::from_secs(10),
        );
        assert_eq!(out.code(), Some(0), "check-config {host}.toml: {out:?}");
    }

    let (_redis_a, sock_a) = start_redis(&dir, &net.a, 'a');
    let (_redis_b, sock_b) = start_redis(&dir, &net.b, 'b');
    let relay_a = Relay::start(&dir, &net.a, backend, ('a', 0), &config_a);
    let mut relay_b = Relay::start(&dir, &net.b, backend, ('b', 0), &config_b);
    let mut master = Redis::connect(&sock_a, "master").expect("connect master");
    let mut replica = Redis::connect(&sock_b, "replica").expect("connect replica");

    let t = Instant::now();
    load(&mut master);
    let used = master.info_field("memory", "used_memory_human");
    eprintln!(
        "loaded {KEYS} keys of {VALUE_LEN} bytes ({used}) in {:?}",
        t.elapsed()
    );

    // Full sync through the pipes: the replica's local send pipe.
    let t = Instant::now();
    assert_eq!(
        replica
            .cmd(&["REPLICAOF", "127.0.0.1", "6380"])
            .text("REPLICAOF"),
        "OK"
    );
    assert!(
        link_up(&mut replica, SYNC_WAIT),
        "no full sync within {SYNC_WAIT:?}: replica {:?}; A: {}; B: {}",
        replica.info("replication"),
        relay_a.logs(),
        relay_b.logs()
    );
    let synced_keys = replica.cmd(&["DBSIZE"]).text("DBSIZE");
    eprintln!("full sync done in {:?} ({synced_keys} keys)", t.elapsed());
    assert_eq!(synced_keys, KEYS.to_string(), "keys after the full sync");

    let writer = Writer::start(&sock_a);
    let offset = |r: &mut Redis, f: &str| int_field(r, "replication", f);
    let before = offset(&mut replica, "slave_repl_offset");
    assert!(
        wait_until(Duration::from_secs(10), || offset(
            &mut replica,
            "slave_repl_offset"
        ) > before),
        "the stream of writes does not reach the replica"
    );

    // Break 1: the path between the hosts is cut for a while, then restored.
    // While it is cut the replica gets nothing (the replication stream crosses the veth and
    // nothing else), though the master keeps taking writes.
    net.set_link(false).expect("veth down");
    // What was already past the veth settles first.
    thread::sleep(Duration::from_secs(1));
    let (stalled_at, master_at) = (
        offset(&mut replica, "slave_repl_offset"),
        offset(&mut master, "master_repl_offset"),
    );
    thread::sleep(LINK_DOWN);
    let (stalled_now, master_now) = (
        offset(&mut replica, "slave_repl_offset"),
        offset(&mut master, "master_repl_offset"),
    );
    net.set_link(true).expect("veth up");
    assert_eq!(
        stalled_at, stalled_now,
        "the replica made progress with the veth down"
    );
    assert!(
        master_now > master_at,
        "the master took no writes meanwhile"
    );
    let before = offset(&mut replica, "slave_repl_offset");
    assert!(
        wait_until(LINK_WAIT, || offset(&mut replica, "slave_repl_offset")
            > before),
        "the replica stalled after the link came back: {:?}; A: {}; B: {}",
        replica.info("replication"),
        relay_a.logs(),
        relay_b.logs()
    );

    // Reloads leave the replication link alone: B's relay by SIGHUP, A's by `spiperelay
    // reload` over its control socket (the files unchanged). No reconnect, no resync.
    let syncs = |m: &mut Redis| {
        (
            int_field(m, "stats", "sync_full"),
            int_field(m, "stats", "sync_partial_ok"),
        )
    };
    let syncs_before = syncs(&mut master);
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(i32::try_from(relay_b.proc.pid()).expect("pid")),
        nix::sys::signal::Signal::SIGHUP,
    )
    .expect("SIGHUP");
    let control_a = dir.join("a-control.sock");
    let out = run_bounded(
        &relay_bin(),
        &args([
            OsString::from("reload"),
            "--control".into(),
            control_a.into(),
        ]),
        b"",
        Duration::from_secs(10),
    );
    assert_eq!(out.code(), Some(0), "reload A: {out:?}; {}", relay_a.logs());
    assert!(
        wait_until(Duration::from_secs(10), || relay_b
            .logs()
            .contains("SIGHUP: reloaded")),
        "B's relay did not reload: {}",
        relay_b.logs()
    );
    let before = offset(&mut replica, "slave_repl_offset");
    assert!(
        wait_until(LINK_WAIT, || offset(&mut replica, "slave_repl_offset")
            > before),
        "the replica stalled after the reloads: {:?}; A: {}; B: {}",
        replica.info("replication"),
        relay_a.logs(),
        relay_b.logs()
    );
    assert_eq!(
        replica.info_field("replication", "master_link_status"),
        "up"
    );
    assert_eq!(
        syncs(&mut master),
        syncs_before,
        "a reload broke the replication link: A: {}; B: {}",
        relay_a.logs(),
        relay_b.logs()
    );

    // Break 2: B's spiperelay is stopped (the replica's link goes down) and started again. On
    // the epoll run it is killed, as by a crash; on the other, stopped as `systemctl restart`
    // does: SIGTERM, and it exits once its shutdown_timeout has cut the replication link
    // (which stays up meanwhile: that is the drain).
    if backend == "epoll" {
        drop(relay_b);
    } else {
        let timeout = shutdown_timeout(&config_b);
        let t = Instant::now();
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(i32::try_from(relay_b.proc.pid()).expect("pid")),
            nix::sys::signal::Signal::SIGTERM,
        )
        .expect("SIGTERM");
        let exited = wait_until(timeout + Duration::from_secs(10), || {
            relay_b.proc.try_exit().is_some()
        });
        assert!(
            exited,
            "B's relay still runs {:?} after SIGTERM (shutdown_timeout {timeout:?}): {}",
            t.elapsed(),
            relay_b.logs()
        );
        eprintln!(
            "B's relay exited {:?} after SIGTERM (shutdown_timeout {timeout:?})",
            t.elapsed()
        );
        assert!(
            t.elapsed() + Duration::from_secs(1) >= timeout,
            "B's relay cut the replication link at once: {}",
            relay_b.logs()
        );
        drop(relay_b);
    }
    assert!(
        wait_until(LINK_WAIT, || replica
            .info_field("replication", "master_link_status")
            == "down"),
        "the replica's link stayed up with B's relay gone"
    );
    thread::sleep(Duration::from_secs(1));
    relay_b = Relay::start(&dir, &net.b, backend, ('b', 1), &config_b);
    let t = Instant::now();
    assert!(
        link_up(&mut replica, LINK_WAIT),
        "the replica did not reconnect through B's restarted relay: {:?}; A: {}; B: {}",
        replica.info("replication"),
        relay_a.logs(),
        relay_b.logs()
    );
    eprintln!("reconnected {:?} after B's relay restarted", t.elapsed());
    // Through the restarted process's send pipe (its log lines name the pipe).
    assert!(
        wait_until(Duration::from_secs(5), || relay_b
            .logs()
            .contains("pipe send: connection established")),
        "B's relay logged no connection on its send pipe: {}",
        relay_b.logs()
    );
    thread::sleep(Duration::from_secs(1));

    let writes = writer.finish().expect("the writer");
    assert!(writes > 0, "no writes were made");
    // Caught up: equal offsets (the master's PINGs move its offset every 10 s; poll).
    let t = Instant::now();
    let mut last = (0, 0);
    let caught_up = wait_until(CATCH_UP_WAIT, || {
        last = (
            offset(&mut master, "master_repl_offset"),
            offset(&mut replica, "slave_repl_offset"),
        );
        last.0 == last.1
    });
    assert!(
        caught_up,
        "the replica did not catch up: master, replica offsets {last:?}; A: {}; B: {}",
        relay_a.logs(),
        relay_b.logs()
    );
    eprintln!(
        "{writes} writes; caught up at offset {} within {:?} of the last write",
        last.0,
        t.elapsed()
    );

    let digest_a = master.cmd(&["DEBUG", "DIGEST"]).text("DEBUG DIGEST");
    let digest_b = replica.cmd(&["DEBUG", "DIGEST"]).text("DEBUG DIGEST");
    let size_a = master.cmd(&["DBSIZE"]).text("DBSIZE");
    let size_b = replica.cmd(&["DBSIZE"]).text("DBSIZE");
    eprintln!("master {digest_a} ({size_a} keys), replica {digest_b} ({size_b} keys)");
    assert_eq!(size_a, size_b, "key counts differ");
    assert_eq!(digest_a, digest_b, "the data differ");
    assert_ne!(digest_a, "0".repeat(40), "empty data set");
    assert_eq!(
        master.cmd(&["GET", "counter"]).text("GET"),
        replica.cmd(&["GET", "counter"]).text("GET")
    );

    // One full sync only: after each break the replica continued from its offset.
    let full = int_field(&mut master, "stats", "sync_full");
    let partial = int_field(&mut master, "stats", "sync_partial_ok");
    eprintln!("master: sync_full {full}, sync_partial_ok {partial}");
    assert_eq!(full, 1, "a break led to a second full sync");
    assert!(partial >= 1, "no partial resync after B's relay restarted");

    // The other direction of the pair: A's send pipe reaches B's Redis (the replica).
    let role = net
        .exec(
            &net.a,
            REDIS_CLI,
            &["-h", "127.0.0.1", "-p", "6380", "ROLE"],
        )
        .unwrap_or_else(|e| panic!("redis-cli in A through A's send pipe: {e}"));
    assert!(
        role.starts_with("slave"),
        "A's send pipe does not reach B's replica: {role:?}; A: {}; B: {}",
        relay_a.logs(),
        relay_b.logs()
    );

    for relay in [&relay_a, &relay_b] {
        let log = relay.logs();
        assert!(!log.contains("panic"), "{log}");
    }
    eprintln!("{backend}: replication test took {:?}", started.elapsed());
    drop((relay_a, relay_b, master, replica));
}

#[test]
fn the_generated_configurations_keep_the_examples_shape() {
    let dir = TempDir::new("replcfg");
    let a = host_config("replication-a.toml", &dir, 'a');
    let b = host_config("replication-b.toml", &dir, 'b');
    for text in [&a, &b] {
        assert!(!text.contains("192.0.2."), "{text}");
        assert!(!text.contains("/etc/") && !text.contains("/run/"), "{text}");
        // The receive pipe on the veth address, the send pipe on 127.0.0.1:6380.
        assert_eq!(source_ports(text), [8025, 6380], "{text}");
        assert_eq!(text.matches("[pipe.receive]").count(), 1, "{text}");
        assert_eq!(text.matches("[pipe.send]").count(), 1, "{text}");
    }
    assert!(a.contains(&format!("source = \"[{ADDR_A}]:8025\"")), "{a}");
    assert!(a.contains(&format!("target = \"[{ADDR_B}]:8025\"")), "{a}");
    assert!(b.contains(&format!("source = \"[{ADDR_B}]:8025\"")), "{b}");
    assert!(b.contains(&format!("target = \"[{ADDR_A}]:8025\"")), "{b}");
}
