//! Zero-downtime key rotation (issue 8), black-box against the built binary: ROTATE then SET
//! over the `--control` socket with live traffic (our `-e` and the real `spiped -e` as
//! clients), SIGHUP reloads and their failure paths, SET refusals, the `--max-keys` bound, the
//! `keys status` report, and the `-e` side's rotation.
//!
//! These exercise spiperelay-only features, so they are skipped when `SPIPERELAY_TEST_BIN`
//! points at another binary.

mod bin_common;

use std::ffi::OsString;
use std::fs;
use std::io::{ErrorKind, Read, Write};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use bin_common::{
    Addr, Conn, EXCHANGE_TIMEOUT, Echo, Fam, Output, Proc, Reply, TempDir, args, assert_echo,
    assert_refused, have_spiped, random_bytes, relay_bin, relay_is_ours, run_bounded, spiped_bin,
    start_end,
};
use sha2::{Digest, Sha256};
use spiperelay::proto::key::Key;

/// How long to wait for a log line or a counter to change.
const WAIT: Duration = Duration::from_secs(10);

fn ours() -> bool {
    if relay_is_ours() {
        return true;
    }
    eprintln!("SKIP: key rotation is a spiperelay feature");
    false
}

/// Writes a key file with bytes reproducible from `seed`.
fn key_file(dir: &TempDir, name: &str, seed: u64) -> PathBuf {
    let path = dir.join(name);
    fs::write(&path, random_bytes(seed, 32)).expect("write key");
    path
}

fn fingerprint(path: &Path) -> String {
    Key::from_key_file(&fs::read(path).expect("read key")).fingerprint()
}

/// `spiperelay keys --control <ctl> <words...>`, bounded.
fn keys(ctl: &Path, words: &[&OsString]) -> Output {
    let mut a = args(["keys", "--control"]);
    a.push(ctl.into());
    a.extend(words.iter().map(|w| (*w).clone()));
    run_bounded(&relay_bin(), &a, b"", Duration::from_secs(15))
}

