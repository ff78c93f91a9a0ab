//! A command-line option scanner with the semantics of libcperciva's `getopt`
//! (`libcperciva/util/getopt.c`), which spiped and spipe 1.6 use (spec §3.1).
//!
//! What it does, in the order libcperciva checks:
//! - An argument that starts with `-`, is not `-` alone and does not start with `--` holds one
//!   or more single-character options, which may be bundled (`-dFj`). If one of them takes an
//!   argument, the rest of that string is its argument (`-o2`, `-eo2`); if nothing is left, the
//!   next command-line argument is (`-o 2`), even when it starts with `-` (`-s -e` sets `-s` to
//!   `-e`).
//! - An argument that starts with `--` and is longer is a long option (`--syslog`). A long
//!   option that takes an argument accepts `--name=value` or `--name value`; giving `=value` to
//!   one that takes none is an illegal option.
//! - `--` alone ends the options and is consumed.
//! - The first other argument (including `-` alone) ends the options and is left in place.
//!
//! The scanner does not detect repeated options; the program-specific parsers do, because
//! spiperelay's `-k` may be repeated.

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::os::unix::ffi::{OsStrExt, OsStringExt};

/// One option a program accepts: its name as typed (`"-e"` or `"--syslog"`) and whether it
/// takes an argument.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct OptSpec {
    /// The option as typed: `-` and one character, or `--` and a name of one or more
    /// characters. Other shapes are never matched.
    pub name: &'static str,
    /// Whether the option takes an argument.
    pub takes_arg: bool,
}

impl OptSpec {
    /// An option without an argument, such as `-F` or `--syslog`.
    pub const fn flag(name: &'static str) -> Self {
        Self {
            name,
            takes_arg: false,
        }
    }

    /// An option that takes an argument, such as `-s <source socket>`.
    pub const fn with_arg(name: &'static str) -> Self {
        Self {
            name,
            takes_arg: true,
        }
    }
}

/// One option found on the command line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Opt {
    /// The canonical name of the option, from its [`OptSpec`].
    pub name: &'static str,
    /// The option's argument: `Some` exactly when its [`OptSpec::takes_arg`] is true.
    pub arg: Option<OsString>,
}

/// Why the scanner stopped with an error. Both cases print the usage text in spiped.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum GetoptError {
    /// An option that the program does not accept, as typed (`-x`, `--foo`, `--foo=bar`), or a
    /// long option that takes no argument given `=value` (then the option's canonical name).
    /// Displays as `illegal option -- -x`, spiped's exact words.
    IllegalOption(String),
    /// An option that takes an argument was the last thing on the command line. Holds the
    /// option's canonical name; displays as `Missing argument to -s`, spiped's exact words.
    MissingArgument(&'static str),
}

impl fmt::Display for GetoptError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::IllegalOption(os) => write!(f, "illegal option -- {os}"),
            Self::MissingArgument(name) => write!(f, "Missing argument to {name}"),
        }
    }
}

impl std::error::Error for GetoptError {}

/// A scanner over the arguments after `argv[0]`.
///
/// Call [`Getopt::next_opt`] until it returns `Ok(None)`; then [`Getopt::operands`] holds the
/// arguments left after the options (spiped and spipe accept none).
#[derive(Clone, Debug)]
pub struct Getopt {
    specs: &'static [OptSpec],
    args: Vec<OsString>,
    /// Index of the argument being scanned (libcperciva's `optind`).
    optind: usize,
    /// Byte offset of the next single-character option inside `args[optind]`, when in the
    /// middle of a bundle.
    packed: Option<usize>,
    /// Set once the options have ended, by `--`, an operand or the end of the arguments.
    done: bool,
}

