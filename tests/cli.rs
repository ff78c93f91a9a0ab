//! Black-box tests of the relay binary's command line (spec §3): exit codes, plus a loose
//! substring where spiped 1.6.2's wording is specified. spiperelay words some errors its own
//! way; checks of our own wording (the key file or address named on one line) run only when
//! the binary is ours (no `SPIPERELAY_TEST_BIN` override). Every run is bounded (10 s).

mod bin_common;

use std::ffi::OsString;
use std::net::TcpListener;
use std::time::Duration;

use bin_common::{Output, Proc, TempDir, args, relay_bin, relay_is_ours, run_bounded};

const BOUND: Duration = Duration::from_secs(10);

fn run(a: &[OsString]) -> Output {
    run_bounded(&relay_bin(), a, b"", BOUND)
}

fn assert_exit1(out: &Output, what: &str) {
    assert_eq!(out.code(), Some(1), "{what}: {out:?}");
}

/// The start of spiped's usage text (spec §3.1); spiperelay prints the same text.
fn assert_usage(out: &Output, what: &str) {
    assert!(
        out.stderr.contains("usage:") && out.stderr.contains("{-e | -d} -s <source socket>"),
        "{what}: no usage text in {:?}",
        out.stderr
    );
}

/// An argument list for `-F -e -s SRC -t DST -k KEY` plus `extra`.
fn e_args(src: &str, dst: &str, key: &std::path::Path, extra: &[&str]) -> Vec<OsString> {
    let mut a = args(["-F", "-e", "-s", src, "-t", dst, "-k"]);
    a.push(key.into());
    a.extend(extra.iter().map(OsString::from));
    a
}

fn nonempty_lines(s: &str) -> Vec<&str> {
    s.lines().filter(|l| !l.trim().is_empty()).collect()
}

#[test]
fn version_exits_zero() {
    let out = run(&args(["-v"]));
    assert_eq!(out.code(), Some(0), "-v: {out:?}");
}

#[test]
fn illegal_option_prints_usage() {
    let out = run(&args(["-x"]));
    assert_exit1(&out, "-x");
    assert!(
        out.stderr.contains("illegal option -- -x"),
        "-x: {:?}",
        out.stderr
    );
    assert_usage(&out, "-x");
}

#[test]
fn missing_argument_is_named() {
    let out = run(&args(["-e", "-s"]));
    assert_exit1(&out, "-e -s");
    assert!(
        out.stderr.contains("Missing argument to -s"),
        "-e -s: {:?}",
        out.stderr
    );
    assert_usage(&out, "-e -s");
}

#[test]
fn missing_key_prints_usage() {
    let out = run(&args([
        "-F",
        "-e",
        "-s",
        "[127.0.0.1]:8025",
        "-t",
        "[127.0.0.1]:8026",
    ]));
    assert_exit1(&out, "no -k");
    assert_usage(&out, "no -k");
}

#[test]
fn f_with_g_prints_usage() {
    let dir = TempDir::new("cli-fg");
    let key = dir.key("key");
    let out = run(&e_args(
        "[127.0.0.1]:8025",
        "[127.0.0.1]:8026",
        &key,
        &["-f", "-g"],
    ));
    assert_exit1(&out, "-f -g");
    assert_usage(&out, "-f -g");
}

#[test]
fn unreadable_key_file() {
    let dir = TempDir::new("cli-key");
    let src = bin_common::fresh_addr(bin_common::Fam::V4, &dir).spiped();
    for key in [dir.join("no-such-key"), dir.path().to_path_buf()] {
        let out = run(&e_args(&src, "[127.0.0.1]:8026", &key, &[]));
        let what = format!("-k {}", key.display());
        assert_exit1(&out, &what);
        let name = key.display().to_string();
        assert!(out.stderr.contains(&name), "{what}: {:?}", out.stderr);
        if relay_is_ours() {
            assert_eq!(
                nonempty_lines(&out.stderr).len(),
                1,
                "{what}: want one line: {:?}",
                out.stderr
            );
        }
    }
}

#[test]
fn key_file_rules_at_startup() {
    // The same rules as a reload or a rotation: only regular files; a FIFO is refused at once
    // (never waited on), a device too; each message names the path and what it is.
    if !relay_is_ours() {
        return;
    }
    let dir = TempDir::new("cli-keyrules");
    let src = bin_common::fresh_addr(bin_common::Fam::V4, &dir).spiped();
    let fifo = dir.join("fifo.key");
    let made = std::process::Command::new("mkfifo").arg(&fifo).status();
    assert!(made.is_ok_and(|s| s.success()), "mkfifo");
    let cases = [
        (fifo.clone(), "is a FIFO, not a regular file"),
        (
            "/dev/null".into(),
            "is a character device, not a regular file",
        ),
        (
            dir.path().to_path_buf(),
            "is a directory, not a regular file",
        ),
        (dir.join("no-such-key"), "No such file or directory"),
    ];
    for (key, msg) in cases {
        let started = std::time::Instant::now();
        let out = run(&e_args(&src, "[127.0.0.1]:8026", &key, &[]));
        let what = format!("-k {}", key.display());
        assert_exit1(&out, &what);
        assert!(
            out.stderr.contains(&key.display().to_string()) && out.stderr.contains(msg),
            "{what}: {:?}",
            out.stderr
        );
        assert!(started.elapsed() < BOUND, "{what}: blocked");
    }
}

