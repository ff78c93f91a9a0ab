//! Detaching from the terminal the way spiped's `daemonize` does (spec §4), with the parent
//! waiting for the child's startup result so that a startup error still reaches the shell.

#![allow(unsafe_code)]

use std::io::{Read, Write};
use std::os::fd::OwnedFd;

use nix::fcntl::OFlag;
use nix::unistd::{ForkResult, dup2_stderr, dup2_stdin, dup2_stdout, fork, pipe2, setsid};

use super::errno;
use crate::io::Errno;

/// The byte a daemonised child sends its waiting parent when startup succeeded.
const READY: u8 = 0;

/// The parent's exit status when the child reported a successful startup.
const EXIT_READY: i32 = 0;

/// The parent's exit status when the child exited or gave up before reporting success.
const EXIT_FAILED: i32 = 1;

/// Detaches from the terminal: `fork`; the child becomes a session leader (`setsid`) and
/// continues; the parent waits until the child calls [`Detached::ready`] (after writing its
/// pidfile and finishing its startup) and then exits 0, or exits 1 if the child exits or drops
/// the [`Detached`] first, so a startup error in the child still reaches the shell as exit
/// status 1 (the child prints the message itself: its standard error is still the caller's
/// until [`Detached::ready`]). Call it before any thread or io_uring instance exists.
///
/// The parent leaves with `_exit`, running no destructor and no exit handler: what it owns
/// (the listening socket, a Unix socket path to remove on exit) belongs to the child now.
///
/// # Errors
/// The `pipe2`, `fork` or `setsid` error; the process is then still attached.
pub fn daemonize() -> Result<Detached, Errno> {
    let (rd, wr) = pipe2(OFlag::O_CLOEXEC).map_err(errno)?;
    // SAFETY: called while the process is single-threaded (the documented contract), so the
    // child may keep running arbitrary code after fork.
    match unsafe { fork() }.map_err(errno)? {
        ForkResult::Child => {}
        ForkResult::Parent { .. } => {
            drop(wr);
            let mut byte = [1u8; 1];
            let status = match std::fs::File::from(rd).read(&mut byte) {
                Ok(1) if byte[0] == READY => EXIT_READY,
                _ => EXIT_FAILED,
            };
            // `nix` has no `_exit`, and `std::process::exit` would run exit handlers that are
            // the child's to run (stdio buffers inherited through fork would be flushed twice).
            // SAFETY: `_exit` ends the process at once; it touches no memory of ours.
            unsafe { libc::_exit(status) }
        }
    }
    drop(rd);
    setsid().map_err(errno)?;
    Ok(Detached { pipe: wr })
}

/// The child's side of [`daemonize`]: tells the waiting parent how startup went. Dropping it
/// without [`Detached::ready`] makes the parent exit 1.
#[derive(Debug)]
pub struct Detached {
    pipe: OwnedFd,
}

impl Detached {
    /// Points stdin, stdout and stderr at `/dev/null` and lets the parent exit 0.
    ///
    /// # Errors
    /// The `open` or `dup2` error; the parent then exits 1.
    pub fn ready(self) -> Result<(), Errno> {
        let null = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/null")
            .map_err(|e| crate::io::sys::errno_of(&e))?;
        dup2_stdin(&null)
            .and_then(|()| dup2_stdout(&null))
            .and_then(|()| dup2_stderr(&null))
            .map_err(errno)?;
        std::fs::File::from(self.pipe)
            .write_all(&[READY])
            .map_err(|e| crate::io::sys::errno_of(&e))
    }
}