impl Getopt {
    /// Creates a scanner for `args` (the command line without `argv[0]`) that accepts the
    /// options in `specs`. Never fails.
    pub fn new<I, S>(specs: &'static [OptSpec], args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        Self {
            specs,
            args: args.into_iter().map(Into::into).collect(),
            optind: 0,
            packed: None,
            done: false,
        }
    }

    /// Returns the next option, `Ok(None)` once the options have ended, or the first error.
    ///
    /// Errors: [`GetoptError::IllegalOption`] for an option not in the specs (or `=value` given
    /// to a long option without an argument); [`GetoptError::MissingArgument`] when an option
    /// that takes an argument has none. After an error or `Ok(None)`, further calls return
    /// `Ok(None)` and [`Getopt::operands`] is meaningful only after `Ok(None)`.
    pub fn next_opt(&mut self) -> Result<Option<Opt>, GetoptError> {
        let result = self.scan();
        if !matches!(result, Ok(Some(_))) {
            self.done = true;
        }
        result
    }

    /// The arguments left once [`Getopt::next_opt`] has returned `Ok(None)`: everything after
    /// the options (and after `--`, which is consumed). Empty when the command line held only
    /// options.
    pub fn operands(&self) -> &[OsString] {
        self.args.get(self.optind..).unwrap_or(&[])
    }

    fn scan(&mut self) -> Result<Option<Opt>, GetoptError> {
        if self.done {
            return Ok(None);
        }
        let Some(current) = self.args.get(self.optind) else {
            return Ok(None);
        };
        let bytes = current.as_bytes();

        // Start a bundle of single-character options if this argument is one.
        if self.packed.is_none() && bytes.len() >= 2 && bytes[0] == b'-' && bytes[1] != b'-' {
            self.packed = Some(1);
        }

        let (typed, equals_arg): (Vec<u8>, Option<Vec<u8>>) = if let Some(pos) = self.packed {
            // Fish out one option character (one UTF-8 character when valid, else one byte).
            let len = utf8_char_len(&bytes[pos..]);
            let mut typed = vec![b'-'];
            typed.extend_from_slice(&bytes[pos..pos + len]);
            let next = pos + len;
            if next >= bytes.len() {
                self.packed = None;
                self.optind += 1;
            } else {
                self.packed = Some(next);
            }
            (typed, None)
        } else if bytes.starts_with(b"--") {
            self.optind += 1;
            if bytes.len() == 2 {
                // "--" ends the options.
                return Ok(None);
            }
            match bytes.iter().position(|&b| b == b'=') {
                Some(eq) => (bytes[..eq].to_vec(), Some(bytes[eq + 1..].to_vec())),
                None => (bytes.to_vec(), None),
            }
        } else {
            // An operand (or "-" alone): the options have ended.
            return Ok(None);
        };

        let Some(spec) = self.specs.iter().find(|s| s.name.as_bytes() == typed) else {
            // Report the option as typed, `=value` included, as libcperciva does.
            let mut shown = typed;
            if let Some(value) = equals_arg {
                shown.push(b'=');
                shown.extend_from_slice(&value);
            }
            return Err(GetoptError::IllegalOption(
                String::from_utf8_lossy(&shown).into_owned(),
            ));
        };

        if !spec.takes_arg {
            if equals_arg.is_some() {
                return Err(GetoptError::IllegalOption(spec.name.to_owned()));
            }
            return Ok(Some(Opt {
                name: spec.name,
                arg: None,
            }));
        }

        let arg = if let Some(pos) = self.packed.take() {
            // The rest of the bundle is the argument (`-o2`).
            let rest = OsStr::from_bytes(&self.args[self.optind].as_bytes()[pos..]).to_owned();
            self.optind += 1;
            Some(rest)
        } else if let Some(value) = equals_arg {
            Some(OsString::from_vec(value))
        } else if let Some(next) = self.args.get(self.optind) {
            let next = next.clone();
            self.optind += 1;
            Some(next)
        } else {
            None
        };
        match arg {
            Some(arg) => Ok(Some(Opt {
                name: spec.name,
                arg: Some(arg),
            })),
            None => Err(GetoptError::MissingArgument(spec.name)),
        }
    }
}

