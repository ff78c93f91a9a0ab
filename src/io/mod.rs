//! The io layer: completion-driven socket operations with no protocol knowledge.
//!
//! The relay talks to a [`Driver`]. It submits operations on [`Handle`]s (sockets the driver
//! owns), each tagged with a caller-chosen [`Token`], and later receives one [`Event`] per
//! finished operation from [`Driver::wait`]. Two drivers implement it with the same observable
//! behaviour: the io_uring backend in [`uring`] (the default) and the epoll backend in
//! [`epoll`], used where io_uring is blocked or missing.
//!
//! Rules every driver guarantees (`reference-notes.md` A.5):
//! - **Buffers are owned by the operation.** [`Driver::send`] takes its `Vec<u8>` by value and
//!   hands it back in [`Event::Sent`]; received data lives in a driver-owned pool and is lent to
//!   the caller as a [`RecvBuf`] until [`Driver::recycle`]. Nothing the kernel may still write to
//!   or read from is ever owned by the caller.
//! - **Descriptors are closed only when idle.** A socket is closed by [`Driver::close`], which
//!   cancels the operations still in flight on it and issues the `close` only after the last of
//!   them has completed, so a reused descriptor number can never receive a stale completion.
//! - **OS errors are events, never panics.** `EMFILE` from accept, `ECONNRESET` from recv, a
//!   refused connect: each arrives as an [`Event`] carrying an [`Errno`].
//!
//! Modules:
//! - [`uring`]: the io_uring backend, with its startup probe.
//! - [`epoll`]: the readiness-based fallback backend (edge-triggered epoll, a fixed receive
//!   pool, timers in an ordered map).
//! - [`any`]: [`any::Backend`] names a backend, [`any::AnyDriver`] runs the one chosen at start.
//! - [`bufring`]: the provided-buffer ring that backs [`RecvBuf`].
//! - `fdtable`: the generation-checked table of sockets both backends keep their entries in.
//! - [`sys`]: socket helpers shared by all backends (listeners, stale Unix sockets, options).

pub mod any;
pub mod bufring;
pub mod epoll;
mod fdtable;
/// A plaintext forwarder on the [`Driver`] interface: the floor benchmark of
/// `examples/plain_forward.rs` and the io tests' harness. Not part of the library's API (hidden
/// from its documentation, no stability promise); it lives here only because the example and
/// the integration tests can reach nothing else.
#[doc(hidden)]
pub mod forward;
pub mod sys;
pub mod uring;

use std::fmt;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::time::Duration;

pub use socket2::SockAddr;

/// A caller-chosen tag carried by every operation and echoed in its [`Event`].
///
/// The driver never interprets it; the relay typically packs a connection slot, a generation and
/// an operation kind into it.
pub type Token = u64;

/// A socket owned by a driver.
///
/// A handle stays valid from [`Driver::adopt`] (or [`Event::Accepted`], or [`Driver::connect`])
/// until [`Driver::close`] is called on it. After that every operation on it fails with
/// [`SubmitError::StaleHandle`] or [`SubmitError::Closing`]; a later socket never reuses the
/// same handle value, because handles carry a generation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Handle {
    pub(crate) index: u32,
    pub(crate) generation: u32,
}

/// Identifies a timer started by [`Driver::timer`], so that it can be cancelled.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TimerId(pub(crate) u64);

/// Received bytes lent by the driver's buffer pool.
///
/// Read them with [`Driver::data`] and give the buffer back with [`Driver::recycle`] as soon as
/// the bytes have been consumed: until then the pool has one buffer fewer. Dropping a `RecvBuf`
/// without recycling it leaks that buffer from the pool for the driver's lifetime.
#[must_use = "a RecvBuf must be handed back with Driver::recycle"]
#[derive(Debug, PartialEq, Eq)]
pub struct RecvBuf {
    pub(crate) id: u16,
    pub(crate) len: u32,
}

impl RecvBuf {
    /// Number of bytes received into this buffer; always at least 1.
    pub fn len(&self) -> usize {
        self.len as usize
    }

