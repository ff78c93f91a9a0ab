//! The io_uring backend of [`Driver`], on the `io-uring` crate.
//!
//! Bookkeeping:
//! - Every submitted operation has a record in the `ops` slab; its `user_data` is the record's
//!   index and generation. The record owns everything the SQE points to (the send buffer, the
//!   connect address, the timespec) until the final CQE for it is reaped, so the kernel never
//!   sees freed memory. Receives point only at the provided-buffer ring ([`BufRing`]).
//! - Every socket lives in the `fds` table with a count of operations in flight on it.
//!   [`Driver::close`] marks the socket closing, cancels its operations
//!   (`IORING_OP_ASYNC_CANCEL` by fd) and submits `IORING_OP_CLOSE` only once the count is zero.
//! - Receives are multishot (`IORING_OP_RECV` with `IORING_RECV_MULTISHOT` and a buffer group):
//!   the first [`Driver::recv`] on a socket arms one, which then stays armed, so a stream costs
//!   no SQE and no poll re-arm per receive. Each result goes to the receive the caller asked
//!   for, or waits in the socket's queue for the next one, which then completes at once; the
//!   one-event-per-`recv` contract of [`Driver`] is unchanged. A multishot that ends (no
//!   `IORING_CQE_F_MORE`) is re-armed when a receive is wanted: after `ENOBUFS` (pool empty)
//!   only once a buffer is recycled; after EOF or an error not by itself (the result is
//!   delivered first). When `QUEUE_LIMIT` results wait unasked for, the multishot is
//!   cancelled, so a socket the caller does not read cannot take the pool.
//! - An accept is a one-shot `IORING_OP_POLL_ADD` for `POLLIN` on the listener, re-armed after
//!   each `accept4` ([`ACCEPT_BATCH`] per readiness, so the caller sees each connection first), not
//!   `IORING_OP_ACCEPT`: the kernel's accept waits on the listener as an *exclusive* waiter, so
//!   with several rings accepting on duplicates of one listener (`--threads`) a cancelled
//!   accept whose wait entry was not yet removed took a new client's wake-up and dropped it,
//!   leaving the client in the backlog while another ring's accept slept. A poll wait is not
//!   exclusive: every ring waiting on the listener is woken. A listener has at most one accept
//!   live at a time; an accept requested while the previous one is still ending (cancelled,
//!   final CQE not reaped) is submitted when that CQE arrives (see [`Driver::accept`]).
//! - The ring is `SINGLE_ISSUER | DEFER_TASKRUN` (see `build_ring`): completions are
//!   produced in one batch while the owning thread waits, not by interrupting it.
//! - Internal operations whose results do not matter (cancels, timer removals) use the
//!   `user_data` `IGNORE`.
//! - SQEs that do not fit in a full submission queue wait in a FIFO backlog.
//! - Dropping a [`Uring`] cancels everything and reaps the completions (bounded in time) before
//!   the buffers are freed; if the kernel does not answer in time, the memory is leaked rather
//!   than freed under it.

#![allow(unsafe_code)]

use std::collections::VecDeque;
use std::fmt;
use std::mem::ManuallyDrop;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, IntoRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

use io_uring::types::{CancelBuilder, Fd, SubmitArgs, Timespec};
use io_uring::{IoUring, Probe, cqueue, opcode, squeue};

use super::bufring::{BufRing, BufRingError};
use super::fdtable::FdTable;
use super::{
    ConnectError, Driver, Errno, Event, Handle, RecvBuf, SockAddr, SubmitError, TimerId, Token,
    WaitError, sys,
};

/// Most connections accepted on one listener per readiness completion: one. The poll is then
/// re-armed, submitted with the next [`Driver::wait`] and fires again at once if the backlog
/// still holds clients, so the caller sees each new connection before the next is taken: a
/// relay at its connection limit stops accepting exactly at the limit instead of taking
/// clients it must leave waiting, and with several event loops on one listener (`--threads`)
/// the clients a full loop does not take stay in the backlog for a loop with room.
pub const ACCEPT_BATCH: usize = 1;

/// `user_data` of internal operations whose completions are discarded.
const IGNORE: u64 = u64::MAX;

/// The buffer group id used for the receive pool.
const BGID: u16 = 0;

/// Results a multishot receive may queue on a socket whose caller has not asked for them before
/// the multishot is cancelled (it is re-armed by the next [`Driver::recv`]), so that a socket
/// the caller does not read (back-pressure) cannot take the whole receive pool.
const QUEUE_LIMIT: usize = 2;

/// Completions `drain_cq` copies out of the ring at a time.
const CQ_BATCH: usize = 64;

/// How long dropping a [`Uring`] waits for cancelled operations to complete.
const DROP_DRAIN: Duration = Duration::from_secs(2);

/// Sizes of the ring and the receive pool.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UringConfig {
    /// Submission queue entries (rounded up to a power of two by the kernel); the completion
    /// queue gets four times as many.
    pub entries: u32,
    /// Number of receive buffers; a power of two up to 32768.
    pub recv_buffers: u16,
    /// Size of each receive buffer in bytes (spiped reads 4096 bytes at a time).
    pub recv_buffer_size: u32,
}

impl Default for UringConfig {
    fn default() -> Self {
        UringConfig {
            entries: 1024,
            recv_buffers: 1024,
            recv_buffer_size: 4096,
        }
    }
}

/// Why the io_uring backend could not start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SetupError {
    /// `io_uring_setup` failed with `EPERM`.
    Blocked,
    /// `io_uring_setup` failed with `ENOSYS`.
    NotImplemented,
    /// `io_uring_setup` failed with `ENOMEM`.
    OutOfMemory,
    /// `io_uring_setup` failed for another reason.
    Setup(Errno),
    /// `IORING_REGISTER_PROBE` failed (the kernel predates 5.6).
    Probe(Errno),
    /// The kernel's io_uring lacks an operation this backend uses.
    MissingOpcode(&'static str),
    /// The kernel's io_uring lacks `IORING_FEAT_EXT_ARG` (needs Linux 5.11).
    MissingExtArg,
    /// The receive buffer ring could not be set up.
    Buffers(BufRingError),
}

