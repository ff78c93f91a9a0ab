//! The seed walkthrough with a real redis-server: redis on a private Unix socket, our `-d` in
//! front of it, our `-e` on a local TCP port; `redis-cli set`/`get` through the pipe work,
//! and `redis-cli` pointed straight at the encrypted (`-d`) port fails. And the README's key
//! rotation runbook end to end (issue 8).
//!
//! Needs the Debian packages redis-server and redis-tools (`scripts/test.sh` installs them);
//! without them the test prints `SKIP: ...` and passes, unless `CI=true`.

mod bin_common;

use std::ffi::OsString;
use std::path::Path;
use std::time::Duration;

use bin_common::{Addr, Fam, Output, Proc, TempDir, args, have_tool, relay_bin, start_end};

const REDIS_SERVER: &str = "/usr/bin/redis-server";
const REDIS_CLI: &str = "/usr/bin/redis-cli";

/// `timeout 10 redis-cli -h 127.0.0.1 -p PORT CMD...`, itself bounded at 15 s.
fn redis_cli(port: u16, cmd: &[&str]) -> Output {
    let mut a = args(["10", REDIS_CLI, "-h", "127.0.0.1", "-p", &port.to_string()]);
    a.extend(cmd.iter().map(OsString::from));
    bin_common::run_bounded(Path::new("timeout"), &a, b"", Duration::from_secs(15))
}

/// Starts redis-server on a Unix socket in `dir` (no TCP, no persistence); killed on drop.
fn start_redis(dir: &TempDir) -> (Proc, Addr) {
    let sock = dir.join("redis.sock");
    let a = args([
        "--port",
        "0",
        "--unixsocket",
        &sock.display().to_string(),
        "--unixsocketperm",
        "700",
        "--save",
        "",
        "--appendonly",
        "no",
        "--daemonize",
        "no",
        "--dir",
        &dir.path().display().to_string(),
    ]);
    let mut p = Proc::spawn(dir, "redis", Path::new(REDIS_SERVER), &a).expect("spawn redis");
    let addr = Addr::Unix(sock);
    if let Err(e) = p.wait_listening(&addr) {
        panic!("redis-server did not start: {e}; stderr {:?}", p.stderr());
    }
    (p, addr)
}

#[test]
fn redis_through_the_pipe() {
    if !have_tool(REDIS_SERVER, "redis-server") || !have_tool(REDIS_CLI, "redis-tools") {
        return;
    }
    let dir = TempDir::new("redis");
    let key = dir.key("key");
    let (_redis, redis_addr) = start_redis(&dir);
    let dec = start_end(
        &dir,
        "dec",
        &relay_bin(),
        "-d",
        Fam::V4,
        &redis_addr,
        &key,
        &[],
    );
    let enc = start_end(
        &dir,
        "enc",
        &relay_bin(),
        "-e",
        Fam::V4,
        dec.addr(),
        &key,
        &[],
    );
    let logs = || format!("enc {:?}, dec {:?}", enc.stderr(), dec.stderr());

    let set = redis_cli(enc.addr().port(), &["set", "test", "success"]);
    assert_eq!(set.code(), Some(0), "set: {set:?}; {}", logs());
    assert_eq!(String::from_utf8_lossy(&set.stdout).trim(), "OK", "set");

    let get = redis_cli(enc.addr().port(), &["get", "test"]);
    assert_eq!(get.code(), Some(0), "get: {get:?}; {}", logs());
    assert_eq!(
        String::from_utf8_lossy(&get.stdout).trim(),
        "success",
        "get"
    );

    // Plain redis-cli against the encrypted port: a protocol error or a closed connection.
    let direct = redis_cli(dec.addr().port(), &["get", "test"]);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&direct.stdout),
        direct.stderr
    );
    assert!(
        !text.contains("success"),
        "the encrypted port served plaintext: {direct:?}"
    );
    assert!(
        direct.code() != Some(0) || text.to_lowercase().contains("error"),
        "redis-cli straight at the -d port should fail: {direct:?}"
    );
}