    /// Always `false`: an empty receive is reported as [`Event::Eof`] instead.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// An operating-system error number, as returned by a failed operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Errno(pub i32);

impl Errno {
    /// True for the errors that mean "out of descriptors or kernel memory" (`EMFILE`, `ENFILE`,
    /// `ENOBUFS`, `ENOMEM`): an accept loop should back off and retry rather than give up.
    pub fn is_resource_exhaustion(self) -> bool {
        matches!(
            self.0,
            libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM
        )
    }

    /// The same error as a [`std::io::Error`].
    pub fn to_io_error(self) -> std::io::Error {
        std::io::Error::from_raw_os_error(self.0)
    }
}

impl fmt::Display for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.to_io_error())
    }
}

impl std::error::Error for Errno {}

/// Why a connect did not produce a connected socket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConnectError {
    /// The deadline passed before the connection was established.
    TimedOut,
    /// The kernel reported an error, such as `ECONNREFUSED` or `ENOENT` for a Unix path.
    Os(Errno),
}

impl fmt::Display for ConnectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConnectError::TimedOut => f.write_str("the connection attempt timed out"),
            ConnectError::Os(e) => write!(f, "the connection attempt failed: {e}"),
        }
    }
}

impl std::error::Error for ConnectError {}

/// Why an operation could not be submitted. Nothing was started; no event will follow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SubmitError {
    /// The handle was closed, or never belonged to this driver.
    StaleHandle,
    /// [`Driver::close`] has already been called on the handle.
    Closing,
    /// A receive is already pending on the handle; only one may be outstanding.
    RecvPending,
    /// The send buffer is empty; there is nothing to send.
    EmptySend,
    /// A socket could not be created for a connect (for example `EMFILE`).
    Socket(Errno),
    /// The socket for a connect could not be bound to the requested local address
    /// ([`Driver::connect_from`]).
    Bind(Errno),
}

impl From<sys::SysError> for SubmitError {
    /// Maps a failure to set up a connect's socket ([`sys::stream_socket_bound`]): a failed
    /// bind is [`SubmitError::Bind`]; everything else means no usable socket,
    /// [`SubmitError::Socket`] with its errno.
    fn from(e: sys::SysError) -> Self {
        match e {
            sys::SysError::Bind(e) => SubmitError::Bind(e),
            sys::SysError::Socket(e)
            | sys::SysError::SetOption(e)
            | sys::SysError::Listen(e)
            | sys::SysError::Connect(e) => SubmitError::Socket(e),
        }
    }
}

impl fmt::Display for SubmitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SubmitError::StaleHandle => f.write_str("the socket handle is no longer valid"),
            SubmitError::Closing => f.write_str("the socket is being closed"),
            SubmitError::RecvPending => f.write_str("a receive is already pending on the socket"),
            SubmitError::EmptySend => f.write_str("refusing to send an empty buffer"),
            SubmitError::Socket(e) => write!(f, "cannot create a socket: {e}"),
            SubmitError::Bind(e) => write!(f, "cannot bind the outgoing socket: {e}"),
        }
    }
}

impl std::error::Error for SubmitError {}

/// Why waiting for completions failed. This is fatal for the event loop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WaitError {
    /// The kernel rejected the wait or submit call itself.
    Enter(Errno),
}

impl fmt::Display for WaitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WaitError::Enter(e) => write!(f, "waiting for io completions failed: {e}"),
        }
    }
}

impl std::error::Error for WaitError {}