impl fmt::Display for SetupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SetupError::Blocked => f.write_str(
                "io_uring is not available (EPERM): it is likely blocked by a seccomp profile \
                 such as Docker's default, or by the kernel.io_uring_disabled sysctl",
            ),
            SetupError::NotImplemented => f.write_str(
                "io_uring is not available (ENOSYS): the kernel was built without io_uring, or a \
                 seccomp profile reports it as missing",
            ),
            SetupError::OutOfMemory => f.write_str(
                "io_uring could not be set up (ENOMEM): the locked-memory limit (RLIMIT_MEMLOCK) \
                 may be too low",
            ),
            SetupError::Setup(e) => write!(f, "io_uring could not be set up: {e}"),
            SetupError::Probe(e) => write!(
                f,
                "cannot probe io_uring operations ({e}); Linux 6.0 or newer is required"
            ),
            SetupError::MissingOpcode(op) => write!(
                f,
                "the kernel's io_uring does not support {op}; Linux 6.0 or newer is required"
            ),
            SetupError::MissingExtArg => f.write_str(
                "the kernel's io_uring lacks timed waits (IORING_FEAT_EXT_ARG); Linux 6.0 or \
                 newer is required",
            ),
            SetupError::Buffers(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for SetupError {}

fn setup_error(e: &std::io::Error) -> SetupError {
    match e.raw_os_error() {
        Some(libc::EPERM) => SetupError::Blocked,
        Some(libc::ENOSYS) => SetupError::NotImplemented,
        Some(libc::ENOMEM) => SetupError::OutOfMemory,
        _ => SetupError::Setup(sys::errno_of(e)),
    }
}

/// The opcodes this backend submits, with the names used in error messages.
const OPCODES: &[(u8, &str)] = &[
    (opcode::PollAdd::CODE, "poll"),
    (opcode::Connect::CODE, "connect"),
    (opcode::LinkTimeout::CODE, "linked timeouts"),
    (opcode::RecvMulti::CODE, "recv"),
    (opcode::Send::CODE, "send"),
    (opcode::Close::CODE, "close"),
    (opcode::Timeout::CODE, "timeouts"),
    (opcode::TimeoutRemove::CODE, "timeout removal"),
    (opcode::AsyncCancel::CODE, "cancellation"),
];

/// Checks that io_uring can be set up and supports everything this backend needs, without
/// keeping a ring. Call it at startup to report a clear error before binding anything.
pub fn probe() -> Result<(), SetupError> {
    Uring::new(UringConfig {
        entries: 8,
        recv_buffers: 1,
        recv_buffer_size: 1,
    })
    .map(drop)
}

struct FdEntry {
    fd: OwnedFd,
    /// Operations submitted on this fd whose final completion has not been reaped.
    inflight: u32,
    /// Sends among them.
    sends: u32,
    /// The token of the receive the caller asked for ([`Driver::recv`]) whose event has not
    /// been produced yet.
    want: Option<Token>,
    /// The `user_data` of the multishot receive armed on this fd, until its final CQE.
    multishot: Option<u64>,
    /// A cancel of that multishot was submitted because `queued` reached [`QUEUE_LIMIT`].
    ms_cancelled: bool,
    /// Results the multishot produced while no receive was asked for, oldest first.
    queued: VecDeque<Received>,
    /// In `Uring::starved`: the multishot ended with `ENOBUFS`.
    starved: bool,
    /// `Some(token)` once `close` was called.
    closing: Option<Token>,
    /// A `shutdown_write` waiting for the sends in flight to finish.
    pending_shutdown: Option<Token>,
    /// The `user_data` of the accept (its readiness poll) on this (listening) fd, until its
    /// final CQE.
    accept: Option<u64>,
    /// The token of an accept requested while the previous one was still being cancelled: it
    /// is submitted only once that one's final CQE is reaped (see `Uring::complete_accept`).
    accept_next: Option<Token>,
}

/// One result of a multishot receive, kept until the caller asks for it.
enum Received {
    Data(RecvBuf),
    Eof,
    Failed(Errno),
}

impl Received {
    fn into_event(self, token: Token) -> Event {
        match self {
            Received::Data(buf) => Event::Received { token, buf },
            Received::Eof => Event::Eof { token },
            Received::Failed(error) => Event::RecvFailed { token, error },
        }
    }
}

enum OpKind {
    /// An accept on the listener `h`: a readiness poll, re-submitted under the same
    /// `user_data` after each batch of accepts until it is cancelled or fails.
    Accept {
        h: Handle,
        /// A cancel was submitted for it ([`Driver::cancel_accept`]): when it ends it is not
        /// re-armed, whatever its last result.
        cancelled: bool,
    },
    /// Finished when both its own CQE and its linked timeout's CQE have been reaped, because
    /// only the timeout's result tells a deadline apart from other errors (an interrupted
    /// connect reports `EINTR` or `ECANCELED`).
    Connect {
        h: Handle,
        /// Pointed to by the SQE.
        _addr: Box<SockAddr>,
        /// The connect's own result, once reaped.
        res: Option<i32>,
        /// Whether the linked timeout's CQE has been reaped, and whether it fired.
        timer: Option<bool>,
    },
    LinkTimeout {
        /// Pointed to by the SQE.
        _ts: Box<Timespec>,
        /// The `user_data` of the connect it limits.
        connect: u64,
    },
    /// A multishot receive (`IORING_RECV_MULTISHOT`) on `h`; its results go to the fd entry.
    Recv {
        h: Handle,
    },
    Send {
        h: Handle,
        /// Pointed to by the SQE; its heap block never moves while the record exists.
        buf: Vec<u8>,
        off: usize,
    },
    Close,
    Timer {
        /// Pointed to by the SQE.
        _ts: Box<Timespec>,
        cancelled: bool,
    },
}

struct Op {
    token: Token,
    kind: OpKind,
}

struct OpSlot {
    generation: u32,
    op: Option<Op>,
}

/// The io_uring [`Driver`].
pub struct Uring {
    ring: IoUring,
    bufs: ManuallyDrop<BufRing>,
    fds: FdTable<FdEntry>,
    ops: Vec<OpSlot>,
    free_ops: Vec<u32>,
    /// Occupied op records.
    live_ops: usize,
    /// SQEs (single, or a linked pair) waiting for room in the submission queue.
    backlog: VecDeque<(squeue::Entry, Option<squeue::Entry>)>,
    /// Events produced outside completion handling, or not yet handed out.
    ready: VecDeque<Event>,
    /// Sockets whose multishot receive ended with `ENOBUFS`, waiting for a recycled buffer.
    starved: VecDeque<Handle>,
    /// Set while dropping: every fd counts as closing.
    shutting_down: bool,
}

impl fmt::Debug for Uring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Uring")
            .field("live_ops", &self.live_ops)
            .field("backlog", &self.backlog.len())
            .field("bufs", &*self.bufs)
            .finish_non_exhaustive()
    }
}

