//! The daemon's signals: `SIGTERM`, `SIGINT` and `SIGHUP` are counted by async-signal-safe
//! handlers and read by the event loop after each wait; `SIGPIPE` is ignored.

#![allow(unsafe_code)]

use std::sync::atomic::AtomicUsize;
use std::sync::atomic::Ordering::Relaxed;

use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, Signal, sigaction};

use super::errno;
use crate::io::Errno;

/// The signals the daemon reacts to, in the order [`SignalCounts`] lists them.
const COUNTED: [Signal; 3] = [Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP];

/// Signals the daemon reacts to, counted by async-signal-safe handlers.
///
/// [`install_signal_handlers`] points `SIGTERM`, `SIGINT` and `SIGHUP` at handlers that only
/// increment these counters, and ignores `SIGPIPE`. An event loop reads them after each wait:
/// a signal interrupts a blocking io_uring or epoll wait with `EINTR`, so the loop sees it
/// promptly.
#[derive(Debug)]
pub struct SignalCounts {
    /// `SIGTERM`s received so far.
    pub term: AtomicUsize,
    /// `SIGINT`s received so far.
    pub int: AtomicUsize,
    /// `SIGHUP`s received so far.
    pub hup: AtomicUsize,
}

static SIGNALS: SignalCounts = SignalCounts {
    term: AtomicUsize::new(0),
    int: AtomicUsize::new(0),
    hup: AtomicUsize::new(0),
};

extern "C" fn count_signal(sig: libc::c_int) {
    let counter = match sig {
        libc::SIGTERM => &SIGNALS.term,
        libc::SIGINT => &SIGNALS.int,
        _ => &SIGNALS.hup,
    };
    counter.fetch_add(1, Relaxed);
}

/// Installs the counting handlers described at [`SignalCounts`] (without `SA_RESTART`, so a
/// blocking wait returns `EINTR`) and sets `SIGPIPE` to be ignored. Returns the process-wide
/// counters.
///
/// # Errors
/// The `sigaction(2)` error (not expected for these signals).
pub fn install_signal_handlers() -> Result<&'static SignalCounts, Errno> {
    let counting = SigAction::new(
        SigHandler::Handler(count_signal),
        SaFlags::empty(),
        SigSet::empty(),
    );
    let ignore = SigAction::new(SigHandler::SigIgn, SaFlags::empty(), SigSet::empty());
    for (sig, action) in COUNTED
        .iter()
        .map(|s| (*s, &counting))
        .chain([(Signal::SIGPIPE, &ignore)])
    {
        // SAFETY: `count_signal` only increments atomics, which is async-signal-safe, and
        // ignoring SIGPIPE has no preconditions; `nix` marks every handler install unsafe
        // because an arbitrary handler could break those rules.
        unsafe { sigaction(sig, action) }.map_err(errno)?;
    }
    Ok(&SIGNALS)
}

/// Blocks `SIGTERM`, `SIGINT` and `SIGHUP` in the calling thread, so that they are delivered
/// to the event-loop thread, whose wait they interrupt. For helper threads.
///
/// # Errors
/// The `pthread_sigmask(3)` error (not expected).
pub fn block_daemon_signals_in_thread() -> Result<(), Errno> {
    let mut set = SigSet::empty();
    for sig in COUNTED {
        set.add(sig);
    }
    set.thread_block().map_err(errno)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocking_in_a_thread_leaves_other_threads_alone() {
        std::thread::spawn(|| {
            block_daemon_signals_in_thread().expect("block");
            let mask = SigSet::thread_get_mask().expect("mask");
            assert!(COUNTED.iter().all(|s| mask.contains(*s)));
        })
        .join()
        .expect("thread");
        let mask = SigSet::thread_get_mask().expect("mask");
        assert!(!mask.contains(Signal::SIGHUP));
    }
}
