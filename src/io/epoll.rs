//! The epoll backend of [`Driver`]: the fallback where io_uring is blocked (Docker's default
//! seccomp profile, `kernel.io_uring_disabled`) or too old.
//!
//! It turns readiness into the same completion events the io_uring backend produces, with the
//! same observable rules (module docs of [`crate::io`]):
//! - Every socket is non-blocking and registered once, edge-triggered, for input, output and
//!   peer hang-up. Each socket remembers whether it is *readable* and *writable*; an edge sets
//!   the flag, `EAGAIN` (or a receive shorter than its buffer, before any hang-up) clears it. A requested operation runs as soon as its flag is set, so no
//!   `epoll_ctl` call is needed per operation and no edge is ever lost.
//! - Operations run inside [`Driver::wait`], never inside the call that requested them, so
//!   events arrive in the same places as with io_uring.
//! - Receives use a fixed pool of buffers taken only when the socket is readable: an idle
//!   connection holds no data buffer. When the pool is empty a readable socket waits until a
//!   buffer is recycled, like a starved io_uring receive.
//! - Sends are written with `MSG_NOSIGNAL` until complete, in the order they were requested; a
//!   `shutdown_write` waits for the sends before it.
//! - An armed accept accepts until `EAGAIN` (at most [`ACCEPT_BATCH`], one, per
//!   [`Driver::wait`], so the caller sees each connection before the next). Any error,
//!   such as `EMFILE`, disarms it and is reported with `armed: false`, exactly as the io_uring
//!   backend's accept does; the listener stays readable, so re-arming it accepts at once.
//! - Timers and connect deadlines live in an ordered map; `epoll_wait`'s timeout is the time to
//!   the next one (rounded up to a millisecond, so timers never fire early).
//! - A connect that finds a Unix listener's backlog full (`EAGAIN`, where a blocking connect
//!   would wait) is retried every [`CONNECT_RETRY`] until its deadline.
//! - [`Driver::close`] drops the socket's pending operations (their send buffers are freed) and
//!   the descriptor is closed in the next [`Driver::wait`], which reports [`Event::Closed`].
//!   All I/O is synchronous, so nothing is ever in flight in the kernel on a closed descriptor.

#![allow(unsafe_code)]

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

use socket2::SockRef;

use super::fdtable::FdTable;
use super::{
    ConnectError, Driver, Errno, Event, Handle, RecvBuf, SockAddr, SubmitError, TimerId, Token,
    WaitError, sys,
};

/// Most connections accepted on one listener per [`Driver::wait`]: one, so that the caller
/// sees each new connection before the next is taken. A relay at its connection limit then
/// stops accepting exactly at the limit instead of taking clients it must leave waiting, and
/// with several event loops on one listener (`--threads`) the clients a full loop does not take
/// stay in the backlog for a loop with room. It also keeps a flood of clients from starving
/// the connections already open.
pub const ACCEPT_BATCH: usize = 1;

/// Most receives completed per [`Driver::wait`]. The pool's free list is a stack, so this also
/// bounds how many of its buffers are ever touched (resident) when many sockets are readable
/// at once: at most this many are lent per turn, and the caller recycles them before the next.
/// Sockets past it keep their readiness and are served first in the next turn.
pub const RECV_BATCH: usize = 64;

/// How often a connect to a Unix socket whose backlog is full is retried.
pub const CONNECT_RETRY: Duration = Duration::from_millis(10);

/// Most `EINTR` retries of one system call before giving up on it for this turn.
const EINTR_RETRIES: usize = 16;

/// The readiness events every socket is registered for.
const INTEREST: u32 = (libc::EPOLLIN | libc::EPOLLOUT | libc::EPOLLRDHUP | libc::EPOLLET) as u32;

/// Sizes of the receive pool and the event batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EpollConfig {
    /// Number of receive buffers, 1 to 65535.
    pub recv_buffers: u16,
    /// Size of each receive buffer in bytes, at least 1.
    pub recv_buffer_size: u32,
    /// Most readiness events taken from the kernel per `epoll_wait`, at least 1.
    pub max_events: u32,
}

impl Default for EpollConfig {
    fn default() -> Self {
        EpollConfig {
            recv_buffers: 1024,
            recv_buffer_size: 4096,
            max_events: 1024,
        }
    }
}

/// Why the epoll backend could not start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EpollError {
    /// A count or size in [`EpollConfig`] is zero, or the pool would not fit in memory.
    BadGeometry,
    /// `epoll_create1` failed (e.g. `EMFILE`).
    Create(Errno),
}

