//! spiperelay: a Linux relay that speaks Tarsnap spiped 1.6's wire protocol byte for byte.
//!
//! The crate is layered the way rustls and quinn are:
//! - [`proto`] is the pure protocol core (spec §1–§2 of `spiped-protocol.md`): key hashing, the
//!   handshake state machine, group-14 Diffie-Hellman, packet sealing and opening, and stream
//!   framing. It owns no socket, clock, thread or random number generator: bytes and randomness
//!   are handed in, bytes and events come out. It contains no `unsafe` code.
//! - [`cli`] parses spiped's and spipe's command lines and socket addresses (spec §3), also
//!   without I/O.
//! - [`io`] is the io layer (Linux, io_uring): sockets, buffers and timers, no protocol knowledge.
//!   It is the only module of this crate with `unsafe` code. The other `unsafe` in the
//!   repository is in three workspace crates that [`proto`] uses, each reviewed like a
//!   vendored primitive (as `sha2`'s and `aes`'s own SIMD code is): the SHA-NI kernel of
//!   `crates/sha256-mb/` (two packets' MACs at once), the VAES/AES-NI AES-256-CTR kernels
//!   of `crates/aes-ctr-x86/` (both for [`proto::packet`]), and the BMI2/ADX 2048-bit
//!   Montgomery multiplication of `crates/mont2048-x86/` (for [`proto::dh`]).
//! - [`relay`] is the `-e`/`-d` daemon: the connection state machine on the io layer, startup,
//!   signals and logging.

#![forbid(unused_must_use)]

pub mod cli;
pub mod config;
pub mod io;
pub mod proto;
pub mod relay;
