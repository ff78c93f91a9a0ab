//! Configuration errors and warnings, each tied to a place in the file (a byte range, shown
//! as `LINE:COLUMN`) and to the field it concerns.

use std::fmt;
use std::ops::Range;

use super::addr::AddrError;

/// A line and column in a configuration file, both counted from 1; the column counts
/// characters (not bytes) from the start of the line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Location {
    /// The line, from 1.
    pub line: usize,
    /// The column in characters, from 1.
    pub column: usize,
}

impl Location {
    /// The location of byte `offset` in `text`. An offset past the end is the end; an offset
    /// inside a multi-byte character counts as that character. Never panics.
    pub fn of(text: &str, offset: usize) -> Self {
        let bytes = text.as_bytes();
        let offset = offset.min(bytes.len());
        let before = &bytes[..offset];
        let line_start = before
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |i| i + 1);
        let line = 1 + before.iter().filter(|&&b| b == b'\n').count();
        // Count UTF-8 lead bytes (not continuation bytes 0b10xx_xxxx) on this line.
        let column = 1 + before[line_start..]
            .iter()
            .filter(|&&b| b & 0xc0 != 0x80)
            .count();
        Self { line, column }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

/// What is wrong. Every variant displays as a message in plain words; the field and place are
/// in [`ConfigError`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The file is not TOML. Holds the TOML parser's description.
    Syntax(String),
    /// The same key twice in one table. Holds the key.
    DuplicateKey(String),
    /// Two `[pipe.NAME]` tables with one name. Holds the name.
    DuplicatePipe(String),
    /// A value of the wrong type, or a field that does not exist. Holds the deserializer's
    /// description (which lists the fields that do exist) and, for a field that belongs in
    /// another table, where it goes.
    Invalid {
        /// The description.
        message: String,
        /// Where the field belongs instead, if it is known elsewhere.
        hint: Option<&'static str>,
    },
    /// A required field is absent.
    Missing,
    /// The file defines no `[pipe.NAME]` table.
    NoPipes,
    /// A pipe name with characters other than letters, digits, `_`, `-` and `.`, not starting
    /// with a letter or digit, or longer than [`super::MAX_PIPE_NAME_LEN`]. Holds the name.
    BadPipeName(String),
    /// A socket address that does not parse.
    Address(AddrError),
    /// A path that is not absolute (or is empty, or contains a NUL byte). Holds the path.
    NotAbsolute(String),
    /// A number outside its range. Holds the value as written and the accepted range in words.
    OutOfRange {
        /// The value.
        value: String,
        /// The accepted values, e.g. `1 to 64`.
        range: &'static str,
    },
    /// A text value that is not one of the accepted forms. Holds the value and what is
    /// accepted.
    BadValue {
        /// The value.
        value: String,
        /// What is accepted.
        expected: &'static str,
    },
    /// Two pipes (or a pipe and a process setting) listen on the same address. Holds the
    /// other field and its place.
    DuplicateSource {
        /// The other field, e.g. `pipe.redis.source`.
        other: String,
        /// Where the other one is.
        at: Location,
    },
    /// An option that does not fit another one (or the mode, or the address kind). Holds why.
    DoesNotFit(String),
    /// More distinct key files than `max_keys` allows.
    TooManyKeys {
        /// Distinct key files listed.
        given: usize,
        /// `max_keys`.
        max: usize,
    },
    /// A table with so many bad fields that the rest of it was not examined. Holds how many
    /// were reported.
    TooManyErrors(usize),
    /// A key file that cannot be used: missing, unreadable, a FIFO, a directory or another
    /// non-regular file. Holds the key-file reader's message.
    KeyFile(String),
    /// A user or group that does not exist on this host. Holds the lookup's message.
    NoAccount(String),
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Syntax(m) => write!(f, "TOML syntax error: {m}"),
            Self::DuplicateKey(k) => write!(f, "duplicate key `{k}`"),
            Self::DuplicatePipe(n) => write!(f, "two pipes named `{n}`"),
            Self::Invalid {
                message,
                hint: None,
            } => f.write_str(message),
            Self::Invalid {
                message,
                hint: Some(h),
            } => write!(f, "{message} ({h})"),
            Self::Missing => f.write_str("required field is missing"),
            Self::NoPipes => f.write_str("no pipe defined: add a [pipe.NAME] table"),
            Self::BadPipeName(n) => write!(
                f,
                "invalid pipe name {n:?}: use 1 to {} letters, digits, '_', '-' or '.', \
                 starting with a letter or digit",
                super::MAX_PIPE_NAME_LEN
            ),
            Self::Address(e) => write!(f, "bad address: {e}"),
            Self::NotAbsolute(p) => write!(f, "{p:?} is not an absolute path"),
            Self::OutOfRange { value, range } => {
                write!(f, "{value} is out of range (expected {range})")
            }
            Self::BadValue { value, expected } => {
                write!(f, "invalid value {value:?} (expected {expected})")
            }
            Self::DuplicateSource { other, at } => {
                write!(f, "address already used by {other} (line {})", at.line)
            }
            Self::DoesNotFit(why) => f.write_str(why),
            Self::TooManyKeys { given, max } => write!(
                f,
                "{given} key files listed but max_keys is {max} (raise max_keys, at most {})",
                super::pipe::MAX_KEYS_LIMIT
            ),
            Self::TooManyErrors(n) => write!(
                f,
                "{n} bad fields in this table; the rest of it was not checked"
            ),
            Self::KeyFile(m) => f.write_str(m),
            Self::NoAccount(m) => f.write_str(m),
        }
    }
}

