//! The adversarial catalogue (reliability catalogue groups 1–4) as black-box tests of the
//! binary, each on both io backends (`SPIPERELAY_BACKEND=io_uring|epoll`; one only with
//! `SPIPERELAY_TEST_BACKEND`).
//!
//! Every case runs against a fresh `-e` → `-d` → echo chain with a *canary* connection
//! streaming through it for the whole case, takes both ends' descriptor count and RSS as the
//! baseline once the canary is up, and afterwards requires: the canary intact, the descriptors
//! back to the baseline, RSS within [`RSS_SLACK_KIB`] of it, and the expected log line.
//!
//! Cases: a chaos proxy on the encrypted leg (bit flip, truncation with FIN and with RST,
//! duplicated, swapped and dropped packets; stall, dribble and re-chunking, which must not
//! change a byte); slowloris (silent, 1 byte every 0.9 s, 319 of 320 bytes); a flood of
//! garbage handshakes (CPU per attempt); `-n 1` with a silent client first; EMFILE on the `-e`
//! end (RLIMIT_NOFILE set with `prlimit`); idle connections; churn with resets; RST/FIN races;
//! SIGTERM drain; slow target and slow client (RSS bounded); many concurrent streams, each
//! checked against its own input. `-n` bursts are in `tests/accept_limit.rs`, io_uring being
//! blocked in `tests/uring_blocked.rs`.
//!
//! CI sizes keep the file to about a minute on 2 cores; `SPIPERELAY_HEAVY=1` runs the catalogue
//! sizes (10,000 idle connections, 3000 churn cycles, 1000 races).

mod adv_common;
mod bin_common;

use std::collections::VecDeque;
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use adv_common::{
    Canary, backend_bin, backends, cpu_time, fd_count, heavy, log_count, rss_kib, saved_logs,
    settle_fds, wait_log,
};
use bin_common::{
    Addr, Chain, ChainSpec, Echo, Fam, Proc, Reply, TempDir, args, exchange_with, random_bytes,
    start_end, wait_until,
};

/// RSS an end may keep above its baseline after a case (allocator slack, pools warmed up).
const RSS_SLACK_KIB: u64 = 16 * 1024;
/// Handshake bytes the protocol client sends before its first packet (nonce, y ‖ h).
const CLIENT_HANDSHAKE: usize = 32 + 288;
/// An encrypted packet on the wire.
const PACKET: usize = 1060;

// ---------------------------------------------------------------------------------------------
// The case frame: chain, canary, baseline, checks

struct Case {
    chain: Chain,
    canary: Option<Canary>,
    base: [(u32, usize, u64); 2],
    tag: String,
}

impl Case {
    /// A chain on `backend` (`-o 30` unless the flags say otherwise), the canary started, and
    /// the baseline taken.
    fn start(backend: &str, tag: &str, enc_flags: &[&str], dec_flags: &[&str]) -> Self {
        let bin = backend_bin(backend);
        let mut spec = ChainSpec::new("adv", bin.clone(), bin);
        spec.enc_flags = enc_flags;
        spec.dec_flags = dec_flags;
        Self::from_chain(spec.start(), &format!("{tag}-{backend}"))
    }

    fn from_chain(chain: Chain, tag: &str) -> Self {
        let canary = Canary::start(chain.front());
        assert!(canary.echoed() > 0, "{tag}: the canary never got through");
        let base = [chain.enc.pid(), chain.dec.pid()]
            .map(|pid| (pid, fd_count(pid).unwrap_or(0), rss_kib(pid).unwrap_or(0)));
        Self {
            chain,
            canary: Some(canary),
            base,
            tag: tag.to_owned(),
        }
    }

    /// Pushes `len` bytes through the chain at full speed (warming the receive pools, whose
    /// pages are touched as they are first used), then takes the RSS baseline again.
    fn warm_up(&mut self, len: usize) {
        echo_ok(
            self.chain.front(),
            len,
            0x3a3a,
            &format!("{}: warm-up", self.tag),
        );
        thread::sleep(Duration::from_millis(200));
        for b in &mut self.base {
            b.2 = rss_kib(b.0).unwrap_or(b.2);
        }
    }

    fn logs(&self) -> String {
        saved_logs(&self.chain, &self.tag)
    }

    /// Canary intact, both ends alive, descriptors back at the baseline, RSS near it.
    fn finish(mut self) {
        let tag = self.tag.clone();
        if let Some(c) = self.canary.take() {
            let r = c.finish();
            assert!(r.is_ok(), "{tag}: canary: {r:?}; {}", self.logs());
        }
        for (i, &(pid, fds, rss)) in self.base.iter().enumerate() {
            let end = ["-e", "-d"][i];
            let proc = if i == 0 {
                &mut self.chain.enc
            } else {
                &mut self.chain.dec
            };
            assert!(
                proc.try_exit().is_none(),
                "{tag}: {end} exited; {}",
                saved_logs(&self.chain, &tag)
            );
            // The canary's descriptors were in the baseline and are closed now.
            let n = settle_fds(pid, fds, Duration::from_secs(20));
            assert!(
                n <= fds,
                "{tag}: {end} holds {n} descriptors, {fds} at the baseline; {}",
                saved_logs(&self.chain, &tag)
            );
            let now = rss_kib(pid).unwrap_or(0);
            assert!(
                now <= rss + RSS_SLACK_KIB,
                "{tag}: {end} RSS {now} KiB, {rss} KiB at the baseline"
            );
        }
    }
}

