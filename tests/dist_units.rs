//! The shipped systemd units (`dist/systemd/`) pass `systemd-analyze verify`, and keep the
//! settings the relay's behaviour depends on (README, "Running under systemd").
//!
//! `verify` insists that `ExecStart=` names an existing binary, so the units are checked as
//! copies in a private directory with `/usr/bin/spiperelay` replaced by cargo's build of the
//! binary; man-page references are not checked here (`--man=no`: the pages are not installed
//! on the build machine; `scripts/test-package.sh` checks them installed). Any output from
//! `verify` (it warns about unknown keys and bad values on stderr, still exiting 0) is a
//! failure. Without `systemd-analyze` (Debian package `systemd`) the test says SKIP, except
//! under `CI=true`, where it fails.

mod bin_common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use bin_common::{TempDir, have_tool, relay_bin};

const ANALYZE: &str = "/usr/bin/systemd-analyze";

/// Every unit file shipped, with the name to verify it under (templates as an instance).
const UNITS: &[(&str, &str)] = &[
    ("spiperelay.service", "spiperelay.service"),
    ("spiperelay@.service", "spiperelay@example.service"),
    ("spiperelay-pipe@.socket", "spiperelay-pipe@redis.socket"),
];

fn units_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("dist/systemd")
}

/// Copies every unit of `dist/systemd/` into `dir`, with the binary path replaced, and
/// returns what `systemd-analyze verify` printed for the instances in [`UNITS`], and whether
/// it exited 0.
fn verify_copies(dir: &TempDir, edit: impl Fn(&str, String) -> String) -> (bool, String) {
    let bin = relay_bin();
    for entry in fs::read_dir(units_dir()).expect("read dist/systemd") {
        let entry = entry.expect("dir entry");
        let name = entry.file_name().to_string_lossy().into_owned();
        let text = fs::read_to_string(entry.path()).expect("read unit");
        let text = text.replace("/usr/bin/spiperelay", &bin.to_string_lossy());
        fs::write(dir.join(&name), edit(&name, text)).expect("write unit copy");
    }
    let mut cmd = Command::new(ANALYZE);
    cmd.arg("verify").arg("--man=no").current_dir(dir.path());
    for (_, instance) in UNITS {
        cmd.arg(format!("./{instance}"));
    }
    let out = cmd.output().expect("run systemd-analyze");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn every_shipped_unit_is_listed() {
    let mut shipped: Vec<String> = fs::read_dir(units_dir())
        .expect("read dist/systemd")
        .map(|e| {
            e.expect("dir entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    shipped.sort();
    let mut listed: Vec<String> = UNITS.iter().map(|(f, _)| (*f).to_owned()).collect();
    listed.sort();
    assert_eq!(
        shipped, listed,
        "UNITS must name every file in dist/systemd"
    );
}

#[test]
fn units_verify_cleanly() {
    if !have_tool(ANALYZE, "systemd") {
        return;
    }
    let dir = TempDir::new("units");
    let (ok, out) = verify_copies(&dir, |_, t| t);
    assert!(
        ok && out.trim().is_empty(),
        "systemd-analyze verify:\n{out}"
    );
}

#[test]
fn verify_catches_a_broken_unit() {
    // The check above can fail: a misspelt setting makes verify complain.
    if !have_tool(ANALYZE, "systemd") {
        return;
    }
    let dir = TempDir::new("unitsbad");
    let (ok, out) = verify_copies(&dir, |name, t| {
        if name == "spiperelay.service" {
            t.replace("NoNewPrivileges=yes", "NoNewPrivileges=perhaps")
        } else {
            t
        }
    });
    assert!(!ok || !out.trim().is_empty(), "verify missed a bad value");
    assert!(out.contains("perhaps"), "{out}");
}

/// The value lines of `key` in `unit` (after `key=`), in order.
fn values(unit: &str, key: &str) -> Vec<String> {
    unit.lines()
        .filter_map(|l| l.strip_prefix(key)?.strip_prefix('='))
        .map(str::to_owned)
        .collect()
}

#[test]
fn services_keep_what_the_relay_relies_on() {
    for file in ["spiperelay.service", "spiperelay@.service"] {
        let unit = fs::read_to_string(units_dir().join(file)).expect("read unit");
        let one = |key: &str| values(&unit, key).join(" | ");
        // READY=1 / RELOADING=1 / STOPPING=1 / WATCHDOG=1 come from src/os/notify.rs.
        assert_eq!(one("Type"), "notify", "{file}");
        assert!(
            one("ExecStart").contains(" --config /etc/spiperelay/"),
            "{file}"
        );
        assert!(one("ExecReload").contains("kill -HUP $MAINPID"), "{file}");
        assert_eq!(one("Restart"), "on-failure", "{file}");
        assert_eq!(one("User"), "spiperelay", "{file}");
        assert!(one("RuntimeDirectory").starts_with("spiperelay"), "{file}");
        for (key, want) in [
            ("NoNewPrivileges", "yes"),
            ("ProtectSystem", "strict"),
            ("ProtectHome", "yes"),
            ("PrivateTmp", "yes"),
            ("PrivateDevices", "yes"),
            ("RestrictAddressFamilies", "AF_UNIX AF_INET AF_INET6"),
            ("CapabilityBoundingSet", "CAP_NET_BIND_SERVICE"),
        ] {
            assert_eq!(one(key), want, "{file}: {key}");
        }
        let filter = values(&unit, "SystemCallFilter");
        assert!(filter[0].starts_with("@system-service"), "{file}");
        for call in ["io_uring_setup", "io_uring_enter", "io_uring_register"] {
            assert!(filter[0].split(' ').any(|c| c == call), "{file}: {call}");
        }
        // The stop timeout outlasts the default drain deadline (30 s) with room to log.
        let stop: u64 = one("TimeoutStopSec")
            .trim_end_matches('s')
            .parse()
            .expect("TimeoutStopSec in seconds");
        assert!(stop > 30, "{file}: TimeoutStopSec {stop}");
    }
}

#[test]
fn pipe_socket_unit_names_its_pipe() {
    let unit = fs::read_to_string(units_dir().join("spiperelay-pipe@.socket")).expect("read");
    let one = |key: &str| values(&unit, key).join(" | ");
    // The relay matches a passed socket to the pipe of its FileDescriptorName= (src/os).
    assert_eq!(one("FileDescriptorName"), "%i");
    assert_eq!(one("Service"), "spiperelay.service");
    assert_eq!(one("ListenStream"), "/run/spiperelay/%i.sock");
    // Accept=yes would pass connections, which the relay refuses.
    assert!(values(&unit, "Accept").iter().all(|v| v == "no"));
}

/// Every field of the configuration file, as `src/config/` and dist/spiperelay.toml have them.
const CONFIG_FIELDS: &[&str] = &[
    "control",
    "log",
    "threads",
    "daemonize",
    "pidfile",
    "wait_for_dns",
    "user",
    "group",
    "shutdown_timeout",
    "metrics",
    "audit_log",
    "mode",
    "source",
    "target",
    "keys",
    "max_keys",
    "pfs",
    "x25519",
    "max_connections",
    "handshake_limit",
    "timeout",
    "resolve_interval",
    "re_resolve",
    "bind",
    "keepalive",
    "socket_mode",
    "socket_owner",
    "socket_group",
    "source_tcp",
    "target_tcp",
    "keepalive_idle",
    "keepalive_interval",
    "keepalive_count",
    "user_timeout",
];

#[test]
fn config_man_page_renders_cleanly_and_names_every_field() {
    let page = Path::new(env!("CARGO_MANIFEST_DIR")).join("dist/man/spiperelay.toml.5");
    let text = fs::read_to_string(&page).expect("read spiperelay.toml.5");
    for field in CONFIG_FIELDS {
        // Described as a term (`.BI field " = ..."`, or `"field = ..."` as a second term on
        // one line) or in bold in running text (`.B field`).
        let named = text.lines().any(|l| {
            l == format!(".B {field}")
                || l.starts_with(&format!(".B {field} "))
                || l.starts_with(&format!(".BI {field} "))
                || l.contains(&format!("\"{field} = "))
        });
        assert!(named, "spiperelay.toml(5) does not mention {field}");
    }
    if !have_tool("/usr/bin/groff", "groff-base") {
        return;
    }
    let out = Command::new("/usr/bin/groff")
        .args(["-man", "-ww", "-z", "-Tutf8"])
        .arg(&page)
        .output()
        .expect("run groff");
    let warnings = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && warnings.is_empty(), "{warnings}");
}
