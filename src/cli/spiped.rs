//! The `spiped` command line (spec §3.1).
//!
//! Checks happen in spiped 1.6.2's order, so the first error reported is the one spiped would
//! report: while scanning, in command-line order, illegal options, missing arguments, repeated
//! options, `-e` with `-d`, bad `-n`/`-o`/`-r`/`-u` values, and `-v` (which ends parsing at
//! once, successfully); then leftover arguments; then a missing `-e`/`-d`, `-f` with `-g`, a
//! missing `-k`, `-r` with `-R`, a missing `-s`, a missing `-t`; then the `-s`, `-t` and `-b`
//! addresses.
//!
//! [`DAEMON_OPTIONS`] is the one table of options: the scanner's specs come from it, and
//! `spiperelay --help` ([`super::help`]) lists every row with its description and default.
//! [`SPIPED_USAGE`] stays spiped 1.6.2's text, so the options below are not in it.
//!
//! spiperelay additions and differences, on purpose:
//! - `-k` may be repeated, to accept several keys during key rotation: the one exception to
//!   "a repeated option is a usage error". `-k -` (stdin) may appear only once.
//! - `--control <path>` (a Unix control socket for `spiperelay keys`) and `--max-keys <n>`
//!   (how many keys may be accepted at once, default [`DEFAULT_MAX_KEYS`]) are spiperelay's
//!   key-rotation options; they are not in the usage text.
//! - `--threads <n>` runs the data path on `n` event-loop threads (1 to [`MAX_THREADS`],
//!   default 1), each with its own ring, all accepting on the one listening socket; not in
//!   the usage text.
//! - `--shutdown-timeout <seconds>` bounds the `SIGTERM` drain: connections still open that
//!   long after the first `SIGTERM` are closed (default: wait for them all, as before); not in
//!   the usage text.
//! - `--keepalive <idle>[,<interval>[,<count>]]` (whole seconds, 1 to
//!   [`MAX_KEEPALIVE_SECS`]; probes, 1 to [`MAX_KEEPALIVE_COUNT`]) and `--user-timeout <seconds>`
//!   (`TCP_USER_TIMEOUT`, 0 to [`MAX_USER_TIMEOUT_MS`] ms) set the kernel's dead-peer detection
//!   on both TCP legs (a Unix leg has none): a peer that vanishes is then dropped within that
//!   time instead of after the kernel's defaults (hours idle, or about 15 minutes of
//!   retransmissions). Unset, the kernel's defaults apply, as in spiped. `--keepalive` is
//!   refused with `-j`. Not in the usage text.
//! - `--handshake-limit <n>` caps the connections still in the handshake at once (1 to
//!   `-n`); when full, the oldest of them is dropped to admit a new client. Off by default,
//!   as spiped has no such limit; not in the usage text.
//! - `-b <bind address>` is accepted (spiped has it from 1.6.3 on), but the usage text stays
//!   1.6.2's.
//! - `--x25519` selects spiperelay's X25519 handshake mode (both ends must use it;
//!   `docs/protocol.md` §5); it is refused with `-f` ([`SpipedArgsError::X25519WithoutPfs`])
//!   and not in the usage text, which stays spiped's.
//! - `-n` must be decimal and at most [`MAX_CONNECTIONS`](super::value::MAX_CONNECTIONS)
//!   (spiped 1.6.2 takes any `size_t`, in any base, even `-1`); `-o 0` means the default of
//!   5 s, as in spiped; `-o`/`-r` take Rust's decimal float syntax (no `0x10`, no
//!   `inf`); `-u` is checked while scanning, so `-n 500001 -v`, `-o -1 -v` and `-u : -v` are
//!   errors where spiped prints its version; addresses are checked here rather than when
//!   resolved. See [`super::addr`] and [`super::value`].

use std::ffi::OsString;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use super::addr::{AddrError, SockAddrSpec};
use super::getopt::{Getopt, GetoptError, OptSpec};
use super::help::{OptDoc, REQUIRED, specs};
use super::value::{
    KeySource, UserGroup, ValueError, parse_conn_limit, parse_rtime, parse_timeout,
};
use super::{PfsPolicy, lossy_os};

/// spiped 1.6.2's usage text, byte for byte (spec §3.1), with its final newline. spiped prints
/// it to stderr and exits with status 1.
pub const SPIPED_USAGE: &str = "\
usage: spiped {-e | -d} -s <source socket> -t <target socket> -k <key file>
    [-DFj] [-f | -g] [-n <max # connections>] [-o <connection timeout>]
    [-p <pidfile>] [-r <rtime> | -R] [--syslog]
    [-u {<username> | <:groupname> | <username:groupname>}]
       spiped -v
";

use crate::config::TcpOptions;
/// The defaults and limits of the options, defined with the pipe description and settings
/// they fill in.
pub use crate::config::pipe::{
    DEFAULT_MAX_CONNECTIONS, DEFAULT_MAX_KEYS, DEFAULT_RTIME, DEFAULT_TIMEOUT, MAX_KEYS_LIMIT, Mode,
};
pub use crate::config::pipe::{MAX_KEEPALIVE_COUNT, MAX_KEEPALIVE_SECS, MAX_USER_TIMEOUT_MS};
pub use crate::config::settings::MAX_THREADS;

/// Every option of the daemon's command line: the one table the scanner takes its specs from
/// (`SPECS`) and `spiperelay --help` and the man page describe. A new option is one row here
/// and one arm in [`SpipedArgs::parse`].
#[rustfmt::skip] // one row per option
pub const DAEMON_OPTIONS: &[OptDoc] = &[
    OptDoc::spiped("-e", "", "encrypt: plaintext in on -s, encrypted out to -t (client end)", ""),
    OptDoc::spiped("-d", "", "decrypt: encrypted in on -s, plaintext out to -t (server end)", ""),
    OptDoc::spiped("-s", "ADDR", "address to listen on", REQUIRED),
    OptDoc::spiped("-t", "ADDR", "address to connect to, for each connection", REQUIRED),
    OptDoc::spiped("-k", "FILE", "key file (- reads stdin); several for key rotation", REQUIRED),
    OptDoc::spiped("-D", "", "daemonise first; retry failed address lookups every second", ""),
    OptDoc::spiped("-F", "", "stay in the foreground (no fork, no pidfile)", ""),
    OptDoc::spiped("-f", "", "no forward secrecy: skip Diffie-Hellman (send y = 1)", ""),
    OptDoc::spiped("-g", "", "require forward secrecy: drop a peer that runs with -f", ""),
    OptDoc::spiped("-j", "", "turn TCP keep-alives off", ""),
    OptDoc::spiped("-n", "N", "most connections at once; 0 for no limit", "100"),
    OptDoc::spiped("-o", "SECS", "timeout for the target connect and for the handshake", "5"),
    OptDoc::spiped("-p", "FILE", "pidfile, written unless -F", "the -s text + .pid"),
    OptDoc::spiped("-r", "SECS", "look the -t address up again every SECS seconds", "60"),
    OptDoc::spiped("-R", "", "never look the -t address up again", ""),
    OptDoc::spiped("--syslog", "", "log to syslog once daemonised, not to stderr", ""),
    OptDoc::spiped("-u", "USER[:GROUP]", "after binding, switch to USER, :GROUP or both", ""),
    OptDoc::spiped("-b", "ADDR", "local address to connect to -t from (spiped 1.6.3)", ""),
    OptDoc::spiped("-v", "", "print the version and exit", ""),
    OptDoc::own("--threads", "N", "event-loop threads sharing the listening socket, 1-64", "1"),
    OptDoc::own("--x25519", "", "X25519 handshake, spiperelay to spiperelay (not with -f)", ""),
    OptDoc::own("--control", "SOCKET", "Unix socket for `spiperelay keys` (key rotation)", ""),
    OptDoc::own("--max-keys", "N", "most keys accepted at once, 1-16", "2"),
    OptDoc::own("--shutdown-timeout", "SECS", "after SIGTERM, cut what is still open after SECS", "no limit"),
    OptDoc::own("--keepalive", "IDLE[,INTVL[,CNT]]", "TCP keep-alive: probe after IDLE s, every INTVL s, CNT", "kernel's"),
    OptDoc::own("--user-timeout", "SECS", "TCP_USER_TIMEOUT: drop if sent data stays unacked SECS s", "kernel's"),
    OptDoc::own("--handshake-limit", "N", "most connections in the handshake; the oldest goes", "no limit"),
];

/// The scanner's view of [`DAEMON_OPTIONS`].
const SPECS: &[OptSpec] = &specs::<{ DAEMON_OPTIONS.len() }>(DAEMON_OPTIONS);

/// What a valid `spiped` command line asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SpipedCommand {
    /// `-v` was reached: print the version and exit 0.
    Version,
    /// Run the daemon with these settings (boxed: they are large and parsed once).
    Run(Box<SpipedArgs>),
}