/// One exchange through `front` that must come back byte for byte.
fn echo_ok(front: &Addr, len: usize, seed: u64, what: &str) {
    let payload = random_bytes(seed, len);
    let x = exchange_with(front, &payload, Duration::from_secs(30))
        .unwrap_or_else(|e| panic!("{what}: connect: {e}"));
    assert!(
        x.end.is_eof() && x.received == payload,
        "{what}: {} of {len} bytes, end {:?}",
        x.received.len(),
        x.end
    );
}

// ---------------------------------------------------------------------------------------------
// Group 1 / 4.3: a chaos proxy on the encrypted leg

/// What the proxy does to the `-e` → `-d` direction of one connection, after the handshake.
#[derive(Clone, Copy, Debug)]
enum Chaos {
    /// Forward unchanged.
    Pass,
    /// Flip the lowest bit of byte `byte` of packet `pkt`.
    Flip { pkt: usize, byte: usize },
    /// Forward half of packet `pkt`, then FIN.
    TruncFin { pkt: usize },
    /// Forward half of packet `pkt`, then RST.
    TruncRst { pkt: usize },
    /// Send packet `pkt` twice.
    Dup { pkt: usize },
    /// Send packet `pkt + 1` before packet `pkt`.
    Swap { pkt: usize },
    /// Leave packet `pkt` out.
    Drop { pkt: usize },
    /// Hold everything after packet 0 for this long.
    Stall(Duration),
    /// Forward one byte per write.
    Dribble,
    /// Forward in pseudo-random pieces of 1..=3000 bytes.
    Rechunk(u64),
}

/// A TCP proxy in front of `-d` that applies the next queued [`Chaos`] to each connection it
/// accepts ([`Chaos::Pass`] once the queue is empty).
struct ChaosProxy {
    addr: SocketAddr,
    modes: Arc<Mutex<VecDeque<Chaos>>>,
    stop: Arc<AtomicBool>,
    thread: Option<thread::JoinHandle<()>>,
}

impl ChaosProxy {
    fn start(target: SocketAddr) -> Self {
        let l = TcpListener::bind("127.0.0.1:0").expect("proxy bind");
        l.set_nonblocking(true).expect("nonblocking");
        let addr = l.local_addr().expect("proxy addr");
        let modes = Arc::new(Mutex::new(VecDeque::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (m, s) = (modes.clone(), stop.clone());
        let thread = thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(600);
            for _ in 0..100_000 {
                if s.load(Ordering::SeqCst) || Instant::now() > deadline {
                    break;
                }
                match l.accept() {
                    Ok((client, _)) => {
                        let mode = m
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .pop_front()
                            .unwrap_or(Chaos::Pass);
                        let _ = client.set_nonblocking(false);
                        thread::spawn(move || proxy_conn(client, target, mode));
                    }
                    Err(_) => thread::sleep(Duration::from_millis(2)),
                }
            }
        });
        Self {
            addr,
            modes,
            stop,
            thread: Some(thread),
        }
    }

    fn push(&self, mode: Chaos) {
        self.modes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push_back(mode);
    }
}

impl Drop for ChaosProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn proxy_conn(client: TcpStream, target: SocketAddr, mode: Chaos) {
    let Ok(server) = TcpStream::connect_timeout(&target, Duration::from_secs(5)) else {
        return;
    };
    let _ = server.set_nodelay(true);
    for s in [&client, &server] {
        let _ = s.set_read_timeout(Some(Duration::from_secs(60)));
        let _ = s.set_write_timeout(Some(Duration::from_secs(60)));
    }
    let (Ok(c2), Ok(s2)) = (client.try_clone(), server.try_clone()) else {
        return;
    };
    // -d → -e: unchanged.
    let down = thread::spawn(move || {
        let (mut from, mut to) = (s2, c2);
        let mut buf = vec![0u8; 16 * 1024];
        for _ in 0..1_000_000 {
            match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if to.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            }
        }
        let _ = to.shutdown(Shutdown::Write);
    });
    chaos_up(client, server, mode);
    let _ = down.join();
}

/// Reads exactly `n` bytes or up to EOF; returns what it got.
fn read_upto(r: &mut TcpStream, n: usize) -> Vec<u8> {
    let mut out = vec![0u8; n];
    let mut got = 0;
    while got < n {
        match r.read(&mut out[got..]) {
            Ok(0) | Err(_) => break,
            Ok(k) => got += k,
        }
    }
    out.truncate(got);
    out
}

