//! One process, many pipes: a configuration file with several pipes runs in one spiperelay
//! process, and live reloads (`SIGHUP`, `spiperelay reload`) change them without closing a
//! listener whose pipe stayed, without dropping an established connection, and without any
//! change at all when the new file has an error.
//!
//! Each test runs one process with an encrypting pipe (`front`, a Unix socket) in front of a
//! decrypting pipe (`back`, another Unix socket) of the same process, in front of an echo
//! server: a client of `front` talks through both pipes.

mod bin_common;

use std::ffi::OsString;
use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use bin_common::{
    Addr, Conn, Echo, Fam, Proc, Reply, TempDir, args, relay_bin, run_bounded, wait_until,
};

/// How long any one wait may take.
const WAIT: Duration = Duration::from_secs(15);

/// The pipes of a test: where each listens, and the shared pieces.
struct Setup {
    dir: TempDir,
    echo: Echo,
    key: PathBuf,
    control: PathBuf,
    file: PathBuf,
}

impl Setup {
    fn new(tag: &str) -> Self {
        let dir = TempDir::new(tag);
        let echo = Echo::start(Fam::Unix, &dir, Reply::Stream);
        let key = dir.key("shared.key");
        let control = dir.join("control.sock");
        let file = dir.join("spiperelay.toml");
        Self {
            dir,
            echo,
            key,
            control,
            file,
        }
    }

    fn sock(&self, name: &str) -> PathBuf {
        self.dir.join(&format!("{name}.sock"))
    }

    /// A `[pipe.NAME]` table: `mode` from `source` to `target` with the shared key.
    fn pipe(&self, name: &str, mode: &str, source: &Path, target: &str, extra: &str) -> String {
        format!(
            "[pipe.{name}]\nmode = \"{mode}\"\nsource = \"{}\"\ntarget = \"{target}\"\n\
             keys = [\"{}\"]\n{extra}\n",
            source.display(),
            self.key.display()
        )
    }

    /// The two-pipe chain: `front` (encrypt) -> `back` (decrypt) -> echo, plus `more`.
    fn chain(&self, front_extra: &str, more: &str) -> String {
        format!(
            "[process]\ncontrol = \"{}\"\n\n{}{}{more}",
            self.control.display(),
            self.pipe(
                "front",
                "encrypt",
                &self.sock("front"),
                &self.sock("back").display().to_string(),
                front_extra
            ),
            self.pipe(
                "back",
                "decrypt",
                &self.sock("back"),
                &self.echo.addr.spiped(),
                ""
            ),
        )
    }

    fn write(&self, text: &str) {
        fs::write(&self.file, text).expect("write config");
    }

    /// Starts the daemon on the file and waits until `front` serves.
    fn start(&self) -> Proc {
        let a = args([OsString::from("--config"), self.file.clone().into()]);
        let mut p = Proc::spawn(&self.dir, "relay", &relay_bin(), &a).expect("spawn");
        let front = Addr::Unix(self.sock("front"));
        p.wait_listening(&front)
            .unwrap_or_else(|e| panic!("{e}: {}", p.stderr()));
        p
    }

    /// Runs `spiperelay WORDS[0] --control CONTROL WORDS[1..]`.
    fn ctl(&self, words: &[&str]) -> Said {
        let mut a = vec![OsString::from(words[0])];
        a.push("--control".into());
        a.push(self.control.clone().into());
        a.extend(words[1..].iter().map(OsString::from));
        let out = run_bounded(&relay_bin(), &a, b"", WAIT);
        Said {
            code: out.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: out.stderr,
        }
    }
}