fn keys_ok(ctl: &Path, cmd: &str, file: Option<&Path>) -> String {
    let out = keys_cmd(ctl, cmd, file);
    assert_eq!(
        out.code(),
        Some(0),
        "keys {cmd} {file:?}: stderr {:?}",
        out.stderr
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn keys_cmd(ctl: &Path, cmd: &str, file: Option<&Path>) -> Output {
    let mut words: Vec<OsString> = cmd.split_whitespace().map(OsString::from).collect();
    if let Some(f) = file {
        words.push(f.into());
    }
    let refs: Vec<&OsString> = words.iter().collect();
    keys(ctl, &refs)
}

/// The `keys status` line of the key with fingerprint `fp`, if listed.
fn status_line(ctl: &Path, fp: &str) -> Option<String> {
    keys_ok(ctl, "status", None)
        .lines()
        .find(|l| l.starts_with(&format!("key {fp} ")))
        .map(str::to_owned)
}

/// Polls `keys status` until `cond` holds on its output (bounded by [`WAIT`]); panics with the
/// last output otherwise. Live counts lag a client's close by a moment (the daemon counts a
/// connection until both of its sockets are closed), hence the polling.
fn wait_status(ctl: &Path, what: &str, cond: impl Fn(&str) -> bool) -> String {
    let mut last = String::new();
    let ok = wait_for(|| {
        last = keys_ok(ctl, "status", None);
        cond(&last)
    });
    assert!(ok, "{what}: status was {last}");
    last
}

/// Polls (every 20 ms, at most [`WAIT`]) until `cond` holds; returns whether it did.
fn wait_for(cond: impl FnMut() -> bool) -> bool {
    bin_common::wait_until(WAIT, cond)
}

fn wait_log(p: &Proc, needle: &str) -> bool {
    wait_for(|| p.stderr().contains(needle))
}

fn sighup(p: &Proc) {
    let st = Command::new("kill")
        .args(["-HUP", &p.pid().to_string()])
        .status()
        .expect("run kill");
    assert!(st.success(), "kill -HUP failed");
}

/// Sends SIGTERM and waits (bounded) for the exit; a daemon without open connections exits
/// at once, cleaning up.
fn terminate(mut p: Proc) {
    let st = Command::new("kill")
        .args(["-TERM", &p.pid().to_string()])
        .status()
        .expect("run kill");
    assert!(st.success(), "kill -TERM failed");
    assert!(
        wait_for(|| p.try_exit().is_some()),
        "no exit after SIGTERM: {}",
        p.stderr()
    );
}

/// `-k K` for each key, `--control CTL` if given, then `extra`.
fn key_flags(keys: &[&Path], control: Option<&Path>, extra: &[&str]) -> Vec<OsString> {
    let mut flags = Vec::new();
    for k in keys {
        flags.push(OsString::from("-k"));
        flags.push(k.into());
    }
    if let Some(c) = control {
        flags.push("--control".into());
        flags.push(c.into());
    }
    flags.extend(extra.iter().map(OsString::from));
    flags
}

/// Our `-d` in front of `echo`, with `flags` (keys, `--control`, ...).
fn start_d(dir: &TempDir, echo: &Echo, flags: &[OsString]) -> Proc {
    let target = echo.addr.spiped();
    Proc::start_listening(dir, "dec", &relay_bin(), Fam::V4, |src| {
        let mut a = args(["-F", "-d", "-s", src, "-t", &target]);
        a.extend(flags.iter().cloned());
        a
    })
}

/// A client that streams pseudo-random data through `addr` continuously, hashing what it sends
/// and what comes back, until [`Streamer::finish`].
struct Streamer {
    stop: Arc<AtomicBool>,
    echoed: Arc<AtomicU64>,
    writer: JoinHandle<Result<(u64, Vec<u8>), String>>,
    reader: JoinHandle<(u64, Vec<u8>, String)>,
}

impl Streamer {
    fn start(addr: &Addr) -> Self {
        let conn = addr.connect().expect("streamer connect");
        let mut w: Conn = conn.try_clone().expect("clone");
        let mut r = conn;
        let stop = Arc::new(AtomicBool::new(false));
        let echoed = Arc::new(AtomicU64::new(0));
        let s = stop.clone();
        let writer = thread::spawn(move || {
            let mut hash = Sha256::new();
            let mut sent = 0u64;
            let deadline = Instant::now() + EXCHANGE_TIMEOUT;
            for i in 0..100_000u64 {
                if s.load(Ordering::SeqCst) || Instant::now() >= deadline {
                    break;
                }
                let chunk = random_bytes(0xa11ce + i, 4096 + (i as usize % 3000));
                w.write_all(&chunk).map_err(|e| format!("write: {e}"))?;
                hash.update(&chunk);
                sent += chunk.len() as u64;
                thread::sleep(Duration::from_millis(2));
            }
            w.shutdown_write().map_err(|e| format!("shutdown: {e}"))?;
            Ok((sent, hash.finalize().to_vec()))
        });
        let e = echoed.clone();
        let reader = thread::spawn(move || {
            let mut hash = Sha256::new();
            let mut buf = vec![0u8; 64 * 1024];
            let deadline = Instant::now() + EXCHANGE_TIMEOUT;
            let end = loop {
                if Instant::now() >= deadline {
                    break "deadline".to_owned();
                }
                match r.read(&mut buf) {
                    Ok(0) => break "eof".to_owned(),
                    Ok(n) => {
                        hash.update(&buf[..n]);
                        e.fetch_add(n as u64, Ordering::SeqCst);
                    }
                    Err(err) if err.kind() == ErrorKind::Interrupted => {}
                    Err(err) => break format!("read error: {err}"),
                }
            };
            (e.load(Ordering::SeqCst), hash.finalize().to_vec(), end)
        });
        Self {
            stop,
            echoed,
            writer,
            reader,
        }
    }

    fn echoed(&self) -> u64 {
        self.echoed.load(Ordering::SeqCst)
    }

    /// Waits until at least `more` further bytes have come back.
    fn wait_progress(&self, more: u64, what: &str) {
        let from = self.echoed();
        assert!(
            wait_for(|| self.echoed() >= from + more),
            "{what}: stream stalled at {} bytes",
            self.echoed()
        );
    }

    /// Stops writing, half-closes, reads to EOF, and requires the echo to match byte for byte.
    fn finish(self, what: &str) -> u64 {
        self.stop.store(true, Ordering::SeqCst);
        let (sent, sent_hash) = self
            .writer
            .join()
            .expect("writer thread")
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        let (got, got_hash, end) = self.reader.join().expect("reader thread");
        assert_eq!(end, "eof", "{what}: stream ended badly");
        assert_eq!(got, sent, "{what}: echoed byte count");
        assert_eq!(got_hash, sent_hash, "{what}: SHA-256 of the echo");
        sent
    }
}

/// The whole rotation with live traffic; `client_bin` runs both `-e` ends.
fn full_rotation(tag: &str, client_bin: &Path) {
    let dir = TempDir::new(tag);
    let old = key_file(&dir, "old.key", 1);
    let new = key_file(&dir, "new.key", 2);
    let (fp_old, fp_new) = (fingerprint(&old), fingerprint(&new));
    let ctl = dir.join("ctl.sock");
    let echo = Echo::start(Fam::V4, &dir, Reply::Stream);
    let dec = start_d(&dir, &echo, &key_flags(&[&old], Some(&ctl), &[]));
    let enc_old = start_end(
        &dir,
        "enc_old",
        client_bin,
        "-e",
        Fam::V4,
        dec.addr(),
        &old,
        &[],
    );
    let enc_new = start_end(
        &dir,
        "enc_new",
        client_bin,
        "-e",
        Fam::V4,
        dec.addr(),
        &new,
        &[],
    );

    // Client A streams with the old key for the whole rotation.
    let a = Streamer::start(enc_old.addr());
    a.wait_progress(64 * 1024, "A before the rotation");
    assert!(
        wait_for(|| status_line(&ctl, &fp_old).is_some_and(|l| l.contains("live=1"))),
        "A not counted on the old key: {:?}",
        keys_ok(&ctl, "status", None)
    );

    // Before ROTATE the new key is refused.
    assert_refused(enc_new.addr(), "new key before rotate");

    let out = keys_ok(&ctl, "rotate", Some(&new));
    assert!(out.contains(&format!("rotated in key {fp_new}")), "{out}");
    a.wait_progress(32 * 1024, "A after rotate");

    // Client B with the new key.
    assert_echo(
        enc_new.addr(),
        &random_bytes(7, 100_000),
        "B with the new key",
    );
    assert!(
        wait_log(
            &dec,
            &format!("connection established (-d) with key {fp_new}")
        ),
        "B's key not logged: {}",
        dec.stderr()
    );
    assert!(
        wait_log(
            &dec,
            &format!("connection established (-d) with key {fp_old}")
        ),
        "A's key not logged: {}",
        dec.stderr()
    );

    // SET is refused while A still uses the old key, then forced.
    let refused = keys_cmd(&ctl, "set", Some(&new));
    assert_eq!(refused.code(), Some(1), "set while in use must fail");
    assert!(
        refused.stderr.contains("still used by 1 live connection")
            && refused.stderr.contains(&fp_old),
        "{}",
        refused.stderr
    );
    let out = keys_ok(&ctl, "set --force", Some(&new));
    assert!(
        out.contains(&format!("set key {fp_new}")) && out.contains(&fp_old),
        "{out}"
    );
    wait_status(&ctl, "after set", |st| {
        st.contains(&format!("key {fp_new} accepted live=0"))
            && st.contains(&format!("key {fp_old} removed live=1"))
    });

    // A keeps streaming on its established connection...
    a.wait_progress(256 * 1024, "A after set");
    // ...while a new connection with the old key is refused, with a logged reason.
    let bad_mac = "handshake failed: bad MAC on the peer's DH value (wrong key?)";
    let before = dec.stderr().matches(bad_mac).count();
    assert_refused(enc_old.addr(), "old key after set");
    assert!(
        wait_for(|| dec.stderr().matches(bad_mac).count() > before),
        "no logged reason for the refused old key: {}",
        dec.stderr()
    );
    assert_echo(enc_new.addr(), &random_bytes(8, 5000), "new key after set");

    let total = a.finish("A across the rotation");
    assert!(total > 256 * 1024, "A streamed only {total} bytes");
    // Once A has gone, the removed key disappears from the report.
    assert!(
        wait_for(|| status_line(&ctl, &fp_old).is_none()),
        "{}",
        keys_ok(&ctl, "status", None)
    );
    let log = dec.stderr();
    for k in [&old, &new] {
        let hex: String = fs::read(k)
            .expect("key")
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert!(!log.contains(&hex[..16]), "key bytes in the log: {log}");
    }
}

#[test]
fn full_rotation_with_live_traffic() {
    if !ours() {
        return;
    }
    full_rotation("rot-ours", &relay_bin());
}

#[test]
fn full_rotation_with_real_spiped_clients() {
    if !ours() || !have_spiped() {
        return;
    }
    full_rotation("rot-spiped", &spiped_bin());
}

#[test]
fn sighup_reload_and_its_failures() {
    if !ours() {
        return;
    }
    let dir = TempDir::new("rot-hup");
    let a = key_file(&dir, "a.key", 11);
    let b = key_file(&dir, "b.key", 12);
    let c = key_file(&dir, "c.key", 13);
    let empty = dir.join("empty.key");
    fs::write(&empty, b"").expect("empty key");
    // The live key file: starts as a, the second -k starts as a copy (one distinct key).
    let k1 = dir.join("k1.key");
    let k2 = dir.join("k2.key");
    fs::copy(&a, &k1).expect("copy");
    fs::copy(&a, &k2).expect("copy");
    let echo = Echo::start(Fam::V4, &dir, Reply::Stream);
    // Standard input is /dev/null: the `-k -` key is K of the empty file.
    let flags = key_flags(&[&k1, &k2], None, &["-k", "-", "--max-keys", "3"]);
    let dec = start_d(&dir, &echo, &flags);
    let enc = |name: &str, key: &Path| {
        start_end(
            &dir,
            name,
            &relay_bin(),
            "-e",
            Fam::V4,
            dec.addr(),
            key,
            &[],
        )
    };
    let (ea, eb, ec, e0) = (
        enc("ea", &a),
        enc("eb", &b),
        enc("ec", &c),
        enc("e0", &empty),
    );
    let works = |p: &Proc, what: &str| assert_echo(p.addr(), b"ping\n", what);
    works(&ea, "a at start");
    works(&e0, "stdin key at start");
    assert_refused(eb.addr(), "b at start");

    let mut reloads = 0;
    let mut hup = |expect: &str| {
        reloads += 1;
        sighup(&dec);
        assert!(
            wait_for(|| dec.stderr().matches("SIGHUP: ").count() >= reloads),
            "no reload logged: {}",
            dec.stderr()
        );
        let last = dec
            .stderr()
            .lines()
            .rfind(|l| l.contains("SIGHUP: "))
            .unwrap_or_default()
            .to_owned();
        assert!(last.contains(expect), "want {expect:?}, got {last:?}");
    };

    // Step 1 of a file-based rotation: k2 gets the new key b; a, b and the stdin key work.
    fs::copy(&b, &k2).expect("copy");
    hup("reloaded the key files");
    works(&ea, "a after step 1");
    works(&eb, "b after step 1");
    works(&e0, "stdin key survives a reload");

    // Failures keep a, b and the stdin key: a missing file, a directory, a FIFO, too many keys.
    fs::remove_file(&k1).expect("rm k1");
    hup("reload failed");
    assert!(dec.stderr().contains("No such file"), "{}", dec.stderr());
    fs::create_dir(&k1).expect("mkdir k1");
    hup("is a directory, not a regular file");
    fs::remove_dir(&k1).expect("rmdir");
    let made = Command::new("mkfifo").arg(&k1).status();
    if made.is_ok_and(|s| s.success()) {
        // Refused at once: reading it would block the event loop.
        hup("is a FIFO, not a regular file");
        fs::remove_file(&k1).expect("rm fifo");
    }
    // A failed reload changes nothing even where other files did change: k2 now holds c,
    // but k1 is still missing.
    fs::copy(&c, &k2).expect("copy");
    hup("reload failed");
    works(&ea, "a after failed reloads");
    works(&eb, "b after failed reloads");
    works(&e0, "stdin key after failed reloads");
    assert_refused(ec.addr(), "c never loaded");
    fs::copy(&b, &k2).expect("copy");

    // Step 2: k1 gets b too; a is no longer accepted, b and the stdin key are.
    fs::copy(&b, &k1).expect("copy");
    hup("reloaded the key files");
    assert_refused(ea.addr(), "a after step 2");
    works(&eb, "b after step 2");
    works(&e0, "stdin key after step 2");
}

#[test]
fn reload_beyond_max_keys_and_rotate_failures_keep_keys() {
    if !ours() {
        return;
    }
    let dir = TempDir::new("rot-max");
    let a = key_file(&dir, "a.key", 21);
    let b = key_file(&dir, "b.key", 22);
    let c = key_file(&dir, "c.key", 23);
    let d = key_file(&dir, "d.key", 24);
    let ctl = dir.join("ctl.sock");
    let echo = Echo::start(Fam::V4, &dir, Reply::Stream);

    // Startup beyond the bound is an error (a repeated key counts once).
    let mut bad = args(["-F", "-d", "-s", "[127.0.0.1]:1", "-t", "[127.0.0.1]:2"]);
    for k in [&a, &b, &c, &a] {
        bad.push("-k".into());
        bad.push(k.into());
    }
    let out = run_bounded(&relay_bin(), &bad, b"", Duration::from_secs(10));
    assert_eq!(out.code(), Some(1), "{}", out.stderr);
    assert!(
        out.stderr
            .contains("3 distinct keys given, but at most 2 are accepted at once"),
        "{}",
        out.stderr
    );

    let k2 = dir.join("k2.key");
    fs::copy(&a, &k2).expect("copy");
    let dec = start_d(&dir, &echo, &key_flags(&[&a, &k2], Some(&ctl), &[]));
    let meta = fs::metadata(&ctl).expect("control socket");
    assert!(meta.file_type().is_socket());
    assert_eq!(
        meta.permissions().mode() & 0o777,
        0o600,
        "control socket mode"
    );
    let ea = start_end(&dir, "ea", &relay_bin(), "-e", Fam::V4, dec.addr(), &a, &[]);
    let eb = start_end(&dir, "eb", &relay_bin(), "-e", Fam::V4, dec.addr(), &b, &[]);

    // The max-keys bound on rotate.
    keys_ok(&ctl, "rotate", Some(&b));
    let full = keys_cmd(&ctl, "rotate", Some(&c));
    assert_eq!(full.code(), Some(1));
    assert!(
        full.stderr
            .contains("already 2 keys accepted (--max-keys 2): SET one of them first"),
        "{}",
        full.stderr
    );
    let again = keys_cmd(&ctl, "rotate", Some(&b));
    assert!(
        again.code() == Some(1) && again.stderr.contains("is already accepted"),
        "{}",
        again.stderr
    );
    // Rotate failures: a missing file, a directory.
    for (what, file, msg) in [
        ("missing", dir.join("nope.key"), "No such file"),
        (
            "directory",
            dir.path().to_path_buf(),
            "is a directory, not a regular file",
        ),
    ] {
        let out = keys_cmd(&ctl, "rotate", Some(&file));
        assert!(
            out.code() == Some(1) && out.stderr.contains(msg),
            "{what}: {}",
            out.stderr
        );
    }
    // The next SIGHUP will read {a, d} from the -k files.
    fs::copy(&d, &k2).expect("copy");
    // SET refusals: a key never rotated in.
    let out = keys_cmd(&ctl, "set", Some(&c));
    assert_eq!(out.code(), Some(1));
    assert!(
        out.stderr.contains(&format!(
            "There is no key {} to SET. Rotate it in first",
            fingerprint(&c)
        )),
        "{}",
        out.stderr
    );
    // Everything still works after the refusals.
    assert_echo(ea.addr(), b"a\n", "a after refusals");
    assert_echo(eb.addr(), b"b\n", "b after refusals");
    let fp_b = fingerprint(&b);
    wait_status(&ctl, "after b's exchange", |st| {
        st.contains("2 key(s) accepted, at most 2 (--max-keys)")
            && st.lines().any(|l| {
                l.starts_with(&format!("key {fp_b} accepted live=0 handshakes="))
                    && l.contains("last_used=2")
                    && l.ends_with(" s ago)")
            })
    });

    // SIGHUP goes back to the -k files: {a, d}.
    sighup(&dec);
    assert!(wait_log(&dec, "SIGHUP: reloaded the key files"));
    assert_refused(eb.addr(), "b after reload (rotate undone by SIGHUP)");
    assert_echo(ea.addr(), b"a\n", "a after reload");

    drop(ea);
    drop(eb);
    terminate(dec);
    assert!(!ctl.exists(), "control socket removed on exit");

    // A reload beyond the bound: --max-keys 1 with two -k files that start out equal.
    let k1 = dir.join("k1.key");
    fs::copy(&a, &k1).expect("copy");
    fs::copy(&a, &k2).expect("copy");
    let dec = start_d(
        &dir,
        &echo,
        &key_flags(&[&k1, &k2], None, &["--max-keys", "1"]),
    );
    let ea = start_end(
        &dir,
        "ea1",
        &relay_bin(),
        "-e",
        Fam::V4,
        dec.addr(),
        &a,
        &[],
    );
    fs::copy(&b, &k2).expect("copy");
    sighup(&dec);
    assert!(
        wait_log(&dec, "SIGHUP: reload failed, keeping the accepted keys"),
        "{}",
        dec.stderr()
    );
    assert!(
        dec.stderr()
            .contains("2 distinct keys given, but at most 1 are accepted at once"),
        "{}",
        dec.stderr()
    );
    assert_echo(
        ea.addr(),
        b"still a\n",
        "a after a reload beyond --max-keys",
    );
}

#[test]
fn set_refuses_a_key_in_use_and_encrypting_end_rotates() {
    if !ours() {
        return;
    }
    let dir = TempDir::new("rot-e");
    let old = key_file(&dir, "old.key", 31);
    let new = key_file(&dir, "new.key", 32);
    let (fp_old, fp_new) = (fingerprint(&old), fingerprint(&new));
    let ctl = dir.join("ctl-e.sock");
    let echo = Echo::start(Fam::V4, &dir, Reply::Stream);
    // The server already accepts both keys.
    let dec = start_d(&dir, &echo, &key_flags(&[&old, &new], None, &[]));
    let mut eflags: Vec<String> = vec!["--control".into()];
    eflags.push(ctl.display().to_string());
    let eflags: Vec<&str> = eflags.iter().map(String::as_str).collect();
    let enc = start_end(
        &dir,
        "enc",
        &relay_bin(),
        "-e",
        Fam::V4,
        dec.addr(),
        &old,
        &eflags,
    );

    let established = |fp: &str| {
        dec.stderr()
            .matches(&format!("connection established (-d) with key {fp}"))
            .count()
    };
    let a = Streamer::start(enc.addr());
    a.wait_progress(16 * 1024, "A on -e");
    wait_status(&ctl, "-e with A", |st| {
        st.starts_with("-e end: 1 key(s) accepted")
            && st.contains(&format!("key {fp_old} current live=1"))
    });
    // -e: SET needs the key rotated in first, too.
    let out = keys_cmd(&ctl, "set", Some(&new));
    assert!(out.code() == Some(1) && out.stderr.contains("Rotate it in first"));
    keys_ok(&ctl, "rotate", Some(&new));
    wait_status(&ctl, "-e after rotate", |st| {
        st.contains(&format!("key {fp_new} standby live=0"))
    });
    // After rotate, -e still uses its first key.
    let n_old = established(&fp_old);
    assert_echo(enc.addr(), b"x\n", "-e after rotate");
    assert!(
        wait_for(|| established(&fp_old) > n_old),
        "{}",
        dec.stderr()
    );
    // On -e, SET needs no --force although A uses the old key; A carries on.
    let out = keys_ok(&ctl, "set", Some(&new));
    assert!(out.contains(&format!("set key {fp_new}")), "{out}");
    let n_new = established(&fp_new);
    assert_echo(enc.addr(), b"y\n", "-e after set");
    assert!(
        wait_for(|| established(&fp_new) > n_new),
        "{}",
        dec.stderr()
    );
    a.wait_progress(64 * 1024, "A after set on -e");
    a.finish("A on -e across the switch");
    assert!(
        enc.stderr()
            .contains(&format!("keys set: set key {fp_new}")),
        "{}",
        enc.stderr()
    );

    // Without a control socket the client says so.
    let out = keys_cmd(&dir.join("none.sock"), "status", None);
    assert!(
        out.code() == Some(1) && out.stderr.contains("cannot connect to control socket"),
        "{}",
        out.stderr
    );
    let out = run_bounded(&relay_bin(), &args(["keys", "frob"]), b"", WAIT);
    assert!(out.code() == Some(1) && out.stderr.contains("usage: spiperelay keys"));
}

#[test]
fn control_socket_stale_taken_and_foreign_paths() {
    if !ours() {
        return;
    }
    let dir = TempDir::new("rot-ctl");
    let key = key_file(&dir, "k.key", 41);
    let echo = Echo::start(Fam::V4, &dir, Reply::Stream);
    // A stale socket left by a crash is replaced.
    let ctl = dir.join("stale.sock");
    drop(std::os::unix::net::UnixListener::bind(&ctl).expect("bind stale"));
    assert!(ctl.exists());
    let dec = start_d(&dir, &echo, &key_flags(&[&key], Some(&ctl), &[]));
    let st = keys_ok(&ctl, "status", None);
    assert!(
        st.contains(&format!("key {} accepted", fingerprint(&key))),
        "{st}"
    );
    assert!(
        dec.stderr()
            .contains(&format!("removed stale control socket {}", ctl.display())),
        "the removal is logged: {}",
        dec.stderr()
    );

    // A second daemon cannot take a live control socket, nor a path that is another file.
    let foreign = dir.join("foreign");
    fs::write(&foreign, b"not a socket").expect("write");
    for (path, what, msg) in [
        (&ctl, "live socket", "another process is listening on"),
        (
            &foreign,
            "regular file",
            "exists and is not a socket; not removing it",
        ),
    ] {
        let mut a = args(["-F", "-d", "-s", "[127.0.0.1]:1", "-t", "[127.0.0.1]:2"]);
        a.extend(key_flags(&[&key], Some(path), &[]));
        let out = run_bounded(&relay_bin(), &a, b"", WAIT);
        assert_eq!(out.code(), Some(1), "{what}: {}", out.stderr);
        assert!(
            out.stderr.contains(&format!("{msg} {}", path.display()))
                || out.stderr.contains(&format!("{} {msg}", path.display())),
            "{what}: {}",
            out.stderr
        );
    }
    assert_eq!(fs::read(&foreign).expect("read"), b"not a socket");
    let st = keys_ok(&ctl, "status", None);
    assert!(
        st.contains("1 key(s) accepted"),
        "first daemon still served: {st}"
    );
    terminate(dec);
    assert!(!ctl.exists(), "control socket removed on exit");
}
