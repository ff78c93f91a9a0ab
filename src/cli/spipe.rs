//! The `spipe` command line (spec §3.3): always the client role, stdin/stdout to one target.
//!
//! Checks happen in spipe 1.6.2's order: while scanning, in command-line order, illegal options,
//! missing arguments, repeated options (including `-k`: spipe uses exactly one key), a bad `-o`,
//! and `-v` (which ends parsing at once, successfully); then leftover arguments; then `-f` with
//! `-g`, a missing `-k`, a missing `-t`; then the `-t` and `-b` addresses.
//!
//! [`SPIPE_OPTIONS`] is the one table of options: the scanner's specs come from it, and
//! `spiperelay help spipe` lists every row with its description and default.
//!
//! Differences from spipe 1.6.2: `-b <bind address>` is accepted (spipe has it from 1.6.3 on)
//! and listed in the usage text; `-o` follows [`super::value::parse_timeout`] (`-o 0` is the
//! default, as in spipe); the addresses are checked here rather than when resolved.
//! `--x25519` selects spiperelay's X25519 handshake mode (refused with `-f`;
//! `docs/protocol.md` §5).

use std::ffi::OsString;
use std::fmt;
use std::time::Duration;

use super::addr::{AddrError, SockAddrSpec};
use super::getopt::{Getopt, GetoptError, OptSpec};
use super::help::{OptDoc, REQUIRED, specs};
use super::spiped::DEFAULT_TIMEOUT;
use super::value::{KeySource, ValueError, parse_timeout};
use super::{PfsPolicy, lossy_os};

/// spipe's usage text, with its final newline: 1.6.2's text plus `[-b <bind address>]` (an
/// option of 1.6.3) at the end of the options, in the same style. spipe prints it to stderr and
/// exits with status 1.
pub const SPIPE_USAGE: &str = "\
usage: spipe -t <target socket> -k <key file> [-f | -g] [-j]
    [-o <connection timeout>] [-b <bind address>]
       spipe -v
";

/// Every option of spipe's command line: the one table the scanner takes its specs from
/// (`SPECS`) and `spiperelay help spipe` and the man page describe.
#[rustfmt::skip] // one row per option
pub const SPIPE_OPTIONS: &[OptDoc] = &[
    OptDoc::spiped("-t", "ADDR", "address to connect to", REQUIRED),
    OptDoc::spiped("-k", "FILE", "key file (- reads stdin, which then carries no data)", REQUIRED),
    OptDoc::spiped("-f", "", "no forward secrecy: skip Diffie-Hellman (send y = 1)", ""),
    OptDoc::spiped("-g", "", "require forward secrecy: fail against a -f server", ""),
    OptDoc::spiped("-j", "", "turn TCP keep-alives off", ""),
    OptDoc::spiped("-o", "SECS", "timeout for the connect and for the handshake", "5"),
    OptDoc::spiped("-b", "ADDR", "local address to connect from (spipe 1.6.3)", ""),
    OptDoc::spiped("-v", "", "print the version and exit", ""),
    OptDoc::own("--x25519", "", "X25519 handshake, with a spiperelay -d --x25519 (not -f)", ""),
];

/// The scanner's view of [`SPIPE_OPTIONS`].
const SPECS: &[OptSpec] = &specs::<{ SPIPE_OPTIONS.len() }>(SPIPE_OPTIONS);

/// What a valid `spipe` command line asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SpipeCommand {
    /// `-v` was reached: print the version and exit 0.
    Version,
    /// Connect with these settings.
    Run(SpipeArgs),
}

/// The settings of a `spipe` run, with every default filled in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpipeArgs {
    /// `-t`: the address to connect to.
    pub target: SockAddrSpec,
    /// `-k`: the key file (`-` is standard input, which then carries no data).
    pub key: KeySource,
    /// `-f` / `-g` / neither.
    pub pfs: PfsPolicy,
    /// `-j`: turn TCP keep-alives off.
    pub no_keepalive: bool,
    /// `-o`: the connect and handshake timeout. Default 5 s.
    pub timeout: Duration,
    /// `-b`: the local address to connect from (spipe 1.6.3 and later).
    pub bind: Option<SockAddrSpec>,
    /// `--x25519`: spiperelay's X25519 handshake mode (both ends must use it; §5).
    pub x25519: bool,
}

