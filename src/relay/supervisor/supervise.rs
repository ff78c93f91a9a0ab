//! The supervisor's loop ([`Supervisor::supervise`]): control requests, signals, reloads,
//! `-r` re-resolution and systemd's notifications, until every event loop has ended; and the
//! reload itself ([`Supervisor::reload`]: re-read, [`plan`](super::plan), prepare, commit).

use std::fmt::Write as _;
use std::os::fd::OwnedFd;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use crate::config::{COMMAND_LINE_PIPE, Config, KeySource, PipeSpec, Settings, SockAddrSpec};
use crate::io::SockAddr;
use crate::os::notify::{self, Notifier};
use crate::proto::key::KeySet;

use super::super::audit::ReopenHandle;
use super::super::check_config;
use super::super::control::{ControlMsg, KeyRegistry};
use super::super::daemon::{self, RunError, StartupError, UnixPathGuard};
use super::super::keyfile;
use super::super::keys::KeyRing;
use super::super::log::{Logger, pipe_prefix as who};
use super::super::metrics::{Board, ring_mode};
use super::ConfigSource;
use super::loops::{Common, LoopCmd, LoopState};
use super::pipe::{Running, apply_socket_options, bind_listener, next_resolve, socket_ids};
use super::plan::{self, Change, Plan};

/// How long the supervisor waits for a control request before it looks at signals, timers
/// and the loops again.
const SUPERVISOR_TICK: Duration = Duration::from_millis(100);

/// The supervisor's state (see the module docs).
pub(super) struct Supervisor {
    pub(super) source: ConfigSource,
    /// The pipes, in configuration order.
    pub(super) running: Vec<Running>,
    pub(super) next_serial: u64,
    /// One command channel per loop.
    pub(super) senders: Vec<mpsc::Sender<LoopCmd>>,
    pub(super) states: Vec<Arc<LoopState>>,
    pub(super) registry: KeyRegistry,
    pub(super) board: Arc<Board>,
    pub(super) notify: Notifier,
    pub(super) log: Logger,
    pub(super) hups_seen: usize,
    /// Asks every loop's audit writer to reopen its file (logrotate), on every reload.
    pub(super) audit_reopen: Option<ReopenHandle>,
    /// How long the drain after `SIGTERM` may last before what is left is cut (`None`:
    /// until the last connection ends); the supervisor keeps this time for every loop.
    pub(super) drain_limit: Option<Duration>,
}

impl Supervisor {
    /// The commands that start every pipe in the loops.
    pub(super) fn start_commands(&mut self) -> Vec<(usize, LoopCmd)> {
        let threads = self.senders.len();
        self.running
            .iter_mut()
            .flat_map(|p| p.commands(threads, false))
            .collect()
    }

    fn send(&self, cmds: Vec<(usize, LoopCmd)>) {
        for (i, cmd) in cmds {
            // A loop that has ended (shutdown) takes no more commands.
            let _ = self.senders[i].send(cmd);
        }
    }

    fn live(&self) -> usize {
        self.states.iter().map(|s| s.active.load(Relaxed)).sum()
    }

    fn notified(&mut self, sent: std::io::Result<()>) {
        if let Err(e) = sent {
            self.log
                .warn(format_args!("cannot notify systemd (NOTIFY_SOCKET): {e}"));
        }
    }