/// The settings of a `spiped -e|-d` run, with every default filled in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpipedArgs {
    /// `-e` or `-d`.
    pub mode: Mode,
    /// `-s`: the address to listen on.
    pub source: SockAddrSpec,
    /// `-t`: the address to connect to for each connection.
    pub target: SockAddrSpec,
    /// `-k`, in command-line order; never empty. The first is the primary key; the others are
    /// also accepted (spiperelay's key rotation). At most one is [`KeySource::Stdin`].
    pub keys: Vec<KeySource>,
    /// `-D`: daemonise before resolving, and retry failed lookups every second.
    pub wait_for_dns: bool,
    /// `-F`: stay in the foreground and write no pidfile.
    pub foreground: bool,
    /// `-j`: turn TCP keep-alives off.
    pub no_keepalive: bool,
    /// `-f` / `-g` / neither.
    pub pfs: PfsPolicy,
    /// `-n`: the most simultaneous connections; `None` for unlimited (`-n 0`). Default
    /// `Some(100)`.
    pub max_connections: Option<usize>,
    /// `-o`: the connect and handshake timeout. Default 5 s.
    pub timeout: Duration,
    /// `-p`, or by default the `-s` text as typed followed by `.pid`.
    pub pidfile: PathBuf,
    /// `-r`: how often to re-resolve the target; `None` with `-R`. Default (and `-r 0`) 60 s.
    pub resolve_interval: Option<Duration>,
    /// `-b`: the local address for outgoing connections (spiped 1.6.3 and later).
    pub bind: Option<SockAddrSpec>,
    /// `--syslog`: log to syslog once daemonised.
    pub syslog: bool,
    /// `-u`: the user and/or group to switch to after binding.
    pub user: Option<UserGroup>,
    /// `--control`: where to serve the key-rotation control socket (spiperelay only).
    pub control: Option<PathBuf>,
    /// `--max-keys`: the most keys accepted at once, 1 to [`MAX_KEYS_LIMIT`]. Default
    /// [`DEFAULT_MAX_KEYS`].
    pub max_keys: usize,
    /// `--x25519`: spiperelay's X25519 handshake instead of spiped's group-14 one (both ends
    /// must use it; §5). Refused together with `-f`.
    pub x25519: bool,
    /// `--threads`: how many event-loop threads carry connections, 1 to [`MAX_THREADS`].
    /// Default 1 (everything on the main thread).
    pub threads: usize,
    /// `--shutdown-timeout`: how long the `SIGTERM` drain may last before the connections
    /// still open are closed; `None` (the default) waits for them all.
    pub shutdown_timeout: Option<Duration>,
    /// `--keepalive` and `--user-timeout` as they apply to the accepted connections: all
    /// `None` (the kernel's defaults) unless given, and always for a Unix source.
    pub source_tcp: TcpOptions,
    /// The same for the connections to the target: always all `None` for a Unix target.
    pub target_tcp: TcpOptions,
    /// `--handshake-limit`: the most connections still in the handshake at once, 1 to `-n`
    /// (when `-n` limits); when full, the oldest of them is dropped to admit a new one.
    /// `None` (the default, as spiped) for no limit of its own.
    pub handshake_limit: Option<usize>,
}

