//! Black-box tests of `spiperelay check-config`: every shipped configuration (`examples/*.toml`,
//! `dist/spiperelay.toml`) is valid once its key files exist, and a bad file gets every error
//! as `FILE:LINE:COL: FIELD: MESSAGE` and exit status 1. The shipped files name keys under
//! `/etc/spiperelay/`; the test copies each one into a temporary directory with that prefix
//! pointed there and real key files made by `spiperelay keygen`. Every run is bounded (10 s).
//! `spiperelay --config FILE` runs a one-pipe file against a command-line end and an echo
//! server on loopback, and refuses a bad file with check-config's words.

mod bin_common;

use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bin_common::{
    Echo, Fam, Output, Proc, Reply, TempDir, args, assert_echo, run_bounded, start_end,
};

const BOUND: Duration = Duration::from_secs(10);

/// Our own binary (check-config is not a spiped command, so no `SPIPERELAY_TEST_BIN`).
fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_spiperelay"))
}

fn check(file: &Path) -> Output {
    let args: Vec<OsString> = vec!["check-config".into(), file.into()];
    run_bounded(&bin(), &args, b"", BOUND)
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The shipped configurations, relative to the repository.
fn shipped() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files: Vec<PathBuf> = fs::read_dir(root.join("examples"))
        .expect("examples/")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    files.push(root.join("dist/spiperelay.toml"));
    files
}

/// `text` with `/etc/spiperelay/` moved to `dir`, every key file it names created there, and
/// every account it names (`user`, `group`, `socket_owner`, `socket_group`) replaced by
/// `root`, which every host has (check-config looks accounts up).
fn localize(text: &str, dir: &TempDir) -> String {
    let prefix = format!("{}/", dir.path().display());
    let text: String = text
        .replace("/etc/spiperelay/", &prefix)
        .lines()
        .map(|line| {
            let field = line.split('=').next().unwrap_or("").trim();
            if ["user", "group", "socket_owner", "socket_group"].contains(&field) {
                format!("{field} = \"root\"\n")
            } else {
                format!("{line}\n")
            }
        })
        .collect();
    for piece in text.split('"') {
        if piece.starts_with(&prefix) && piece.ends_with(".key") {
            let path = PathBuf::from(piece);
            if !path.exists() {
                let args: Vec<OsString> = vec!["keygen".into(), path.clone().into()];
                let out = run_bounded(&bin(), &args, b"", BOUND);
                assert_eq!(out.code(), Some(0), "keygen {}: {out:?}", path.display());
            }
        }
    }
    text
}

#[test]
fn every_shipped_configuration_is_valid() {
    let files = shipped();
    let names: Vec<String> = files
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    for want in [
        "client.toml",
        "redis-host.toml",
        "replication-a.toml",
        "replication-b.toml",
        "spiperelay.toml",
    ] {
        assert!(names.iter().any(|n| n == want), "{want} missing: {names:?}");
    }
    for file in files {
        let dir = TempDir::new("cc");
        let text = fs::read_to_string(&file).expect("read example");
        assert!(
            text.contains("/etc/spiperelay/"),
            "{}: keys are expected under /etc/spiperelay/",
            file.display()
        );
        let local = dir.join("config.toml");
        fs::write(&local, localize(&text, &dir)).expect("write config");
        let out = check(&local);
        assert_eq!(out.code(), Some(0), "{}: {out:?}", file.display());
        assert!(out.stderr.is_empty(), "{}: {}", file.display(), out.stderr);
        // One summary line per pipe.
        let pipes = text
            .lines()
            .filter(|l| l.trim_start().starts_with("[pipe."))
            .count();
        let lines = stdout(&out);
        assert_eq!(lines.lines().count(), pipes, "{}: {lines}", file.display());
        assert!(lines.lines().all(|l| l.contains(" -> ")), "{lines}");
    }
}

#[test]
fn the_replication_pair_mirrors_each_other() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let a = fs::read_to_string(root.join("examples/replication-a.toml")).unwrap();
    let b = fs::read_to_string(root.join("examples/replication-b.toml")).unwrap();
    let addr = |text: &str, pipe: &str, field: &str| -> String {
        let body = text.split(&format!("[pipe.{pipe}]")).nth(1).unwrap();
        let line = body
            .lines()
            .find(|l| l.starts_with(&format!("{field} = ")))
            .unwrap();
        line.split('"').nth(1).unwrap().to_owned()
    };
    // A sends to B's receive pipe and B to A's.
    assert_eq!(addr(&a, "send", "target"), addr(&b, "receive", "source"));
    assert_eq!(addr(&b, "send", "target"), addr(&a, "receive", "source"));
}

