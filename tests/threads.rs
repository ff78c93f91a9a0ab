//! `--threads N` (issue 6), black-box: payloads with a half-close through `--threads 2` ends,
//! ours ↔ ours and against the real spiped 1.6 on both sides; `-n 2 --threads 2` with three
//! clients (exact globally: each loop takes one, the third waits until one closes); a
//! `SIGTERM` drain with a connection open on each loop; a `SIGHUP` key reload seen by new
//! connections on both loops; bad `--threads` values.
//!
//! With `-n 2 --threads 2` each loop may hold one connection, so two connections open at once
//! are necessarily on different loops: that is how these tests reach both threads.

mod bin_common;

use std::io::{Read, Write};
use std::process::Command;
use std::thread;
use std::time::Duration;

use bin_common::{
    ChainSpec, Conn, Echo, Fam, Proc, Reply, TempDir, args, assert_refused, assert_same,
    have_spiped, relay_bin, relay_is_ours, run_bounded, silent_for, spiped_bin, start_end,
};

/// How long the bounded waits below wait at most.
const WAIT: Duration = Duration::from_secs(10);

fn skip_unless_ours() -> bool {
    if relay_is_ours() {
        return false;
    }
    eprintln!("SKIP: --threads is a spiperelay option");
    true
}

/// Requires `loops` event-loop threads besides the main one, the supervisor (they start just
/// after the listening socket exists, so this waits for them, bounded). Distinct names are
/// counted: a thread a loop is just spawning briefly carries its name too.
fn assert_loops(p: &Proc, loops: usize) {
    let count = || {
        bin_common::thread_names(p.pid())
            .into_iter()
            .filter(|n| n.starts_with("relay-loop"))
            .collect::<std::collections::BTreeSet<_>>()
            .len()
    };
    wait_for(|| count() == loops);
    let names = bin_common::thread_names(p.pid());
    assert_eq!(count(), loops, "{}: threads {names:?}", p.name);
    // One key-pair pool (and its worker thread) per exchange kind for the whole process.
    let pools = names.iter().filter(|n| *n == "spiperelay-keys").count();
    assert!(
        pools <= 1,
        "{}: {pools} key-pair pool threads: {names:?}",
        p.name
    );
}

/// Writes `msg` on `c` and requires it echoed within [`WAIT`].
fn echo_on(c: &mut Conn, msg: &[u8], what: &str) {
    c.write_all(msg)
        .unwrap_or_else(|e| panic!("{what}: write: {e}"));
    c.set_read_timeout(WAIT).expect("timeout");
    let mut got = vec![0u8; msg.len()];
    c.read_exact(&mut got)
        .unwrap_or_else(|e| panic!("{what}: read: {e}"));
    assert_eq!(got, msg, "{what}");
}

/// Half-closes `c` after sending `msg`, and requires exactly `msg` back, then EOF.
fn finish(mut c: Conn, msg: &[u8], what: &str) {
    c.write_all(msg)
        .unwrap_or_else(|e| panic!("{what}: write: {e}"));
    c.shutdown_write().expect("shutdown");
    c.set_read_timeout(WAIT).expect("timeout");
    let mut rest = Vec::new();
    c.read_to_end(&mut rest)
        .unwrap_or_else(|e| panic!("{what}: read: {e}"));
    assert_same(&rest, msg, what);
}

fn kill(sig: &str, p: &Proc) {
    let st = Command::new("kill")
        .args([sig, &p.pid().to_string()])
        .status()
        .expect("run kill");
    assert!(st.success(), "kill {sig} failed");
}

/// Polls (bounded by [`WAIT`]) until `cond` holds; returns whether it did.
fn wait_for(cond: impl FnMut() -> bool) -> bool {
    bin_common::wait_until(WAIT, cond)
}

/// Payloads through the chain, first on any loop, then with one connection held open on the
/// `-n 2 --threads 2` end so that they must go through its other loop.
fn payloads_on_both_loops(
    tag: &str,
    enc: std::path::PathBuf,
    dec: std::path::PathBuf,
    ours_enc: bool,
    fam: Fam,
) {
    let flags: &[&str] = &["--threads", "2", "-n", "2"];
    let mut spec = ChainSpec::new(tag, enc, dec).all(fam);
    if ours_enc {
        spec.enc_flags = flags;
    } else {
        spec.dec_flags = flags;
    }
    let chain = spec.start();
    let ours = if ours_enc { &chain.enc } else { &chain.dec };
    assert_loops(ours, 2);
    chain.check_payloads(&format!("{tag}, any loop"));
    let mut held = chain.front().connect().expect("held connection");
    echo_on(&mut held, b"held", &format!("{tag}: held connection"));
    chain.check_payloads(&format!("{tag}, the other loop"));
    finish(held, b"bye", &format!("{tag}: held connection"));
}

