//! The fuzz harness of the configuration parser (`fuzz/fuzz_targets/config.rs` calls
//! [`config`]), kept in the library so that `cargo test` replays the committed corpus
//! (`fuzz/corpus/config/`) on stable, as the protocol core's harnesses do (FUZZING.md).

use super::file::{self, KeyCheck};
use super::{KeySource, valid_pipe_name};

/// A key check that answers from the path alone (deterministic, no file system): paths
/// ending in `missing` fail, paths ending in `short` warn.
struct PathKeyCheck;

impl KeyCheck for PathKeyCheck {
    fn check(&mut self, path: &std::path::Path) -> Result<Vec<String>, String> {
        let s = path.to_string_lossy();
        if s.ends_with("missing") {
            Err(format!("cannot read key file {s}: No such file"))
        } else if s.ends_with("short") {
            Ok(vec![format!("warning: key file {s} holds only 3 bytes")])
        } else {
            Ok(Vec::new())
        }
    }
}

/// Feeds `data` (as UTF-8, lossily) to [`file::parse_with`] and checks what comes out:
/// never a panic; errors in file order, each pointing inside the text (or at its end) and
/// rendering to one line; a configuration only without errors, with at least one pipe, valid
/// and distinct names, absolute key files within `max_keys`, and `handshake_limit` within
/// `max_connections`; the same answer twice.
///
/// # Panics
/// When one of those checks fails: that is a finding.
pub fn config(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let checked = file::parse_with(&text, &mut PathKeyCheck);
    let again = file::parse_with(&text, &mut PathKeyCheck);
    assert_eq!(checked.errors, again.errors, "not deterministic");
    assert_eq!(checked.config, again.config, "not deterministic");
    let mut last = 0;
    for e in &checked.errors {
        assert!(
            e.span.start >= last,
            "errors out of order: {:?}",
            checked.errors
        );
        last = e.span.start;
        assert!(e.span.start <= text.len(), "error outside the text: {e:?}");
        let line = e.render("f.toml", &text);
        assert!(!line.contains('\n'), "multi-line error: {line:?}");
        assert!(!e.field.is_empty(), "error without a field: {e:?}");
    }
    for w in &checked.warnings {
        assert!(!w.render("f.toml", &text).contains('\n'));
    }
    match &checked.config {
        None => assert!(!checked.errors.is_empty(), "no config and no error"),
        Some(c) => {
            assert!(checked.errors.is_empty());
            assert!(!c.pipes.is_empty(), "a config without pipes");
            for (i, p) in c.pipes.iter().enumerate() {
                assert!(valid_pipe_name(&p.name), "bad name {:?}", p.name);
                assert!(
                    c.pipes[..i].iter().all(|q| q.name != p.name),
                    "two pipes named {:?}",
                    p.name
                );
                assert!(!p.keys.is_empty());
                for k in &p.keys {
                    match k {
                        KeySource::File(path) => assert!(path.is_absolute()),
                        KeySource::Stdin => panic!("stdin key from a file"),
                    }
                }
                assert!((1..=super::pipe::MAX_KEYS_LIMIT).contains(&p.max_keys));
                if let (Some(h), Some(m)) = (p.handshake_limit, p.max_connections) {
                    assert!(h <= m);
                }
                assert!(!p.timeout.is_zero());
                let _ = p.summary();
            }
            assert!((1..=super::settings::MAX_THREADS).contains(&c.settings.threads));
        }
    }
}

