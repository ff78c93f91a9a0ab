//! The binary on the epoll backend, forced with `SPIPERELAY_BACKEND=epoll` (issue 6): ours ↔
//! ours over TCP and Unix sockets, against the real spiped 1.6 in both directions, mixed with
//! our io_uring build, a late reply after a half-close, and a bad backend name. Payloads are
//! 0, 1, 1023, 1024, 1025 bytes and 1 MiB, each followed by a half-close.
//!
//! The forced backend is applied by a two-line `sh` wrapper that sets the variable and `exec`s
//! the binary (so the process id stays the relay's); every test here creates it through
//! [`epoll_bin`] before starting any process. Which backend a process runs is checked in its
//! `/proc/<pid>/fd`: an `anon_inode:[eventpoll]` descriptor, and no `anon_inode:[io_uring]`.
//! EMFILE survival on epoll lives in `daemon_limits.rs`, the automatic fallback where
//! io_uring is blocked in `uring_blocked.rs`.

mod bin_common;

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

use bin_common::{
    ChainSpec, Fam, Reply, TempDir, anon_inodes, args, have_spiped, random_bytes, relay_bin,
    relay_is_ours, run_bounded, spiped_bin,
};

/// The variable the binary reads (`spiperelay::relay::daemon::BACKEND_ENV`).
const BACKEND_ENV: &str = "SPIPERELAY_BACKEND";

/// A wrapper that runs the binary under test with the epoll backend forced.
///
/// Written once per test process, before any test of this file spawns a child: a child forked
/// while the script is still open for writing would make executing it fail with `ETXTBSY`.
fn epoll_bin() -> PathBuf {
    static WRAPPER: OnceLock<PathBuf> = OnceLock::new();
    WRAPPER
        .get_or_init(|| {
            let bin = relay_bin();
            let bin = bin.to_str().expect("utf-8 binary path");
            assert!(!bin.contains('\''), "binary path with a quote: {bin}");
            let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
                .join(format!("spiperelay-epoll-{}.sh", std::process::id()));
            std::fs::write(
                &path,
                format!("#!/bin/sh\n{BACKEND_ENV}=epoll exec '{bin}' \"$@\"\n"),
            )
            .expect("write wrapper");
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
                .expect("chmod wrapper");
            path
        })
        .clone()
}

fn assert_backend(pid: u32, epoll: bool, what: &str) {
    // With SPIPERELAY_BACKEND forcing a backend for the whole suite, the "default" binary runs
    // that backend too: only the payloads can be checked for it.
    if !epoll
        && std::env::var(BACKEND_ENV)
            .is_ok_and(|v| !v.is_empty() && !v.eq_ignore_ascii_case("auto"))
    {
        eprintln!("{what}: backend forced by SPIPERELAY_BACKEND; not checking for io_uring");
        return;
    }
    // The event loops open their driver just after the listening socket exists: wait for it
    // (bounded).
    let want = if epoll { "[eventpoll]" } else { "[io_uring]" };
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let mut kinds = anon_inodes(pid);
    while !kinds.iter().any(|x| x == want) && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
        kinds = anon_inodes(pid);
    }
    let has = |k: &str| kinds.iter().any(|x| x == k);
    if epoll {
        assert!(
            has("[eventpoll]") && !has("[io_uring]"),
            "{what}: expected the epoll backend, descriptors {kinds:?}"
        );
    } else {
        assert!(
            has("[io_uring]") && !has("[eventpoll]"),
            "{what}: expected the io_uring backend, descriptors {kinds:?}"
        );
    }
}

fn check_chain(tag: &str, fam: Fam, enc_epoll: bool, dec_epoll: bool, what: &str) {
    let bin = |epoll| if epoll { epoll_bin() } else { relay_bin() };
    let chain = ChainSpec::new(tag, bin(enc_epoll), bin(dec_epoll))
        .all(fam)
        .start();
    if relay_is_ours() {
        assert_backend(chain.enc.pid(), enc_epoll, what);
        assert_backend(chain.dec.pid(), dec_epoll, what);
    }
    chain.check_payloads(what);
}

#[test]
fn epoll_e_to_epoll_d_tcp4() {
    check_chain(
        "ee4",
        Fam::V4,
        true,
        true,
        "ours -e (epoll) -> ours -d (epoll), TCP",
    );
}

#[test]
fn epoll_e_to_epoll_d_unix() {
    check_chain(
        "eeu",
        Fam::Unix,
        true,
        true,
        "ours -e (epoll) -> ours -d (epoll), Unix",
    );
}

#[test]
fn epoll_e_to_uring_d_and_back() {
    check_chain(
        "eu4",
        Fam::V4,
        true,
        false,
        "ours -e (epoll) -> ours -d (io_uring)",
    );
    check_chain(
        "ue4",
        Fam::V4,
        false,
        true,
        "ours -e (io_uring) -> ours -d (epoll)",
    );
}

#[test]
fn epoll_e_to_spiped_d() {
    let bin = epoll_bin();
    if !have_spiped() {
        return;
    }
    ChainSpec::new("esd", bin, spiped_bin())
        .start()
        .check_payloads("ours -e (epoll) -> spiped -d");
}

#[test]
fn spiped_e_to_epoll_d() {
    let bin = epoll_bin();
    if !have_spiped() {
        return;
    }
    ChainSpec::new("sed", spiped_bin(), bin)
        .all(Fam::Unix)
        .start()
        .check_payloads("spiped -e -> ours -d (epoll), Unix");
}

#[test]
fn late_reply_after_half_close_on_epoll() {
    const LATE: Duration = Duration::from_secs(1);
    let mut spec = ChainSpec::new("elr", epoll_bin(), epoll_bin());
    spec.reply = Reply::AfterEof(LATE);
    let chain = spec.start();
    let payload = random_bytes(11, 3000);
    let x = chain.assert_echo(&payload, "late reply on epoll");
    assert!(
        x.elapsed >= LATE,
        "the echo server delays 1 s, but the reply came after {:?}",
        x.elapsed
    );
}

#[test]
fn unknown_backend_name_is_refused() {
    let _ = epoll_bin();
    if !relay_is_ours() {
        return;
    }
    let dir = TempDir::new("ebad");
    let key = dir.key("k");
    let mut a = args([
        format!("{BACKEND_ENV}=kqueue"),
        relay_bin().display().to_string(),
    ]);
    a.extend(args([
        "-F",
        "-e",
        "-s",
        "[127.0.0.1]:1",
        "-t",
        "[127.0.0.1]:2",
        "-k",
    ]));
    a.push(key.into());
    let out = run_bounded(
        std::path::Path::new("/usr/bin/env"),
        &a,
        b"",
        Duration::from_secs(10),
    );
    assert_eq!(out.code(), Some(1), "{out:?}");
    let err = &out.stderr;
    assert!(
        err.starts_with("spiperelay: ") && err.contains(BACKEND_ENV) && err.contains("kqueue"),
        "{err}"
    );
}

#[test]
fn bind_outgoing_connections_on_epoll() {
    if !relay_is_ours() {
        return;
    }
    let dir = TempDir::new("ep-bind");
    assert_eq!(
        bin_common::outgoing_source_ip(&dir, &epoll_bin(), "127.0.0.2:0"),
        Some("127.0.0.2".parse().expect("ip"))
    );
}
