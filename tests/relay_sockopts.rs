//! Socket options per connection (issue 7): the relay sets `TCP_NODELAY` and `SO_KEEPALIVE`
//! (0 with `-j`) once on its TCP listener instead of on every accepted socket, which relies on
//! Linux copying both options from the listener at accept. Checked here: the relay does set
//! them on the listener, and this kernel's accepted sockets do inherit them.

use std::net::{TcpListener, TcpStream};
use std::os::fd::{AsFd, OwnedFd};
use std::time::Duration;

use socket2::SockRef;
use spiperelay::cli::Mode;
use spiperelay::io::SockAddr;
use spiperelay::io::epoll::{Epoll, EpollConfig};
use spiperelay::io::sys;
use spiperelay::proto::handshake::ExchangePolicy;
use spiperelay::proto::key::{Key, KeySet};
use spiperelay::relay::keys::{KeyRing, RingMode};
use spiperelay::relay::log::{Logger, Sink};
use spiperelay::relay::{PipeConfig, Relay};

fn config(keepalive: bool) -> PipeConfig {
    PipeConfig {
        name: "default".into(),
        mode: Mode::Decrypt,
        targets: vec![SockAddr::from(
            "127.0.0.1:9".parse::<std::net::SocketAddr>().expect("addr"),
        )],
        keys: KeyRing::new(
            KeySet::single(Key::from_key_file(b"sockopts test key\n")),
            1,
            RingMode::Decrypt,
        )
        .expect("key ring"),
        exchange: ExchangePolicy::Group14NoPfs,
        max_connections: None,
        timeout: Duration::from_secs(5),
        keepalive,
        accept_backoff: Duration::from_millis(100),
        handshake_limit: None,
        bind: None,
        source_tcp: Default::default(),
        target_tcp: Default::default(),
    }
}

/// (TCP_NODELAY, SO_KEEPALIVE) of a socket.
fn options(fd: &OwnedFd) -> (bool, bool) {
    let s = SockRef::from(fd);
    (
        s.tcp_nodelay().expect("TCP_NODELAY"),
        s.keepalive().expect("SO_KEEPALIVE"),
    )
}

#[test]
fn relay_sets_both_options_on_its_tcp_listener() {
    for keepalive in [true, false] {
        let listener = sys::listen_tcp("127.0.0.1:0".parse().expect("addr")).expect("listen");
        let view = listener.try_clone().expect("dup listener");
        assert_eq!(options(&view), (false, false), "fresh listener");
        let io = Epoll::new(EpollConfig::default()).expect("epoll");
        let relay = Relay::new(
            io,
            listener,
            config(keepalive),
            Logger::new("t", Sink::Discard),
        )
        .expect("relay");
        assert_eq!(options(&view), (true, keepalive), "-j = {}", !keepalive);
        drop(relay);
    }
}

#[test]
fn accepted_sockets_inherit_both_options_from_the_listener() {
    for keepalive in [true, false] {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        let fd = OwnedFd::from(l.try_clone().expect("dup"));
        sys::set_nodelay(fd.as_fd(), true).expect("nodelay");
        sys::set_keepalive(fd.as_fd(), keepalive).expect("keepalive");
        let _client = TcpStream::connect(l.local_addr().expect("addr")).expect("connect");
        let (accepted, _) = l.accept().expect("accept");
        assert_eq!(options(&OwnedFd::from(accepted)), (true, keepalive));
    }
}