#[test]
fn tcp_address_in_use() {
    let dir = TempDir::new("cli-inuse");
    let key = dir.key("key");
    let busy = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = busy.local_addr().unwrap().port();
    let src = format!("[127.0.0.1]:{port}");
    let out = run(&e_args(&src, "[127.0.0.1]:8026", &key, &[]));
    assert_exit1(&out, "address in use");
    assert!(
        out.stderr.to_lowercase().contains("in use"),
        "address in use: {:?}",
        out.stderr
    );
    if relay_is_ours() {
        assert!(
            out.stderr.contains(&src),
            "address in use: the address is not named: {:?}",
            out.stderr
        );
    }
}

#[test]
fn unix_address_in_use() {
    // spiped neither unlinks an existing socket path nor binds over it (spec §3.1). We take
    // over only a stale socket (tests/stale_socket.rs); a live listener refuses the start.
    let dir = TempDir::new("cli-uinuse");
    let key = dir.key("key");
    let path = dir.join("taken.sock");
    let _busy = std::os::unix::net::UnixListener::bind(&path).expect("bind unix");
    let src = path.display().to_string();
    let out = run(&e_args(&src, "[127.0.0.1]:8026", &key, &[]));
    assert_exit1(&out, "unix address in use");
    if relay_is_ours() {
        assert!(
            out.stderr
                .contains(&format!("another process is listening on {src}")),
            "{:?}",
            out.stderr
        );
    } else {
        assert!(
            out.stderr.to_lowercase().contains("in use"),
            "unix address in use: {:?}",
            out.stderr
        );
    }
}

#[test]
fn unix_directory_missing() {
    let dir = TempDir::new("cli-udir");
    let key = dir.key("key");
    let src = dir.join("no-such-dir/x.sock").display().to_string();
    let out = run(&e_args(&src, "[127.0.0.1]:8026", &key, &[]));
    assert_exit1(&out, "missing unix directory");
    assert!(!out.stderr.trim().is_empty(), "no message: {out:?}");
}

#[test]
fn unix_path_longer_than_sun_path() {
    let dir = TempDir::new("cli-ulong");
    let key = dir.key("key");
    // sun_path is 108 bytes on Linux, including the terminating NUL.
    let long = format!("{}/{}.sock", dir.path().display(), "a".repeat(120));
    let out = run(&e_args(&long, "[127.0.0.1]:8026", &key, &[]));
    assert_exit1(&out, "long unix path");
    assert!(!out.stderr.trim().is_empty(), "no message: {out:?}");
}

#[test]
fn relative_unix_path_rejected() {
    let dir = TempDir::new("cli-urel");
    let key = dir.key("key");
    let out = run(&e_args("rel/x.sock", "[127.0.0.1]:8026", &key, &[]));
    assert_exit1(&out, "relative unix path");
    assert!(
        out.stderr.contains("Address must contain port number"),
        "{:?}",
        out.stderr
    );
}

#[test]
fn port_zero_rejected() {
    let dir = TempDir::new("cli-p0");
    let key = dir.key("key");
    let out = run(&e_args("[127.0.0.1]:0", "[127.0.0.1]:8026", &key, &[]));
    assert_exit1(&out, "port 0");
    assert!(
        out.stderr.contains("Invalid port number"),
        "{:?}",
        out.stderr
    );
}

#[test]
fn timeout_zero_accepted() {
    // `-o 0` means the default of 5 s (spec §3.1): the relay starts and listens.
    let dir = TempDir::new("cli-o0");
    let key = dir.key("key");
    let p = Proc::start_listening(&dir, "o0", &relay_bin(), bin_common::Fam::V4, |src| {
        e_args(src, "[127.0.0.1]:8026", &key, &["-o", "0"])
    });
    assert!(p.listen.is_some());
}

#[test]
fn negative_timeout_rejected() {
    let dir = TempDir::new("cli-oneg");
    let key = dir.key("key");
    let out = run(&e_args(
        "[127.0.0.1]:8025",
        "[127.0.0.1]:8026",
        &key,
        &["-o", "-1"],
    ));
    assert_exit1(&out, "-o -1");
}