/// What a control command said.
#[derive(Debug)]
struct Said {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Said {
    fn code(&self) -> Option<i32> {
        self.code
    }
}

/// Sends `msg` through `c` and requires it back.
fn echo_on(c: &mut Conn, msg: &[u8]) -> Result<(), String> {
    c.write_all(msg).map_err(|e| format!("write: {e}"))?;
    let mut got = vec![0u8; msg.len()];
    c.read_exact(&mut got).map_err(|e| format!("read: {e}"))?;
    if got != msg {
        return Err("wrong bytes back".into());
    }
    Ok(())
}

/// One fresh connection through `addr` with one echoed message.
fn round_trip(addr: &Addr, msg: &[u8]) -> Result<(), String> {
    let mut c = addr.connect().map_err(|e| format!("connect: {e}"))?;
    echo_on(&mut c, msg)
}

fn hup(p: &Proc) {
    let st = Command::new("kill")
        .args(["-HUP", &p.pid().to_string()])
        .status()
        .expect("kill");
    assert!(st.success());
}

#[test]
fn two_pipes_in_one_process_relay_and_name_themselves() {
    let s = Setup::new("pipes-two");
    s.write(&s.chain("socket_mode = \"0660\"", ""));
    let p = s.start();
    let front = Addr::Unix(s.sock("front"));
    round_trip(&front, b"through two pipes of one process").expect("round trip");
    // One process: the supervisor and one event loop, whatever the number of pipes.
    let loops = bin_common::thread_names(p.pid())
        .into_iter()
        .filter(|n| n.starts_with("relay-loop"))
        .count();
    assert_eq!(loops, 1, "{:?}", bin_common::thread_names(p.pid()));
    // socket_mode applied to the Unix listener.
    let mode = fs::metadata(s.sock("front"))
        .expect("stat")
        .permissions()
        .mode()
        & 0o7777;
    assert_eq!(mode, 0o660);
    // Log lines name their pipe.
    assert!(
        wait_until(WAIT, || p
            .stderr()
            .contains("pipe back: connection established (-d) with key")),
        "{}",
        p.stderr()
    );
    // status lists both pipes; keys need --pipe when there are two.
    let st = s.ctl(&["status", "--json"]);
    assert_eq!(st.code(), Some(0), "{st:?}");
    assert!(
        st.stdout.contains("\"front\"") && st.stdout.contains("\"back\""),
        "{}",
        st.stdout
    );
    let k = s.ctl(&["keys", "status"]);
    assert_eq!(k.code(), Some(1), "{k:?}");
    assert!(k.stderr.contains("name one with --pipe"), "{k:?}");
    let k = s.ctl(&["keys", "--pipe", "back", "status"]);
    assert_eq!(k.code(), Some(0), "{k:?}");
    assert!(k.stdout.contains("1 key(s) accepted"), "{k:?}");
}

#[test]
fn a_client_connecting_in_a_loop_across_20_reloads_is_never_refused() {
    let s = Setup::new("pipes-loop");
    let extra_pipe = s.pipe(
        "extra",
        "decrypt",
        &s.sock("extra"),
        &s.echo.addr.spiped(),
        "",
    );
    s.write(&s.chain("", ""));
    let p = s.start();
    let front = Addr::Unix(s.sock("front"));
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let errors = Arc::new(std::sync::Mutex::new(Vec::new()));
    let client = {
        let (stop, ok, failed, errors, front) = (
            stop.clone(),
            ok.clone(),
            failed.clone(),
            errors.clone(),
            front.clone(),
        );
        thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(120);
            for i in 0..100_000u32 {
                if stop.load(Ordering::SeqCst) || Instant::now() >= deadline {
                    break;
                }
                match round_trip(&front, format!("loop {i}").as_bytes()) {
                    Ok(()) => ok.fetch_add(1, Ordering::SeqCst),
                    Err(e) => {
                        errors.lock().unwrap().push(format!("{i}: {e}"));
                        failed.fetch_add(1, Ordering::SeqCst)
                    }
                };
            }
        })
    };
    // A long-lived connection across every reload.
    let mut held = front.connect().expect("held connection");
    echo_on(&mut held, b"before").expect("held before");
    for i in 0..20 {
        // Alternate: change front's options (applies to new connections), add and remove a
        // pipe, via SIGHUP and via `spiperelay reload`.
        let front_extra = if i % 2 == 0 { "timeout = 7" } else { "" };
        let more = if i % 4 < 2 { extra_pipe.as_str() } else { "" };
        s.write(&s.chain(front_extra, more));
        if i % 2 == 0 {
            let out = s.ctl(&["reload"]);
            assert_eq!(out.code(), Some(0), "reload {i}: {out:?}");
        } else {
            let before = p.stderr().matches("SIGHUP: reloaded").count();
            hup(&p);
            assert!(
                wait_until(WAIT, || p.stderr().matches("SIGHUP: reloaded").count()
                    > before),
                "reload {i}: {}",
                p.stderr()
            );
        }
        let before = ok.load(Ordering::SeqCst);
        assert!(
            wait_until(WAIT, || ok.load(Ordering::SeqCst) > before + 2),
            "no progress after reload {i}"
        );
    }
    stop.store(true, Ordering::SeqCst);
    client.join().expect("client thread");
    echo_on(&mut held, b"after 20 reloads").expect("held connection survived");
    assert_eq!(
        failed.load(Ordering::SeqCst),
        0,
        "{:?}; {}",
        errors.lock().unwrap(),
        p.stderr()
    );
    assert!(ok.load(Ordering::SeqCst) > 40);
    assert!(
        p.stderr().contains("pipe extra: added") && p.stderr().contains("pipe extra: removed"),
        "{}",
        p.stderr()
    );
}

