//! Observability of a running daemon, black-box: one process with a configuration file of
//! three pipes, `metrics` on a Unix socket, an `audit_log` file and a control socket. Real
//! traffic, a wrong-key client, a refused target and a removed key each land in the right
//! Prometheus counter with the right labels; `spiperelay status --json` reports the same
//! pipes; the audit log has one JSON line per closed connection, with its pipe, reason and
//! bytes; and the exposition passes `promtool check metrics` (Debian's `prometheus` package;
//! without it that one check says SKIP, except under `CI=true`).

mod bin_common;

use std::ffi::OsString;
use std::fs;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use bin_common::{
    Addr, Conn, Echo, Fam, Proc, Reply, TempDir, args, have_tool, relay_bin, run_bounded,
    wait_until,
};

const WAIT: Duration = Duration::from_secs(15);
const PROMTOOL: &str = "/usr/bin/promtool";

/// `GET /metrics` over the Unix socket at `path`: the body.
fn scrape(path: &Path) -> String {
    let mut s = UnixStream::connect(path).expect("connect to the metrics socket");
    s.set_read_timeout(Some(WAIT)).expect("timeout");
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .expect("request");
    let mut answer = String::new();
    s.read_to_string(&mut answer).expect("answer");
    let (head, body) = answer.split_once("\r\n\r\n").expect("HTTP answer");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    body.to_owned()
}

/// The value of the sample `name{labels}` (labels exactly as exposed), if present.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
}

fn echo_on(c: &mut Conn, msg: &[u8]) {
    c.write_all(msg).expect("write");
    let mut got = vec![0u8; msg.len()];
    c.read_exact(&mut got).expect("read");
    assert_eq!(got, msg);
}

/// `spiperelay spipe -t TARGET -k KEY` with `payload` on standard input.
fn spipe(target: &Path, key: &Path, payload: &[u8]) -> bin_common::Output {
    let a = args([
        OsString::from("spipe"),
        "-t".into(),
        target.into(),
        "-k".into(),
        key.into(),
    ]);
    run_bounded(&relay_bin(), &a, payload, WAIT)
}

