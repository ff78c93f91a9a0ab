use std::collections::BTreeMap;

use proptest::prelude::*;

use super::*;

const MINIMAL: &str = r#"
[pipe.redis]
mode = "decrypt"
source = "[0.0.0.0]:8025"
target = "/run/redis.sock"
keys = ["/etc/spiperelay/redis.key"]
"#;

/// A key check with a fixed answer per path (missing paths are fine).
#[derive(Default)]
struct FakeKeys(BTreeMap<PathBuf, Result<Vec<String>, String>>);

impl KeyCheck for FakeKeys {
    fn check(&mut self, path: &Path) -> Result<Vec<String>, String> {
        self.0.get(path).cloned().unwrap_or(Ok(Vec::new()))
    }
}

fn errors(text: &str) -> Vec<(String, String, String)> {
    match parse(text) {
        Ok(c) => panic!("parsed: {c:?}"),
        Err(errs) => {
            assert!(!errs.is_empty());
            errs.iter()
                .map(|e| {
                    (
                        e.location(text).to_string(),
                        e.field.clone(),
                        e.kind.to_string(),
                    )
                })
                .collect()
        }
    }
}

fn one_error(text: &str) -> (String, String, String) {
    let mut e = errors(text);
    assert_eq!(e.len(), 1, "{e:#?}");
    e.remove(0)
}

#[test]
fn minimal_pipe_has_defaults() {
    let c = parse(MINIMAL).unwrap();
    assert_eq!(c.settings.threads, 1);
    assert_eq!(c.settings.log, LogTarget::Stderr);
    assert!(!c.settings.daemonize);
    assert_eq!(c.pipes.len(), 1);
    let expected = PipeSpec::new(
        "redis",
        Mode::Decrypt,
        SockAddrSpec::parse("[0.0.0.0]:8025").unwrap(),
        SockAddrSpec::parse("/run/redis.sock").unwrap(),
        vec![KeySource::File("/etc/spiperelay/redis.key".into())],
    );
    assert_eq!(c.pipes[0], expected);
}

#[test]
fn every_field() {
    let text = r#"
[process]
control = "/run/spiperelay/control.sock"
log = "syslog"
threads = 4
daemonize = true
pidfile = "/run/spiperelay.pid"
wait_for_dns = true
user = "spiperelay"
group = "nogroup"
shutdown_timeout = 2.5
metrics = "[127.0.0.1]:9100"
audit_log = "stderr"

[pipe.b]
mode = "encrypt"
source = "/run/b.sock"
target = "redis.example:8025"
keys = ["/k/new", "/k/old", "/k/older"]
pfs = "required"
x25519 = true
keepalive = true
max_connections = 0
handshake_limit = 50
timeout = 0.5
resolve_interval = 30
bind = "192.0.2.1:0"
max_keys = 3
socket_mode = "0660"
socket_owner = "redis"
socket_group = "redis"
target_tcp = { keepalive_idle = 60, keepalive_interval = 10, keepalive_count = 6, user_timeout = 30 }

[pipe.a]
mode = "decrypt"
source = "[::1]:8025"
target = "[127.0.0.1]:6379"
keys = ["/k/a"]
pfs = "disabled"
keepalive = false
re_resolve = false

[pipe.a.source_tcp]
user_timeout = 0.25
"#;
    let c = parse(text).unwrap();
    let s = &c.settings;
    assert_eq!(s.control, Some("/run/spiperelay/control.sock".into()));
    assert_eq!(s.log, LogTarget::Syslog);
    assert_eq!(s.threads, 4);
    assert!(s.daemonize && s.wait_for_dns);
    assert_eq!(s.pidfile, Some("/run/spiperelay.pid".into()));
    assert_eq!(
        s.user,
        Some(UserGroup::UserAndGroup {
            user: "spiperelay".into(),
            group: "nogroup".into()
        })
    );
    assert_eq!(s.shutdown_timeout, Some(Duration::from_millis(2500)));
    assert_eq!(
        s.metrics,
        Some(SockAddrSpec::parse("[127.0.0.1]:9100").unwrap())
    );
    assert_eq!(s.audit_log, Some(AuditLog::Stderr));

    // File order, not alphabetical.
    let names: Vec<_> = c.pipes.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["b", "a"]);
    let b = &c.pipes[0];
    assert_eq!(b.mode, Mode::Encrypt);
    assert_eq!(b.keys.len(), 3);
    assert_eq!(b.pfs, PfsPolicy::Required);
    assert!(b.x25519 && b.keepalive);
    assert_eq!(b.max_connections, None);
    assert_eq!(b.handshake_limit, Some(50));
    assert_eq!(b.timeout, Duration::from_millis(500));
    assert_eq!(b.resolve_interval, Some(Duration::from_secs(30)));
    assert_eq!(b.bind, Some(SockAddrSpec::parse("192.0.2.1:0").unwrap()));
    assert_eq!(b.max_keys, 3);
    assert_eq!(
        b.unix_socket,
        UnixSocketOptions {
            mode: Some(0o660),
            owner: Some("redis".into()),
            group: Some("redis".into())
        }
    );
    assert_eq!(
        b.target_tcp,
        TcpOptions {
            keepalive_idle: Some(60),
            keepalive_interval: Some(10),
            keepalive_count: Some(6),
            user_timeout: Some(Duration::from_secs(30)),
        }
    );
    let a = &c.pipes[1];
    assert_eq!(a.pfs, PfsPolicy::Disabled);
    assert!(!a.keepalive);
    assert_eq!(a.resolve_interval, None);
    assert_eq!(a.source_tcp.user_timeout, Some(Duration::from_millis(250)));
}

