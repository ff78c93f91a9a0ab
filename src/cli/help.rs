//! What `spiperelay --help`, `spiperelay help [COMMAND]` and `spiperelay COMMAND --help` print,
//! built from the same option tables the parsers scan with.
//!
//! Each program's options are one table of [`OptDoc`] rows ([`super::spiped::DAEMON_OPTIONS`],
//! [`super::spipe::SPIPE_OPTIONS`], [`KEYGEN_OPTIONS`], [`KEYS_OPTIONS`],
//! [`STATUS_OPTIONS`]): the option as the
//! scanner reads it, its placeholder, its group, one line saying what it does, and its default.
//! The parsers take their scanner specs from those tables ([`specs`]), so an option cannot be
//! accepted without being documented. [`COMMANDS`] lists the programs and subcommands and
//! [`ENVIRONMENT`] the environment variables. Adding an option or a command is one row here
//! (and its handling in the parser); the man page `dist/man/spiperelay.1` is kept in step by a
//! test (`tests/help.rs`).
//!
//! Only the `spiperelay` personality uses this module. Invoked as `spiped` or `spipe`, the
//! binary prints those programs' usage texts ([`super::SPIPED_USAGE`], [`super::SPIPE_USAGE`])
//! and nothing else, byte for byte.

use std::ffi::OsString;
use std::fmt::Write as _;
use std::os::unix::ffi::OsStrExt;

use super::getopt::OptSpec;

/// The widest line the help text may have, in characters.
pub const HELP_WIDTH: usize = 100;

/// Width of the option column (`  -s ADDR` and padding) before the description.
const OPTION_COLUMN: usize = 22;

/// The [`OptDoc::default`] of an option that must be given.
pub const REQUIRED: &str = "required";

/// Which list an option appears in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OptGroup {
    /// An option of spiped or spipe 1.6 (or 1.6.3's `-b`), with the same meaning there.
    Spiped,
    /// An option of spiperelay only.
    Own,
}

/// One command-line option: how the scanner reads it and how the help describes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct OptDoc {
    /// The option as the scanner reads it (name, and whether it takes an argument).
    pub spec: OptSpec,
    /// The argument's placeholder in the help (`ADDR`); empty exactly when there is none.
    pub arg: &'static str,
    /// The list it appears in.
    pub group: OptGroup,
    /// What it does, in one line.
    pub help: &'static str,
    /// The value in force when it is not given; [`REQUIRED`] when it must be given; empty when
    /// there is nothing to say (a flag that is simply off).
    pub default: &'static str,
}

impl OptDoc {
    /// An option of spiped or spipe: `arg` empty for a flag, else the placeholder.
    pub const fn spiped(
        name: &'static str,
        arg: &'static str,
        help: &'static str,
        default: &'static str,
    ) -> Self {
        Self::new(OptGroup::Spiped, name, arg, help, default)
    }

    /// An option of spiperelay only: `arg` empty for a flag, else the placeholder.
    pub const fn own(
        name: &'static str,
        arg: &'static str,
        help: &'static str,
        default: &'static str,
    ) -> Self {
        Self::new(OptGroup::Own, name, arg, help, default)
    }

    const fn new(
        group: OptGroup,
        name: &'static str,
        arg: &'static str,
        help: &'static str,
        default: &'static str,
    ) -> Self {
        let spec = if arg.is_empty() {
            OptSpec::flag(name)
        } else {
            OptSpec::with_arg(name)
        };
        Self {
            spec,
            arg,
            group,
            help,
            default,
        }
    }

    /// The option column: the name, then the placeholder if any (`-s ADDR`).
    pub fn label(&self) -> String {
        if self.arg.is_empty() {
            self.spec.name.to_owned()
        } else {
            format!("{} {}", self.spec.name, self.arg)
        }
    }

    /// The description followed by the default: `... [default: 100]` or `... [required]`.
    pub fn description(&self) -> String {
        match self.default {
            "" => self.help.to_owned(),
            REQUIRED => format!("{} [required]", self.help),
            d => format!("{} [default: {d}]", self.help),
        }
    }
}

/// The scanner specs of an option table, in table order, for [`super::getopt::Getopt::new`].
/// `N` must be the table's length (checked at compile time when used in a constant).
pub const fn specs<const N: usize>(table: &[OptDoc]) -> [OptSpec; N] {
    assert!(table.len() == N, "specs::<N>: N is not the table's length");
    let mut out = [OptSpec::flag(""); N];
    let mut i = 0;
    while i < N {
        out[i] = table[i].spec;
        i += 1;
    }
    out
}

