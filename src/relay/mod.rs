//! The relay: spiped's `-e` / `-d` daemon on the io layer and the protocol core (spec §4).
//!
//! - [`engine`]: the per-connection state machine and listener handling over any
//!   [`Driver`](crate::io::Driver); no process-wide state.
//! - [`daemon`]: startup (keys, addresses, binding, daemonising, pidfile), signals and the event
//!   loop of the `spiperelay` binary.
//! - [`keyfile`]: the one key-file reader (startup, reload, rotation, spipe) with its rules
//!   and warnings, and `spiperelay keygen`.
//! - [`spipe`]: the `spipe` client (stdin/stdout over one connection, blocking sockets).
//! - [`pool`]: ready handshake key pairs, refilled by a background thread.
//! - [`log`]: spiped-style warning lines, rate-limited, to standard error or syslog.
//! - [`keys`]: the running key set of key rotation, with per-key use counters.
//! - [`control`]: `SIGHUP` reload, the `--control` socket and the `spiperelay keys` client.
//! - [`audit`]: the audit log, one JSON line per closed connection.
//! - [`status`]: `spiperelay status`, the control socket's `report`, text or JSON.
//! - [`metrics`]: per-event-loop counters, their sum at scrape time, the Prometheus encoding
//!   and the `GET /metrics` server.

pub mod audit;
pub mod control;
pub mod daemon;
pub mod engine;
pub mod keyfile;
pub mod keys;
pub mod log;
pub mod metrics;
pub mod pool;
pub mod spipe;
pub mod status;

pub use daemon::{DaemonError, RunError, StartupError, run};
pub use engine::{DropReason, Relay, RelayConfig, RelayError, RelayStats};
