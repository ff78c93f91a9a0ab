//! spiped's socket-address grammar (spec §3.2, `libcperciva/util/sock.c`, `sock_resolve`),
//! parsed without touching the network.
//!
//! | form | meaning |
//! |---|---|
//! | `/path/to/socket` | a Unix-domain socket; the path must fit `sun_path` |
//! | `[192.0.2.1]:8025` | an IPv4 literal and a decimal port |
//! | `[2001:db8::1]:8025` | an IPv6 literal (no `%zone`) and a decimal port |
//! | `host:port` | anything else with a `:`; split at the last `:` and resolved later with `getaddrinfo` |
//!
//! Deliberate differences from spiped 1.6.2, all stricter and all about input spiped would
//! mis-handle: the port in the bracket forms must be all decimal digits (spiped's `strtol`
//! reads `80x` as 80 and ` +80` as 80); `host:port` with an empty host or port is rejected here
//! rather than left to `getaddrinfo`; `[::1]` without a port is reported as a missing port
//! (spiped says "Invalid [IP address]: [:"); and text with a NUL byte is rejected.

use std::ffi::OsStr;
use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

/// The longest Unix socket path accepted, in bytes: `sun_path` holds 108 bytes on Linux,
/// including the terminating NUL.
pub const MAX_UNIX_PATH_LEN: usize = 107;

/// A socket address as written on spiped's command line (`-s`, `-t`, `-b`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum SockAddrSpec {
    /// A Unix-domain socket path: absolute, at most [`MAX_UNIX_PATH_LEN`] bytes, no NUL byte.
    Unix(PathBuf),
    /// An IP literal and a port in 1–65535, from `[IPv4]:port` or `[IPv6]:port`. An IPv6
    /// address always has flow info 0 and scope id 0.
    Inet(SocketAddr),
    /// A host name (or unbracketed address) and a service, from `host:port`; both non-empty, the
    /// service without `:`. Resolved later with `getaddrinfo(host, port)`.
    Host {
        /// Everything before the last `:`; may itself contain `:` (as in `::1:80`).
        host: String,
        /// Everything after the last `:`: a port number or a service name such as `http`.
        port: String,
    },
}

/// Why a socket address did not parse. Each variant names the offending text.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AddrError {
    /// No `:port` where one is needed: the address has no `:` (this covers relative Unix paths
    /// such as `relative/x.sock`), or is `[address]` with nothing after the bracket. Holds the
    /// address. Displays spiped's words, `Address must contain port number: <addr>`.
    MissingPort(String),
    /// A Unix socket path longer than [`MAX_UNIX_PATH_LEN`] bytes. Holds its length in bytes.
    UnixPathTooLong(usize),
    /// The address contains a NUL byte, which no C string can carry.
    NulByte,
    /// A non-Unix address that is not valid UTF-8 (host names must be text).
    NotUtf8,
    /// An address starting with `[` whose part before the last `:` is not `[...]`. Holds that
    /// part, as spiped reports it (`Invalid [IP address]: ...`).
    InvalidBrackets(String),
    /// The text in brackets is not an IPv4 literal (no `:` inside) or not an IPv6 literal (with
    /// `:`); scope ids such as `%eth0` are not accepted. Holds the text in brackets.
    InvalidIp(String),
    /// The port after `[address]:` is not a decimal number in 1–65535. Holds the port text.
    InvalidPort(String),
    /// `host:port` with nothing before the last `:`. Holds the address.
    EmptyHost(String),
    /// `host:port` with nothing after the last `:`. Holds the address.
    EmptyPort(String),
}

