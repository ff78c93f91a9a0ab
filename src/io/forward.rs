//! A plaintext forwarder on the [`Driver`] interface: the shape of the relay without the
//! protocol, used to test the io layer end to end.
//!
//! Per connection (spec §2 "EOF / shutdown" and §4 "Teardown"):
//! - accept on the listener, then connect to the target with a deadline;
//! - two independent one-way pumps: receive into a pool buffer, copy it out, recycle it, send
//!   the copy to the other socket, and receive again only after the send has completed
//!   (spiped's backpressure);
//! - EOF on one socket becomes `shutdown(SHUT_WR)` on the other; both sockets are closed once
//!   both directions have ended, or at once on any error;
//! - accept errors never stop the loop: after an error that disarms the accept (such as
//!   `EMFILE`) it is re-armed after a back-off timer.

use std::fmt;
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use super::{Driver, Event, Handle, SockAddr, SubmitError, Token, WaitError, sys};
use crate::relay::slots::{Slots, split_raw};

/// Settings for a [`Forwarder`].
#[derive(Clone, Debug)]
pub struct ForwardConfig {
    /// Where each accepted connection is forwarded to (TCP or Unix).
    pub target: SockAddr,
    /// How long a connect to the target may take.
    pub connect_timeout: Duration,
    /// How long to wait before re-arming an accept that stopped with an error.
    pub accept_backoff: Duration,
}

/// Counters describing what a [`Forwarder`] has done so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ForwardStats {
    /// Connections accepted.
    pub accepted: u64,
    /// Accept errors reported by the driver.
    pub accept_errors: u64,
    /// Accept errors that were descriptor or memory exhaustion (`EMFILE`, `ENFILE`, ...).
    pub accept_exhaustion: u64,
    /// Connections dropped because the target connect failed, timed out or had no socket.
    pub connect_failures: u64,
    /// Connections closed after both directions ended cleanly.
    pub clean_closes: u64,
    /// Connections closed because of an error.
    pub error_closes: u64,
    /// Connections currently open or closing.
    pub active: usize,
}

/// Why a [`Forwarder`] could not start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ForwardError {
    /// Arming the accept on the listener failed.
    Accept(SubmitError),
}

impl fmt::Display for ForwardError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ForwardError::Accept(e) => write!(f, "cannot start accepting connections: {e}"),
        }
    }
}

impl std::error::Error for ForwardError {}

const CLIENT: usize = 0;
const TARGET: usize = 1;

// Token layout: bits 0..8 tag, 8..32 generation, 32..64 connection slot.
const TAG_ACCEPT: u64 = 1;
const TAG_BACKOFF: u64 = 2;
const TAG_CONNECT: u64 = 3;
/// Plus the side (0 = client, 1 = target) the operation runs on.
const TAG_RECV: u64 = 4;
const TAG_SEND: u64 = 6;
const TAG_SHUT: u64 = 8;
const TAG_CLOSE: u64 = 10;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Dir {
    /// A receive is pending on the source side.
    Reading,
    /// A send is pending on the destination side.
    Writing,
    /// EOF seen; the shutdown of the destination is pending.
    ShuttingDown,
    /// This direction has ended.
    Done,
}

struct Conn {
    sock: [Option<Handle>; 2],
    /// Direction `d` reads side `d` and writes side `1 - d`.
    dir: [Dir; 2],
    /// Close operations still outstanding; `Some` once teardown started.
    closing: Option<u8>,
}

/// A plaintext TCP/Unix forwarder driving one [`Driver`].
pub struct Forwarder<D: Driver> {
    io: D,
    listener: Handle,
    cfg: ForwardConfig,
    conns: Slots<Conn>,
    stats: ForwardStats,
    events: Vec<Event>,
    spare: Vec<Vec<u8>>,
}

