//! Preparing background threads (the key-pool worker) so that they never take the daemon's
//! signals and never win a contended core from the event loop.

#![allow(unsafe_code)]

use super::signals::block_daemon_signals_in_thread;

/// Nice value [`make_background_thread`] gives the calling thread (the default is 0).
const BACKGROUND_NICE: libc::c_int = 10;

/// Prepares the calling thread for background work (the key-pool worker): blocks `SIGTERM`,
/// `SIGINT` and `SIGHUP` in it, so they always reach the event-loop thread and interrupt its
/// wait, and lowers its scheduling priority so the event loop wins a contended core. Failures
/// are ignored: the thread then gets those signals or runs at normal priority, which is only
/// slower.
pub fn make_background_thread() {
    // A failure only means this thread may take those signals (see above).
    let _ = block_daemon_signals_in_thread();
    let tid = nix::unistd::gettid().as_raw();
    // `nix` has no `setpriority`. On Linux, PRIO_PROCESS with a thread id sets that thread's
    // nice value only. A failure leaves the normal priority.
    // SAFETY: setpriority takes integer arguments only and touches no memory of ours.
    let _ = unsafe { libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, BACKGROUND_NICE) };
}