fn timespec(d: Duration) -> Box<Timespec> {
    Box::new(Timespec::new().sec(d.as_secs()).nsec(d.subsec_nanos()))
}

fn user_data(index: u32, generation: u32) -> u64 {
    (u64::from(generation) << 32) | u64::from(index)
}

/// Creates the ring with the cheapest completion-delivery mode the kernel accepts.
///
/// Each event loop owns its ring and is the only thread that submits to it or waits on it, so
/// the ring is set up `IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN` (Linux 6.1):
/// completions are produced by the kernel only while this thread waits in `io_uring_enter`, in
/// one batch, instead of interrupting it for every finished receive or send. Older kernels get
/// `IORING_SETUP_COOP_TASKRUN` (5.19), then neither (6.0 rejects nothing else we ask for).
/// A ring so set up must be used by the thread that created it: `io_uring_enter` from another
/// thread fails with `EEXIST`.
fn build_ring(entries: u32) -> Result<IoUring, SetupError> {
    let mut last = None;
    for mode in 0..3 {
        let mut b = IoUring::builder();
        b.setup_cqsize(entries.saturating_mul(4)).setup_clamp();
        match mode {
            0 => {
                b.setup_single_issuer().setup_defer_taskrun();
            }
            1 => {
                b.setup_coop_taskrun();
            }
            _ => {}
        }
        match b.build(entries) {
            Ok(ring) => return Ok(ring),
            // EINVAL: this kernel does not know the flag; try the next mode.
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) && mode < 2 => last = Some(e),
            Err(e) => return Err(setup_error(&e)),
        }
    }
    Err(setup_error(&last.unwrap_or_else(|| {
        std::io::Error::from_raw_os_error(libc::EINVAL)
    })))
}

impl Uring {
    /// Sets up the ring, probes the opcodes it needs and registers the receive buffer pool.
    pub fn new(config: UringConfig) -> Result<Self, SetupError> {
        let ring = build_ring(config.entries)?;
        if !ring.params().is_feature_ext_arg() {
            return Err(SetupError::MissingExtArg);
        }
        let mut probe = Probe::new();
        ring.submitter()
            .register_probe(&mut probe)
            .map_err(|e| SetupError::Probe(sys::errno_of(&e)))?;
        for &(code, name) in OPCODES {
            if !probe.is_supported(code) {
                return Err(SetupError::MissingOpcode(name));
            }
        }
        let mut bufs = BufRing::new(config.recv_buffers, config.recv_buffer_size, BGID)
            .map_err(SetupError::Buffers)?;
        bufs.register(&ring.submitter())
            .map_err(SetupError::Buffers)?;
        Ok(Uring {
            ring,
            bufs: ManuallyDrop::new(bufs),
            fds: FdTable::new(),
            ops: Vec::new(),
            free_ops: Vec::new(),
            live_ops: 0,
            backlog: VecDeque::new(),
            ready: VecDeque::new(),
            starved: VecDeque::new(),
            shutting_down: false,
        })
    }

    /// Number of sockets currently owned (including those being closed).
    pub fn open_handles(&self) -> usize {
        self.fds.len()
    }

    /// Bytes of the receive buffer pool resident in memory now (`mincore`), `None` if the
    /// kernel would not say: what [`Driver::release_idle_buffers`] can give back. For tests
    /// and measurements.
    pub fn recv_pool_resident(&self) -> Option<usize> {
        self.bufs.resident_bytes()
    }

    /// Number of operations whose completion has not been reaped yet, internal ones included
    /// (a socket's multishot receive counts from its first [`Driver::recv`] until it ends or
    /// the socket is closed, whether or not a receive is pending).
    pub fn ops_in_flight(&self) -> usize {
        self.live_ops
    }

    // ---- fd table ----

    /// The raw fd of an open, not-closing handle, for building an SQE.
    fn usable(&self, h: Handle) -> Result<RawFd, SubmitError> {
        let e = self.fds.get(h).ok_or(SubmitError::StaleHandle)?;
        if e.closing.is_some() {
            return Err(SubmitError::Closing);
        }
        Ok(e.fd.as_raw_fd())
    }

    fn is_closing(&self, h: Handle) -> bool {
        self.shutting_down || self.fds.get(h).is_none_or(|e| e.closing.is_some())
    }