/// The `-e` → `-d` direction: the handshake unchanged, then packet by packet.
fn chaos_up(mut from: TcpStream, mut to: TcpStream, mode: Chaos) {
    let hs = read_upto(&mut from, CLIENT_HANDSHAKE);
    if to.write_all(&hs).is_err() || hs.len() < CLIENT_HANDSHAKE {
        let _ = to.shutdown(Shutdown::Write);
        return;
    }
    let mut rng = match mode {
        Chaos::Rechunk(seed) => seed | 1,
        _ => 1,
    };
    let mut held: Option<Vec<u8>> = None;
    for i in 0..10_000_000usize {
        let mut p = read_upto(&mut from, PACKET);
        if p.is_empty() {
            break;
        }
        let whole = p.len() == PACKET;
        let out: Vec<Vec<u8>> = match mode {
            Chaos::Flip { pkt, byte } if i == pkt => {
                let at = byte % p.len();
                p[at] ^= 1;
                vec![p]
            }
            Chaos::TruncFin { pkt } if i == pkt => {
                let _ = to.write_all(&p[..p.len() / 2]);
                let _ = to.shutdown(Shutdown::Write);
                // Keep reading (and dropping) so -e is not blocked; -d ends the connection.
                let _ = read_upto(&mut from, 64 * 1024 * 1024);
                return;
            }
            Chaos::TruncRst { pkt } if i == pkt => {
                let _ = to.write_all(&p[..p.len() / 2]);
                thread::sleep(Duration::from_millis(50));
                let _ = socket2::SockRef::from(&to).set_linger(Some(Duration::ZERO));
                // Ends the other direction's read, so its clone of `to` is closed too and
                // this close is the last one: the kernel then sends the RST.
                let _ = to.shutdown(Shutdown::Read);
                drop(to);
                let _ = from.shutdown(Shutdown::Both);
                return;
            }
            Chaos::Dup { pkt } if i == pkt => vec![p.clone(), p],
            Chaos::Swap { pkt } if i == pkt => {
                held = Some(p);
                continue;
            }
            Chaos::Swap { pkt } if i == pkt + 1 => vec![p, held.take().unwrap_or_default()],
            Chaos::Drop { pkt } if i == pkt => continue,
            Chaos::Stall(d) if i == 1 => {
                thread::sleep(d);
                vec![p]
            }
            _ => vec![p],
        };
        for piece in out {
            let ok = match mode {
                Chaos::Dribble => piece.iter().all(|b| to.write_all(&[*b]).is_ok()),
                Chaos::Rechunk(_) => {
                    let mut rest = &piece[..];
                    let mut ok = true;
                    while !rest.is_empty() && ok {
                        rng ^= rng << 13;
                        rng ^= rng >> 7;
                        rng ^= rng << 17;
                        let n = (1 + (rng % 3000) as usize).min(rest.len());
                        ok = to.write_all(&rest[..n]).is_ok();
                        rest = &rest[n..];
                    }
                    ok
                }
                _ => to.write_all(&piece).is_ok(),
            };
            if !ok {
                return;
            }
        }
        if !whole {
            break;
        }
    }
    if let Some(p) = held {
        let _ = to.write_all(&p);
    }
    let _ = to.shutdown(Shutdown::Write);
}

/// A chain whose `-e` end reaches `-d` through a [`ChaosProxy`].
fn chaos_chain(backend: &str) -> (Chain, ChaosProxy) {
    let bin = backend_bin(backend);
    let dir = TempDir::new("chaos");
    let key = dir.key("key");
    let echo = Echo::start(Fam::V4, &dir, Reply::Stream);
    let dec = start_end(
        &dir,
        "dec",
        &bin,
        "-d",
        Fam::V4,
        &echo.addr,
        &key,
        &["-o", "30"],
    );
    let Addr::Tcp(dec_addr) = dec.addr().clone() else {
        unreachable!("a TCP -d end")
    };
    let proxy = ChaosProxy::start(dec_addr);
    let via = Addr::Tcp(proxy.addr);
    let enc = start_end(&dir, "enc", &bin, "-e", Fam::V4, &via, &key, &["-o", "30"]);
    (
        Chain {
            enc,
            dec,
            echo,
            dir,
        },
        proxy,
    )
}