/// One error in a configuration file: what, which field, and where.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    /// The bytes of the file the error points at.
    pub span: Range<usize>,
    /// The field, as a dotted path (`pipe.redis.source`, `process.threads`), or `toml` for a
    /// syntax error.
    pub field: String,
    /// What is wrong.
    pub kind: ErrorKind,
}

impl ConfigError {
    /// Where the error is in `text` (the file the error came from).
    pub fn location(&self, text: &str) -> Location {
        Location::of(text, self.span.start)
    }

    /// The error as `check-config` prints it: `FILE:LINE:COL: FIELD: MESSAGE`, where `text`
    /// is the file's contents and `file` its name.
    pub fn render(&self, file: &str, text: &str) -> String {
        format!(
            "{file}:{}: {}: {}",
            self.location(text),
            self.field,
            self.kind
        )
    }
}

impl fmt::Display for ConfigError {
    /// `FIELD: MESSAGE`, without the place (see [`ConfigError::render`]).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.kind)
    }
}

impl std::error::Error for ConfigError {}

/// Something worth telling about a valid configuration (a short or exposed key file).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigWarning {
    /// The bytes of the file the warning points at.
    pub span: Range<usize>,
    /// The field, as a dotted path.
    pub field: String,
    /// The warning in words.
    pub message: String,
}

impl ConfigWarning {
    /// As [`ConfigError::render`]: `FILE:LINE:COL: FIELD: MESSAGE`.
    pub fn render(&self, file: &str, text: &str) -> String {
        format!(
            "{file}:{}: {}: {}",
            Location::of(text, self.span.start),
            self.field,
            self.message
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn locations() {
        let t = "ab\ncdé\nx";
        assert_eq!(Location::of(t, 0), Location { line: 1, column: 1 });
        assert_eq!(Location::of(t, 2), Location { line: 1, column: 3 });
        assert_eq!(Location::of(t, 3), Location { line: 2, column: 1 });
        // 'é' is two bytes: the 'x' line after it, and a column counted in characters.
        assert_eq!(Location::of(t, 7), Location { line: 2, column: 4 });
        assert_eq!(Location::of(t, 8), Location { line: 3, column: 1 });
        assert_eq!(Location::of(t, 999), Location { line: 3, column: 2 });
        assert_eq!(Location::of("", 5), Location { line: 1, column: 1 });
    }

    proptest! {
        #[test]
        fn location_never_panics(t in "\\PC{0,40}", off in 0usize..64) {
            let l = Location::of(&t, off);
            prop_assert!(l.line >= 1 && l.column >= 1);
        }
    }
}