impl fmt::Display for AddrError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::MissingPort(addr) => write!(f, "Address must contain port number: {addr}"),
            Self::UnixPathTooLong(len) => write!(
                f,
                "path too long for a Unix socket ({len} bytes, at most {MAX_UNIX_PATH_LEN})"
            ),
            Self::NulByte => f.write_str("address contains a NUL byte"),
            Self::NotUtf8 => f.write_str("address is not valid UTF-8"),
            Self::InvalidBrackets(s) => write!(f, "Invalid [IP address]: {s}"),
            Self::InvalidIp(ip) => write!(f, "Error parsing IP address: {ip}"),
            Self::InvalidPort(port) => write!(f, "Invalid port number: {port}"),
            Self::EmptyHost(addr) => write!(f, "Address has an empty host name: {addr}"),
            Self::EmptyPort(addr) => write!(f, "Address has an empty port: {addr}"),
        }
    }
}

impl std::error::Error for AddrError {}

impl SockAddrSpec {
    /// Parses one address in spiped's syntax (see the module documentation).
    ///
    /// Returns the [`SockAddrSpec`] or the [`AddrError`] naming the first problem found, checked
    /// in this order: NUL byte; Unix path length (for text starting with `/`); missing `:`;
    /// for text starting with `[`: missing port, brackets, port, IP literal; for `host:port`:
    /// empty host, empty port.
    pub fn parse(s: &str) -> Result<Self, AddrError> {
        Self::parse_os(OsStr::new(s))
    }

    /// Like [`SockAddrSpec::parse`], for a raw command-line argument: a Unix socket path may be
    /// any bytes; every other form must be UTF-8 ([`AddrError::NotUtf8`]).
    pub fn parse_os(s: &OsStr) -> Result<Self, AddrError> {
        let bytes = s.as_bytes();
        if bytes.contains(&0) {
            return Err(AddrError::NulByte);
        }
        if bytes.first() == Some(&b'/') {
            if bytes.len() > MAX_UNIX_PATH_LEN {
                return Err(AddrError::UnixPathTooLong(bytes.len()));
            }
            return Ok(Self::Unix(PathBuf::from(s)));
        }
        let s = s.to_str().ok_or(AddrError::NotUtf8)?;
        let Some(colon) = s.rfind(':') else {
            return Err(AddrError::MissingPort(s.to_owned()));
        };
        let (host, port) = (&s[..colon], &s[colon + 1..]);

        if !s.starts_with('[') {
            if host.is_empty() {
                return Err(AddrError::EmptyHost(s.to_owned()));
            }
            if port.is_empty() {
                return Err(AddrError::EmptyPort(s.to_owned()));
            }
            return Ok(Self::Host {
                host: host.to_owned(),
                port: port.to_owned(),
            });
        }

        // `[::1]`: the last ':' is inside the brackets, so there is no port.
        if s.ends_with(']') {
            return Err(AddrError::MissingPort(s.to_owned()));
        }
        let Some(ip) = host
            .strip_prefix('[')
            .and_then(|rest| rest.strip_suffix(']'))
        else {
            return Err(AddrError::InvalidBrackets(host.to_owned()));
        };
        let port = parse_port(port)?;
        let addr = if ip.contains(':') {
            let ip: Ipv6Addr = ip
                .parse()
                .map_err(|_| AddrError::InvalidIp(ip.to_owned()))?;
            SocketAddr::V6(SocketAddrV6::new(ip, port, 0, 0))
        } else {
            let ip: Ipv4Addr = ip
                .parse()
                .map_err(|_| AddrError::InvalidIp(ip.to_owned()))?;
            SocketAddr::V4(SocketAddrV4::new(ip, port))
        };
        Ok(Self::Inet(addr))
    }
}

/// A port after `[address]:`: one or more ASCII digits, value 1–65535.
fn parse_port(port: &str) -> Result<u16, AddrError> {
    let invalid = || AddrError::InvalidPort(port.to_owned());
    if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid());
    }
    match port.parse::<u16>() {
        Ok(0) | Err(_) => Err(invalid()),
        Ok(p) => Ok(p),
    }
}

impl std::str::FromStr for SockAddrSpec {
    type Err = AddrError;