impl<D: Driver> fmt::Debug for Forwarder<D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Forwarder")
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl<D: Driver> Forwarder<D> {
    /// Takes ownership of a listening socket and starts accepting on it.
    pub fn new(mut io: D, listener: OwnedFd, cfg: ForwardConfig) -> Result<Self, ForwardError> {
        let listener = io.adopt(listener);
        io.accept(listener, TAG_ACCEPT)
            .map_err(ForwardError::Accept)?;
        Ok(Forwarder {
            io,
            listener,
            cfg,
            conns: Slots::new(),
            stats: ForwardStats::default(),
            events: Vec::new(),
            spare: Vec::new(),
        })
    }

    /// What the forwarder has done so far.
    pub fn stats(&self) -> ForwardStats {
        self.stats
    }

    /// The driver, e.g. to inspect its bookkeeping in tests.
    pub fn driver(&self) -> &D {
        &self.io
    }

    /// Waits up to `timeout` for events and handles them. An error is fatal for the loop.
    pub fn turn(&mut self, timeout: Duration) -> Result<(), WaitError> {
        let mut events = std::mem::take(&mut self.events);
        self.io.wait(&mut events, Some(timeout))?;
        for ev in events.drain(..) {
            self.handle(ev);
        }
        self.events = events;
        Ok(())
    }

    /// Runs [`Forwarder::turn`] in 50 ms steps until `stop` is set.
    pub fn run_until(&mut self, stop: &AtomicBool) -> Result<(), WaitError> {
        while !stop.load(Ordering::Relaxed) {
            self.turn(Duration::from_millis(50))?;
        }
        Ok(())
    }

    fn handle(&mut self, ev: Event) {
        let (slot, generation, tag) = split_raw(ev.token());
        match ev {
            Event::Accepted { conn, .. } => self.on_accept(conn),
            Event::AcceptFailed { error, armed, .. } => {
                self.stats.accept_errors += 1;
                if error.is_resource_exhaustion() {
                    self.stats.accept_exhaustion += 1;
                }
                if !armed {
                    self.io.timer(self.cfg.accept_backoff, TAG_BACKOFF);
                }
            }
            Event::Timer { .. } if tag == TAG_BACKOFF => {
                if self.io.accept(self.listener, TAG_ACCEPT).is_err() {
                    self.io.timer(self.cfg.accept_backoff, TAG_BACKOFF);
                }
            }
            Event::Timer { .. } => {}
            Event::Connected { result, .. } => {
                if !self.live(slot, generation) {
                    return;
                }
                match result {
                    Ok(()) => self.start_pumps(slot),
                    Err(_) => {
                        self.stats.connect_failures += 1;
                        self.teardown(slot, false);
                    }
                }
            }
            Event::Received { buf, .. } => {
                let mut out = self.spare.pop().unwrap_or_default();
                out.clear();
                out.extend_from_slice(self.io.data(&buf));
                self.io.recycle(buf);
                if !self.live(slot, generation) {
                    return;
                }
                let side = (tag - TAG_RECV) as usize;
                self.forward(slot, side, out);
            }
            Event::Eof { .. } => {
                if self.live(slot, generation) {
                    self.on_eof(slot, (tag - TAG_RECV) as usize);
                }
            }
            Event::RecvFailed { .. } => {
                if self.live(slot, generation) {
                    self.teardown(slot, false);
                }
            }
            Event::Sent { buf, result, .. } => {
                self.spare.push(buf);
                if !self.live(slot, generation) {
                    return;
                }
                let dir = 1 - (tag - TAG_SEND) as usize;
                match result {
                    Ok(()) => self.read(slot, dir),
                    Err(_) => self.teardown(slot, false),
                }
            }
            Event::ShutdownDone { .. } => {
                if self.live(slot, generation) {
                    let dir = 1 - (tag - TAG_SHUT) as usize;
                    self.set_dir(slot, dir, Dir::Done);
                    if self.both_done(slot) {
                        self.teardown(slot, true);
                    }
                }
            }
            Event::Closed { .. } => self.on_closed(slot, generation),
        }
    }

    fn conn(&mut self, slot: u32) -> Option<&mut Conn> {
        self.conns.get_mut(slot)
    }

    /// True if `slot` holds the connection of that generation and it is not being torn down.
    fn live(&self, slot: u32, generation: u32) -> bool {
        self.conns.is_current(slot, generation)
            && self.conns.get(slot).is_some_and(|c| c.closing.is_none())
    }

    fn tok(&self, slot: u32, tag: u64) -> Token {
        self.conns.raw_token(slot, tag)
    }

    fn on_accept(&mut self, client: Handle) {
        self.stats.accepted += 1;
        let slot = self.conns.insert(Conn {
            sock: [Some(client), None],
            dir: [Dir::Reading; 2],
            closing: None,
        });
        self.stats.active += 1;
        let t = self.tok(slot, TAG_CONNECT);
        let target = self.cfg.target.clone();
        match self.io.connect(&target, self.cfg.connect_timeout, t) {
            Ok(h) => {
                if let Some(c) = self.conn(slot) {
                    c.sock[TARGET] = Some(h);
                }
            }
            Err(_) => {
                self.stats.connect_failures += 1;
                self.teardown(slot, false);
            }
        }
    }

    fn start_pumps(&mut self, slot: u32) {
        let Some(c) = self.conn(slot) else {
            return;
        };
        let socks = c.sock;
        for h in socks.into_iter().flatten() {
            if let Some(fd) = self.io.fd(h) {
                // Errors are expected on Unix sockets and harmless, as in spiped (§4).
                let _ = sys::set_nodelay(fd, true);
                let _ = sys::set_keepalive(fd, true);
            }
        }
        self.read(slot, CLIENT);
        self.read(slot, TARGET);
    }

    fn set_dir(&mut self, slot: u32, dir: usize, state: Dir) {
        if let Some(c) = self.conn(slot) {
            c.dir[dir] = state;
        }
    }

    fn both_done(&mut self, slot: u32) -> bool {
        self.conn(slot)
            .is_some_and(|c| c.dir.iter().all(|d| *d == Dir::Done))
    }

    /// Receives on side `dir` (direction `dir`'s source).
    fn read(&mut self, slot: u32, dir: usize) {
        let Some(h) = self.conn(slot).and_then(|c| c.sock[dir]) else {
            return;
        };
        self.set_dir(slot, dir, Dir::Reading);
        let t = self.tok(slot, TAG_RECV + dir as u64);
        if self.io.recv(h, t).is_err() {
            self.teardown(slot, false);
        }
    }

    /// Sends bytes read from side `side` to the other side.
    fn forward(&mut self, slot: u32, side: usize, out: Vec<u8>) {
        let dst = 1 - side;
        let Some(h) = self.conn(slot).and_then(|c| c.sock[dst]) else {
            return;
        };
        self.set_dir(slot, side, Dir::Writing);
        let t = self.tok(slot, TAG_SEND + dst as u64);
        if self.io.send(h, out, t).is_err() {
            self.teardown(slot, false);
        }
    }

    fn on_eof(&mut self, slot: u32, side: usize) {
        let dst = 1 - side;
        let Some(h) = self.conn(slot).and_then(|c| c.sock[dst]) else {
            return;
        };
        self.set_dir(slot, side, Dir::ShuttingDown);
        let t = self.tok(slot, TAG_SHUT + dst as u64);
        if self.io.shutdown_write(h, t).is_err() {
            self.teardown(slot, false);
        }
    }

    /// Closes both sockets of `slot`. The driver defers each close until nothing is in flight
    /// on that socket.
    fn teardown(&mut self, slot: u32, clean: bool) {
        let Some(c) = self.conn(slot) else {
            return;
        };
        if c.closing.is_some() {
            return;
        }
        let socks = c.sock;
        c.closing = Some(0);
        if clean {
            self.stats.clean_closes += 1;
        } else {
            self.stats.error_closes += 1;
        }
        let mut outstanding = 0u8;
        for (side, h) in socks.iter().enumerate() {
            if let Some(h) = h {
                let t = self.tok(slot, TAG_CLOSE + side as u64);
                if self.io.close(*h, t).is_ok() {
                    outstanding += 1;
                }
            }
        }
        if let Some(c) = self.conn(slot) {
            c.closing = Some(outstanding);
        }
        if outstanding == 0 {
            self.release(slot);
        }
    }

    fn on_closed(&mut self, slot: u32, generation: u32) {
        if !self.conns.is_current(slot, generation) {
            return;
        }
        let Some(c) = self.conn(slot) else {
            return;
        };
        let left = c.closing.unwrap_or(1).saturating_sub(1);
        c.closing = Some(left);
        if left == 0 {
            self.release(slot);
        }
    }

    fn release(&mut self, slot: u32) {
        if self.conns.remove(slot).is_some() {
            self.stats.active -= 1;
        }
    }
}