    /// Runs until every loop has ended.
    pub(super) fn supervise(
        &mut self,
        control: &mpsc::Receiver<ControlMsg>,
        common: &Common<'_>,
        loops: &[std::thread::ScopedJoinHandle<'_, Result<(), RunError>>],
    ) {
        let signals = common.signals;
        let pipes = self.running.len();
        let sent = self.notify.ready(&notify::status_text(pipes, 0));
        self.notified(sent);
        let mut beats: Vec<u64> = vec![u64::MAX; self.states.len()];
        let mut terms_seen = 0;
        let mut drain: Option<Instant> = None;
        let mut cut_logged = false;
        loop {
            match control.recv_timeout(SUPERVISOR_TICK) {
                Ok(msg) => self.on_control(msg, drain.is_some()),
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                // No control socket (its sender is gone at once) or its thread has ended:
                // `recv_timeout` now returns at once, so wait out the tick here instead of
                // spinning.
                Err(mpsc::RecvTimeoutError::Disconnected) => std::thread::sleep(SUPERVISOR_TICK),
            }
            for msg in control.try_iter().take(100) {
                self.on_control(msg, drain.is_some());
            }
            // Signals first: a loop with nothing open exits on SIGTERM at once, and systemd
            // must still hear STOPPING=1 before the process ends.
            let finished = loops.iter().all(|h| h.is_finished());
            if signals.int.load(Relaxed) > 0 || common.failed.load(Relaxed) {
                if finished {
                    return;
                }
                continue;
            }
            let terms = signals.term.load(Relaxed);
            if terms > terms_seen {
                if terms_seen == 0 {
                    let live = self.live();
                    let status = format!("stopping: draining {live} connections");
                    let sent = self.notify.stopping(&status);
                    self.notified(sent);
                    // The loops close their descriptors of every listener; this closes ours.
                    for p in &mut self.running {
                        p.listener = None;
                    }
                    drain = Some(Instant::now());
                    if terms == 1 && live > 0 {
                        let limit = self
                            .drain_limit
                            .map(|l| format!(" or in {} s", l.as_secs_f64()))
                            .unwrap_or_default();
                        self.log.always(format_args!(
                            "SIGTERM: no longer accepting; exiting after the last of {live} \
                             open connections{limit} (send SIGTERM again to exit now)"
                        ));
                    }
                }
                terms_seen = terms;
            }
            if let (Some(start), Some(limit), false) = (drain, self.drain_limit, cut_logged)
                && start.elapsed() >= limit
            {
                cut_logged = true;
                let cut = self.live();
                self.log.always(format_args!(
                    "SIGTERM: shutdown timeout of {} s reached; closing the {cut} connections \
                     still open",
                    limit.as_secs_f64()
                ));
                // The loops close what they still have and exit.
                common.cut.store(true, Relaxed);
            }
            if finished {
                return;
            }
            if drain.is_some() {
                continue;
            }
            let hups = signals.hup.load(Relaxed);
            if hups > self.hups_seen {
                self.hups_seen = hups;
                let _ = self.reload_and_report(true);
            }
            self.resolve_due(Instant::now());
            // Watchdog pings only while every loop turns: a stuck loop stops them.
            let now_beats: Vec<u64> = self
                .states
                .iter()
                .map(|s| s.heartbeat.load(Relaxed))
                .collect();
            let finished: Vec<bool> = loops.iter().map(|h| h.is_finished()).collect();
            if all_turned(&now_beats, &beats, &finished) {
                beats = now_beats;
                let (pipes, live) = (self.running.len(), self.live());
                let sent = self
                    .notify
                    .tick(Instant::now(), || notify::status_text(pipes, live));
                self.notified(sent);
            }
        }
    }

    fn on_control(&mut self, msg: ControlMsg, draining: bool) {
        match msg {
            ControlMsg::Log(line) => self.log.always(format_args!("{line}")),
            ControlMsg::Reload(reply) => {
                let outcome = if draining {
                    Err("the daemon is shutting down".to_owned())
                } else {
                    self.reload_and_report(false)
                };
                let _ = reply.send(outcome);
            }
        }
    }

    /// A reload with its notifications, counters and log lines. `by_signal`: `SIGHUP` (the
    /// log lines say so) rather than `spiperelay reload`.
    fn reload_and_report(&mut self, by_signal: bool) -> Result<String, String> {
        let sent = self.notify.reloading();
        self.notified(sent);
        if let Some(h) = &self.audit_reopen {
            h.request();
        }
        let outcome = self.reload();
        self.board.reload_done(outcome.is_ok());
        let why = if by_signal { "SIGHUP" } else { "reload" };
        match (&self.source, &outcome) {
            (ConfigSource::CommandLine(_), Ok(msg)) => {
                self.log
                    .always(format_args!("{why}: reloaded the key files: {msg}"));
            }
            (ConfigSource::CommandLine(_), Err(e)) => {
                let fps = self
                    .running
                    .first()
                    .map(|p| p.ring.fingerprints())
                    .unwrap_or_default();
                self.log.always(format_args!(
                    "{why}: reload failed, keeping the accepted keys ({fps}): {e}"
                ));
            }
            (ConfigSource::File { path, .. }, Ok(msg)) => {
                let path = path.display().to_string();
                self.log
                    .always(format_args!("{why}: reloaded {path}: {msg}"));
            }
            (ConfigSource::File { path, .. }, Err(e)) => {
                let path = path.display().to_string();
                self.log.always(format_args!(
                    "{why}: reload of {path} failed, running configuration kept: {e}"
                ));
            }
        }
        let sent = self
            .notify
            .reloaded(outcome.as_deref().map_err(String::as_str));
        self.notified(sent);
        outcome
    }

    /// The configuration a reload applies.
    fn reread(&mut self) -> Result<Config, String> {
        let ConfigSource::File { path, config } = &self.source else {
            return Ok(self.source.config().clone());
        };
        let name = path.display().to_string();
        let (text, checked) = match check_config::check_file(path) {
            Ok(v) => v,
            Err(check_config::ReadError::NotUtf8(at)) => {
                return Err(format!("{name}:{at}: toml: not UTF-8 text"));
            }
            Err(e) => return Err(format!("{name}: {e}")),
        };
        let Some(new) = checked.config.filter(|_| checked.errors.is_empty()) else {
            let lines: Vec<String> = checked
                .errors
                .iter()
                .map(|e| e.render(&name, &text))
                .collect();
            return Err(lines.join("; "));
        };
        for field in restart_only(&config.settings, &new.settings) {
            self.log.always(format_args!(
                "reload: process.{field} changed; it takes effect at the next start"
            ));
        }
        Ok(new)
    }

    /// Re-reads the configuration and applies the difference (see the module docs). Returns
    /// what changed, or why nothing did.
    fn reload(&mut self) -> Result<String, String> {
        let new = self.reread()?;
        let plan = {
            let running: Vec<&PipeSpec> = self.running.iter().map(|p| &p.spec).collect();
            plan::plan(&running, &new.pipes)
        };
        let prepared = self.prepare(&plan).map_err(|(name, e)| {
            if name == COMMAND_LINE_PIPE {
                e.to_string()
            } else {
                format!("pipe {name}: {e}")
            }
        })?;
        let summary = self.commit(plan, prepared);
        if let ConfigSource::File { path, .. } = &self.source {
            self.source = ConfigSource::File {
                path: path.clone(),
                config: new,
            };
        }
        Ok(summary)
    }

    /// Everything of `plan` that can fail, with nothing changed yet: one [`Prepared`] per
    /// change, in order. Errors name the pipe.
    fn prepare(&mut self, plan: &Plan) -> Result<Vec<Prepared>, (String, StartupError)> {
        let mut out = Vec::with_capacity(plan.changes.len());
        for change in &plan.changes {
            let (spec, old) = match change {
                Change::Keep(i) => (&self.running[*i].spec, Some(&self.running[*i])),
                Change::Update(i, spec) => (spec, Some(&self.running[*i])),
                Change::Add(spec) => (spec, None),
            };
            let name = spec.name.clone();
            let fail = |e| (name.clone(), e);
            let (sources, read) = match old {
                Some(o) if o.spec.keys == spec.keys => (
                    o.key_sources.clone(),
                    keyfile::read_reload_keys(&o.key_sources, &o.startup_keys),
                ),
                _ => (spec.keys.clone(), keyfile::read_files(&spec.keys)),
            };
            let (keys, warnings) = read.map_err(|e| fail(StartupError::Key(e)))?;
            // The bound a ring enforces, checked before any ring changes.
            let fresh = KeyRing::new(keys.clone(), spec.max_keys, ring_mode(spec.mode))
                .map_err(|e| fail(StartupError::KeyRing(e)))?;
            let new_ring = match old {
                Some(o) if o.spec.mode == spec.mode && o.spec.max_keys == spec.max_keys => None,
                _ => Some(fresh),
            };
            let targets = match old {
                Some(o) if o.spec.target == spec.target => o.targets.clone(),
                _ => daemon::resolve(&spec.target).map_err(fail)?,
            };
            let bind = match (&spec.bind, old) {
                (b, Some(o)) if *b == o.spec.bind => o.bind.clone(),
                (Some(b), _) => Some(
                    daemon::first_address(b, daemon::resolve_bind(b).map_err(fail)?)
                        .map_err(fail)?,
                ),
                (None, _) => None,
            };
            let socket_ids = socket_ids(&spec.unix_socket).map_err(fail)?;
            let listener = match old {
                Some(_) => None,
                None => {
                    let addrs = daemon::resolve(&spec.source).map_err(fail)?;
                    Some(bind_listener(spec, &addrs[0], &mut self.log).map_err(fail)?)
                }
            };
            out.push(Prepared {
                keys,
                sources,
                warnings,
                new_ring,
                targets,
                bind,
                socket_ids,
                listener,
            });
        }
        Ok(out)
    }

    /// Applies a prepared plan; returns the summary for the log and systemd.
    fn commit(&mut self, plan: Plan, prepared: Vec<Prepared>) -> String {
        let counts = plan.summary();
        let threads = self.senders.len();
        let mut old: Vec<Option<Running>> = std::mem::take(&mut self.running)
            .into_iter()
            .map(Some)
            .collect();
        let mut cmds = Vec::new();
        let mut key_lines = Vec::new();
        for i in &plan.removed {
            if let Some(mut p) = old[*i].take() {
                let live = p.loops;
                cmds.extend((0..live).map(|l| (l, LoopCmd::Stop { serial: p.serial })));
                p.listener = None;
                self.log.always(format_args!(
                    "{}removed from the configuration: no longer accepting; its open \
                     connections finish",
                    who(&p.spec.name)
                ));
            }
        }
        for (change, prep) in plan.changes.into_iter().zip(prepared) {
            let Prepared {
                keys,
                sources,
                warnings,
                new_ring,
                targets,
                bind,
                socket_ids,
                listener,
            } = prep;
            let (mut p, update) = match change {
                Change::Keep(i) | Change::Update(i, _) if old[i].is_none() => continue,
                Change::Keep(i) => (old[i].take().expect("checked above"), false),
                Change::Update(i, spec) => {
                    let mut p = old[i].take().expect("checked above");
                    if spec.name != p.spec.name {
                        self.log.always(format_args!(
                            "pipe {} is now named {}",
                            p.spec.name, spec.name
                        ));
                    }
                    if spec.unix_socket != p.spec.unix_socket
                        && let SockAddrSpec::Unix(path) = &spec.source
                        && let Err(e) = apply_socket_options(path, &spec.unix_socket, socket_ids)
                    {
                        self.log.always(format_args!("{}{e}", who(&spec.name)));
                    }
                    p.spec = spec;
                    p.targets = targets;
                    p.bind = bind;
                    p.next_resolve = next_resolve(&p.spec, Instant::now());
                    (p, true)
                }
                Change::Add(spec) => {
                    let Some((fd, path)) = listener else { continue };
                    let Some(ring) = new_ring.clone() else {
                        continue;
                    };
                    let serial = self.next_serial;
                    self.next_serial += 1;
                    self.log.always(format_args!(
                        "pipe {}: added, listening on {}",
                        spec.name, spec.source
                    ));
                    let p = Running {
                        serial,
                        next_resolve: next_resolve(&spec, Instant::now()),
                        spec,
                        ring,
                        key_sources: sources.clone(),
                        startup_keys: keys.clone(),
                        targets,
                        bind,
                        listener: Some(fd),
                        _path: path,
                        loops: 0,
                    };
                    (p, false)
                }
            };
            let w = who(&p.spec.name);
            for warning in &warnings {
                self.log.always(format_args!("{w}{warning}"));
            }
            p.key_sources = sources;
            let added = p.loops == 0;
            let (msg, swapped) = match new_ring {
                // A changed mode or key bound: a new ring (live connections keep the old one).
                Some(ring) if !added => {
                    p.ring = ring;
                    (format!("keys now {}", p.ring.fingerprints()), true)
                }
                Some(_) => (format!("keys {}", p.ring.fingerprints()), false),
                None => (
                    p.ring
                        .replace(&keys)
                        .unwrap_or_else(|e| format!("keys kept: {e}")),
                    false,
                ),
            };
            // The loops' settings carry the ring and the options: hand changes over.
            cmds.extend(p.commands(threads, update || swapped));
            key_lines.push((p.spec.name.clone(), msg));
            self.running.push(p);
        }
        self.send(cmds);
        self.registry.set(
            self.running
                .iter()
                .map(|p| (p.spec.name.clone(), p.ring.clone()))
                .collect(),
        );
        self.board
            .describe_pipes(self.running.iter().map(Running::description).collect());
        if let ConfigSource::CommandLine(_) = self.source {
            return key_lines
                .into_iter()
                .map(|(_, m)| m)
                .collect::<Vec<_>>()
                .join("; ");
        }
        let mut summary = counts;
        for (name, msg) in key_lines {
            let _ = write!(summary, "; pipe {name}: {msg}");
        }
        summary
    }

    /// Re-resolves the targets that are due (`-r`), on this thread, and hands new addresses
    /// to the loops.
    fn resolve_due(&mut self, now: Instant) {
        let threads = self.senders.len();
        let mut cmds = Vec::new();
        for p in &mut self.running {
            if p.next_resolve.is_none_or(|at| now < at) {
                continue;
            }
            match daemon::resolve(&p.spec.target) {
                Ok(addrs) if addrs != p.targets => {
                    p.targets = addrs;
                    cmds.extend(p.commands(threads, true));
                }
                Ok(_) => {}
                Err(e) => self.log.warn(format_args!(
                    "{}{e}; keeping the old addresses",
                    who(&p.spec.name)
                )),
            }
            p.next_resolve = next_resolve(&p.spec, Instant::now());
        }
        self.send(cmds);
    }
}

/// Whether every event loop has turned since the last watchdog ping: its heartbeat count in
/// `now` differs from the one in `before`, or it has `finished`. A loop stuck in one turn
/// keeps its count, so the pings stop and systemd's watchdog restarts the service.
fn all_turned(now: &[u64], before: &[u64], finished: &[bool]) -> bool {
    now.iter()
        .zip(before)
        .zip(finished)
        .all(|((now, before), done)| now != before || *done)
}

/// What [`Supervisor::prepare`] made ready for one change.
struct Prepared {
    keys: KeySet,
    sources: Vec<KeySource>,
    warnings: Vec<keyfile::KeyWarning>,
    /// A ring to replace the old one (a new pipe, or a changed mode or `max_keys`).
    new_ring: Option<KeyRing>,
    targets: Vec<SockAddr>,
    bind: Option<SockAddr>,
    socket_ids: (Option<u32>, Option<u32>),
    /// A new pipe's listener.
    listener: Option<(OwnedFd, UnixPathGuard)>,
}

/// The process settings that differ between `old` and `new` and apply only at startup.
fn restart_only(old: &Settings, new: &Settings) -> Vec<&'static str> {
    let mut changed = Vec::new();
    let fields: [(&'static str, bool); 10] = [
        ("control", old.control != new.control),
        ("log", old.log != new.log),
        ("threads", old.thread_count() != new.thread_count()),
        ("daemonize", old.daemonize != new.daemonize),
        ("pidfile", old.pidfile != new.pidfile),
        ("user", old.user != new.user),
        ("metrics", old.metrics != new.metrics),
        ("audit_log", old.audit_log != new.audit_log),
        ("wait_for_dns", old.wait_for_dns != new.wait_for_dns),
        (
            "shutdown_timeout",
            old.shutdown_timeout != new.shutdown_timeout,
        ),
    ];
    for (name, differs) in fields {
        if differs {
            changed.push(name);
        }
    }
    changed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stuck_loop_stops_the_watchdog_pings() {
        assert!(all_turned(&[5, 9], &[4, 8], &[false, false]));
        assert!(
            !all_turned(&[5, 8], &[4, 8], &[false, false]),
            "loop 1 stuck"
        );
        assert!(all_turned(&[5, 8], &[4, 8], &[false, true]), "loop 1 ended");
        assert!(all_turned(&[0], &[u64::MAX], &[false]), "the first check");
    }

    #[test]
    fn restart_only_settings_are_named() {
        let old = Settings::default();
        let mut new = old.clone();
        assert!(restart_only(&old, &new).is_empty());
        new.threads = 4;
        new.control = Some("/run/c".into());
        new.shutdown_timeout = Some(Duration::from_secs(3));
        assert_eq!(
            restart_only(&old, &new),
            vec!["control", "threads", "shutdown_timeout"]
        );
    }
}
