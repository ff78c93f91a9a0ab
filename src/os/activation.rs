//! Socket activation: listening sockets that systemd (or `systemd-socket-activate`) opened and
//! passed in, as `sd_listen_fds(3)` describes.
//!
//! systemd passes `LISTEN_FDS=n` descriptors starting at 3, `LISTEN_PID` (the process they are
//! meant for) and `LISTEN_FDNAMES` (colon-separated, from each socket unit's
//! `FileDescriptorName=`; `unknown` where none was set). [`Inherited::take`] takes them once,
//! checks that each is a listening stream socket (TCP or Unix, `SO_ACCEPTCONN`), and unsets the
//! three variables. Each socket is then matched to the pipe of the same name
//! ([`Inherited::match_pipes`]); the spiped-style command line, which has one pipe, takes the
//! one socket passed whatever its name ([`Inherited::take_single`]).
//!
//! A passed socket belongs to systemd: the relay uses it as is, never binds, changes or
//! unlinks its path, and a reload keeps it.

#![allow(unsafe_code)]

use std::collections::BTreeMap;
use std::fmt;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};

use socket2::{Domain, Socket, Type};

/// The first descriptor systemd passes (`SD_LISTEN_FDS_START`).
pub const LISTEN_FDS_START: RawFd = 3;
/// The most descriptors accepted from `LISTEN_FDS`: far above any real setup, and it bounds
/// the work done on a corrupt value.
pub const MAX_LISTEN_FDS: usize = 4096;
/// The environment variables of the protocol.
pub const LISTEN_PID_ENV: &str = "LISTEN_PID";
/// See [`LISTEN_PID_ENV`].
pub const LISTEN_FDS_ENV: &str = "LISTEN_FDS";
/// See [`LISTEN_PID_ENV`].
pub const LISTEN_FDNAMES_ENV: &str = "LISTEN_FDNAMES";

/// Why the passed sockets cannot be used. Every variant names the socket (its
/// `FileDescriptorName=`) and, where it applies, the pipe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ActivationError {
    /// `LISTEN_PID` or `LISTEN_FDS` is not a number, or `LISTEN_FDS` is above
    /// [`MAX_LISTEN_FDS`].
    BadVariable {
        /// The variable.
        var: &'static str,
        /// Its value.
        value: String,
    },
    /// `LISTEN_FDNAMES` has a different number of names than `LISTEN_FDS` descriptors.
    NameCount {
        /// `LISTEN_FDS`.
        fds: usize,
        /// The names given.
        names: usize,
    },
    /// The sockets were already taken once in this process.
    AlreadyTaken,
    /// A passed descriptor is not a socket, or its type cannot be read.
    NotASocket {
        /// Its name.
        name: String,
        /// Its number.
        fd: RawFd,
    },
    /// A passed socket is not a stream socket (e.g. `ListenDatagram=`).
    NotStream {
        /// Its name.
        name: String,
    },
    /// A passed socket is not listening (e.g. `Accept=yes` passed a connection).
    NotListening {
        /// Its name.
        name: String,
    },
    /// A passed socket is neither TCP (IPv4, IPv6) nor Unix.
    Family {
        /// Its name.
        name: String,
    },
    /// Two passed sockets have the same name.
    DuplicateName(String),
    /// A passed socket matches no pipe.
    NoSuchPipe {
        /// The socket's name.
        socket: String,
        /// The pipes there are.
        pipes: Vec<String>,
    },
    /// Sockets were passed, but none for this pipe.
    MissingSocket {
        /// The pipe.
        pipe: String,
        /// The names of the sockets passed.
        sockets: Vec<String>,
    },
    /// More than one socket passed to the one pipe of the command line.
    TooManyForOnePipe(Vec<String>),
}

impl fmt::Display for ActivationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let list = |v: &[String]| {
            if v.is_empty() {
                "none".to_owned()
            } else {
                v.join(", ")
            }
        };
        match self {
            Self::BadVariable { var, value } => {
                write!(f, "socket activation: {var}={value:?} is not a valid count")
            }
            Self::NameCount { fds, names } => write!(
                f,
                "socket activation: {LISTEN_FDNAMES_ENV} has {names} names for {fds} sockets"
            ),
            Self::AlreadyTaken => f.write_str("socket activation: sockets already taken"),
            Self::NotASocket { name, fd } => {
                write!(f, "passed socket {name} (descriptor {fd}) is not a socket")
            }
            Self::NotStream { name } => write!(
                f,
                "passed socket {name} is not a stream socket (use ListenStream=)"
            ),
            Self::NotListening { name } => write!(
                f,
                "passed socket {name} is not listening (the socket unit must have Accept=no)"
            ),
            Self::Family { name } => write!(f, "passed socket {name} is neither TCP nor Unix"),
            Self::DuplicateName(name) => {
                write!(
                    f,
                    "two passed sockets are named {name} (FileDescriptorName=)"
                )
            }
            Self::NoSuchPipe { socket, pipes } => write!(
                f,
                "passed socket {socket} matches no pipe (pipes: {}); its FileDescriptorName= \
                 must be a pipe's name",
                list(pipes)
            ),
            Self::MissingSocket { pipe, sockets } => write!(
                f,
                "pipe {pipe} has no passed socket (sockets passed: {}); with socket activation \
                 every pipe needs a socket unit with FileDescriptorName={pipe}",
                list(sockets)
            ),
            Self::TooManyForOnePipe(names) => write!(
                f,
                "{} sockets passed ({}), but the command line has one pipe",
                names.len(),
                list(names)
            ),
        }
    }
}

