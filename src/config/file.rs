//! The configuration file: TOML, read with `serde` and `toml`, checked completely, every error
//! reported with its place and field (the format is documented in the README and in
//! `dist/spiperelay.toml`).
//!
//! ```toml
//! [process]                     # optional: process-wide settings
//! threads = 2
//!
//! [pipe.redis]                  # one table per pipe; the name is the table's key
//! mode = "decrypt"
//! source = "[0.0.0.0]:8025"
//! target = "/run/redis/redis-server.sock"
//! keys = ["/etc/spiperelay/redis.key"]
//! ```
//!
//! How errors are collected: the TOML parser recovers from syntax errors and reports all of
//! them; if there are any (other than two pipes with one name), the file's meaning is not
//! checked further. Otherwise each table is read with `#[serde(deny_unknown_fields)]`; when
//! a field fails (unknown, or of the wrong type) the error is kept, the field is set aside
//! and the table is read again, so every bad field of every table is reported. Then the
//! values are checked (addresses, ranges, paths, options that do not fit each other, key
//! files through a [`KeyCheck`]) and the pipes against each other (duplicate sources).
//!
//! Nothing here panics on any input (a fuzz target and a property test check it), and
//! nothing here touches the file system except through the [`KeyCheck`] the caller passes.

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use serde::de::{self, IgnoredAny, IntoDeserializer};
use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::addr::SockAddrSpec;
use super::error::{ConfigError, ConfigWarning, ErrorKind, Location};
use super::pipe::{
    DEFAULT_MAX_KEYS, DEFAULT_RTIME, KeySource, MAX_CONNECTIONS, MAX_KEEPALIVE_COUNT,
    MAX_KEEPALIVE_SECS, MAX_KEYS_LIMIT, MAX_USER_TIMEOUT_MS, Mode, PfsPolicy, PipeSpec, TcpOptions,
    UnixSocketOptions,
};
use super::settings::{
    AuditLog, LogTarget, MAX_SHUTDOWN_TIMEOUT, MAX_THREADS, Settings, UserGroup,
};
use super::{Config, valid_pipe_name};

/// After this many bad fields in one table, the rest of the table is not examined.
pub const MAX_TABLE_ERRORS: usize = 32;

/// The longest duration accepted for `timeout` and `resolve_interval`: one day.
pub const MAX_INTERVAL: Duration = Duration::from_secs(86_400);

/// Checks that a key file can be used, for [`parse_with`]. The daemon's implementation reads
/// the file with the same reader it uses at start; tests and the fuzz target use their own.
pub trait KeyCheck {
    /// Checks the key file at `path` (absolute). Returns warnings about a usable file (short,
    /// empty, readable by others), or the message saying why it cannot be used.
    ///
    /// # Errors
    /// The reason in words: missing, unreadable, a FIFO, a directory, ...
    fn check(&mut self, path: &Path) -> Result<Vec<String>, String>;

    /// Checks that the user (`group` false) or group (`group` true) named `name` (or
    /// numbered) exists on this host. The default accepts every name: parsing without a host.
    ///
    /// # Errors
    /// The reason in words, e.g. that no such user exists.
    fn check_account(&mut self, name: &str, group: bool) -> Result<(), String> {
        let _ = (name, group);
        Ok(())
    }
}

/// A [`KeyCheck`] that accepts every path without looking: for parsing without a file
/// system ([`parse`], the fuzz target).
#[derive(Clone, Copy, Debug, Default)]
pub struct NoKeyCheck;

impl KeyCheck for NoKeyCheck {
    fn check(&mut self, _path: &Path) -> Result<Vec<String>, String> {
        Ok(Vec::new())
    }
}

/// What checking a configuration file found: the configuration when there is no error, every
/// error, and the warnings.
#[derive(Clone, Debug, Default)]
pub struct Checked {
    /// The configuration, when `errors` is empty.
    pub config: Option<Config>,
    /// Every error found, in file order.
    pub errors: Vec<ConfigError>,
    /// Warnings (about key files), in file order.
    pub warnings: Vec<ConfigWarning>,
}

/// Parses and checks a configuration file's text without looking at key files.
///
/// # Errors
/// Every [`ConfigError`] found, in file order (never an empty list).
pub fn parse(text: &str) -> Result<Config, Vec<ConfigError>> {
    let checked = parse_with(text, &mut NoKeyCheck);
    match checked.config {
        Some(c) => Ok(c),
        None => Err(checked.errors),
    }
}

/// Parses and checks a configuration file's text, checking each key file with `keys`. See
/// the module documentation for what is checked. Never panics.
pub fn parse_with(text: &str, keys: &mut dyn KeyCheck) -> Checked {
    let mut cx = Cx {
        text,
        errors: Vec::new(),
        warnings: Vec::new(),
        keys,
        set_aside: Vec::new(),
        sources: Vec::new(),
    };
    let config = cx.document();
    let Cx {
        mut errors,
        mut warnings,
        ..
    } = cx;
    errors.sort_by_key(|e| e.span.start);
    warnings.sort_by_key(|w| w.span.start);
    Checked {
        config: if errors.is_empty() { config } else { None },
        errors,
        warnings,
    }
}

