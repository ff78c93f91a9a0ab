//! The daemon's process life and the binary's other commands (issue 5), black-box:
//! daemonising after bind with the parent exiting once the pidfile is written, startup errors
//! reaching the shell (address in use, bad `-u` user, unwritable pidfile directory), `-D`,
//! `-u` as root, `-b`, `-r` with `-R`, `keygen`, the drop-in names made by
//! `scripts/install.sh --prefix DIR --links`, and `--help` / unknown commands.
//!
//! Daemons started without `-F` are stopped by the PID in their pidfile (processes these
//! tests started), with SIGTERM and then SIGKILL.

mod bin_common;

use std::ffi::OsString;
use std::fs;
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use bin_common::{
    Echo, Fam, Output, Reply, TempDir, args, have_spiped, relay_bin, relay_is_ours, run_bounded,
    spiped_bin, start_end,
};
use sha2::{Digest, Sha256};

/// Bound for a command that should finish at once (startup errors, keygen, a daemon's parent).
const QUICK: Duration = Duration::from_secs(15);

fn run(a: &[OsString]) -> Output {
    run_bounded(&relay_bin(), a, b"", QUICK)
}

fn assert_exit(out: &Output, code: i32, what: &str) {
    assert_eq!(out.code(), Some(code), "{what}: {out:?}");
}

/// A daemon known by its pidfile; stopped (SIGTERM, then SIGKILL) on drop.
struct Daemon {
    pidfile: PathBuf,
}

impl Daemon {
    fn pid(&self) -> Option<u32> {
        fs::read_to_string(&self.pidfile).ok()?.trim().parse().ok()
    }

    fn alive(&self) -> bool {
        self.pid().is_some_and(|pid| {
            fs::read_to_string(format!("/proc/{pid}/stat"))
                // Field 3 is the state; a zombie (Z) or dead (X) process no longer runs.
                .map(|s| {
                    let state = s.rsplit(')').next().unwrap_or("").trim_start();
                    !state.starts_with('Z') && !state.starts_with('X')
                })
                .unwrap_or(false)
        })
    }

