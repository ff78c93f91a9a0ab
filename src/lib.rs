//! spiperelay: a Linux relay that speaks Tarsnap spiped 1.6's wire protocol byte for byte.
//!
//! The crate is layered the way rustls and quinn are:
//! - [`proto`] is the pure protocol core (spec §1–§2 of `spiped-protocol.md`): key hashing, the
//!   handshake state machine, group-14 Diffie-Hellman, packet sealing and opening, and stream
//!   framing. It owns no socket, clock, thread or random number generator: bytes and randomness
//!   are handed in, bytes and events come out. It contains no `unsafe` code.
//! - [`io`] is the io layer (Linux, io_uring): sockets, buffers and timers, no protocol knowledge.
//!   It is the only module with `unsafe` code.
//! - The relay and command line (later modules) drive both.

#![forbid(unused_must_use)]

pub mod io;
pub mod proto;
