//! The pipe's per-leg TCP options reach the right sockets through [`Action::SetSockOpts`]:
//! the fake driver hands out real (unconnected) sockets, whose options are read back.

use std::time::Duration;

use socket2::{Domain, SockRef};

use super::*;

/// (TCP_KEEPIDLE, TCP_KEEPINTVL, TCP_KEEPCNT, TCP_USER_TIMEOUT, SO_KEEPALIVE) of handle `h`.
fn options(s: &Sim, h: Handle) -> (Duration, Duration, u32, Option<Duration>, bool) {
    let fd = s.relay.io.sockets.get(&h).expect("a real socket");
    let r = SockRef::from(fd);
    (
        r.tcp_keepalive_time().expect("TCP_KEEPIDLE"),
        r.tcp_keepalive_interval().expect("TCP_KEEPINTVL"),
        r.tcp_keepalive_retries().expect("TCP_KEEPCNT"),
        r.tcp_user_timeout().expect("TCP_USER_TIMEOUT"),
        r.keepalive().expect("SO_KEEPALIVE"),
    )
}

fn source_opts() -> TcpOptions {
    TcpOptions {
        keepalive_idle: Some(11),
        keepalive_interval: Some(3),
        keepalive_count: Some(4),
        user_timeout: None,
    }
}

fn target_opts() -> TcpOptions {
    TcpOptions {
        keepalive_idle: Some(22),
        keepalive_interval: None,
        keepalive_count: Some(5),
        user_timeout: Some(Duration::from_millis(1500)),
    }
}

#[test]
fn each_leg_gets_its_own_options_once_the_pumps_start() {
    for mode in [Mode::Encrypt, Mode::Decrypt] {
        let mut cfg = config(mode);
        cfg.source_tcp = source_opts();
        cfg.target_tcp = target_opts();
        let mut s = Sim::new(cfg);
        s.io().real_sockets = Some(Domain::IPV4);
        let fresh = {
            let probe = s.io().socket_handle();
            options(&s, probe)
        };
        let (accepted, target, _peer) = match mode {
            Mode::Encrypt => established_e(&mut s),
            Mode::Decrypt => established_d(&mut s),
        };
        assert!(
            s.has_recv(accepted) && s.has_recv(target),
            "{mode:?}: pumping"
        );
        assert_eq!(
            options(&s, accepted),
            (
                Duration::from_secs(11),
                Duration::from_secs(3),
                4,
                None,
                true
            ),
            "{mode:?}: the accepted socket has the source leg's options"
        );
        assert_eq!(
            options(&s, target),
            (
                Duration::from_secs(22),
                fresh.1,
                5,
                Some(Duration::from_millis(1500)),
                true
            ),
            "{mode:?}: the target socket has the target leg's (the interval left alone)"
        );
    }
}

#[test]
fn no_options_leave_the_kernels_defaults_and_nothing_is_set_before_the_handshake() {
    let mut cfg = config(Mode::Decrypt);
    cfg.source_tcp = source_opts();
    let mut s = Sim::new(cfg);
    s.io().real_sockets = Some(Domain::IPV4);
    let probe = s.io().socket_handle();
    let fresh = options(&s, probe);
    // Mid-handshake: nothing set yet (spiped sets its options once the pumps start).
    let client = s.accept();
    let _nonce = s.sent(client);
    assert_eq!(options(&s, client), fresh, "options before the handshake");
    s.advance(TIMEOUT);
    s.fire(Op::Deadline);
    s.finish_closes();

    // A pipe without options: only SO_KEEPALIVE (spiped's), every timer the kernel's.
    let mut s = Sim::new(config(Mode::Encrypt));
    s.io().real_sockets = Some(Domain::IPV4);
    let (client, target, _peer) = established_e(&mut s);
    for h in [client, target] {
        let (idle, intvl, cnt, ut, on) = options(&s, h);
        assert_eq!((idle, intvl, cnt, ut), (fresh.0, fresh.1, fresh.2, fresh.3));
        assert!(on, "SO_KEEPALIVE as spiped sets it");
    }
}

#[test]
fn unix_sockets_are_skipped_and_the_connection_runs() {
    let mut cfg = config(Mode::Encrypt);
    cfg.source_tcp = source_opts();
    cfg.target_tcp = target_opts();
    let mut s = Sim::new(cfg);
    s.io().real_sockets = Some(Domain::UNIX);
    let (client, target, mut peer) = established_e(&mut s);
    // Still relays.
    s.recv(client, b"over unix");
    let sealed = s.sent(target);
    let (_, dec) = peer.stream.as_mut().expect("peer session");
    let mut plain = Vec::new();
    dec.decode(&sealed, &mut plain).expect("decode");
    assert_eq!(plain, b"over unix");
    assert!(s.drops().is_empty());
}

#[test]
fn a_dead_peer_reads_as_unreachable_with_a_stable_label() {
    let timed_out = Errno(libc::ETIMEDOUT);
    for r in [
        DropReason::Recv(Side::Crypt, timed_out),
        DropReason::Send(Side::Crypt, timed_out),
    ] {
        assert_eq!(r.kind(), "peer_timeout");
        let text = r.to_string();
        assert!(
            text.starts_with("encrypted peer unreachable: timed out (")
                && text.contains("keep-alive")
                && text.contains("TCP_USER_TIMEOUT"),
            "{text}"
        );
        assert!(!r.is_local_bug());
    }
    for e in [libc::EHOSTUNREACH, libc::ENETUNREACH] {
        for r in [
            DropReason::Recv(Side::Plain, Errno(e)),
            DropReason::Send(Side::Plain, Errno(e)),
        ] {
            assert_eq!(r.kind(), "peer_unreachable");
            let text = r.to_string();
            assert!(text.starts_with("plaintext peer unreachable: "), "{text}");
            assert!(text.contains("TCP_USER_TIMEOUT"), "{text}");
        }
    }
    // Other errors keep their labels.
    assert_eq!(
        DropReason::Send(Side::Plain, Errno(libc::EPIPE)).kind(),
        "send_failed"
    );
    assert_eq!(
        DropReason::Recv(Side::Plain, Errno(libc::EIO)).kind(),
        "recv_failed"
    );
}

#[test]
fn etimedout_on_a_pumping_connection_drops_it_as_peer_timeout() {
    let mut s = Sim::new(config(Mode::Decrypt));
    let (client, _target, _peer) = established_d(&mut s);
    let token = s.io().recvs.remove(&client).expect("receive armed");
    s.deliver(Event::RecvFailed {
        token,
        error: Errno(libc::ETIMEDOUT),
    });
    assert_eq!(s.drops(), ["peer_timeout"]);
    assert_eq!(s.io().closes.len(), 2, "both sockets closed");
    s.finish_closes();
    assert_eq!(s.stats().active, 0);
}
