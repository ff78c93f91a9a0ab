//! The pipe description: what one relay pipe does (mode, source, target, keys) and every
//! per-pipe option, with no trace of where it came from. The spiped command line builds one
//! ([`crate::cli::SpipedArgs::to_config`]); the configuration file builds one per
//! `[pipe.NAME]` table ([`super::file`]).
//!
//! Defaults are spiped 1.6's: a [`PipeSpec`] built with [`PipeSpec::new`] behaves exactly as
//! `spiped -e|-d -s SOURCE -t TARGET -k KEY...` with no other option.

use crate::proto::handshake::ExchangePolicy;
use std::path::PathBuf;
use std::time::Duration;

use super::addr::SockAddrSpec;

/// The largest connection limit (`-n`, `max_connections`). spiped 1.6.2 itself takes any
/// `size_t`; spiperelay caps it here.
pub const MAX_CONNECTIONS: usize = 500_000;

/// The default connection limit (`-n`).
pub const DEFAULT_MAX_CONNECTIONS: usize = 100;

/// The default connect and handshake timeout (`-o`): 5 seconds.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// The default target re-resolution interval (`-r`): 60 seconds.
pub const DEFAULT_RTIME: Duration = Duration::from_secs(60);

/// How many keys may be accepted at once without `--max-keys`: two, the current one and the
/// one being rotated in (as the managed-Redis AUTH token rotation allows).
pub const DEFAULT_MAX_KEYS: usize = 2;

/// The largest `--max-keys`: a `-d` handshake costs one HMAC per accepted key.
pub const MAX_KEYS_LIMIT: usize = 16;

/// The largest TCP keep-alive idle time and probe interval, in seconds (Linux's
/// `MAX_TCP_KEEPIDLE` and `MAX_TCP_KEEPINTVL`).
pub const MAX_KEEPALIVE_SECS: u32 = 32_767;

/// The largest TCP keep-alive probe count (Linux's `MAX_TCP_KEEPCNT`).
pub const MAX_KEEPALIVE_COUNT: u32 = 127;

/// The largest `TCP_USER_TIMEOUT`, in milliseconds (the option is a C `int`).
pub const MAX_USER_TIMEOUT_MS: u32 = i32::MAX as u32;

/// Which side of the tunnel a pipe is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Mode {
    /// `-e`: accept plaintext on the source, send encrypted to the target (protocol client).
    Encrypt,
    /// `-d`: accept encrypted on the source, send plaintext to the target (protocol server).
    Decrypt,
}

impl Mode {
    /// The configuration file's word for the mode: `encrypt` or `decrypt`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Encrypt => "encrypt",
            Self::Decrypt => "decrypt",
        }
    }
}

/// Forward-secrecy policy (`-f`, `-g`, spec §1.6).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum PfsPolicy {
    /// Neither flag: do Diffie-Hellman, and accept a peer that runs with `-f`.
    #[default]
    Standard,
    /// `-f`: skip Diffie-Hellman (send `y = 1`); the session keys depend only on the key file
    /// and the nonces.
    Disabled,
    /// `-g`: do Diffie-Hellman, and drop a peer that sends `y = 1`.
    Required,
}

impl PfsPolicy {
    /// The policy for the flags seen: `-f` gives [`PfsPolicy::Disabled`], `-g`
    /// [`PfsPolicy::Required`], neither [`PfsPolicy::Standard`]. Callers reject both flags
    /// together before calling; if both are set anyway, `-f` wins.
    pub fn from_flags(f: bool, g: bool) -> Self {
        match (f, g) {
            (true, _) => Self::Disabled,
            (false, true) => Self::Required,
            (false, false) => Self::Standard,
        }
    }

    /// The configuration file's word for the policy: `standard`, `disabled` or `required`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Standard => "standard",
            Self::Disabled => "disabled",
            Self::Required => "required",
        }
    }

    /// The exchange this policy selects, with `--x25519` or without. X25519 mode always has
    /// forward secrecy: the command-line parsers and the configuration file refuse `--x25519`
    /// with `-f` (the one check of that pair), so here `x25519` wins.
    pub fn exchange(self, x25519: bool) -> ExchangePolicy {
        match (x25519, self) {
            (true, _) => ExchangePolicy::X25519,
            (false, Self::Disabled) => ExchangePolicy::Group14NoPfs,
            (false, Self::Standard) => ExchangePolicy::Group14Pfs,
            (false, Self::Required) => ExchangePolicy::Group14RequirePfs,
        }
    }
}

/// Where a key comes from.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum KeySource {
    /// Standard input (`-k -`; the command line only).
    Stdin,
    /// A key file at this path.
    File(PathBuf),
}

