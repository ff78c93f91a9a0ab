//! The process layer: what the daemon asks of the operating system besides sockets.
//!
//! - [`notify`]: systemd's readiness, reload, stop, status and watchdog messages.
//! - [`activation`]: listening sockets passed in by systemd (socket activation).

pub mod activation;
pub mod notify;