impl fmt::Display for EpollError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EpollError::BadGeometry => {
                f.write_str("receive buffer count, buffer size and event batch must be non-zero")
            }
            EpollError::Create(e) => write!(f, "cannot create an epoll instance: {e}"),
        }
    }
}

impl std::error::Error for EpollError {}

/// The receive pool: `count` buffers of `size` bytes in one allocation. A buffer is *free*,
/// *taken* (a receive is writing into it right now) or *lent* (reported in [`Event::Received`]
/// until [`Driver::recycle`]). The allocation is zero-filled by the allocator, so pages of
/// buffers never used are never touched.
struct Pool {
    mem: Vec<u8>,
    size: usize,
    /// Free buffer ids, used as a stack so that recently used (resident) buffers are reused.
    free: Vec<u16>,
    lent: Vec<bool>,
}

impl Pool {
    fn new(count: u16, size: u32) -> Option<Self> {
        let size = size as usize;
        if count == 0 || size == 0 {
            return None;
        }
        let bytes = usize::from(count).checked_mul(size)?;
        Some(Pool {
            mem: vec![0; bytes],
            size,
            free: (0..count).rev().collect(),
            lent: vec![false; usize::from(count)],
        })
    }

    fn slot(&mut self, id: u16) -> &mut [u8] {
        let start = usize::from(id) * self.size;
        &mut self.mem[start..start + self.size]
    }

    fn data(&self, buf: &RecvBuf) -> &[u8] {
        let id = usize::from(buf.id);
        if !self.lent.get(id).copied().unwrap_or(false) || buf.len() > self.size {
            return &[];
        }
        let start = id * self.size;
        &self.mem[start..start + buf.len()]
    }

    /// Returns a lent buffer; `false` if `id` was not lent.
    fn recycle(&mut self, id: u16) -> bool {
        match self.lent.get_mut(usize::from(id)) {
            Some(lent) if *lent => {
                *lent = false;
                self.free.push(id);
                true
            }
            _ => false,
        }
    }
}

struct SendOp {
    token: Token,
    buf: Vec<u8>,
    off: usize,
}

struct ConnectOp {
    token: Token,
    /// The deadline timer.
    deadline: u64,
    /// Set while the connect waits to be retried (`EAGAIN`): the address and the retry timer.
    retry: Option<(Box<SockAddr>, u64)>,
}

struct FdEntry {
    fd: OwnedFd,
    /// Why the socket could not be made non-blocking or registered: every operation on it
    /// fails with this error.
    broken: Option<Errno>,
    readable: bool,
    writable: bool,
    /// The peer hung up or an error is pending: a short receive does not mean the input is
    /// drained, because the end of the stream may come with no further edge.
    hangup: bool,
    /// In the `dirty` queue.
    queued: bool,
    /// In the `starved` queue.
    starved: bool,
    accept: Option<Token>,
    /// The [`Driver::wait`] call (`Epoll::turn`) in which this listener last accepted, and how
    /// many connections it accepted in it (at most [`ACCEPT_BATCH`] per call).
    accepted: (u64, usize),
    connect: Option<ConnectOp>,
    recv: Option<Token>,
    sends: VecDeque<SendOp>,
    shutdowns: Vec<Token>,
    /// `Some(token)` once `close` was called; the descriptor is closed in the next wait.
    closing: Option<Token>,
}

impl FdEntry {
    fn ops(&self) -> usize {
        usize::from(self.accept.is_some())
            + usize::from(self.connect.is_some())
            + usize::from(self.recv.is_some())
            + self.sends.len()
            + self.shutdowns.len()
    }
}

#[derive(Clone, Copy)]
enum TimerKind {
    User(Token),
    ConnectDeadline(Handle),
    ConnectRetry(Handle),
}

/// The epoll [`Driver`].
pub struct Epoll {
    epfd: OwnedFd,
    pool: Pool,
    fds: FdTable<FdEntry>,
    /// Sockets with work to try in the next pass.
    dirty: Vec<Handle>,
    /// Readable sockets with a receive pending that found the pool empty, oldest first.
    starved: VecDeque<Handle>,
    /// Receives this [`Driver::wait`] may still complete (see [`RECV_BATCH`]).
    recv_budget: usize,
    /// Number of the current [`Driver::wait`] call (for [`ACCEPT_BATCH`]).
    turn: u64,
    /// Sockets whose `close` was called, to be closed in the next wait.
    to_close: Vec<Handle>,
    timers: BTreeMap<(Instant, u64), TimerKind>,
    timer_at: HashMap<u64, Instant>,
    next_timer: u64,
    user_timers: usize,
    events: Vec<libc::epoll_event>,
    /// Events produced but not handed out yet.
    ready: VecDeque<Event>,
}

