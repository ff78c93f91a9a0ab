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
pub mod plan;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use crate::config::{
    COMMAND_LINE_PIPE, Config, KeySource, LogTarget, PipeSpec, Settings, SockAddrSpec,
    UnixSocketOptions,
};
use crate::io::SockAddr;
use crate::io::any::{AnyDriver, Backend};
use crate::io::sys::SocketAccess;
use crate::os::activation::{Inherited, InheritedSocket};
use crate::os::notify::{self, Notifier};
use crate::os::{limits, process, signals, user};
use crate::proto::key::KeySet;

use super::check_config;
use super::control::{Control, ControlMsg, KeyRegistry};
use super::daemon::{
    self, BACKEND_ENV, DaemonError, RunError, StartupError, UnixPathGuard, forced_backend,
};
use super::engine::{PipeConfig, Relay};
use super::keyfile;
use super::keys::KeyRing;
use super::log::{Logger, Sink, pipe_prefix as who};
use super::metrics::http::{MetricsAddr, MetricsListener};
use super::metrics::{Board, PipeDescription, ProcessInfo, ring_mode};
use loops::{Common, Loop, LoopCmd, LoopState};
use plan::{Change, Plan};

/// How long the supervisor waits for a control request before it looks at signals, timers
/// and the loops again.
const SUPERVISOR_TICK: Duration = Duration::from_millis(50);

/// How long to wait before re-arming an accept that failed with `EMFILE`/`ENFILE`.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

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

/// The handshake limit of each of `loops` event loops: `limit` divided among them, rounded
/// up (so each loop admits at least one connection in the handshake). `None` stays `None`.
pub fn handshake_share(limit: Option<usize>, loops: usize) -> Option<usize> {
    limit.map(|n| n.div_ceil(loops.max(1)).max(1))
}

/// The `-n` share of each of `threads` event loops, one entry per loop to run: `floor(n/N)`
/// each and one more for the first `n % N`; with `n < N` only `n` loops (one each). `None` (no
/// limit) gives `threads` unlimited loops. `threads` of 0 counts as 1.
pub fn connection_shares(limit: Option<usize>, threads: usize) -> Vec<Option<usize>> {
    let threads = threads.max(1);
    match limit {
        None => vec![None; threads],
        Some(n) => {
            let loops = threads.min(n).max(1);
            (0..loops)
                .map(|i| Some(n / loops + usize::from(i < n % loops)))
                .collect()
        }
    }
}

/// An error about one pipe, named unless it is the command line's.
fn in_pipe(name: &str, error: StartupError) -> StartupError {
    if name == COMMAND_LINE_PIPE {
        error
    } else {
        StartupError::Pipe {
            pipe: name.to_owned(),
            error: Box::new(error),
        }
    }
}

/// A pipe as the supervisor runs it.
struct Running {
    /// Names the pipe in the loops for the process's lifetime.
    serial: u64,
    spec: PipeSpec,
    ring: KeyRing,
    /// The key sources as a reload reads them ([`keyfile::once_as_stdin`]).
    key_sources: Vec<KeySource>,
    /// The keys read at startup (kept for sources read only once).
    startup_keys: KeySet,
    targets: Vec<SockAddr>,
    bind: Option<SockAddr>,
    /// The supervisor's descriptor of the listening socket: duplicated for each loop, and
    /// closed when the pipe is removed or the drain starts.
    listener: Option<OwnedFd>,
    /// The Unix socket file this process created (not systemd's), removed with the pipe.
    _path: UnixPathGuard,
    /// How many loops carry the pipe (the first ones).
    loops: usize,
    next_resolve: Option<Instant>,
}

