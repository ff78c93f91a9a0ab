//! A Unix source path left behind by a relay that died without removing it (`SIGKILL`, a power
//! loss), black-box: the next relay on the same path finds nobody listening there, removes the
//! stale socket, says so, and serves; a path where another process listens makes the relay
//! refuse to start (exit 1, "another process is listening on PATH") without touching it; a
//! path that is not a socket (a regular file, a directory, a symlink) is never removed.
//!
//! spiped itself refuses every one of these with "Address already in use", so these checks run
//! only against our own binary ([`relay_is_ours`]). Relays run in the foreground and are
//! killed by PID when their handles drop.

mod bin_common;

use std::ffi::OsString;
use std::fs;
use std::os::unix::fs::FileTypeExt;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bin_common::{
    Addr, Echo, Fam, Output, Proc, Reply, TempDir, args, relay_bin, relay_is_ours, run_bounded,
};

/// Bound for a relay that should refuse to start at once.
const QUICK: Duration = Duration::from_secs(15);

/// `-F -d -s <path> -t <target> -k <key>`.
fn relay_args(path: &Path, target: &Addr, key: &Path) -> Vec<OsString> {
    let mut a = args(["-F", "-d", "-s"]);
    a.push(path.into());
    a.extend(args(["-t", &target.spiped(), "-k"]));
    a.push(key.into());
    a
}

/// Starts a foreground relay on the Unix path `path` and waits until it accepts there.
fn start_on(dir: &TempDir, name: &str, path: &Path, target: &Addr, key: &Path) -> Proc {
    let mut p =
        Proc::spawn(dir, name, &relay_bin(), &relay_args(path, target, key)).expect("spawn relay");
    let addr = Addr::Unix(path.to_path_buf());
    if let Err(e) = p.wait_listening(&addr) {
        panic!(
            "{name} did not start on {}: {e}; stderr: {}",
            path.display(),
            p.stderr()
        );
    }
    p.listen = Some(addr);
    p
}

/// Runs a relay on `path` that is expected to refuse to start.
fn run_refused(path: &Path, target: &Addr, key: &Path) -> Output {
    run_bounded(&relay_bin(), &relay_args(path, target, key), b"", QUICK)
}

/// One round trip through `relay` (listening on `path`) with our spipe client.
fn assert_roundtrip(relay: &Proc, path: &Path, key: &Path, what: &str) {
    let mut a = args(["spipe", "-t"]);
    a.push(path.into());
    a.push("-k".into());
    a.push(key.into());
    let out = run_bounded(&relay_bin(), &a, b"ping\n", QUICK);
    assert_eq!(
        out.code(),
        Some(0),
        "{what}: {out:?}; relay stderr: {}",
        relay.stderr()
    );
    assert_eq!(out.stdout, b"ping\n", "{what}");
}

fn is_socket(p: &Path) -> bool {
    fs::symlink_metadata(p).is_ok_and(|m| m.file_type().is_socket())
}

#[test]
fn restart_after_sigkill_replaces_the_stale_socket() {
    if !relay_is_ours() {
        return;
    }
    let dir = TempDir::new("stale-kill");
    let key = dir.key("key");
    let echo = Echo::start(Fam::V4, &dir, Reply::Stream);
    let path = dir.sock_path("src");
    let first = start_on(&dir, "first", &path, &echo.addr, &key);
    assert_roundtrip(&first, &path, &key, "first relay");
    // Dropping a Proc is SIGKILL + wait: no chance to remove the socket file.
    drop(first);
    assert!(is_socket(&path), "SIGKILL left the socket file behind");
    // With io_uring the kernel closes the killed relay's listener in a worker a moment after
    // the process is reaped, and until then connects still queue up (the relay's own check
    // waits that out). Wait until connects are refused, so that the readiness check below
    // cannot mistake the old listener for the new one.
    let refused = (0..500).any(|_| {
        let r = std::os::unix::net::UnixStream::connect(&path);
        if matches!(&r, Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
        false
    });
    assert!(refused, "the killed relay's listener never closed");

    let second = start_on(&dir, "second", &path, &echo.addr, &key);
    assert_roundtrip(&second, &path, &key, "restarted relay");
    let log = second.stderr();
    assert!(
        log.contains(&format!("removed stale socket {}", path.display())),
        "the removal is logged: {log:?}"
    );
}

#[test]
fn another_listener_on_the_path_refuses_the_start() {
    if !relay_is_ours() {
        return;
    }
    let dir = TempDir::new("stale-live");
    let key = dir.key("key");
    let echo = Echo::start(Fam::V4, &dir, Reply::Stream);

    // Another relay listening there.
    let path = dir.sock_path("src");
    let first = start_on(&dir, "first", &path, &echo.addr, &key);
    let out = run_refused(&path, &echo.addr, &key);
    assert_eq!(out.code(), Some(1), "second relay on a live path: {out:?}");
    let msg = format!("another process is listening on {}", path.display());
    assert!(out.stderr.contains(&msg), "{:?}", out.stderr);
    assert_roundtrip(&first, &path, &key, "the first relay still serves");

    // Any other process listening there (not a relay).
    let other = dir.sock_path("other");
    let listener = UnixListener::bind(&other).expect("bind");
    let out = run_refused(&other, &echo.addr, &key);
    assert_eq!(
        out.code(),
        Some(1),
        "relay on another program's socket: {out:?}"
    );
    let msg = format!("another process is listening on {}", other.display());
    assert!(out.stderr.contains(&msg), "{:?}", out.stderr);
    assert!(
        is_socket(&other),
        "the other program's socket is still there"
    );
    drop(listener);
}

#[test]
fn a_path_that_is_not_a_socket_is_never_removed() {
    if !relay_is_ours() {
        return;
    }
    let dir = TempDir::new("stale-file");
    let key = dir.key("key");
    let echo = Echo::start(Fam::V4, &dir, Reply::Stream);

    let file = dir.join("regular.sock");
    fs::write(&file, b"not a socket").expect("write");
    let subdir = dir.join("dir.sock");
    fs::create_dir(&subdir).expect("mkdir");
    // A symlink to a stale socket: the link itself is not a socket.
    let target = dir.sock_path("target");
    drop(UnixListener::bind(&target).expect("bind"));
    let link = dir.join("link.sock");
    std::os::unix::fs::symlink(&target, &link).expect("symlink");

    let cases: [(&str, &PathBuf); 3] = [
        ("regular file", &file),
        ("directory", &subdir),
        ("symlink", &link),
    ];
    for (what, path) in cases {
        let out = run_refused(path, &echo.addr, &key);
        assert_eq!(out.code(), Some(1), "{what}: {out:?}");
        assert!(
            out.stderr
                .contains(&format!("{} exists and is not a socket", path.display())),
            "{what}: {:?}",
            out.stderr
        );
    }
    assert_eq!(fs::read(&file).expect("file kept"), b"not a socket");
    assert!(subdir.is_dir(), "directory kept");
    assert!(
        fs::symlink_metadata(&link).expect("link kept").is_symlink(),
        "symlink kept"
    );
    assert!(is_socket(&target), "the symlink's target kept");
}
