//! The supervisor: one process running every pipe of a configuration (the spiped command line
//! is a configuration of one pipe, named [`COMMAND_LINE_PIPE`]).
//!
//! **Threads.** The main thread is the supervisor: it owns the pipes (their key rings, the
//! supervisor's copy of each listening socket, resolved addresses), handles signals, reloads,
//! the control socket's requests, `-r` re-resolution and systemd's notifications, and never
//! carries a connection, so a slow DNS lookup or key file never stalls traffic. `threads`
//! event-loop threads ([`loops`]) carry the connections, each with its own io driver and a
//! share of every pipe: a pipe's `-n` is divided among the loops ([`connection_shares`]), each
//! loop accepting on its own duplicate of the pipe's listening socket, so `-n` stays exact for
//! the process. 100 pipes add no thread: a pipe is a table entry in each loop.
//!
//! **Startup order**, so that every error is reported before anything is left behind: take
//! systemd's sockets; read every pipe's keys; bind the control socket; look up the `user` and
//! socket owners; (with `-D`, daemonise now and retry lookups every second) resolve every
//! source, target and `-b`; pick the io backend; bind (or take from systemd) every listener;
//! daemonise and write the pidfile; bind the metrics socket; drop privileges; let the waiting
//! parent exit 0; start the loops, the control and metrics threads; `READY=1`.
//!
//! **Reload** (`SIGHUP`, `spiperelay reload`): a configuration file is read and checked again
//! completely (the command line's one pipe is its own configuration again), the new pipes are
//! matched to the running ones by source ([`plan`]), and everything that can fail is done
//! first: key files read, names resolved, new sockets bound. Any error there changes nothing
//! and is logged with its place. Then: removed pipes stop accepting and drain; kept and
//! changed pipes get the key files' keys (as a rotation would) and changed pipes their new
//! settings for new connections; added pipes start. A listener of a pipe whose source did not
//! change is never closed.
//!
//! **Stop**: the first `SIGTERM` closes every listener at once and lets open connections
//! finish (at most `shutdown_timeout`); a second `SIGTERM`, or `SIGINT`, exits at once.

mod loops;
mod pipe;
pub mod plan;
mod supervise;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, mpsc};
use std::time::Instant;

use crate::config::{AuditLog as ConfigAudit, COMMAND_LINE_PIPE, Config, LogTarget};
use crate::io::any::{AnyDriver, Backend};
use crate::os::activation::{Inherited, InheritedSocket};
use crate::os::notify::Notifier;
use crate::os::{limits, process, signals, user};

use super::audit::{AuditLog, AuditTarget};
use super::control::{Control, KeyRegistry};
use super::daemon::{
    self, BACKEND_ENV, DaemonError, RunError, StartupError, UnixPathGuard, forced_backend,
};
use super::engine::Relay;
use super::keys::KeyRing;
use super::log::{Logger, Sink, pipe_prefix as who};
use super::metrics::http::MetricsListener;
use super::metrics::{Board, ProcessInfo, ring_mode};
use super::pool::SharedPools;
use loops::{Common, Loop, LoopCmd, LoopState};
use pipe::{
    Running, bind_listener, in_pipe, metrics_addr, next_resolve, resolve_retrying, socket_ids,
    startup_keys,
};
pub use pipe::{connection_shares, handshake_share};
use supervise::Supervisor;

/// Where the running configuration comes from, and so what a reload re-reads.
#[derive(Clone, Debug)]
pub enum ConfigSource {
    /// The spiped command line: a reload re-reads its key files.
    CommandLine(Config),
    /// A configuration file: a reload re-reads and re-checks the whole file.
    File {
        /// Its path.
        path: PathBuf,
        /// Its contents as checked at startup.
        config: Config,
    },
}

impl ConfigSource {
    fn config(&self) -> &Config {
        match self {
            Self::CommandLine(c) | Self::File { config: c, .. } => c,
        }
    }
}