impl Running {
    /// The settings of loop `share`'s part of this pipe.
    fn config(&self, share: Option<usize>, handshake: Option<usize>) -> PipeConfig {
        let s = &self.spec;
        PipeConfig {
            name: s.name.as_str().into(),
            mode: s.mode,
            targets: self.targets.clone(),
            keys: self.ring.clone(),
            exchange: s.pfs.exchange(s.x25519),
            max_connections: share,
            handshake_limit: handshake,
            timeout: s.timeout,
            keepalive: s.keepalive,
            accept_backoff: ACCEPT_BACKOFF,
            bind: self.bind.clone(),
            source_tcp: s.source_tcp,
            target_tcp: s.target_tcp,
        }
    }

    /// One command per loop that should carry this pipe with `threads` loops: `Add` for
    /// loops from `self.loops` on (with a duplicate of the listener), `Update` for the others
    /// when `update`; and `Stop` for loops that carried it and no longer do. Sets
    /// `self.loops`.
    fn commands(&mut self, threads: usize, update: bool) -> Vec<(usize, LoopCmd)> {
        let shares = connection_shares(self.spec.max_connections, threads);
        let hs = handshake_share(self.spec.handshake_limit, shares.len());
        let mut cmds = Vec::new();
        for (i, share) in shares.iter().enumerate() {
            let cfg = self.config(*share, hs);
            if i < self.loops {
                if update {
                    cmds.push((
                        i,
                        LoopCmd::Update {
                            serial: self.serial,
                            cfg,
                        },
                    ));
                }
            } else if let Some(fd) = self.listener.as_ref().and_then(|l| l.try_clone().ok()) {
                cmds.push((
                    i,
                    LoopCmd::Add {
                        serial: self.serial,
                        listener: fd,
                        cfg,
                    },
                ));
            }
        }
        for i in shares.len()..self.loops {
            cmds.push((
                i,
                LoopCmd::Stop {
                    serial: self.serial,
                },
            ));
        }
        self.loops = shares.len();
        cmds
    }

    fn description(&self) -> PipeDescription {
        PipeDescription {
            name: self.spec.name.as_str().into(),
            listen: vec![self.spec.source.to_string()],
            target: self.spec.target.to_string(),
        }
    }
}

/// A pipe's keys as read: the ring's key set, the sources a reload reads, the warnings.
struct ReadKeys {
    keys: KeySet,
    sources: Vec<KeySource>,
    warnings: Vec<keyfile::KeyWarning>,
}

/// Reads a new pipe's keys at startup (`-k -` and FIFOs once, as spiped does).
fn startup_keys(spec: &PipeSpec) -> Result<ReadKeys, StartupError> {
    let (keys, warnings) = keyfile::read_startup_keys(&spec.keys).map_err(StartupError::Key)?;
    Ok(ReadKeys {
        keys,
        sources: keyfile::once_as_stdin(&spec.keys),
        warnings,
    })
}

/// Resolves `spec`, retrying every second with `-D`.
fn resolve_retrying(spec: &SockAddrSpec, retry: bool) -> Result<Vec<SockAddr>, StartupError> {
    loop {
        match daemon::resolve(spec) {
            Ok(a) => return Ok(a),
            Err(StartupError::Resolve { .. } | StartupError::NoAddress(_)) if retry => {
                std::thread::sleep(Duration::from_secs(1));
            }
            Err(e) => return Err(e),
        }
    }
}

/// The uid and gid of a Unix socket's `socket_owner`/`socket_group` (names or numbers).
fn socket_ids(o: &UnixSocketOptions) -> Result<(Option<u32>, Option<u32>), StartupError> {
    let owner = o
        .owner
        .as_deref()
        .map(|u| {
            user::lookup_user(u)
                .map(|(uid, _)| uid)
                .map_err(|error| StartupError::SocketAccount {
                    name: u.to_owned(),
                    error,
                })
        })
        .transpose()?;
    let group = o
        .group
        .as_deref()
        .map(|g| {
            user::lookup_group(g).map_err(|error| StartupError::SocketAccount {
                name: g.to_owned(),
                error,
            })
        })
        .transpose()?;
    Ok((owner, group))
}

