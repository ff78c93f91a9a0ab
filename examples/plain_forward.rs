//! A plaintext forwarder on spiperelay's own io layer, for benchmarks: the relay's event loop,
//! io_uring driver, receive-buffer pool and backpressure, with no protocol and no crypto. What
//! it costs per request or per GiB is what the io path alone costs, so a benchmark run of
//! `plain_forward` next to `spiperelay` shows how much of the relay's CPU is the kernel's TCP
//! work that any relay in this position pays (PERFORMANCE.md, "The io path without crypto").
//!
//! ```text
//! cargo build --release --example plain_forward
//! target/release/examples/plain_forward -s SOURCE -t TARGET [--backend uring|epoll]
//! ```
//!
//! `SOURCE` and `TARGET` are in spiped's address syntax (`[127.0.0.1]:8025`, `host:port`, or a
//! Unix socket path starting with `/`). It runs in the foreground until it is killed (SIGTERM's
//! default action), logs nothing per connection, and exits with status 1 and one line on
//! standard error if its arguments or its setup fail. Never use it where the traffic needs
//! protecting: it forwards bytes as they are.

use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use spiperelay::cli::addr::SockAddrSpec;
use spiperelay::io::Driver;
use spiperelay::io::epoll::{Epoll, EpollConfig};
use spiperelay::io::forward::{ForwardConfig, Forwarder};
use spiperelay::io::sys;
use spiperelay::io::uring::{Uring, UringConfig};
use spiperelay::relay::daemon::{self, RECV_BUFFER_SIZE, RECV_BUFFERS};

/// How long a connect to the target may take (spiped's default `-o`).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// How long to wait before re-arming an accept that failed (the daemon's back-off).
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Submission queue entries for the io_uring backend (the daemon's ring size).
const RING_ENTRIES: u32 = 4096;

const USAGE: &str =
    "usage: plain_forward -s <source socket> -t <target socket> [--backend uring|epoll]";

struct Args {
    source: SockAddrSpec,
    target: SockAddrSpec,
    epoll: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut source = None;
    let mut target = None;
    let mut epoll = false;
    let mut args = std::env::args_os().skip(1);
    while let Some(arg) = args.next() {
        let flag = arg.to_string_lossy().into_owned();
        let mut value = || {
            args.next()
                .ok_or_else(|| format!("option {flag} needs a value\n{USAGE}"))
        };
        match flag.as_str() {
            "-s" | "-t" => {
                let text = value()?;
                let spec = SockAddrSpec::parse_os(&text).map_err(|e| format!("{flag}: {e}"))?;
                let slot = if flag == "-s" {
                    &mut source
                } else {
                    &mut target
                };
                if slot.replace(spec).is_some() {
                    return Err(format!("option {flag} given more than once"));
                }
            }
            "--backend" => match value()?.to_str() {
                Some("uring") => epoll = false,
                Some("epoll") => epoll = true,
                _ => return Err(format!("--backend must be uring or epoll\n{USAGE}")),
            },
            _ => return Err(format!("unexpected argument {flag:?}\n{USAGE}")),
        }
    }
    match (source, target) {
        (Some(source), Some(target)) => Ok(Args {
            source,
            target,
            epoll,
        }),
        _ => Err(format!("-s and -t are required\n{USAGE}")),
    }
}

fn listen(spec: &SockAddrSpec) -> Result<std::os::fd::OwnedFd, String> {
    let addr = daemon::resolve(spec)
        .map_err(|e| e.to_string())?
        .into_iter()
        .next()
        .ok_or_else(|| "-s: no address".to_owned())?;
    let fd = match (addr.as_pathname(), addr.as_socket()) {
        (Some(path), _) => sys::listen_unix(path),
        (None, Some(sa)) => sys::listen_tcp(sa),
        (None, None) => return Err("-s: not a TCP or Unix socket address".to_owned()),
    };
    fd.map_err(|e| format!("-s: {e}"))
}

fn serve<D: Driver>(
    io: D,
    listener: std::os::fd::OwnedFd,
    cfg: ForwardConfig,
) -> Result<(), String> {
    let mut fwd = Forwarder::new(io, listener, cfg).map_err(|e| e.to_string())?;
    let never = AtomicBool::new(false);
    fwd.run_until(&never).map_err(|e| e.to_string())
}

fn run() -> Result<(), String> {
    let args = parse_args()?;
    let target = daemon::resolve(&args.target)
        .map_err(|e| e.to_string())?
        .into_iter()
        .next()
        .ok_or_else(|| "-t: no address".to_owned())?;
    let listener = listen(&args.source)?;
    let cfg = ForwardConfig {
        target,
        connect_timeout: CONNECT_TIMEOUT,
        accept_backoff: ACCEPT_BACKOFF,
    };
    if args.epoll {
        let io = Epoll::new(EpollConfig {
            recv_buffers: RECV_BUFFERS,
            recv_buffer_size: RECV_BUFFER_SIZE,
            ..EpollConfig::default()
        })
        .map_err(|e| e.to_string())?;
        serve(io, listener, cfg)
    } else {
        let io = Uring::new(UringConfig {
            entries: RING_ENTRIES,
            recv_buffers: RECV_BUFFERS,
            recv_buffer_size: RECV_BUFFER_SIZE,
        })
        .map_err(|e| e.to_string())?;
        serve(io, listener, cfg)
    }
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("plain_forward: {e}");
            ExitCode::FAILURE
        }
    }
}