#[test]
fn every_error_is_reported_with_its_place() {
    let dir = TempDir::new("ccbad");
    let fifo = dir.join("fifo.key");
    let st = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("mkfifo");
    assert!(st.success());
    let keydir = dir.join("keydir");
    fs::create_dir(&keydir).unwrap();
    let good = dir.key("good.key");
    let text = format!(
        r#"[process]
threads = 100

[pipe.a]
mode = "decrypt"
source = "[0.0.0.0]:8025"
target = "/run/redis.sock"
keys = ["{good}", "{missing}", "{fifo}", "{keydir}"]
max_keys = 4
colour = "blue"

[pipe.b]
mode = "encrypt"
source = "[127.0.0.1]:8025"
target = "nope"
keys = ["{good}"]
pfs = "disabled"
x25519 = true
"#,
        good = good.display(),
        missing = dir.join("missing.key").display(),
        fifo = fifo.display(),
        keydir = keydir.display(),
    );
    let file = dir.join("bad.toml");
    fs::write(&file, &text).unwrap();
    let out = check(&file);
    assert_eq!(out.code(), Some(1), "{out:?}");
    assert!(stdout(&out).is_empty(), "{out:?}");
    let name = file.display().to_string();
    let lines: Vec<&str> = out.stderr.lines().collect();
    let expect = [
        ("2:11", "process.threads", "out of range"),
        ("8:", "pipe.a.keys[1]", "No such file"),
        ("8:", "pipe.a.keys[2]", "is a FIFO, not a regular file"),
        ("8:", "pipe.a.keys[3]", "is a directory, not a regular file"),
        ("10:1", "pipe.a.colour", "unknown field `colour`"),
        (
            "14:10",
            "pipe.b.source",
            "already used by pipe.a.source (line 6)",
        ),
        ("15:10", "pipe.b.target", "Address must contain port number"),
        ("18:10", "pipe.b.x25519", "cannot be combined"),
    ];
    for (i, (at, field, words)) in expect.iter().enumerate() {
        let line = lines
            .get(i)
            .unwrap_or_else(|| panic!("line {i} missing: {lines:#?}"));
        let head = format!("{name}:{at}");
        assert!(
            line.starts_with(&head),
            "{line:?} should start with {head:?}"
        );
        assert!(
            line.contains(&format!(": {field}: ")),
            "{line:?}: field {field}"
        );
        assert!(line.contains(words), "{line:?}: {words}");
    }
    assert_eq!(lines.len(), expect.len() + 1, "{lines:#?}");
    assert_eq!(lines[expect.len()], format!("{name}: 8 errors"));
}

#[test]
fn warnings_do_not_fail_the_check() {
    let dir = TempDir::new("ccwarn");
    let short = dir.join("short.key");
    fs::write(&short, b"0123").unwrap();
    let text = format!(
        "[pipe.a]\nmode = \"encrypt\"\nsource = \"/run/a.sock\"\ntarget = \"h:1\"\nkeys = [\"{}\"]\n",
        short.display()
    );
    let file = dir.join("c.toml");
    fs::write(&file, &text).unwrap();
    let out = check(&file);
    assert_eq!(out.code(), Some(0), "{out:?}");
    assert!(
        out.stderr
            .contains(":5:9: pipe.a.keys[0]: warning: key file"),
        "{out:?}"
    );
    assert!(out.stderr.contains("holds only 4 bytes"), "{out:?}");
    assert_eq!(
        stdout(&out).trim(),
        "a: encrypt /run/a.sock -> h:1, 1 key, max 100 connections"
    );
}