#[test]
fn the_command_line_and_the_file_describe_the_same_pipe() {
    use crate::cli::{SpipedArgs, SpipedCommand};
    let line = "-d -s [0.0.0.0]:8025 -t /run/redis.sock -k /etc/a.key -k /etc/b.key -n 7 -o 2 \
                -R -g --x25519 --max-keys 3 -j";
    let Ok(SpipedCommand::Run(args)) = SpipedArgs::parse(line.split_whitespace()) else {
        panic!("{line}");
    };
    let (_, from_cli) = args.to_config();
    let text = r#"
[pipe.default]
mode = "decrypt"
source = "[0.0.0.0]:8025"
target = "/run/redis.sock"
keys = ["/etc/a.key", "/etc/b.key"]
max_connections = 7
timeout = 2
re_resolve = false
pfs = "required"
x25519 = true
max_keys = 3
keepalive = false
"#;
    let from_file = parse(text).unwrap().pipes.remove(0);
    assert_eq!(from_file, from_cli);
}

#[test]
fn syntax_errors_are_all_reported_with_places() {
    let e = errors("[pipe.a]\nmode = 'x\n[pipe.b\nx==\n");
    assert!(e.len() >= 2, "{e:#?}");
    assert!(
        e.iter()
            .all(|(_, f, m)| f == "toml" && m.starts_with("TOML syntax error"))
    );
    assert!(e.iter().any(|(l, ..)| l.starts_with("2:")), "{e:#?}");
    assert!(e.iter().any(|(l, ..)| l.starts_with("4:")), "{e:#?}");
}

#[test]
fn unknown_fields_everywhere_all_reported() {
    let text = r#"
threads = 2
[process]
thread = 2
[pipe.a]
mode = "decrypt"
source = "/a"
target = "h:1"
keys = ["/k"]
bogus = 1
threads = 3
[pipe.a.target_tcp]
keepalive_idl = 5
"#;
    let e = errors(text);
    let find = |field: &str| {
        e.iter()
            .find(|(_, f, _)| f == field)
            .unwrap_or_else(|| panic!("{field} not in {e:#?}"))
            .clone()
    };
    let (loc, _, m) = find("threads");
    assert_eq!(loc, "2:1");
    assert!(m.contains("put it under [process]"), "{m}");
    let (loc, _, m) = find("process.thread");
    assert_eq!(loc, "4:1");
    assert!(m.contains("unknown field `thread`"), "{m}");
    let (loc, _, m) = find("pipe.a.bogus");
    assert_eq!(loc, "10:1");
    assert!(
        m.contains("expected one of") && m.contains("`target_tcp`"),
        "{m}"
    );
    let (_, _, m) = find("pipe.a.threads");
    assert!(m.contains("put it under [process]"), "{m}");
    let (loc, _, _) = find("pipe.a.target_tcp.keepalive_idl");
    assert_eq!(loc, "13:1");
    assert_eq!(e.len(), 5, "{e:#?}");
}