impl std::error::Error for ActivationError {}

/// The descriptors the environment describes, before they are checked: `(fd, name)` in order.
/// `Ok(empty)` when `listen_pid` is unset or another process's (`my_pid`), or `listen_fds` is
/// unset. Pure: the values are passed in.
///
/// # Errors
/// [`ActivationError::BadVariable`] or [`ActivationError::NameCount`].
pub fn parse_env(
    listen_pid: Option<&str>,
    listen_fds: Option<&str>,
    fdnames: Option<&str>,
    my_pid: u32,
) -> Result<Vec<(RawFd, String)>, ActivationError> {
    let (Some(pid), Some(fds)) = (listen_pid, listen_fds) else {
        return Ok(Vec::new());
    };
    let bad = |var, value: &str| ActivationError::BadVariable {
        var,
        value: value.to_owned(),
    };
    let pid: u32 = pid.parse().map_err(|_| bad(LISTEN_PID_ENV, pid))?;
    if pid != my_pid {
        return Ok(Vec::new());
    }
    let n: usize = match fds.parse() {
        Ok(n) if n <= MAX_LISTEN_FDS => n,
        _ => return Err(bad(LISTEN_FDS_ENV, fds)),
    };
    let names: Vec<String> = match fdnames {
        // systemd sets LISTEN_FDNAMES only when it passes names; none means "unknown" each.
        None => vec!["unknown".to_owned(); n],
        Some(text) if n == 0 && text.is_empty() => Vec::new(),
        Some(text) => text.split(':').map(str::to_owned).collect(),
    };
    if names.len() != n {
        return Err(ActivationError::NameCount {
            fds: n,
            names: names.len(),
        });
    }
    Ok((LISTEN_FDS_START..).zip(names).collect())
}

/// One passed listening socket.
#[derive(Debug)]
pub struct InheritedSocket {
    /// Its `FileDescriptorName=` (`unknown` if systemd gave none).
    pub name: String,
    /// The socket, a listening stream socket.
    pub fd: OwnedFd,
    /// Its local address for messages: `[ip]:port` or the Unix path.
    pub local: String,
}

/// The sockets passed to this process, checked, in the order systemd passed them.
#[derive(Debug, Default)]
pub struct Inherited {
    sockets: Vec<InheritedSocket>,
}

/// Set once the descriptors are owned by an [`Inherited`]: they can be taken only once.
static TAKEN: AtomicBool = AtomicBool::new(false);

impl Inherited {
    /// Takes the sockets systemd passed to this process and unsets `LISTEN_PID`,
    /// `LISTEN_FDS` and `LISTEN_FDNAMES`. None passed (or passed to another process) gives an
    /// empty set. Call it once, at the start of `main`'s work while the process has one
    /// thread and before it forks (`LISTEN_PID` names the process systemd started).
    ///
    /// # Errors
    /// A malformed environment ([`parse_env`]); [`ActivationError::AlreadyTaken`] on a second
    /// call; a descriptor that is not a listening TCP or Unix stream socket
    /// ([`ActivationError::NotASocket`], [`ActivationError::NotStream`],
    /// [`ActivationError::NotListening`], [`ActivationError::Family`]); two with one name
    /// ([`ActivationError::DuplicateName`]).
    pub fn take() -> Result<Self, ActivationError> {
        let var = |name| std::env::var(name).ok();
        let described = parse_env(
            var(LISTEN_PID_ENV).as_deref(),
            var(LISTEN_FDS_ENV).as_deref(),
            var(LISTEN_FDNAMES_ENV).as_deref(),
            std::process::id(),
        )?;
        if described.is_empty() {
            return Ok(Self::default());
        }
        if TAKEN.swap(true, Ordering::AcqRel) {
            return Err(ActivationError::AlreadyTaken);
        }
        for name in [LISTEN_PID_ENV, LISTEN_FDS_ENV, LISTEN_FDNAMES_ENV] {
            // SAFETY: the caller takes the sockets at startup, while the process is
            // single-threaded (the contract above), so no other thread reads or writes the
            // environment during the call.
            unsafe { std::env::remove_var(name) };
        }
        let mut sockets = Vec::with_capacity(described.len());
        for (raw, name) in described {
            if sockets.iter().any(|s: &InheritedSocket| s.name == name) {
                return Err(ActivationError::DuplicateName(name));
            }
            // Refuse a number that is not an open descriptor before taking ownership of it.
            if fd_is_open(raw).is_err() {
                return Err(ActivationError::NotASocket { name, fd: raw });
            }
            // SAFETY: `raw` is open (checked just above) and is one of the descriptors systemd
            // passed to this process (LISTEN_PID is ours); nothing else in the process owns
            // it, since the variables are read once (TAKEN) and were unset above.
            let fd = unsafe { OwnedFd::from_raw_fd(raw) };
            sockets.push(check(name, raw, fd)?);
        }
        Ok(Self { sockets })
    }