/// Runs the pipes of `source` until a signal ends the process. `program` prefixes log lines.
///
/// Returns `Ok(())` after a graceful shutdown (`SIGTERM`, or `SIGINT`).
///
/// # Errors
/// A [`DaemonError`] naming what failed, at startup (nothing is left behind) or, rarely, in
/// an event loop.
pub fn run(program: &str, source: ConfigSource) -> Result<(), DaemonError> {
    let config = source.config().clone();
    let settings = &config.settings;
    // systemd: sockets passed in (taken while single-threaded, before any fork).
    let inherited = Inherited::take().map_err(StartupError::Activation)?;
    let mut inherited: BTreeMap<String, InheritedSocket> = match &source {
        ConfigSource::CommandLine(_) => inherited
            .take_single()
            .map_err(StartupError::Activation)?
            .map(|s| (COMMAND_LINE_PIPE.to_owned(), s))
            .into_iter()
            .collect(),
        ConfigSource::File { .. } => {
            let names: Vec<&str> = config.pipes.iter().map(|p| p.name.as_str()).collect();
            inherited
                .match_pipes(&names)
                .map_err(StartupError::Activation)?
        }
    };
    let notifier = Notifier::from_env(Instant::now());
    let mut log = Logger::new(program, Sink::Stderr);

    // Keys, and the rings the loops and the control socket share.
    let mut keys = Vec::with_capacity(config.pipes.len());
    for spec in &config.pipes {
        let read = startup_keys(spec).map_err(|e| in_pipe(&spec.name, e))?;
        for w in &read.warnings {
            log.always(format_args!("{}{w}", who(&spec.name)));
        }
        let ring = KeyRing::new(read.keys.clone(), spec.max_keys, ring_mode(spec.mode))
            .map_err(|e| in_pipe(&spec.name, StartupError::KeyRing(e)))?;
        keys.push((read, ring));
    }
    let registry = KeyRegistry::default();
    registry.set(
        config
            .pipes
            .iter()
            .zip(&keys)
            .map(|(p, (_, ring))| (p.name.clone(), ring.clone()))
            .collect(),
    );
    let mut control = Control::bind(settings.control.as_deref(), registry.clone())
        .map_err(StartupError::Control)?;
    if let Some(path) = control.replaced_stale_socket() {
        log.always(format_args!(
            "removed stale control socket {} (nothing was listening on it)",
            path.display()
        ));
    }
    let forced = forced_backend(std::env::var_os(BACKEND_ENV).as_deref())?;
    // Looked up before anything else happens, so a bad account is an error at the shell.
    let ids = settings.user.as_ref().map(daemon::lookup_ids).transpose()?;
    for spec in &config.pipes {
        socket_ids(&spec.unix_socket).map_err(|e| in_pipe(&spec.name, e))?;
    }
    let mut backend = None;
    let mut detached = None;
    // -D: lookups are retried every second until they succeed (in the foreground too); when
    // daemonising, the process detaches before them.
    let detach_early = settings.wait_for_dns && settings.daemonize;
    if detach_early {
        backend = Some(daemon::pick_backend(program, forced)?);
        let d = process::daemonize().map_err(StartupError::Daemonize)?;
        if let Some(p) = &settings.pidfile {
            daemon::write_pidfile(p)?;
        }
        // -D: the parent returns as soon as the pidfile exists; later errors go to syslog
        // (--syslog) or nowhere, as in spiped.
        d.ready().map_err(StartupError::Daemonize)?;
        log = daemon::daemon_logger(program, settings.log == LogTarget::Syslog);
    }
    let mut addrs = Vec::with_capacity(config.pipes.len());
    for spec in &config.pipes {
        let named = |e| in_pipe(&spec.name, e);
        let sources = if inherited.contains_key(&spec.name) {
            Vec::new()
        } else {
            resolve_retrying(&spec.source, settings.wait_for_dns).map_err(named)?
        };
        let targets = resolve_retrying(&spec.target, settings.wait_for_dns).map_err(named)?;
        let bind = match &spec.bind {
            Some(b) => Some(
                daemon::first_address(b, daemon::resolve_bind(b).map_err(named)?).map_err(named)?,
            ),
            None => None,
        };
        if sources.len() > 1 {
            log.always(format_args!(
                "{}Listening on first of multiple addresses found for {}",
                who(&spec.name),
                spec.source
            ));
        }
        addrs.push((sources, targets, bind));
    }
    let backend = match backend {
        Some(b) => b,
        None => daemon::pick_backend(program, forced)?,
    };
    let mut running = Vec::with_capacity(config.pipes.len());
    for (serial, ((spec, (read, ring)), (sources, targets, bind))) in
        config.pipes.iter().zip(keys).zip(addrs).enumerate()
    {
        let (listener, path) = match inherited.remove(&spec.name) {
            // systemd's socket: used as is, never unlinked (no path guard).
            Some(s) => {
                log.always(format_args!(
                    "{}using the listening socket {} passed by systemd ({}) for {}",
                    who(&spec.name),
                    s.name,
                    s.local,
                    spec.source
                ));
                (s.fd, UnixPathGuard::none())
            }
            None => {
                bind_listener(spec, &sources[0], &mut log).map_err(|e| in_pipe(&spec.name, e))?
            }
        };
        running.push(Running {
            serial: serial as u64,
            next_resolve: next_resolve(spec, Instant::now()),
            spec: spec.clone(),
            ring,
            key_sources: read.sources,
            startup_keys: read.keys,
            targets,
            bind,
            listener: Some(listener),
            _path: path,
            loops: 0,
        });
    }
    if settings.daemonize && !detach_early {
        // Until `ready`, the parent waits and our stderr is still the caller's: an error from
        // here on is printed by the binary and makes the parent exit 1.
        detached = Some(process::daemonize().map_err(StartupError::Daemonize)?);
    }
    if let (Some(p), false) = (&settings.pidfile, detach_early) {
        daemon::write_pidfile(p)?;
    }
    // The audit log, opened while the process may still write where it is configured.
    let audit = settings
        .audit_log
        .as_ref()
        .map(|a| {
            AuditLog::open(match a {
                ConfigAudit::Stderr => AuditTarget::Stderr,
                ConfigAudit::File(p) => AuditTarget::File(p.clone()),
            })
        })
        .transpose()
        .map_err(StartupError::Audit)?;
    let mut loop_audits = Vec::with_capacity(settings.thread_count());
    if let Some(a) = &audit {
        for _ in 0..settings.thread_count() {
            loop_audits.push(Some(a.another().map_err(StartupError::Audit)?));
        }
    }
    loop_audits.resize_with(settings.thread_count(), || None);
    let metrics = match &settings.metrics {
        Some(spec) => {
            let addr = metrics_addr(spec)?;
            if !addr.is_loopback() {
                log.always(format_args!(
                    "warning: serving metrics on {addr}, which other hosts may reach"
                ));
            }
            Some(MetricsListener::bind(&addr).map_err(StartupError::Metrics)?)
        }
        None => None,
    };
    if let Some((uid, gid)) = ids {
        // After bind and daemonise (spec §3.1, §4).
        match user::drop_privileges(uid, gid) {
            Ok(None) => {}
            Ok(Some(e)) => log.always(format_args!(
                "warning: cannot drop supplementary groups: {e}"
            )),
            Err(error) => {
                return Err(StartupError::Privileges {
                    user: settings
                        .user
                        .as_ref()
                        .map(ToString::to_string)
                        .unwrap_or_default(),
                    error,
                }
                .into());
            }
        }
    }
    if let Some(d) = detached {
        d.ready().map_err(StartupError::Daemonize)?;
        log = daemon::daemon_logger(program, settings.log == LogTarget::Syslog);
    } else if settings.log == LogTarget::Syslog && !settings.daemonize {
        log = Logger::new(program, Logger::syslog_sink().unwrap_or(Sink::Stderr));
    }
    let signals = signals::install_signal_handlers().map_err(StartupError::Signals)?;
    // Two descriptors per connection: the default soft limit of 1024 is too low for -n 1000.
    let _ = limits::raise_nofile_limit();

    let board = Board::new(ProcessInfo::new(match backend {
        Backend::Uring => "io_uring",
        Backend::Epoll => "epoll",
    }));
    board.describe_pipes(running.iter().map(Running::description).collect());
    control.set_board(Arc::clone(&board));
    let common = Common {
        signals,
        failed: AtomicBool::new(false),
        cut: AtomicBool::new(false),
        board: Arc::clone(&board),
    };
    let threads = settings.thread_count();
    let mut sup = Supervisor {
        source,
        running,
        next_serial: config.pipes.len() as u64,
        senders: Vec::with_capacity(threads),
        states: (0..threads)
            .map(|_| Arc::new(LoopState::default()))
            .collect(),
        registry,
        board,
        notify: notifier,
        log,
        hups_seen: 0,
        audit_reopen: audit.as_ref().map(AuditLog::reopen_handle),
        drain_limit: settings.shutdown_timeout,
    };
    std::thread::scope(|scope| {
        let (ready_tx, ready_rx) = mpsc::channel();
        let mut handles = Vec::with_capacity(threads);
        let mut started = Ok(());
        let mut receivers = Vec::with_capacity(threads);
        for _ in 0..threads {
            let (tx, rx) = mpsc::channel();
            sup.senders.push(tx);
            receivers.push(rx);
        }
        for cmd in sup.start_commands() {
            let _ = sup.senders[cmd.0].send(cmd.1);
        }
        // One key-pair pool per exchange kind for the whole process.
        let pools = SharedPools::default();
        for (i, (rx, audit)) in receivers.into_iter().zip(loop_audits).enumerate() {
            let pools = pools.clone();
            let (ready, common, state) = (ready_tx.clone(), &common, Arc::clone(&sup.states[i]));
            let log = sup.log.sibling();
            let spawned = std::thread::Builder::new()
                .name(format!("relay-loop{i}"))
                .spawn_scoped(scope, move || {
                    event_loop(
                        backend, forced, log, audit, pools, &rx, &state, common, &ready,
                    )
                });
            match spawned {
                Ok(h) => handles.push(h),
                Err(e) => {
                    started = Err(StartupError::Thread(e));
                    break;
                }
            }
        }
        drop(ready_tx);
        // Every loop reports once whether it started; a closed channel means a thread ended
        // before saying so.
        for _ in 0..handles.len() {
            if started.is_err() {
                break;
            }
            match ready_rx.recv() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => started = Err(e),
                Err(_) => started = Err(StartupError::LoopVanished),
            }
        }
        let (ctl_tx, ctl_rx) = mpsc::channel();
        let mut result = started
            .and_then(|()| control.start(ctl_tx).map_err(StartupError::Control))
            .and_then(|()| {
                metrics
                    .map(|m| m.start(Arc::clone(&sup.board)))
                    .transpose()
                    .map_err(StartupError::Metrics)
            })
            .map_err(DaemonError::from)
            .map(|server| {
                sup.supervise(&ctl_rx, &common, &handles);
                drop(server);
            });
        // Whatever ended the supervisor, the loops stop too unless they are draining.
        if result.is_err() || signals.int.load(Relaxed) > 0 {
            common.failed.store(true, Relaxed);
        }
        for handle in handles {
            let r = handle.join().unwrap_or(Err(RunError::LoopVanished));
            if result.is_ok() {
                result = r.map_err(DaemonError::from);
            }
        }
        result
    })
}