    fn inc_inflight(&mut self, h: Handle) {
        if let Some(e) = self.fds.get_mut(h) {
            e.inflight += 1;
        }
    }

    /// One operation on `h` has finished for good; closes the fd if it was the last one.
    fn dec_inflight(&mut self, h: Handle) {
        let Some(e) = self.fds.get_mut(h) else {
            return;
        };
        e.inflight = e.inflight.saturating_sub(1);
        if e.inflight == 0 && e.closing.is_some() {
            self.finish_close(h);
        }
    }

    /// Removes `h` from the table and submits the close. Only called with nothing in flight.
    fn finish_close(&mut self, h: Handle) {
        let Some(entry) = self.fds.remove(h) else {
            return;
        };
        let token = entry.closing.unwrap_or(0);
        if self.shutting_down {
            drop(entry.fd);
            return;
        }
        let raw = entry.fd.into_raw_fd();
        let ud = self.alloc_op(token, OpKind::Close);
        self.push(opcode::Close::new(Fd(raw)).build().user_data(ud), None);
    }

    // ---- op records ----

    fn alloc_op(&mut self, token: Token, kind: OpKind) -> u64 {
        self.live_ops += 1;
        let op = Some(Op { token, kind });
        if let Some(index) = self.free_ops.pop() {
            let slot = &mut self.ops[index as usize];
            slot.op = op;
            return user_data(index, slot.generation);
        }
        let index = self.ops.len() as u32;
        self.ops.push(OpSlot { generation: 0, op });
        user_data(index, 0)
    }

    fn op_mut(&mut self, ud: u64) -> Option<&mut Op> {
        let slot = self.ops.get_mut((ud & 0xffff_ffff) as usize)?;
        if u64::from(slot.generation) != ud >> 32 {
            return None;
        }
        slot.op.as_mut()
    }

    fn free_op(&mut self, ud: u64) -> Option<Op> {
        let index = (ud & 0xffff_ffff) as u32;
        let slot = self.ops.get_mut(index as usize)?;
        if u64::from(slot.generation) != ud >> 32 {
            return None;
        }
        let op = slot.op.take()?;
        slot.generation = slot.generation.wrapping_add(1);
        self.free_ops.push(index);
        self.live_ops -= 1;
        Some(op)
    }

    // ---- submission ----

    /// Queues one SQE, or a linked pair that must enter the ring together.
    fn push(&mut self, first: squeue::Entry, second: Option<squeue::Entry>) {
        self.backlog.push_back((first, second));
        self.flush_backlog();
    }

    /// Moves backlog entries into the submission queue, submitting to make room if needed.
    fn flush_backlog(&mut self) {
        let mut submitted = false;
        while let Some((first, second)) = self.backlog.front() {
            let need = if second.is_some() { 2 } else { 1 };
            let mut sq = self.ring.submission();
            if sq.capacity() - sq.len() < need {
                drop(sq);
                if submitted {
                    return;
                }
                // An error (e.g. EBUSY with a full CQ) leaves the SQ as is; retried next turn.
                let _ = self.ring.submit();
                submitted = true;
                continue;
            }
            let pushed = match second {
                // SAFETY: every pointer in these SQEs refers to memory owned by the op record
                // named by their user_data (boxed address or timespec, a send Vec's heap block)
                // or to the registered buffer ring; records are freed only when their final CQE
                // is reaped, so the memory outlives the kernel's use of it. Fds named in the SQEs
                // stay open because they are closed only when no operation is in flight on them.
                Some(s) => unsafe { sq.push_multiple(&[first.clone(), s.clone()]) },
                // SAFETY: as above.
                None => unsafe { sq.push(first) },
            };
            drop(sq);
            if pushed.is_err() {
                return;
            }
            self.backlog.pop_front();
        }
    }

    /// Arms a multishot receive on `h` (open, not closing, none armed).
    fn arm_recv(&mut self, h: Handle, fd: RawFd) {
        let ud = self.alloc_op(0, OpKind::Recv { h });
        if let Some(e) = self.fds.get_mut(h) {
            e.inflight += 1;
            e.multishot = Some(ud);
            e.ms_cancelled = false;
        }
        // The length is 0: each completion fills at most one whole pool buffer.
        let sqe = opcode::RecvMulti::new(Fd(fd), self.bufs.bgid())
            .build()
            .user_data(ud);
        self.push(sqe, None);
    }

    fn submit_send(&mut self, fd: RawFd, ptr: *const u8, len: usize, ud: u64) {
        let len = u32::try_from(len).unwrap_or(u32::MAX);
        let sqe = opcode::Send::new(Fd(fd), ptr, len)
            .flags(libc::MSG_NOSIGNAL)
            .build()
            .user_data(ud);
        self.push(sqe, None);
    }

    /// Shuts the write side down at once with `shutdown(2)` and queues its
    /// [`Event::ShutdownDone`]. `IORING_OP_SHUTDOWN` is not used: the kernel always runs it in
    /// an io-wq worker thread, which cost each connection two worker wake-ups per end
    /// ([`sys::shutdown_write`]).
    fn submit_shutdown(&mut self, h: Handle, token: Token) {
        let Some(e) = self.fds.get(h) else {
            return;
        };
        let result = sys::shutdown_write(e.fd.as_fd());
        self.ready.push_back(Event::ShutdownDone { token, result });
    }

    /// Submits the readiness poll of the accept `ud` on the listener `fd`. Not exclusive: every
    /// ring polling a duplicate of the listener is woken by a new client.
    fn submit_accept(&mut self, fd: RawFd, ud: u64) {
        let sqe = opcode::PollAdd::new(Fd(fd), libc::POLLIN as u32)
            .build()
            .user_data(ud);
        self.push(sqe, None);
    }