/// The state of one check: the text, and what was found so far.
struct Cx<'t, 'k> {
    text: &'t str,
    errors: Vec<ConfigError>,
    warnings: Vec<ConfigWarning>,
    keys: &'k mut dyn KeyCheck,
    /// Fields reported as invalid and set aside by [`Cx::read_table`] (dotted paths): not
    /// reported again as missing.
    set_aside: Vec<String>,
    /// Every listening address that parsed (pipe sources, also of pipes with other errors, and
    /// the control and metrics sockets): field, address, span.
    sources: Vec<(String, SockAddrSpec, Range<usize>)>,
}

/// Fields of `[process]`, for hints when one is written in a pipe or at the top level.
const PROCESS_FIELDS: &[&str] = &[
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
];

/// Fields of `[pipe.NAME]`, for hints when one is written at the top level or in `[process]`.
const PIPE_FIELDS: &[&str] = &[
    "mode",
    "source",
    "target",
    "keys",
    "pfs",
    "x25519",
    "keepalive",
    "max_connections",
    "handshake_limit",
    "timeout",
    "resolve_interval",
    "re_resolve",
    "bind",
    "max_keys",
    "socket_mode",
    "socket_owner",
    "socket_group",
    "source_tcp",
    "target_tcp",
];

/// The fields of `source_tcp` and `target_tcp`.
const TCP_FIELDS: &[&str] = &[
    "keepalive_idle",
    "keepalive_interval",
    "keepalive_count",
    "user_timeout",
];

fn process_hint(key: &str) -> Option<&'static str> {
    PROCESS_FIELDS
        .contains(&key)
        .then_some("it is a process setting: put it under [process]")
}

fn pipe_hint(key: &str) -> Option<&'static str> {
    if PIPE_FIELDS.contains(&key) {
        Some("it is a pipe option: put it under [pipe.NAME]")
    } else if TCP_FIELDS.contains(&key) {
        Some("it is a TCP option: put it in source_tcp or target_tcp")
    } else {
        None
    }
}

/// A number of seconds: a TOML integer or float.
#[derive(Clone, Copy, Debug)]
struct Seconds(f64);

impl<'de> Deserialize<'de> for Seconds {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl de::Visitor<'_> for V {
            type Value = Seconds;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a number of seconds")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Seconds, E> {
                Ok(Seconds(v as f64))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Seconds, E> {
                Ok(Seconds(v as f64))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Seconds, E> {
                Ok(Seconds(v))
            }
        }
        d.deserialize_any(V)
    }
}

#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "lowercase")]
enum RawMode {
    Encrypt,
    Decrypt,
}

#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "lowercase")]
enum RawPfs {
    Standard,
    Disabled,
    Required,
}

#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "lowercase")]
enum RawLog {
    Stderr,
    Syslog,
}

/// `[process]` as written.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawProcess {
    control: Option<Spanned<String>>,
    log: Option<Spanned<RawLog>>,
    threads: Option<Spanned<i64>>,
    daemonize: Option<Spanned<bool>>,
    pidfile: Option<Spanned<String>>,
    wait_for_dns: Option<Spanned<bool>>,
    user: Option<Spanned<String>>,
    group: Option<Spanned<String>>,
    shutdown_timeout: Option<Spanned<Seconds>>,
    metrics: Option<Spanned<String>>,
    audit_log: Option<Spanned<String>>,
}

/// `[pipe.NAME]` as written. `source_tcp` and `target_tcp` are read separately (so that
/// every error in them is reported); they appear here only so that the list of fields in an
/// unknown-field error names them.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawPipe {
    mode: Option<Spanned<RawMode>>,
    source: Option<Spanned<String>>,
    target: Option<Spanned<String>>,
    keys: Option<Spanned<Vec<Spanned<String>>>>,
    pfs: Option<Spanned<RawPfs>>,
    x25519: Option<Spanned<bool>>,
    keepalive: Option<Spanned<bool>>,
    max_connections: Option<Spanned<i64>>,
    handshake_limit: Option<Spanned<i64>>,
    timeout: Option<Spanned<Seconds>>,
    resolve_interval: Option<Spanned<Seconds>>,
    re_resolve: Option<Spanned<bool>>,
    bind: Option<Spanned<String>>,
    max_keys: Option<Spanned<i64>>,
    socket_mode: Option<Spanned<String>>,
    socket_owner: Option<Spanned<String>>,
    socket_group: Option<Spanned<String>>,
    #[serde(rename = "source_tcp")]
    _source_tcp: Option<IgnoredAny>,
    #[serde(rename = "target_tcp")]
    _target_tcp: Option<IgnoredAny>,
}