#[test]
fn metrics_status_and_audit_log_tell_what_happened() {
    let dir = TempDir::new("observe");
    let echo = Echo::start(Fam::Unix, &dir, Reply::Stream);
    let (key, wrong, next) = (dir.key("k.key"), dir.key("wrong.key"), dir.key("next.key"));
    let sock = |n: &str| -> PathBuf { dir.join(&format!("{n}.sock")) };
    let (metrics, control, audit) = (sock("metrics"), sock("control"), dir.join("audit.log"));
    let pipe = |name: &str, mode: &str, target: &str| {
        format!(
            "[pipe.{name}]\nmode = \"{mode}\"\nsource = \"{}\"\ntarget = \"{target}\"\n\
             keys = [\"{}\"]\n\n",
            sock(name).display(),
            key.display()
        )
    };
    // A socket file nobody listens on: connecting to it is refused.
    let refusing = dir.join("nobody-listens.sock");
    drop(std::os::unix::net::UnixListener::bind(&refusing).expect("bind"));
    let file = dir.join("observe.toml");
    let text = format!(
        "[process]\ncontrol = \"{}\"\nmetrics = \"{}\"\naudit_log = \"{}\"\n\n{}{}{}",
        control.display(),
        metrics.display(),
        audit.display(),
        pipe("front", "encrypt", &sock("back").display().to_string()),
        pipe("back", "decrypt", &echo.addr.spiped()),
        pipe(
            "dead",
            "decrypt",
            &dir.join("nobody-listens.sock").display().to_string()
        ),
    );
    fs::write(&file, text).expect("config");
    let a = args([OsString::from("--config"), file.into()]);
    let mut relay = Proc::spawn(&dir, "relay", &relay_bin(), &a).expect("spawn");
    let front = Addr::Unix(sock("front"));
    relay
        .wait_listening(&front)
        .unwrap_or_else(|e| panic!("{e}: {}", relay.stderr()));

    // Real traffic: three connections through front -> back -> echo, one kept open.
    for i in 0..2 {
        let mut c = front.connect().expect("front");
        echo_on(&mut c, format!("hello {i}").as_bytes());
    }
    let mut held = front.connect().expect("held");
    echo_on(&mut held, b"held open");
    // A wrong-key client at back, and a right-key client at dead, whose target refuses.
    let out = spipe(&sock("back"), &wrong, b"wrong key\n");
    assert_ne!(out.code(), Some(0), "{out:?}");
    let out = spipe(&sock("dead"), &key, b"nobody there\n");
    assert_ne!(out.code(), Some(0), "{out:?}");
    // A removed key: back accepts only `next` from now on; the held connection still uses
    // the old one.
    let ctl = |words: &[&str]| {
        let mut a = vec![
            OsString::from(words[0]),
            "--control".into(),
            control.clone().into(),
        ];
        a.extend(words[1..].iter().map(OsString::from));
        run_bounded(&relay_bin(), &a, b"", WAIT)
    };
    let next_s = next.to_str().expect("path");
    assert_eq!(
        ctl(&["keys", "--pipe", "back", "rotate", next_s]).code(),
        Some(0)
    );
    let set = ctl(&["keys", "--pipe", "back", "set", "--force", next_s]);
    assert_eq!(set.code(), Some(0), "{set:?}");
    let old_fp = fingerprint_of(&key);

    // Every event in its counter, with its labels (the loops publish every 100 ms).
    let want: Vec<(String, f64)> = vec![
        (
            r#"spiperelay_connections_accepted_total{pipe="front"}"#.into(),
            3.0,
        ),
        (r#"spiperelay_connections_active{pipe="front"}"#.into(), 1.0),
        (
            r#"spiperelay_connections_closed_total{pipe="front",reason="clean"}"#.into(),
            2.0,
        ),
        (
            r#"spiperelay_handshake_failures_total{pipe="back",reason="bad_mac"}"#.into(),
            1.0,
        ),
        (
            r#"spiperelay_connections_closed_total{pipe="dead",reason="target_refused"}"#.into(),
            1.0,
        ),
        (
            format!(r#"spiperelay_key_info{{pipe="back",fingerprint="{old_fp}",state="removed"}}"#),
            1.0,
        ),
        (
            format!(r#"spiperelay_key_connections{{pipe="back",fingerprint="{old_fp}"}}"#),
            1.0,
        ),
    ];
    let mut text = String::new();
    let all_there = wait_until(WAIT, || {
        text = scrape(&metrics);
        want.iter()
            .all(|(series, v)| sample(&text, series).is_some_and(|got| got >= *v))
    });
    assert!(
        all_there,
        "missing or low: {:?}\n--- exposition:\n{text}\n--- log:\n{}",
        want.iter()
            .filter(|(s, v)| !sample(&text, s).is_some_and(|g| g >= *v))
            .collect::<Vec<_>>(),
        relay.stderr()
    );
    assert!(
        sample(
            &text,
            r#"spiperelay_received_bytes_total{pipe="front",side="plaintext"}"#
        )
        .is_some_and(|b| b > 0.0),
        "{text}"
    );
    // No key material: not the key file's bytes in hex, not in any form the text could hold.
    let key_hex: String = fs::read(&key)
        .expect("key")
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert!(!text.contains(&key_hex[..16]), "{text}");
    if have_tool(PROMTOOL, "prometheus (promtool)") {
        let mut child = Command::new(PROMTOOL)
            .args(["check", "metrics"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("promtool");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(text.as_bytes())
            .expect("feed promtool");
        let out = child.wait_with_output().expect("promtool");
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success() && said.trim().is_empty(), "{said}");
    }

    // status --json: the same pipes, with their counts.
    let st = ctl(&["status", "--json"]);
    assert_eq!(st.code(), Some(0), "{st:?}");
    let json = String::from_utf8_lossy(&st.stdout).into_owned();
    for name in ["\"front\"", "\"back\"", "\"dead\""] {
        assert!(json.contains(name), "{json}");
    }
    assert!(json.contains("removed"), "{json}");

    // The audit log: one line per closed connection, with pipe, reason and bytes.
    drop(held);
    let lines = || fs::read_to_string(&audit).unwrap_or_default();
    assert!(
        wait_until(WAIT, || lines().lines().count() >= 10),
        "audit log:\n{}",
        lines()
    );
    let log = lines();
    assert!(
        log.lines().all(|l| l.starts_with('{') && l.ends_with('}')),
        "{log}"
    );
    let has = |pipe: &str, reason: &str| {
        log.lines().any(|l| {
            l.contains(&format!("\"pipe\":\"{pipe}\"")) && l.contains(&format!("\"{reason}\""))
        })
    };
    assert!(has("back", "bad_mac"), "{log}");
    assert!(has("dead", "target_refused"), "{log}");
    assert!(has("front", "clean"), "{log}");
    // Reload reopens the file (logrotate): move it away, reload, and new lines go to a new file.
    fs::rename(&audit, dir.join("audit.log.1")).expect("rotate");
    assert_eq!(ctl(&["reload"]).code(), Some(0));
    let mut c = front.connect().expect("after rotation");
    echo_on(&mut c, b"after rotation");
    drop(c);
    assert!(
        wait_until(WAIT, || lines().contains("\"pipe\":\"front\"")),
        "no line in the reopened audit log; {}",
        relay.stderr()
    );
}

/// The fingerprint of the key file at `path`, as the logs, `keys status` and the metrics show.
fn fingerprint_of(path: &Path) -> String {
    spiperelay::proto::key::Key::from_key_file(&fs::read(path).expect("key file")).fingerprint()
}
