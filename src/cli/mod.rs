//! The command lines of `spiped` and `spipe` 1.6, and spiped's socket-address grammar
//! (spec §3 of `spiped-protocol.md`). Pure parsing: nothing here opens a socket, reads a file or
//! resolves a name.
//!
//! - [`getopt`]: an option scanner with libcperciva's semantics (bundling, attached arguments,
//!   `--syslog`, `--`) and spiped's error words.
//! - [`addr`]: [`SockAddrSpec`], the `-s`/`-t`/`-b` address forms.

pub mod addr;
pub mod getopt;

pub use addr::{AddrError, SockAddrSpec};
pub use getopt::GetoptError;
