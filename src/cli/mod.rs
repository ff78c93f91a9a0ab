//! The command lines of `spiped` and `spipe` 1.6, and spiped's socket-address grammar
//! (§3 of `docs/protocol.md`). Pure parsing: nothing here opens a socket, reads a file or
//! resolves a name.
//!
//! - [`getopt`]: an option scanner with libcperciva's semantics (bundling, attached arguments,
//!   `--syslog`, `--`) and spiped's error words.
//! - [`addr`]: [`SockAddrSpec`], the `-s`/`-t`/`-b` address forms.
//! - [`value`]: option arguments shared by both programs (`-k`, `-n`, `-o`, `-r`, `-u`).
//! - [`spiped`]: [`SpipedArgs`] and spiped 1.6.2's usage text.
//! - [`spipe`]: [`SpipeArgs`] and spipe's usage text.
//! - [`help`]: `spiperelay --help` and per-command help, from the parsers' option tables.
//!
//! Errors carry the message text only; the binary adds the `spiped: ` or `spipe: ` prefix and
//! prints the usage text when the error's `usage()` returns it.

use std::ffi::OsStr;

pub mod addr;
pub mod getopt;
pub mod help;
pub mod spipe;
pub mod spiped;
pub mod value;

pub use addr::{AddrError, SockAddrSpec};
pub use getopt::GetoptError;
pub use spipe::{SPIPE_USAGE, SpipeArgs, SpipeArgsError, SpipeCommand};
pub use spiped::{Mode, SPIPED_USAGE, SpipedArgs, SpipedArgsError, SpipedCommand};
pub use value::{KeySource, UserGroup, ValueError};

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
}

/// An argument as text for messages: UTF-8 unchanged, other bytes as U+FFFD.
fn lossy_os(arg: &OsStr) -> String {
    value::lossy(arg)
}
