//! A pipe as the supervisor runs it ([`Running`]), and the pieces that set one up: its
//! keys, its listening socket (with a Unix socket's owner, group and mode), its share of each
//! event loop.

use std::os::fd::OwnedFd;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::config::{COMMAND_LINE_PIPE, KeySource, PipeSpec, SockAddrSpec, UnixSocketOptions};
use crate::io::SockAddr;
use crate::io::sys::SocketAccess;
use crate::os::user;
use crate::proto::key::KeySet;

use super::super::daemon::{self, StartupError, UnixPathGuard};
use super::super::engine::PipeConfig;
use super::super::keyfile;
use super::super::keys::KeyRing;
use super::super::log::Logger;
use super::super::metrics::PipeDescription;
use super::super::metrics::http::MetricsAddr;
use super::loops::LoopCmd;

/// How long to wait before re-arming an accept that failed with `EMFILE`/`ENFILE`.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

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
pub(super) fn in_pipe(name: &str, error: StartupError) -> StartupError {
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
pub(super) struct Running {
    /// Names the pipe in the loops for the process's lifetime.
    pub(super) serial: u64,
    pub(super) spec: PipeSpec,
    pub(super) ring: KeyRing,
    /// The key sources as a reload reads them ([`keyfile::once_as_stdin`]).
    pub(super) key_sources: Vec<KeySource>,
    /// The keys read at startup (kept for sources read only once).
    pub(super) startup_keys: KeySet,
    pub(super) targets: Vec<SockAddr>,
    pub(super) bind: Option<SockAddr>,
    /// The supervisor's descriptor of the listening socket: duplicated for each loop, and
    /// closed when the pipe is removed or the drain starts.
    pub(super) listener: Option<OwnedFd>,
    /// The Unix socket file this process created (not systemd's), removed with the pipe.
    pub(super) _path: UnixPathGuard,
    /// How many loops carry the pipe (the first ones).
    pub(super) loops: usize,
    pub(super) next_resolve: Option<Instant>,
}

impl Running {
    /// The settings of loop `share`'s part of this pipe.
    pub(super) fn config(&self, share: Option<usize>, handshake: Option<usize>) -> PipeConfig {
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
    pub(super) fn commands(&mut self, threads: usize, update: bool) -> Vec<(usize, LoopCmd)> {
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

    pub(super) fn description(&self) -> PipeDescription {
        PipeDescription {
            name: self.spec.name.as_str().into(),
            listen: vec![self.spec.source.to_string()],
            target: self.spec.target.to_string(),
        }
    }
}

/// A pipe's keys as read: the ring's key set, the sources a reload reads, the warnings.
pub(super) struct ReadKeys {
    pub(super) keys: KeySet,
    pub(super) sources: Vec<KeySource>,
    pub(super) warnings: Vec<keyfile::KeyWarning>,
}

/// Reads a new pipe's keys at startup (`-k -` and FIFOs once, as spiped does).
pub(super) fn startup_keys(spec: &PipeSpec) -> Result<ReadKeys, StartupError> {
    let (keys, warnings) = keyfile::read_startup_keys(&spec.keys).map_err(StartupError::Key)?;
    Ok(ReadKeys {
        keys,
        sources: keyfile::once_as_stdin(&spec.keys),
        warnings,
    })
}

/// Resolves `spec`, retrying every second with `-D`.
pub(super) fn resolve_retrying(
    spec: &SockAddrSpec,
    retry: bool,
) -> Result<Vec<SockAddr>, StartupError> {
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
pub(super) fn socket_ids(
    o: &UnixSocketOptions,
) -> Result<(Option<u32>, Option<u32>), StartupError> {
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
pub(super) fn apply_socket_options(
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
pub(super) fn bind_listener(
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
pub(super) fn metrics_addr(spec: &SockAddrSpec) -> Result<MetricsAddr, StartupError> {
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

/// When a pipe's target is next re-resolved (`-r`): only names are, never addresses.
pub(super) fn next_resolve(spec: &PipeSpec, now: Instant) -> Option<Instant> {
    match (&spec.target, spec.resolve_interval) {
        (SockAddrSpec::Host { .. }, Some(every)) => Some(now + every),
        _ => None,
    }
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
}