/// A finished operation, tagged with the token given when it was submitted.
///
/// After [`Driver::close`] is called on a handle, operations still in flight on it produce no
/// events of their own (their buffers are reclaimed by the driver); the only event left for that
/// handle is the [`Event::Closed`] of the close itself.
#[derive(Debug)]
pub enum Event {
    /// The listener accepted a connection; the new socket is owned by the driver as `conn`.
    /// The accept stays armed.
    Accepted {
        /// The token given to [`Driver::accept`].
        token: Token,
        /// The accepted socket.
        conn: Handle,
    },
    /// An accept failed. If `armed` is false the accept has stopped and the caller must call
    /// [`Driver::accept`] again, after backing off if [`Errno::is_resource_exhaustion`] holds.
    AcceptFailed {
        /// The token given to [`Driver::accept`].
        token: Token,
        /// The error, e.g. `EMFILE`.
        error: Errno,
        /// Whether the accept is still armed.
        armed: bool,
    },
    /// A connect finished, successfully or not. On failure the handle is still open and must be
    /// closed with [`Driver::close`].
    Connected {
        /// The token given to [`Driver::connect`].
        token: Token,
        /// The outcome.
        result: Result<(), ConnectError>,
    },
    /// A receive returned at least one byte.
    Received {
        /// The token given to [`Driver::recv`].
        token: Token,
        /// The bytes, lent from the pool until [`Driver::recycle`].
        buf: RecvBuf,
    },
    /// A receive found the end of the stream: the peer shut down its write side.
    Eof {
        /// The token given to [`Driver::recv`].
        token: Token,
    },
    /// A receive failed, e.g. with `ECONNRESET`.
    RecvFailed {
        /// The token given to [`Driver::recv`].
        token: Token,
        /// The error.
        error: Errno,
    },
    /// A send finished: either every byte was written (short writes are resubmitted by the
    /// driver) or an error stopped it. The buffer comes back for reuse either way.
    Sent {
        /// The token given to [`Driver::send`].
        token: Token,
        /// The buffer that was sent, unchanged.
        buf: Vec<u8>,
        /// `Ok` when all of `buf` was written; otherwise the error, e.g. `EPIPE`.
        result: Result<(), Errno>,
    },
    /// A `shutdown(SHUT_WR)` finished.
    ShutdownDone {
        /// The token given to [`Driver::shutdown_write`].
        token: Token,
        /// The outcome; `ENOTCONN` means the peer had already gone.
        result: Result<(), Errno>,
    },
    /// The socket is closed and its handle is dead.
    Closed {
        /// The token given to [`Driver::close`].
        token: Token,
    },
    /// A timer expired.
    Timer {
        /// The token given to [`Driver::timer`].
        token: Token,
    },
}

impl Event {
    /// The token of the operation this event finishes.
    pub fn token(&self) -> Token {
        match self {
            Event::Accepted { token, .. }
            | Event::AcceptFailed { token, .. }
            | Event::Connected { token, .. }
            | Event::Received { token, .. }
            | Event::Eof { token }
            | Event::RecvFailed { token, .. }
            | Event::Sent { token, .. }
            | Event::ShutdownDone { token, .. }
            | Event::Closed { token }
            | Event::Timer { token } => *token,
        }
    }
}

/// A completion-driven socket backend.
///
/// All methods are non-blocking except [`Driver::wait`]. Every successful submission produces
/// exactly one terminal event later (an armed accept produces one per connection), unless
/// the handle is closed first (see [`Event`]) or a timer is cancelled.
pub trait Driver {
    /// Takes ownership of a socket (typically a listener from [`sys`]) and returns its handle.
    fn adopt(&mut self, fd: OwnedFd) -> Handle;

    /// Borrows the descriptor behind `handle`, e.g. to set socket options. `None` if the handle
    /// is stale or closing.
    fn fd(&self, handle: Handle) -> Option<BorrowedFd<'_>>;

    /// Arms a repeating accept on a listening socket. Each connection arrives as
    /// [`Event::Accepted`]; errors arrive as [`Event::AcceptFailed`].
    fn accept(&mut self, listener: Handle, token: Token) -> Result<(), SubmitError>;

    /// Stops the repeating accept armed on `listener` (for a connection limit): new clients
    /// wait in the kernel's backlog. Connections the kernel accepted before the cancel took
    /// effect still arrive as [`Event::Accepted`]; the accept then ends with
    /// [`Event::AcceptFailed`] carrying `ECANCELED` and `armed: false`. Does nothing if no
    /// accept is armed on `listener`.
    fn cancel_accept(&mut self, listener: Handle);