#[test]
fn ours_to_ours_with_threads_tcp() {
    if skip_unless_ours() {
        return;
    }
    payloads_on_both_loops("th-oo4", relay_bin(), relay_bin(), true, Fam::V4);
    payloads_on_both_loops("th-oo4d", relay_bin(), relay_bin(), false, Fam::V4);
}

#[test]
fn ours_to_ours_with_threads_unix() {
    if skip_unless_ours() {
        return;
    }
    payloads_on_both_loops("th-oou", relay_bin(), relay_bin(), true, Fam::Unix);
    payloads_on_both_loops("th-oooud", relay_bin(), relay_bin(), false, Fam::Unix);
}

#[test]
fn threads_against_real_spiped() {
    if skip_unless_ours() || !have_spiped() {
        return;
    }
    payloads_on_both_loops("th-os", relay_bin(), spiped_bin(), true, Fam::V4);
    payloads_on_both_loops("th-so", spiped_bin(), relay_bin(), false, Fam::V4);
}

#[test]
fn conn_limit_is_exact_across_threads() {
    if skip_unless_ours() {
        return;
    }
    let mut spec = ChainSpec::new("th-n2", relay_bin(), relay_bin());
    spec.enc_flags = &["--threads", "2", "-n", "2"];
    let chain = spec.start();
    let front = chain.front();
    let mut c1 = front.connect().expect("c1");
    echo_on(&mut c1, b"1", "c1");
    let mut c2 = front.connect().expect("c2");
    echo_on(&mut c2, b"2", "c2");
    let mut c3 = front.connect().expect("c3");
    c3.write_all(b"3").expect("c3 write");
    assert!(
        silent_for(&mut c3, Duration::from_millis(1500)),
        "third client served despite -n 2 --threads 2; {}",
        chain.logs()
    );
    drop(c1);
    c3.set_read_timeout(WAIT).expect("timeout");
    let mut b = [0u8; 1];
    c3.read_exact(&mut b).expect("c3 served after c1 closed");
    assert_eq!(&b, b"3");
    echo_on(&mut c2, b"x", "c2 still served");
    finish(c3, b"end", "c3");
    finish(c2, b"end", "c2");
}

#[test]
fn sigterm_drains_connections_on_every_thread() {
    if skip_unless_ours() {
        return;
    }
    let mut spec = ChainSpec::new("th-term", relay_bin(), relay_bin());
    spec.enc_flags = &["--threads", "2", "-n", "2"];
    let mut chain = spec.start();
    // -n 2 over two loops: one connection on each.
    let mut c1 = chain.front().connect().expect("c1");
    echo_on(&mut c1, b"one", "c1");
    let mut c2 = chain.front().connect().expect("c2");
    echo_on(&mut c2, b"two", "c2");
    kill("-TERM", &chain.enc);
    assert!(
        wait_for(|| chain
            .enc
            .stderr()
            .contains("SIGTERM: no longer accepting; exiting after the last of 2 open")),
        "the drain is announced once, counting both loops' connections: {}",
        chain.enc.stderr()
    );
    assert!(
        chain.enc.try_exit().is_none(),
        "exited with connections open"
    );
    finish(c1, b"after SIGTERM 1", "c1 after SIGTERM");
    thread::sleep(Duration::from_millis(600));
    assert!(
        chain.enc.try_exit().is_none(),
        "exited with a connection open on the other loop"
    );
    finish(c2, b"after SIGTERM 2", "c2 after SIGTERM");
    let mut status = None;
    assert!(
        wait_for(|| {
            status = chain.enc.try_exit();
            status.is_some()
        }),
        "no exit after the last connection: {}",
        chain.enc.stderr()
    );
    assert!(
        status.is_some_and(|s| s.success()),
        "exit status {status:?}"
    );
}

#[test]
fn sigint_exits_at_once_with_threads() {
    if skip_unless_ours() {
        return;
    }
    let mut spec = ChainSpec::new("th-int", relay_bin(), relay_bin());
    spec.enc_flags = &["--threads", "3"];
    let mut chain = spec.start();
    assert_loops(&chain.enc, 3);
    let mut c1 = chain.front().connect().expect("c1");
    echo_on(&mut c1, b"one", "c1");
    kill("-INT", &chain.enc);
    let mut status = None;
    assert!(
        wait_for(|| {
            status = chain.enc.try_exit();
            status.is_some()
        }),
        "no exit after SIGINT: {}",
        chain.enc.stderr()
    );
    assert!(
        status.is_some_and(|s| s.success()),
        "exit status {status:?}"
    );
}