/// Why a `spiped` command line was rejected. [`SpipedArgsError::usage`] says whether the usage
/// text follows the message.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SpipedArgsError {
    /// An illegal option or a missing option argument (spiped's exact words).
    Getopt(GetoptError),
    /// An option other than `-k` was given twice. Holds its name.
    Repeated(&'static str),
    /// `-k -` (standard input) was given more than once.
    StdinKeyRepeated,
    /// A command-line argument that is not an option. Holds the first one.
    UnexpectedArgument(String),
    /// Both `-e` and `-d`.
    BothModes,
    /// Neither `-e` nor `-d` (and no `-v`).
    NoMode,
    /// Both `-f` and `-g`.
    BothPfs,
    /// `--x25519` together with `-f`: X25519 mode always uses forward secrecy.
    X25519WithoutPfs,
    /// A required option is absent: `-k`, `-s` or `-t`. Holds its name.
    MissingOption(&'static str),
    /// `-R` together with a `-r` other than 60 seconds (`-r 0` counts as 60, as in spiped).
    /// Holds the `-r` text.
    RtimeWithNoResolve(String),
    /// A bad `-n`, `-o`, `-r` or `-u` argument.
    Value(ValueError),
    /// A `--max-keys` argument that is not a decimal number from 1 to [`MAX_KEYS_LIMIT`].
    /// Holds the text.
    MaxKeys(String),
    /// A `--threads` argument that is not a decimal number from 1 to [`MAX_THREADS`]. Holds
    /// the text.
    Threads(String),
    /// A `--shutdown-timeout` argument that is not a number of seconds above zero. Holds the
    /// text.
    ShutdownTimeout(String),
    /// A `--keepalive` argument that is not `IDLE[,INTVL[,CNT]]` with each in range. Holds the
    /// text.
    Keepalive(String),
    /// A `--user-timeout` argument that is not a number of seconds from 0 to
    /// [`MAX_USER_TIMEOUT_MS`] milliseconds. Holds the text.
    UserTimeout(String),
    /// `--keepalive` together with `-j` (keep-alives off).
    KeepaliveWithoutKeepalives,
    /// A `--handshake-limit` argument that is not a decimal number from 1 to
    /// [`MAX_CONNECTIONS`](super::value::MAX_CONNECTIONS). Holds the text.
    HandshakeLimit(String),
    /// A `--handshake-limit` above the `-n` limit: (the handshake limit, `-n`).
    HandshakeLimitAboveMax(usize, usize),
    /// A `-s`, `-t` or `-b` address that does not parse.
    Address {
        /// The option: `-s`, `-t` or `-b`.
        flag: &'static str,
        /// What is wrong with it.
        error: AddrError,
    },
}

impl SpipedArgsError {
    /// The usage text to print after the message: `Some(`[`SPIPED_USAGE`]`)` for errors in the
    /// shape of the command line, `None` for a bad value or address (spiped prints just the
    /// message and exits 1).
    pub fn usage(&self) -> Option<&'static str> {
        match self {
            Self::Value(_)
            | Self::Address { .. }
            | Self::MaxKeys(_)
            | Self::Threads(_)
            | Self::ShutdownTimeout(_)
            | Self::Keepalive(_)
            | Self::UserTimeout(_)
            | Self::KeepaliveWithoutKeepalives
            | Self::HandshakeLimit(_)
            | Self::HandshakeLimitAboveMax(..)
            | Self::X25519WithoutPfs => None,
            _ => Some(SPIPED_USAGE),
        }
    }

    /// Whether spiped 1.6.2 prints a message line (`spiped: <Display>`) for this error. When
    /// false, spiped prints only the usage text; a drop-in binary that wants identical stderr
    /// does the same, while [`fmt::Display`] still explains the cause for logs and tests.
    pub fn spiped_prints_message(&self) -> bool {
        matches!(
            self,
            Self::Getopt(_) | Self::Value(_) | Self::Address { .. } | Self::Threads(_)
        )
    }
}

impl fmt::Display for SpipedArgsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Getopt(e) => e.fmt(f),
            Self::Repeated(name) => write!(f, "option {name} given more than once"),
            Self::StdinKeyRepeated => f.write_str("-k -: standard input given more than once"),
            Self::UnexpectedArgument(arg) => write!(f, "unexpected argument {arg:?}"),
            Self::BothModes => f.write_str("-e and -d are mutually exclusive"),
            Self::NoMode => f.write_str("one of -e or -d is required"),
            Self::BothPfs => f.write_str("-f and -g are mutually exclusive"),
            Self::X25519WithoutPfs => f.write_str(
                "--x25519 cannot be combined with -f: X25519 mode always uses forward secrecy \
                 (-g is accepted and always satisfied)",
            ),
            Self::MissingOption(name) => write!(f, "option {name} is required"),
            Self::RtimeWithNoResolve(r) => {
                write!(f, "-r {r} and -R are mutually exclusive")
            }
            Self::Value(e) => e.fmt(f),
            Self::MaxKeys(text) => write!(
                f,
                "--max-keys {text}: must be a number from 1 to {MAX_KEYS_LIMIT}"
            ),
            Self::Threads(text) => write!(
                f,
                "--threads {text}: must be a number from 1 to {MAX_THREADS}"
            ),
            Self::ShutdownTimeout(text) => write!(
                f,
                "--shutdown-timeout {text}: must be a number of seconds above zero"
            ),
            Self::Keepalive(text) => write!(
                f,
                "--keepalive {text}: must be IDLE[,INTVL[,CNT]]: idle time and interval 1 to \
                 {MAX_KEEPALIVE_SECS} seconds, count 1 to {MAX_KEEPALIVE_COUNT} probes"
            ),
            Self::UserTimeout(text) => write!(
                f,
                "--user-timeout {text}: must be a number of seconds from 0 to {}",
                MAX_USER_TIMEOUT_MS / 1000
            ),
            Self::KeepaliveWithoutKeepalives => {
                f.write_str("--keepalive cannot be combined with -j, which turns keep-alives off")
            }
            Self::HandshakeLimit(text) => write!(
                f,
                "--handshake-limit {text}: must be a number from 1 to {}",
                super::value::MAX_CONNECTIONS
            ),
            Self::HandshakeLimitAboveMax(n, max) => write!(
                f,
                "--handshake-limit {n} is more than -n {max}: the connections in the handshake \
                 count against -n too"
            ),
            Self::Address { flag, error } => write!(f, "{flag}: {error}"),
        }
    }
}

impl std::error::Error for SpipedArgsError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Getopt(e) => Some(e),
            Self::Value(e) => Some(e),
            Self::Address { error, .. } => Some(error),
            _ => None,
        }
    }
}

impl From<GetoptError> for SpipedArgsError {
    fn from(e: GetoptError) -> Self {
        Self::Getopt(e)
    }
}

impl From<ValueError> for SpipedArgsError {
    fn from(e: ValueError) -> Self {
        Self::Value(e)
    }
}

impl SpipedArgs {
    /// Parses spiped's arguments (the command line after `argv[0]`).
    ///
    /// Returns [`SpipedCommand::Version`] as soon as `-v` is reached (errors earlier on the
    /// line win), else [`SpipedCommand::Run`] with defaults filled in, else the first
    /// [`SpipedArgsError`] in spiped's checking order (see the module documentation). Never
    /// panics.
    pub fn parse<I, S>(args: I) -> Result<SpipedCommand, SpipedArgsError>
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        let mut getopt = Getopt::new(SPECS, args);
        let mut seen: Vec<&'static str> = Vec::new();
        let mut mode = None;
        let mut source = None;
        let mut target = None;
        let mut keys = Vec::new();
        let mut pfs_f = false;
        let mut pfs_g = false;
        let mut max_connections = Some(DEFAULT_MAX_CONNECTIONS);
        let mut timeout = DEFAULT_TIMEOUT;
        let mut pidfile = None;
        let mut rtime: Option<(Duration, OsString)> = None;
        let mut no_resolve = false;
        let mut bind = None;
        let mut user = None;
        let mut control = None;
        let mut max_keys = DEFAULT_MAX_KEYS;
        let mut threads = 1;
        let mut shutdown_timeout = None;
        let mut tcp = TcpOptions::default();
        let mut handshake_limit = None;
        let mut flags = Flags::default();