#[test]
fn chaos_on_the_encrypted_leg() {
    // (mode, the -d log line it must cause; None: the bytes must arrive unchanged)
    let cases: &[(Chaos, Option<&str>)] = &[
        (Chaos::Flip { pkt: 0, byte: 40 }, Some("bad packet")),
        (Chaos::Flip { pkt: 3, byte: 2 }, Some("bad packet")),
        (Chaos::Flip { pkt: 5, byte: 1059 }, Some("bad packet")),
        (Chaos::Dup { pkt: 2 }, Some("bad packet")),
        (Chaos::Swap { pkt: 1 }, Some("bad packet")),
        (Chaos::Drop { pkt: 4 }, Some("bad packet")),
        (
            Chaos::TruncFin { pkt: 3 },
            Some("encrypted stream truncated"),
        ),
        (
            Chaos::TruncRst { pkt: 3 },
            Some("encrypted peer reset the connection"),
        ),
        (Chaos::Stall(Duration::from_secs(2)), None),
        (Chaos::Dribble, None),
        (Chaos::Rechunk(0x5eed), None),
        (Chaos::Rechunk(0xfeed), None),
    ];
    for backend in backends() {
        let (chain, proxy) = chaos_chain(backend);
        let case = Case::from_chain(chain, &format!("chaos-{backend}"));
        let front = case.chain.front().clone();
        for (i, &(mode, log)) in cases.iter().enumerate() {
            let what = format!("{backend}: {mode:?}");
            let before = log.map(|l| log_count(&case.chain.dec, l)).unwrap_or(0);
            proxy.push(mode);
            // 12 packets' worth, echoed back through the untouched direction.
            let payload = random_bytes(0xc4a0 + i as u64, 12 * 1024);
            let x = exchange_with(&front, &payload, Duration::from_secs(30))
                .unwrap_or_else(|e| panic!("{what}: connect: {e}"));
            match log {
                None => assert!(
                    x.end.is_eof() && x.received == payload,
                    "{what}: {} of {} bytes, end {:?}; {}",
                    x.received.len(),
                    payload.len(),
                    x.end,
                    case.logs()
                ),
                Some(line) => {
                    assert!(
                        x.end.is_closed(),
                        "{what}: the connection was not ended: {:?}; {}",
                        x.end,
                        case.logs()
                    );
                    assert!(
                        payload.starts_with(&x.received) && x.received.len() < payload.len(),
                        "{what}: {} bytes came back, not a strict prefix of the input",
                        x.received.len()
                    );
                    assert!(
                        wait_until(Duration::from_secs(10), || log_count(&case.chain.dec, line)
                            > before),
                        "{what}: -d never logged {line:?}; {}",
                        case.logs()
                    );
                }
            }
        }
        case.finish();
    }
}

// ---------------------------------------------------------------------------------------------
// Group 2: resource abuse

/// How a slowloris client behaves.
#[derive(Clone, Copy, Debug)]
enum Slow {
    Silent,
    BytePer900ms,
    AllBut1,
}

#[test]
fn slowloris_is_dropped_at_the_handshake_deadline_from_accept() {
    const DEADLINE: f64 = 3.0;
    for backend in backends() {
        let case = Case::start(backend, "slow", &[], &["-o", "3"]);
        let dec = case.chain.dec.addr().clone();
        let mut figures = Vec::new();
        for slow in [Slow::Silent, Slow::BytePer900ms, Slow::AllBut1] {
            let what = format!("{backend}: {slow:?}");
            let before = log_count(&case.chain.dec, "handshake timed out");
            let mut c = dec.connect().expect("connect to -d");
            let start = Instant::now();
            c.set_read_timeout(Duration::from_millis(100))
                .expect("timeout");
            let junk = random_bytes(7, CLIENT_HANDSHAKE);
            let mut sent = 0;
            let mut next_byte = Instant::now();
            let mut closed_after = None;
            while start.elapsed() < Duration::from_secs(15) {
                match slow {
                    Slow::Silent => {}
                    Slow::BytePer900ms if Instant::now() >= next_byte && sent < junk.len() => {
                        let _ = c.write_all(&junk[sent..sent + 1]);
                        sent += 1;
                        next_byte += Duration::from_millis(900);
                    }
                    Slow::AllBut1 if sent == 0 => {
                        let _ = c.write_all(&junk[..CLIENT_HANDSHAKE - 1]);
                        sent = CLIENT_HANDSHAKE - 1;
                    }
                    _ => {}
                }
                let mut b = [0u8; 512];
                match c.read(&mut b) {
                    Ok(0) => {
                        closed_after = Some(start.elapsed());
                        break;
                    }
                    // The server's nonce arrives at once; keep reading.
                    Ok(_) => {}
                    Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                    Err(_) => {
                        closed_after = Some(start.elapsed());
                        break;
                    }
                }
            }
            let t = closed_after.unwrap_or_else(|| panic!("{what}: never dropped"));
            assert!(
                t.as_secs_f64() >= DEADLINE - 0.3 && t.as_secs_f64() < DEADLINE + 3.0,
                "{what}: dropped after {t:?}, -o is {DEADLINE} s from accept"
            );
            assert!(
                wait_log(
                    &case.chain.dec,
                    "handshake timed out",
                    Duration::from_secs(5)
                ) && log_count(&case.chain.dec, "handshake timed out") > before,
                "{what}: no \"handshake timed out\" line; {}",
                case.logs()
            );
            figures.push(format!("{slow:?} {t:.2?}"));
        }
        eprintln!(
            "slowloris drop times ({backend}, -o 3): {}",
            figures.join(", ")
        );
        case.finish();
    }
}

