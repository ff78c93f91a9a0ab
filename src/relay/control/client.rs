//! The clients of the control socket: `spiperelay keys` and `spiperelay reload` (and the
//! request helper `spiperelay status` uses). Each sends one request line and prints the
//! daemon's answer (see the server, [`super`], for the requests).

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::io::{Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use super::super::status;
use super::{CONTROL_ENV, MAX_ANSWER, RELOAD_TIMEOUT};

/// The usage text of `spiperelay keys`, with its final newline.
pub const KEYS_USAGE: &str = "\
usage: spiperelay keys [--control <socket>] [--pipe <name>] status
       spiperelay keys [--control <socket>] [--pipe <name>] rotate <new key file>
       spiperelay keys [--control <socket>] [--pipe <name>] set [--force] <key file>
";

/// The usage text of `spiperelay status`, with its final newline.
pub const STATUS_USAGE: &str = "usage: spiperelay status [--control <socket>] [--json]\n";

/// The usage text of `spiperelay reload`, with its final newline.
pub const RELOAD_USAGE: &str = "usage: spiperelay reload [--control <socket>]\n";

/// What `spiperelay keys` was asked to do.
#[derive(Debug, PartialEq, Eq)]
enum KeysCommand {
    Status,
    Rotate(PathBuf),
    Set { path: PathBuf, force: bool },
    Help,
}

/// A parsed `spiperelay keys` command line.
#[derive(Debug, PartialEq, Eq)]
struct KeysArgs {
    cmd: KeysCommand,
    control: PathBuf,
    pipe: Option<String>,
}

/// Why a `spiperelay keys` or `reload` command line was rejected (the usage text follows).
#[derive(Debug, PartialEq, Eq)]
enum ArgsError {
    Illegal(String),
    MissingArgument(&'static str),
    Shape,
    NoSocket,
    BadPipeName(String),
}

impl fmt::Display for ArgsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Illegal(a) => write!(f, "illegal option -- {a}"),
            Self::MissingArgument(o) => write!(f, "Missing argument to {o}"),
            Self::Shape => f.write_str("expected status, rotate <key file> or set <key file>"),
            Self::NoSocket => write!(
                f,
                "no control socket given: use --control <socket> (the daemon's --control or \
                 the control setting of its configuration file) or set {CONTROL_ENV}"
            ),
            Self::BadPipeName(n) => write!(f, "--pipe: {n:?} is not a pipe name"),
        }
    }
}

/// A yes/no option of one client: its spellings, and where to note it was given.
type Flag<'a> = (&'static [&'static [u8]], &'a mut bool);

/// `keys set`'s `--force`.
const FORCE: &[&[u8]] = &[b"--force", b"-f"];

/// `status`'s `--json`.
const JSON: &[&[u8]] = &[b"--json"];

/// The options every control client takes: `--control`, with `pipe_option` `--pipe`, and
/// the client's own `flag` if any (`--force`, `--json`). Returns the other words, the socket
/// and the pipe; `Ok(None)` for `--help`.
#[allow(clippy::type_complexity)]
fn parse_common(
    args: Vec<OsString>,
    env: Option<OsString>,
    pipe_option: bool,
    flag: Option<Flag<'_>>,
) -> Result<Option<(Vec<OsString>, PathBuf, Option<String>)>, ArgsError> {
    let mut control = env.filter(|e| !e.is_empty()).map(PathBuf::from);
    let mut pipe = None;
    let mut flag = flag;
    let mut words: Vec<OsString> = Vec::new();
    let mut it = args.into_iter();
    let mut only_words = false;
    while let Some(a) = it.next() {
        let b = a.as_bytes();
        if only_words || !b.starts_with(b"-") || b == b"-" {
            words.push(a);
        } else if b == b"--" {
            only_words = true;
        } else if let Some((_, given)) = flag.as_mut().filter(|(names, _)| names.contains(&b)) {
            **given = true;
        } else if b == b"--help" || b == b"-h" {
            return Ok(None);
        } else if b == b"--control" {
            let v = it.next().ok_or(ArgsError::MissingArgument("--control"))?;
            control = Some(PathBuf::from(v));
        } else if let Some(v) = b.strip_prefix(b"--control=") {
            control = Some(PathBuf::from(OsStr::from_bytes(v)));
        } else if pipe_option && (b == b"--pipe" || b.starts_with(b"--pipe=")) {
            let v = match b.strip_prefix(b"--pipe=") {
                Some(v) => OsStr::from_bytes(v).to_owned(),
                None => it.next().ok_or(ArgsError::MissingArgument("--pipe"))?,
            };
            let name = v.to_string_lossy().into_owned();
            if !crate::config::valid_pipe_name(&name) {
                return Err(ArgsError::BadPipeName(name));
            }
            pipe = Some(name);
        } else {
            return Err(ArgsError::Illegal(a.to_string_lossy().into_owned()));
        }
    }
    let control = control.ok_or(ArgsError::NoSocket)?;
    Ok(Some((words, control, pipe)))
}