        while let Some(opt) = getopt.next_opt()? {
            let name = opt.name;
            // -k may repeat (key rotation); -e/-d after either is "both modes".
            if name != "-k" {
                if (name == "-e" || name == "-d") && mode.is_some() {
                    if seen.contains(&name) {
                        return Err(SpipedArgsError::Repeated(name));
                    }
                    return Err(SpipedArgsError::BothModes);
                }
                if seen.contains(&name) {
                    return Err(SpipedArgsError::Repeated(name));
                }
                seen.push(name);
            }
            let arg = opt.arg.unwrap_or_default();
            match name {
                "-e" => mode = Some(Mode::Encrypt),
                "-d" => mode = Some(Mode::Decrypt),
                "-s" => source = Some(arg),
                "-t" => target = Some(arg),
                "-k" => {
                    let key = KeySource::from_arg(&arg);
                    if key == KeySource::Stdin && keys.contains(&KeySource::Stdin) {
                        return Err(SpipedArgsError::StdinKeyRepeated);
                    }
                    keys.push(key);
                }
                "-D" => flags.wait_for_dns = true,
                "-F" => flags.foreground = true,
                "-j" => flags.no_keepalive = true,
                "-f" => pfs_f = true,
                "-g" => pfs_g = true,
                "-n" => max_connections = parse_conn_limit(&arg)?,
                "-o" => timeout = parse_timeout(&arg)?,
                "-p" => pidfile = Some(PathBuf::from(arg)),
                "-r" => rtime = Some((parse_rtime(&arg)?, arg)),
                "-R" => no_resolve = true,
                "-b" => bind = Some(arg),
                "--syslog" => flags.syslog = true,
                "-u" => user = Some(UserGroup::parse(&arg)?),
                "--control" => control = Some(PathBuf::from(arg)),
                "--max-keys" => max_keys = parse_max_keys(&arg)?,
                "--threads" => threads = parse_threads(&arg)?,
                "--shutdown-timeout" => shutdown_timeout = Some(parse_shutdown_timeout(&arg)?),
                "--keepalive" => {
                    let (idle, interval, count) = parse_keepalive(&arg)?;
                    tcp.keepalive_idle = Some(idle);
                    tcp.keepalive_interval = interval;
                    tcp.keepalive_count = count;
                }
                "--user-timeout" => tcp.user_timeout = Some(parse_user_timeout(&arg)?),
                "--handshake-limit" => handshake_limit = Some(parse_handshake_limit(&arg)?),
                "-v" => return Ok(SpipedCommand::Version),
                "--x25519" => flags.x25519 = true,
                // Every name in SPECS is handled above; Getopt returns no other.
                _ => return Err(GetoptError::IllegalOption(name.to_owned()).into()),
            }
        }
        if let Some(arg) = getopt.operands().first() {
            return Err(SpipedArgsError::UnexpectedArgument(lossy_os(arg)));
        }

        let mode = mode.ok_or(SpipedArgsError::NoMode)?;
        if pfs_f && pfs_g {
            return Err(SpipedArgsError::BothPfs);
        }
        if flags.x25519 && pfs_f {
            return Err(SpipedArgsError::X25519WithoutPfs);
        }
        if flags.no_keepalive && tcp.sets_keepalive() {
            return Err(SpipedArgsError::KeepaliveWithoutKeepalives);
        }
        if keys.is_empty() {
            return Err(SpipedArgsError::MissingOption("-k"));
        }
        if let (Some(n), Some(max)) = (handshake_limit, max_connections)
            && n > max
        {
            return Err(SpipedArgsError::HandshakeLimitAboveMax(n, max));
        }
        let resolve_interval = match rtime {
            // spiped's quirk: it checks `rtime != 60 && -R` after replacing 0 by 60, so `-R`
            // with `-r 60` (or `-r 0`) is accepted. Kept for drop-in compatibility.
            Some((r, text)) if no_resolve && !(r.is_zero() || r == DEFAULT_RTIME) => {
                return Err(SpipedArgsError::RtimeWithNoResolve(lossy_os(&text)));
            }
            _ if no_resolve => None,
            Some((r, _)) if !r.is_zero() => Some(r),
            _ => Some(DEFAULT_RTIME),
        };
        let source_text = source.ok_or(SpipedArgsError::MissingOption("-s"))?;
        let target_text = target.ok_or(SpipedArgsError::MissingOption("-t"))?;

        let address = |flag: &'static str, text: &OsString| {
            SockAddrSpec::parse_os(text).map_err(|error| SpipedArgsError::Address { flag, error })
        };
        let source = address("-s", &source_text)?;
        let target = address("-t", &target_text)?;
        let bind = bind.map(|b| address("-b", &b)).transpose()?;
        // The TCP options apply to the TCP legs only.
        let leg = |a: &SockAddrSpec| match a {
            SockAddrSpec::Unix(_) => TcpOptions::default(),
            _ => tcp,
        };
        let (source_tcp, target_tcp) = (leg(&source), leg(&target));
        let pidfile = pidfile.unwrap_or_else(|| {
            let mut p = source_text.clone();
            p.push(".pid");
            PathBuf::from(p)
        });

        Ok(SpipedCommand::Run(Box::new(SpipedArgs {
            mode,
            source,
            target,
            keys,
            wait_for_dns: flags.wait_for_dns,
            foreground: flags.foreground,
            no_keepalive: flags.no_keepalive,
            pfs: PfsPolicy::from_flags(pfs_f, pfs_g),
            max_connections,
            timeout,
            pidfile,
            resolve_interval,
            bind,
            syslog: flags.syslog,
            user,
            control,
            max_keys,
            x25519: flags.x25519,
            threads,
            shutdown_timeout,
            source_tcp,
            target_tcp,
            handshake_limit,
        })))
    }
}

/// `--max-keys`: decimal, 1 to [`MAX_KEYS_LIMIT`].
fn parse_max_keys(arg: &std::ffi::OsStr) -> Result<usize, SpipedArgsError> {
    let text = lossy_os(arg);
    match text.parse::<usize>() {
        Ok(n) if (1..=MAX_KEYS_LIMIT).contains(&n) && text.bytes().all(|b| b.is_ascii_digit()) => {
            Ok(n)
        }
        _ => Err(SpipedArgsError::MaxKeys(text)),
    }
}