#[test]
fn garbage_handshake_flood_costs_little_cpu_and_spares_real_clients() {
    let n = if heavy() { 20_000 } else { 2000 };
    for backend in backends() {
        let case = Case::start(backend, "garb", &[], &["-n", "0"]);
        let dec = case.chain.dec.addr().clone();
        let pid = case.chain.dec.pid();
        let cpu0 = cpu_time(pid).unwrap_or_default();
        let start = Instant::now();
        let workers: Vec<_> = (0..4u64)
            .map(|w| {
                let dec = dec.clone();
                thread::spawn(move || {
                    for i in 0..n / 4 {
                        let Ok(mut c) = dec.connect() else { continue };
                        let _ = c.write_all(&random_bytes(w << 32 | i as u64, CLIENT_HANDSHAKE));
                        let _ = c.set_read_timeout(Duration::from_secs(10));
                        let mut sink = [0u8; 1024];
                        // Until the relay closes it (after the nonce it sent).
                        for _ in 0..16 {
                            match c.read(&mut sink) {
                                Ok(0) | Err(_) => break,
                                Ok(_) => {}
                            }
                        }
                    }
                })
            })
            .collect();
        // A real client gets through during the flood.
        echo_ok(
            case.chain.front(),
            4096,
            99,
            &format!("{backend}: during the flood"),
        );
        for w in workers {
            let _ = w.join();
        }
        let took = start.elapsed();
        let cpu = cpu_time(pid).unwrap_or_default().saturating_sub(cpu0);
        let per = cpu / n as u32;
        eprintln!(
            "garbage handshakes ({backend}): {n} in {took:.2?}, -d CPU {cpu:?}, {per:?} each"
        );
        // No modexp before the MAC check: far below a group-14 exponentiation (~1 ms).
        assert!(
            per < Duration::from_micros(800),
            "{backend}: {per:?} of CPU per garbage handshake"
        );
        assert!(
            case.chain.dec.stderr().contains("bad MAC"),
            "{backend}: no bad-MAC line; {}",
            case.logs()
        );
        case.finish();
    }
}

#[test]
fn n1_silent_client_first_then_real_client_within_the_deadline() {
    for backend in backends() {
        let case = Case::start(backend, "n1", &[], &["-n", "2", "-o", "3"]);
        // The canary holds one of the two slots; a silent client takes the other.
        let _silent = case.chain.dec.addr().connect().expect("silent client");
        thread::sleep(Duration::from_millis(200));
        let start = Instant::now();
        echo_ok(
            case.chain.front(),
            2048,
            5,
            &format!("{backend}: after a silent client"),
        );
        let t = start.elapsed();
        assert!(t < Duration::from_secs(8), "{backend}: served after {t:?}");
        eprintln!("-n 2 with a silent client ({backend}): real client served after {t:.2?}");
        case.finish();
    }
}

#[test]
fn emfile_on_the_encrypting_end_is_survived() {
    const NOFILE: u32 = 40;
    if !Path::new("/usr/bin/prlimit").exists() {
        assert!(
            !bin_common::under_ci(),
            "prlimit (util-linux) missing under CI"
        );
        eprintln!("SKIP: prlimit not installed");
        return;
    }
    for backend in backends() {
        let bin = backend_bin(backend);
        let dir = TempDir::new("emf");
        let key = dir.key("key");
        let echo = Echo::start(Fam::V4, &dir, Reply::Stream);
        let dec = start_end(
            &dir,
            "dec",
            &bin,
            "-d",
            Fam::V4,
            &echo.addr,
            &key,
            &["-n", "0"],
        );
        let target = dec.addr().spiped();
        let enc =
            Proc::start_listening(&dir, "enc", Path::new("/usr/bin/prlimit"), Fam::V4, |src| {
                let mut a = args([format!("--nofile={NOFILE}:{NOFILE}"), "--".into()]);
                a.push(bin.clone().into());
                a.extend(args([
                    "-F", "-e", "-n", "0", "-o", "30", "-s", src, "-t", &target,
                ]));
                a.push("-k".into());
                a.push(key.clone().into());
                a
            });
        let chain = Chain {
            enc,
            dec,
            echo,
            dir,
        };
        let case = Case::from_chain(chain, &format!("emfile-{backend}"));
        // Far more clients than descriptors: each holds two at -e.
        let mut held = Vec::new();
        for _ in 0..NOFILE as usize {
            if let Ok(c) = case.chain.front().connect() {
                held.push(c);
            }
        }
        assert!(
            wait_until(Duration::from_secs(10), || {
                let e = case.chain.enc.stderr();
                e.contains("Too many open files")
            }),
            "{backend}: -e never logged EMFILE; {}",
            case.logs()
        );
        drop(held);
        thread::sleep(Duration::from_millis(500));
        echo_ok(
            case.chain.front(),
            4096,
            3,
            &format!("{backend}: after EMFILE"),
        );
        case.finish();
    }
}