/// Why a `spipe` command line was rejected. [`SpipeArgsError::usage`] says whether the usage
/// text follows the message.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SpipeArgsError {
    /// An illegal option or a missing option argument (spipe's exact words).
    Getopt(GetoptError),
    /// An option was given twice. Holds its name.
    Repeated(&'static str),
    /// A command-line argument that is not an option. Holds the first one.
    UnexpectedArgument(String),
    /// Both `-f` and `-g`.
    BothPfs,
    /// `--x25519` together with `-f`: X25519 mode always uses forward secrecy.
    X25519WithoutPfs,
    /// A required option is absent: `-k` or `-t`. Holds its name.
    MissingOption(&'static str),
    /// A bad `-o` argument.
    Value(ValueError),
    /// A `-t` or `-b` address that does not parse.
    Address {
        /// The option: `-t` or `-b`.
        flag: &'static str,
        /// What is wrong with it.
        error: AddrError,
    },
}

impl SpipeArgsError {
    /// The usage text to print after the message: `Some(`[`SPIPE_USAGE`]`)` for errors in the
    /// shape of the command line, `None` for a bad value or address (spipe prints just the
    /// message and exits 1).
    pub fn usage(&self) -> Option<&'static str> {
        match self {
            Self::Value(_) | Self::Address { .. } | Self::X25519WithoutPfs => None,
            _ => Some(SPIPE_USAGE),
        }
    }

    /// Whether spipe 1.6.2 prints a message line (`spipe: <Display>`) for this error. When
    /// false, spipe prints only the usage text; [`fmt::Display`] still explains the cause.
    pub fn spipe_prints_message(&self) -> bool {
        matches!(
            self,
            Self::Getopt(_) | Self::Value(_) | Self::Address { .. }
        )
    }
}

impl fmt::Display for SpipeArgsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Getopt(e) => e.fmt(f),
            Self::Repeated(name) => write!(f, "option {name} given more than once"),
            Self::UnexpectedArgument(arg) => write!(f, "unexpected argument {arg:?}"),
            Self::BothPfs => f.write_str("-f and -g are mutually exclusive"),
            Self::X25519WithoutPfs => f.write_str(
                "--x25519 cannot be combined with -f: X25519 mode always uses forward secrecy \
                 (-g is accepted and always satisfied)",
            ),
            Self::MissingOption(name) => write!(f, "option {name} is required"),
            Self::Value(e) => e.fmt(f),
            Self::Address { flag, error } => write!(f, "{flag}: {error}"),
        }
    }
}

impl std::error::Error for SpipeArgsError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Getopt(e) => Some(e),
            Self::Value(e) => Some(e),
            Self::Address { error, .. } => Some(error),
            _ => None,
        }
    }
}

impl From<GetoptError> for SpipeArgsError {
    fn from(e: GetoptError) -> Self {
        Self::Getopt(e)
    }
}

impl From<ValueError> for SpipeArgsError {
    fn from(e: ValueError) -> Self {
        Self::Value(e)
    }
}

impl SpipeArgs {
    /// Parses spipe's arguments (the command line after `argv[0]`).
    ///
    /// Returns [`SpipeCommand::Version`] as soon as `-v` is reached (errors earlier on the line
    /// win), else [`SpipeCommand::Run`] with defaults filled in, else the first
    /// [`SpipeArgsError`] in spipe's checking order (see the module documentation). Never
    /// panics.
    pub fn parse<I, S>(args: I) -> Result<SpipeCommand, SpipeArgsError>
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        let mut getopt = Getopt::new(SPECS, args);
        let mut seen: Vec<&'static str> = Vec::new();
        let mut target = None;
        let mut key = None;
        let mut pfs_f = false;
        let mut pfs_g = false;
        let mut no_keepalive = false;
        let mut timeout = DEFAULT_TIMEOUT;
        let mut bind = None;
        let mut x25519 = false;

        while let Some(opt) = getopt.next_opt()? {
            let name = opt.name;
            if seen.contains(&name) {
                return Err(SpipeArgsError::Repeated(name));
            }
            seen.push(name);
            let arg = opt.arg.unwrap_or_default();
            match name {
                "-t" => target = Some(arg),
                "-k" => key = Some(KeySource::from_arg(&arg)),
                "-f" => pfs_f = true,
                "-g" => pfs_g = true,
                "-j" => no_keepalive = true,
                "-o" => timeout = parse_timeout(&arg)?,
                "-b" => bind = Some(arg),
                "-v" => return Ok(SpipeCommand::Version),
                "--x25519" => x25519 = true,
                // Every name in SPECS is handled above; Getopt returns no other.
                _ => return Err(GetoptError::IllegalOption(name.to_owned()).into()),
            }
        }
        if let Some(arg) = getopt.operands().first() {
            return Err(SpipeArgsError::UnexpectedArgument(lossy_os(arg)));
        }
        if pfs_f && pfs_g {
            return Err(SpipeArgsError::BothPfs);
        }
        if x25519 && pfs_f {
            return Err(SpipeArgsError::X25519WithoutPfs);
        }
        let key = key.ok_or(SpipeArgsError::MissingOption("-k"))?;
        let target_text = target.ok_or(SpipeArgsError::MissingOption("-t"))?;