impl fmt::Debug for Epoll {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Epoll")
            .field("open_handles", &self.open_handles())
            .field("ops_in_flight", &self.ops_in_flight())
            .field("free_buffers", &self.pool.free.len())
            .finish_non_exhaustive()
    }
}

fn last_errno() -> Errno {
    sys::errno_of(&std::io::Error::last_os_error())
}

fn handle_data(h: Handle) -> u64 {
    (u64::from(h.generation) << 32) | u64::from(h.index)
}

/// Milliseconds until `at`, rounded up so that a timer never fires early.
fn ms_until(at: Instant, now: Instant) -> i32 {
    let left = at.saturating_duration_since(now);
    let ms = left.as_nanos().div_ceil(1_000_000);
    i32::try_from(ms).unwrap_or(i32::MAX)
}

/// Sets `O_NONBLOCK` on `fd`.
fn set_nonblocking(fd: RawFd) -> Result<(), Errno> {
    // SAFETY: F_GETFL on a descriptor we own has no memory effects.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    if flags < 0 {
        return Err(last_errno());
    }
    if flags & libc::O_NONBLOCK != 0 {
        return Ok(());
    }
    // SAFETY: F_SETFL with an int argument on a descriptor we own has no memory effects.
    if unsafe { libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) } < 0 {
        return Err(last_errno());
    }
    Ok(())
}

impl Epoll {
    /// Creates the epoll instance and allocates the receive pool.
    ///
    /// # Errors
    /// [`EpollError::BadGeometry`] for a zero count or size, [`EpollError::Create`] if the
    /// kernel refuses the epoll instance.
    pub fn new(config: EpollConfig) -> Result<Self, EpollError> {
        if config.max_events == 0 {
            return Err(EpollError::BadGeometry);
        }
        let pool = Pool::new(config.recv_buffers, config.recv_buffer_size)
            .ok_or(EpollError::BadGeometry)?;
        // SAFETY: epoll_create1 takes no pointers; the result is checked before use.
        let raw = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if raw < 0 {
            return Err(EpollError::Create(last_errno()));
        }
        // SAFETY: `raw` is a new descriptor that nothing else owns.
        let epfd = unsafe { OwnedFd::from_raw_fd(raw) };
        let max = usize::try_from(config.max_events)
            .unwrap_or(usize::MAX)
            .min(65536);
        Ok(Epoll {
            epfd,
            pool,
            fds: FdTable::new(),
            dirty: Vec::new(),
            starved: VecDeque::new(),
            recv_budget: RECV_BATCH,
            turn: 0,
            to_close: Vec::new(),
            timers: BTreeMap::new(),
            timer_at: HashMap::new(),
            next_timer: 0,
            user_timers: 0,
            events: vec![libc::epoll_event { events: 0, u64: 0 }; max],
            ready: VecDeque::new(),
        })
    }

    /// Number of sockets currently owned (including those being closed).
    pub fn open_handles(&self) -> usize {
        self.fds.len()
    }

    /// Number of operations that have not produced their event yet (armed accepts, connects,
    /// receives, sends, shutdowns, pending closes and timers).
    pub fn ops_in_flight(&self) -> usize {
        let per_fd: usize = self
            .fds
            .entries()
            .filter(|e| e.closing.is_none())
            .map(FdEntry::ops)
            .sum();
        per_fd + self.to_close.len() + self.user_timers
    }

    // ---- fd table ----

    /// The entry of an open, not-closing handle.
    fn usable(&mut self, h: Handle) -> Result<&mut FdEntry, SubmitError> {
        let e = self.fds.get_mut(h).ok_or(SubmitError::StaleHandle)?;
        if e.closing.is_some() {
            return Err(SubmitError::Closing);
        }
        Ok(e)
    }

    /// Queues `h` for the next pass over sockets with work.
    fn queue(&mut self, h: Handle) {
        if let Some(e) = self.fds.get_mut(h)
            && !e.queued
        {
            e.queued = true;
            self.dirty.push(h);
        }
    }