    /// `/proc/PID/status` field `name` (e.g. `Uid`), first value.
    fn status_field(&self, name: &str) -> Option<String> {
        let pid = self.pid()?;
        let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        status
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name}:")))
            .and_then(|v| v.split_whitespace().next().map(str::to_owned))
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let Some(pid) = self.pid() else { return };
        for sig in ["-TERM", "-KILL"] {
            if !self.alive() {
                return;
            }
            let _ = Command::new("kill").args([sig, &pid.to_string()]).status();
            for _ in 0..100 {
                if !self.alive() {
                    return;
                }
                thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

/// `-d -s <fresh> -t <target> -k <key> -p <pidfile>` plus `extra`, without `-F`.
fn daemon_args(
    src: &str,
    target: &str,
    key: &Path,
    pidfile: &Path,
    extra: &[&str],
) -> Vec<OsString> {
    let mut a = args(["-d", "-s", src, "-t", target]);
    a.push("-k".into());
    a.push(key.into());
    a.push("-p".into());
    a.push(pidfile.into());
    a.extend(extra.iter().map(OsString::from));
    a
}

/// One round trip through `front` with our spipe (or the real one when validating).
fn roundtrip(front: &str, key: &Path) -> Output {
    let mut a = args(["spipe", "-t", front]);
    a.push("-k".into());
    a.push(key.into());
    run_bounded(&relay_bin(), &a, b"ping\n", QUICK)
}

/// [`roundtrip`] succeeds and echoes `ping`.
fn assert_roundtrip(front: &str, key: &Path, what: &str) {
    let rt = roundtrip(front, key);
    assert_exit(&rt, 0, what);
    assert_eq!(rt.stdout, b"ping\n", "{what}");
}

#[test]
fn daemonises_after_bind_and_parent_waits_for_pidfile() {
    if !relay_is_ours() {
        return;
    }
    let dir = TempDir::new("dm-daemon");
    let key = dir.key("key");
    let echo = Echo::start(Fam::V4, &dir, Reply::Stream);
    let src = bin_common::fresh_addr(Fam::V4, &dir).spiped();
    let pidfile = dir.join("d.pid");
    let out = run(&daemon_args(&src, &echo.addr.spiped(), &key, &pidfile, &[]));
    let daemon = Daemon {
        pidfile: pidfile.clone(),
    };
    assert_exit(&out, 0, "daemon parent");
    // The parent exits only after the pidfile is written, and the daemon is already serving.
    let pid = daemon
        .pid()
        .expect("pidfile written before the parent exited");
    assert!(daemon.alive(), "daemon {pid} not running");
    assert_roundtrip(&src, &key, "round trip through the daemon");
    // A session of its own (setsid), as spiped.
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    assert_eq!(
        fields.get(3),
        Some(&pid.to_string().as_str()),
        "sid of {stat:?}"
    );
}

#[test]
fn startup_errors_reach_the_shell_without_f() {
    let dir = TempDir::new("dm-errors");
    let key = dir.key("key");
    let taken = TcpListener::bind("127.0.0.1:0").expect("bind");
    let taken_addr = format!("[127.0.0.1]:{}", taken.local_addr().expect("addr").port());
    let free = bin_common::fresh_addr(Fam::V4, &dir).spiped();

    // Address in use: bind happens before the fork.
    let pid1 = dir.join("inuse.pid");
    let out = run(&daemon_args(&taken_addr, "[127.0.0.1]:9", &key, &pid1, &[]));
    assert_exit(&out, 1, "address in use");
    assert!(!pid1.exists(), "pidfile written although startup failed");

    // A pidfile in a directory that does not exist.
    let pid2 = dir.join("no-such-dir/x.pid");
    let out = run(&daemon_args(&free, "[127.0.0.1]:9", &key, &pid2, &[]));
    assert_exit(&out, 1, "unwritable pidfile directory");
    if relay_is_ours() {
        assert!(out.stderr.contains("pidfile"), "{:?}", out.stderr);
    }
    thread::sleep(Duration::from_millis(200));
    let port = free
        .rsplit(':')
        .next()
        .and_then(|p| p.parse::<u16>().ok())
        .expect("port");
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "a daemon kept listening although its pidfile could not be written"
    );

    // A user that does not exist: we look it up before forking, so the shell sees exit 1
    // (spiped 1.6.2 looks it up in the child after its parent exited 0).
    if relay_is_ours() {
        let pid3 = dir.join("user.pid");
        let out = run(&daemon_args(
            &free,
            "[127.0.0.1]:9",
            &key,
            &pid3,
            &["-u", "no-such-user-spiperelay"],
        ));
        assert_exit(&out, 1, "bad -u user");
        assert!(!pid3.exists(), "pidfile written for a bad user");
        assert!(
            out.stderr.contains("no-such-user-spiperelay"),
            "{:?}",
            out.stderr
        );
        let out = run(&daemon_args(
            &free,
            "[127.0.0.1]:9",
            &key,
            &pid3,
            &["-u", ":no-such-group-x"],
        ));
        assert_exit(&out, 1, "bad -u group");
    }

    // Key file missing, or a directory.
    for k in [dir.join("missing-key"), dir.path().to_path_buf()] {
        let pid4 = dir.join("key.pid");
        let out = run(&daemon_args(&free, "[127.0.0.1]:9", &k, &pid4, &[]));
        assert_exit(&out, 1, &format!("-k {}", k.display()));
        assert!(!pid4.exists());
    }
}

#[test]
fn switches_user_and_group_as_root() {
    if !relay_is_ours() {
        return;
    }
    let is_root = fs::read_to_string("/proc/self/status")
        .map(|s| s.lines().any(|l| l.starts_with("Uid:\t0\t")))
        .unwrap_or(false);
    let ids = |name: &str| {
        Command::new("getent")
            .args(["passwd", name])
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
    };
    let Some(nobody) = ids("nobody").filter(|_| is_root) else {
        eprintln!("SKIP: needs root and a user nobody");
        return;
    };
    let fields: Vec<&str> = nobody.trim().split(':').collect();
    let (uid, gid) = (fields[2].to_owned(), fields[3].to_owned());
    let dir = TempDir::new("dm-user");
    // The daemon reads the key as root, before switching: keep it 0600 root.
    let key = dir.key("key");
    let echo = Echo::start(Fam::V4, &dir, Reply::Stream);
    for (spec, want_uid, want_gid) in [
        ("nobody".to_owned(), uid.clone(), gid.clone()),
        (format!("nobody:{gid}"), uid.clone(), gid.clone()),
        (format!(":{gid}"), "0".to_owned(), gid.clone()),
    ] {
        let src = bin_common::fresh_addr(Fam::V4, &dir).spiped();
        let pidfile = dir.join("u.pid");
        let _ = fs::remove_file(&pidfile);
        let out = run(&daemon_args(
            &src,
            &echo.addr.spiped(),
            &key,
            &pidfile,
            &["-u", &spec],
        ));
        let daemon = Daemon {
            pidfile: pidfile.clone(),
        };
        assert_exit(&out, 0, &format!("-u {spec}"));
        assert_eq!(daemon.status_field("Uid"), Some(want_uid), "-u {spec}: uid");
        assert_eq!(
            daemon.status_field("Gid"),
            Some(want_gid.clone()),
            "-u {spec}: gid"
        );
        assert_eq!(
            daemon.status_field("Groups"),
            Some(want_gid),
            "-u {spec}: groups"
        );
        assert_roundtrip(&src, &key, &format!("round trip, -u {spec}"));
    }
}

#[test]
fn wait_for_dns_daemonises_first_and_keeps_trying() {
    if !relay_is_ours() {
        return;
    }
    let dir = TempDir::new("dm-dns");
    let key = dir.key("key");
    let src = bin_common::fresh_addr(Fam::V4, &dir).spiped();
    let pidfile = dir.join("dns.pid");
    let start = Instant::now();
    // `.invalid` never resolves (RFC 6761): without -D this is a startup error.
    let target = "no-such-host.invalid:80";
    let out = run(&daemon_args(&src, target, &key, &pidfile, &["-D"]));
    let daemon = Daemon {
        pidfile: pidfile.clone(),
    };
    assert_exit(&out, 0, "-D parent");
    assert!(start.elapsed() < Duration::from_secs(10));
    assert!(daemon.pid().is_some(), "no pidfile");
    thread::sleep(Duration::from_millis(1500));
    assert!(daemon.alive(), "the -D daemon gave up resolving");
    drop(daemon);
    let out = run(&daemon_args(
        &src,
        target,
        &key,
        &dir.join("nodns.pid"),
        &["-F"],
    ));
    assert_exit(&out, 1, "the same name without -D");
}

#[test]
fn rtime_with_no_resolve_is_a_usage_error() {
    let dir = TempDir::new("dm-rR");
    let key = dir.key("key");
    let a = daemon_args(
        "[127.0.0.1]:8025",
        "[127.0.0.1]:9",
        &key,
        &dir.join("p"),
        &["-r", "5", "-R"],
    );
    let out = run(&a);
    assert_exit(&out, 1, "-r 5 -R");
    assert!(out.stderr.contains("usage:"), "{:?}", out.stderr);
}

#[test]
fn bind_outgoing_connections() {
    if !relay_is_ours() {
        return;
    }
    let dir = TempDir::new("dm-bind");
    assert_eq!(
        bin_common::outgoing_source_ip(&dir, &relay_bin(), "127.0.0.2:0"),
        Some("127.0.0.2".parse().expect("ip"))
    );
}

// ---------------------------------------------------------------------------------------------
// keygen

fn fingerprint_of(bytes: &[u8]) -> String {
    let k = Sha256::digest(bytes);
    Sha256::new()
        .chain_update(b"spiperelay key fingerprint v1")
        .chain_update(k)
        .finalize()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[test]
fn keygen_writes_0600_refuses_overwrite_and_forces() {
    if !relay_is_ours() {
        return;
    }
    let dir = TempDir::new("dm-keygen");
    let path = dir.join("new.key");
    let keygen = |extra: &[&str]| {
        let mut a = args(["keygen"]);
        a.extend(extra.iter().map(OsString::from));
        a.push(path.clone().into());
        run(&a)
    };
    let out = keygen(&[]);
    assert_exit(&out, 0, "keygen");
    let first = fs::read(&path).expect("key written");
    assert_eq!(first.len(), 32);
    let mode = fs::metadata(&path).expect("meta").permissions().mode() & 0o7777;
    assert_eq!(mode, 0o600, "mode {mode:o}");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        stdout.contains(&fingerprint_of(&first)),
        "fingerprint in {stdout:?}"
    );

    let out = keygen(&[]);
    assert_exit(&out, 1, "keygen over an existing file");
    assert!(out.stderr.contains("--force"), "{:?}", out.stderr);
    assert_eq!(
        fs::read(&path).expect("read"),
        first,
        "overwritten without --force"
    );

    let out = keygen(&["--force"]);
    assert_exit(&out, 0, "keygen --force");
    let second = fs::read(&path).expect("read");
    assert_eq!(second.len(), 32);
    assert_ne!(second, first);
    assert!(String::from_utf8_lossy(&out.stdout).contains(&fingerprint_of(&second)));
    assert_eq!(
        fs::metadata(&path).expect("meta").permissions().mode() & 0o7777,
        0o600
    );

    // Nothing but the key is left in the directory (no temporary files).
    let names: Vec<_> = fs::read_dir(dir.path())
        .expect("ls")
        .filter_map(|e| e.ok().map(|e| e.file_name()))
        .collect();
    assert_eq!(names, vec![OsString::from("new.key")]);

    // A directory that does not exist: exit 1, nothing created.
    let out = run(&args([
        OsString::from("keygen"),
        dir.join("missing/k").into_os_string(),
    ]));
    assert_exit(&out, 1, "keygen into a missing directory");
    assert_exit(&run(&args(["keygen"])), 1, "keygen without a file");

    // The generated key works with the real spiped.
    if have_spiped() {
        let echo = Echo::start(Fam::V4, &dir, Reply::Stream);
        let dec = start_end(
            &dir,
            "dec",
            &spiped_bin(),
            "-d",
            Fam::V4,
            &echo.addr,
            &path,
            &[],
        );
        assert_roundtrip(
            &dec.addr().spiped(),
            &path,
            "spipe with a generated key -> spiped -d",
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Drop-in names and command dispatch

#[test]
fn links_from_install_script_behave_as_spiped_and_spipe() {
    if !relay_is_ours() {
        return;
    }
    let dir = TempDir::new("dm-links");
    let prefix = dir.join("prefix");
    let install = |prefix: &Path, extra: &[&str]| {
        let mut a = args([
            Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/install.sh"),
            "--prefix".into(),
            prefix.to_path_buf(),
            "--links".into(),
            "--bin".into(),
            relay_bin(),
        ]);
        a.extend(extra.iter().map(OsString::from));
        run_bounded(Path::new("bash"), &a, b"", Duration::from_secs(60))
    };
    let out = install(&prefix, &[]);
    assert_exit(&out, 0, "install.sh");
    let bin = prefix.join("bin");
    for name in ["spiperelay", "spiped", "spipe"] {
        assert!(bin.join(name).exists(), "{name} not installed: {out:?}");
    }
    // A second run replaces our own links without --force.
    assert_exit(&install(&prefix, &[]), 0, "install.sh again");
    // Another program's spipe is kept unless --force.
    let other = dir.join("other");
    fs::create_dir_all(other.join("bin")).expect("mkdir");
    fs::write(other.join("bin/spipe"), b"#!/bin/sh\n").expect("write");
    assert_exit(&install(&other, &[]), 1, "install.sh over a foreign spipe");
    assert_eq!(
        fs::read(other.join("bin/spipe")).expect("read"),
        b"#!/bin/sh\n"
    );
    assert_exit(&install(&other, &["--force"]), 0, "install.sh --force");
    assert!(
        fs::symlink_metadata(other.join("bin/spipe"))
            .expect("meta")
            .file_type()
            .is_symlink()
    );

    // spiped: spiped's command line, usage text and all.
    let spiped = bin.join("spiped");
    let out = run_bounded(&spiped, &args(["-v"]), b"", QUICK);
    assert_exit(&out, 0, "spiped -v");
    let out = run_bounded(&spiped, &args(["--help"]), b"", QUICK);
    assert_exit(&out, 1, "spiped --help");
    assert!(
        out.stderr.contains("usage: spiped {-e | -d}"),
        "{:?}",
        out.stderr
    );
    let out = run_bounded(&spiped, &args(["spipe", "-v"]), b"", QUICK);
    assert_exit(
        &out,
        1,
        "spiped spipe (not a subcommand under the spiped name)",
    );
    let out = run_bounded(&spiped, &args(["keygen", "x"]), b"", QUICK);
    assert_exit(
        &out,
        1,
        "spiped keygen (not a subcommand under the spiped name)",
    );

    // Shape errors print what spiped prints, byte for byte (only the usage text for these).
    if have_spiped() {
        for line in [
            &["-d", "-s", "x"][..],
            &["-e", "-d"][..],
            &["-x"][..],
            &[
                "-d",
                "-s",
                "[127.0.0.1]:1",
                "-t",
                "[127.0.0.1]:2",
                "-k",
                "k",
                "-f",
                "-g",
            ][..],
            &[
                "-d",
                "-s",
                "[127.0.0.1]:1",
                "-t",
                "[127.0.0.1]:2",
                "-k",
                "k",
                "-r",
                "5",
                "-R",
            ][..],
        ] {
            let ours = run_bounded(&spiped, &args(line), b"", QUICK);
            let theirs = run_bounded(&spiped_bin(), &args(line), b"", QUICK);
            assert_exit(&ours, 1, &format!("spiped {line:?}"));
            assert_eq!(ours.stderr, theirs.stderr, "spiped {line:?}");
        }
    }

    // spipe: spipe's command line.
    let spipe = bin.join("spipe");
    let out = run_bounded(&spipe, &[], b"", QUICK);
    assert_exit(&out, 1, "spipe without arguments");
    assert!(
        out.stderr.starts_with("usage: spipe -t"),
        "{:?}",
        out.stderr
    );

    // A tunnel made of the two names.
    let key = dir.key("key");
    let echo = Echo::start(Fam::Unix, &dir, Reply::Stream);
    let dec = start_end(&dir, "dec", &spiped, "-d", Fam::Unix, &echo.addr, &key, &[]);
    let mut a = args(["-t", &dec.addr().spiped()]);
    a.push("-k".into());
    a.push(key.into());
    let payload = bin_common::random_bytes(5, 100_000);
    let out = run_bounded(&spipe, &a, &payload, Duration::from_secs(30));
    assert_exit(&out, 0, "spipe -> spiped (links)");
    bin_common::assert_same(&out.stdout, &payload, "spipe -> spiped (links)");
}

#[test]
fn help_and_unknown_commands() {
    if !relay_is_ours() {
        return;
    }
    let out = run(&args(["--help"]));
    assert_exit(&out, 0, "--help");
    let help = String::from_utf8_lossy(&out.stdout).into_owned();
    for want in [
        "spiperelay {-e | -d}",
        "spiperelay spipe",
        "spiperelay keygen",
    ] {
        assert!(help.contains(want), "{want:?} missing from {help:?}");
    }
    let out = run(&args(["frobnicate"]));
    assert_exit(&out, 1, "unknown command");
    assert!(out.stderr.contains("unknown command"), "{:?}", out.stderr);
    let out = run(&args(["-x"]));
    assert_exit(&out, 1, "spiped-style line with an illegal option");
    assert!(out.stderr.contains("illegal option -- -x"));
    assert!(out.stderr.contains("usage: spiped {-e | -d}"));
}

#[test]
fn default_pidfile_is_source_dot_pid() {
    let dir = TempDir::new("dm-pid");
    let key = dir.key("key");
    let echo = Echo::start(Fam::V4, &dir, Reply::Stream);
    let src = dir.sock_path("src");
    let mut a = args(["-d", "-s"]);
    a.push(src.clone().into());
    a.extend(args(["-t", &echo.addr.spiped(), "-k"]));
    a.push(key.clone().into());
    let out = run(&a);
    let pidfile = PathBuf::from(format!("{}.pid", src.display()));
    let daemon = Daemon {
        pidfile: pidfile.clone(),
    };
    assert_exit(&out, 0, "daemon with the default pidfile");
    assert!(daemon.pid().is_some(), "{} not written", pidfile.display());
    assert!(daemon.alive());
}

#[test]
fn syslog_after_daemonising() {
    if !relay_is_ours() {
        return;
    }
    let dir = TempDir::new("dm-syslog");
    let key = dir.key("key");
    let wrong = dir.key("wrong");
    let log_path = dir.join("log.sock");
    let log = std::os::unix::net::UnixDatagram::bind(&log_path).expect("bind log socket");
    log.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let src = bin_common::fresh_addr(Fam::V4, &dir).spiped();
    let pidfile = dir.join("syslog.pid");
    // In a private mount namespace, /dev is a fresh tmpfs holding only /dev/null (the real one,
    // bind-mounted) and /dev/log -> our datagram socket, so the host's /dev is never touched.
    let d = dir.path().display();
    let script = format!(
        "set -e\n\
         mount --make-rprivate /\n\
         touch {d}/null && mount --bind /dev/null {d}/null\n\
         mount -t tmpfs tmpfs /dev\n\
         touch /dev/null && mount --bind {d}/null /dev/null\n\
         ln -s {log} /dev/log\n\
         exec \"$0\" \"$@\"",
        log = log_path.display()
    );
    let mut a = args(["-m", "sh", "-c", &script]);
    a.push(relay_bin().into());
    a.extend(daemon_args(
        &src,
        "[127.0.0.1]:9",
        &key,
        &pidfile,
        &["--syslog"],
    ));
    let out = run_bounded(Path::new("unshare"), &a, b"", QUICK);
    let daemon = Daemon {
        pidfile: pidfile.clone(),
    };
    if out.code() != Some(0) || daemon.pid().is_none() {
        eprintln!("SKIP: cannot make a private mount namespace here: {out:?}");
        return;
    }
    // A client with the wrong key: the daemon logs the dropped connection.
    let wrong_client = roundtrip(&src, &wrong);
    assert_exit(&wrong_client, 1, "wrong key");
    let mut buf = [0u8; 2048];
    let n = log.recv(&mut buf).expect("a syslog message within 10 s");
    let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
    let pid = daemon.pid().expect("pid");
    assert!(
        msg.starts_with(&format!("<28>spiperelay[{pid}]: ")),
        "facility daemon, priority warning, program and pid: {msg:?}"
    );
    assert!(msg.contains("handshake failed"), "{msg:?}");
}

/// `-D` in the foreground (`-F -D`): a target name that does not resolve yet is looked up again
/// every second instead of being a startup error (spiped's "wait for DNS").
#[test]
fn wait_for_dns_retries_in_the_foreground_too() {
    let dir = TempDir::new("dns-fg");
    let key = dir.key("k");
    let src = dir.sock_path("s");
    let a = args([
        OsString::from("-F"),
        "-D".into(),
        "-d".into(),
        "-s".into(),
        src.clone().into(),
        "-t".into(),
        "name-that-does-not-resolve.invalid:1".into(),
        "-k".into(),
        key.into(),
    ]);
    let mut p = bin_common::Proc::spawn(&dir, "relay", &relay_bin(), &a).expect("spawn");
    thread::sleep(Duration::from_millis(2500));
    assert!(
        p.try_exit().is_none(),
        "-F -D exited instead of retrying the lookup: {}",
        p.stderr()
    );
    assert!(!src.exists(), "listening before the target resolved");
    // Without -D the same command line is a startup error at once.
    let a: Vec<OsString> = a.into_iter().filter(|w| w != "-D").collect();
    let out = run(&a);
    assert_exit(&out, 1, "-F without -D, unresolvable target");
}
