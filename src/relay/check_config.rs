//! `spiperelay check-config FILE`: reads a configuration file, checks it completely (key
//! files included, with the reader the daemon uses for reloads) and prints every error as
//! `FILE:LINE:COL: FIELD: MESSAGE` on standard error (exit 1), or one summary line per pipe
//! on standard output (exit 0). Warnings (short or exposed key files) go to standard error in
//! the same form and do not change the exit status.
//!
//! `spiperelay --config FILE` ([`config_main`]) runs a file with the same checks and the same
//! words. Until the daemon carries several pipes, it runs a file of one pipe through the
//! command line's daemon ([`daemon_args`]), and refuses, naming the field, a file with more
//! pipes or with a setting that daemon does not implement yet.

use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::cli::SpipedArgs;
use crate::config::file::{self, Checked, KeyCheck};
use crate::config::{Config, LogTarget};

use super::keyfile;

/// The usage text of `spiperelay --config`, with its final newline.
pub const CONFIG_USAGE: &str = "usage: spiperelay --config <config file>\n";

/// The usage text of `spiperelay check-config`, with its final newline.
pub const CHECK_CONFIG_USAGE: &str = "usage: spiperelay check-config <config file>\n";

/// The largest configuration file read, in bytes.
pub const MAX_CONFIG_SIZE: u64 = 4 << 20;

/// The [`KeyCheck`] of the daemon: [`keyfile::read_key_file`], the one key-file reader (a
/// regular file, opened without blocking, read whole), with its warnings.
#[derive(Clone, Copy, Debug, Default)]
pub struct FileKeyCheck;

impl KeyCheck for FileKeyCheck {
    fn check(&mut self, path: &Path) -> Result<Vec<String>, String> {
        keyfile::read_key_file(path)
            .map(|read| read.warnings.iter().map(ToString::to_string).collect())
            .map_err(|e| e.to_string())
    }
}

/// Why a configuration file could not be read at all.
#[derive(Debug)]
pub enum ReadError {
    /// Opening or reading failed.
    Io(std::io::Error),
    /// The file is larger than [`MAX_CONFIG_SIZE`].
    TooLarge(u64),
    /// The file is not UTF-8 (TOML must be). Holds the line and column of the first bad byte.
    NotUtf8(crate::config::Location),
}

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Io(e) => write!(f, "cannot read: {e}"),
            Self::TooLarge(n) => write!(
                f,
                "file is {n} bytes; a configuration file may hold at most {MAX_CONFIG_SIZE}"
            ),
            Self::NotUtf8(at) => write!(f, "{at}: not UTF-8 text"),
        }
    }
}

impl std::error::Error for ReadError {}

/// Reads a configuration file as text: at most [`MAX_CONFIG_SIZE`] bytes of UTF-8.
///
/// # Errors
/// [`ReadError`] naming the cause.
pub fn read_config_text(path: &Path) -> Result<String, ReadError> {
    use std::io::Read;
    let f = fs::File::open(path).map_err(ReadError::Io)?;
    let mut bytes = Vec::new();
    f.take(MAX_CONFIG_SIZE + 1)
        .read_to_end(&mut bytes)
        .map_err(ReadError::Io)?;
    if bytes.len() as u64 > MAX_CONFIG_SIZE {
        return Err(ReadError::TooLarge(bytes.len() as u64));
    }
    String::from_utf8(bytes).map_err(|e| {
        let good = e.utf8_error().valid_up_to();
        let bytes = e.into_bytes();
        let text = String::from_utf8_lossy(&bytes[..good]);
        ReadError::NotUtf8(crate::config::Location::of(&text, good))
    })
}

/// Reads and checks the configuration file at `path` with the daemon's key-file checks.
///
/// # Errors
/// [`ReadError`] when the file cannot be read; the check's own errors are in [`Checked`].
pub fn check_file(path: &Path) -> Result<(String, Checked), ReadError> {
    let text = read_config_text(path)?;
    let checked = file::parse_with(&text, &mut FileKeyCheck);
    Ok((text, checked))
}