/// `--threads`: decimal, 1 to [`MAX_THREADS`].
fn parse_threads(arg: &std::ffi::OsStr) -> Result<usize, SpipedArgsError> {
    let text = lossy_os(arg);
    match text.parse::<usize>() {
        Ok(n) if (1..=MAX_THREADS).contains(&n) && text.bytes().all(|b| b.is_ascii_digit()) => {
            Ok(n)
        }
        _ => Err(SpipedArgsError::Threads(text)),
    }
}

/// `--handshake-limit`: a decimal number from 1 to `MAX_CONNECTIONS`.
fn parse_handshake_limit(arg: &std::ffi::OsStr) -> Result<usize, SpipedArgsError> {
    let text = lossy_os(arg);
    match text.parse::<usize>() {
        Ok(n)
            if (1..=super::value::MAX_CONNECTIONS).contains(&n)
                && text.bytes().all(|b| b.is_ascii_digit()) =>
        {
            Ok(n)
        }
        _ => Err(SpipedArgsError::HandshakeLimit(text)),
    }
}

/// `--shutdown-timeout`: seconds (decimal, fractions allowed), above zero.
fn parse_shutdown_timeout(arg: &std::ffi::OsStr) -> Result<Duration, SpipedArgsError> {
    let text = lossy_os(arg);
    match text.parse::<f64>() {
        Ok(secs) if secs.is_finite() && secs > 0.0 => Duration::try_from_secs_f64(secs)
            .ok()
            .filter(|d| !d.is_zero())
            .ok_or(SpipedArgsError::ShutdownTimeout(text)),
        _ => Err(SpipedArgsError::ShutdownTimeout(text)),
    }
}

/// `--keepalive IDLE[,INTVL[,CNT]]`: decimal whole seconds (1 to [`MAX_KEEPALIVE_SECS`]) and
/// a probe count (1 to [`MAX_KEEPALIVE_COUNT`]); the ones left out stay the kernel's.
fn parse_keepalive(
    arg: &std::ffi::OsStr,
) -> Result<(u32, Option<u32>, Option<u32>), SpipedArgsError> {
    let text = lossy_os(arg);
    let bad = || SpipedArgsError::Keepalive(text.clone());
    let number = |word: &str, max: u32| -> Result<u32, SpipedArgsError> {
        if word.is_empty() || word.len() > 6 || !word.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        match word.parse::<u32>() {
            Ok(n) if (1..=max).contains(&n) => Ok(n),
            _ => Err(bad()),
        }
    };
    let mut words = text.split(',');
    let idle = number(words.next().unwrap_or_default(), MAX_KEEPALIVE_SECS)?;
    let interval = words
        .next()
        .map(|w| number(w, MAX_KEEPALIVE_SECS))
        .transpose()?;
    let count = words
        .next()
        .map(|w| number(w, MAX_KEEPALIVE_COUNT))
        .transpose()?;
    if words.next().is_some() {
        return Err(bad());
    }
    Ok((idle, interval, count))
}

/// `--user-timeout SECS`: seconds (decimal, fractions allowed), rounded to the millisecond, 0
/// (the kernel's default) to [`MAX_USER_TIMEOUT_MS`] milliseconds.
fn parse_user_timeout(arg: &std::ffi::OsStr) -> Result<Duration, SpipedArgsError> {
    let text = lossy_os(arg);
    match text.parse::<f64>() {
        Ok(secs) if secs.is_finite() && secs >= 0.0 && !text.starts_with(['+', '-']) => {
            // The option's unit is the millisecond; a nonzero time never rounds to 0 ("off").
            let ms = (secs * 1000.0).round();
            let ms = if ms == 0.0 && secs > 0.0 { 1.0 } else { ms };
            if ms <= f64::from(MAX_USER_TIMEOUT_MS) {
                Ok(Duration::from_millis(ms as u64))
            } else {
                Err(SpipedArgsError::UserTimeout(text))
            }
        }
        _ => Err(SpipedArgsError::UserTimeout(text)),
    }
}

/// The plain on/off options.
#[derive(Default)]
struct Flags {
    wait_for_dns: bool,
    foreground: bool,
    no_keepalive: bool,
    syslog: bool,
    x25519: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::value::MAX_CONNECTIONS;
    use proptest::prelude::*;

    const BASE: &str = "-d -s [127.0.0.1]:8025 -t localhost:25 -k key";

    fn parse(line: &str) -> Result<SpipedCommand, SpipedArgsError> {
        SpipedArgs::parse(line.split_whitespace())
    }

    fn run(line: &str) -> SpipedArgs {
        match parse(line) {
            Ok(SpipedCommand::Run(a)) => *a,
            other => panic!("{line:?}: {other:?}"),
        }
    }

    fn err(line: &str) -> SpipedArgsError {
        match parse(line) {
            Err(e) => e,
            Ok(other) => panic!("{line:?} parsed: {other:?}"),
        }
    }

    #[test]
    fn x25519_flag() {
        assert!(!run(BASE).x25519);
        assert!(run(&format!("{BASE} --x25519")).x25519);
        let g = run(&format!("{BASE} -g --x25519"));
        assert!(g.x25519 && g.pfs == PfsPolicy::Required);
        let e = err(&format!("{BASE} --x25519 -f"));
        assert_eq!(e, SpipedArgsError::X25519WithoutPfs);
        assert!(e.usage().is_none());
        assert!(
            e.to_string()
                .contains("--x25519 cannot be combined with -f")
        );
        assert_eq!(
            err(&format!("{BASE} --x25519 --x25519")),
            SpipedArgsError::Repeated("--x25519")
        );
    }

    #[test]
    fn defaults() {
        assert_eq!(
            run(BASE),
            SpipedArgs {
                mode: Mode::Decrypt,
                source: SockAddrSpec::parse("[127.0.0.1]:8025").unwrap(),
                target: SockAddrSpec::Host {
                    host: "localhost".into(),
                    port: "25".into()
                },
                keys: vec![KeySource::File(PathBuf::from("key"))],
                wait_for_dns: false,
                foreground: false,
                no_keepalive: false,
                pfs: PfsPolicy::Standard,
                max_connections: Some(100),
                timeout: Duration::from_secs(5),
                pidfile: PathBuf::from("[127.0.0.1]:8025.pid"),
                resolve_interval: Some(Duration::from_secs(60)),
                bind: None,
                syslog: false,
                user: None,
                control: None,
                max_keys: DEFAULT_MAX_KEYS,
                x25519: false,
                threads: 1,
                shutdown_timeout: None,
                source_tcp: TcpOptions::default(),
                target_tcp: TcpOptions::default(),
                handshake_limit: None,
            }
        );
    }