    /// Takes ownership of `fd`, making it non-blocking unless it already is, and registers it.
    fn insert(&mut self, fd: OwnedFd, nonblocking: bool) -> Handle {
        let raw = fd.as_raw_fd();
        let entry = FdEntry {
            fd,
            broken: None,
            readable: true,
            writable: true,
            hangup: false,
            queued: false,
            starved: false,
            accept: None,
            accepted: (0, 0),
            connect: None,
            recv: None,
            sends: VecDeque::new(),
            shutdowns: Vec::new(),
            closing: None,
        };
        let h = self.fds.insert(entry);
        let mut broken = None;
        if !nonblocking {
            broken = set_nonblocking(raw).err();
        }
        if broken.is_none() {
            let mut ev = libc::epoll_event {
                events: INTEREST,
                u64: handle_data(h),
            };
            // SAFETY: `ev` is a valid epoll_event for the duration of the call; both
            // descriptors are open (the entry owns `raw`, `self` owns the epoll fd).
            let r = unsafe {
                libc::epoll_ctl(self.epfd.as_raw_fd(), libc::EPOLL_CTL_ADD, raw, &mut ev)
            };
            if r < 0 {
                broken = Some(last_errno());
            }
        }
        if let Some(e) = self.fds.get_mut(h) {
            e.broken = broken;
        }
        h
    }

    // ---- timers ----

    fn add_timer(&mut self, at: Instant, kind: TimerKind) -> u64 {
        let id = self.next_timer;
        self.next_timer += 1;
        self.timers.insert((at, id), kind);
        self.timer_at.insert(id, at);
        if matches!(kind, TimerKind::User(_)) {
            self.user_timers += 1;
        }
        id
    }

    fn remove_timer(&mut self, id: u64) -> Option<TimerKind> {
        let at = self.timer_at.remove(&id)?;
        let kind = self.timers.remove(&(at, id))?;
        if matches!(kind, TimerKind::User(_)) {
            self.user_timers -= 1;
        }
        Some(kind)
    }

    /// Cancels the deadline and retry timers of a connect that has ended.
    fn drop_connect_timers(&mut self, op: &ConnectOp) {
        self.remove_timer(op.deadline);
        if let Some((_, retry)) = op.retry {
            self.remove_timer(retry);
        }
    }

    /// Handles every timer due at `now`.
    fn fire_timers(&mut self, now: Instant) {
        while let Some((&(at, id), _)) = self.timers.first_key_value() {
            if at > now {
                return;
            }
            let Some(kind) = self.remove_timer(id) else {
                return;
            };
            match kind {
                TimerKind::User(token) => self.ready.push_back(Event::Timer { token }),
                TimerKind::ConnectDeadline(h) => {
                    if let Some(op) = self.fds.get_mut(h).and_then(|e| e.connect.take()) {
                        self.drop_connect_timers(&op);
                        self.ready.push_back(Event::Connected {
                            token: op.token,
                            result: Err(ConnectError::TimedOut),
                        });
                    }
                }
                TimerKind::ConnectRetry(h) => self.retry_connect(h),
            }
        }
    }

    // ---- connect ----

    /// Starts (or restarts) a connect on `h`'s socket. Reports the outcome if it is known at
    /// once; otherwise leaves the connect waiting for writability or for a retry.
    fn start_connect(&mut self, h: Handle, addr: &SockAddr) {
        let Some(e) = self.fds.get(h) else {
            return;
        };
        let outcome = SockRef::from(&e.fd).connect(addr);
        let errno = outcome.as_ref().err().map(sys::errno_of);
        match errno {
            None => {
                // Readiness seen so far described the unconnected socket (which polls as hung
                // up); the next epoll_wait reports the connected one afresh.
                if let Some(e) = self.fds.get_mut(h) {
                    e.hangup = false;
                }
                self.finish_connect(h, Ok(()));
            }
            Some(Errno(libc::EINPROGRESS)) => {
                // Only an edge after this point means the connect finished.
                if let Some(e) = self.fds.get_mut(h) {
                    e.writable = false;
                    e.hangup = false;
                    if let Some(op) = e.connect.as_mut() {
                        op.retry = None;
                    }
                }
            }
            // A Unix listener's backlog is full: a blocking connect would wait, so try again.
            Some(Errno(libc::EAGAIN)) => {
                let deadline = self
                    .fds
                    .get(h)
                    .and_then(|e| e.connect.as_ref())
                    .and_then(|op| self.timer_at.get(&op.deadline).copied());
                let Some(deadline) = deadline else {
                    return;
                };
                let at = (Instant::now() + CONNECT_RETRY).min(deadline);
                let id = self.add_timer(at, TimerKind::ConnectRetry(h));
                if let Some(op) = self.fds.get_mut(h).and_then(|e| e.connect.as_mut()) {
                    op.retry = Some((Box::new(addr.clone()), id));
                }
            }
            Some(e) => self.finish_connect(h, Err(ConnectError::Os(e))),
        }
    }