#[test]
fn command_line_and_file_errors() {
    let dir = TempDir::new("ccargs");
    let run = |a: &[&str]| {
        let args: Vec<OsString> = std::iter::once("check-config")
            .chain(a.iter().copied())
            .map(OsString::from)
            .collect();
        run_bounded(&bin(), &args, b"", BOUND)
    };
    let out = run(&[]);
    assert_eq!(out.code(), Some(1));
    assert!(
        out.stderr.contains("a configuration file is required"),
        "{out:?}"
    );
    assert!(
        out.stderr.contains("usage: spiperelay check-config"),
        "{out:?}"
    );
    let out = run(&["a", "b"]);
    assert_eq!(out.code(), Some(1));
    let out = run(&["-x"]);
    assert_eq!(out.code(), Some(1));
    assert!(out.stderr.contains("illegal option -- -x"), "{out:?}");
    let out = run(&["--help"]);
    assert_eq!(out.code(), Some(0));
    let missing = dir.join("none.toml");
    let out = run(&[missing.to_str().unwrap()]);
    assert_eq!(out.code(), Some(1));
    assert!(out.stderr.contains("cannot read"), "{out:?}");
    let bin_file = dir.join("bin.toml");
    fs::write(&bin_file, b"[pipe.a]\n\xff").unwrap();
    let out = run(&[bin_file.to_str().unwrap()]);
    assert_eq!(out.code(), Some(1));
    assert!(out.stderr.contains(":2:1: toml: not UTF-8"), "{out:?}");
    // Listed in the help.
    let args: Vec<OsString> = vec!["--help".into()];
    let out = run_bounded(&bin(), &args, b"", BOUND);
    assert!(
        stdout(&out).contains("spiperelay check-config FILE"),
        "{out:?}"
    );
}

/// A pipe from a configuration file carries traffic exactly as the same pipe from a command
/// line: a `--config` encrypt end in front of a command-line decrypt end in front of an echo
/// server, over TCP and with a Unix-socket source.
#[test]
fn a_one_pipe_config_runs() {
    let dir = TempDir::new("ccrun");
    let key = dir.key("k.key");
    let echo = Echo::start(Fam::V4, &dir, Reply::Stream);
    let dec = start_end(&dir, "dec", &bin(), "-d", Fam::V4, &echo.addr, &key, &[]);
    for fam in [Fam::V4, Fam::Unix] {
        let file = dir.join(&format!("enc-{fam:?}.toml"));
        let enc = Proc::start_listening(&dir, "enc", &bin(), fam, |src| {
            let text = format!(
                "[pipe.link]\nmode = \"encrypt\"\nsource = \"{src}\"\ntarget = \"{}\"\n\
                 keys = [\"{}\"]\nmax_connections = 4\n",
                dec.addr().spiped(),
                key.display()
            );
            fs::write(&file, text).expect("write config");
            args([OsString::from("--config"), file.clone().into()])
        });
        assert_echo(enc.addr(), b"through a configuration file", "--config end");
        drop(enc);
    }
}

#[test]
fn config_refuses_what_check_config_refuses_with_the_same_words() {
    let dir = TempDir::new("ccref");
    let file = dir.join("bad.toml");
    fs::write(
        &file,
        "[pipe.a]\nmode = \"encrypt\"\nsource = \"nope\"\ntarget = \"h:1\"\nkeys = [\"/none.key\"]\n",
    )
    .unwrap();
    let run = |a: Vec<OsString>| run_bounded(&bin(), &a, b"", BOUND);
    let checked = check(&file);
    let out = run(args([OsString::from("--config"), file.clone().into()]));
    assert_eq!(out.code(), Some(1), "{out:?}");
    let errors: Vec<&str> = checked
        .stderr
        .lines()
        .filter(|l| l.contains(": pipe.a."))
        .collect();
    assert_eq!(errors.len(), 2, "{checked:?}");
    for e in errors {
        assert!(out.stderr.contains(e), "{e:?} not in {:?}", out.stderr);
    }
    // A valid file whose target does not resolve: the daemon's startup error names the pipe.
    let key = dir.key("k.key");
    let two = format!(
        "[pipe.a]\nmode = \"encrypt\"\nsource = \"{}\"\ntarget = \"nonexistent.invalid:1\"\n\
         keys = [\"{k}\"]\nsocket_mode = \"0600\"\n",
        dir.sock_path("a").display(),
        k = key.display()
    );
    fs::write(&file, two).unwrap();
    assert_eq!(check(&file).code(), Some(0));
    let eq = OsString::from(format!("--config={}", file.display()));
    let out = run(vec![eq]);
    assert_eq!(out.code(), Some(1), "{out:?}");
    assert!(
        out.stderr
            .contains("pipe a: error resolving socket nonexistent.invalid:1"),
        "{out:?}"
    );
    let out = run(args(["--config"]));
    assert_eq!(out.code(), Some(1));
    assert!(out.stderr.contains("usage: spiperelay --config"), "{out:?}");
    let out = run(args([OsString::from("--config"), file.into(), "-F".into()]));
    assert_eq!(out.code(), Some(1));
}