/// `spiperelay keygen`'s options.
pub const KEYGEN_OPTIONS: &[OptDoc] = &[OptDoc::own(
    "--force",
    "",
    "replace the file if it exists (otherwise an existing file is an error)",
    "",
)];

/// `spiperelay keys`'s options (parsed in [`crate::relay::control::client`]).
pub const KEYS_OPTIONS: &[OptDoc] = &[
    OptDoc::own(
        "--control",
        "SOCKET",
        "the daemon's --control socket",
        "$SPIPERELAY_CONTROL",
    ),
    OptDoc::own(
        "--pipe",
        "NAME",
        "the pipe whose keys to show or change",
        "the only pipe",
    ),
    OptDoc::own(
        "--force",
        "",
        "with set: drop keys even while connections still use them",
        "",
    ),
];

/// `spiperelay reload`'s options (parsed in [`crate::relay::control::client`]).
pub const RELOAD_OPTIONS: &[OptDoc] = &[OptDoc::own(
    "--control",
    "SOCKET",
    "the daemon's --control socket",
    "$SPIPERELAY_CONTROL",
)];

/// `spiperelay status`'s options (parsed in [`crate::relay::status`]).
pub const STATUS_OPTIONS: &[OptDoc] = &[
    OptDoc::own(
        "--control",
        "SOCKET",
        "the daemon's --control socket",
        "$SPIPERELAY_CONTROL",
    ),
    OptDoc::own(
        "--json",
        "",
        "print one JSON object (for scripts) instead of text",
        "",
    ),
];

/// A program or subcommand of the binary.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CommandDoc {
    /// Its name for `spiperelay help NAME`; also the word after `spiperelay` on the command
    /// line, except for `daemon`, which is what runs when no command word is given.
    pub name: &'static str,
    /// Its synopsis lines, each without the leading `spiperelay `.
    pub synopsis: &'static [&'static str],
    /// What it does, in one line.
    pub summary: &'static str,
    /// Its options (empty when it has none).
    pub options: &'static [OptDoc],
}

/// The programs and subcommands, in the order the help lists them.
pub const COMMANDS: &[CommandDoc] = &[
    CommandDoc {
        name: "daemon",
        synopsis: &[
            "{-e | -d} -s ADDR -t ADDR -k FILE [OPTION]...",
            "--config FILE",
        ],
        summary: "run the relay: spiped's command line and spiperelay's own options, or a config file",
        options: super::spiped::DAEMON_OPTIONS,
    },
    CommandDoc {
        name: "spipe",
        synopsis: &["spipe -t ADDR -k FILE [OPTION]..."],
        summary: "connect once: standard input to the target, the target to standard output",
        options: super::spipe::SPIPE_OPTIONS,
    },
    CommandDoc {
        name: "keygen",
        synopsis: &["keygen [--force] FILE"],
        summary: "write a new key file (32 random bytes, mode 0600) and print its fingerprint",
        options: KEYGEN_OPTIONS,
    },
    CommandDoc {
        name: "keys",
        synopsis: &[
            "keys [--control SOCKET] [--pipe NAME] {status | rotate FILE | set [--force] FILE}",
        ],
        summary: "show or change a running daemon's keys through its control socket",
        options: KEYS_OPTIONS,
    },
    CommandDoc {
        name: "reload",
        synopsis: &["reload [--control SOCKET]"],
        summary: "make a running daemon re-read its configuration (as SIGHUP) and print the outcome",
        options: RELOAD_OPTIONS,
    },
    CommandDoc {
        name: "check-config",
        synopsis: &["check-config FILE"],
        summary: "check a configuration file: each error as FILE:LINE:COL, or a line per pipe",
        options: &[],
    },
    CommandDoc {
        name: "kernels",
        synopsis: &["kernels"],
        summary: "print which SHA-256, AES and modexp implementation runs on this CPU",
        options: &[],
    },
    CommandDoc {
        name: "status",
        synopsis: &["status [--control SOCKET] [--json]"],
        summary: "show a running daemon's pipes, listeners, connections, bytes and keys",
        options: STATUS_OPTIONS,
    },
    CommandDoc {
        name: "help",
        synopsis: &["help [COMMAND]", "--help"],
        summary: "print this help, or the help of COMMAND (any command above)",
        options: &[],
    },
];

/// An environment variable the binary reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct EnvDoc {
    /// Its name.
    pub name: &'static str,
    /// What it does, in one line.
    pub help: &'static str,
    /// The value in force when it is unset; empty when there is nothing to say.
    pub default: &'static str,
    /// The commands that read it ([`CommandDoc::name`]s).
    pub commands: &'static [&'static str],
}