    /// Creates a stream socket for `addr`'s family and connects it, giving up after `timeout`.
    /// Returns the new socket's handle at once; the outcome arrives as [`Event::Connected`].
    /// Same as [`Driver::connect_from`] with no local address.
    fn connect(
        &mut self,
        addr: &SockAddr,
        timeout: Duration,
        token: Token,
    ) -> Result<Handle, SubmitError> {
        self.connect_from(addr, None, timeout, token)
    }

    /// As [`Driver::connect`], but when `bind` is given the new socket is first bound to that
    /// local address (spiped 1.6.3's `-b`).
    ///
    /// # Errors
    /// [`SubmitError::Socket`] when no socket can be created (for example `EMFILE`),
    /// [`SubmitError::Bind`] when binding fails (for example `EADDRNOTAVAIL`).
    fn connect_from(
        &mut self,
        addr: &SockAddr,
        bind: Option<&SockAddr>,
        timeout: Duration,
        token: Token,
    ) -> Result<Handle, SubmitError>;

    /// Receives once into a pool buffer chosen when data arrives, so an idle socket holds no
    /// buffer. Ends with [`Event::Received`], [`Event::Eof`] or [`Event::RecvFailed`]. At most
    /// one receive may be pending per handle. A backend may read ahead: results that arrive
    /// while no receive is pending are kept, in order, for the next one, which then ends at
    /// once (the io_uring backend's multishot receive keeps at most two pool buffers per socket
    /// that way); a socket with no data arriving still holds no buffer.
    fn recv(&mut self, handle: Handle, token: Token) -> Result<(), SubmitError>;

    /// The bytes of a received buffer.
    fn data(&self, buf: &RecvBuf) -> &[u8];

    /// Returns a received buffer to the pool.
    fn recycle(&mut self, buf: RecvBuf);

    /// Sends all of `buf` (with `MSG_NOSIGNAL`), resubmitting after short writes. Ends with
    /// [`Event::Sent`], which returns the buffer. Sends on one handle complete in order only if
    /// the caller waits for each before starting the next.
    fn send(&mut self, handle: Handle, buf: Vec<u8>, token: Token) -> Result<(), SubmitError>;

    /// Shuts down the write side (`shutdown(SHUT_WR)`), after any send in flight on the handle
    /// has finished. Ends with [`Event::ShutdownDone`].
    fn shutdown_write(&mut self, handle: Handle, token: Token) -> Result<(), SubmitError>;

    /// Closes the socket: cancels what is in flight on it, waits for those completions, then
    /// closes the descriptor. Ends with [`Event::Closed`]; the handle is dead from now on.
    fn close(&mut self, handle: Handle, token: Token) -> Result<(), SubmitError>;

    /// Starts a one-shot timer that produces [`Event::Timer`] after `after`.
    fn timer(&mut self, after: Duration, token: Token) -> TimerId;

    /// Cancels a timer. No [`Event::Timer`] is delivered for it afterwards, even if it had
    /// already expired. Cancelling an expired or unknown timer does nothing.
    fn cancel_timer(&mut self, id: TimerId);

    /// Returns the memory of the receive buffer pool to the kernel if no receive is in flight
    /// and no buffer is lent (e.g. once the last connection has closed after a burst), so the
    /// pages a burst touched stop counting in the resident set; they are faulted in again when
    /// the next receives need them. Returns the bytes released, 0 if the pool is in use or the
    /// backend keeps no such pool. The default does nothing.
    fn release_idle_buffers(&mut self) -> usize {
        0
    }

    /// Submits what is queued, waits until at least one event is ready or `timeout` passes
    /// (`None` = no limit), and appends the ready events to `events`. Returns how many were
    /// appended; 0 means the timeout passed or a signal interrupted the wait.
    fn wait(
        &mut self,
        events: &mut Vec<Event>,
        timeout: Option<Duration>,
    ) -> Result<usize, WaitError>;
}