    fn retry_connect(&mut self, h: Handle) {
        let addr = self
            .fds
            .get_mut(h)
            .and_then(|e| e.connect.as_mut())
            .and_then(|op| op.retry.take())
            .map(|(addr, _)| addr);
        if let Some(addr) = addr {
            self.start_connect(h, &addr);
        }
    }

    /// Reports the connect on `h` as finished and cancels its timers.
    fn finish_connect(&mut self, h: Handle, result: Result<(), ConnectError>) {
        let Some(op) = self.fds.get_mut(h).and_then(|e| e.connect.take()) else {
            return;
        };
        self.drop_connect_timers(&op);
        if result.is_ok() {
            if let Some(e) = self.fds.get_mut(h) {
                e.writable = true;
                e.readable = true;
            }
            self.queue(h);
        }
        self.ready.push_back(Event::Connected {
            token: op.token,
            result,
        });
    }

    // ---- running operations ----

    /// Runs every queued socket's operations once.
    fn run_dirty(&mut self) {
        let list = std::mem::take(&mut self.dirty);
        for &h in &list {
            if let Some(e) = self.fds.get_mut(h) {
                e.queued = false;
            }
        }
        for h in list {
            self.drive(h);
        }
    }

    fn drive(&mut self, h: Handle) {
        let Some(e) = self.fds.get(h) else {
            return;
        };
        if e.closing.is_some() {
            return;
        }
        if let Some(err) = e.broken {
            self.fail_all(h, err);
            return;
        }
        if let Some(op) = &e.connect {
            if op.retry.is_some() || !e.writable {
                return;
            }
            let result = match sys::take_socket_error(e.fd.as_fd()) {
                Ok(None) => Ok(()),
                Ok(Some(err)) | Err(err) => Err(ConnectError::Os(err)),
            };
            self.finish_connect(h, result);
            return;
        }
        self.run_accept(h);
        self.run_recv(h);
        self.run_sends(h);
    }

    /// Fails every pending operation of a socket that could not be registered.
    fn fail_all(&mut self, h: Handle, error: Errno) {
        let Some(e) = self.fds.get_mut(h) else {
            return;
        };
        let accept = e.accept.take();
        let connect = e.connect.take();
        let recv = e.recv.take();
        let sends: Vec<SendOp> = e.sends.drain(..).collect();
        let shutdowns = std::mem::take(&mut e.shutdowns);
        if let Some(token) = accept {
            self.ready.push_back(Event::AcceptFailed {
                token,
                error,
                armed: false,
            });
        }
        if let Some(op) = connect {
            self.drop_connect_timers(&op);
            self.ready.push_back(Event::Connected {
                token: op.token,
                result: Err(ConnectError::Os(error)),
            });
        }
        if let Some(token) = recv {
            self.ready.push_back(Event::RecvFailed { token, error });
        }
        for op in sends {
            self.ready.push_back(Event::Sent {
                token: op.token,
                buf: op.buf,
                result: Err(error),
            });
        }
        for token in shutdowns {
            self.ready.push_back(Event::ShutdownDone {
                token,
                result: Err(error),
            });
        }
    }

    /// The token of the operation `pick` selects on `h`, and the descriptor, if the socket is
    /// marked readable.
    fn readable_op(
        &self,
        h: Handle,
        pick: impl Fn(&FdEntry) -> Option<Token>,
    ) -> Option<(Token, RawFd)> {
        let e = self.fds.get(h)?;
        if !e.readable {
            return None;
        }
        Some((pick(e)?, e.fd.as_raw_fd()))
    }

    fn mark_unreadable(&mut self, h: Handle) {
        if let Some(e) = self.fds.get_mut(h) {
            e.readable = false;
        }
    }

