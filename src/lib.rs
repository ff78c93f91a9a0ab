//! spiperelay: a Linux relay that speaks Tarsnap spiped 1.6's wire protocol byte for byte.
//!
//! The crate is layered the way rustls and quinn are:
//! - [`proto`] is the pure protocol core (§1–§2 of `docs/protocol.md`): key hashing, the
//!   handshake state machine, group-14 Diffie-Hellman, packet sealing and opening, and stream
//!   framing. It owns no socket, clock, thread or random number generator: bytes and randomness
//!   are handed in, bytes and events come out. It contains no `unsafe` code.
//! - [`cli`] parses spiped's and spipe's command lines and socket addresses (spec §3), also
//!   without I/O.
//! - [`io`] is the io layer (Linux, io_uring): sockets, buffers and timers, no protocol knowledge.
//! - [`os`] is the process layer: daemonising, `-u` users and privileges, signals, the
//!   open-file limit, the kernel RNG, a seccomp filter for tests and the syslog sink, on the
//!   `nix` crate's safe calls.
//!
//! [`io`] and [`os`] are the only modules of this crate with `unsafe` code ([`os`] only where no
//! well-kept crate has a safe call: a signal handler install, `fork`, `_exit`, `setpriority`,
//! the seccomp filter). The other `unsafe` in the repository is in three workspace crates that [`proto`] uses, each reviewed like a
//!   vendored primitive (as `sha2`'s and `aes`'s own SIMD code is): the SHA-NI kernel of
//!   `crates/sha256-mb/` (two packets' MACs at once), the VAES/AES-NI AES-256-CTR kernels
//!   of `crates/aes-ctr-x86/` (both for [`proto::packet`]), and the BMI2/ADX 2048-bit
//!   Montgomery multiplication of `crates/mont2048-x86/` (for [`proto::dh`]).
//! - [`relay`] is the `-e`/`-d` daemon: the connection state machine on the io layer, startup,
//!   signals and logging.

#![forbid(unused_must_use)]

pub mod cli;
pub mod io;
pub mod os;
pub mod proto;
pub mod relay;
