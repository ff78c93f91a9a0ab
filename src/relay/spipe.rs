//! `spipe`: the protocol client on standard input and output (spec §3.3).
//!
//! One connection, so plain blocking sockets and two threads suffice (spipe itself uses two
//! threads): resolve `-t` once, connect to its addresses in order (bound to `-b` if given)
//! within `-o`, run the client handshake of [`crate::proto::handshake`] within `-o`, then copy
//! standard input to the pipe and the pipe to standard output, independently.
//!
//! - EOF on standard input sends the server a FIN (`shutdown(SHUT_WR)`); the pipe is still
//!   read. EOF from the server ends standard output (after a flush). As in spipe, the program
//!   exits 0 once both directions have ended; any error ends it at once with exit status 1.
//! - Failures are reported in spipe's words ([`SpipeError`]): `Could not connect` (resolution,
//!   socket, bind or connect failed, or `-o` expired, including a Unix socket that does not
//!   exist, spiped issue #270), `Handshake failed` (wrong key, `-g` against a `-f` server, the
//!   server closed during the handshake), `Connection error` (`-o` expired during the
//!   handshake, as spipe 1.6.2 reports it; a bad packet, a truncated stream, a read or write
//!   error afterwards).

use std::fmt;
use std::fs::File;
use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::os::fd::AsFd;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use socket2::{SockAddr, Socket};

use crate::cli::SpipeArgs;
use crate::io::sys;
use crate::os::random::fill_random;
use crate::proto::crypt::Role;
use crate::proto::dh::DH_PRIVATE_LEN;
use crate::proto::handshake::{Handshake, Step};
use crate::proto::key::KeySet;
use crate::proto::stream::{Decoder, Encoder};
use crate::proto::{HANDSHAKE_LEN, HandshakeError, NONCE_LEN, PACKET_LEN};

use super::daemon::{self, StartupError};
use super::keyfile::{self, KeyFileError, KeyWarning};

/// Plaintext bytes read from standard input at a time: 64 packets' worth, so one read and one
/// write move 64 KiB (spipe reads at most 4 KiB at a time).
const STDIN_CHUNK: usize = 64 * 1024;

/// Ciphertext bytes read from the server at a time: 64 whole packets.
const SOCKET_CHUNK: usize = 64 * PACKET_LEN;

/// Why `spipe` stopped. `Display` gives spipe's own words; [`SpipeError::detail`] the cause.
#[derive(Debug)]
pub enum SpipeError {
    /// The key file could not be read (printed with its own message, as spiped does).
    Key(KeyFileError),
    /// `-t` or `-b` could not be resolved, no socket could be created, bound or connected, or
    /// `-o` expired while connecting.
    Connect(String),
    /// The handshake failed: a bad DH value or MAC, or the server closed the connection.
    Handshake(String),
    /// The handshake timed out (spipe's wording), or the connection, standard input or
    /// standard output failed after the handshake.
    Connection(String),
}

impl SpipeError {
    /// The underlying cause, in plain words (never key material).
    pub fn detail(&self) -> String {
        match self {
            Self::Key(e) => e.to_string(),
            Self::Connect(d) | Self::Handshake(d) | Self::Connection(d) => d.clone(),
        }
    }
}

impl fmt::Display for SpipeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Key(e) => e.fmt(f),
            Self::Connect(_) => f.write_str("Could not connect"),
            Self::Handshake(_) => f.write_str("Handshake failed"),
            Self::Connection(_) => f.write_str("Connection error"),
        }
    }
}

impl std::error::Error for SpipeError {}

/// Reads `args.key`, returning the key set and the [`KeyWarning`]s to print.
///
/// # Errors
/// [`SpipeError::Key`] when the file (or standard input) cannot be read.
pub fn load_key(args: &SpipeArgs) -> Result<(KeySet, Vec<KeyWarning>), SpipeError> {
    keyfile::read_startup_keys(std::slice::from_ref(&args.key)).map_err(SpipeError::Key)
}

