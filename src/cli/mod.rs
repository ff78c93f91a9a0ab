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

use crate::proto::handshake::ExchangePolicy;

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

impl PfsPolicy {
    /// The exchange this policy selects, with `--x25519` or without. X25519 mode always has
    /// forward secrecy: the command-line parsers refuse `--x25519` with `-f` (their
    /// `X25519WithoutPfs` error, the one check of that pair), so here `x25519` wins.
    pub fn exchange(self, x25519: bool) -> ExchangePolicy {
        match (x25519, self) {
            (true, _) => ExchangePolicy::X25519,
            (false, Self::Disabled) => ExchangePolicy::Group14NoPfs,
            (false, Self::Standard) => ExchangePolicy::Group14Pfs,
            (false, Self::Required) => ExchangePolicy::Group14RequirePfs,
        }
    }
}

/// An argument as text for messages: UTF-8 unchanged, other bytes as U+FFFD.
fn lossy_os(arg: &OsStr) -> String {
    value::lossy(arg)
}