/// An event-loop thread: builds its driver and relay (writing `audit` lines, if any), takes its
/// first pipes from `cmds`, reports on `ready` whether that worked, then serves
/// ([`Loop::run`]).
#[allow(clippy::too_many_arguments)]
fn event_loop(
    backend: Backend,
    forced: Option<Backend>,
    mut log: Logger,
    audit: Option<AuditLog>,
    pools: SharedPools,
    cmds: &mpsc::Receiver<LoopCmd>,
    state: &LoopState,
    common: &Common<'_>,
    ready: &mpsc::Sender<Result<(), StartupError>>,
) -> Result<(), RunError> {
    // Signals go to the supervisor, whose wait they interrupt; the counts are process-wide.
    let _ = signals::block_daemon_signals_in_thread();
    let started = daemon::new_driver(&mut log, backend, forced).and_then(|io: AnyDriver| {
        let mut relay = Relay::sharing_pools(io, log, pools);
        if let Some(a) = audit {
            relay.set_audit(a);
        }
        let mut lp = Loop::new(relay);
        for cmd in cmds.try_iter() {
            lp.apply(cmd).map_err(StartupError::Loop)?;
        }
        Ok(lp)
    });
    match started {
        Ok(lp) => {
            let _ = ready.send(Ok(()));
            lp.run(cmds, state, common)
        }
        Err(e) => {
            let _ = ready.send(Err(e));
            Ok(())
        }
    }
}