    /// How many sockets were passed.
    pub fn len(&self) -> usize {
        self.sockets.len()
    }

    /// Whether none was passed.
    pub fn is_empty(&self) -> bool {
        self.sockets.is_empty()
    }

    /// The names of the sockets passed, in order.
    pub fn names(&self) -> Vec<String> {
        self.sockets.iter().map(|s| s.name.clone()).collect()
    }

    /// For the spiped-style command line (one pipe): the one socket passed, whatever its
    /// name, or `None` when none was.
    ///
    /// # Errors
    /// [`ActivationError::TooManyForOnePipe`] when more than one was passed.
    pub fn take_single(mut self) -> Result<Option<InheritedSocket>, ActivationError> {
        match self.sockets.len() {
            0 => Ok(None),
            1 => Ok(self.sockets.pop()),
            _ => Err(ActivationError::TooManyForOnePipe(self.names())),
        }
    }

    /// Matches each socket to the pipe of the same name. With no socket passed, an empty map
    /// (every pipe binds its own). With any passed, every socket must name a pipe and every
    /// pipe must have a socket.
    ///
    /// # Errors
    /// [`ActivationError::NoSuchPipe`] naming the socket and the pipes, or
    /// [`ActivationError::MissingSocket`] naming the pipe and the sockets.
    pub fn match_pipes(
        self,
        pipes: &[&str],
    ) -> Result<BTreeMap<String, InheritedSocket>, ActivationError> {
        if self.sockets.is_empty() {
            return Ok(BTreeMap::new());
        }
        let names = self.names();
        let mut by_pipe = BTreeMap::new();
        for socket in self.sockets {
            if !pipes.contains(&socket.name.as_str()) {
                return Err(ActivationError::NoSuchPipe {
                    socket: socket.name,
                    pipes: pipes.iter().map(|p| (*p).to_owned()).collect(),
                });
            }
            by_pipe.insert(socket.name.clone(), socket);
        }
        if let Some(pipe) = pipes.iter().find(|p| !by_pipe.contains_key(**p)) {
            return Err(ActivationError::MissingSocket {
                pipe: (*pipe).to_owned(),
                sockets: names,
            });
        }
        Ok(by_pipe)
    }
}

