//! A pipe leg's TCP options ([`TcpOptions`]: keep-alive timing and `TCP_USER_TIMEOUT`) on a
//! relay socket. The event loop calls [`apply`] for each socket of a connection when the
//! connection's [`Action::SetSockOpts`](super::conn::Action::SetSockOpts) comes: the accepted
//! socket gets the pipe's `source_tcp`, the target socket its `target_tcp`.
//!
//! With these set, a peer that vanishes (cable cut, host gone, a firewall dropping the flow) is
//! noticed by the kernel within the configured time, and the pending receive or send fails with
//! `ETIMEDOUT`, which the connection reports as
//! [`DropReason::kind`](super::DropReason::kind) `peer_timeout`. Without them (spiped's
//! behaviour) the kernel's defaults apply: two hours of idleness before the first probe, and
//! about fifteen minutes of retransmissions for unacknowledged data.

use std::os::fd::BorrowedFd;
use std::time::Duration;

use crate::config::TcpOptions;
use crate::io::sys::{self, SysError};

/// Sets `opts` on `fd`: the keep-alive timing (which also turns `SO_KEEPALIVE` on) when any
/// keep-alive field is set, then `TCP_USER_TIMEOUT` when it is set. Options left `None` keep
/// the socket's current values. Does nothing for [`TcpOptions::default`].
///
/// # Errors
/// The first [`SysError::SetOption`]; see [`is_not_tcp`] for the error a Unix socket gives.
pub fn apply(fd: BorrowedFd<'_>, opts: &TcpOptions) -> Result<(), SysError> {
    if opts.sets_keepalive() {
        let secs = |s: Option<u32>| s.map(|s| Duration::from_secs(u64::from(s)));
        sys::set_keepalive_timing(
            fd,
            secs(opts.keepalive_idle),
            secs(opts.keepalive_interval),
            opts.keepalive_count,
        )?;
    }
    if let Some(t) = opts.user_timeout {
        sys::set_user_timeout(fd, t)?;
    }
    Ok(())
}

/// Whether `e` says the socket is not a TCP socket (a Unix socket: `EOPNOTSUPP`, or
/// `ENOPROTOOPT`), so the options do not apply and the failure is not worth a log line.
pub fn is_not_tcp(e: &SysError) -> bool {
    matches!(e, SysError::SetOption(e) if e.0 == libc::EOPNOTSUPP || e.0 == libc::ENOPROTOOPT)
}

#[cfg(test)]
mod tests {
    use super::*;
    use socket2::{Domain, SockRef, Socket, Type};
    use std::os::fd::AsFd;

    fn tcp() -> Socket {
        Socket::new(Domain::IPV4, Type::STREAM, None).expect("socket")
    }

    /// (SO_KEEPALIVE, TCP_KEEPIDLE, TCP_KEEPINTVL, TCP_KEEPCNT, TCP_USER_TIMEOUT) of `s`.
    fn read(s: &Socket) -> (bool, Duration, Duration, u32, Option<Duration>) {
        let r = SockRef::from(s);
        (
            r.keepalive().expect("SO_KEEPALIVE"),
            r.tcp_keepalive_time().expect("TCP_KEEPIDLE"),
            r.tcp_keepalive_interval().expect("TCP_KEEPINTVL"),
            r.tcp_keepalive_retries().expect("TCP_KEEPCNT"),
            r.tcp_user_timeout().expect("TCP_USER_TIMEOUT"),
        )
    }

    #[test]
    fn every_field_lands_in_its_socket_option() {
        let s = tcp();
        let opts = TcpOptions {
            keepalive_idle: Some(7),
            keepalive_interval: Some(3),
            keepalive_count: Some(4),
            user_timeout: Some(Duration::from_millis(2500)),
        };
        apply(s.as_fd(), &opts).expect("apply");
        assert_eq!(
            read(&s),
            (
                true,
                Duration::from_secs(7),
                Duration::from_secs(3),
                4,
                Some(Duration::from_millis(2500))
            )
        );
    }

    #[test]
    fn unset_fields_keep_the_sockets_values() {
        let s = tcp();
        let before = read(&s);
        apply(s.as_fd(), &TcpOptions::default()).expect("apply nothing");
        assert_eq!(read(&s), before, "the default options touch nothing");
        assert!(!before.0, "a fresh socket has no keep-alives");

        // Only the idle time: keep-alives on, interval and count stay the kernel's.
        let only_idle = TcpOptions {
            keepalive_idle: Some(9),
            ..TcpOptions::default()
        };
        apply(s.as_fd(), &only_idle).expect("apply idle");
        let after = read(&s);
        assert!(after.0, "keep-alives turned on");
        assert_eq!(after.1, Duration::from_secs(9));
        assert_eq!((after.2, after.3, after.4), (before.2, before.3, before.4));

        // Only the user timeout: keep-alive settings untouched.
        let t = tcp();
        let before = read(&t);
        let only_ut = TcpOptions {
            user_timeout: Some(Duration::from_secs(4)),
            ..TcpOptions::default()
        };
        apply(t.as_fd(), &only_ut).expect("apply user timeout");
        let after = read(&t);
        assert_eq!(
            (after.0, after.1, after.2, after.3),
            (before.0, before.1, before.2, before.3)
        );
        assert_eq!(after.4, Some(Duration::from_secs(4)));
    }

    #[test]
    fn user_timeout_zero_is_the_kernel_default_and_sub_millisecond_is_one() {
        let s = tcp();
        let set = |d: Duration| {
            let opts = TcpOptions {
                user_timeout: Some(d),
                ..TcpOptions::default()
            };
            apply(s.as_fd(), &opts).expect("apply");
            SockRef::from(&s).tcp_user_timeout().expect("get")
        };
        assert_eq!(set(Duration::from_secs(3)), Some(Duration::from_secs(3)));
        assert_eq!(set(Duration::ZERO), None, "0 restores the default");
        assert_eq!(
            set(Duration::from_micros(300)),
            Some(Duration::from_millis(1)),
            "never rounded down to off"
        );
    }

    #[test]
    fn the_largest_valid_values_are_accepted_and_unix_sockets_are_told_apart() {
        use crate::config::pipe::{MAX_KEEPALIVE_COUNT, MAX_KEEPALIVE_SECS, MAX_USER_TIMEOUT_MS};
        let s = tcp();
        let max = TcpOptions {
            keepalive_idle: Some(MAX_KEEPALIVE_SECS),
            keepalive_interval: Some(MAX_KEEPALIVE_SECS),
            keepalive_count: Some(MAX_KEEPALIVE_COUNT),
            user_timeout: Some(Duration::from_millis(u64::from(MAX_USER_TIMEOUT_MS))),
        };
        apply(s.as_fd(), &max).expect("the configuration's limits are the kernel's");
        let too_big = TcpOptions {
            keepalive_idle: Some(MAX_KEEPALIVE_SECS + 1),
            ..TcpOptions::default()
        };
        let e = apply(s.as_fd(), &too_big).expect_err("beyond MAX_TCP_KEEPIDLE");
        assert!(!is_not_tcp(&e), "{e}");

        let (a, _b) = std::os::unix::net::UnixStream::pair().expect("socketpair");
        let e = apply(a.as_fd(), &max).expect_err("a Unix socket has no TCP options");
        assert!(is_not_tcp(&e), "{e}");
        let ut = TcpOptions {
            user_timeout: Some(Duration::from_secs(1)),
            ..TcpOptions::default()
        };
        let e = apply(a.as_fd(), &ut).expect_err("nor TCP_USER_TIMEOUT");
        assert!(is_not_tcp(&e), "{e}");
    }
}
