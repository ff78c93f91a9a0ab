//! The spiped command line as a configuration: one pipe, named
//! [`COMMAND_LINE_PIPE`], and the process settings.
//! It is the description a configuration file's `[pipe.NAME]` table gives (`config::file`).

use crate::config::{COMMAND_LINE_PIPE, Config, LogTarget, PipeSpec, Settings};

use super::SpipedArgs;

impl SpipedArgs {
    /// The process settings and the one pipe this command line describes. Every option lands
    /// in one field: `-e`/`-d` → [`PipeSpec::mode`], `-s`, `-t`, `-k`, `-b` → `source`,
    /// `target`, `keys`, `bind`; `-f`/`-g` → `pfs`; `-j` → `keepalive = false`; `-n` →
    /// `max_connections`; `-o` → `timeout`; `-r`/`-R` → `resolve_interval`; `--x25519`,
    /// `--max-keys` → `x25519`, `max_keys`; `--keepalive`, `--user-timeout` → `source_tcp` and
    /// `target_tcp` (each TCP leg). `-F` → [`Settings::daemonize`]` = false` and no
    /// pidfile, else `-p` (or its default) → `pidfile`; `-D` → `wait_for_dns`; `--syslog` →
    /// `log`; `-u` → `user`; `--control`, `--threads`, `--shutdown-timeout` → `control`,
    /// `threads`, `shutdown_timeout`; `--handshake-limit` → `handshake_limit`; `--keepalive`,
    /// `--user-timeout` → `source_tcp`, `target_tcp`. The options the command line has no flag
    /// for keep spiped's behaviour (no socket-file options, no metrics, no audit log). Never
    /// fails.
    pub fn to_config(&self) -> (Settings, PipeSpec) {
        let settings = Settings {
            control: self.control.clone(),
            log: if self.syslog {
                LogTarget::Syslog
            } else {
                LogTarget::Stderr
            },
            threads: self.threads,
            daemonize: !self.foreground,
            pidfile: (!self.foreground).then(|| self.pidfile.clone()),
            wait_for_dns: self.wait_for_dns,
            user: self.user.clone(),
            shutdown_timeout: self.shutdown_timeout,
            metrics: None,
            audit_log: None,
        };
        let mut pipe = PipeSpec::new(
            COMMAND_LINE_PIPE,
            self.mode,
            self.source.clone(),
            self.target.clone(),
            self.keys.clone(),
        );
        pipe.pfs = self.pfs;
        pipe.x25519 = self.x25519;
        pipe.keepalive = !self.no_keepalive;
        pipe.max_connections = self.max_connections;
        pipe.timeout = self.timeout;
        pipe.resolve_interval = self.resolve_interval;
        pipe.bind = self.bind.clone();
        pipe.max_keys = self.max_keys;
        pipe.source_tcp = self.source_tcp;
        pipe.target_tcp = self.target_tcp;
        pipe.handshake_limit = self.handshake_limit;
        (settings, pipe)
    }