#[test]
fn idle_connections_stay_up_and_cost_little() {
    let n = if heavy() { 9000 } else { 300 };
    for backend in backends() {
        let case = Case::start(backend, "idle", &["-n", "0"], &["-n", "0"]);
        let front = case.chain.front().clone();
        let mut conns = Vec::with_capacity(n);
        for i in 0..n {
            let mut c = front
                .connect()
                .unwrap_or_else(|e| panic!("{backend}: idle {i}: {e}"));
            c.write_all(b"x").expect("write");
            let mut b = [0u8; 1];
            c.read_exact(&mut b)
                .unwrap_or_else(|e| panic!("{backend}: idle {i} echo: {e}"));
            conns.push(c);
        }
        thread::sleep(Duration::from_secs(1));
        let per: Vec<String> = case
            .base
            .iter()
            .map(|&(pid, _, rss)| {
                let now = rss_kib(pid).unwrap_or(0);
                format!("{:.1} KiB", now.saturating_sub(rss) as f64 / n as f64)
            })
            .collect();
        eprintln!(
            "{n} idle connections ({backend}): RSS per connection -e {}, -d {}",
            per[0], per[1]
        );
        // All still up: each echoes once more.
        for (i, c) in conns.iter_mut().enumerate().step_by(7) {
            c.write_all(b"y").expect("write");
            let mut b = [0u8; 1];
            c.read_exact(&mut b)
                .unwrap_or_else(|e| panic!("{backend}: idle {i} after the wait: {e}"));
        }
        drop(conns);
        case.finish();
    }
}

#[test]
fn churn_with_resets_leaves_no_trace() {
    let cycles = if heavy() { 3000 } else { 300 };
    for backend in backends() {
        let case = Case::start(backend, "churn", &["-n", "0"], &["-n", "0"]);
        let front = case.chain.front().clone();
        let dec = case.chain.dec.addr().clone();
        for i in 0..cycles {
            match i % 4 {
                // A full exchange.
                0 => echo_ok(&front, 1500, i as u64, &format!("{backend}: churn {i}")),
                // Data, then RST.
                1 | 2 => {
                    if let Ok(mut c) = front.connect() {
                        let _ = c.write_all(&[1u8; 700]);
                        if i % 4 == 2 {
                            let mut b = [0u8; 10];
                            let _ = c.read(&mut b);
                        }
                        if let bin_common::Conn::Tcp(s) = &c {
                            let _ = socket2::SockRef::from(s).set_linger(Some(Duration::ZERO));
                        }
                    }
                }
                // Half a handshake straight at -d, then RST.
                _ => {
                    if let Ok(mut c) = dec.connect() {
                        let _ = c.write_all(&random_bytes(i as u64, 100));
                        if let bin_common::Conn::Tcp(s) = &c {
                            let _ = socket2::SockRef::from(s).set_linger(Some(Duration::ZERO));
                        }
                    }
                }
            }
        }
        case.finish();
    }
}

#[test]
fn rst_fin_races_are_survived() {
    let rounds = if heavy() { 1000 } else { 150 };
    for backend in backends() {
        let case = Case::start(backend, "race", &["-n", "0"], &["-n", "0"]);
        let front = case.chain.front().clone();
        for i in 0..rounds {
            let Ok(mut c) = front.connect() else { continue };
            let _ = c.write_all(&random_bytes(i, 3000));
            // FIN from the client; the echo answers and half-closes while the client resets.
            let _ = c.shutdown_write();
            if i % 3 == 0 {
                thread::sleep(Duration::from_micros(200 * (i % 10)));
            }
            if let bin_common::Conn::Tcp(s) = &c {
                let _ = socket2::SockRef::from(s).set_linger(Some(Duration::ZERO));
            }
        }
        case.finish();
    }
}

// ---------------------------------------------------------------------------------------------
// Group 3: faults

#[test]
fn sigterm_drain_finishes_open_connections_then_exits_0() {
    for backend in backends() {
        let bin = backend_bin(backend);
        let mut spec = ChainSpec::new("drain", bin.clone(), bin);
        spec.reply = Reply::AfterEof(Duration::from_millis(1500));
        let mut chain = spec.start();
        let front = chain.front().clone();
        let payload = random_bytes(11, 64 * 1024);
        let p2 = payload.clone();
        let client = thread::spawn(move || exchange_with(&front, &p2, Duration::from_secs(30)));
        thread::sleep(Duration::from_millis(500));
        let pid = chain.enc.pid().to_string();
        let st = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill");
        assert!(st.success());
        let x = client.join().expect("client").expect("connect");
        assert!(
            x.end.is_eof() && x.received == payload,
            "{backend}: the open connection did not finish during the drain: {} bytes, {:?}; {}",
            x.received.len(),
            x.end,
            chain.logs()
        );
        let exited = wait_until(Duration::from_secs(10), || chain.enc.try_exit().is_some());
        assert!(
            exited,
            "{backend}: -e did not exit after its last connection"
        );
        let code = chain.enc.try_exit().and_then(|s| s.code());
        assert_eq!(code, Some(0), "{backend}: exit status; {}", chain.logs());
    }
}