/// TCP options of one leg of a pipe (the accepted connections, or the connections to the
/// target). `None` everywhere is spiped's behaviour: the kernel's defaults.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct TcpOptions {
    /// `TCP_KEEPIDLE`: seconds of idleness before the first keep-alive probe, 1 to
    /// [`MAX_KEEPALIVE_SECS`].
    pub keepalive_idle: Option<u32>,
    /// `TCP_KEEPINTVL`: seconds between keep-alive probes, 1 to [`MAX_KEEPALIVE_SECS`].
    pub keepalive_interval: Option<u32>,
    /// `TCP_KEEPCNT`: unanswered probes before the connection is dropped, 1 to
    /// [`MAX_KEEPALIVE_COUNT`].
    pub keepalive_count: Option<u32>,
    /// `TCP_USER_TIMEOUT`: how long sent data may stay unacknowledged before the connection is
    /// dropped, at most [`MAX_USER_TIMEOUT_MS`] milliseconds; `Some(ZERO)` is the kernel's
    /// "system default" value.
    pub user_timeout: Option<Duration>,
}

impl TcpOptions {
    /// Whether any option is set.
    pub fn is_set(&self) -> bool {
        *self != Self::default()
    }

    /// Whether any keep-alive option is set (they need keep-alives on).
    pub fn sets_keepalive(&self) -> bool {
        self.keepalive_idle.is_some()
            || self.keepalive_interval.is_some()
            || self.keepalive_count.is_some()
    }
}

/// The options set, as `check-config` prints them: `keepalive IDLE/INTVL/CNT` (a `-` for each
/// left at the kernel's default) and `user timeout SECSs`, joined by `, `; empty when none is
/// set.
impl std::fmt::Display for TcpOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.sets_keepalive() {
            let part = |v: Option<u32>| v.map_or_else(|| "-".to_owned(), |v| v.to_string());
            write!(
                f,
                "keepalive {}/{}/{}",
                part(self.keepalive_idle),
                part(self.keepalive_interval),
                part(self.keepalive_count)
            )?;
            if self.user_timeout.is_some() {
                f.write_str(", ")?;
            }
        }
        if let Some(t) = self.user_timeout {
            write!(f, "user timeout {}s", t.as_secs_f64())?;
        }
        Ok(())
    }
}

/// Who may connect to a Unix-socket source: the socket file's permissions and owner. `None`
/// everywhere is spiped's behaviour: the process's umask, user and group.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct UnixSocketOptions {
    /// The permission bits of the socket file (at most `0o7777`).
    pub mode: Option<u32>,
    /// The user (name or numeric id) to own the socket file.
    pub owner: Option<String>,
    /// The group (name or numeric id) to own the socket file.
    pub group: Option<String>,
}

impl UnixSocketOptions {
    /// Whether any option is set.
    pub fn is_set(&self) -> bool {
        *self != Self::default()
    }
}

/// One pipe: listen on `source`, and for each connection accepted, connect to `target` and
/// relay, encrypting or decrypting (`mode`) with `keys`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PipeSpec {
    /// The pipe's name: in log lines, `--pipe NAME`, metrics labels and systemd's
    /// `FileDescriptorName=`. See [`super::valid_pipe_name`].
    pub name: String,
    /// Encrypt (`-e`) or decrypt (`-d`).
    pub mode: Mode,
    /// Where to listen (`-s`).
    pub source: SockAddrSpec,
    /// Where to connect for each connection (`-t`).
    pub target: SockAddrSpec,
    /// The keys (`-k`), never empty: the first is the primary key, the others are also
    /// accepted (key rotation). At most one is [`KeySource::Stdin`].
    pub keys: Vec<KeySource>,
    /// `-f` / `-g` / neither.
    pub pfs: PfsPolicy,
    /// `--x25519`: spiperelay's X25519 handshake (both ends must use it; docs/protocol.md §5). Never
    /// together with [`PfsPolicy::Disabled`].
    pub x25519: bool,
    /// TCP keep-alives on both legs; `false` is `-j`.
    pub keepalive: bool,
    /// `-n`: the most simultaneous connections, at most [`MAX_CONNECTIONS`]; `None` for
    /// unlimited.
    pub max_connections: Option<usize>,
    /// The most connections still in the handshake at once (counted within
    /// `max_connections`); `None` for no separate limit (spiped's behaviour).
    pub handshake_limit: Option<usize>,
    /// `-o`: the connect and handshake timeout, more than zero.
    pub timeout: Duration,
    /// `-r`: how often to re-resolve the target; `None` for never (`-R`).
    pub resolve_interval: Option<Duration>,
    /// `-b`: the local address for connections to the target.
    pub bind: Option<SockAddrSpec>,
    /// `--max-keys`: the most keys accepted at once, 1 to [`MAX_KEYS_LIMIT`].
    pub max_keys: usize,
    /// The socket file of a Unix source; all `None` for a TCP source.
    pub unix_socket: UnixSocketOptions,
    /// TCP options of accepted connections; all `None` for a Unix source.
    pub source_tcp: TcpOptions,
    /// TCP options of connections to the target; all `None` for a Unix target.
    pub target_tcp: TcpOptions,
}