/// `spiperelay check-config FILE` (`args` are the words after `check-config`). Returns the
/// exit status: success for a valid file, failure for any error or a bad command line.
pub fn check_config_main(program: &str, args: Vec<OsString>) -> ExitCode {
    let mut file: Option<PathBuf> = None;
    let mut operands_only = false;
    for arg in args {
        match arg.to_str() {
            Some("--") if !operands_only => operands_only = true,
            Some("-h" | "--help") if !operands_only => {
                print!("{CHECK_CONFIG_USAGE}");
                return ExitCode::SUCCESS;
            }
            Some(s) if s.starts_with('-') && s != "-" && !operands_only => {
                eprintln!("{program} check-config: illegal option -- {s}");
                eprint!("{CHECK_CONFIG_USAGE}");
                return ExitCode::FAILURE;
            }
            _ if file.is_some() => {
                eprintln!("{program} check-config: only one configuration file may be given");
                eprint!("{CHECK_CONFIG_USAGE}");
                return ExitCode::FAILURE;
            }
            _ => file = Some(PathBuf::from(arg)),
        }
    }
    let Some(path) = file else {
        eprintln!("{program} check-config: a configuration file is required");
        eprint!("{CHECK_CONFIG_USAGE}");
        return ExitCode::FAILURE;
    };
    let name = path.display().to_string();
    let (text, checked) = match check_file(&path) {
        Ok(v) => v,
        Err(ReadError::NotUtf8(at)) => {
            eprintln!("{name}:{at}: toml: not UTF-8 text (a TOML file must be UTF-8)");
            return ExitCode::FAILURE;
        }
        Err(e) => {
            eprintln!("{name}: {e}");
            return ExitCode::FAILURE;
        }
    };
    for w in &checked.warnings {
        eprintln!("{}", w.render(&name, &text));
    }
    for e in &checked.errors {
        eprintln!("{}", e.render(&name, &text));
    }
    match checked.config {
        Some(config) if checked.errors.is_empty() => {
            for p in &config.pipes {
                println!("{}", p.summary());
            }
            ExitCode::SUCCESS
        }
        _ => {
            eprintln!(
                "{name}: {} error{}",
                checked.errors.len(),
                if checked.errors.len() == 1 { "" } else { "s" }
            );
            ExitCode::FAILURE
        }
    }
}

/// Why a valid configuration cannot run yet: the running daemon carries one pipe and lacks
/// some of the file's settings. Each names the field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NotYet {
    /// The file has this many pipes, not one.
    PipeCount(usize),
    /// A setting this daemon does not implement yet. Holds the field (`pipe.NAME.FIELD` or
    /// `process.FIELD`).
    Setting(String),
    /// `pidfile` without `daemonize = true` (the daemon writes one only when it detaches),
    /// or `daemonize = true` without `pidfile`.
    Pidfile,
    /// `log = "syslog"` without `daemonize = true` (the daemon switches to syslog when it
    /// detaches, as spiped does with `--syslog`).
    SyslogInForeground,
}

impl std::fmt::Display for NotYet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::PipeCount(n) => write!(
                f,
                "pipe: {n} pipes defined; this version runs one pipe per process \
                 (check-config accepts more)"
            ),
            Self::Setting(field) => write!(
                f,
                "{field}: not yet supported when running a configuration file \
                 (check-config accepts it)"
            ),
            Self::Pidfile => f.write_str(
                "process.pidfile: for now a pidfile is written exactly when daemonize = true: \
                 set both or neither",
            ),
            Self::SyslogInForeground => {
                f.write_str("process.log: for now \"syslog\" applies only with daemonize = true")
            }
        }
    }
}

impl std::error::Error for NotYet {}

