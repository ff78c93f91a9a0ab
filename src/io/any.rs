//! Choosing the backend at run time: [`Backend`] names one, [`AnyDriver`] runs whichever was
//! chosen behind a single type, so the relay and its loop are compiled once.

use std::fmt;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::time::Duration;

use super::epoll::Epoll;
use super::uring::Uring;
use super::{Driver, Event, Handle, RecvBuf, SockAddr, SubmitError, TimerId, Token, WaitError};

/// A [`Driver`] implementation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// io_uring ([`crate::io::uring`]), the default.
    Uring,
    /// epoll ([`crate::io::epoll`]), the fallback where io_uring is blocked or missing.
    Epoll,
}

impl Backend {
    /// The backend's name as users write it: `uring` or `epoll`.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Uring => "uring",
            Backend::Epoll => "epoll",
        }
    }

    /// Parses a backend name: `uring` (or `io_uring`) or `epoll`, in any case. `None` for
    /// anything else.
    pub fn parse(name: &str) -> Option<Backend> {
        match name.to_ascii_lowercase().as_str() {
            "uring" | "io_uring" | "io-uring" => Some(Backend::Uring),
            "epoll" => Some(Backend::Epoll),
            _ => None,
        }
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Either backend, chosen at start; every [`Driver`] call is passed on unchanged.
#[derive(Debug)]
pub enum AnyDriver {
    /// The io_uring backend.
    Uring(Uring),
    /// The epoll backend.
    Epoll(Epoll),
}

impl AnyDriver {
    /// Which backend this is.
    pub fn backend(&self) -> Backend {
        match self {
            AnyDriver::Uring(_) => Backend::Uring,
            AnyDriver::Epoll(_) => Backend::Epoll,
        }
    }
}

macro_rules! pass_on {
    ($self:ident, $d:ident => $call:expr) => {
        match $self {
            AnyDriver::Uring($d) => $call,
            AnyDriver::Epoll($d) => $call,
        }
    };
}

impl Driver for AnyDriver {
    fn adopt(&mut self, fd: OwnedFd) -> Handle {
        pass_on!(self, d => d.adopt(fd))
    }

    fn fd(&self, handle: Handle) -> Option<BorrowedFd<'_>> {
        pass_on!(self, d => d.fd(handle))
    }

    fn accept(&mut self, listener: Handle, token: Token) -> Result<(), SubmitError> {
        pass_on!(self, d => d.accept(listener, token))
    }

    fn cancel_accept(&mut self, listener: Handle) {
        pass_on!(self, d => d.cancel_accept(listener))
    }

    fn connect_from(
        &mut self,
        addr: &SockAddr,
        bind: Option<&SockAddr>,
        timeout: Duration,
        token: Token,
    ) -> Result<Handle, SubmitError> {
        pass_on!(self, d => d.connect_from(addr, bind, timeout, token))
    }

    fn recv(&mut self, handle: Handle, token: Token) -> Result<(), SubmitError> {
        pass_on!(self, d => d.recv(handle, token))
    }

    fn data(&self, buf: &RecvBuf) -> &[u8] {
        pass_on!(self, d => d.data(buf))
    }

    fn recycle(&mut self, buf: RecvBuf) {
        pass_on!(self, d => d.recycle(buf))
    }

    fn release_idle_buffers(&mut self) -> usize {
        pass_on!(self, d => d.release_idle_buffers())
    }

    fn send(&mut self, handle: Handle, buf: Vec<u8>, token: Token) -> Result<(), SubmitError> {
        pass_on!(self, d => d.send(handle, buf, token))
    }

    fn shutdown_write(&mut self, handle: Handle, token: Token) -> Result<(), SubmitError> {
        pass_on!(self, d => d.shutdown_write(handle, token))
    }

    fn close(&mut self, handle: Handle, token: Token) -> Result<(), SubmitError> {
        pass_on!(self, d => d.close(handle, token))
    }

    fn timer(&mut self, after: Duration, token: Token) -> TimerId {
        pass_on!(self, d => d.timer(after, token))
    }

    fn cancel_timer(&mut self, id: TimerId) {
        pass_on!(self, d => d.cancel_timer(id))
    }

    fn wait(
        &mut self,
        events: &mut Vec<Event>,
        timeout: Option<Duration>,
    ) -> Result<usize, WaitError> {
        pass_on!(self, d => d.wait(events, timeout))
    }
}

#[cfg(test)]
mod tests {
    use super::Backend;

    #[test]
    fn names_round_trip_and_unknown_names_are_refused() {
        for b in [Backend::Uring, Backend::Epoll] {
            assert_eq!(Backend::parse(b.name()), Some(b));
        }
        assert_eq!(Backend::parse("IO_URING"), Some(Backend::Uring));
        assert_eq!(Backend::parse("EPOLL"), Some(Backend::Epoll));
        assert_eq!(Backend::parse("poll"), None);
        assert_eq!(Backend::parse(""), None);
    }
}