#[test]
fn a_huge_bad_table_stops_early() {
    let mut text = String::from("[pipe.a]\n");
    for i in 0..5000 {
        text.push_str(&format!("bad{i} = 1\n"));
    }
    let e = errors(&text);
    assert_eq!(e.len(), MAX_TABLE_ERRORS + 1, "{:?}", e.last());
    assert!(
        e.iter()
            .any(|(_, _, m)| m.contains("the rest of it was not checked"))
    );
}

#[test]
fn wrong_types_and_missing_fields() {
    let text = "[pipe.a]\nmode = \"sideways\"\nsource = 5\nkeys = \"/k\"\n";
    let e = errors(text);
    let fields: Vec<_> = e.iter().map(|(l, f, _)| format!("{l} {f}")).collect();
    assert_eq!(
        fields,
        [
            "1:7 pipe.a.target",
            "2:8 pipe.a.mode",
            "3:10 pipe.a.source",
            "4:8 pipe.a.keys"
        ],
        "{e:#?}"
    );
    assert!(e[0].2.contains("required field is missing"));
    assert!(e[1].2.contains("unknown variant `sideways`"), "{}", e[1].2);
    assert!(e[1].2.contains("`encrypt`"), "{}", e[1].2);
    // A field set aside after a type error is not also reported as missing.
    assert!(
        !e.iter()
            .any(|(_, f, m)| f == "pipe.a.mode" && m.contains("missing"))
    );
}

#[test]
fn bad_addresses() {
    let text = MINIMAL.replace("[0.0.0.0]:8025", "[0.0.0.0]:0") + "bind = \"nope\"\n";
    let e = errors(&text);
    assert_eq!(e.len(), 2, "{e:#?}");
    assert_eq!(e[0].1, "pipe.redis.source");
    assert_eq!(e[0].0, "4:10");
    assert!(e[0].2.contains("Invalid port number: 0"), "{}", e[0].2);
    assert_eq!(e[1].1, "pipe.redis.bind");
    assert!(
        e[1].2.contains("Address must contain port number"),
        "{}",
        e[1].2
    );
}

#[test]
fn two_pipes_with_one_name() {
    let text = format!("{MINIMAL}\n[pipe.redis]\nmode = \"encrypt\"\n");
    let (loc, field, m) = one_error(&text);
    assert_eq!(loc, "8:7");
    assert_eq!(field, "pipe.redis");
    assert_eq!(m, "two pipes named `redis`");
}

#[test]
fn duplicate_sources() {
    let second = |source: &str| {
        format!(
            "{MINIMAL}\n[pipe.other]\nmode = \"encrypt\"\nsource = \"{source}\"\n\
             target = \"h:1\"\nkeys = [\"/k\"]\n"
        )
    };
    for dup in ["[0.0.0.0]:8025", "[127.0.0.1]:8025", "[::]:8025"] {
        let (loc, field, m) = one_error(&second(dup));
        assert_eq!(loc, "10:10", "{dup}");
        assert_eq!(field, "pipe.other.source");
        assert!(
            m.contains("already used by pipe.redis.source (line 4)"),
            "{m}"
        );
    }
    for fine in [
        "[0.0.0.0]:8026",
        "[::1]:8026",
        "/run/x.sock",
        "localhost:8025",
    ] {
        parse(&second(fine)).unwrap_or_else(|e| panic!("{fine}: {e:?}"));
    }
    let unix = MINIMAL.replace("[0.0.0.0]:8025", "/run/in.sock");
    let text = format!(
        "{unix}\n[pipe.b]\nmode = \"encrypt\"\nsource = \"/run/in.sock\"\ntarget = \"h:1\"\n\
         keys = [\"/k\"]\n"
    );
    let (_, field, _) = one_error(&text);
    assert_eq!(field, "pipe.b.source");
    // The process's own sockets count too.
    let text = format!("[process]\ncontrol = \"/run/in.sock\"\n{unix}");
    let (loc, field, m) = one_error(&text);
    assert_eq!(
        (loc.as_str(), field.as_str()),
        ("6:10", "pipe.redis.source")
    );
    assert!(m.contains("process.control (line 2)"), "{m}");
    let text = format!("[process]\nmetrics = \"[127.0.0.1]:8025\"\n{MINIMAL}");
    let (_, field, _) = one_error(&text);
    assert_eq!(field, "pipe.redis.source");
}