    #[test]
    fn tcp_options_apply_to_the_tcp_legs() {
        let a = run(&format!("{BASE} --keepalive 30,5,4 --user-timeout 20"));
        let both = TcpOptions {
            keepalive_idle: Some(30),
            keepalive_interval: Some(5),
            keepalive_count: Some(4),
            user_timeout: Some(Duration::from_secs(20)),
        };
        assert_eq!((a.source_tcp, a.target_tcp), (both, both));
        // A Unix leg gets none.
        let a = run("-e -s /tmp/s.sock -t h:1 -k k --keepalive=7 --user-timeout=0.25");
        let tcp = TcpOptions {
            keepalive_idle: Some(7),
            user_timeout: Some(Duration::from_millis(250)),
            ..TcpOptions::default()
        };
        assert_eq!((a.source_tcp, a.target_tcp), (TcpOptions::default(), tcp));
        let a = run("-d -s [::1]:1 -t /tmp/t.sock -k k --keepalive 7,1");
        assert_eq!(a.source_tcp.keepalive_interval, Some(1));
        assert_eq!(a.target_tcp, TcpOptions::default());
        // -j with a user timeout is fine; with --keepalive it is a contradiction.
        let a = run(&format!("{BASE} -j --user-timeout 3"));
        assert!(a.no_keepalive && a.source_tcp.user_timeout == Some(Duration::from_secs(3)));
        let e = err(&format!("{BASE} -j --keepalive 3"));
        assert_eq!(e, SpipedArgsError::KeepaliveWithoutKeepalives);
        assert!(e.usage().is_none() && e.to_string().contains("-j"));
        // The limits are the kernel's.
        let a = run(&format!(
            "{BASE} --keepalive 32767,32767,127 --user-timeout 2147483.647"
        ));
        assert_eq!(a.source_tcp.keepalive_count, Some(MAX_KEEPALIVE_COUNT));
        assert_eq!(
            a.target_tcp.user_timeout,
            Some(Duration::from_millis(u64::from(MAX_USER_TIMEOUT_MS)))
        );
        for bad in [
            "",
            "0",
            "-1",
            "+5",
            "x",
            "5,",
            ",5",
            "5,0",
            "5,1,0",
            "5,1,128",
            "32768",
            "5,32768",
            "1,2,3,4",
            "5.5",
            "5;1",
            "99999999999",
        ] {
            let e = err(&format!("{BASE} --keepalive={bad}"));
            assert_eq!(e, SpipedArgsError::Keepalive(bad.into()), "{bad:?}");
            assert!(e.usage().is_none() && e.to_string().contains("IDLE[,INTVL[,CNT]]"));
        }
        for bad in ["", "-1", "+1", "x", "inf", "NaN", "2147483.648", "1e30"] {
            let e = err(&format!("{BASE} --user-timeout={bad}"));
            assert_eq!(e, SpipedArgsError::UserTimeout(bad.into()), "{bad:?}");
            assert!(e.usage().is_none() && e.to_string().contains("from 0 to 2147483"));
        }
        assert_eq!(
            run(&format!("{BASE} --user-timeout 0"))
                .source_tcp
                .user_timeout,
            Some(Duration::ZERO)
        );
        assert_eq!(
            err(&format!("{BASE} --keepalive 1 --keepalive 2")),
            SpipedArgsError::Repeated("--keepalive")
        );
    }

    #[test]
    fn handshake_limit_option() {
        assert_eq!(run(BASE).handshake_limit, None, "off by default, as spiped");
        assert_eq!(
            run(&format!("{BASE} --handshake-limit 8")).handshake_limit,
            Some(8)
        );
        assert_eq!(
            run(&format!("{BASE} -n 0 --handshake-limit=500000")).handshake_limit,
            Some(500_000)
        );
        for bad in ["0", "-1", "x", "+3", "500001", ""] {
            let e = err(&format!("{BASE} -n 0 --handshake-limit={bad}"));
            assert_eq!(e, SpipedArgsError::HandshakeLimit(bad.into()), "{bad}");
            assert!(e.usage().is_none() && e.to_string().contains("from 1 to"));
        }
        let e = err(&format!("{BASE} -n 10 --handshake-limit 11"));
        assert_eq!(e, SpipedArgsError::HandshakeLimitAboveMax(11, 10));
        assert!(e.to_string().contains("more than -n 10"), "{e}");
        // The default -n of 100 counts too.
        assert_eq!(
            err(&format!("{BASE} --handshake-limit 101")),
            SpipedArgsError::HandshakeLimitAboveMax(101, 100)
        );
        let (_, pipe) = run(&format!("{BASE} --handshake-limit 3")).to_config();
        assert_eq!(pipe.handshake_limit, Some(3));
    }

    #[test]
    fn shutdown_timeout_option() {
        assert_eq!(
            run(&format!("{BASE} --shutdown-timeout 30")).shutdown_timeout,
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            run(&format!("{BASE} --shutdown-timeout=0.5")).shutdown_timeout,
            Some(Duration::from_millis(500))
        );
        for bad in ["0", "-1", "x", "inf", "NaN", "1e30", ""] {
            let e = err(&format!("{BASE} --shutdown-timeout={bad}"));
            assert_eq!(e, SpipedArgsError::ShutdownTimeout(bad.into()), "{bad}");
            assert!(e.usage().is_none() && e.to_string().contains("above zero"));
        }
        assert_eq!(
            err(&format!("{BASE} --shutdown-timeout 1 --shutdown-timeout 2")),
            SpipedArgsError::Repeated("--shutdown-timeout")
        );
    }

    #[test]
    fn threads_option() {
        assert_eq!(run(&format!("{BASE} --threads 2")).threads, 2);
        assert_eq!(run(&format!("{BASE} --threads=64")).threads, 64);
        for bad in [
            "0",
            "65",
            "-1",
            "+2",
            "x",
            "",
            "2.0",
            "99999999999999999999999",
        ] {
            let e = err(&format!("{BASE} --threads={bad}"));
            assert_eq!(e, SpipedArgsError::Threads(bad.into()));
            assert!(e.usage().is_none());
            assert!(e.to_string().contains("from 1 to 64"), "{e}");
        }
        assert_eq!(
            err(&format!("{BASE} --threads 2 --threads 3")),
            SpipedArgsError::Repeated("--threads")
        );
    }