    /// [`SpipedArgs::to_config`] as a whole [`Config`] of one pipe.
    pub fn to_full_config(&self) -> Config {
        let (settings, pipe) = self.to_config();
        Config {
            settings,
            pipes: vec![pipe],
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;
    use std::time::Duration;

    use super::*;
    use crate::cli::{KeySource, Mode, PfsPolicy, SockAddrSpec, SpipedCommand, UserGroup};
    use crate::config::{TcpOptions, UnixSocketOptions};

    fn run(line: &str) -> SpipedArgs {
        match SpipedArgs::parse(line.split_whitespace()) {
            Ok(SpipedCommand::Run(a)) => *a,
            other => panic!("{line:?}: {other:?}"),
        }
    }

    #[test]
    fn defaults_are_pipe_defaults() {
        let (s, p) = run("-d -s [127.0.0.1]:8025 -t localhost:25 -k key").to_config();
        let expected = PipeSpec::new(
            "default",
            Mode::Decrypt,
            SockAddrSpec::parse("[127.0.0.1]:8025").unwrap(),
            SockAddrSpec::parse("localhost:25").unwrap(),
            vec![KeySource::File(PathBuf::from("key"))],
        );
        assert_eq!(p, expected);
        assert_eq!(
            s,
            Settings {
                control: None,
                log: LogTarget::Stderr,
                threads: 1,
                daemonize: true,
                pidfile: Some(PathBuf::from("[127.0.0.1]:8025.pid")),
                wait_for_dns: false,
                user: None,
                shutdown_timeout: None,
                metrics: None,
                audit_log: None,
            }
        );
    }

    #[test]
    fn every_flag_lands_in_its_field() {
        let args = run(
            "-e -D -F -j -f -s /tmp/s.sock -t [::1]:80 -k /k1 -k - -n 0 -o 2.5 \
             -p /run/x.pid -r 10 -b h:0 --syslog -u nobody:nogroup --control /run/c.sock \
             --max-keys 3 --threads 4 --shutdown-timeout 2.5 --user-timeout 2",
        );
        let (s, p) = args.to_config();
        assert_eq!(p.name, "default");
        assert_eq!(p.mode, Mode::Encrypt);
        assert_eq!(p.source, SockAddrSpec::Unix(PathBuf::from("/tmp/s.sock")));
        assert_eq!(p.target, SockAddrSpec::parse("[::1]:80").unwrap());
        assert_eq!(
            p.keys,
            vec![KeySource::File(PathBuf::from("/k1")), KeySource::Stdin]
        );
        assert_eq!(p.pfs, PfsPolicy::Disabled);
        assert!(!p.keepalive);
        assert!(!p.x25519);
        assert_eq!(p.max_connections, None);
        assert_eq!(p.timeout, Duration::from_millis(2500));
        assert_eq!(p.resolve_interval, Some(Duration::from_secs(10)));
        assert_eq!(p.bind, Some(SockAddrSpec::parse("h:0").unwrap()));
        assert_eq!(p.max_keys, 3);
        assert_eq!(p.handshake_limit, None);
        assert_eq!(p.unix_socket, UnixSocketOptions::default());
        assert_eq!(p.source_tcp, TcpOptions::default());
        assert_eq!(
            p.target_tcp,
            TcpOptions {
                user_timeout: Some(Duration::from_secs(2)),
                ..TcpOptions::default()
            },
            "the TCP target gets the user timeout, the Unix source nothing"
        );
        // -F: foreground, and no pidfile even with -p (as spiped).
        assert!(!s.daemonize);
        assert_eq!(s.pidfile, None);
        assert!(s.wait_for_dns);
        assert_eq!(s.log, LogTarget::Syslog);
        assert_eq!(
            s.user,
            Some(UserGroup::UserAndGroup {
                user: "nobody".into(),
                group: "nogroup".into()
            })
        );
        assert_eq!(s.control, Some(PathBuf::from("/run/c.sock")));
        assert_eq!(s.threads, 4);
        assert_eq!(s.shutdown_timeout, Some(Duration::from_millis(2500)));

        let (s, p) =
            run("-d -g --x25519 -R -n 7 -p /run/y.pid -s [::1]:9 -t h:1 -k k --keepalive 9,3")
                .to_config();
        let ka = TcpOptions {
            keepalive_idle: Some(9),
            keepalive_interval: Some(3),
            ..TcpOptions::default()
        };
        assert_eq!((p.source_tcp, p.target_tcp), (ka, ka));
        assert_eq!(p.pfs, PfsPolicy::Required);
        assert!(p.x25519 && p.keepalive);
        assert_eq!(p.resolve_interval, None);
        assert_eq!(p.max_connections, Some(7));
        assert!(s.daemonize);
        assert_eq!(s.pidfile, Some(PathBuf::from("/run/y.pid")));
        assert_eq!(s.log, LogTarget::Stderr);
    }

    #[test]
    fn full_config_has_one_pipe() {
        let c = run("-d -s /a -t h:1 -k k").to_full_config();
        assert_eq!(c.pipes.len(), 1);
        assert_eq!(c.pipes[0].name, COMMAND_LINE_PIPE);
        assert!(crate::config::valid_pipe_name(&c.pipes[0].name));
    }
}
