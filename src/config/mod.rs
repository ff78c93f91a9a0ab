//! What a spiperelay process runs, described without reference to where the description came
//! from: process-wide [`Settings`] and one [`PipeSpec`] per pipe, together a [`Config`].
//!
//! - [`addr`]: [`SockAddrSpec`], spiped's socket-address syntax (spec §3.2), shared by the
//!   command line and the file.
//! - [`pipe`]: [`PipeSpec`] and its option types ([`Mode`], [`PfsPolicy`], ...), with
//!   spiped's defaults.
//! - [`settings`]: [`Settings`], the process-wide part.
//! - [`file`](mod@file): the TOML configuration file: [`file::parse`] and
//!   [`file::parse_with`], which report every error with its place.
//! - [`error`]: [`ConfigError`] and [`Location`].
//!
//! The spiped command line builds a one-pipe configuration
//! ([`crate::cli::SpipedArgs::to_config`]). Nothing in this module opens a socket or a file;
//! key files are checked through the [`file::KeyCheck`] the caller passes.

pub mod addr;
pub mod error;
pub mod file;
#[doc(hidden)]
pub mod fuzzing;
pub mod pipe;
pub mod settings;

pub use addr::{AddrError, SockAddrSpec};
pub use error::{ConfigError, ConfigWarning, ErrorKind, Location};
pub use pipe::{KeySource, Mode, PfsPolicy, PipeSpec, TcpOptions, UnixSocketOptions};
pub use settings::{AuditLog, LogTarget, Settings, UserGroup};

/// The longest pipe name, in bytes.
pub const MAX_PIPE_NAME_LEN: usize = 64;

/// The name of the one pipe that the spiped command line describes.
pub const COMMAND_LINE_PIPE: &str = "default";

/// A whole configuration: the process settings and every pipe, in file order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Config {
    /// Process-wide settings.
    pub settings: Settings,
    /// The pipes; their names are distinct and valid ([`valid_pipe_name`]).
    pub pipes: Vec<PipeSpec>,
}

/// Whether `name` may name a pipe: 1 to [`MAX_PIPE_NAME_LEN`] ASCII letters, digits, `_`, `-`
/// or `.`, starting with a letter or digit. Such a name can appear unquoted in log lines and
/// metrics labels, and as systemd's `FileDescriptorName=`.
pub fn valid_pipe_name(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && b.len() <= MAX_PIPE_NAME_LEN
        && b[0].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-' | b'.'))
}