/// Gives the Unix socket file at `path` the pipe's owner, group and mode.
fn apply_socket_options(
    path: &Path,
    o: &UnixSocketOptions,
    ids: (Option<u32>, Option<u32>),
) -> Result<(), StartupError> {
    let err = |error: std::io::Error| StartupError::SocketFile {
        path: path.to_path_buf(),
        error,
    };
    if ids.0.is_some() || ids.1.is_some() {
        std::os::unix::fs::chown(path, ids.0, ids.1).map_err(err)?;
    }
    if let Some(mode) = o.mode {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(err)?;
    }
    Ok(())
}

/// Binds a pipe's listening socket at `addr` and, for a Unix source, gives the file the
/// pipe's owner, group and mode (binding it owner-only first when any is set, so that no
/// one else can connect in between).
fn bind_listener(
    spec: &PipeSpec,
    addr: &SockAddr,
    log: &mut Logger,
) -> Result<(OwnedFd, UnixPathGuard), StartupError> {
    let access = if spec.unix_socket.is_set() {
        SocketAccess::OwnerOnly
    } else {
        SocketAccess::Umask
    };
    let (fd, guard) = daemon::bind(&spec.source, addr, access, log)?;
    if let (true, Some(path)) = (spec.unix_socket.is_set(), addr.as_pathname()) {
        let ids = socket_ids(&spec.unix_socket)?;
        apply_socket_options(path, &spec.unix_socket, ids)?;
    }
    Ok((fd, guard))
}