#[test]
fn unknown_accounts_are_errors_with_their_place() {
    let dir = TempDir::new("cc-acct");
    let key = dir.key("k.key");
    let file = dir.join("acct.toml");
    fs::write(
        &file,
        format!(
            "[process]\nuser = \"nosuchuser-spr\"\ngroup = \"root\"\n\n[pipe.a]\nmode = \"decrypt\"\n\
             source = \"{}\"\ntarget = \"[127.0.0.1]:1\"\nkeys = [\"{}\"]\n\
             socket_group = \"nosuchgroup-spr\"\n",
            dir.sock_path("a").display(),
            key.display()
        ),
    )
    .unwrap();
    let out = check(&file);
    assert_eq!(out.code(), Some(1), "{out:?}");
    let name = file.display().to_string();
    assert!(
        out.stderr.contains(&format!(
            "{name}:2:8: process.user: no such user: nosuchuser-spr"
        )),
        "{out:?}"
    );
    assert!(
        out.stderr.contains(&format!(
            "{name}:10:16: pipe.a.socket_group: no such group: nosuchgroup-spr"
        )),
        "{out:?}"
    );
    assert!(
        !out.stderr.contains("process.group"),
        "root exists: {out:?}"
    );
}

/// The seed's client/server case from the shipped examples, running: `client.toml` (two
/// encrypting pipes, one on a Unix socket, one on TCP) in front of `redis-host.toml` (one
/// decrypting pipe) in front of an echo server standing in for Redis. Addresses are moved to
/// loopback and the test's directory; the account settings (`user`, `group`,
/// `socket_group`), which need root and those accounts, are left out.
#[test]
fn the_client_and_redis_host_examples_start_and_serve() {
    let dir = TempDir::new("cc-run");
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let echo = Echo::start(Fam::Unix, &dir, Reply::Stream);
    let (db, local) = (
        bin_common::free_tcp_addr(Fam::V4),
        bin_common::free_tcp_addr(Fam::V4),
    );
    let run_dir = format!("{}/", dir.path().display());
    let adapt = |name: &str, tag: &str| -> PathBuf {
        let text = fs::read_to_string(root.join("examples").join(name)).expect("example");
        let text: String = localize(&text, &dir)
            .replace("/run/spiperelay/", &format!("{run_dir}{tag}-"))
            .replace("db.example.net:8025", &format!("[127.0.0.1]:{}", db.port()))
            .replace("[0.0.0.0]:8025", &format!("[127.0.0.1]:{}", db.port()))
            .replace("[127.0.0.1]:6379", &format!("[127.0.0.1]:{}", local.port()))
            .replace("/run/redis/redis-server.sock", &echo.addr.spiped())
            .lines()
            .filter(|l| {
                let field = l.split('=').next().unwrap_or("").trim();
                !["user", "group", "socket_group", "socket_owner"].contains(&field)
            })
            .map(|l| format!("{l}\n"))
            .collect();
        let path = dir.join(&format!("{tag}.toml"));
        fs::write(&path, text).expect("write");
        assert_eq!(check(&path).code(), Some(0), "{name}");
        path
    };
    let host = adapt("redis-host.toml", "host");
    let client = adapt("client.toml", "client");
    let start = |path: &Path, name: &str, listen: &bin_common::Addr| {
        let a = args([OsString::from("--config"), path.into()]);
        let mut p = Proc::spawn(&dir, name, &bin(), &a).expect("spawn");
        p.wait_listening(listen)
            .unwrap_or_else(|e| panic!("{name}: {e}: {}", p.stderr()));
        p
    };
    let _host = start(&host, "host", &bin_common::Addr::Tcp(db));
    let unix = bin_common::Addr::Unix(PathBuf::from(format!("{run_dir}client-redis.sock")));
    let client = start(&client, "client", &unix);
    assert_echo(
        &unix,
        b"PING through the Unix pipe\r\n",
        "client.toml pipe redis",
    );
    let tcp = bin_common::Addr::Tcp(local);
    assert_echo(
        &tcp,
        b"PING through the TCP pipe\r\n",
        "client.toml pipe redis-tcp",
    );
    let log = client.stderr();
    assert!(log.contains("pipe redis: connection established"), "{log}");
    assert!(
        log.contains("pipe redis-tcp: connection established"),
        "{log}"
    );
}