    /// Same as [`SockAddrSpec::parse`].
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl fmt::Display for SockAddrSpec {
    /// Writes the address in spiped's syntax: the path, `[ip]:port` (IPv4 too) or `host:port`.
    /// Parsing the output gives back an equal value (for a Unix path that is not UTF-8 the
    /// output is lossy).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unix(path) => write!(f, "{}", path.display()),
            Self::Inet(SocketAddr::V4(a)) => write!(f, "[{}]:{}", a.ip(), a.port()),
            Self::Inet(SocketAddr::V6(a)) => write!(f, "[{}]:{}", a.ip(), a.port()),
            Self::Host { host, port } => write!(f, "{host}:{port}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ok(s: &str) -> SockAddrSpec {
        SockAddrSpec::parse(s).unwrap_or_else(|e| panic!("{s:?} failed: {e}"))
    }

    fn err(s: &str) -> AddrError {
        SockAddrSpec::parse(s).expect_err(s)
    }

    #[test]
    fn ipv6_literals() {
        assert_eq!(
            ok("[::1]:8080"),
            SockAddrSpec::Inet("[::1]:8080".parse().unwrap())
        );
        assert_eq!(
            ok("[1:2:3:4::a:b:c]:80"),
            SockAddrSpec::Inet("[1:2:3:4::a:b:c]:80".parse().unwrap())
        );
        assert_eq!(
            ok("[::ffff:1.2.3.4]:1"),
            SockAddrSpec::Inet("[::ffff:1.2.3.4]:1".parse().unwrap())
        );
        assert_eq!(
            err("[fe80::1%eth0]:80"),
            AddrError::InvalidIp("fe80::1%eth0".into())
        );
        assert_eq!(err("[1:2]:80"), AddrError::InvalidIp("1:2".into()));
    }

    #[test]
    fn ipv4_literals() {
        assert_eq!(
            ok("[127.0.0.1]:65535"),
            SockAddrSpec::Inet("127.0.0.1:65535".parse().unwrap())
        );
        assert_eq!(err("[127.0.0.1]:0").to_string(), "Invalid port number: 0");
        assert_eq!(
            err("[127.0.0.1]:65536"),
            AddrError::InvalidPort("65536".into())
        );
        assert_eq!(err("[127.0.0.1]:80x"), AddrError::InvalidPort("80x".into()));
        assert_eq!(err("[127.0.0.1]:"), AddrError::InvalidPort(String::new()));
        assert_eq!(err("[127.0.0.1]:+80"), AddrError::InvalidPort("+80".into()));
        assert_eq!(
            err("[127.0.0.1]:999999999999999999999"),
            AddrError::InvalidPort("999999999999999999999".into())
        );
        assert_eq!(
            err("[127.0.0.1]").to_string(),
            "Address must contain port number: [127.0.0.1]"
        );
        assert_eq!(err("[::1]"), AddrError::MissingPort("[::1]".into()));
        assert_eq!(err("[1.2.3]:80"), AddrError::InvalidIp("1.2.3".into()));
        assert_eq!(err("[]:80"), AddrError::InvalidIp(String::new()));
        assert_eq!(
            err("[127.0.0.1:80"),
            AddrError::InvalidBrackets("[127.0.0.1".into())
        );
        assert_eq!(
            err("[127.0.0.1]x:80"),
            AddrError::InvalidBrackets("[127.0.0.1]x".into())
        );
    }

    #[test]
    fn host_and_port() {
        assert_eq!(
            ok("localhost:6379"),
            SockAddrSpec::Host {
                host: "localhost".into(),
                port: "6379".into()
            }
        );
        // Unbracketed literals go to getaddrinfo, like spiped.
        assert_eq!(
            ok("127.0.0.1:8000"),
            SockAddrSpec::Host {
                host: "127.0.0.1".into(),
                port: "8000".into()
            }
        );
        assert_eq!(
            ok("::1:80"),
            SockAddrSpec::Host {
                host: "::1".into(),
                port: "80".into()
            }
        );
        assert_eq!(
            ok("example.com:https"),
            SockAddrSpec::Host {
                host: "example.com".into(),
                port: "https".into()
            }
        );
        assert_eq!(err(":80"), AddrError::EmptyHost(":80".into()));
        assert_eq!(err("host:"), AddrError::EmptyPort("host:".into()));
        assert_eq!(err("localhost"), AddrError::MissingPort("localhost".into()));
        assert_eq!(err(""), AddrError::MissingPort(String::new()));
    }

    #[test]
    fn unix_paths() {
        assert_eq!(
            ok("/tmp/x.sock"),
            SockAddrSpec::Unix(PathBuf::from("/tmp/x.sock"))
        );
        // A colon in an absolute path is still a path.
        assert_eq!(
            ok("/tmp/a:1"),
            SockAddrSpec::Unix(PathBuf::from("/tmp/a:1"))
        );
        assert_eq!(
            err("relative/x.sock").to_string(),
            "Address must contain port number: relative/x.sock"
        );
        let p107 = format!("/{}", "a".repeat(106));
        assert_eq!(p107.len(), 107);
        assert_eq!(ok(&p107), SockAddrSpec::Unix(PathBuf::from(&p107)));
        let p108 = format!("/{}", "a".repeat(107));
        assert_eq!(err(&p108), AddrError::UnixPathTooLong(108));
        assert_eq!(
            err(&p108).to_string(),
            "path too long for a Unix socket (108 bytes, at most 107)"
        );
        assert_eq!(err("/tmp/a\0b"), AddrError::NulByte);
    }

    #[test]
    fn non_utf8() {
        use std::os::unix::ffi::OsStrExt;
        let path = OsStr::from_bytes(b"/tmp/\xff.sock");
        assert_eq!(
            SockAddrSpec::parse_os(path),
            Ok(SockAddrSpec::Unix(PathBuf::from(path)))
        );
        assert_eq!(
            SockAddrSpec::parse_os(OsStr::from_bytes(b"h\xff:80")),
            Err(AddrError::NotUtf8)
        );
    }

    #[test]
    fn display_forms() {
        for s in [
            "[::1]:8080",
            "[127.0.0.1]:80",
            "localhost:6379",
            "/tmp/x.sock",
            "::1:80",
        ] {
            assert_eq!(ok(s).to_string(), s);
        }
        assert_eq!(ok("[0:0::1]:80").to_string(), "[::1]:80");
    }

    fn spec_strategy() -> impl Strategy<Value = SockAddrSpec> {
        prop_oneof![
            "/[a-z0-9:._/-]{0,106}".prop_map(|p| SockAddrSpec::Unix(PathBuf::from(p))),
            (any::<Ipv4Addr>(), 1u16..).prop_map(|(ip, port)| SockAddrSpec::Inet(SocketAddr::V4(
                SocketAddrV4::new(ip, port)
            ))),
            (any::<Ipv6Addr>(), 1u16..).prop_map(|(ip, port)| SockAddrSpec::Inet(SocketAddr::V6(
                SocketAddrV6::new(ip, port, 0, 0)
            ))),
            ("[^\\[/\0][^\0]{0,20}", "[^:\0]{1,8}")
                .prop_map(|(host, port)| SockAddrSpec::Host { host, port }),
        ]
    }

    proptest! {
        #[test]
        fn parse_never_panics(s in "\\PC*") {
            let _ = SockAddrSpec::parse(&s);
        }

        #[test]
        fn parse_never_panics_on_address_like_text(s in "[\\[\\]:/0-9a-f.%]{0,24}") {
            if let Ok(spec) = SockAddrSpec::parse(&s) {
                prop_assert_eq!(SockAddrSpec::parse(&spec.to_string()), Ok(spec));
            }
        }

        #[test]
        fn display_reparses(spec in spec_strategy()) {
            prop_assert_eq!(SockAddrSpec::parse(&spec.to_string()), Ok(spec));
        }

        #[test]
        fn parsed_display_reparses(s in "\\PC{0,40}") {
            if let Ok(spec) = SockAddrSpec::parse(&s) {
                prop_assert_eq!(SockAddrSpec::parse(&spec.to_string()), Ok(spec));
            }
        }
    }
}
