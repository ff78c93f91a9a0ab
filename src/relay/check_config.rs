//! `spiperelay check-config FILE`: reads a configuration file, checks it completely (key
//! files included, with the reader the daemon uses for reloads) and prints every error as
//! `FILE:LINE:COL: FIELD: MESSAGE` on standard error (exit 1), or one summary line per pipe
//! on standard output (exit 0). Warnings (short or exposed key files) go to standard error in
//! the same form and do not change the exit status.
//!
//! `spiperelay --config FILE` ([`config_main`]) runs a file with the same checks and the same
//! words: every pipe in one process ([`super::supervisor`]).

use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::config::file::{self, Checked, KeyCheck};

use super::keyfile;

/// The usage text of `spiperelay --config`, with its final newline.
pub const CONFIG_USAGE: &str = "usage: spiperelay --config <config file>\n";

/// The usage text of `spiperelay check-config`, with its final newline.
pub const CHECK_CONFIG_USAGE: &str = "usage: spiperelay check-config <config file>\n";

/// The largest configuration file read, in bytes.
pub const MAX_CONFIG_SIZE: u64 = 4 << 20;

/// The [`KeyCheck`] of the daemon: [`keyfile::read_key_file`], the one key-file reader (a
/// regular file, opened without blocking, read whole), with its warnings; and the host's
/// users and groups.
#[derive(Clone, Copy, Debug, Default)]
pub struct FileKeyCheck;

impl KeyCheck for FileKeyCheck {
    fn check(&mut self, path: &Path) -> Result<Vec<String>, String> {
        keyfile::read_key_file(path)
            .map(|read| read.warnings.iter().map(ToString::to_string).collect())
            .map_err(|e| e.to_string())
    }

    /// Looks the account up as the daemon will ([`crate::os::user`]: names, then numbers).
    fn check_account(&mut self, name: &str, group: bool) -> Result<(), String> {
        let found = if group {
            crate::os::user::lookup_group(name).map(drop)
        } else {
            crate::os::user::lookup_user(name).map(drop)
        };
        found.map_err(|e| e.to_string())
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

/// `spiperelay --config FILE` (`args` are all the words after the program name, starting
/// with `--config`). Checks the file as `check-config` does and prints its errors the same
/// way (exit 1); then runs it ([`super::run`]) until a signal ends it.
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
    let source = super::ConfigSource::File { path, config };
    match super::run(program, source) {
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
