//! The spiperelay command-line program: a drop-in for `spiped -e|-d` and `spipe` (§3 of
//! `docs/protocol.md`).
//!
//! Which program it is depends first on the name it was invoked under (a link named `spipe`
//! or `spiped` behaves exactly as that program), then on the first argument:
//!
//! | command line | runs |
//! |---|---|
//! | `spipe ARGS` (argv[0]) or `spiperelay spipe ARGS` | the spipe client |
//! | `spiped ARGS` (argv[0]) | the daemon, spiped's command line exactly |
//! | `spiperelay keygen [--force] FILE` | writes a new key file |
//! | `spiperelay keys ...` | asks a running daemon to rotate or set keys, or for their status |
//! | `spiperelay status [--json]` | asks a running daemon for its pipes, connections and keys |
//! | `spiperelay reload` | asks a running daemon to re-read its configuration |
//! | `spiperelay --help`, `spiperelay help [COMMAND]` | the help (`spiperelay::cli::help`) |
//! | `spiperelay COMMAND --help` | that command's help |
//! | `spiperelay --version` | `spiperelay <version>` on standard output, exit 0 |
//! | `spiperelay check-config FILE` | checks a configuration file, printing every error |
//! | `spiperelay --config FILE` | the daemon, with every pipe of a configuration file |
//! | `spiperelay kernels` | prints which implementation of each primitive runs on this CPU |
//! | `spiperelay ARGS` (anything else) | the daemon, spiped's command line |
//!
//! `SPIPERELAY_KERNELS=reference` in the environment (any command) runs only the reference
//! RustCrypto paths instead of our kernel crates (`spiperelay::proto::kernels`); `fast` (the
//! default) runs the kernels. Any other value is an error before anything starts.
//!
//! Errors are printed as `<program>: <message>` (plus the usage text for command-line shape
//! errors, as spiped does) and exit with status 1. Under the names `spiped` and `spipe`, a
//! shape error that those programs answer with the usage text alone gets the usage text alone,
//! and `--help` is the illegal option it is there.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

use spiperelay::cli::help;
use spiperelay::cli::spiped::DAEMON_OPTIONS;
use spiperelay::cli::{
    SPIPE_USAGE, SPIPED_USAGE, SpipeArgs, SpipeCommand, SpipedArgs, SpipedCommand,
};
use spiperelay::proto::kernels::Kernels;
use spiperelay::relay::spipe::SpipeError;
use spiperelay::relay::{keyfile, spipe};

/// The command words after `spiperelay` that run a subcommand (each one of
/// [`help::COMMANDS`], which documents it and its options).
const SUBCOMMANDS: &[&str] = &[
    "spipe",
    "keygen",
    "keys",
    "reload",
    "status",
    "check-config",
    "kernels",
];

/// The environment variable that selects the kernel set (`fast` or `reference`).
const KERNELS_ENV: &str = "SPIPERELAY_KERNELS";

/// `spiperelay kernels`: which implementation of each primitive runs here. Takes no argument.
fn kernels_main(program: &str, args: &[OsString]) -> ExitCode {
    if let Some(extra) = args.first() {
        eprintln!(
            "{program}: kernels takes no argument, not {}",
            extra.to_string_lossy()
        );
        return ExitCode::FAILURE;
    }
    println!("{}", Kernels::current().describe());
    ExitCode::SUCCESS
}

/// The usage of `spiperelay keygen`.
const KEYGEN_USAGE: &str = "usage: spiperelay keygen [--force] <key file>\n";

/// This build's version, as `--help` and `-v` print it.
const VERSION: &str = env!("CARGO_PKG_VERSION");

