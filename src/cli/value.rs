//! Option arguments shared by spiped and spipe: key files, timeouts, the connection limit, the
//! re-resolution interval and `-u`'s user/group. Each parser names the flag it serves in its
//! errors.

use std::ffi::OsStr;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

pub use crate::config::pipe::MAX_CONNECTIONS;
/// Where a key comes from (`-k`), and the account to switch to (`-u`): defined with the
/// configuration they belong to; parsed from arguments here.
pub use crate::config::{KeySource, UserGroup};

impl KeySource {
    /// `-` is [`KeySource::Stdin`]; anything else, even empty, is a file path (opening it is
    /// left to the caller). Never fails.
    pub fn from_arg(arg: &OsStr) -> Self {
        if arg == "-" {
            Self::Stdin
        } else {
            Self::File(PathBuf::from(arg))
        }
    }
}

impl UserGroup {
    /// Parses `user`, `:group` or `user:group`; names are looked up (or read as numeric ids)
    /// later. Errors with [`ValueError::InvalidUser`] when the text is empty, a part is empty
    /// (`:`, `user:`), it holds more than one `:` or it is not UTF-8.
    pub fn parse(arg: &OsStr) -> Result<Self, ValueError> {
        let invalid = || ValueError::InvalidUser(arg.to_string_lossy().into_owned());
        let s = arg.to_str().ok_or_else(invalid)?;
        match s.split_once(':') {
            None if !s.is_empty() => Ok(Self::User(s.to_owned())),
            None => Err(invalid()),
            Some((_, group)) if group.is_empty() || group.contains(':') => Err(invalid()),
            Some(("", group)) => Ok(Self::Group(group.to_owned())),
            Some((user, group)) => Ok(Self::UserAndGroup {
                user: user.to_owned(),
                group: group.to_owned(),
            }),
        }
    }
}

/// Why an option's argument was rejected. Each variant holds the text as given (lossily
/// converted to UTF-8) and displays the flag and that text. None of these prints the usage text
/// in spiped.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ValueError {
    /// `-n`: not a decimal integer in 0–[`MAX_CONNECTIONS`].
    InvalidConnLimit(String),
    /// `-o`: not a finite decimal number of seconds, zero or more.
    InvalidTimeout(String),
    /// `-r`: not a finite decimal number of seconds, zero or more.
    InvalidRtime(String),
    /// `-u`: not `user`, `:group` or `user:group` with non-empty names.
    InvalidUser(String),
}

impl fmt::Display for ValueError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidConnLimit(v) => write!(
                f,
                "-n: invalid connection limit {v:?} (expected an integer from 0 to \
                 {MAX_CONNECTIONS}; 0 means unlimited)"
            ),
            Self::InvalidTimeout(v) => write!(
                f,
                "-o: invalid timeout {v:?} (expected a number of seconds, 0 for the default)"
            ),
            Self::InvalidRtime(v) => write!(
                f,
                "-r: invalid re-resolution interval {v:?} (expected a number of seconds, 0 or more)"
            ),
            Self::InvalidUser(v) => write!(
                f,
                "-u: invalid user/group {v:?} (expected <username>, <:groupname> or \
                 <username:groupname>)"
            ),
        }
    }
}

impl std::error::Error for ValueError {}

/// Renders an argument for messages: UTF-8 passes through, other bytes become U+FFFD.
pub(crate) fn lossy(arg: &OsStr) -> String {
    arg.to_string_lossy().into_owned()
}

/// Parses `-n`: decimal digits only, value 0–[`MAX_CONNECTIONS`]. Returns `None` for 0
/// (unlimited) and `Some(n)` otherwise. Errors with [`ValueError::InvalidConnLimit`].
pub fn parse_conn_limit(arg: &OsStr) -> Result<Option<usize>, ValueError> {
    let s = arg.to_str().unwrap_or("");
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ValueError::InvalidConnLimit(lossy(arg)));
    }
    match s.parse::<usize>() {
        Ok(0) => Ok(None),
        Ok(n) if n <= MAX_CONNECTIONS => Ok(Some(n)),
        _ => Err(ValueError::InvalidConnLimit(lossy(arg))),
    }
}

/// Parses a number of seconds as Rust's `f64` parser reads it (`5`, `0.5`, `1e3`, `+2`); no
/// hexadecimal, no surrounding spaces. `None` for anything that is not a finite number of at
/// least 0 seconds that fits a [`Duration`].
fn parse_seconds(arg: &OsStr) -> Option<Duration> {
    let secs: f64 = arg.to_str()?.parse().ok()?;
    if !secs.is_finite() {
        return None;
    }
    Duration::try_from_secs_f64(secs).ok()
}

/// Parses `-o`: a number of seconds, at least zero. Zero (or anything below one nanosecond)
/// means the default of 5 s, as in spiped 1.6.2, so existing command lines with `-o 0` keep
/// working. Errors with [`ValueError::InvalidTimeout`] for negative, NaN, infinite, too large
/// or non-numeric text.
pub fn parse_timeout(arg: &OsStr) -> Result<Duration, ValueError> {
    match parse_seconds(arg) {
        Some(d) if d.is_zero() => Ok(super::spiped::DEFAULT_TIMEOUT),
        Some(d) => Ok(d),
        None => Err(ValueError::InvalidTimeout(lossy(arg))),
    }
}