/// `metrics` as the server's address: a Unix path, an IP literal, or a name's first address.
fn metrics_addr(spec: &SockAddrSpec) -> Result<MetricsAddr, StartupError> {
    match spec {
        SockAddrSpec::Unix(p) => Ok(MetricsAddr::Unix(p.clone())),
        _ => {
            let first = daemon::first_address(spec, daemon::resolve(spec)?)?;
            first
                .as_socket()
                .map(MetricsAddr::Tcp)
                .ok_or_else(|| StartupError::NoAddress(spec.to_string()))
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
    if settings.audit_log.is_some() {
        return Err(StartupError::NotSupported("process.audit_log").into());
    }

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
    let retry = settings.wait_for_dns && settings.daemonize;
    if retry {
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
            resolve_retrying(&spec.source, retry).map_err(named)?
        };
        let targets = resolve_retrying(&spec.target, retry).map_err(named)?;
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
    if settings.daemonize && !retry {
        // Until `ready`, the parent waits and our stderr is still the caller's: an error from
        // here on is printed by the binary and makes the parent exit 1.
        detached = Some(process::daemonize().map_err(StartupError::Daemonize)?);
    }
    if let (Some(p), false) = (&settings.pidfile, retry) {
        daemon::write_pidfile(p)?;
    }
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
        drain_limit: settings.shutdown_timeout,
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
        for (i, rx) in receivers.into_iter().enumerate() {
            let (ready, common, state) = (ready_tx.clone(), &common, Arc::clone(&sup.states[i]));
            let log = sup.log.sibling();
            let spawned = std::thread::Builder::new()
                .name(format!("relay-loop{i}"))
                .spawn_scoped(scope, move || {
                    event_loop(backend, forced, log, &rx, &state, common, &ready)
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

/// When a pipe's target is next re-resolved (`-r`): only names are, never addresses.
fn next_resolve(spec: &PipeSpec, now: Instant) -> Option<Instant> {
    match (&spec.target, spec.resolve_interval) {
        (SockAddrSpec::Host { .. }, Some(every)) => Some(now + every),
        _ => None,
    }
}

/// An event-loop thread: builds its driver and relay, takes its first pipes from `cmds`,
/// reports on `ready` whether that worked, then serves ([`Loop::run`]).
fn event_loop(
    backend: Backend,
    forced: Option<Backend>,
    mut log: Logger,
    cmds: &mpsc::Receiver<LoopCmd>,
    state: &LoopState,
    common: &Common<'_>,
    ready: &mpsc::Sender<Result<(), StartupError>>,
) -> Result<(), RunError> {
    // Signals go to the supervisor, whose wait they interrupt; the counts are process-wide.
    let _ = signals::block_daemon_signals_in_thread();
    let started = daemon::new_driver(&mut log, backend, forced).and_then(|io: AnyDriver| {
        let mut lp = Loop::new(Relay::empty(io, log));
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

/// The supervisor's state (see the module docs).
struct Supervisor {
    source: ConfigSource,
    /// The pipes, in configuration order.
    running: Vec<Running>,
    next_serial: u64,
    /// One command channel per loop.
    senders: Vec<mpsc::Sender<LoopCmd>>,
    states: Vec<Arc<LoopState>>,
    registry: KeyRegistry,
    board: Arc<Board>,
    notify: Notifier,
    log: Logger,
    hups_seen: usize,
}

impl Supervisor {
    /// The commands that start every pipe in the loops.
    fn start_commands(&mut self) -> Vec<(usize, LoopCmd)> {
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
    fn supervise(
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
                Err(mpsc::RecvTimeoutError::Timeout | mpsc::RecvTimeoutError::Disconnected) => {}
            }
            for msg in control.try_iter().take(100) {
                self.on_control(msg, drain.is_some());
            }
            if loops.iter().all(|h| h.is_finished()) {
                return;
            }
            if signals.int.load(Relaxed) > 0 || common.failed.load(Relaxed) {
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
                        let limit = common
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
            if let (Some(start), Some(limit), false) = (drain, common.drain_limit, cut_logged)
                && start.elapsed() >= limit
            {
                cut_logged = true;
                let cut = self.live();
                self.log.always(format_args!(
                    "SIGTERM: shutdown timeout of {} s reached; closing the {cut} connections \
                     still open",
                    limit.as_secs_f64()
                ));
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
            let all_turned = now_beats
                .iter()
                .zip(&beats)
                .zip(loops)
                .all(|((now, before), h)| now != before || h.is_finished());
            if all_turned {
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
        if let Some(field) = new.settings.audit_log.as_ref().map(|_| "process.audit_log") {
            return Err(format!("{name}: {field}: not supported yet"));
        }
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
        let mut summary = plan_summary(&plan.removed, &self.running, &key_lines);
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

/// The counts of a committed plan, for the summary line.
fn plan_summary(removed: &[usize], running: &[Running], keys: &[(String, String)]) -> String {
    format!(
        "{} pipes running, {} removed, {} with keys re-read",
        running.len(),
        removed.len(),
        keys.len()
    )
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
    fn handshake_shares_round_up() {
        assert_eq!(handshake_share(None, 4), None);
        assert_eq!(handshake_share(Some(10), 1), Some(10));
        assert_eq!(handshake_share(Some(10), 4), Some(3));
        assert_eq!(handshake_share(Some(1), 4), Some(1));
        assert_eq!(handshake_share(Some(5), 0), Some(5));
    }

    #[test]
    fn connection_shares_are_exact() {
        assert_eq!(connection_shares(None, 1), vec![None]);
        assert_eq!(connection_shares(None, 3), vec![None; 3]);
        assert_eq!(connection_shares(Some(100), 1), vec![Some(100)]);
        assert_eq!(connection_shares(Some(2), 2), vec![Some(1), Some(1)]);
        assert_eq!(
            connection_shares(Some(7), 3),
            vec![Some(3), Some(2), Some(2)]
        );
        assert_eq!(connection_shares(Some(2), 8), vec![Some(1), Some(1)]);
        for n in 1..40 {
            for t in 1..10 {
                let s = connection_shares(Some(n), t);
                assert_eq!(s.len(), t.min(n));
                assert_eq!(s.iter().map(|x| x.unwrap_or(0)).sum::<usize>(), n);
                assert!(s.iter().all(|x| x.unwrap_or(0) >= 1));
            }
        }
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