fn parse_keys_args(args: Vec<OsString>, env: Option<OsString>) -> Result<KeysArgs, ArgsError> {
    let mut force = false;
    let Some((words, control, pipe)) = parse_common(args, env, true, Some((FORCE, &mut force)))?
    else {
        return Ok(KeysArgs {
            cmd: KeysCommand::Help,
            control: PathBuf::new(),
            pipe: None,
        });
    };
    let words: Vec<&[u8]> = words.iter().map(|w| w.as_bytes()).collect();
    let path = |w: &[u8]| PathBuf::from(OsStr::from_bytes(w));
    let cmd = match words.as_slice() {
        [b"status"] if !force => KeysCommand::Status,
        [b"rotate", file] if !force => KeysCommand::Rotate(path(file)),
        [b"set", file] => KeysCommand::Set {
            path: path(file),
            force,
        },
        _ => return Err(ArgsError::Shape),
    };
    Ok(KeysArgs { cmd, control, pipe })
}

/// Sends one request line and returns the daemon's verdict and text, waiting at most
/// `timeout` for the answer.
pub(crate) fn request_with(
    control: &Path,
    line: &[u8],
    timeout: std::time::Duration,
) -> Result<(bool, String), String> {
    let mut conn = UnixStream::connect(control).map_err(|e| {
        format!(
            "cannot connect to control socket {}: {e} (is the daemon running with a control \
             socket?)",
            control.display()
        )
    })?;
    let io_err = |e: std::io::Error| format!("control socket {}: {e}", control.display());
    conn.set_read_timeout(Some(timeout)).map_err(io_err)?;
    conn.set_write_timeout(Some(timeout)).map_err(io_err)?;
    conn.write_all(line).map_err(io_err)?;
    let mut answer = Vec::new();
    conn.take(MAX_ANSWER)
        .read_to_end(&mut answer)
        .map_err(io_err)?;
    let answer = String::from_utf8_lossy(&answer);
    let (head, text) = answer.split_once('\n').unwrap_or((&answer, ""));
    match head {
        "ok" => Ok((true, text.trim_end().to_owned())),
        "error" => Ok((false, text.trim_end().to_owned())),
        _ => Err(format!(
            "control socket {}: unexpected answer",
            control.display()
        )),
    }
}

/// [`request_with`] with the usual [`super::CONTROL_TIMEOUT`].
pub(crate) fn request(control: &Path, line: &[u8]) -> Result<(bool, String), String> {
    request_with(control, line, super::CONTROL_TIMEOUT)
}

/// Prints an answer: the text on standard output and exit 0 for `ok`, on standard error
/// and exit 1 for a refusal or a failure to ask.
fn print_answer(program: &str, answer: Result<(bool, String), String>) -> ExitCode {
    match answer {
        Ok((true, text)) => {
            println!("{text}");
            ExitCode::SUCCESS
        }
        Ok((false, text)) => {
            eprintln!("{program}: {text}");
            ExitCode::FAILURE
        }
        Err(msg) => {
            eprintln!("{program}: {msg}");
            ExitCode::FAILURE
        }
    }
}