/// `source_tcp` / `target_tcp` as written.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawTcp {
    keepalive_idle: Option<Spanned<i64>>,
    keepalive_interval: Option<Spanned<i64>>,
    keepalive_count: Option<Spanned<i64>>,
    user_timeout: Option<Spanned<Seconds>>,
}

/// What the options of a pipe are checked against: whether its source and target are Unix
/// sockets (`None` when the address is missing or bad), and its TCP option tables.
struct Legs {
    source_unix: Option<bool>,
    target_unix: Option<bool>,
    source_tcp: Option<(TcpOptions, Range<usize>)>,
    target_tcp: Option<(TcpOptions, Range<usize>)>,
}

/// Whether `inner` lies within `outer`.
fn within(inner: &Range<usize>, outer: &Range<usize>) -> bool {
    outer.start <= inner.start && inner.end <= outer.end
}

/// A TOML parser message on one line (its descriptions may span lines).
fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

impl Cx<'_, '_> {
    fn error(&mut self, span: Range<usize>, field: impl Into<String>, kind: ErrorKind) {
        self.errors.push(ConfigError {
            span,
            field: field.into(),
            kind,
        });
    }

    fn document(&mut self) -> Option<Config> {
        let (root, syntax) = DeTable::parse_recoverable(self.text);
        let mut only_duplicate_pipes = true;
        // After a duplicated [pipe.NAME] header, the same keys in its body are "duplicate"
        // too: one error for the header is enough. Holds the line of that header.
        let mut in_duplicate_pipe: Option<usize> = None;
        for e in &syntax {
            let span = e.span().unwrap_or(0..0);
            let message = one_line(e.message());
            if message == "duplicate key" {
                let key = self.text.get(span.clone()).unwrap_or("").to_owned();
                let loc = Location::of(self.text, span.start);
                if let Some(name) = self.duplicate_pipe_header(span.start) {
                    in_duplicate_pipe = Some(loc.line);
                    self.error(span, format!("pipe.{name}"), ErrorKind::DuplicatePipe(name));
                    continue;
                }
                if let Some(header_line) = in_duplicate_pipe
                    && !self.header_between(header_line, loc.line)
                {
                    continue;
                }
                self.error(span, "toml", ErrorKind::DuplicateKey(key));
            } else {
                self.error(span, "toml", ErrorKind::Syntax(message));
            }
            only_duplicate_pipes = false;
        }
        if !only_duplicate_pipes {
            return None;
        }
        let root_span = root.span();
        let root = root.into_inner();

        let mut settings = Settings::default();
        let mut pipes = Vec::new();
        let mut saw_pipe_table = false;
        let mut entries: Vec<_> = root.into_iter().collect();
        entries.sort_by_key(|(k, _)| k.span().start);
        for (key, value) in entries {
            match &**key.get_ref() {
                "process" => {
                    if let Some(s) = self.process(value) {
                        settings = s;
                    }
                }
                "pipe" => {
                    saw_pipe_table = true;
                    pipes.extend(self.pipes(value));
                }
                other => {
                    let hint = process_hint(other).or_else(|| pipe_hint(other));
                    self.error(
                        key.span(),
                        other.to_owned(),
                        ErrorKind::Invalid {
                            message: format!(
                                "unknown field `{other}`, expected `process` or `pipe`"
                            ),
                            hint,
                        },
                    );
                }
            }
        }
        if pipes.is_empty() && !saw_pipe_table && self.errors.is_empty() {
            self.error(root_span.start..root_span.start, "pipe", ErrorKind::NoPipes);
        }
        self.cross_checks();
        Some(Config { settings, pipes })
    }

    /// If the line holding byte `at` is a `[pipe.NAME]` header, NAME.
    fn duplicate_pipe_header(&self, at: usize) -> Option<String> {
        let start = self.text.get(..at)?.rfind('\n').map_or(0, |i| i + 1);
        let line = self.text.get(start..)?.lines().next()?;
        let compact: String = line
            .split('#')
            .next()?
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect();
        let inner = compact.strip_prefix('[')?.strip_suffix(']')?;
        let (table, name) = inner.split_once('.')?;
        if table.trim_matches(['"', '\'']) != "pipe" || name.contains('.') {
            return None;
        }
        Some(name.trim_matches(['"', '\'']).to_owned())
    }

    /// Whether a table header starts on a line after `from` and up to `to` (1-based lines).
    fn header_between(&self, from: usize, to: usize) -> bool {
        self.text
            .lines()
            .enumerate()
            .skip(from)
            .take(to.saturating_sub(from))
            .any(|(_, l)| l.trim_start().starts_with('['))
    }