/// Length of the first character of `bytes`: its UTF-8 length when `bytes` starts with a valid
/// UTF-8 sequence, else 1. `bytes` must not be empty.
fn utf8_char_len(bytes: &[u8]) -> usize {
    let end = bytes.len().min(4);
    for len in 1..=end {
        if std::str::from_utf8(&bytes[..len]).is_ok() {
            return len;
        }
    }
    1
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const SPECS: &[OptSpec] = &[
        OptSpec::flag("-d"),
        OptSpec::flag("-F"),
        OptSpec::flag("-j"),
        OptSpec::with_arg("-o"),
        OptSpec::with_arg("-s"),
        OptSpec::flag("--syslog"),
        OptSpec::with_arg("--long"),
    ];

    /// Scans `args` to the end: the options found, then the operands or the error.
    fn scan(args: &[&str]) -> Result<(Vec<Opt>, Vec<OsString>), GetoptError> {
        let mut g = Getopt::new(SPECS, args.iter().copied());
        let mut opts = Vec::new();
        while let Some(opt) = g.next_opt()? {
            opts.push(opt);
        }
        Ok((opts, g.operands().to_vec()))
    }

    fn flag(name: &'static str) -> Opt {
        Opt { name, arg: None }
    }

    fn with(name: &'static str, arg: &str) -> Opt {
        Opt {
            name,
            arg: Some(arg.into()),
        }
    }

    #[test]
    fn bundled_flags() {
        let (opts, rest) = scan(&["-dFj"]).unwrap();
        assert_eq!(opts, vec![flag("-d"), flag("-F"), flag("-j")]);
        assert!(rest.is_empty());
    }

    #[test]
    fn attached_and_separate_arguments() {
        assert_eq!(scan(&["-o2"]).unwrap().0, vec![with("-o", "2")]);
        assert_eq!(scan(&["-o", "2"]).unwrap().0, vec![with("-o", "2")]);
        assert_eq!(
            scan(&["-do2", "-F"]).unwrap().0,
            vec![flag("-d"), with("-o", "2"), flag("-F")]
        );
        assert_eq!(
            scan(&["-do", "2"]).unwrap().0,
            vec![flag("-d"), with("-o", "2")]
        );
        // The next argument is taken even when it looks like an option.
        assert_eq!(scan(&["-s", "-d"]).unwrap().0, vec![with("-s", "-d")]);
        // An empty argument is still an argument.
        assert_eq!(scan(&["-s", ""]).unwrap().0, vec![with("-s", "")]);
    }

    #[test]
    fn long_options() {
        assert_eq!(scan(&["--syslog"]).unwrap().0, vec![flag("--syslog")]);
        assert_eq!(scan(&["--long=x"]).unwrap().0, vec![with("--long", "x")]);
        assert_eq!(scan(&["--long", "x"]).unwrap().0, vec![with("--long", "x")]);
        assert_eq!(
            scan(&["--syslog=1"]),
            Err(GetoptError::IllegalOption("--syslog".into()))
        );
        assert_eq!(
            scan(&["--sys"]),
            Err(GetoptError::IllegalOption("--sys".into()))
        );
    }

    #[test]
    fn unknown_options() {
        let err = scan(&["-x"]).unwrap_err();
        assert_eq!(err.to_string(), "illegal option -- -x");
        let err = scan(&["-dx"]).unwrap_err();
        assert_eq!(err.to_string(), "illegal option -- -x");
        let err = scan(&["--foo"]).unwrap_err();
        assert_eq!(err.to_string(), "illegal option -- --foo");
        let err = scan(&["--foo=bar"]).unwrap_err();
        assert_eq!(err.to_string(), "illegal option -- --foo=bar");
        let err = scan(&["-é"]).unwrap_err();
        assert_eq!(err.to_string(), "illegal option -- -é");
    }

    #[test]
    fn missing_arguments() {
        let err = scan(&["-s"]).unwrap_err();
        assert_eq!(err, GetoptError::MissingArgument("-s"));
        assert_eq!(err.to_string(), "Missing argument to -s");
        assert_eq!(
            scan(&["-do"]).unwrap_err().to_string(),
            "Missing argument to -o"
        );
        assert_eq!(
            scan(&["--long"]).unwrap_err().to_string(),
            "Missing argument to --long"
        );
    }

    #[test]
    fn end_of_options() {
        let (opts, rest) = scan(&["-d", "--", "-F"]).unwrap();
        assert_eq!(opts, vec![flag("-d")]);
        assert_eq!(rest, vec![OsString::from("-F")]);
        let (opts, rest) = scan(&["-d", "--"]).unwrap();
        assert_eq!(opts, vec![flag("-d")]);
        assert!(rest.is_empty());
        let (opts, rest) = scan(&["-d", "file", "-F"]).unwrap();
        assert_eq!(opts, vec![flag("-d")]);
        assert_eq!(rest, vec![OsString::from("file"), OsString::from("-F")]);
        let (opts, rest) = scan(&["-", "-d"]).unwrap();
        assert!(opts.is_empty());
        assert_eq!(rest.len(), 2);
        assert_eq!(scan(&[]).unwrap(), (vec![], vec![]));
    }

    #[test]
    fn stops_after_error() {
        let mut g = Getopt::new(SPECS, ["-x", "-d"]);
        assert!(g.next_opt().is_err());
        assert_eq!(g.next_opt(), Ok(None));
    }

    #[test]
    fn non_utf8_arguments() {
        let raw = OsString::from_vec(vec![b'-', b'o', 0xff, 0xfe]);
        let mut g = Getopt::new(SPECS, [raw]);
        let opt = g.next_opt().unwrap().unwrap();
        assert_eq!(opt.arg.unwrap().as_bytes(), &[0xff, 0xfe]);
        let mut g = Getopt::new(SPECS, [OsString::from_vec(vec![b'-', 0xff, b'd'])]);
        assert_eq!(
            g.next_opt(),
            Err(GetoptError::IllegalOption("-\u{fffd}".into()))
        );
    }

    proptest! {
        #[test]
        fn never_panics(args in proptest::collection::vec(
            proptest::collection::vec(any::<u8>(), 0..8), 0..8)) {
            let args: Vec<OsString> = args.into_iter().map(OsString::from_vec).collect();
            let mut g = Getopt::new(SPECS, args);
            for _ in 0..100 {
                match g.next_opt() {
                    Ok(Some(_)) => {}
                    _ => break,
                }
            }
            let _ = g.operands();
        }
    }
}