/// Runs spipe with `args` and an already loaded key ([`load_key`]) until both directions have
/// ended. Returns `Ok(())` for exit status 0.
///
/// # Errors
/// A [`SpipeError`] (see the module documentation); the caller prints it and exits 1.
pub fn run(args: &SpipeArgs, keys: KeySet) -> Result<(), SpipeError> {
    let deadline = Instant::now() + args.timeout;
    let sock = connect(args, deadline)?;
    if !args.no_keepalive {
        let _ = sock.set_keepalive(true);
    }
    let (encoder, decoder, leftover) = handshake(&sock, args, keys, deadline)?;
    let _ = sock.set_read_timeout(None);
    let _ = sock.set_write_timeout(None);
    let _ = sock.set_tcp_nodelay(true);
    pump(sock, encoder, decoder, leftover)
}

/// Connects to the first `-t` address that accepts, bound to `-b` if given, within `deadline`.
fn connect(args: &SpipeArgs, deadline: Instant) -> Result<Socket, SpipeError> {
    let failed = |e: StartupError| SpipeError::Connect(e.to_string());
    let targets = daemon::resolve(&args.target).map_err(failed)?;
    let bind = match &args.bind {
        Some(spec) => Some(
            daemon::resolve_bind(spec)
                .and_then(|a| daemon::first_address(spec, a))
                .map_err(failed)?,
        ),
        None => None,
    };
    let mut last = String::from("no address");
    for addr in &targets {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(SpipeError::Connect("connection timed out".into()));
        }
        match connect_one(addr, bind.as_ref(), left) {
            Ok(s) => return Ok(s),
            Err(e) => last = e,
        }
    }
    Err(SpipeError::Connect(last))
}

fn connect_one(
    addr: &SockAddr,
    bind: Option<&SockAddr>,
    timeout: Duration,
) -> Result<Socket, String> {
    let fd = sys::stream_socket_bound(addr, bind).map_err(|e| e.to_string())?;
    let sock = Socket::from(fd);
    sock.connect_timeout(addr, timeout)
        .map_err(|e| e.to_string())?;
    Ok(sock)
}

/// Runs the client handshake on `sock` within `deadline`. Returns the session's encoder and
/// decoder and any bytes the server sent after its handshake message.
fn handshake(
    sock: &Socket,
    args: &SpipeArgs,
    keys: KeySet,
    deadline: Instant,
) -> Result<(Encoder, Decoder, Vec<u8>), SpipeError> {
    let failed = |d: String| SpipeError::Handshake(d);
    // spipe 1.6.2 reports a handshake that ran out of time as `Connection error`.
    let timed_out = || SpipeError::Connection("handshake timed out".into());
    let mut nonce = [0u8; NONCE_LEN];
    let mut private = zeroize::Zeroizing::new([0u8; DH_PRIVATE_LEN]);
    fill_random(&mut nonce)
        .and_then(|()| fill_random(&mut private[..]))
        .map_err(|e| failed(format!("cannot read random bytes: {e}")))?;
    let exchange = args.pfs.exchange(args.x25519).with_private(*private);
    let mut hs = Handshake::with_exchange(Role::Client, keys, nonce, exchange);
    let mut stream = sock;
    let mut buf = vec![0u8; HANDSHAKE_LEN + SOCKET_CHUNK];
    let mut leftover = Vec::new();
    let hs_failed = |e: HandshakeError| failed(e.to_string());
    let mut step = hs.next_step().map_err(hs_failed)?;
    let session = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(timed_out());
        }
        let timed = |e: io::Error| match e.kind() {
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => timed_out(),
            _ => failed(e.to_string()),
        };
        step = match step {
            Step::Send(out) => {
                let _ = sock.set_write_timeout(Some(left));
                let n = stream.write(out).map_err(timed)?;
                hs.sent(n).map_err(hs_failed)?
            }
            Step::NeedInput(_) => {
                let _ = sock.set_read_timeout(Some(left));
                let n = stream.read(&mut buf).map_err(timed)?;
                if n == 0 {
                    return Err(failed("the server closed the connection".into()));
                }
                let (used, step) = hs.read(&buf[..n]).map_err(hs_failed)?;
                leftover.extend_from_slice(&buf[used..n]);
                step
            }
            Step::Done(session) => break session,
            // The key pair is handed in up front and a client derives at once: neither is
            // ever asked for here.
            Step::NeedKeyPair(_) | Step::Derive => {
                return Err(failed("handshake incomplete".into()));
            }
        };
    };
    let (enc, dec) = session.into_stream();
    Ok((enc, dec, leftover))
}