    fn run_accept(&mut self, h: Handle) {
        // One pass per connection this call may still accept, and one to see `EAGAIN`.
        for _ in 0..=ACCEPT_BATCH {
            let turn = self.turn;
            let used = match self.fds.get(h) {
                Some(e) if e.accepted.0 == turn => e.accepted.1,
                _ => 0,
            };
            if used >= ACCEPT_BATCH {
                break;
            }
            let Some((token, fd)) = self.readable_op(h, |e| e.accept) else {
                return;
            };
            // SAFETY: null address pointers are allowed (the peer address is not wanted); `fd`
            // is open because the entry owns it.
            let r = unsafe {
                libc::accept4(
                    fd,
                    std::ptr::null_mut(),
                    std::ptr::null_mut(),
                    libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                )
            };
            if r >= 0 {
                // SAFETY: a successful accept4 returns a new descriptor that nothing else owns.
                let conn_fd = unsafe { OwnedFd::from_raw_fd(r) };
                if let Some(e) = self.fds.get_mut(h) {
                    e.accepted = (turn, used + 1);
                }
                let conn = self.insert(conn_fd, true);
                self.ready.push_back(Event::Accepted { token, conn });
                continue;
            }
            let err = last_errno();
            match err.0 {
                libc::EAGAIN => {
                    self.mark_unreadable(h);
                    return;
                }
                libc::EINTR => {}
                _ => {
                    // Like the io_uring backend's accept, any error ends the accept. The listener
                    // stays marked readable: the connection is still in the backlog.
                    if let Some(e) = self.fds.get_mut(h) {
                        e.accept = None;
                    }
                    self.ready.push_back(Event::AcceptFailed {
                        token,
                        error: err,
                        armed: false,
                    });
                    return;
                }
            }
        }
        // This call's batch is used up and the backlog may hold more: carry on next turn.
        self.queue(h);
    }

    /// Gives one starved receive a chance after a buffer became free.
    fn wake_starved(&mut self) {
        while let Some(h) = self.starved.pop_front() {
            if let Some(e) = self.fds.get_mut(h) {
                e.starved = false;
                if e.recv.is_some() && e.closing.is_none() {
                    self.queue(h);
                    return;
                }
            }
        }
    }

    fn run_recv(&mut self, h: Handle) {
        for _ in 0..EINTR_RETRIES {
            let Some((token, fd)) = self.readable_op(h, |e| e.recv) else {
                return;
            };
            if self.recv_budget == 0 {
                // This turn's receives are used up: try again next turn.
                self.queue(h);
                return;
            }
            let Some(id) = self.pool.free.pop() else {
                if let Some(e) = self.fds.get_mut(h)
                    && !e.starved
                {
                    e.starved = true;
                    self.starved.push_back(h);
                }
                return;
            };
            let slot = self.pool.slot(id);
            // SAFETY: `slot` is a writable buffer of `slot.len()` bytes that nothing else
            // references while the call runs; `fd` is open because the entry owns it.
            let r = unsafe { libc::recv(fd, slot.as_mut_ptr().cast(), slot.len(), 0) };
            let err = (r < 0).then(last_errno);
            let event = match r {
                1.. => {
                    // A short read drained the socket: new data brings a new edge, so skip
                    // the receive that would only return EAGAIN (unless the peer hung up,
                    // whose EOF may already be pending without another edge).
                    if (r as usize) < self.pool.size
                        && let Some(e) = self.fds.get_mut(h)
                        && !e.hangup
                    {
                        e.readable = false;
                    }
                    self.pool.lent[usize::from(id)] = true;
                    Event::Received {
                        token,
                        buf: RecvBuf { id, len: r as u32 },
                    }
                }
                0 => Event::Eof { token },
                _ => {
                    let err = err.unwrap_or(Errno(libc::EIO));
                    match err.0 {
                        libc::EAGAIN | libc::EINTR => {
                            self.pool.free.push(id);
                            if err.0 == libc::EINTR {
                                continue;
                            }
                            self.mark_unreadable(h);
                            // The buffer was free all along; a starved receive may use it.
                            self.wake_starved();
                            return;
                        }
                        _ => Event::RecvFailed { token, error: err },
                    }
                }
            };
            if r <= 0 {
                self.pool.free.push(id);
                self.wake_starved();
            } else {
                self.recv_budget -= 1;
            }
            if let Some(e) = self.fds.get_mut(h) {
                e.recv = None;
            }
            self.ready.push_back(event);
            return;
        }
        // Interrupted over and over: try again next turn.
        self.queue(h);
    }