#[test]
fn options_that_do_not_fit() {
    let cases = [
        (
            "pfs = \"disabled\"\nx25519 = true\n",
            "pipe.redis.x25519",
            "x25519 cannot be combined",
        ),
        (
            "re_resolve = false\nresolve_interval = 5\n",
            "pipe.redis.resolve_interval",
            "-R",
        ),
        (
            "socket_mode = \"0600\"\n",
            "pipe.redis.socket_mode",
            "Unix socket source",
        ),
        (
            "target_tcp = { user_timeout = 1 }\n",
            "pipe.redis.target_tcp",
            "Unix socket",
        ),
        (
            "bind = \"h:0\"\n",
            "pipe.redis.bind",
            "only to a TCP target",
        ),
        (
            "keepalive = false\nsource_tcp = { keepalive_idle = 5 }\n",
            "pipe.redis.source_tcp",
            "keepalive = false",
        ),
        (
            "max_connections = 10\nhandshake_limit = 11\n",
            "pipe.redis.handshake_limit",
            "more than max_connections 10",
        ),
        (
            "max_keys = 1\nkeys = [\"/a\", \"/b\"]\n",
            "pipe.redis.keys",
            "2 key files listed but max_keys is 1",
        ),
    ];
    let base = MINIMAL.replace("keys = [\"/etc/spiperelay/redis.key\"]\n", "");
    for (extra, field, words) in cases {
        let keys = if extra.contains("keys =") {
            ""
        } else {
            "keys = [\"/k\"]\n"
        };
        let text = format!("{base}{keys}{extra}");
        let (_, f, m) = one_error(&text);
        assert_eq!(f, field, "{extra}");
        assert!(m.contains(words), "{extra}: {m}");
    }
    // Fitting combinations.
    for extra in [
        "pfs = \"required\"\nx25519 = true\n",
        "re_resolve = false\n",
        "source_tcp = { keepalive_idle = 5 }\n",
        "keepalive = false\nsource_tcp = { user_timeout = 5 }\n",
        "max_connections = 0\nhandshake_limit = 11\n",
    ] {
        let text = format!("{MINIMAL}{extra}");
        parse(&text).unwrap_or_else(|e| panic!("{extra}: {e:?}"));
    }
}

#[test]
fn out_of_range_numbers() {
    let cases = [
        ("[process]\nthreads = 0\n", "process.threads"),
        ("[process]\nthreads = 65\n", "process.threads"),
        (
            "[process]\nshutdown_timeout = -1\n",
            "process.shutdown_timeout",
        ),
        ("max_connections = 500001\n", "pipe.redis.max_connections"),
        ("max_connections = -1\n", "pipe.redis.max_connections"),
        ("max_keys = 17\n", "pipe.redis.max_keys"),
        ("max_keys = 0\n", "pipe.redis.max_keys"),
        ("timeout = 0\n", "pipe.redis.timeout"),
        ("timeout = nan\n", "pipe.redis.timeout"),
        ("timeout = inf\n", "pipe.redis.timeout"),
        ("resolve_interval = 86401\n", "pipe.redis.resolve_interval"),
        ("handshake_limit = 0\n", "pipe.redis.handshake_limit"),
        (
            "source_tcp = { keepalive_idle = 32768 }\n",
            "pipe.redis.source_tcp.keepalive_idle",
        ),
        (
            "source_tcp = { keepalive_count = 128 }\n",
            "pipe.redis.source_tcp.keepalive_count",
        ),
        (
            "source_tcp = { user_timeout = 3000000 }\n",
            "pipe.redis.source_tcp.user_timeout",
        ),
    ];
    for (extra, field) in cases {
        let text = if extra.starts_with('[') {
            format!("{extra}{MINIMAL}")
        } else {
            format!("{MINIMAL}{extra}")
        };
        let (_, f, m) = one_error(&text);
        assert_eq!(f, field, "{extra}");
        assert!(m.contains("out of range"), "{extra}: {m}");
    }
    let (_, f, m) = one_error(&format!("{MINIMAL}max_keys = 99999999999999999999\n"));
    assert_eq!(f, "pipe.redis.max_keys");
    assert!(m.contains("99999999999999999999"), "{m}");
}