/// Which direction finished, for the joining thread.
enum Done {
    Upload(Result<(), SpipeError>),
    Download(Result<(), SpipeError>),
}

/// Copies standard input to the pipe (in a thread) and the pipe to standard output, until both
/// directions have ended or one fails.
fn pump(
    sock: Socket,
    encoder: Encoder,
    decoder: Decoder,
    leftover: Vec<u8>,
) -> Result<(), SpipeError> {
    let io_err = |what: &str, e: io::Error| SpipeError::Connection(format!("{what}: {e}"));
    let up_sock = sock.try_clone().map_err(|e| io_err("dup", e))?;
    let stdin = io::stdin()
        .as_fd()
        .try_clone_to_owned()
        .map_err(|e| io_err("standard input", e))?;
    let stdout = io::stdout()
        .as_fd()
        .try_clone_to_owned()
        .map_err(|e| io_err("standard output", e))?;
    let (tx, rx) = mpsc::channel();
    let up_tx = tx.clone();
    std::thread::spawn(move || {
        let r = upload(File::from(stdin), &up_sock, encoder);
        let _ = up_tx.send(Done::Upload(r));
    });
    let down_sock = sock.try_clone().map_err(|e| io_err("dup", e))?;
    std::thread::spawn(move || {
        let r = download(&down_sock, File::from(stdout), decoder, leftover);
        let _ = tx.send(Done::Download(r));
    });
    let mut up_done = false;
    let mut down_done = false;
    while !(up_done && down_done) {
        match rx.recv() {
            Ok(Done::Upload(r)) => {
                r?;
                up_done = true;
            }
            Ok(Done::Download(r)) => {
                r?;
                down_done = true;
            }
            // Both senders gone without a report: a thread panicked.
            Err(_) => return Err(SpipeError::Connection("a copying thread failed".into())),
        }
    }
    drop(sock);
    Ok(())
}

/// Standard input → encrypt → socket; at EOF, `shutdown(SHUT_WR)`.
fn upload(mut input: File, sock: &Socket, mut encoder: Encoder) -> Result<(), SpipeError> {
    let mut plain = vec![0u8; STDIN_CHUNK];
    let mut wire = Vec::with_capacity(STDIN_CHUNK / 1024 * PACKET_LEN + PACKET_LEN);
    let mut out = sock;
    loop {
        let n = match input.read(&mut plain) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                return Err(SpipeError::Connection(format!(
                    "reading standard input: {e}"
                )));
            }
        };
        wire.clear();
        encoder
            .encode(&plain[..n], &mut wire)
            .map_err(|e| SpipeError::Connection(e.to_string()))?;
        out.write_all(&wire)
            .map_err(|e| SpipeError::Connection(format!("sending: {e}")))?;
    }
    sock.shutdown(Shutdown::Write)
        .map_err(|e| SpipeError::Connection(format!("shutdown: {e}")))
}

/// Socket → decrypt → standard output, until the server's EOF; then flush and close stdout.
fn download(
    sock: &Socket,
    mut output: File,
    mut decoder: Decoder,
    leftover: Vec<u8>,
) -> Result<(), SpipeError> {
    let mut plain = Vec::with_capacity(SOCKET_CHUNK);
    let mut wire = vec![0u8; SOCKET_CHUNK];
    let mut input = sock;
    let mut write_out = |decoder: &mut Decoder, bytes: &[u8], plain: &mut Vec<u8>| {
        plain.clear();
        let decoded = decoder.decode(bytes, plain);
        // Deliver what verified before the fault, then report it.
        output
            .write_all(plain)
            .map_err(|e| SpipeError::Connection(format!("writing standard output: {e}")))?;
        decoded.map_err(|e| SpipeError::Connection(e.to_string()))
    };
    write_out(&mut decoder, &leftover, &mut plain)?;
    loop {
        let n = match input.read(&mut wire) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(SpipeError::Connection(format!("receiving: {e}"))),
        };
        write_out(&mut decoder, &wire[..n], &mut plain)?;
    }
    decoder
        .finish()
        .map_err(|e| SpipeError::Connection(e.to_string()))?;
    output
        .flush()
        .map_err(|e| SpipeError::Connection(format!("writing standard output: {e}")))
}