    fn run_sends(&mut self, h: Handle) {
        let mut interrupts = 0;
        loop {
            let Some(e) = self.fds.get_mut(h) else {
                return;
            };
            let fd = e.fd.as_raw_fd();
            let Some(op) = e.sends.front_mut() else {
                break;
            };
            if !e.writable {
                return;
            }
            let rest = &op.buf[op.off..];
            // SAFETY: `rest` is a readable buffer of `rest.len()` bytes owned by the send
            // record; `fd` is open because the entry owns it.
            let r = unsafe { libc::send(fd, rest.as_ptr().cast(), rest.len(), libc::MSG_NOSIGNAL) };
            let result = match r {
                1.. => {
                    op.off += r as usize;
                    if op.off < op.buf.len() {
                        continue;
                    }
                    Ok(())
                }
                // A stream socket never accepts zero bytes of a non-empty send.
                0 => Err(Errno(libc::EPIPE)),
                _ => {
                    let err = last_errno();
                    match err.0 {
                        libc::EAGAIN => {
                            e.writable = false;
                            return;
                        }
                        libc::EINTR if interrupts < EINTR_RETRIES => {
                            interrupts += 1;
                            continue;
                        }
                        libc::EINTR => {
                            self.queue(h);
                            return;
                        }
                        _ => Err(err),
                    }
                }
            };
            if let Some(op) = e.sends.pop_front() {
                self.ready.push_back(Event::Sent {
                    token: op.token,
                    buf: op.buf,
                    result,
                });
            }
        }
        // Every send has finished: shutdowns requested after them can run now.
        let Some(e) = self.fds.get_mut(h) else {
            return;
        };
        if e.shutdowns.is_empty() {
            return;
        }
        let tokens = std::mem::take(&mut e.shutdowns);
        let fd = e.fd.as_fd();
        let done: Vec<Event> = tokens
            .into_iter()
            .map(|token| Event::ShutdownDone {
                token,
                result: sys::shutdown_write(fd),
            })
            .collect();
        self.ready.extend(done);
    }

    /// Closes the descriptors whose `close` was called and reports them.
    fn finish_closes(&mut self) {
        for h in std::mem::take(&mut self.to_close) {
            let Some(entry) = self.fds.remove(h) else {
                continue;
            };
            let token = entry.closing.unwrap_or(0);
            // Closing the descriptor also removes it from the epoll set.
            drop(entry);
            self.ready.push_back(Event::Closed { token });
        }
    }

    /// Applies readiness reported by the kernel.
    fn apply(&mut self, n: usize) {
        for i in 0..n {
            let ev = self.events[i];
            let (bits, data) = (ev.events, ev.u64);
            let h = Handle {
                index: (data & 0xffff_ffff) as u32,
                generation: (data >> 32) as u32,
            };
            let Some(e) = self.fds.get_mut(h) else {
                continue;
            };
            let failed = bits & (libc::EPOLLERR | libc::EPOLLHUP) as u32 != 0;
            if failed || bits & libc::EPOLLRDHUP as u32 != 0 {
                e.hangup = true;
            }
            if failed || bits & (libc::EPOLLIN | libc::EPOLLRDHUP) as u32 != 0 {
                e.readable = true;
            }
            if failed || bits & libc::EPOLLOUT as u32 != 0 {
                e.writable = true;
            }
            self.queue(h);
        }
    }
}

impl Driver for Epoll {
    fn adopt(&mut self, fd: OwnedFd) -> Handle {
        self.insert(fd, false)
    }

