//! The command lines of `spiped` and `spipe` 1.6, and spiped's socket-address grammar
//! (§3 of `docs/protocol.md`). Pure parsing: nothing here opens a socket, reads a file or
//! resolves a name.
//!
//! - [`getopt`]: an option scanner with libcperciva's semantics (bundling, attached arguments,
//!   `--syslog`, `--`) and spiped's error words.
//! - [`addr`]: [`SockAddrSpec`], the `-s`/`-t`/`-b` address forms (defined in
//!   [`crate::config::addr`], shared with the configuration file).
//! - [`value`]: option arguments shared by both programs (`-k`, `-n`, `-o`, `-r`, `-u`).
//! - [`spiped`]: [`SpipedArgs`] and spiped 1.6.2's usage text; [`SpipedArgs::to_config`] turns
//!   a command line into the one-pipe [`crate::config`] it describes.
//! - [`spipe`]: [`SpipeArgs`] and spipe's usage text.
//! - [`help`]: `spiperelay --help` and per-command help, from the parsers' option tables.
//!
//! Errors carry the message text only; the binary adds the `spiped: ` or `spipe: ` prefix and
//! prints the usage text when the error's `usage()` returns it.

use std::ffi::OsStr;

pub mod addr;
pub mod convert;
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

/// The forward-secrecy policy, defined with the pipe description it belongs to.
pub use crate::config::PfsPolicy;

/// An argument as text for messages: UTF-8 unchanged, other bytes as U+FFFD.
fn lossy_os(arg: &OsStr) -> String {
    value::lossy(arg)
}