        let address = |flag: &'static str, text: &OsString| {
            SockAddrSpec::parse_os(text).map_err(|error| SpipeArgsError::Address { flag, error })
        };
        let target = address("-t", &target_text)?;
        let bind = bind.map(|b| address("-b", &b)).transpose()?;

        Ok(SpipeCommand::Run(SpipeArgs {
            target,
            key,
            pfs: PfsPolicy::from_flags(pfs_f, pfs_g),
            no_keepalive,
            timeout,
            bind,
            x25519,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn x25519_flag() {
        let run = |line: &str| match SpipeArgs::parse(line.split_whitespace()) {
            Ok(SpipeCommand::Run(a)) => a,
            other => panic!("{line:?}: {other:?}"),
        };
        assert!(!run("-t h:1 -k k").x25519);
        assert!(run("-t h:1 -k k --x25519").x25519);
        assert!(run("-t h:1 -k k -g --x25519").x25519);
        assert_eq!(
            SpipeArgs::parse("-t h:1 -k k -f --x25519".split_whitespace()),
            Err(SpipeArgsError::X25519WithoutPfs)
        );
    }
    use std::path::PathBuf;

    fn parse(line: &str) -> Result<SpipeCommand, SpipeArgsError> {
        SpipeArgs::parse(line.split_whitespace())
    }

    fn run(line: &str) -> SpipeArgs {
        match parse(line) {
            Ok(SpipeCommand::Run(a)) => a,
            other => panic!("{line:?}: {other:?}"),
        }
    }

    #[test]
    fn defaults() {
        let a = run("-t [127.0.0.1]:8025 -k key");
        assert_eq!(
            a,
            SpipeArgs {
                target: SockAddrSpec::parse("[127.0.0.1]:8025").unwrap(),
                key: KeySource::File(PathBuf::from("key")),
                pfs: PfsPolicy::Standard,
                no_keepalive: false,
                timeout: Duration::from_secs(5),
                bind: None,
                x25519: false,
            }
        );
    }

    #[test]
    fn all_options() {
        let a = run("-t host:22 -k - -gj -o0.5 -b [::1]:1000");
        assert_eq!(a.key, KeySource::Stdin);
        assert_eq!(a.pfs, PfsPolicy::Required);
        assert!(a.no_keepalive);
        assert_eq!(a.timeout, Duration::from_millis(500));
        assert_eq!(a.bind, Some(SockAddrSpec::parse("[::1]:1000").unwrap()));
        assert_eq!(run("-t h:1 -k k -f").pfs, PfsPolicy::Disabled);
    }

    #[test]
    fn version() {
        assert_eq!(parse("-v"), Ok(SpipeCommand::Version));
        assert_eq!(parse("-f -g -v"), Ok(SpipeCommand::Version));
        assert_eq!(
            parse("-x -v"),
            Err(SpipeArgsError::Getopt(GetoptError::IllegalOption(
                "-x".into()
            )))
        );
    }

    #[test]
    fn errors() {
        assert_eq!(
            parse("-t h:1 -k a -k b"),
            Err(SpipeArgsError::Repeated("-k"))
        );
        assert_eq!(parse("-t h:1 -k k -f -g"), Err(SpipeArgsError::BothPfs));
        assert_eq!(parse("-t h:1"), Err(SpipeArgsError::MissingOption("-k")));
        assert_eq!(parse("-k k"), Err(SpipeArgsError::MissingOption("-t")));
        assert_eq!(parse(""), Err(SpipeArgsError::MissingOption("-k")));
        assert_eq!(
            parse("-t h:1 -k k x"),
            Err(SpipeArgsError::UnexpectedArgument("x".into()))
        );
        for (line, msg) in [
            ("-s x", "illegal option -- -s"),
            ("-e", "illegal option -- -e"),
            ("--syslog", "illegal option -- --syslog"),
            ("-o", "Missing argument to -o"),
        ] {
            let e = parse(line).unwrap_err();
            assert_eq!(e.to_string(), msg);
            assert_eq!(e.usage(), Some(SPIPE_USAGE));
            assert!(e.spipe_prints_message());
        }
        let e = parse("-o abc -t h:1 -k k").unwrap_err();
        assert_eq!(
            e,
            SpipeArgsError::Value(ValueError::InvalidTimeout("abc".into()))
        );
        assert_eq!(e.usage(), None);
        let e = parse("-t relative/x.sock -k k").unwrap_err();
        assert_eq!(
            e.to_string(),
            "-t: Address must contain port number: relative/x.sock"
        );
        assert_eq!(e.usage(), None);
        assert!(matches!(
            parse("-t h:1 -k k -b [1.2.3.4]"),
            Err(SpipeArgsError::Address { flag: "-b", .. })
        ));
    }

    #[test]
    fn usage_text() {
        assert_eq!(
            SPIPE_USAGE,
            "usage: spipe -t <target socket> -k <key file> [-f | -g] [-j]\n    \
             [-o <connection timeout>] [-b <bind address>]\n       spipe -v\n"
        );
    }

    proptest! {
        #[test]
        fn never_panics(args in proptest::collection::vec(
            prop_oneof!["-[tkfgjovbx]{1,3}", "\\PC{0,12}", Just("--".to_owned())], 0..8)) {
            let _ = SpipeArgs::parse(args);
        }
    }
}