#[test]
fn a_failed_reload_changes_nothing_and_says_where() {
    let s = Setup::new("pipes-bad");
    let good = s.chain("", "");
    s.write(&good);
    let p = s.start();
    let front = Addr::Unix(s.sock("front"));
    let mut held = front.connect().expect("held");
    echo_on(&mut held, b"before").expect("before");
    // A syntax error, an unknown field, a missing key file, a source taken by another pipe.
    let missing_key = good.replace(
        &format!("keys = [\"{}\"]\n\n[pipe.back]", s.key.display()),
        "keys = [\"/nonexistent/k.key\"]\n\n[pipe.back]",
    );
    assert_ne!(missing_key, good);
    for (bad, words) in [
        (format!("{good}\n[pipe.x\n"), "spiperelay.toml:"),
        (
            good.replace("mode = \"encrypt\"", "mode = \"encrypt\"\nfrobnicate = 1"),
            "pipe.front.frobnicate",
        ),
        (missing_key, "/nonexistent/k.key"),
    ] {
        s.write(&bad);
        let out = s.ctl(&["reload"]);
        assert_eq!(out.code(), Some(1), "{bad}: {out:?}");
        assert!(out.stderr.contains(words), "{words}: {out:?}");
        assert!(out.stderr.contains(":"), "{out:?}");
        round_trip(&front, b"still served").expect("front still served");
        echo_on(&mut held, b"still held").expect("held connection kept");
    }
    assert!(
        p.stderr().contains("failed, running configuration kept"),
        "{}",
        p.stderr()
    );
    // A new pipe that cannot bind: nothing of the reload applies (the other new pipe neither).
    let occupied = s.sock("occupied");
    let _blocker = std::os::unix::net::UnixListener::bind(&occupied).expect("blocker");
    let added_ok = s.pipe(
        "new1",
        "decrypt",
        &s.sock("new1"),
        &s.echo.addr.spiped(),
        "",
    );
    let added_bad = s.pipe("new2", "decrypt", &occupied, &s.echo.addr.spiped(), "");
    s.write(&s.chain("", &format!("{added_ok}{added_bad}")));
    let out = s.ctl(&["reload"]);
    assert_eq!(out.code(), Some(1), "{out:?}");
    assert!(
        out.stderr.contains("pipe new2") && out.stderr.contains("another process is listening"),
        "{out:?}"
    );
    assert!(
        !s.sock("new1").exists(),
        "new1 was bound by a failed reload"
    );
    // The good file again: reload works.
    s.write(&good);
    let out = s.ctl(&["reload"]);
    assert_eq!(out.code(), Some(0), "{out:?}");
    echo_on(&mut held, b"after").expect("held after");
}

#[test]
fn a_removed_pipe_drains_and_an_added_pipe_serves() {
    let s = Setup::new("pipes-add");
    let side = |name: &str| {
        s.pipe(
            name,
            "encrypt",
            &s.sock(name),
            &s.sock("back").display().to_string(),
            "",
        )
    };
    s.write(&s.chain("", &side("old")));
    let p = s.start();
    let old = Addr::Unix(s.sock("old"));
    let mut held = old.connect().expect("old");
    echo_on(&mut held, b"through old").expect("old serves");
    // Remove `old`, add `new`.
    s.write(&s.chain("", &side("new")));
    let out = s.ctl(&["reload"]);
    assert_eq!(out.code(), Some(0), "{out:?}");
    assert!(out.stdout.contains("1 removed"), "{out:?}");
    let new = Addr::Unix(s.sock("new"));
    round_trip(&new, b"through new").expect("added pipe serves");
    // The removed pipe accepts no one, and its established connection carries on.
    assert!(
        wait_until(WAIT, || old.connect().is_err()),
        "removed pipe still accepts"
    );
    echo_on(&mut held, b"still through old").expect("removed pipe's connection drains");
    drop(held);
    assert!(
        p.stderr()
            .contains("pipe old: removed from the configuration"),
        "{}",
        p.stderr()
    );
    // Keys of a named pipe rotate on their own.
    let k2 = s.dir.key("second.key");
    let r = s.ctl(&["keys", "--pipe", "back", "rotate", k2.to_str().unwrap()]);
    assert_eq!(r.code(), Some(0), "{r:?}");
    let back = s.ctl(&["keys", "--pipe", "back", "status"]);
    assert!(back.stdout.contains("2 key(s) accepted"), "{back:?}");
    let front = s.ctl(&["keys", "--pipe", "front", "status"]);
    assert!(front.stdout.contains("1 key(s)"), "{front:?}");
}
