//! The event-loop threads: each owns one io driver and one [`Relay`] carrying its share of
//! every pipe, takes pipe changes from the supervisor ([`LoopCmd`]) between turns, publishes
//! its status to the metrics board, and drains on `SIGTERM`.
//!
//! When a loop's last connection closes after a burst ([`RELEASE_AFTER_PEAK`] open at once),
//! it gives memory back: its spare buffers, the io_uring receive pool's pages, the allocator's
//! free heap (at most every [`RELEASE_EVERY`]).
//!
//! A loop reads signals itself (the counts are process-wide): on the first `SIGTERM` it stops
//! accepting at once and exits when its last connection has ended, or when the supervisor
//! says the shutdown timeout has passed ([`Common::cut`]); on `SIGINT`, a second `SIGTERM`, or
//! another loop's failure it exits at once.

use std::collections::HashMap;
use std::os::fd::OwnedFd;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use crate::io::any::AnyDriver;
use crate::os::memory;
use crate::os::signals::SignalCounts;

use super::super::daemon::RunError;
use super::super::engine::{PipeConfig, PipeId, Relay};
use super::super::metrics::Board;

/// How long a loop waits for io at most before it looks at signals and commands: the latency
/// of a pipe change or a `SIGTERM` in a loop with nothing to do.
pub(super) const TICK: Duration = Duration::from_millis(250);

/// A loop gives memory back ([`Relay::release_idle_memory`], [`memory::release_free_heap`])
/// when its last connection closes after it had at least this many open at once...
pub(super) const RELEASE_AFTER_PEAK: usize = 64;

/// ...and at most this often.
pub(super) const RELEASE_EVERY: Duration = Duration::from_secs(10);

/// A change of the pipes a loop carries, from the supervisor. `serial` names the pipe for the
/// process's lifetime (a reload may rename it).
#[derive(Debug)]
pub(super) enum LoopCmd {
    /// Start carrying a pipe on `listener` (this loop's duplicate of its listening socket).
    Add {
        /// The pipe.
        serial: u64,
        /// The listening socket.
        listener: OwnedFd,
        /// The pipe's settings with this loop's share of its limits.
        cfg: PipeConfig,
    },
    /// New settings for new connections of a pipe.
    Update {
        /// The pipe.
        serial: u64,
        /// Its settings.
        cfg: PipeConfig,
    },
    /// Stop accepting for a pipe and close this loop's listener; its connections finish.
    Stop {
        /// The pipe.
        serial: u64,
    },
}

/// What a loop shows the supervisor, updated every turn.
#[derive(Debug, Default)]
pub(super) struct LoopState {
    /// Turns completed: the supervisor sends systemd's watchdog pings only while every
    /// loop's count moves.
    pub heartbeat: AtomicU64,
    /// Connections open in this loop.
    pub active: AtomicUsize,
}

/// What every loop shares.
#[derive(Debug)]
pub(super) struct Common<'a> {
    /// The process's signal counts.
    pub signals: &'a SignalCounts,
    /// Set when a loop failed or `SIGINT` ended the process: every loop exits at once.
    pub failed: AtomicBool,
    /// Set by the supervisor when the drain's deadline (`shutdown_timeout`) has passed: every
    /// loop closes what it still has and exits.
    pub cut: AtomicBool,
    /// Where each loop publishes its status.
    pub board: Arc<Board>,
}

/// A loop's relay with the pipes it carries (their engine ids, by serial).
pub(super) struct Loop {
    relay: Relay<AnyDriver>,
    pipes: HashMap<u64, PipeId>,
}

impl Loop {
    /// A loop over `relay` (with no pipes yet).
    pub(super) fn new(relay: Relay<AnyDriver>) -> Self {
        Self {
            relay,
            pipes: HashMap::new(),
        }
    }

    /// Applies one command. A pipe that cannot be started or changed is reported as the
    /// message to log (naming the pipe); the loop carries on with the others.
    ///
    /// # Errors
    /// The message, when the engine refuses the change.
    pub(super) fn apply(&mut self, cmd: LoopCmd) -> Result<(), String> {
        match cmd {
            LoopCmd::Add {
                serial,
                listener,
                cfg,
            } => {
                let name = Arc::clone(&cfg.name);
                let id = self
                    .relay
                    .add_pipe(listener, cfg)
                    .map_err(|e| format!("pipe {name}: {e}"))?;
                self.pipes.insert(serial, id);
            }
            LoopCmd::Update { serial, cfg } => {
                let Some(&id) = self.pipes.get(&serial) else {
                    return Ok(());
                };
                let name = Arc::clone(&cfg.name);
                self.relay
                    .update_pipe(id, cfg)
                    .map_err(|e| format!("pipe {name}: {e}"))?;
            }
            LoopCmd::Stop { serial } => {
                if let Some(id) = self.pipes.remove(&serial) {
                    let _ = self.relay.stop_pipe(id);
                }
            }
        }
        Ok(())
    }

    /// Turns the relay until a signal, the end of a drain, or another loop's failure ends it,
    /// applying `cmds` between turns and updating `state`.
    ///
    /// # Errors
    /// [`RunError::Wait`] when the driver fails (then every other loop is told to stop).
    pub(super) fn run(
        mut self,
        cmds: &mpsc::Receiver<LoopCmd>,
        state: &LoopState,
        common: &Common<'_>,
    ) -> Result<(), RunError> {
        let result = self.turns(cmds, state, common);
        if result.is_err() {
            common.failed.store(true, Relaxed);
        }
        state.active.store(0, Relaxed);
        result
    }

    fn turns(
        &mut self,
        cmds: &mpsc::Receiver<LoopCmd>,
        state: &LoopState,
        common: &Common<'_>,
    ) -> Result<(), RunError> {
        let mut publisher = common.board.publisher();
        let mut terms_seen = 0;
        let mut drain_started: Option<Instant> = None;
        let mut peak = 0;
        let mut released: Option<Instant> = None;
        loop {
            self.relay.turn(TICK).map_err(RunError::Wait)?;
            state.heartbeat.fetch_add(1, Relaxed);
            if drain_started.is_none() {
                for cmd in cmds.try_iter().take(10_000) {
                    if let Err(e) = self.apply(cmd) {
                        self.relay.log().warn(format_args!("{e}"));
                    }
                }
            }
            let active = self.relay.active();
            state.active.store(active, Relaxed);
            let now = Instant::now();
            peak = peak.max(active);
            if active == 0
                && peak >= RELEASE_AFTER_PEAK
                && drain_started.is_none()
                && released.is_none_or(|at| now.duration_since(at) >= RELEASE_EVERY)
            {
                // A burst has ended: the receive pool's pages, the spare buffers and the
                // allocator's free heap go back to the kernel.
                self.relay.release_idle_memory();
                memory::release_free_heap();
                (peak, released) = (0, Some(now));
            }
            if publisher.due(now) {
                publisher.publish(now, self.relay.metrics_snapshot());
            }
            let signals = common.signals;
            if signals.int.load(Relaxed) > 0
                || common.failed.load(Relaxed)
                || common.cut.load(Relaxed)
            {
                return Ok(());
            }
            let terms = signals.term.load(Relaxed);
            if terms > terms_seen {
                if terms_seen > 0 || terms > 1 || self.relay.active() == 0 {
                    return Ok(());
                }
                terms_seen = terms;
                drain_started = Some(now);
                self.relay.stop_accepting();
            }
            if terms_seen > 0 && self.relay.active() == 0 {
                return Ok(());
            }
        }
    }
}