/// `F_GETFD` on `fd`: whether it is an open descriptor.
fn fd_is_open(fd: RawFd) -> std::io::Result<()> {
    // SAFETY: F_GETFD only reads the descriptor's flags; an unknown number gives EBADF.
    if unsafe { libc::fcntl(fd, libc::F_GETFD) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Checks that `fd` is a listening TCP or Unix stream socket.
fn check(name: String, raw: RawFd, fd: OwnedFd) -> Result<InheritedSocket, ActivationError> {
    let socket = Socket::from(fd);
    match socket.r#type() {
        Ok(t) if t == Type::STREAM => {}
        Ok(_) => return Err(ActivationError::NotStream { name }),
        Err(_) => return Err(ActivationError::NotASocket { name, fd: raw }),
    }
    match socket.domain() {
        Ok(d) if d == Domain::IPV4 || d == Domain::IPV6 || d == Domain::UNIX => {}
        _ => return Err(ActivationError::Family { name }),
    }
    if !socket.is_listener().unwrap_or(false) {
        return Err(ActivationError::NotListening { name });
    }
    let local = match socket.local_addr() {
        Ok(a) => match (a.as_socket(), a.as_pathname()) {
            (Some(sa), _) => format!("[{}]:{}", sa.ip(), sa.port()),
            (None, Some(p)) => p.display().to_string(),
            (None, None) => "an unnamed Unix socket".to_owned(),
        },
        Err(_) => "an unknown address".to_owned(),
    };
    Ok(InheritedSocket {
        name,
        fd: socket.into(),
        local,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_for_another_process_is_ignored() {
        assert_eq!(
            parse_env(Some("41"), Some("2"), Some("a:b"), 42),
            Ok(vec![])
        );
        assert_eq!(parse_env(None, Some("2"), Some("a:b"), 42), Ok(vec![]));
        assert_eq!(parse_env(Some("42"), None, None, 42), Ok(vec![]));
    }

    #[test]
    fn env_names_the_descriptors_from_three() {
        assert_eq!(
            parse_env(Some("42"), Some("2"), Some("redis:web"), 42),
            Ok(vec![(3, "redis".to_owned()), (4, "web".to_owned())])
        );
        assert_eq!(
            parse_env(Some("42"), Some("1"), None, 42),
            Ok(vec![(3, "unknown".to_owned())])
        );
        assert_eq!(parse_env(Some("42"), Some("0"), Some(""), 42), Ok(vec![]));
    }

    #[test]
    fn malformed_env_is_an_error() {
        assert!(matches!(
            parse_env(Some("x"), Some("1"), None, 42),
            Err(ActivationError::BadVariable {
                var: "LISTEN_PID",
                ..
            })
        ));
        for fds in ["-1", "lots", "99999999999999999999", "4097"] {
            assert!(matches!(
                parse_env(Some("42"), Some(fds), None, 42),
                Err(ActivationError::BadVariable {
                    var: "LISTEN_FDS",
                    ..
                })
            ));
        }
        assert_eq!(
            parse_env(Some("42"), Some("2"), Some("a"), 42),
            Err(ActivationError::NameCount { fds: 2, names: 1 })
        );
    }

    fn listening(name: &str) -> InheritedSocket {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        check(name.to_owned(), 0, OwnedFd::from(l)).expect("a listening socket")
    }

    #[test]
    fn sockets_match_pipes_by_name() {
        let set = Inherited {
            sockets: vec![listening("redis"), listening("web")],
        };
        let m = set.match_pipes(&["web", "redis"]).expect("match");
        assert_eq!(m.keys().collect::<Vec<_>>(), ["redis", "web"]);
        assert!(m["redis"].local.starts_with("[127.0.0.1]:"));
    }

    #[test]
    fn a_stray_socket_or_a_pipe_without_one_is_named() {
        let set = Inherited {
            sockets: vec![listening("redis"), listening("cache")],
        };
        let e = set.match_pipes(&["redis", "web"]).unwrap_err();
        assert_eq!(
            e,
            ActivationError::NoSuchPipe {
                socket: "cache".into(),
                pipes: vec!["redis".into(), "web".into()]
            }
        );
        let msg = e.to_string();
        assert!(msg.contains("cache") && msg.contains("redis, web"), "{msg}");
        let set = Inherited {
            sockets: vec![listening("redis")],
        };
        let e = set.match_pipes(&["redis", "web"]).unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("pipe web") && msg.contains("passed: redis"),
            "{msg}"
        );
        // No socket at all: every pipe binds its own.
        assert!(
            Inherited::default()
                .match_pipes(&["a"])
                .expect("ok")
                .is_empty()
        );
    }

    #[test]
    fn the_command_line_takes_exactly_one() {
        assert!(Inherited::default().take_single().expect("none").is_none());
        let one = Inherited {
            sockets: vec![listening("x")],
        };
        assert_eq!(one.take_single().expect("one").expect("some").name, "x");
        let two = Inherited {
            sockets: vec![listening("a"), listening("b")],
        };
        assert_eq!(
            two.take_single().unwrap_err(),
            ActivationError::TooManyForOnePipe(vec!["a".into(), "b".into()])
        );
    }

    #[test]
    fn only_listening_stream_sockets_pass() {
        let bound = Socket::new(Domain::IPV4, Type::STREAM, None).expect("socket");
        assert_eq!(
            check("b".into(), 0, bound.into()).unwrap_err(),
            ActivationError::NotListening { name: "b".into() }
        );
        let udp = std::net::UdpSocket::bind("127.0.0.1:0").expect("udp");
        assert_eq!(
            check("u".into(), 0, OwnedFd::from(udp)).unwrap_err(),
            ActivationError::NotStream { name: "u".into() }
        );
        let file = std::fs::File::open("/dev/null").expect("open");
        assert_eq!(
            check("f".into(), 7, OwnedFd::from(file)).unwrap_err(),
            ActivationError::NotASocket {
                name: "f".into(),
                fd: 7
            }
        );
        let (a, _b) = std::os::unix::net::UnixStream::pair().expect("pair");
        assert_eq!(
            check("c".into(), 0, OwnedFd::from(a)).unwrap_err(),
            ActivationError::NotListening { name: "c".into() }
        );
    }
}