impl PipeSpec {
    /// A pipe with every option at spiped's default: standard PFS, group-14 handshake,
    /// keep-alives on, 100 connections, 5 s timeout, re-resolution every 60 s, no `-b`,
    /// [`DEFAULT_MAX_KEYS`] keys, no handshake limit, no socket or TCP options.
    pub fn new(
        name: impl Into<String>,
        mode: Mode,
        source: SockAddrSpec,
        target: SockAddrSpec,
        keys: Vec<KeySource>,
    ) -> Self {
        Self {
            name: name.into(),
            mode,
            source,
            target,
            keys,
            pfs: PfsPolicy::Standard,
            x25519: false,
            keepalive: true,
            max_connections: Some(DEFAULT_MAX_CONNECTIONS),
            handshake_limit: None,
            timeout: DEFAULT_TIMEOUT,
            resolve_interval: Some(DEFAULT_RTIME),
            bind: None,
            max_keys: DEFAULT_MAX_KEYS,
            unix_socket: UnixSocketOptions::default(),
            source_tcp: TcpOptions::default(),
            target_tcp: TcpOptions::default(),
        }
    }

    /// One line describing the pipe, as `check-config` prints it:
    /// `NAME: MODE SOURCE -> TARGET, N key(s)` and the options that differ from spiped's
    /// defaults.
    pub fn summary(&self) -> String {
        let mut s = format!(
            "{}: {} {} -> {}, {} key{}",
            self.name,
            self.mode.as_str(),
            self.source,
            self.target,
            self.keys.len(),
            if self.keys.len() == 1 { "" } else { "s" }
        );
        if self.pfs != PfsPolicy::Standard {
            s.push_str(&format!(", pfs {}", self.pfs.as_str()));
        }
        if self.x25519 {
            s.push_str(", x25519");
        }
        if !self.keepalive {
            s.push_str(", no keepalive");
        }
        match self.max_connections {
            Some(n) => s.push_str(&format!(", max {n} connections")),
            None => s.push_str(", unlimited connections"),
        }
        if let Some(n) = self.handshake_limit {
            s.push_str(&format!(", max {n} in handshake"));
        }
        if let Some(b) = &self.bind {
            s.push_str(&format!(", bind {b}"));
        }
        for (leg, o) in [("source", &self.source_tcp), ("target", &self.target_tcp)] {
            if o.is_set() {
                s.push_str(&format!(", {leg} TCP {o}"));
            }
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_has_spipeds_defaults() {
        let p = PipeSpec::new(
            "x",
            Mode::Encrypt,
            SockAddrSpec::parse("/tmp/a").unwrap(),
            SockAddrSpec::parse("h:1").unwrap(),
            vec![KeySource::File("/k".into())],
        );
        assert_eq!(p.pfs, PfsPolicy::Standard);
        assert!(p.keepalive && !p.x25519);
        assert_eq!(p.max_connections, Some(100));
        assert_eq!(p.timeout, Duration::from_secs(5));
        assert_eq!(p.resolve_interval, Some(Duration::from_secs(60)));
        assert_eq!(p.max_keys, 2);
        assert!(!p.unix_socket.is_set() && !p.source_tcp.is_set() && !p.target_tcp.is_set());
        assert_eq!(
            p.summary(),
            "x: encrypt /tmp/a -> h:1, 1 key, max 100 connections"
        );
    }

    #[test]
    fn summary_names_the_tcp_options_of_each_leg() {
        let mut p = PipeSpec::new(
            "r",
            Mode::Decrypt,
            SockAddrSpec::parse("[::1]:1").unwrap(),
            SockAddrSpec::parse("h:1").unwrap(),
            vec![KeySource::File("/k".into())],
        );
        p.source_tcp.keepalive_idle = Some(30);
        p.source_tcp.keepalive_count = Some(3);
        p.target_tcp.user_timeout = Some(Duration::from_millis(2500));
        assert_eq!(
            p.summary(),
            "r: decrypt [::1]:1 -> h:1, 1 key, max 100 connections, \
             source TCP keepalive 30/-/3, target TCP user timeout 2.5s"
        );
        p.target_tcp.keepalive_interval = Some(5);
        assert!(
            p.summary()
                .ends_with("target TCP keepalive -/5/-, user timeout 2.5s")
        );
    }

    #[test]
    fn pfs_from_flags() {
        assert_eq!(PfsPolicy::from_flags(false, false), PfsPolicy::Standard);
        assert_eq!(PfsPolicy::from_flags(true, false), PfsPolicy::Disabled);
        assert_eq!(PfsPolicy::from_flags(false, true), PfsPolicy::Required);
        assert_eq!(PfsPolicy::from_flags(true, true), PfsPolicy::Disabled);
    }
}