    #[test]
    fn rotation_options() {
        let a = run(&format!("{BASE} --control /run/c.sock --max-keys 3"));
        assert_eq!(a.control, Some(PathBuf::from("/run/c.sock")));
        assert_eq!(a.max_keys, 3);
        assert_eq!(run(&format!("{BASE} --max-keys=16")).max_keys, 16);
        for bad in ["0", "17", "-1", "+2", "x", ""] {
            let e = err(&format!("{BASE} --max-keys={bad}"));
            assert_eq!(e, SpipedArgsError::MaxKeys(bad.into()));
            assert!(e.usage().is_none());
        }
        assert_eq!(
            err(&format!("{BASE} --control a --control b")),
            SpipedArgsError::Repeated("--control")
        );
    }

    #[test]
    fn every_option() {
        let a = run(
            "-eDFjf -s /tmp/s.sock -t [::1]:80 -k - -n 0 -o 2.5 -p /run/x.pid \
                     -r 10 -b [::1]:9 --syslog -u nobody:nogroup",
        );
        assert_eq!(a.mode, Mode::Encrypt);
        assert!(a.wait_for_dns && a.foreground && a.no_keepalive && a.syslog);
        assert_eq!(a.pfs, PfsPolicy::Disabled);
        assert_eq!(a.source, SockAddrSpec::Unix(PathBuf::from("/tmp/s.sock")));
        assert_eq!(a.keys, vec![KeySource::Stdin]);
        assert_eq!(a.max_connections, None);
        assert_eq!(a.timeout, Duration::from_millis(2500));
        assert_eq!(a.pidfile, PathBuf::from("/run/x.pid"));
        assert_eq!(a.resolve_interval, Some(Duration::from_secs(10)));
        assert_eq!(a.bind, Some(SockAddrSpec::parse("[::1]:9").unwrap()));
        assert_eq!(
            a.user,
            Some(UserGroup::UserAndGroup {
                user: "nobody".into(),
                group: "nogroup".into()
            })
        );
        assert_eq!(run(&format!("{BASE} -g")).pfs, PfsPolicy::Required);
        assert_eq!(
            run(&format!("{BASE} -n {MAX_CONNECTIONS}")).max_connections,
            Some(MAX_CONNECTIONS)
        );
        assert_eq!(
            run("-d -s /tmp/s.sock -t h:1 -k k").pidfile,
            PathBuf::from("/tmp/s.sock.pid")
        );
    }

    #[test]
    fn bundling_and_attached_arguments() {
        let a = run("-dFj -s[127.0.0.1]:1 -th:2 -kkey -o2 -n7");
        assert!(a.foreground && a.no_keepalive);
        assert_eq!(a.timeout, Duration::from_secs(2));
        assert_eq!(a.max_connections, Some(7));
        assert_eq!(a.keys, vec![KeySource::File(PathBuf::from("key"))]);
        let b = run("-dFjo2 -s [127.0.0.1]:1 -t h:2 -k key -n7");
        assert_eq!(a, b);
    }

    #[test]
    fn repeated_keys_are_kept_in_order() {
        let a = run(&format!("{BASE} -k new -k -"));
        assert_eq!(
            a.keys,
            vec![
                KeySource::File(PathBuf::from("key")),
                KeySource::File(PathBuf::from("new")),
                KeySource::Stdin
            ]
        );
        assert_eq!(
            err("-d -s /a -t h:1 -k - -k -"),
            SpipedArgsError::StdinKeyRepeated
        );
    }

    #[test]
    fn repeated_options() {
        for (name, arg) in [
            ("-D", ""),
            ("-F", ""),
            ("-j", ""),
            ("-f", ""),
            ("-g", ""),
            ("-R", ""),
            ("--syslog", ""),
            ("-s", "/x"),
            ("-t", "h:1"),
            ("-n", "1"),
            ("-o", "1"),
            ("-p", "p"),
            ("-r", "1"),
            ("-b", "h:1"),
            ("-u", "u"),
        ] {
            let e = err(&format!("{BASE} {name} {arg} {name} {arg}"));
            assert_eq!(e, SpipedArgsError::Repeated(name), "{name}");
            assert_eq!(e.usage(), Some(SPIPED_USAGE));
            assert!(!e.spiped_prints_message());
        }
        assert_eq!(err("-e -e"), SpipedArgsError::Repeated("-e"));
        assert_eq!(err("-dd"), SpipedArgsError::Repeated("-d"));
    }

    #[test]
    fn mutually_exclusive_options() {
        assert_eq!(err("-e -d"), SpipedArgsError::BothModes);
        assert_eq!(err("-d -e -v"), SpipedArgsError::BothModes);
        assert_eq!(err(&format!("{BASE} -f -g")), SpipedArgsError::BothPfs);
        // spiped checks -f/-g after the scan, so -v still wins.
        assert_eq!(parse("-f -g -v"), Ok(SpipedCommand::Version));
        assert_eq!(
            err(&format!("{BASE} -r 10 -R")),
            SpipedArgsError::RtimeWithNoResolve("10".into())
        );
        assert_eq!(
            err(&format!("{BASE} -R -r 61")).to_string(),
            "-r 61 and -R are mutually exclusive"
        );
        // spiped's quirk: -R with -r 60 (or -r 0, which means 60) is accepted.
        for line in ["-r 60 -R", "-R -r 60", "-r 60.0 -R", "-r 0 -R", "-R"] {
            assert_eq!(
                run(&format!("{BASE} {line}")).resolve_interval,
                None,
                "{line}"
            );
        }
        assert_eq!(
            run(&format!("{BASE} -r 0")).resolve_interval,
            Some(DEFAULT_RTIME)
        );
    }

    #[test]
    fn required_options() {
        assert_eq!(err(""), SpipedArgsError::NoMode);
        assert_eq!(err("-s /x -t h:1 -k k"), SpipedArgsError::NoMode);
        assert_eq!(err("-d -s /x -t h:1"), SpipedArgsError::MissingOption("-k"));
        assert_eq!(err("-d -t h:1 -k k"), SpipedArgsError::MissingOption("-s"));
        assert_eq!(err("-d -s /x -k k"), SpipedArgsError::MissingOption("-t"));
        // spiped's order: mode, then -f/-g, then -k, then -r/-R, then -s, then -t.
        assert_eq!(err("-f -g"), SpipedArgsError::NoMode);
        assert_eq!(err("-d -f -g"), SpipedArgsError::BothPfs);
        assert_eq!(err("-d -r 5 -R"), SpipedArgsError::MissingOption("-k"));
        assert_eq!(
            err("-d -k k -r 5 -R"),
            SpipedArgsError::RtimeWithNoResolve("5".into())
        );
    }