fn main() -> ExitCode {
    let mut argv = std::env::args_os();
    let program = argv
        .next()
        .and_then(|a| {
            std::path::Path::new(&a)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
        })
        .unwrap_or_else(|| "spiperelay".to_owned());
    let args: Vec<OsString> = argv.collect();
    if let Some(value) = std::env::var_os(KERNELS_ENV) {
        match Kernels::parse(&value.to_string_lossy()) {
            Ok(kernels) => kernels.select(),
            Err(e) => {
                eprintln!("{program}: {KERNELS_ENV}: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    let first = args.first().and_then(|a| a.to_str());
    match (program.as_str(), first) {
        ("spipe", _) => spipe_main("spipe", args, DropIn::Exact),
        ("spiped", _) => spiped_main("spiped", args, DropIn::Exact),
        (_, Some("help")) => help_main(&program, &args[1..]),
        (_, Some(word)) if SUBCOMMANDS.contains(&word) => {
            let rest: Vec<OsString> = args[1..].to_vec();
            let options = help::command(word).map_or(&[][..], |c| c.options);
            if help::asks_for_help(options, &rest) {
                return print_help(word);
            }
            match word {
                "spipe" => spipe_main("spipe", rest, DropIn::Explained),
                "keygen" => keygen_main(&program, rest),
                "check-config" => {
                    spiperelay::relay::check_config::check_config_main(&program, rest)
                }
                "kernels" => kernels_main(&program, &rest),
                "status" => spiperelay::relay::status::status_main(&program, rest),
                "reload" => spiperelay::relay::control::reload_main(&program, rest),
                _ => spiperelay::relay::control::keys_main(&program, rest),
            }
        }
        (_, Some(word)) if word == "--config" || word.starts_with("--config=") => {
            spiperelay::relay::check_config::config_main(&program, args)
        }
        (_, Some("--version")) if args.len() == 1 => {
            println!("spiperelay {VERSION}");
            ExitCode::SUCCESS
        }
        _ if help::asks_for_help(DAEMON_OPTIONS, &args) => {
            print!("{}", help::full_help(VERSION));
            ExitCode::SUCCESS
        }
        (_, Some(word)) if !word.starts_with('-') => {
            eprintln!("{program}: unknown command {word:?}");
            eprint!("{SPIPED_USAGE}{}", help::synopsis_block());
            eprintln!("{}", help_hint("--help"));
            ExitCode::FAILURE
        }
        _ => spiped_main(&program, args, DropIn::Explained),
    }
}

/// `spiperelay help [COMMAND]`: the whole help, or one command's; an unknown command is an
/// error naming the commands there are.
fn help_main(program: &str, args: &[OsString]) -> ExitCode {
    match args {
        [] => {
            print!("{}", help::full_help(VERSION));
            ExitCode::SUCCESS
        }
        [name] if name.to_str().and_then(help::command).is_some() => {
            print_help(name.to_str().unwrap_or_default())
        }
        _ => {
            let names: Vec<&str> = help::COMMANDS.iter().map(|c| c.name).collect();
            eprintln!(
                "{program}: help takes one command name: {}",
                names.join(", ")
            );
            ExitCode::FAILURE
        }
    }
}

/// The line after a usage text as `spiperelay`: where to read what each option does.
fn help_hint(how: &str) -> String {
    format!("Run `spiperelay {how}` for what each option does.")
}

/// Prints the help of the command named `name` (one of [`help::COMMANDS`]) and exits 0.
fn print_help(name: &str) -> ExitCode {
    match help::command_help(name, VERSION) {
        Some(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        None => ExitCode::FAILURE,
    }
}

/// How command-line shape errors are reported.
#[derive(Clone, Copy, PartialEq, Eq)]
enum DropIn {
    /// Invoked as `spiped` or `spipe`: like those programs, only the usage text where they
    /// print no message (a missing option, `-f` with `-g`, ...).
    Exact,
    /// Invoked as `spiperelay`: always a message naming the cause, then the usage text.
    Explained,
}

/// The daemon, with spiped's command line.
fn spiped_main(program: &str, args: Vec<OsString>, style: DropIn) -> ExitCode {
    let args = match SpipedArgs::parse(args) {
        Ok(SpipedCommand::Version) => {
            eprintln!("spiperelay {VERSION} (spiped 1.6.2 compatible)");
            return ExitCode::SUCCESS;
        }
        Ok(SpipedCommand::Run(args)) => args,
        Err(e) => {
            if style == DropIn::Explained || e.spiped_prints_message() {
                eprintln!("{program}: {e}");
            }
            if let Some(usage) = e.usage() {
                eprint!("{usage}");
                if style == DropIn::Explained {
                    eprintln!("{}", help_hint("--help"));
                }
            }
            return ExitCode::FAILURE;
        }
    };
    let source = spiperelay::relay::ConfigSource::CommandLine(args.to_full_config());
    match spiperelay::relay::run(program, source) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{program}: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The client, with spipe's command line.
fn spipe_main(program: &str, args: Vec<OsString>, style: DropIn) -> ExitCode {
    let args = match SpipeArgs::parse(args) {
        Ok(SpipeCommand::Version) => {
            eprintln!("spiperelay {VERSION} (spipe 1.6.2 compatible)");
            return ExitCode::SUCCESS;
        }
        Ok(SpipeCommand::Run(args)) => args,
        Err(e) => {
            if style == DropIn::Explained || e.spipe_prints_message() {
                eprintln!("{program}: {e}");
            }
            if e.usage().is_some() {
                eprint!("{SPIPE_USAGE}");
                if style == DropIn::Explained {
                    eprintln!("{}", help_hint("help spipe"));
                }
            }
            return ExitCode::FAILURE;
        }
    };
    let result = spipe::load_key(&args).and_then(|(keys, warnings)| {
        for w in warnings {
            eprintln!("{program}: {w}");
        }
        spipe::run(&args, keys)
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // spipe 1.6.2 prints only its own line for a failed connect or handshake; as
            // `spiperelay spipe` the cause comes first, then that line.
            if let (DropIn::Explained, Some(cause)) = (style, spipe_cause(&e)) {
                eprintln!("{program}: {cause}");
            }
            eprintln!("{program}: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The cause behind spipe's one-line verdict (`Could not connect`, `Handshake failed`,
/// `Connection error`); `None` for a key-file error, whose message already names its cause.
fn spipe_cause(e: &SpipeError) -> Option<String> {
    match e {
        SpipeError::Key(_) => None,
        _ => Some(e.detail()).filter(|d| !d.is_empty()),
    }
}

/// `keygen [--force] FILE`: writes a new key file and prints its fingerprint.
fn keygen_main(program: &str, args: Vec<OsString>) -> ExitCode {
    let mut force = false;
    let mut file: Option<PathBuf> = None;
    let mut operands_only = false;
    for arg in args {
        match arg.to_str() {
            Some("--force") if !operands_only => force = true,
            Some("--") if !operands_only => operands_only = true,
            Some(s) if s.starts_with('-') && s != "-" && !operands_only => {
                eprintln!("{program} keygen: illegal option -- {s}");
                eprint!("{KEYGEN_USAGE}");
                return ExitCode::FAILURE;
            }
            _ if file.is_some() => {
                eprintln!("{program} keygen: only one key file may be given");
                eprint!("{KEYGEN_USAGE}");
                return ExitCode::FAILURE;
            }
            _ => file = Some(PathBuf::from(arg)),
        }
    }
    let Some(file) = file.filter(|f| f.as_os_str() != "-") else {
        eprintln!("{program} keygen: a key file path is required");
        eprint!("{KEYGEN_USAGE}");
        return ExitCode::FAILURE;
    };
    match keyfile::generate(&file, force) {
        Ok(fingerprint) => {
            println!("{} key fingerprint {fingerprint}", file.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{program} keygen: {e}");
            ExitCode::FAILURE
        }
    }
}