    /// Reads `table` as a `T` with every bad field reported: on an error, the field it points
    /// at is reported (as `prefix.FIELD`), removed, and the table read again. Returns `None`
    /// only when an error could not be tied to a field.
    fn read_table<'i, T: Deserialize<'i>>(
        &mut self,
        mut table: DeTable<'i>,
        span: Range<usize>,
        prefix: &str,
        hint: fn(&str) -> Option<&'static str>,
    ) -> Option<T> {
        // Each round removes one field, so this ends after at most len + 1 rounds, and after
        // MAX_TABLE_ERRORS (each round clones the table: keep a huge bad table cheap).
        for round in 0..=table.len() {
            if round == MAX_TABLE_ERRORS {
                self.error(
                    span,
                    prefix.to_owned(),
                    ErrorKind::TooManyErrors(MAX_TABLE_ERRORS),
                );
                return None;
            }
            let value = Spanned::new(span.clone(), DeValue::Table(table.clone()));
            let err = match T::deserialize(value.into_deserializer()) {
                Ok(t) => return Some(t),
                Err(e) => e,
            };
            let message = one_line(err.message());
            let at = err.span();
            let field = at.as_ref().and_then(|at| {
                table
                    .iter()
                    .find(|(k, v)| within(at, &k.span()) || within(at, &v.span()))
                    .map(|(k, _)| k.get_ref().to_string())
            });
            let Some(field) = field else {
                self.error(
                    at.unwrap_or(span),
                    prefix.to_owned(),
                    ErrorKind::Invalid {
                        message,
                        hint: None,
                    },
                );
                return None;
            };
            let unknown = message.starts_with("unknown field");
            let path = format!("{prefix}.{field}");
            self.set_aside.push(path.clone());
            self.error(
                at.unwrap_or(span.clone()),
                path,
                ErrorKind::Invalid {
                    message,
                    hint: if unknown { hint(&field) } else { None },
                },
            );
            table.remove(field.as_str());
        }
        None
    }

