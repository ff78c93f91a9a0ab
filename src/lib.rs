//! spiperelay: a Linux relay that speaks Tarsnap spiped 1.6's wire protocol byte for byte.
//!
//! The crate is layered the way rustls and quinn are:
//! - [`proto`] is the pure protocol core (spec §1–§2 of `spiped-protocol.md`): key hashing, the
//!   handshake state machine, group-14 Diffie-Hellman, packet sealing and opening, and stream
//!   framing. It owns no socket, clock, thread or random number generator: bytes and randomness
//!   are handed in, bytes and events come out. It contains no `unsafe` code.
//! - The io layer, relay and command line (later modules) drive it.

#![forbid(unused_must_use)]

pub mod proto;