    /// Accepts up to [`ACCEPT_BATCH`] clients waiting on the listener `h` (non-blocking),
    /// each as an [`Event::Accepted`] with `token`. Stops early at `EAGAIN` (the backlog is
    /// empty, perhaps emptied by another ring). A client that reset before it was accepted
    /// (`ECONNABORTED`) is skipped.
    ///
    /// # Errors
    /// The `accept4` error that ends the accept (such as `EMFILE`); the client stays in the
    /// backlog.
    fn accept_ready(&mut self, h: Handle, token: Token) -> Result<(), Errno> {
        for _ in 0..ACCEPT_BATCH {
            let Some(e) = self.fds.get(h) else {
                return Ok(());
            };
            // `accept` on Linux is accept4 with SOCK_CLOEXEC; the listener is non-blocking
            // (set when the accept was armed).
            let accepted = socket2::SockRef::from(&e.fd).accept();
            match accepted {
                Ok((sock, _)) => {
                    let conn = self.adopt(OwnedFd::from(sock));
                    self.ready.push_back(Event::Accepted { token, conn });
                }
                Err(err) => match err.raw_os_error() {
                    Some(libc::EAGAIN) => return Ok(()),
                    Some(libc::EINTR | libc::ECONNABORTED) => {}
                    _ => return Err(sys::errno_of(&err)),
                },
            }
        }
        Ok(())
    }

    // ---- completion ----

    fn complete(&mut self, ud: u64, res: i32, flags: u32) {
        if ud == IGNORE {
            return;
        }
        let Some(op) = self.op_mut(ud) else {
            return;
        };
        let token = op.token;
        match op.kind {
            OpKind::Accept { h, cancelled } => self.complete_accept(ud, token, h, cancelled, res),
            OpKind::Connect { res: ref mut r, .. } => {
                *r = Some(res);
                self.finish_connect(ud);
            }
            OpKind::LinkTimeout { connect, .. } => {
                self.free_op(ud);
                if let Some(Op {
                    kind: OpKind::Connect { timer, .. },
                    ..
                }) = self.op_mut(connect)
                {
                    // ECANCELED: the connect finished first. Anything else (ETIME, or the
                    // result of cancelling the connect, such as ENOENT or EALREADY when it was
                    // running in a worker) means the deadline passed.
                    *timer = Some(res != -libc::ECANCELED);
                }
                self.finish_connect(connect);
            }
            OpKind::Recv { h } => self.complete_recv(ud, h, res, flags),
            OpKind::Send { h, .. } => self.complete_send(ud, token, h, res),
            OpKind::Close => {
                self.free_op(ud);
                if !self.shutting_down {
                    self.ready.push_back(Event::Closed { token });
                }
            }
            OpKind::Timer { cancelled, .. } => {
                self.free_op(ud);
                if !cancelled && res == -libc::ETIME && !self.shutting_down {
                    self.ready.push_back(Event::Timer { token });
                }
            }
        }
    }

    /// Reports a connect once both its CQE and its linked timeout's CQE are in.
    fn finish_connect(&mut self, ud: u64) {
        let (h, res, fired) = match self.op_mut(ud) {
            Some(Op {
                kind:
                    OpKind::Connect {
                        h,
                        res: Some(res),
                        timer: Some(fired),
                        ..
                    },
                ..
            }) => (*h, *res, *fired),
            _ => return,
        };
        let Some(op) = self.free_op(ud) else {
            return;
        };
        if !self.is_closing(h) {
            let result = match res {
                0.. => Ok(()),
                _ if fired => Err(ConnectError::TimedOut),
                r => Err(ConnectError::Os(Errno(-r))),
            };
            self.ready.push_back(Event::Connected {
                token: op.token,
                result,
            });
        }
        self.dec_inflight(h);
    }

    /// A CQE of the accept `ud` (its readiness poll) on the listener `h`.
    ///
    /// Readiness of a live accept: the waiting clients are accepted ([`Uring::accept_ready`])
    /// and the poll is re-submitted; an `accept4` error ends the accept and is reported as
    /// [`Event::AcceptFailed`] with `armed: false`, as the epoll backend does. Readiness after
    /// [`Driver::cancel_accept`] accepts nothing. Any other end (cancelled: `ECANCELED`; an
    /// error of the poll itself) is reported as [`Event::AcceptFailed`] with `armed: false`,
    /// and an accept requested meanwhile (`FdEntry::accept_next`) is submitted now that the
    /// old one is gone. A closing listener gets no events.
    fn complete_accept(&mut self, ud: u64, token: Token, h: Handle, cancelled: bool, res: i32) {
        let closing = self.is_closing(h);
        if res >= 0 && !cancelled && !closing {
            match self.accept_ready(h, token) {
                Ok(()) => {
                    if let Some(raw) = self.fds.get(h).map(|e| e.fd.as_raw_fd()) {
                        self.submit_accept(raw, ud);
                        return;
                    }
                }
                Err(error) => self.ready.push_back(Event::AcceptFailed {
                    token,
                    error,
                    armed: false,
                }),
            }
        } else if !closing {
            let error = if res >= 0 {
                Errno(libc::ECANCELED)
            } else {
                Errno(-res)
            };
            self.ready.push_back(Event::AcceptFailed {
                token,
                error,
                armed: false,
            });
        }
        self.free_op(ud);
        let next = match self.fds.get_mut(h) {
            Some(e) => {
                if e.accept == Some(ud) {
                    e.accept = None;
                }
                e.accept_next.take()
            }
            None => None,
        };
        self.dec_inflight(h);
        if let Some(next) = next
            && !self.is_closing(h)
        {
            self.arm_accept(h, next);
        }
    }

