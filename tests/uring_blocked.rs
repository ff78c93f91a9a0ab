//! Where io_uring is blocked, the binary falls back to epoll by itself (issue 6).
//!
//! The test thread installs a seccomp filter that makes `io_uring_setup` fail with `EPERM`, as
//! Docker's default profile does (`spiperelay::os::seccomp::deny_io_uring_setup`). Seccomp
//! filters belong to the thread and are inherited by every process it starts, so the relays
//! this test spawns see io_uring blocked, while the other tests of this binary (each on its own
//! thread) are unaffected. Nothing global (no sysctl) is changed.

mod bin_common;

use std::path::Path;
use std::time::Duration;

use bin_common::{
    ChainSpec, Fam, TempDir, anon_inodes, args, fresh_addr, relay_bin, relay_is_ours, run_bounded,
    under_ci,
};
use spiperelay::io::uring::{self, SetupError};

const FALLBACK: &str = "using the epoll backend instead";

#[test]
fn falls_back_to_epoll_where_io_uring_is_blocked() {
    if !relay_is_ours() {
        eprintln!("SKIP: the fallback is spiperelay's own behaviour");
        return;
    }
    // The automatic fallback is what this checks; a forced backend (as when the suite is run
    // with SPIPERELAY_BACKEND=epoll) takes it out of play for the relays started here.
    if std::env::var(spiperelay::relay::daemon::BACKEND_ENV)
        .is_ok_and(|v| !v.is_empty() && !v.eq_ignore_ascii_case("auto"))
    {
        eprintln!("SKIP: the backend is forced by SPIPERELAY_BACKEND");
        return;
    }
    if let Err(e) = spiperelay::os::seccomp::deny_io_uring_setup() {
        assert!(!under_ci(), "cannot install a seccomp filter under CI: {e}");
        eprintln!("SKIP: cannot install a seccomp filter: {e}");
        return;
    }
    assert_eq!(
        uring::probe(),
        Err(SetupError::Blocked),
        "the filter must block io_uring"
    );

    let chain = ChainSpec::new("ublk", relay_bin(), relay_bin()).start();
    for (name, p) in [("enc", &chain.enc), ("dec", &chain.dec)] {
        let err = p.stderr();
        assert_eq!(
            err.lines().filter(|l| l.contains(FALLBACK)).count(),
            1,
            "{name}: expected one fallback line: {err:?}"
        );
        let line = err.lines().find(|l| l.contains(FALLBACK)).unwrap_or("");
        assert!(
            line.starts_with("spiperelay: ") && line.contains("EPERM") && line.contains("seccomp"),
            "{name}: the fallback line must name the cause: {line:?}"
        );
        // The event loop opens its driver just after the listener exists: wait (bounded).
        let mut kinds = anon_inodes(p.pid());
        for _ in 0..500 {
            if kinds.iter().any(|k| k == "[eventpoll]") {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
            kinds = anon_inodes(p.pid());
        }
        assert!(
            kinds.iter().any(|k| k == "[eventpoll]") && !kinds.iter().any(|k| k == "[io_uring]"),
            "{name}: not running on epoll: {kinds:?}"
        );
    }
    chain.check_payloads("ours -e -> ours -d with io_uring blocked");

    // Forcing io_uring where it is blocked is a startup error that names the cause.
    let dir = TempDir::new("ublkf");
    let key = dir.key("k");
    let mut a = args([
        "SPIPERELAY_BACKEND=uring".to_owned(),
        relay_bin().display().to_string(),
    ]);
    let src = fresh_addr(Fam::V4, &dir).spiped();
    a.extend(args(["-F", "-e", "-s", &src, "-t", "[127.0.0.1]:9", "-k"]));
    a.push(key.into());
    let out = run_bounded(Path::new("/usr/bin/env"), &a, b"", Duration::from_secs(10));
    assert_eq!(out.code(), Some(1), "{out:?}");
    assert!(
        out.stderr.starts_with("spiperelay: ")
            && out.stderr.contains("EPERM")
            && !out.stderr.contains(FALLBACK),
        "{:?}",
        out.stderr
    );
}