/// `spiperelay keys ...`: talks to a running daemon's control socket (see the server's module
/// docs). `args` are the arguments after `keys`. `--pipe NAME` picks the pipe whose keys to
/// show or change; it may be left out when the daemon runs one pipe. Prints the daemon's
/// answer on standard output and exits 0; prints `<program>: <message>` on standard error and
/// exits 1 for a refusal, a connection failure or a bad command line (then followed by
/// [`KEYS_USAGE`]).
pub fn keys_main(program: &str, args: Vec<OsString>) -> ExitCode {
    let KeysArgs { cmd, control, pipe } = match parse_keys_args(args, std::env::var_os(CONTROL_ENV))
    {
        Ok(v) => v,
        Err(e) => {
            eprintln!("{program}: {e}");
            eprint!("{KEYS_USAGE}");
            return ExitCode::FAILURE;
        }
    };
    let (word, file) = match cmd {
        KeysCommand::Help => {
            print!("{KEYS_USAGE}");
            return ExitCode::SUCCESS;
        }
        KeysCommand::Status => ("status", None),
        KeysCommand::Rotate(p) => ("rotate", Some(p)),
        KeysCommand::Set { path, force } => (if force { "force-set" } else { "set" }, Some(path)),
    };
    let mut line = Vec::new();
    if let Some(pipe) = &pipe {
        line.extend_from_slice(format!("pipe {pipe} ").as_bytes());
    }
    line.extend_from_slice(word.as_bytes());
    if let Some(file) = file {
        // The daemon may run in another directory: send an absolute path.
        let abs = std::path::absolute(&file).unwrap_or(file);
        let bytes = abs.as_os_str().as_bytes();
        if bytes.contains(&b'\n') {
            eprintln!("{program}: key file path contains a newline");
            return ExitCode::FAILURE;
        }
        line.push(b' ');
        line.extend_from_slice(bytes);
    }
    line.push(b'\n');
    print_answer(program, request(&control, &line))
}

/// `spiperelay reload [--control SOCKET]`: asks the running daemon to re-read its
/// configuration (as `SIGHUP` does) and waits for the outcome. Prints what changed and exits
/// 0, or prints why nothing did (every error with its place) and exits 1.
pub fn reload_main(program: &str, args: Vec<OsString>) -> ExitCode {
    match socket_only(program, "reload", RELOAD_USAGE, args, None) {
        Ok(control) => print_answer(program, request_with(&control, b"reload\n", RELOAD_TIMEOUT)),
        Err(code) => code,
    }
}

/// `spiperelay status [--control SOCKET] [--json]`: asks the daemon for its report
/// ([`super::super::status`]) and prints it on standard output, exit 0; prints
/// `<program>: <message>` on standard error and exits 1 when the daemon refuses, cannot be
/// reached, or the command line is bad (then followed by [`STATUS_USAGE`]).
pub fn status_main(program: &str, args: Vec<OsString>) -> ExitCode {
    let mut json = false;
    let control = match socket_only(
        program,
        "status",
        STATUS_USAGE,
        args,
        Some((JSON, &mut json)),
    ) {
        Ok(control) => control,
        Err(code) => return code,
    };
    let mut line = if json {
        status::REQUEST_JSON
    } else {
        status::REQUEST_TEXT
    }
    .to_vec();
    line.push(b'\n');
    print_answer(program, request(&control, &line))
}