/// The generated seeds of `fuzz/corpus/config/`: valid files using every field and files
/// with each kind of error. Written by the ignored test `write_config_seed_corpus`. The
/// corpus also holds copies of the shipped examples (`example-*`), replayed but not
/// generated, so that editing an example does not touch this list.
pub fn seeds() -> Vec<(&'static str, &'static [u8])> {
    vec![
        (
            "minimal",
            b"[pipe.redis]\nmode = \"decrypt\"\nsource = \"[0.0.0.0]:8025\"\n\
              target = \"/run/redis.sock\"\nkeys = [\"/etc/spiperelay/redis.key\"]\n",
        ),
        (
            "every-field",
            b"[process]\ncontrol = \"/run/c.sock\"\nlog = \"syslog\"\nthreads = 4\n\
              daemonize = true\npidfile = \"/run/p.pid\"\nwait_for_dns = true\nuser = \"u\"\n\
              group = \"g\"\nshutdown_timeout = 2.5\nmetrics = \"[127.0.0.1]:9100\"\n\
              audit_log = \"stderr\"\n\
              [pipe.b]\nmode = \"encrypt\"\nsource = \"/run/b.sock\"\ntarget = \"r.example:8025\"\n\
              keys = [\"/k/new\", \"/k/old\", \"/k/short\"]\npfs = \"required\"\nx25519 = true\n\
              keepalive = true\nmax_connections = 0\nhandshake_limit = 50\ntimeout = 0.5\n\
              resolve_interval = 30\nbind = \"192.0.2.1:0\"\nmax_keys = 3\nsocket_mode = \"0660\"\n\
              socket_owner = \"redis\"\nsocket_group = \"redis\"\n\
              target_tcp = { keepalive_idle = 60, keepalive_interval = 10, keepalive_count = 6, \
              user_timeout = 30 }\n\
              [pipe.a]\nmode = \"decrypt\"\nsource = \"[::]:8025\"\ntarget = \"[127.0.0.1]:6379\"\n\
              keys = [\"/k/a\"]\npfs = \"disabled\"\nkeepalive = false\nre_resolve = false\n\
              [pipe.a.source_tcp]\nuser_timeout = 0.25\n",
        ),
        (
            "errors",
            b"threads = 2\n[process]\nthreads = 0\nlog = \"x\"\n[pipe.a]\nmode = 1\n\
              source = \"nope\"\nkeys = [\"/k/missing\", \"rel\", \"-\"]\nbogus = 1\n\
              source_tcp = { keepalive_idle = 0, x = 1 }\n[pipe.a]\n[pipe.\"b c\"]\n",
        ),
        ("syntax", b"[pipe.a\nmode = 'x\nx == 1\n[[pipe]]\n"),
        (
            "conflicts",
            b"[pipe.a]\nmode = \"encrypt\"\nsource = \"/s\"\ntarget = \"/t\"\n\
              keys = [\"/k\", \"/k2\", \"/k/short\"]\npfs = \"disabled\"\nx25519 = true\n\
              bind = \"h:0\"\nmax_keys = 2\nkeepalive = false\n\
              target_tcp = { keepalive_idle = 5 }\nre_resolve = false\nresolve_interval = 3\n\
              max_connections = 5\nhandshake_limit = 6\n\
              [pipe.b]\nmode = \"decrypt\"\nsource = \"/s\"\ntarget = \"h:1\"\nkeys = [\"/k\"]\n",
        ),
    ]
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    fn corpus_dir() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/config")
    }

    #[test]
    fn seeds_run_clean_and_reach_their_outcome() {
        for (name, data) in seeds() {
            config(data);
            let text = String::from_utf8_lossy(data);
            let checked = file::parse_with(&text, &mut PathKeyCheck);
            let valid = !matches!(name, "errors" | "syntax" | "conflicts");
            assert_eq!(
                checked.config.is_some(),
                valid,
                "{name}: {:?}",
                checked.errors
            );
        }
    }

    #[test]
    fn committed_seeds_match_the_generator() {
        for (name, data) in seeds() {
            let path = corpus_dir().join(name);
            let on_disk = std::fs::read(&path).unwrap_or_else(|e| {
                panic!("{}: {e} (run write_config_seed_corpus)", path.display())
            });
            assert_eq!(
                on_disk, data,
                "{name} differs: run write_config_seed_corpus"
            );
        }
    }

    #[test]
    fn corpus_replays_through_the_harness() {
        let mut n = 0;
        for entry in std::fs::read_dir(corpus_dir()).expect("fuzz/corpus/config") {
            let data = std::fs::read(entry.expect("entry").path()).expect("read seed");
            config(&data);
            n += 1;
        }
        assert!(n >= seeds().len());
    }

    #[test]
    #[ignore = "writes fuzz/corpus/config/"]
    fn write_config_seed_corpus() {
        std::fs::create_dir_all(corpus_dir()).unwrap();
        for (name, data) in seeds() {
            std::fs::write(corpus_dir().join(name), data).unwrap();
        }
    }
}