    /// Submits a new accept on the listener `h` (open, not closing, none live), first making
    /// the listener non-blocking for [`Uring::accept_ready`]. If that fails the accept ends at
    /// once with the error ([`Event::AcceptFailed`], `armed: false`).
    fn arm_accept(&mut self, h: Handle, token: Token) {
        let Some(e) = self.fds.get(h) else {
            return;
        };
        let raw = e.fd.as_raw_fd();
        if let Err(err) = socket2::SockRef::from(&e.fd).set_nonblocking(true) {
            self.ready.push_back(Event::AcceptFailed {
                token,
                error: sys::errno_of(&err),
                armed: false,
            });
            return;
        }
        let ud = self.alloc_op(
            token,
            OpKind::Accept {
                h,
                cancelled: false,
            },
        );
        if let Some(e) = self.fds.get_mut(h) {
            e.inflight += 1;
            e.accept = Some(ud);
        }
        self.submit_accept(raw, ud);
    }

    /// Submits a cancel of the live accept `ud` unless one was submitted already.
    fn cancel_accept_op(&mut self, ud: u64) {
        if let Some(Op {
            kind: OpKind::Accept { cancelled, .. },
            ..
        }) = self.op_mut(ud)
        {
            if *cancelled {
                return;
            }
            *cancelled = true;
            let cancel = opcode::AsyncCancel::new(ud).build().user_data(IGNORE);
            self.push(cancel, None);
        }
    }

    /// A CQE of the multishot receive `ud` on `h`. Data, EOF and errors go to the receive the
    /// caller asked for, or are queued for the next one. Without `IORING_CQE_F_MORE` the
    /// multishot has ended: after `ENOBUFS` (pool empty) it is re-armed when a buffer is
    /// recycled; after data, or our back-pressure cancel, it is re-armed when a receive is
    /// wanted; EOF and errors are final (a later `recv` arms a new one, which reports them
    /// again as a one-shot `recv` would).
    fn complete_recv(&mut self, ud: u64, h: Handle, res: i32, flags: u32) {
        let more = cqueue::more(flags);
        let closing = self.is_closing(h);
        let buf = cqueue::buffer_select(flags)
            .and_then(|id| self.bufs.take(id, u32::try_from(res).unwrap_or(0)));
        if !more {
            self.free_op(ud);
        }
        let Some(e) = self.fds.get_mut(h).filter(|_| !closing) else {
            if let Some(b) = buf {
                self.bufs.recycle(b.id);
            }
            if !more {
                if let Some(e) = self.fds.get_mut(h) {
                    e.multishot = None;
                }
                self.dec_inflight(h);
            }
            return;
        };
        if !more {
            e.multishot = None;
        }
        let item = match (res, buf) {
            (1.., Some(buf)) => Some(Received::Data(buf)),
            // The kernel returned data without a valid buffer id: should not happen.
            (1.., None) => Some(Received::Failed(Errno(libc::EIO))),
            (0, _) => Some(Received::Eof),
            (r, _) if r == -libc::ENOBUFS => {
                // Every pool buffer is lent out: wait for one to come back (see `recycle`).
                let first = !e.starved;
                e.starved = true;
                if first {
                    self.starved.push_back(h);
                }
                None
            }
            (r, _) if r == -libc::ECANCELED && e.ms_cancelled => None,
            (r, _) => Some(Received::Failed(Errno(-r))),
        };
        let Some(e) = self.fds.get_mut(h) else {
            return;
        };
        let mut event = None;
        let mut cancel = false;
        if let Some(item) = item {
            match e.want.take() {
                Some(token) => event = Some(item.into_event(token)),
                None => {
                    e.queued.push_back(item);
                    if more && e.queued.len() >= QUEUE_LIMIT && !e.ms_cancelled {
                        e.ms_cancelled = true;
                        cancel = true;
                    }
                }
            }
        }
        let rearm = !more && e.want.is_some() && !e.starved;
        let fd = e.fd.as_raw_fd();
        if let Some(ev) = event {
            self.ready.push_back(ev);
        }
        if cancel {
            self.push(opcode::AsyncCancel::new(ud).build().user_data(IGNORE), None);
        }
        if rearm {
            self.arm_recv(h, fd);
        }
        if !more {
            self.dec_inflight(h);
        }
    }

    fn complete_send(&mut self, ud: u64, token: Token, h: Handle, res: i32) {
        let closing = self.is_closing(h);
        if res > 0 && !closing {
            let fd = self.fds.get(h).map(|e| e.fd.as_raw_fd());
            if let (
                Some(fd),
                Some(Op {
                    kind: OpKind::Send { buf, off, .. },
                    ..
                }),
            ) = (fd, self.op_mut(ud))
            {
                *off = off.saturating_add(res as usize).min(buf.len());
                if *off < buf.len() {
                    // Short write: send the rest from the same record.
                    let rest = &buf[*off..];
                    let (ptr, len) = (rest.as_ptr(), rest.len());
                    self.submit_send(fd, ptr, len, ud);
                    return;
                }
            }
        }
        let Some(Op {
            kind: OpKind::Send { buf, .. },
            ..
        }) = self.free_op(ud)
        else {
            return;
        };
        let mut pending_shutdown = None;
        if let Some(e) = self.fds.get_mut(h) {
            e.sends = e.sends.saturating_sub(1);
            if e.sends == 0 && e.closing.is_none() {
                pending_shutdown = e.pending_shutdown.take();
            }
        }
        if !closing {
            let result = match res {
                1.. => Ok(()),
                // A stream socket never accepts zero bytes of a non-empty send.
                0 => Err(Errno(libc::EPIPE)),
                r => Err(Errno(-r)),
            };
            self.ready.push_back(Event::Sent { token, buf, result });
        }
        if let Some(t) = pending_shutdown {
            self.submit_shutdown(h, t);
        }
        self.dec_inflight(h);
    }