    /// `value` as a table, or an error naming `field` and `None`.
    fn as_table<'i>(
        &mut self,
        value: Spanned<DeValue<'i>>,
        field: &str,
        what: &'static str,
    ) -> Option<(DeTable<'i>, Range<usize>)> {
        let span = value.span();
        match value.into_inner() {
            DeValue::Table(t) => Some((t, span)),
            other => {
                let hint = (field == "pipe" && matches!(other, DeValue::Array(_)))
                    .then_some("write one [pipe.NAME] table per pipe, not [[pipe]]");
                self.error(
                    span,
                    field.to_owned(),
                    ErrorKind::Invalid {
                        message: format!("invalid type: {}, expected {what}", type_name(&other)),
                        hint,
                    },
                );
                None
            }
        }
    }

    fn process(&mut self, value: Spanned<DeValue<'_>>) -> Option<Settings> {
        let (table, span) = self.as_table(value, "process", "a table")?;
        let raw: RawProcess = self.read_table(table, span, "process", pipe_hint)?;
        let mut s = Settings::default();
        if let Some(p) = raw.control {
            s.control = self.unix_path(&p, "process.control");
            if let Some(path) = &s.control {
                let addr = SockAddrSpec::Unix(path.clone());
                self.sources
                    .push(("process.control".into(), addr, p.span()));
            }
        }
        if let Some(l) = raw.log {
            s.log = match l.into_inner() {
                RawLog::Stderr => LogTarget::Stderr,
                RawLog::Syslog => LogTarget::Syslog,
            };
        }
        if let Some(t) = raw.threads
            && let Some(n) = self.int(&t, "process.threads", 1, MAX_THREADS, "1 to 64")
        {
            s.threads = n;
        }
        s.daemonize = raw.daemonize.is_some_and(|d| *d.get_ref());
        if let Some(p) = raw.pidfile {
            s.pidfile = self.abs_path(&p, "process.pidfile");
        }
        s.wait_for_dns = raw.wait_for_dns.is_some_and(|d| *d.get_ref());
        let user = raw
            .user
            .and_then(|u| self.account(&u, "process.user", false));
        let group = raw
            .group
            .and_then(|g| self.account(&g, "process.group", true));
        s.user = match (user, group) {
            (Some(user), Some(group)) => Some(UserGroup::UserAndGroup { user, group }),
            (Some(user), None) => Some(UserGroup::User(user)),
            (None, Some(group)) => Some(UserGroup::Group(group)),
            (None, None) => None,
        };
        if let Some(t) = raw.shutdown_timeout {
            s.shutdown_timeout = self.seconds(
                &t,
                "process.shutdown_timeout",
                true,
                MAX_SHUTDOWN_TIMEOUT,
                "0 to 86400 seconds",
            );
        }
        if let Some(m) = raw.metrics {
            s.metrics = self.address(&m, "process.metrics");
            if let Some(addr) = &s.metrics {
                self.sources
                    .push(("process.metrics".into(), addr.clone(), m.span()));
            }
        }
        if let Some(a) = raw.audit_log {
            if a.get_ref() == "stderr" {
                s.audit_log = Some(AuditLog::Stderr);
            } else {
                s.audit_log = self.abs_path(&a, "process.audit_log").map(AuditLog::File);
            }
        }
        Some(s)
    }

    fn pipes(&mut self, value: Spanned<DeValue<'_>>) -> Vec<PipeSpec> {
        let Some((table, span)) = self.as_table(value, "pipe", "a table of [pipe.NAME] tables")
        else {
            return Vec::new();
        };
        if table.is_empty() {
            self.error(span, "pipe", ErrorKind::NoPipes);
            return Vec::new();
        }
        let mut entries: Vec<_> = table.into_iter().collect();
        entries.sort_by_key(|(k, _)| k.span().start);
        let mut out = Vec::new();
        for (name, value) in entries {
            let name_span = name.span();
            let name = name.get_ref().to_string();
            let field = format!("pipe.{name}");
            if !valid_pipe_name(&name) {
                self.error(
                    name_span.clone(),
                    field.clone(),
                    ErrorKind::BadPipeName(name.clone()),
                );
            }
            let Some((table, span)) = self.as_table(value, &field, "a table of pipe options")
            else {
                continue;
            };
            if let Some(p) = self.pipe(name, name_span, table, span) {
                out.push(p);
            }
        }
        out
    }

    fn pipe(
        &mut self,
        name: String,
        name_span: Range<usize>,
        mut table: DeTable<'_>,
        span: Range<usize>,
    ) -> Option<PipeSpec> {
        let prefix = format!("pipe.{name}");
        let source_tcp = table.remove("source_tcp");
        let target_tcp = table.remove("target_tcp");
        let raw: Option<RawPipe> = self.read_table(table, span.clone(), &prefix, process_hint);
        let source_tcp = source_tcp.and_then(|v| self.tcp(v, &format!("{prefix}.source_tcp")));
        let target_tcp = target_tcp.and_then(|v| self.tcp(v, &format!("{prefix}.target_tcp")));
        let raw = raw?;

        let f = |field: &str| format!("{prefix}.{field}");
        let missing = |cx: &mut Self, field: &str| {
            if !cx.set_aside.contains(&f(field)) {
                cx.error(name_span.clone(), f(field), ErrorKind::Missing);
            }
        };
        let mode = match &raw.mode {
            Some(m) => match m.get_ref() {
                RawMode::Encrypt => Some(Mode::Encrypt),
                RawMode::Decrypt => Some(Mode::Decrypt),
            },
            None => {
                missing(self, "mode");
                None
            }
        };
        let source = match &raw.source {
            Some(s) => {
                let a = self.address(s, &f("source"));
                if let Some(a) = &a {
                    self.sources.push((f("source"), a.clone(), s.span()));
                }
                a
            }
            None => {
                missing(self, "source");
                None
            }
        };
        let target = match &raw.target {
            Some(t) => self.address(t, &f("target")),
            None => {
                missing(self, "target");
                None
            }
        };
        let max_keys = match &raw.max_keys {
            Some(m) => self.int(m, &f("max_keys"), 1, MAX_KEYS_LIMIT, "1 to 16"),
            None => Some(DEFAULT_MAX_KEYS),
        };
        let keys = match &raw.keys {
            Some(list) => self.key_list(list, &f("keys"), max_keys),
            None => {
                missing(self, "keys");
                None
            }
        };
        let is_unix =
            |a: &Option<SockAddrSpec>| a.as_ref().map(|a| matches!(a, SockAddrSpec::Unix(_)));
        let legs = Legs {
            source_unix: is_unix(&source),
            target_unix: is_unix(&target),
            source_tcp,
            target_tcp,
        };
        let (Some(mode), Some(source), Some(target), Some(keys)) = (mode, source, target, keys)
        else {
            // Still check the options (against the source and target where those are known),
            // so that their errors are reported too.
            let dummy = SockAddrSpec::Unix(PathBuf::from("/"));
            let mut p = PipeSpec::new(name, Mode::Encrypt, dummy.clone(), dummy, Vec::new());
            self.options(&raw, &mut p, &prefix, legs);
            return None;
        };
        let mut spec = PipeSpec::new(name, mode, source, target, keys);
        if let Some(m) = max_keys {
            spec.max_keys = m;
        }
        self.options(&raw, &mut spec, &prefix, legs);
        Some(spec)
    }

    /// Every option of a pipe but mode, source, target and keys, checked against each other
    /// and against the kinds of source and target in `legs` (where known).
    fn options(&mut self, raw: &RawPipe, p: &mut PipeSpec, prefix: &str, legs: Legs) {
        let f = |field: &str| format!("{prefix}.{field}");
        if let Some(v) = &raw.pfs {
            p.pfs = match v.get_ref() {
                RawPfs::Standard => PfsPolicy::Standard,
                RawPfs::Disabled => PfsPolicy::Disabled,
                RawPfs::Required => PfsPolicy::Required,
            };
        }
        if let Some(x) = &raw.x25519 {
            p.x25519 = *x.get_ref();
            if p.x25519 && p.pfs == PfsPolicy::Disabled {
                self.error(
                    x.span(),
                    f("x25519"),
                    ErrorKind::DoesNotFit(
                        "x25519 cannot be combined with pfs = \"disabled\": X25519 mode always \
                         uses forward secrecy (pfs = \"required\" is accepted)"
                            .into(),
                    ),
                );
            }
        }
        if let Some(k) = &raw.keepalive {
            p.keepalive = *k.get_ref();
        }
        if let Some(n) = &raw.max_connections
            && let Some(n) = self.int(
                n,
                &f("max_connections"),
                0,
                MAX_CONNECTIONS,
                "0 (unlimited) to 500000",
            )
        {
            p.max_connections = (n > 0).then_some(n);
        }
        if let Some(h) = &raw.handshake_limit
            && let Some(n) = self.int(h, &f("handshake_limit"), 1, MAX_CONNECTIONS, "1 to 500000")
        {
            match p.max_connections {
                Some(max) if n > max => self.error(
                    h.span(),
                    f("handshake_limit"),
                    ErrorKind::DoesNotFit(format!(
                        "handshake_limit {n} is more than max_connections {max}"
                    )),
                ),
                _ => p.handshake_limit = Some(n),
            }
        }
        if let Some(t) = &raw.timeout
            && let Some(d) = self.seconds(
                t,
                &f("timeout"),
                false,
                MAX_INTERVAL,
                "more than 0, at most 86400 seconds",
            )
        {
            p.timeout = d;
        }
        let mut interval = Some(DEFAULT_RTIME);
        if let Some(r) = &raw.resolve_interval {
            interval = self.seconds(
                r,
                &f("resolve_interval"),
                false,
                MAX_INTERVAL,
                "more than 0, at most 86400 seconds",
            );
        }
        if let Some(rr) = &raw.re_resolve
            && !*rr.get_ref()
        {
            if let Some(r) = &raw.resolve_interval {
                self.error(
                    r.span(),
                    f("resolve_interval"),
                    ErrorKind::DoesNotFit(
                        "resolve_interval does not fit re_resolve = false (-r with -R)".into(),
                    ),
                );
            }
            interval = None;
        }
        p.resolve_interval = interval;
        let Legs {
            source_unix,
            target_unix,
            source_tcp,
            target_tcp,
        } = legs;
        if let Some(b) = &raw.bind
            && let Some(addr) = self.address(b, &f("bind"))
        {
            if matches!(addr, SockAddrSpec::Unix(_)) {
                self.error(
                    b.span(),
                    f("bind"),
                    ErrorKind::DoesNotFit(
                        "bind must be an IP address and port (host:0 for any port)".into(),
                    ),
                );
            } else if target_unix == Some(true) {
                self.error(
                    b.span(),
                    f("bind"),
                    ErrorKind::DoesNotFit("bind applies only to a TCP target".into()),
                );
            } else {
                p.bind = Some(addr);
            }
        }
        // The Unix listener's file.
        let mut unix = UnixSocketOptions::default();
        if let Some(m) = &raw.socket_mode {
            let text = m.get_ref();
            let digits = text.strip_prefix("0o").unwrap_or(text);
            match u32::from_str_radix(digits, 8) {
                Ok(v)
                    if v <= 0o7777
                        && !digits.is_empty()
                        && digits.bytes().all(|b| b.is_ascii_digit()) =>
                {
                    unix.mode = Some(v)
                }
                _ => self.error(
                    m.span(),
                    f("socket_mode"),
                    ErrorKind::BadValue {
                        value: text.clone(),
                        expected: "an octal mode such as \"0660\", at most \"7777\"",
                    },
                ),
            }
        }
        if let Some(o) = &raw.socket_owner {
            unix.owner = self.account(o, &f("socket_owner"), false);
        }
        if let Some(g) = &raw.socket_group {
            unix.group = self.account(g, &f("socket_group"), true);
        }
        if source_unix == Some(false) {
            for (name, v) in [
                ("socket_mode", &raw.socket_mode),
                ("socket_owner", &raw.socket_owner),
                ("socket_group", &raw.socket_group),
            ] {
                if let Some(v) = v {
                    self.error(
                        v.span(),
                        f(name),
                        ErrorKind::DoesNotFit(format!(
                            "{name} applies only to a Unix socket source (/path)"
                        )),
                    );
                }
            }
        } else {
            p.unix_socket = unix;
        }
        for (leg, opts, is_unix) in [
            ("source_tcp", source_tcp, source_unix),
            ("target_tcp", target_tcp, target_unix),
        ] {
            let Some((opts, span)) = opts else { continue };
            if is_unix == Some(true) {
                let side = if leg == "source_tcp" {
                    "source"
                } else {
                    "target"
                };
                self.error(
                    span,
                    f(leg),
                    ErrorKind::DoesNotFit(format!(
                        "{leg} applies only to a TCP {side}, and the {side} is a Unix socket"
                    )),
                );
                continue;
            }
            if opts.sets_keepalive() && !p.keepalive {
                self.error(
                    span,
                    f(leg),
                    ErrorKind::DoesNotFit(
                        "keepalive_* options do not fit keepalive = false (-j)".into(),
                    ),
                );
                continue;
            }
            if leg == "source_tcp" {
                p.source_tcp = opts;
            } else {
                p.target_tcp = opts;
            }
        }
    }

    fn tcp(
        &mut self,
        value: Spanned<DeValue<'_>>,
        field: &str,
    ) -> Option<(TcpOptions, Range<usize>)> {
        let (table, span) = self.as_table(value, field, "a table of TCP options")?;
        let raw: RawTcp = self.read_table(table, span.clone(), field, pipe_hint)?;
        let f = |name: &str| format!("{field}.{name}");
        let max_secs = MAX_KEEPALIVE_SECS as usize;
        let mut o = TcpOptions::default();
        if let Some(v) = &raw.keepalive_idle {
            o.keepalive_idle = self
                .int(v, &f("keepalive_idle"), 1, max_secs, "1 to 32767 seconds")
                .map(|n| n as u32);
        }
        if let Some(v) = &raw.keepalive_interval {
            o.keepalive_interval = self
                .int(
                    v,
                    &f("keepalive_interval"),
                    1,
                    max_secs,
                    "1 to 32767 seconds",
                )
                .map(|n| n as u32);
        }
        if let Some(v) = &raw.keepalive_count {
            o.keepalive_count = self
                .int(
                    v,
                    &f("keepalive_count"),
                    1,
                    MAX_KEEPALIVE_COUNT as usize,
                    "1 to 127",
                )
                .map(|n| n as u32);
        }
        if let Some(v) = &raw.user_timeout {
            o.user_timeout = self.seconds(
                v,
                &f("user_timeout"),
                true,
                Duration::from_millis(u64::from(MAX_USER_TIMEOUT_MS)),
                "0 to 2147483 seconds",
            );
        }
        Some((o, span))
    }

    /// An integer in `min..=max`, or an [`ErrorKind::OutOfRange`] and `None`.
    fn int(
        &mut self,
        v: &Spanned<i64>,
        field: &str,
        min: usize,
        max: usize,
        range: &'static str,
    ) -> Option<usize> {
        match usize::try_from(*v.get_ref()) {
            Ok(n) if (min..=max).contains(&n) => Some(n),
            _ => {
                self.error(
                    v.span(),
                    field.to_owned(),
                    ErrorKind::OutOfRange {
                        value: v.get_ref().to_string(),
                        range,
                    },
                );
                None
            }
        }
    }

    /// A duration in seconds: finite, more than 0 (or 0 when `zero_ok`), at most `max`.
    fn seconds(
        &mut self,
        v: &Spanned<Seconds>,
        field: &str,
        zero_ok: bool,
        max: Duration,
        range: &'static str,
    ) -> Option<Duration> {
        let secs = v.get_ref().0;
        match Duration::try_from_secs_f64(secs) {
            Ok(d) if d <= max && (zero_ok || !d.is_zero()) => Some(d),
            _ => {
                self.error(
                    v.span(),
                    field.to_owned(),
                    ErrorKind::OutOfRange {
                        value: secs.to_string(),
                        range,
                    },
                );
                None
            }
        }
    }

    fn address(&mut self, v: &Spanned<String>, field: &str) -> Option<SockAddrSpec> {
        match SockAddrSpec::parse(v.get_ref()) {
            Ok(a) => Some(a),
            Err(e) => {
                self.error(v.span(), field.to_owned(), ErrorKind::Address(e));
                None
            }
        }
    }

    fn abs_path(&mut self, v: &Spanned<String>, field: &str) -> Option<PathBuf> {
        let s = v.get_ref();
        if s.starts_with('/') && !s.contains('\0') {
            Some(PathBuf::from(s))
        } else {
            self.error(
                v.span(),
                field.to_owned(),
                ErrorKind::NotAbsolute(s.clone()),
            );
            None
        }
    }

    /// An absolute path that fits a Unix socket address.
    fn unix_path(&mut self, v: &Spanned<String>, field: &str) -> Option<PathBuf> {
        let path = self.abs_path(v, field)?;
        match SockAddrSpec::parse(v.get_ref()) {
            Ok(_) => Some(path),
            Err(e) => {
                self.error(v.span(), field.to_owned(), ErrorKind::Address(e));
                None
            }
        }
    }

    /// A user or group name (or numeric id): non-empty, no `:`, no NUL, no whitespace.
    fn account(&mut self, v: &Spanned<String>, field: &str, group: bool) -> Option<String> {
        let s = v.get_ref();
        if s.is_empty() || s.contains([':', '\0']) || s.chars().any(char::is_whitespace) {
            self.error(
                v.span(),
                field.to_owned(),
                ErrorKind::BadValue {
                    value: s.clone(),
                    expected: "a user or group name or number, without ':' or spaces",
                },
            );
            return None;
        }
        if let Err(m) = self.keys.check_account(s, group) {
            self.error(v.span(), field.to_owned(), ErrorKind::NoAccount(m));
            return None;
        }
        Some(s.clone())
    }

    /// The `keys` list: non-empty, absolute paths, each passing the [`KeyCheck`], at most
    /// `max_keys` distinct ones.
    fn key_list(
        &mut self,
        list: &Spanned<Vec<Spanned<String>>>,
        field: &str,
        max_keys: Option<usize>,
    ) -> Option<Vec<KeySource>> {
        if list.get_ref().is_empty() {
            self.error(
                list.span(),
                field.to_owned(),
                ErrorKind::BadValue {
                    value: "[]".into(),
                    expected: "at least one key file",
                },
            );
            return None;
        }
        let mut keys = Vec::new();
        let mut ok = true;
        for (i, k) in list.get_ref().iter().enumerate() {
            let item = format!("{field}[{i}]");
            if k.get_ref() == "-" {
                self.error(
                    k.span(),
                    item,
                    ErrorKind::BadValue {
                        value: "-".into(),
                        expected: "a key file path: standard input is for the command line only",
                    },
                );
                ok = false;
                continue;
            }
            let Some(path) = self.abs_path(k, &item) else {
                ok = false;
                continue;
            };
            match self.keys.check(&path) {
                Ok(warnings) => {
                    for message in warnings {
                        self.warnings.push(ConfigWarning {
                            span: k.span(),
                            field: item.clone(),
                            message,
                        });
                    }
                }
                Err(m) => {
                    self.error(k.span(), item, ErrorKind::KeyFile(m));
                    ok = false;
                }
            }
            keys.push(KeySource::File(path));
        }
        let mut distinct: Vec<&KeySource> = Vec::new();
        for k in &keys {
            if !distinct.contains(&k) {
                distinct.push(k);
            }
        }
        if let Some(max) = max_keys
            && distinct.len() > max
        {
            self.error(
                list.span(),
                field.to_owned(),
                ErrorKind::TooManyKeys {
                    given: distinct.len(),
                    max,
                },
            );
            ok = false;
        }
        ok.then_some(keys)
    }

    /// Checks across pipes and the process's own sockets (control, metrics): no two listen
    /// on one address.
    fn cross_checks(&mut self) {
        let sources = std::mem::take(&mut self.sources);
        for (i, (field, addr, span)) in sources.iter().enumerate() {
            if let Some((other, _, at)) = sources[..i].iter().find(|(_, a, _)| overlaps(a, addr)) {
                let kind = ErrorKind::DuplicateSource {
                    other: other.clone(),
                    at: Location::of(self.text, at.start),
                };
                self.error(span.clone(), field.clone(), kind);
            }
        }
    }
}