/// `spiperelay keys --control CTL WORDS...`, requiring exit 0 unless `fail` is set; returns
/// stdout or stderr.
fn keys(ctl: &Path, words: &[&str], file: Option<&Path>, fail: bool) -> String {
    let out = keys_output(ctl, words, file);
    assert_eq!(
        out.code(),
        Some(if fail { 1 } else { 0 }),
        "keys {words:?}: {out:?}"
    );
    if fail {
        out.stderr
    } else {
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

/// `spiperelay keys --control CTL WORDS... [FILE]`, bounded.
fn keys_output(ctl: &Path, words: &[&str], file: Option<&Path>) -> Output {
    let mut a = args(["keys", "--control"]);
    a.push(ctl.into());
    a.extend(words.iter().map(OsString::from));
    if let Some(f) = file {
        a.push(f.into());
    }
    bin_common::run_bounded(&relay_bin(), &a, b"", Duration::from_secs(15))
}

/// One inline Redis command on a long-lived connection; returns the reply line.
fn inline(conn: &mut bin_common::Conn, cmd: &str) -> String {
    use std::io::{Read, Write};
    conn.write_all(format!("{cmd}\r\n").as_bytes())
        .expect("redis write");
    let mut reply = Vec::new();
    let mut byte = [0u8; 1];
    while !reply.ends_with(b"\r\n") && reply.len() < 4096 {
        match conn.read(&mut byte) {
            Ok(1) => reply.push(byte[0]),
            other => panic!("redis reply to {cmd}: {other:?} after {reply:?}"),
        }
    }
    String::from_utf8_lossy(&reply).trim_end().to_owned()
}

/// The README's rotation runbook against a real Redis: the server (`-d`) rotates in the new
/// key, one client end (ours, over its control socket) switches with rotate + set, the other
/// (a real spiped) is restarted with the new key, the server's SET waits for the last
/// long-lived old-key connection, and afterwards an old-key client is refused. A long-lived
/// Redis connection keeps working throughout.
#[test]
fn redis_key_rotation_runbook() {
    if !have_tool(REDIS_SERVER, "redis-server")
        || !have_tool(REDIS_CLI, "redis-tools")
        || !bin_common::have_spiped()
        || !bin_common::relay_is_ours()
    {
        return;
    }
    let dir = TempDir::new("redis-rot");
    let old = dir.key("old");
    let new = dir.key("newkey");
    let (ctl_db, ctl_app) = (dir.join("db.ctl"), dir.join("app.ctl"));
    let (_redis, redis_addr) = start_redis(&dir);
    let db_flags = ["--control", ctl_db.to_str().expect("utf-8 path")];
    let db = start_end(
        &dir,
        "db",
        &relay_bin(),
        "-d",
        Fam::V4,
        &redis_addr,
        &old,
        &db_flags,
    );
    let app_flags = ["--control", ctl_app.to_str().expect("utf-8 path")];
    let app1 = start_end(
        &dir,
        "app1",
        &relay_bin(),
        "-e",
        Fam::V4,
        db.addr(),
        &old,
        &app_flags,
    );
    let spiped = bin_common::spiped_bin();
    let app2 = start_end(&dir, "app2", &spiped, "-e", Fam::V4, db.addr(), &old, &[]);
    let logs = || format!("db {:?}, app1 {:?}", db.stderr(), app1.stderr());
    let works = |port: u16, what: &str| {
        let out = redis_cli(port, &["incr", "counter"]);
        assert_eq!(out.code(), Some(0), "{what}: {out:?}; {}", logs());
        assert!(
            String::from_utf8_lossy(&out.stdout)
                .trim()
                .parse::<u64>()
                .is_ok(),
            "{what}: {out:?}"
        );
    };
    let mut long_lived = app1.addr().connect().expect("connect");
    assert_eq!(inline(&mut long_lived, "PING"), "+PONG");

    // 2. db accepts both keys.
    keys(&ctl_db, &["rotate"], Some(&new), false);
    works(app1.addr().port(), "app1 after db rotate");
    works(app2.addr().port(), "app2 after db rotate");
    // 3. app1 switches over its control socket; app2 (spiped) is restarted with the new key.
    keys(&ctl_app, &["rotate"], Some(&new), false);
    keys(&ctl_app, &["set"], Some(&new), false);
    drop(app2);
    let app2 = start_end(
        &dir,
        "app2new",
        &spiped,
        "-e",
        Fam::V4,
        db.addr(),
        &new,
        &[],
    );
    works(app1.addr().port(), "app1 on the new key");
    works(app2.addr().port(), "app2 on the new key");
    assert_eq!(
        inline(&mut long_lived, "PING"),
        "+PONG",
        "long-lived connection"
    );
    // 4. The long-lived connection still uses the old key: SET waits for it.
    let refused = keys(&ctl_db, &["set"], Some(&new), true);
    assert!(
        refused.contains("still used by 1 live connection"),
        "{refused}"
    );
    assert_eq!(inline(&mut long_lived, "QUIT"), "+OK");
    drop(long_lived);
    // 5. Once it has gone (the count drops when the daemon closes it), SET succeeds.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let mut last = String::new();
    for _ in 0..500 {
        let out = keys_output(&ctl_db, &["set"], Some(&new));
        last = format!("{}{}", String::from_utf8_lossy(&out.stdout), out.stderr);
        if out.code() == Some(0) || std::time::Instant::now() >= deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(last.contains("set key"), "db set never succeeded: {last}");
    works(app1.addr().port(), "app1 after db set");
    works(app2.addr().port(), "app2 after db set");
    // A client still on the old key is refused now.
    let stale = start_end(&dir, "stale", &spiped, "-e", Fam::V4, db.addr(), &old, &[]);
    let out = redis_cli(stale.addr().port(), &["incr", "counter"]);
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse::<u64>()
            .is_err(),
        "an old-key client was served after SET: {out:?}"
    );
    let status = keys(&ctl_db, &["status"], None, false);
    assert!(status.contains("1 key(s) accepted"), "{status}");
}