#[test]
fn bad_values() {
    let cases = [
        ("socket_mode = \"rw\"\n", "pipe.redis.socket_mode"),
        ("socket_mode = \"10000\"\n", "pipe.redis.socket_mode"),
        ("socket_mode = \"\"\n", "pipe.redis.socket_mode"),
        ("socket_mode = \"+660\"\n", "pipe.redis.socket_mode"),
        ("socket_owner = \"a:b\"\n", "pipe.redis.socket_owner"),
    ];
    let unix = MINIMAL.replace("[0.0.0.0]:8025", "/run/in.sock");
    for (extra, field) in cases {
        let (_, f, _) = one_error(&format!("{unix}{extra}"));
        assert_eq!(f, field, "{extra}");
    }
    assert_eq!(
        parse(&format!("{unix}socket_mode = \"0o640\"\n"))
            .unwrap()
            .pipes[0]
            .unix_socket
            .mode,
        Some(0o640)
    );
    for (process, field) in [
        ("control = \"run/c.sock\"", "process.control"),
        ("pidfile = \"x.pid\"", "process.pidfile"),
        ("audit_log = \"audit.log\"", "process.audit_log"),
        ("metrics = \"9100\"", "process.metrics"),
        ("user = \"\"", "process.user"),
        ("log = \"file\"", "process.log"),
    ] {
        let (_, f, _) = one_error(&format!("[process]\n{process}\n{MINIMAL}"));
        assert_eq!(f, field, "{process}");
    }
    let (_, f, m) = one_error(&MINIMAL.replace("\"/etc/spiperelay/redis.key\"", "\"-\""));
    assert_eq!(f, "pipe.redis.keys[0]");
    assert!(m.contains("standard input"), "{m}");
    let (_, f, _) = one_error(&MINIMAL.replace("\"/etc/spiperelay/redis.key\"", "\"rel.key\""));
    assert_eq!(f, "pipe.redis.keys[0]");
    let (_, f, _) = one_error(&MINIMAL.replace("[\"/etc/spiperelay/redis.key\"]", "[]"));
    assert_eq!(f, "pipe.redis.keys");
}

#[test]
fn pipe_names_and_shapes() {
    let (loc, f, m) = one_error(&MINIMAL.replace("[pipe.redis]", "[pipe.\"bad name\"]"));
    assert_eq!((loc.as_str(), f.as_str()), ("2:7", "pipe.bad name"));
    assert!(m.contains("invalid pipe name"), "{m}");
    assert!(valid_pipe_name("redis-replica_1.a"));
    assert!(!valid_pipe_name("-x") && !valid_pipe_name("") && !valid_pipe_name("a/b"));
    assert!(!valid_pipe_name(&"a".repeat(65)));
    let (_, f, m) = one_error("");
    assert_eq!(f, "pipe");
    assert!(m.contains("no pipe defined"));
    let (_, f, _) = one_error("[process]\nthreads = 2\n");
    assert_eq!(f, "pipe");
    let (_, f, _) = one_error("[pipe]\n");
    assert_eq!(f, "pipe");
    let (_, f, m) = one_error("pipe = 3\n");
    assert_eq!(f, "pipe");
    assert!(m.contains("invalid type: integer"), "{m}");
    let (_, f, m) = one_error("[[pipe]]\nname = \"a\"\n");
    assert_eq!(f, "pipe");
    assert!(m.contains("not [[pipe]]"), "{m}");
    let (_, f, _) = one_error("[pipe]\nx = 3\n");
    assert_eq!(f, "pipe.x");
    let (_, f, _) = one_error(&format!("process = []\n{MINIMAL}"));
    assert_eq!(f, "process");
}