    fn fd(&self, handle: Handle) -> Option<BorrowedFd<'_>> {
        let e = self.fds.get(handle)?;
        if e.closing.is_some() {
            return None;
        }
        Some(e.fd.as_fd())
    }

    fn accept(&mut self, listener: Handle, token: Token) -> Result<(), SubmitError> {
        self.usable(listener)?.accept = Some(token);
        self.queue(listener);
        Ok(())
    }

    fn cancel_accept(&mut self, listener: Handle) {
        let Ok(e) = self.usable(listener) else {
            return;
        };
        if let Some(token) = e.accept.take() {
            self.ready.push_back(Event::AcceptFailed {
                token,
                error: Errno(libc::ECANCELED),
                armed: false,
            });
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
        SockRef::from(&sock)
            .set_nonblocking(true)
            .map_err(|e| SubmitError::Socket(sys::errno_of(&e)))?;
        let h = self.insert(sock, true);
        let deadline = self.add_timer(Instant::now() + timeout, TimerKind::ConnectDeadline(h));
        let Some(e) = self.fds.get_mut(h) else {
            return Err(SubmitError::StaleHandle);
        };
        // Writability now means the connect finished; only an edge from the kernel says so.
        e.readable = false;
        e.writable = false;
        e.connect = Some(ConnectOp {
            token,
            deadline,
            retry: None,
        });
        if let Some(err) = e.broken {
            self.finish_connect(h, Err(ConnectError::Os(err)));
        } else {
            self.start_connect(h, addr);
        }
        Ok(h)
    }

    fn recv(&mut self, handle: Handle, token: Token) -> Result<(), SubmitError> {
        let e = self.usable(handle)?;
        if e.recv.is_some() {
            return Err(SubmitError::RecvPending);
        }
        e.recv = Some(token);
        self.queue(handle);
        Ok(())
    }

    fn data(&self, buf: &RecvBuf) -> &[u8] {
        self.pool.data(buf)
    }

    fn recycle(&mut self, buf: RecvBuf) {
        if self.pool.recycle(buf.id) {
            self.wake_starved();
        }
    }

    fn send(&mut self, handle: Handle, buf: Vec<u8>, token: Token) -> Result<(), SubmitError> {
        let e = self.usable(handle)?;
        if buf.is_empty() {
            return Err(SubmitError::EmptySend);
        }
        e.sends.push_back(SendOp { token, buf, off: 0 });
        self.queue(handle);
        Ok(())
    }

    fn shutdown_write(&mut self, handle: Handle, token: Token) -> Result<(), SubmitError> {
        self.usable(handle)?.shutdowns.push(token);
        self.queue(handle);
        Ok(())
    }

    fn close(&mut self, handle: Handle, token: Token) -> Result<(), SubmitError> {
        let e = self.usable(handle)?;
        e.closing = Some(token);
        // Pending operations end silently; their buffers are dropped here.
        e.accept = None;
        e.recv = None;
        e.sends.clear();
        e.shutdowns.clear();
        if let Some(op) = e.connect.take() {
            self.drop_connect_timers(&op);
        }
        self.to_close.push(handle);
        Ok(())
    }

    fn timer(&mut self, after: Duration, token: Token) -> TimerId {
        TimerId(self.add_timer(Instant::now() + after, TimerKind::User(token)))
    }

    fn cancel_timer(&mut self, id: TimerId) {
        // Only user timers can be named by a TimerId; connect timers are internal.
        let user = self
            .timer_at
            .get(&id.0)
            .is_some_and(|&at| matches!(self.timers.get(&(at, id.0)), Some(TimerKind::User(_))));
        if user {
            self.remove_timer(id.0);
        }
    }

    fn wait(
        &mut self,
        events: &mut Vec<Event>,
        timeout: Option<Duration>,
    ) -> Result<usize, WaitError> {
        let deadline = timeout.map(|t| Instant::now() + t);
        self.recv_budget = RECV_BATCH;
        self.turn += 1;
        loop {
            self.finish_closes();
            self.run_dirty();
            let now = Instant::now();
            let wake = match (deadline, self.timers.first_key_value()) {
                (Some(d), Some((&(t, _), _))) => Some(d.min(t)),
                (d, t) => d.or(t.map(|(&(t, _), _)| t)),
            };
            let ms = if !self.ready.is_empty() || !self.dirty.is_empty() {
                0
            } else {
                wake.map_or(-1, |at| ms_until(at, now))
            };
            let max = i32::try_from(self.events.len()).unwrap_or(i32::MAX);
            // SAFETY: `events` is a buffer of `max` initialised epoll_event values that the
            // kernel may overwrite; the epoll descriptor is open.
            let r = unsafe {
                libc::epoll_wait(self.epfd.as_raw_fd(), self.events.as_mut_ptr(), max, ms)
            };
            let mut interrupted = false;
            if r < 0 {
                let err = last_errno();
                if err.0 != libc::EINTR {
                    return Err(WaitError::Enter(err));
                }
                interrupted = true;
            } else {
                self.apply(r as usize);
            }
            self.fire_timers(Instant::now());
            self.run_dirty();
            let n = self.ready.len();
            if n > 0 {
                events.extend(self.ready.drain(..));
                return Ok(n);
            }
            if interrupted || deadline.is_some_and(|d| Instant::now() >= d) {
                return Ok(0);
            }
        }
    }
}