    /// Reaps every available CQE.
    fn drain_cq(&mut self) {
        // Copied out in fixed-size batches (no allocation per wait), because handling a
        // completion needs `&mut self` while the completion queue borrows the ring.
        let mut batch = [(0u64, 0i32, 0u32); CQ_BATCH];
        loop {
            let mut n = 0;
            for (slot, c) in batch.iter_mut().zip(self.ring.completion()) {
                *slot = (c.user_data(), c.result(), c.flags());
                n += 1;
            }
            if n == 0 {
                return;
            }
            for &(ud, res, flags) in &batch[..n] {
                self.complete(ud, res, flags);
            }
        }
    }
}

impl Driver for Uring {
    fn adopt(&mut self, fd: OwnedFd) -> Handle {
        let entry = FdEntry {
            fd,
            inflight: 0,
            sends: 0,
            want: None,
            multishot: None,
            ms_cancelled: false,
            queued: VecDeque::new(),
            starved: false,
            closing: None,
            pending_shutdown: None,
            accept: None,
            accept_next: None,
        };
        self.fds.insert(entry)
    }

    fn fd(&self, handle: Handle) -> Option<BorrowedFd<'_>> {
        let e = self.fds.get(handle)?;
        if e.closing.is_some() {
            return None;
        }
        Some(e.fd.as_fd())
    }

    /// Arms an accept (a readiness poll; module docs). If the previous accept on `listener` is
    /// still live (cancelled but its final CQE not yet reaped), the new one is submitted only
    /// after that CQE, so a listener never has two polls of ours at once and the old one's
    /// last readiness cannot be mistaken for the new one's. Submitted, the new poll fires at
    /// once if clients already wait in the backlog.
    fn accept(&mut self, listener: Handle, token: Token) -> Result<(), SubmitError> {
        self.usable(listener)?;
        let live = self.fds.get(listener).and_then(|e| e.accept);
        let Some(old) = live else {
            self.arm_accept(listener, token);
            return Ok(());
        };
        self.cancel_accept_op(old);
        let replaced = self
            .fds
            .get_mut(listener)
            .and_then(|e| e.accept_next.replace(token));
        if let Some(t) = replaced {
            self.ready.push_back(Event::AcceptFailed {
                token: t,
                error: Errno(libc::ECANCELED),
                armed: false,
            });
        }
        Ok(())
    }

    fn cancel_accept(&mut self, listener: Handle) {
        if self.is_closing(listener) {
            return;
        }
        let Some(e) = self.fds.get_mut(listener) else {
            return;
        };
        // An accept not submitted yet ends here, as a cancelled one would.
        if let Some(t) = e.accept_next.take() {
            self.ready.push_back(Event::AcceptFailed {
                token: t,
                error: Errno(libc::ECANCELED),
                armed: false,
            });
            return;
        }
        if let Some(ud) = e.accept {
            self.cancel_accept_op(ud);
        }
    }

    fn connect_from(
        &mut self,
        addr: &SockAddr,
        bind: Option<&SockAddr>,
        timeout: Duration,
        token: Token,
    ) -> Result<Handle, SubmitError> {
        let sock = sys::stream_socket_bound(addr, bind).map_err(SubmitError::from)?;
        let raw = sock.as_raw_fd();
        let h = self.adopt(sock);
        let addr = Box::new(addr.clone());
        let (ptr, len) = (addr.as_ptr().cast::<libc::sockaddr>(), addr.len());
        let ud = self.alloc_op(
            token,
            OpKind::Connect {
                h,
                _addr: addr,
                res: None,
                timer: None,
            },
        );
        self.inc_inflight(h);
        let ts = timespec(timeout);
        let ts_ptr: *const Timespec = &*ts;
        let tud = self.alloc_op(
            0,
            OpKind::LinkTimeout {
                _ts: ts,
                connect: ud,
            },
        );
        let connect = opcode::Connect::new(Fd(raw), ptr, len)
            .build()
            .flags(squeue::Flags::IO_LINK)
            .user_data(ud);
        let limit = opcode::LinkTimeout::new(ts_ptr).build().user_data(tud);
        self.push(connect, Some(limit));
        Ok(h)
    }

    fn recv(&mut self, handle: Handle, token: Token) -> Result<(), SubmitError> {
        let fd = self.usable(handle)?;
        let Some(e) = self.fds.get_mut(handle) else {
            return Err(SubmitError::StaleHandle);
        };
        if e.want.is_some() {
            return Err(SubmitError::RecvPending);
        }
        if let Some(item) = e.queued.pop_front() {
            self.ready.push_back(item.into_event(token));
            return Ok(());
        }
        e.want = Some(token);
        if e.multishot.is_none() && !e.starved {
            self.arm_recv(handle, fd);
        }
        Ok(())
    }

    fn data(&self, buf: &RecvBuf) -> &[u8] {
        self.bufs.data(buf)
    }

    /// The pool is idle when no receive op is in flight (none can select a buffer: a
    /// multishot receive's record lives until its final CQE is reaped) and no buffer is lent
    /// (`BufRing::release_pages` checks that).
    fn release_idle_buffers(&mut self) -> usize {
        let receiving = self.ops.iter().any(|slot| {
            matches!(
                slot.op,
                Some(Op {
                    kind: OpKind::Recv { .. },
                    ..
                })
            )
        });
        if receiving {
            return 0;
        }
        self.bufs.release_pages()
    }

    fn recycle(&mut self, buf: RecvBuf) {
        self.bufs.recycle(buf.id);
        // A receive starved of buffers can run again now: re-arm the oldest one still wanted.
        while let Some(h) = self.starved.pop_front() {
            let closing = self.is_closing(h);
            let Some(e) = self.fds.get_mut(h) else {
                continue;
            };
            e.starved = false;
            if closing || e.want.is_none() || e.multishot.is_some() {
                continue;
            }
            let fd = e.fd.as_raw_fd();
            self.arm_recv(h, fd);
            return;
        }
    }

    fn send(&mut self, handle: Handle, buf: Vec<u8>, token: Token) -> Result<(), SubmitError> {
        let fd = self.usable(handle)?;
        if buf.is_empty() {
            return Err(SubmitError::EmptySend);
        }
        let (ptr, len) = (buf.as_ptr(), buf.len());
        let ud = self.alloc_op(
            token,
            OpKind::Send {
                h: handle,
                buf,
                off: 0,
            },
        );
        self.inc_inflight(handle);
        if let Some(e) = self.fds.get_mut(handle) {
            e.sends += 1;
        }
        self.submit_send(fd, ptr, len, ud);
        Ok(())
    }

    fn shutdown_write(&mut self, handle: Handle, token: Token) -> Result<(), SubmitError> {
        self.usable(handle)?;
        if let Some(e) = self.fds.get_mut(handle)
            && e.sends > 0
            && e.pending_shutdown.is_none()
        {
            e.pending_shutdown = Some(token);
            return Ok(());
        }
        self.submit_shutdown(handle, token);
        Ok(())
    }

    fn close(&mut self, handle: Handle, token: Token) -> Result<(), SubmitError> {
        let fd = self.usable(handle)?;
        let Some(e) = self.fds.get_mut(handle) else {
            return Err(SubmitError::StaleHandle);
        };
        e.closing = Some(token);
        e.pending_shutdown = None;
        e.want = None;
        // Results nobody will ask for: their buffers go back to the pool. (A starved entry
        // stays in `starved` and is skipped there.)
        let queued = std::mem::take(&mut e.queued);
        let idle = e.inflight == 0;
        for item in queued {
            if let Received::Data(b) = item {
                self.bufs.recycle(b.id);
            }
        }
        if idle {
            self.finish_close(handle);
        } else {
            let cancel = opcode::AsyncCancel2::new(CancelBuilder::fd(Fd(fd)).all())
                .build()
                .user_data(IGNORE);
            self.push(cancel, None);
        }
        Ok(())
    }

    fn timer(&mut self, after: Duration, token: Token) -> TimerId {
        let ts = timespec(after);
        let ptr: *const Timespec = &*ts;
        let ud = self.alloc_op(
            token,
            OpKind::Timer {
                _ts: ts,
                cancelled: false,
            },
        );
        self.push(opcode::Timeout::new(ptr).build().user_data(ud), None);
        TimerId(ud)
    }

    fn cancel_timer(&mut self, id: TimerId) {
        if let Some(Op {
            kind: OpKind::Timer { cancelled, .. },
            ..
        }) = self.op_mut(id.0)
            && !*cancelled
        {
            *cancelled = true;
            let sqe = opcode::TimeoutRemove::new(id.0).build().user_data(IGNORE);
            self.push(sqe, None);
        }
    }

    fn wait(
        &mut self,
        events: &mut Vec<Event>,
        timeout: Option<Duration>,
    ) -> Result<usize, WaitError> {
        let deadline = timeout.map(|t| Instant::now() + t);
        loop {
            self.flush_backlog();
            let want = usize::from(self.ready.is_empty());
            let r = match deadline {
                _ if want == 0 => self.ring.submit(),
                None => self.ring.submit_and_wait(want),
                Some(d) => {
                    let left = d.saturating_duration_since(Instant::now());
                    let ts = Timespec::new()
                        .sec(left.as_secs())
                        .nsec(left.subsec_nanos());
                    let args = SubmitArgs::new().timespec(&ts);
                    self.ring.submitter().submit_with_args(want, &args)
                }
            };
            let interrupted = r
                .as_ref()
                .is_err_and(|e| e.raw_os_error() == Some(libc::EINTR));
            match r {
                Ok(_) => {}
                Err(e)
                    if matches!(
                        e.raw_os_error(),
                        Some(libc::ETIME | libc::EINTR | libc::EBUSY | libc::EAGAIN)
                    ) => {}
                Err(e) => return Err(WaitError::Enter(sys::errno_of(&e))),
            }
            self.drain_cq();
            let n = self.ready.len();
            if n > 0 {
                events.extend(self.ready.drain(..));
                return Ok(n);
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Ok(0);
            }
            if interrupted {
                return Ok(0);
            }
        }
    }
}

