//! The process layer: what the daemon asks of the operating system besides sockets.
//!
//! Sockets, buffers and timers are the io layer's ([`crate::io`]); this module holds the
//! process-wide concerns of a Unix daemon, each a thin, documented wrapper over the `nix`
//! crate's safe calls (or `getrandom`'s), with hand-written `libc` only where no well-kept crate
//! offers the call — a signal handler install, `fork`, `_exit`, `setpriority`, `malloc_trim`
//! and a seccomp filter — each such block with a `// SAFETY:` line.
//!
//! Modules:
//! - [`process`]: detaching from the terminal (`fork`, `setsid`) with a parent that waits for
//!   the child's startup result.
//! - [`user`]: `-u` user and group lookup, and dropping privileges.
//! - [`signals`]: the counting `SIGTERM`/`SIGINT`/`SIGHUP` handlers and per-thread blocking.
//! - [`thread`]: preparing a background thread (signals blocked, lower priority).
//! - [`limits`]: the open-file limit (`RLIMIT_NOFILE`).
//! - [`memory`]: returning free heap memory to the kernel after a burst (`malloc_trim`).
//! - [`random`]: bytes from the kernel's cryptographically secure RNG.
//! - [`seccomp`]: a filter that blocks `io_uring_setup`, for testing the epoll fallback.
//! - [`syslog`]: the `/dev/log` datagram sink of `--syslog`.
//! - [`notify`]: systemd's readiness, reload, stop, status and watchdog messages.
//! - [`activation`]: listening sockets passed in by systemd (socket activation).

pub mod activation;
pub mod limits;
pub mod memory;
pub mod notify;
pub mod process;
pub mod random;
pub mod seccomp;
pub mod signals;
pub mod syslog;
pub mod thread;
pub mod user;

pub use random::fill_random;

use crate::io::Errno;

/// The [`Errno`] of a failed `nix` call.
pub(crate) fn errno(e: nix::Error) -> Errno {
    Errno(e as i32)
}