#[test]
fn sighup_reload_reaches_every_thread() {
    if skip_unless_ours() {
        return;
    }
    let dir = TempDir::new("th-hup");
    let key_a = dir.key("key_a");
    let key_b = dir.key("key_b");
    // The -d end reads its key from this file, holding A at start and B after the reload.
    let live = dir.join("live_key");
    std::fs::copy(&key_a, &live).expect("copy key");
    let echo = Echo::start(Fam::V4, &dir, Reply::Stream);
    let dec = start_end(
        &dir,
        "dec",
        &relay_bin(),
        "-d",
        Fam::V4,
        &echo.addr,
        &live,
        &["--threads", "2", "-n", "2"],
    );
    assert_loops(&dec, 2);
    let enc_a = start_end(
        &dir,
        "enc_a",
        &relay_bin(),
        "-e",
        Fam::V4,
        dec.addr(),
        &key_a,
        &[],
    );
    let enc_b = start_end(
        &dir,
        "enc_b",
        &relay_bin(),
        "-e",
        Fam::V4,
        dec.addr(),
        &key_b,
        &[],
    );
    let mut a = enc_a.addr().connect().expect("a");
    echo_on(&mut a, b"key a", "key A before the reload");
    drop(a);
    assert_refused(enc_b.addr(), "key B before the reload");

    std::fs::copy(&key_b, &live).expect("copy key");
    kill("-HUP", &dec);
    assert!(
        wait_for(|| dec.stderr().contains("SIGHUP: reloaded the key files")),
        "no reload: {}",
        dec.stderr()
    );
    // Two connections at once with key B: one on each loop.
    let mut b1 = enc_b.addr().connect().expect("b1");
    echo_on(&mut b1, b"key b, first loop", "key B after the reload (b1)");
    let mut b2 = enc_b.addr().connect().expect("b2");
    echo_on(
        &mut b2,
        b"key b, second loop",
        "key B after the reload (b2)",
    );
    finish(b1, b"done", "b1");
    finish(b2, b"done", "b2");
    assert_refused(enc_a.addr(), "key A after the reload");
}

#[test]
fn bad_thread_counts_are_refused() {
    if skip_unless_ours() {
        return;
    }
    let dir = TempDir::new("th-bad");
    let key = dir.key("key");
    for bad in ["0", "65", "-1", "two", "", "1.5"] {
        let threads = format!("--threads={bad}");
        let key = key.to_str().expect("utf-8 path");
        let a = args([
            "-e",
            "-F",
            "-s",
            "[127.0.0.1]:1",
            "-t",
            "[127.0.0.1]:2",
            "-k",
            key,
            &threads,
        ]);
        let out = run_bounded(&relay_bin(), &a, b"", WAIT);
        assert_eq!(out.code(), Some(1), "--threads={bad}: {out:?}");
        let err = &out.stderr;
        assert!(
            err.contains(&format!("--threads {bad}: must be a number from 1 to 64")),
            "--threads={bad}: {err}"
        );
    }
}

/// `/proc/PID/task/PID/status` field `name` of the main thread (the supervisor), as a number.
fn main_thread_status(pid: u32, name: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/status"))
        .expect("main thread status");
    status
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name} in {status}"))
}

/// Clock ticks (utime + stime) the main thread has used.
fn main_thread_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/stat")).expect("stat");
    let rest = &stat[stat.rfind(')').expect("stat format") + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    f[11].parse::<u64>().expect("utime") + f[12].parse::<u64>().expect("stime")
}

/// Without a control socket nothing ever reaches the supervisor's request channel: the
/// supervisor must still sleep between its ticks, not spin on the closed channel. A sleeping
/// thread switches out voluntarily at every tick (tens of times a second); a spinning one
/// never does, however loaded the machine is, and burns a core while the relay is idle.
#[test]
fn idle_supervisor_without_control_socket_sleeps() {
    if skip_unless_ours() {
        return;
    }
    let spec = ChainSpec::new("th-idle", relay_bin(), relay_bin());
    let chain = spec.start();
    assert_loops(&chain.enc, 1);
    chain.check_payloads("th-idle");
    let pid = chain.enc.pid();
    let (switches, ticks) = (
        main_thread_status(pid, "voluntary_ctxt_switches"),
        main_thread_ticks(pid),
    );
    thread::sleep(Duration::from_secs(2));
    let switches = main_thread_status(pid, "voluntary_ctxt_switches") - switches;
    let ticks = main_thread_ticks(pid) - ticks;
    assert!(
        switches >= 3,
        "the supervisor slept {switches} times in 2 s (it spins); CPU {ticks} ticks"
    );
    assert!(
        ticks < 100,
        "the idle supervisor used {ticks} clock ticks (1/100 s) of CPU in 2 s"
    );
}