impl Drop for Uring {
    fn drop(&mut self) {
        self.shutting_down = true;
        self.starved.clear();
        self.backlog.clear();
        let cancel = opcode::AsyncCancel2::new(CancelBuilder::any())
            .build()
            .user_data(IGNORE);
        self.push(cancel, None);
        let deadline = Instant::now() + DROP_DRAIN;
        while self.kernel_ops() > 0 && Instant::now() < deadline {
            let ts = Timespec::new().nsec(50_000_000);
            let args = SubmitArgs::new().timespec(&ts);
            let _ = self.ring.submitter().submit_with_args(1, &args);
            self.drain_cq();
            // Re-issue the cancel in case operations were submitted after the first one ran.
            self.push(
                opcode::AsyncCancel2::new(CancelBuilder::any())
                    .build()
                    .user_data(IGNORE),
                None,
            );
        }
        if self.kernel_ops() == 0 {
            self.bufs.unregister(&self.ring.submitter());
            // SAFETY: the kernel has completed every operation that could select a buffer and
            // the group is unregistered, so the memory is no longer referenced; `bufs` is not
            // used after this point.
            unsafe { ManuallyDrop::drop(&mut self.bufs) };
        } else {
            // The kernel did not release everything in time: leak the records and the pool
            // rather than free memory it may still write to.
            std::mem::forget(std::mem::take(&mut self.ops));
        }
    }
}

impl Uring {
    /// Op records that the kernel may still complete (timers and link timeouts included).
    fn kernel_ops(&self) -> usize {
        self.live_ops
    }
}