/// The command-line settings that run `config` on today's one-pipe daemon: the inverse of
/// [`SpipedArgs::to_config`] for a one-pipe configuration.
///
/// # Errors
/// [`NotYet`] naming the first pipe count or setting the daemon cannot run yet: more or
/// fewer than one pipe; `socket_mode`/`socket_owner`/`socket_group`,
/// `metrics`, `audit_log`; a pidfile without
/// daemonising or the reverse; syslog in the foreground.
pub fn daemon_args(config: &Config) -> Result<SpipedArgs, NotYet> {
    let [p] = config.pipes.as_slice() else {
        return Err(NotYet::PipeCount(config.pipes.len()));
    };
    let s = &config.settings;
    let pipe_field = |name: &str| NotYet::Setting(format!("pipe.{}.{name}", p.name));
    if p.unix_socket.is_set() {
        return Err(pipe_field("socket_mode/socket_owner/socket_group"));
    }
    for (set, name) in [
        (s.metrics.is_some(), "metrics"),
        (s.audit_log.is_some(), "audit_log"),
    ] {
        if set {
            return Err(NotYet::Setting(format!("process.{name}")));
        }
    }
    if s.daemonize != s.pidfile.is_some() {
        return Err(NotYet::Pidfile);
    }
    if s.log == LogTarget::Syslog && !s.daemonize {
        return Err(NotYet::SyslogInForeground);
    }
    Ok(SpipedArgs {
        mode: p.mode,
        source: p.source.clone(),
        target: p.target.clone(),
        keys: p.keys.clone(),
        wait_for_dns: s.wait_for_dns,
        foreground: !s.daemonize,
        no_keepalive: !p.keepalive,
        pfs: p.pfs,
        max_connections: p.max_connections,
        timeout: p.timeout,
        // Unused in the foreground: the daemon writes a pidfile only when it detaches.
        pidfile: s.pidfile.clone().unwrap_or_default(),
        resolve_interval: p.resolve_interval,
        bind: p.bind.clone(),
        syslog: s.log == LogTarget::Syslog,
        user: s.user.clone(),
        control: s.control.clone(),
        max_keys: p.max_keys,
        x25519: p.x25519,
        threads: s.thread_count(),
        shutdown_timeout: s.shutdown_timeout,
        source_tcp: p.source_tcp,
        target_tcp: p.target_tcp,
        handshake_limit: p.handshake_limit,
    })
}