/// The environment variables, in the order the help lists them.
pub const ENVIRONMENT: &[EnvDoc] = &[
    EnvDoc {
        name: "SPIPERELAY_BACKEND",
        help: "io backend: auto (io_uring, else epoll), uring or epoll",
        default: "auto",
        commands: &["daemon"],
    },
    EnvDoc {
        name: "SPIPERELAY_CONTROL",
        help: "control socket for `spiperelay keys`, `reload` and `status` without --control",
        default: "",
        commands: &["keys", "reload", "status"],
    },
    EnvDoc {
        name: "SPIPERELAY_KERNELS",
        help: "fast (our own crypto kernels) or reference (RustCrypto only)",
        default: "fast",
        commands: &["daemon", "spipe", "kernels"],
    },
];

/// The spiped address forms, for the help's footnote.
const ADDRESSES: &str =
    "ADDR is /absolute/path (a Unix socket), [IPv4]:port, [IPv6]:port or host:port.";

/// The command named `name` (`daemon`, `spipe`, ...), if there is one.
pub fn command(name: &str) -> Option<&'static CommandDoc> {
    COMMANDS.iter().find(|c| c.name == name)
}

/// One `  LABEL  description` line (or two, when the label is too wide for its column).
fn option_line(out: &mut String, label: &str, description: &str) {
    if label.len() + 2 <= OPTION_COLUMN - 2 {
        let _ = writeln!(
            out,
            "  {label:<width$}{description}",
            width = OPTION_COLUMN - 2
        );
    } else {
        let _ = writeln!(out, "  {label}");
        let _ = writeln!(out, "{:OPTION_COLUMN$}{description}", "");
    }
}

/// The options of `table` in `group`, one line each, under `heading` (nothing when none).
fn option_list(out: &mut String, heading: &str, table: &[OptDoc], group: OptGroup) {
    let rows: Vec<&OptDoc> = table.iter().filter(|o| o.group == group).collect();
    if rows.is_empty() {
        return;
    }
    let _ = writeln!(out, "\n{heading}");
    for o in rows {
        option_line(out, &o.label(), &o.description());
    }
}

/// The environment variables read by `command` (all of them for `None`).
fn environment_list(out: &mut String, command: Option<&str>) {
    let rows: Vec<&EnvDoc> = ENVIRONMENT
        .iter()
        .filter(|e| command.is_none_or(|c| e.commands.contains(&c)))
        .collect();
    if rows.is_empty() {
        return;
    }
    let _ = writeln!(out, "\nEnvironment:");
    for e in rows {
        let description = if e.default.is_empty() {
            e.help.to_owned()
        } else {
            format!("{} [default: {}]", e.help, e.default)
        };
        option_line(out, e.name, &description);
    }
}

/// The option lists of one command, grouped.
fn command_options(out: &mut String, c: &CommandDoc) {
    let (theirs, ours) = match c.name {
        "daemon" => ("Options, as in spiped 1.6:", "spiperelay's own options:"),
        "spipe" => ("Options, as in spipe 1.6:", "spiperelay's own options:"),
        _ => ("Options:", "Options:"),
    };
    option_list(out, theirs, c.options, OptGroup::Spiped);
    option_list(out, ours, c.options, OptGroup::Own);
}

/// `spiperelay --help` and `spiperelay help`: every program and subcommand with its options,
/// the environment variables, and where to read more. Every line fits [`HELP_WIDTH`].
pub fn full_help(version: &str) -> String {
    let mut out = format!(
        "spiperelay {version}: a relay that speaks Tarsnap spiped 1.6's protocol, byte for byte\n\
         \nUsage:\n"
    );
    for c in COMMANDS {
        for s in c.synopsis {
            let _ = writeln!(out, "  spiperelay {s}");
        }
        let _ = writeln!(out, "      {}", c.summary);
    }
    out.push_str(
        "\nInvoked through a link named spiped or spipe, the binary is that program: the same\n\
         command line and the same usage text, byte for byte.\n",
    );
    for c in COMMANDS {
        if c.options.is_empty() {
            continue;
        }
        let _ = write!(out, "\n{}", command_title(c));
        command_options(&mut out, c);
    }
    environment_list(&mut out, None);
    let _ = write!(
        out,
        "\n{ADDRESSES}\nSee `spiperelay help COMMAND` for one command, and `man spiperelay`.\n"
    );
    out
}

/// The heading of a command's section: its synopsis, then its summary.
fn command_title(c: &CommandDoc) -> String {
    let mut out = String::new();
    for s in c.synopsis {
        let _ = writeln!(out, "spiperelay {s}");
    }
    let _ = writeln!(out, "  {}", upper_first(c.summary));
    out
}

