//! The relay: spiped's `-e` / `-d` daemon on the io layer and the protocol core (spec §4).
//!
//! - [`conn`]: one connection as a sans-IO state machine: events and the time in, actions
//!   out.
//! - [`engine`]: the event loop over any [`Driver`](crate::io::Driver): pipes (listeners, their
//!   settings, accept limits and back-off) and the connections they accept, each a
//!   [`conn::Conn`] whose actions it carries out; no process-wide state.
//! - `slots`: connection slots and the token layout of the engine's io operations.
//! - [`supervisor`]: one process running every pipe of a configuration (the command line's
//!   one pipe included): startup, the event-loop threads, signals, reloads and systemd.
//! - [`daemon`]: the startup pieces (addresses, binding, the io backend, pidfile, logger) and
//!   the daemon's error types.
//! - [`keyfile`]: the one key-file reader (startup, reload, rotation, spipe) with its rules
//!   and warnings, and `spiperelay keygen`.
//! - [`spipe`]: the `spipe` client (stdin/stdout over one connection, blocking sockets).
//! - [`pool`]: ready handshake key pairs, refilled by a background thread.
//! - [`log`]: spiped-style warning lines, rate-limited, to standard error or syslog.
//! - [`keys`]: the running key set of key rotation, with per-key use counters.
//! - [`control`]: the control socket (key rotation per pipe, `reload`, `report`) and its
//!   clients, `spiperelay keys` and `spiperelay reload`.
//! - [`tcp_opts`]: a pipe leg's keep-alive timing and `TCP_USER_TIMEOUT` on a socket.
//! - [`check_config`]: `spiperelay check-config FILE`, with the daemon's key-file checks.
//! - [`audit`]: the audit log, one JSON line per closed connection.
//! - [`status`]: `spiperelay status`, the control socket's `report`, text or JSON.
//! - [`metrics`]: per-event-loop counters, their sum at scrape time, the Prometheus encoding
//!   and the `GET /metrics` server.

pub mod audit;
pub mod check_config;
pub mod conn;
pub mod control;
pub mod daemon;
pub mod engine;
pub mod keyfile;
pub mod keys;
pub mod log;
pub mod metrics;
pub mod pool;
pub(crate) mod slots;
pub mod spipe;
pub mod status;
pub mod supervisor;
pub mod tcp_opts;

pub use conn::{DropReason, Side};
pub use daemon::{DaemonError, RunError, StartupError};
pub use engine::{PipeConfig, PipeId, Relay, RelayError, RelayStats};
pub use supervisor::{ConfigSource, run};