/// Parses `-r`: a number of seconds, zero or more. Returns the interval as given; the caller
/// replaces zero by the default, as spiped does. Errors with [`ValueError::InvalidRtime`] for
/// negative, NaN, infinite, too large or non-numeric text.
pub fn parse_rtime(arg: &OsStr) -> Result<Duration, ValueError> {
    parse_seconds(arg).ok_or_else(|| ValueError::InvalidRtime(lossy(arg)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn os(s: &str) -> &OsStr {
        OsStr::new(s)
    }

    #[test]
    fn key_source() {
        assert_eq!(KeySource::from_arg(os("-")), KeySource::Stdin);
        assert_eq!(
            KeySource::from_arg(os("k")),
            KeySource::File(PathBuf::from("k"))
        );
        assert_eq!(
            KeySource::from_arg(os("--")),
            KeySource::File(PathBuf::from("--"))
        );
    }

    #[test]
    fn user_group() {
        assert_eq!(
            UserGroup::parse(os("nobody")),
            Ok(UserGroup::User("nobody".into()))
        );
        assert_eq!(
            UserGroup::parse(os(":nogroup")),
            Ok(UserGroup::Group("nogroup".into()))
        );
        assert_eq!(
            UserGroup::parse(os("u:g")),
            Ok(UserGroup::UserAndGroup {
                user: "u".into(),
                group: "g".into()
            })
        );
        for bad in ["", ":", "user:", "::", "a:b:c", ":g:"] {
            assert_eq!(
                UserGroup::parse(os(bad)),
                Err(ValueError::InvalidUser(bad.into())),
                "{bad:?}"
            );
        }
        for s in ["u", ":g", "u:g"] {
            assert_eq!(UserGroup::parse(os(s)).unwrap().to_string(), s);
        }
    }

    #[test]
    fn conn_limit() {
        assert_eq!(parse_conn_limit(os("0")), Ok(None));
        assert_eq!(parse_conn_limit(os("1")), Ok(Some(1)));
        assert_eq!(parse_conn_limit(os("500000")), Ok(Some(500_000)));
        for bad in [
            "500001",
            "-1",
            "+5",
            "",
            "abc",
            "1e3",
            "0x10",
            " 5",
            "99999999999999999999999",
        ] {
            assert_eq!(
                parse_conn_limit(os(bad)),
                Err(ValueError::InvalidConnLimit(bad.into())),
                "{bad:?}"
            );
        }
        assert_eq!(
            ValueError::InvalidConnLimit("abc".into()).to_string(),
            "-n: invalid connection limit \"abc\" (expected an integer from 0 to 500000; \
             0 means unlimited)"
        );
    }

    #[test]
    fn timeout() {
        assert_eq!(parse_timeout(os("5")), Ok(Duration::from_secs(5)));
        assert_eq!(parse_timeout(os("0.25")), Ok(Duration::from_millis(250)));
        assert_eq!(parse_timeout(os("1e3")), Ok(Duration::from_secs(1000)));
        // spiped 1.6.2 reads a zero timeout as its default of 5 s.
        for zero in ["0", "0.0", "1e-12"] {
            assert_eq!(
                parse_timeout(os(zero)),
                Ok(Duration::from_secs(5)),
                "{zero:?}"
            );
        }
        for bad in [
            "-1", "nan", "NaN", "inf", "-inf", "abc", "", "1e300", " 1", "0x10",
        ] {
            assert_eq!(
                parse_timeout(os(bad)),
                Err(ValueError::InvalidTimeout(bad.into())),
                "{bad:?}"
            );
        }
        assert!(
            ValueError::InvalidTimeout("abc".into())
                .to_string()
                .starts_with("-o: invalid timeout \"abc\"")
        );
    }

    #[test]
    fn rtime() {
        assert_eq!(parse_rtime(os("0")), Ok(Duration::ZERO));
        assert_eq!(parse_rtime(os("1.5")), Ok(Duration::from_millis(1500)));
        for bad in ["-1", "nan", "inf", "x", ""] {
            assert_eq!(
                parse_rtime(os(bad)),
                Err(ValueError::InvalidRtime(bad.into())),
                "{bad:?}"
            );
        }
    }

    proptest! {
        #[test]
        fn value_parsers_never_panic(s in "\\PC*") {
            let _ = parse_conn_limit(os(&s));
            let _ = parse_timeout(os(&s));
            let _ = parse_rtime(os(&s));
            let _ = UserGroup::parse(os(&s));
        }

        #[test]
        fn conn_limit_accepts_every_value_in_range(n in 0usize..=MAX_CONNECTIONS) {
            let expected = if n == 0 { None } else { Some(n) };
            prop_assert_eq!(parse_conn_limit(os(&n.to_string())), Ok(expected));
        }
    }
}