#[test]
fn sigterm_drain_refuses_new_clients_at_once() {
    for backend in backends() {
        let bin = backend_bin(backend);
        let mut spec = ChainSpec::new("drain2", bin.clone(), bin);
        spec.reply = Reply::AfterEof(Duration::from_secs(3));
        let chain = spec.start();
        let front = chain.front().clone();
        let f2 = front.clone();
        let old = thread::spawn(move || exchange_with(&f2, b"old", Duration::from_secs(30)));
        thread::sleep(Duration::from_millis(500));
        let pid = chain.enc.pid().to_string();
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status();
        thread::sleep(Duration::from_millis(300));
        let start = Instant::now();
        let refused = match front.connect() {
            Err(_) => true,
            Ok(mut c) => {
                let _ = c.set_read_timeout(Duration::from_secs(2));
                let mut b = [0u8; 1];
                !matches!(c.read(&mut b), Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut))
            }
        };
        assert!(
            refused && start.elapsed() < Duration::from_secs(1),
            "{backend}: a client arriving during the drain was not refused at once"
        );
        let _ = old.join();
    }
}

#[test]
fn restart_after_sigkill_on_the_same_unix_path() {
    for backend in backends() {
        let bin = backend_bin(backend);
        let dir = TempDir::new("stale");
        let key = dir.key("key");
        let echo = Echo::start(Fam::Unix, &dir, Reply::Stream);
        let path = dir.sock_path("front");
        let spawn = || {
            let a = args([
                "-F".into(),
                "-d".into(),
                "-s".into(),
                path.clone().into_os_string(),
                "-t".into(),
                echo.addr.spiped().into(),
                "-k".into(),
                key.clone().into_os_string(),
            ]);
            Proc::spawn(&dir, "dec", &bin, &a).expect("spawn")
        };
        let mut first = spawn();
        let addr = Addr::Unix(path.clone());
        first.wait_listening(&addr).expect("first instance listens");
        let pid = first.pid().to_string();
        let _ = std::process::Command::new("kill")
            .args(["-KILL", &pid])
            .status();
        let _ = wait_until(Duration::from_secs(5), || first.try_exit().is_some());
        let mut second = spawn();
        let r = second.wait_listening(&addr);
        assert!(
            r.is_ok(),
            "{backend}: restart failed: {r:?}; {}",
            second.stderr()
        );
    }
}

#[test]
fn flood_of_silent_clients_does_not_keep_a_real_client_out() {
    for backend in backends() {
        let case = Case::start(
            backend,
            "cap",
            &[],
            &["-n", "20", "-o", "30", "--handshake-limit", "8"],
        );
        let dec = case.chain.dec.addr().clone();
        let silent: Vec<_> = (0..40).filter_map(|_| dec.connect().ok()).collect();
        thread::sleep(Duration::from_millis(300));
        let start = Instant::now();
        echo_ok(
            case.chain.front(),
            1024,
            1,
            &format!("{backend}: during a silent flood"),
        );
        assert!(start.elapsed() < Duration::from_secs(1));
        let log = case.chain.dec.stderr();
        assert!(
            log.contains("evicted while still in the handshake to admit a new client"),
            "{backend}: no eviction logged: {log}"
        );
        drop(silent);
        case.finish();
    }
}

/// Samples the RSS of both ends every 50 ms until `done`; returns the largest growth seen.
fn peak_growth(case: &Case, done: &AtomicBool, limit: Duration) -> [u64; 2] {
    let mut peak = [0u64; 2];
    let deadline = Instant::now() + limit;
    while !done.load(Ordering::SeqCst) && Instant::now() < deadline {
        for (i, &(pid, _, base)) in case.base.iter().enumerate() {
            let now = rss_kib(pid).unwrap_or(0);
            peak[i] = peak[i].max(now.saturating_sub(base));
        }
        thread::sleep(Duration::from_millis(50));
    }
    peak
}

/// A Unix echo server that reads at most 16 KiB every 5 ms (about 3 MB/s): a slow target.
fn slow_echo(dir: &TempDir, stop: Arc<AtomicBool>) -> (Addr, thread::JoinHandle<()>) {
    use std::os::unix::net::UnixListener;
    let path = dir.sock_path("slow");
    let l = UnixListener::bind(&path).expect("bind slow echo");
    l.set_nonblocking(true).expect("nonblocking");
    let t = thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(300);
        while !stop.load(Ordering::SeqCst) && Instant::now() < deadline {
            let Ok((mut c, _)) = l.accept() else {
                thread::sleep(Duration::from_millis(5));
                continue;
            };
            let _ = c.set_nonblocking(false);
            let _ = c.set_read_timeout(Some(Duration::from_secs(60)));
            thread::spawn(move || {
                let mut buf = vec![0u8; 16 * 1024];
                for _ in 0..1_000_000 {
                    match c.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            if c.write_all(&buf[..n]).is_err() {
                                return;
                            }
                        }
                    }
                    thread::sleep(Duration::from_millis(5));
                }
                let _ = c.shutdown(Shutdown::Write);
            });
        }
    });
    (Addr::Unix(path), t)
}