    #[test]
    fn version() {
        assert_eq!(parse("-v"), Ok(SpipedCommand::Version));
        assert_eq!(parse("-v -e"), Ok(SpipedCommand::Version));
        assert_eq!(parse("-v junk"), Ok(SpipedCommand::Version));
        assert_eq!(parse("-ev"), Ok(SpipedCommand::Version));
        assert_eq!(parse(&format!("{BASE} -v")), Ok(SpipedCommand::Version));
        assert_eq!(err("-e -e -v"), SpipedArgsError::Repeated("-e"));
        assert_eq!(
            err("-e foo -v"),
            SpipedArgsError::UnexpectedArgument("foo".into())
        );
    }

    #[test]
    fn getopt_errors() {
        for (line, msg) in [
            ("-x", "illegal option -- -x"),
            ("-ex", "illegal option -- -x"),
            ("-1", "illegal option -- -1"),
            ("--foo", "illegal option -- --foo"),
            ("-x -v", "illegal option -- -x"),
            ("-s", "Missing argument to -s"),
            ("-o", "Missing argument to -o"),
            ("-eo", "Missing argument to -o"),
            ("-d -k", "Missing argument to -k"),
        ] {
            let e = err(line);
            assert!(matches!(e, SpipedArgsError::Getopt(_)), "{line}");
            assert_eq!(e.to_string(), msg, "{line}");
            assert_eq!(e.usage(), Some(SPIPED_USAGE));
            assert!(e.spiped_prints_message());
        }
    }

    #[test]
    fn operands() {
        assert_eq!(
            err(&format!("{BASE} extra")),
            SpipedArgsError::UnexpectedArgument("extra".into())
        );
        assert_eq!(
            err(&format!("{BASE} -- -F")),
            SpipedArgsError::UnexpectedArgument("-F".into())
        );
        assert_eq!(
            err(&format!("{BASE} -")),
            SpipedArgsError::UnexpectedArgument("-".into())
        );
        assert_eq!(run(&format!("{BASE} --")), run(BASE));
    }

    #[test]
    fn bad_values() {
        for (opt, e) in [
            ("-n 500001", ValueError::InvalidConnLimit("500001".into())),
            ("-n -1", ValueError::InvalidConnLimit("-1".into())),
            ("-n abc", ValueError::InvalidConnLimit("abc".into())),
            ("-o -1", ValueError::InvalidTimeout("-1".into())),
            ("-o nan", ValueError::InvalidTimeout("nan".into())),
            ("-o abc", ValueError::InvalidTimeout("abc".into())),
            ("-r -1", ValueError::InvalidRtime("-1".into())),
            ("-u :", ValueError::InvalidUser(":".into())),
            ("-u user:", ValueError::InvalidUser("user:".into())),
        ] {
            let got = err(&format!("{BASE} {opt}"));
            assert_eq!(got, SpipedArgsError::Value(e), "{opt}");
            assert_eq!(got.usage(), None);
            assert!(got.spiped_prints_message());
        }
        assert_eq!(
            err(&format!("{BASE} -o abc")).to_string(),
            "-o: invalid timeout \"abc\" (expected a number of seconds, 0 for the default)"
        );
        // Values are checked while scanning: before a later -v, and before a missing -e/-d.
        assert!(matches!(err("-n x -v"), SpipedArgsError::Value(_)));
        assert!(matches!(err("-o -1"), SpipedArgsError::Value(_)));
        // -o 0 means the default, as in spiped.
        assert_eq!(run(&format!("{BASE} -o 0")).timeout, DEFAULT_TIMEOUT);
    }

    #[test]
    fn bad_addresses() {
        let e = err("-d -s relative/x.sock -t h:1 -k k");
        assert_eq!(
            e,
            SpipedArgsError::Address {
                flag: "-s",
                error: AddrError::MissingPort("relative/x.sock".into())
            }
        );
        assert_eq!(
            e.to_string(),
            "-s: Address must contain port number: relative/x.sock"
        );
        assert_eq!(e.usage(), None);
        assert!(matches!(
            err("-d -s /x -t [127.0.0.1]:0 -k k"),
            SpipedArgsError::Address { flag: "-t", .. }
        ));
        assert!(matches!(
            err("-d -s /x -t h:1 -k k -b nope"),
            SpipedArgsError::Address { flag: "-b", .. }
        ));
        // A syntax error in -s comes after the missing-option checks, as in spiped.
        assert_eq!(err("-d -s nope -k k"), SpipedArgsError::MissingOption("-t"));
    }

    #[test]
    fn non_utf8_arguments() {
        use std::os::unix::ffi::OsStringExt;
        let raw = |b: &[u8]| OsString::from_vec(b.to_vec());
        let args = vec![
            raw(b"-d"),
            raw(b"-s"),
            raw(b"/tmp/\xff"),
            raw(b"-t"),
            raw(b"h:1"),
            raw(b"-k"),
            raw(b"\xfekey"),
        ];
        let Ok(SpipedCommand::Run(a)) = SpipedArgs::parse(args) else {
            panic!("non-UTF-8 path and key rejected");
        };
        assert_eq!(
            a.keys,
            vec![KeySource::File(PathBuf::from(raw(b"\xfekey")))]
        );
        assert_eq!(a.pidfile, PathBuf::from(raw(b"/tmp/\xff.pid")));
    }

    #[test]
    fn usage_text_is_spiped_1_6_2() {
        assert_eq!(
            SPIPED_USAGE,
            "usage: spiped {-e | -d} -s <source socket> -t <target socket> -k <key file>\n    \
             [-DFj] [-f | -g] [-n <max # connections>] [-o <connection timeout>]\n    \
             [-p <pidfile>] [-r <rtime> | -R] [--syslog]\n    \
             [-u {<username> | <:groupname> | <username:groupname>}]\n       \
             spiped -v\n"
        );
    }

    fn arg_strategy() -> impl Strategy<Value = String> {
        prop_oneof![
            "-[edsktDFjfgnopRrbuvx]{1,4}",
            Just("--syslog".to_owned()),
            Just("--".to_owned()),
            "\\PC{0,16}",
            "\\[[0-9.:a-f]{0,10}\\]:[0-9]{0,6}",
        ]
    }

    proptest! {
        #[test]
        fn never_panics(args in proptest::collection::vec(arg_strategy(), 0..12)) {
            let _ = SpipedArgs::parse(args);
        }

        #[test]
        fn base_plus_flags_parses(
            flags in proptest::sample::subsequence(vec!["-D", "-F", "-j", "-f", "--syslog"], 0..5)
        ) {
            let mut args: Vec<String> = BASE.split(' ').map(str::to_owned).collect();
            args.extend(flags.iter().map(|s| (*s).to_owned()));
            let parsed = SpipedArgs::parse(args);
            prop_assert!(matches!(parsed, Ok(SpipedCommand::Run(_))), "{:?}", parsed);
        }
    }
}
