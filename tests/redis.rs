//! The seed walkthrough with a real redis-server: redis on a private Unix socket, our `-d` in
//! front of it, our `-e` on a local TCP port; `redis-cli set`/`get` through the pipe work,
//! and `redis-cli` pointed straight at the encrypted (`-d`) port fails.
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