/// `spiperelay --config FILE` (`args` are all the words after the program name, starting
/// with `--config`). Checks the file as `check-config` does and prints its errors the same
/// way (exit 1); then runs it ([`daemon_args`], [`super::run`]) until a signal ends it.
pub fn config_main(program: &str, args: Vec<OsString>) -> ExitCode {
    let mut words = args.into_iter();
    let first = words.next().unwrap_or_default();
    let path = match first.to_str().and_then(|s| s.strip_prefix("--config=")) {
        Some(p) => Some(OsString::from(p)),
        None => words.next(),
    };
    let (Some(path), None) = (path.filter(|p| !p.is_empty()), words.next()) else {
        eprintln!(
            "{program}: --config takes one file and no other option: the file holds them all"
        );
        eprint!("{CONFIG_USAGE}");
        return ExitCode::FAILURE;
    };
    let path = PathBuf::from(path);
    let name = path.display().to_string();
    let (text, checked) = match check_file(&path) {
        Ok(v) => v,
        Err(ReadError::NotUtf8(at)) => {
            eprintln!("{program}: {name}:{at}: toml: not UTF-8 text (a TOML file must be UTF-8)");
            return ExitCode::FAILURE;
        }
        Err(e) => {
            eprintln!("{program}: {name}: {e}");
            return ExitCode::FAILURE;
        }
    };
    // Key-file warnings are printed by the daemon when it reads the keys.
    let Some(config) = checked.config.filter(|_| checked.errors.is_empty()) else {
        for e in &checked.errors {
            eprintln!("{}", e.render(&name, &text));
        }
        eprintln!("{program}: {name}: not started");
        return ExitCode::FAILURE;
    };
    let args = match daemon_args(&config) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{program}: {name}: {e}");
            return ExitCode::FAILURE;
        }
    };
    match super::run(program, &args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{program}: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::sys;

    fn scratch() -> PathBuf {
        let mut n = [0u8; 8];
        sys::fill_random(&mut n).unwrap();
        let d = std::env::temp_dir().join(format!("spr-checkcfg-{:x}", u64::from_ne_bytes(n)));
        fs::create_dir(&d).unwrap();
        d
    }

    #[test]
    fn key_file_problems_are_errors_with_their_kind() {
        let d = scratch();
        let good = d.join("good.key");
        keyfile::generate(&good, false).unwrap();
        let short = d.join("short.key");
        fs::write(&short, b"abc").unwrap();
        fs::set_permissions(&short, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
        let fifo = d.join("fifo.key");
        nix_mkfifo(&fifo);
        let dir = d.join("dir.key");
        fs::create_dir(&dir).unwrap();
        let missing = d.join("missing.key");

        let mut c = FileKeyCheck;
        assert_eq!(c.check(&good), Ok(vec![]));
        let w = c.check(&short).unwrap();
        assert_eq!(w.len(), 1);
        assert!(w[0].contains("holds only 3 bytes"), "{w:?}");
        let e = c.check(&fifo).unwrap_err();
        assert!(e.ends_with("is a FIFO, not a regular file"), "{e}");
        let e = c.check(&dir).unwrap_err();
        assert!(e.ends_with("is a directory, not a regular file"), "{e}");
        let e = c.check(&missing).unwrap_err();
        assert!(
            e.contains("cannot read key file") && e.contains("No such file"),
            "{e}"
        );
        fs::remove_dir_all(d).unwrap();
    }

    /// Makes a FIFO with mkfifo(1): this module has no `unsafe`, and coreutils is everywhere.
    fn nix_mkfifo(path: &Path) {
        let st = std::process::Command::new("mkfifo")
            .arg(path)
            .status()
            .unwrap();
        assert!(st.success());
    }

    #[test]
    fn daemon_args_invert_to_config() {
        use crate::cli::SpipedCommand;
        for line in [
            "-e -s [127.0.0.1]:1 -t h:2 -k /k -p /run/x.pid -n 0 -o 3 -R -f -j --syslog",
            "-d -D -s /tmp/s.sock -t [::1]:80 -k /k -k /k2 -p /p -r 9 -b h:0 -u a:b \
             --control /c --max-keys 3 --x25519 -g --threads 2 --user-timeout 4",
            "-e -s [::1]:1 -t h:2 -k /k -p /p --keepalive 5,2,3 --user-timeout 0.5",
        ] {
            let Ok(SpipedCommand::Run(args)) = SpipedArgs::parse(line.split_whitespace()) else {
                panic!("{line}");
            };
            assert_eq!(daemon_args(&args.to_full_config()), Ok(*args), "{line}");
        }
    }

    #[test]
    fn daemon_args_refuse_what_the_daemon_lacks() {
        let base = "[pipe.a]\nmode = \"encrypt\"\nsource = \"/s\"\ntarget = \"h:1\"\n\
                    keys = [\"/k\"]\n";
        let run = |extra: &str| {
            let text = if extra.starts_with('[') {
                format!("{extra}\n{base}")
            } else {
                format!("{base}{extra}")
            };
            daemon_args(&file::parse(&text).unwrap())
        };
        let args = run("").unwrap();
        assert!(args.foreground && !args.syslog);
        for (extra, words) in [
            ("socket_mode = \"0600\"", "pipe.a.socket_mode"),
            ("[process]\nmetrics = \"/m.sock\"", "process.metrics"),
            ("[process]\naudit_log = \"stderr\"", "process.audit_log"),
            ("[process]\npidfile = \"/p\"", "process.pidfile"),
            ("[process]\ndaemonize = true", "process.pidfile"),
            ("[process]\nlog = \"syslog\"", "process.log"),
            (
                "[pipe.b]\nmode = \"encrypt\"\nsource = \"/s2\"\ntarget = \"h:1\"\nkeys = [\"/k\"]",
                "2 pipes",
            ),
        ] {
            let e = run(extra).unwrap_err().to_string();
            assert!(e.contains(words), "{extra}: {e}");
        }
        let a = run("[process]\ndaemonize = true\npidfile = \"/p\"\nlog = \"syslog\"").unwrap();
        let tcp = run("target_tcp = { keepalive_idle = 3, user_timeout = 2.5 }").unwrap();
        assert_eq!(tcp.target_tcp.keepalive_idle, Some(3));
        assert_eq!(
            tcp.target_tcp.user_timeout,
            Some(std::time::Duration::from_millis(2500))
        );
        assert_eq!(tcp.source_tcp, crate::config::TcpOptions::default());
        let t = run("[process]\nshutdown_timeout = 3").unwrap();
        assert_eq!(t.shutdown_timeout, Some(std::time::Duration::from_secs(3)));
        assert!(!a.foreground && a.syslog);
        assert_eq!(a.pidfile, PathBuf::from("/p"));
    }

    #[test]
    fn read_config_text_refuses_non_utf8_and_huge_files() {
        let d = scratch();
        let p = d.join("c.toml");
        fs::write(&p, b"[pipe.a]\nmode = \"\xff\"\n").unwrap();
        match read_config_text(&p) {
            Err(ReadError::NotUtf8(at)) => assert_eq!(at.to_string(), "2:9"),
            other => panic!("{other:?}"),
        }
        fs::write(&p, vec![b'#'; MAX_CONFIG_SIZE as usize + 1]).unwrap();
        assert!(matches!(read_config_text(&p), Err(ReadError::TooLarge(_))));
        assert!(matches!(
            read_config_text(&d.join("none")),
            Err(ReadError::Io(_))
        ));
        fs::remove_dir_all(d).unwrap();
    }
}