/// The command line of a client that takes no operand (`reload`, `status`): the control
/// socket, or the exit status after printing `usage` (for `--help`) or the error and `usage`
/// (for a bad command line) as `<program>: <message>`.
fn socket_only(
    program: &str,
    command: &str,
    usage: &str,
    args: Vec<OsString>,
    flag: Option<Flag<'_>>,
) -> Result<PathBuf, ExitCode> {
    let fail = |msg: String| {
        eprintln!("{program}: {msg}");
        eprint!("{usage}");
        ExitCode::FAILURE
    };
    match parse_common(args, std::env::var_os(CONTROL_ENV), false, flag) {
        Ok(None) => {
            print!("{usage}");
            Err(ExitCode::SUCCESS)
        }
        Ok(Some((words, control, _))) if words.is_empty() => Ok(control),
        Ok(Some((words, ..))) => Err(fail(format!(
            "{command} takes no operand, not {}",
            words[0].to_string_lossy()
        ))),
        Err(e) => Err(fail(e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(v: &[&str]) -> Vec<OsString> {
        v.iter().map(OsString::from).collect()
    }

    #[test]
    fn keys_command_lines() {
        let p = |v: &[&str]| parse_keys_args(os(v), None);
        let ok = |cmd, control: &str, pipe: Option<&str>| {
            Ok(KeysArgs {
                cmd,
                control: PathBuf::from(control),
                pipe: pipe.map(str::to_owned),
            })
        };
        assert_eq!(
            p(&["--control", "/c", "status"]),
            ok(KeysCommand::Status, "/c", None)
        );
        assert_eq!(
            p(&["set", "--force", "k", "--control=/c"]),
            ok(
                KeysCommand::Set {
                    path: PathBuf::from("k"),
                    force: true
                },
                "/c",
                None
            )
        );
        assert_eq!(
            parse_keys_args(os(&["rotate", "k", "--pipe", "redis"]), Some("/e".into())),
            ok(KeysCommand::Rotate(PathBuf::from("k")), "/e", Some("redis"))
        );
        assert_eq!(
            p(&["--pipe=a.b", "--control=/c", "status"]),
            ok(KeysCommand::Status, "/c", Some("a.b"))
        );
        assert_eq!(
            p(&["--pipe", "no spaces", "--control=/c", "status"]),
            Err(ArgsError::BadPipeName("no spaces".into()))
        );
        assert_eq!(
            p(&["--control=/c", "--pipe"]),
            Err(ArgsError::MissingArgument("--pipe"))
        );
        assert_eq!(p(&["rotate", "k"]), Err(ArgsError::NoSocket));
        assert_eq!(
            p(&["--control=/c", "rotate", "--force", "k"]),
            Err(ArgsError::Shape)
        );
        assert_eq!(p(&["--control=/c", "set"]), Err(ArgsError::Shape));
        assert_eq!(p(&["--control=/c"]), Err(ArgsError::Shape));
        assert_eq!(
            p(&["--control"]),
            Err(ArgsError::MissingArgument("--control"))
        );
        assert_eq!(p(&["-x"]), Err(ArgsError::Illegal("-x".into())));
        assert_eq!(p(&["--help"]).map(|a| a.cmd), Ok(KeysCommand::Help));
    }

    #[test]
    fn status_takes_the_socket_and_json() {
        let mut json = false;
        let got = parse_common(
            os(&["--json", "--control=/c"]),
            None,
            false,
            Some((JSON, &mut json)),
        );
        assert_eq!(got, Ok(Some((Vec::new(), PathBuf::from("/c"), None))));
        assert!(json);
        let mut json = false;
        let got = parse_common(
            os(&["--pipe", "x"]),
            Some("/e".into()),
            false,
            Some((JSON, &mut json)),
        );
        assert_eq!(got, Err(ArgsError::Illegal("--pipe".into())));
    }

    #[test]
    fn reload_takes_only_the_socket() {
        let p = |v: &[&str]| parse_common(os(v), None, false, None);
        assert_eq!(
            p(&["--control", "/c"]),
            Ok(Some((Vec::new(), PathBuf::from("/c"), None)))
        );
        assert_eq!(
            p(&["--pipe", "x"]),
            Err(ArgsError::Illegal("--pipe".into()))
        );
        assert_eq!(p(&["--force"]), Err(ArgsError::Illegal("--force".into())));
        assert_eq!(p(&[]), Err(ArgsError::NoSocket));
        assert_eq!(p(&["-h"]), Ok(None));
    }
}