/// Whether listening on `a` and on `b` at once would clash: the same address, or two IP
/// addresses on one port where one is the wildcard of a family that covers the other (`[::]`
/// covers IPv4 too, as Linux listens dual-stack by default).
fn overlaps(a: &SockAddrSpec, b: &SockAddrSpec) -> bool {
    use std::net::SocketAddr::{V4, V6};
    match (a, b) {
        (SockAddrSpec::Unix(x), SockAddrSpec::Unix(y)) => x == y,
        (SockAddrSpec::Inet(x), SockAddrSpec::Inet(y)) => {
            if x.port() != y.port() {
                return false;
            }
            match (x, y) {
                (V4(p), V4(q)) => {
                    p.ip() == q.ip() || p.ip().is_unspecified() || q.ip().is_unspecified()
                }
                (V6(p), V6(q)) => {
                    p.ip() == q.ip() || p.ip().is_unspecified() || q.ip().is_unspecified()
                }
                (V6(p), V4(_)) | (V4(_), V6(p)) => p.ip().is_unspecified(),
            }
        }
        (SockAddrSpec::Host { host: h1, port: p1 }, SockAddrSpec::Host { host: h2, port: p2 }) => {
            h1.eq_ignore_ascii_case(h2) && p1 == p2
        }
        _ => false,
    }
}

/// The TOML type of a value, for messages.
fn type_name(v: &DeValue<'_>) -> &'static str {
    match v {
        DeValue::String(_) => "string",
        DeValue::Integer(_) => "integer",
        DeValue::Float(_) => "float",
        DeValue::Boolean(_) => "boolean",
        DeValue::Datetime(_) => "datetime",
        DeValue::Array(_) => "array",
        DeValue::Table(_) => "table",
    }
}

#[cfg(test)]
mod tests;