#[test]
fn key_files_are_checked_and_warned_about() {
    let text = r#"
[pipe.a]
mode = "decrypt"
source = "/a"
target = "h:1"
keys = ["/good", "/short", "/missing"]
max_keys = 3
"#;
    let mut keys = FakeKeys::default();
    keys.0
        .insert("/short".into(), Ok(vec!["only 3 bytes".into()]));
    keys.0.insert(
        "/missing".into(),
        Err("cannot read key file /missing: nope".into()),
    );
    let checked = parse_with(text, &mut keys);
    assert!(checked.config.is_none());
    assert_eq!(checked.errors.len(), 1);
    let e = &checked.errors[0];
    assert_eq!(
        e.render("f.toml", text),
        "f.toml:6:28: pipe.a.keys[2]: cannot read key file /missing: nope"
    );
    assert_eq!(checked.warnings.len(), 1);
    assert_eq!(
        checked.warnings[0].render("f.toml", text),
        "f.toml:6:18: pipe.a.keys[1]: only 3 bytes"
    );
}

#[test]
fn options_are_checked_even_when_a_required_field_is_bad() {
    let text = "[pipe.a]\nmode = \"encrypt\"\nsource = \"[::1]:1\"\ntarget = \"bad\"\n\
                keys = [\"/k\"]\nsocket_mode = \"0600\"\nmax_keys = 99\n";
    let e = errors(text);
    let fields: Vec<_> = e.iter().map(|(_, f, _)| f.as_str()).collect();
    assert_eq!(
        fields,
        ["pipe.a.target", "pipe.a.socket_mode", "pipe.a.max_keys"]
    );
}

#[test]
fn errors_are_in_file_order_and_all_pipes_are_checked() {
    let text = r#"
[pipe.z]
mode = "encrypt"
source = "bad"
target = "h:1"
keys = ["/k"]

[pipe.a]
mode = "encrypt"
source = "/s"
target = "also bad"
keys = ["/k"]
"#;
    let e = errors(text);
    let fields: Vec<_> = e.iter().map(|(_, f, _)| f.as_str()).collect();
    assert_eq!(fields, ["pipe.z.source", "pipe.a.target"]);
}

#[test]
fn multibyte_columns() {
    let text = "[pipe.a]\nmode = \"décrypt\"\nsource = \"/a\"\ntarget = \"h:1\"\nkeys = [\"/k\"]\n";
    let (loc, f, _) = one_error(text);
    assert_eq!((loc.as_str(), f.as_str()), ("2:8", "pipe.a.mode"));
    let text = "# é\n[pipe.a]\nmode = 1\nsource = \"/a\"\ntarget = \"h:1\"\nkeys = [\"é\"]\n";
    let e = errors(text);
    assert_eq!(e[1].0, "6:9");
}

fn toml_like() -> impl Strategy<Value = String> {
    let atom = prop_oneof![
        Just("[pipe.a]\n".to_owned()),
        Just("[pipe.b]\n".to_owned()),
        Just("[process]\n".to_owned()),
        Just("[pipe.a.source_tcp]\n".to_owned()),
        Just("mode = \"encrypt\"\n".to_owned()),
        Just("mode = \"decrypt\"\n".to_owned()),
        Just("source = \"/s\"\n".to_owned()),
        Just("source = \"[::]:1\"\n".to_owned()),
        Just("target = \"h:1\"\n".to_owned()),
        Just("keys = [\"/k\"]\n".to_owned()),
        Just("keepalive_idle = 5\n".to_owned()),
        Just("threads = 3\n".to_owned()),
        Just("x25519 = true\n".to_owned()),
        Just("pfs = \"disabled\"\n".to_owned()),
        Just("source_tcp = { user_timeout = 1e400 }\n".to_owned()),
        "[a-z_]{1,8} = [0-9\"\\[\\]{}.,a-z =-]{0,12}\n",
        "\\PC{0,12}",
    ];
    proptest::collection::vec(atom, 0..16).prop_map(|v| v.concat())
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        let text = String::from_utf8_lossy(&bytes);
        let _ = parse(&text);
    }

    #[test]
    fn toml_like_text_never_panics_and_errors_have_places(text in toml_like()) {
        match parse(&text) {
            Ok(c) => prop_assert!(!c.pipes.is_empty()),
            Err(errs) => {
                prop_assert!(!errs.is_empty());
                for e in errs {
                    prop_assert!(e.span.start <= text.len() + 1, "{:?}", e);
                    let _ = e.render("f", &text);
                }
            }
        }
    }
}