#[test]
fn slow_target_backpressures_the_client_with_bounded_memory() {
    const LEN: usize = 8 << 20;
    for backend in backends() {
        let bin = backend_bin(backend);
        let dir = TempDir::new("slowt");
        let key = dir.key("key");
        let stop = Arc::new(AtomicBool::new(false));
        let (target, server) = slow_echo(&dir, stop.clone());
        let dec = start_end(
            &dir,
            "dec",
            &bin,
            "-d",
            Fam::Unix,
            &target,
            &key,
            &["-o", "30"],
        );
        let enc = start_end(
            &dir,
            "enc",
            &bin,
            "-e",
            Fam::Unix,
            dec.addr(),
            &key,
            &["-o", "30"],
        );
        // Chain wants an echo server; this one only fills the field.
        let echo = Echo::start(Fam::Unix, &dir, Reply::Stream);
        let chain = Chain {
            enc,
            dec,
            echo,
            dir,
        };
        let mut case = Case::from_chain(chain, &format!("slowtarget-{backend}"));
        case.warm_up(16 << 20);
        let front = case.chain.front().clone();
        let payload = Arc::new(random_bytes(77, LEN));
        let done = Arc::new(AtomicBool::new(false));
        let (p2, d2) = (payload.clone(), done.clone());
        let client = thread::spawn(move || {
            let r = exchange_with(&front, &p2, Duration::from_secs(60));
            d2.store(true, Ordering::SeqCst);
            r
        });
        let peak = peak_growth(&case, &done, Duration::from_secs(120));
        let x = client.join().expect("client").expect("connect");
        assert!(
            x.end.is_eof() && x.received == *payload,
            "{backend}: {} of {LEN} bytes, {:?}; {}",
            x.received.len(),
            x.end,
            case.logs()
        );
        eprintln!(
            "slow target ({backend}): 8 MiB through a 3 MB/s target in {:.2?}, \
             peak RSS growth -e {} KiB, -d {} KiB",
            x.elapsed, peak[0], peak[1]
        );
        for (i, p) in peak.iter().enumerate() {
            assert!(
                *p < 4096,
                "{backend}: {} grew by {p} KiB while the target was slow",
                ["-e", "-d"][i]
            );
        }
        case.finish();
        stop.store(true, Ordering::SeqCst);
        let _ = server.join();
    }
}

#[test]
fn slow_client_reader_does_not_stall_the_other_direction() {
    const LEN: usize = 4 << 20;
    for backend in backends() {
        let mut case = Case::start(backend, "slowc", &[], &[]);
        case.warm_up(8 << 20);
        let front = case.chain.front().clone();
        let mut c = front.connect().expect("connect");
        let mut w = c.try_clone().expect("clone");
        let payload = Arc::new(random_bytes(78, LEN));
        let p2 = payload.clone();
        let writer = thread::spawn(move || {
            let r = w.write_all(&p2);
            let _ = w.shutdown_write();
            r
        });
        // Read slowly: 64 KiB every 10 ms.
        c.set_read_timeout(Duration::from_secs(30))
            .expect("timeout");
        let done = AtomicBool::new(false);
        let mut got = Vec::with_capacity(LEN);
        let peak = thread::scope(|s| {
            let h = s.spawn(|| peak_growth(&case, &done, Duration::from_secs(120)));
            let mut buf = vec![0u8; 64 * 1024];
            let deadline = Instant::now() + Duration::from_secs(90);
            while Instant::now() < deadline {
                match c.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => got.extend_from_slice(&buf[..n]),
                }
                thread::sleep(Duration::from_millis(10));
            }
            done.store(true, Ordering::SeqCst);
            h.join().expect("sampler")
        });
        assert!(
            writer.join().expect("writer").is_ok(),
            "{backend}: write failed"
        );
        assert!(got == *payload, "{backend}: {} of {LEN} bytes", got.len());
        eprintln!(
            "slow client ({backend}): peak RSS growth -e {} KiB, -d {} KiB",
            peak[0], peak[1]
        );
        for p in peak {
            assert!(
                p < 4096,
                "{backend}: an end grew by {p} KiB behind a slow reader"
            );
        }
        case.finish();
    }
}

// ---------------------------------------------------------------------------------------------
// Group 4: integrity

#[test]
fn many_concurrent_streams_each_get_their_own_bytes() {
    let (n, len) = if heavy() {
        (256, 4 << 20)
    } else {
        (64, 256 * 1024)
    };
    for backend in backends() {
        let case = Case::start(backend, "many", &["-n", "0"], &["-n", "0"]);
        let front = case.chain.front().clone();
        let clients: Vec<_> = (0..n)
            .map(|i| {
                let front = front.clone();
                thread::spawn(move || {
                    // Different lengths and contents per connection, so cross-talk shows.
                    let payload = random_bytes(0x5100 + i as u64, len + i * 37);
                    let x = exchange_with(&front, &payload, Duration::from_secs(60))
                        .map_err(|e| format!("{i}: {e}"))?;
                    if x.end.is_eof() && x.received == payload {
                        Ok(())
                    } else {
                        Err(format!(
                            "{i}: {} of {} bytes",
                            x.received.len(),
                            payload.len()
                        ))
                    }
                })
            })
            .collect();
        let bad: Vec<String> = clients
            .into_iter()
            .filter_map(|c| c.join().unwrap_or_else(|_| Err("panic".into())).err())
            .collect();
        assert!(bad.is_empty(), "{backend}: {bad:?}; {}", case.logs());
        case.finish();
    }
}