fn upper_first(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect::<String>() + ".",
        None => String::new(),
    }
}

/// `spiperelay help NAME` and `spiperelay NAME --help`: one command's synopsis, options and
/// environment variables. `None` when there is no such command.
pub fn command_help(name: &str, version: &str) -> Option<String> {
    let c = command(name)?;
    if c.name == "help" {
        return Some(full_help(version));
    }
    let mut out = command_title(c);
    command_options(&mut out, c);
    environment_list(&mut out, Some(c.name));
    if c.options.iter().any(|o| o.arg == "ADDR") {
        let _ = writeln!(out, "\n{ADDRESSES}");
    }
    Some(out)
}

/// The commands' synopses in the style of spiped's usage text (`usage: ` then continuation
/// lines indented to match), for `spiperelay` after a command-line error.
pub fn synopsis_block() -> String {
    let mut out = String::new();
    for c in COMMANDS {
        for s in c.synopsis {
            let _ = writeln!(out, "       spiperelay {s}");
        }
    }
    out
}

/// Whether `args` (a command line after the command word) asks for help: `--help` or `-h`
/// where an option may stand, that is before a `--` and not as the argument of an option of
/// `table` that takes one (`-k --help` names a key file). Other arguments do not stop the
/// search, so `spiperelay keys status --help` asks for help too.
pub fn asks_for_help(table: &[OptDoc], args: &[OsString]) -> bool {
    let takes_arg = |name: &[u8]| {
        table
            .iter()
            .any(|o| o.spec.takes_arg && o.spec.name.as_bytes() == name)
    };
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let a = arg.as_bytes();
        if a == b"--" {
            return false;
        }
        if a == b"--help" || a == b"-h" {
            return true;
        }
        if a.starts_with(b"--") {
            // A long option: `--name value` takes the next argument, `--name=value` does not.
            if !a.contains(&b'=') && takes_arg(a) {
                it.next();
            }
        } else if let [b'-', bundle @ ..] = a {
            // A bundle (`-dFk`): the first option that takes an argument ends it, and takes
            // the next command-line argument when nothing is attached.
            for (i, &c) in bundle.iter().enumerate() {
                if takes_arg(&[b'-', c]) {
                    if i + 1 == bundle.len() {
                        it.next();
                    }
                    break;
                }
            }
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<OsString> {
        a.iter().map(OsString::from).collect()
    }

    #[test]
    fn help_is_found_where_an_option_may_stand() {
        let t = super::super::spiped::DAEMON_OPTIONS;
        assert!(asks_for_help(t, &args(&["--help"])));
        assert!(asks_for_help(t, &args(&["-d", "-s", "/x", "-h"])));
        assert!(asks_for_help(KEYS_OPTIONS, &args(&["status", "--help"])));
        // Option arguments and operands after `--` are not requests.
        assert!(!asks_for_help(t, &args(&["-k", "--help"])));
        assert!(!asks_for_help(t, &args(&["-dk", "-h"])));
        assert!(!asks_for_help(KEYS_OPTIONS, &args(&["--control", "-h"])));
        assert!(!asks_for_help(t, &args(&["--", "--help"])));
        assert!(!asks_for_help(t, &args(&["-d", "-s", "/x"])));
        // An attached argument does not take the next one.
        assert!(asks_for_help(t, &args(&["-k/key", "--help"])));
    }

    #[test]
    fn every_line_fits_and_every_option_is_listed() {
        let full = full_help("0.0.0");
        for line in full.lines() {
            assert!(
                line.chars().count() <= HELP_WIDTH,
                "{} columns: {line:?}",
                line.chars().count()
            );
        }
        for c in COMMANDS {
            let own = command_help(c.name, "0.0.0").expect("command help");
            for o in c.options {
                let line = format!("  {}", o.label());
                assert!(full.contains(&line), "{line:?} not in --help");
                assert!(own.contains(&line), "{line:?} not in help {}", c.name);
                assert!(full.contains(o.help), "{:?} not in --help", o.help);
            }
        }
        assert!(command_help("nonesuch", "0").is_none());
    }

    #[test]
    fn descriptions_carry_the_default() {
        let o = OptDoc::spiped("-n", "N", "most connections", "100");
        assert_eq!(o.label(), "-n N");
        assert_eq!(o.description(), "most connections [default: 100]");
        let o = OptDoc::spiped("-k", "FILE", "key file", REQUIRED);
        assert_eq!(o.description(), "key file [required]");
        assert!(!OptDoc::own("--x", "", "x", "").spec.takes_arg);
    }
}
