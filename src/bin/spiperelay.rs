//! The spiperelay command-line program: a drop-in for `spiped -e|-d` and `spipe` (spec §3).
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
//! | `spiperelay kernels` | prints which implementation of each primitive runs on this CPU |
//! | `spiperelay --help` | this program's usage, exit 0 |
//! | `spiperelay ARGS` (anything else) | the daemon, spiped's command line |
//!
//! `SPIPERELAY_KERNELS=reference` in the environment (any command) runs only the reference
//! RustCrypto paths instead of our kernel crates (`spiperelay::proto::kernels`); `fast` (the
//! default) runs the kernels. Any other value is an error before anything starts.
//!
//! Errors are printed as `<program>: <message>` (plus the usage text for command-line shape
//! errors, as spiped does) and exit with status 1. Under the names `spiped` and `spipe`, a
//! shape error that those programs answer with the usage text alone gets the usage text alone.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

use spiperelay::cli::{
    SPIPE_USAGE, SPIPED_USAGE, SpipeArgs, SpipeCommand, SpipedArgs, SpipedCommand,
};
use spiperelay::proto::kernels::Kernels;
use spiperelay::relay::{keyfile, spipe};

/// The usage of the subcommands, after spiped's usage text, for `spiperelay --help`.
const SUBCOMMANDS_USAGE: &str = "\
       spiperelay spipe -t <target socket> -k <key file> [-f | -g] [-j]
           [-o <connection timeout>] [-b <bind address>] [--x25519]
       spiperelay keygen [--force] <key file>
       spiperelay keys [--control <socket>] {status | rotate <key file> | set [--force] <key file>}
       spiperelay kernels
       spiperelay --help
";

/// The environment variable that selects the kernel set (`fast` or `reference`).
const KERNELS_ENV: &str = "SPIPERELAY_KERNELS";

/// The usage of `spiperelay keygen`.
const KEYGEN_USAGE: &str = "usage: spiperelay keygen [--force] <key file>\n";

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
        (_, Some("spipe")) => spipe_main(
            "spipe",
            args.into_iter().skip(1).collect(),
            DropIn::Explained,
        ),
        (_, Some("keygen")) => keygen_main(&program, args.into_iter().skip(1).collect()),
        (_, Some("keys")) => {
            spiperelay::relay::control::keys_main(&program, args.into_iter().skip(1).collect())
        }
        (_, Some("kernels")) if args.len() == 1 => {
            println!("{}", Kernels::current().describe());
            ExitCode::SUCCESS
        }
        (_, Some("--help" | "-h" | "help")) => {
            print!("{SPIPED_USAGE}{SUBCOMMANDS_USAGE}");
            ExitCode::SUCCESS
        }
        (_, Some(word)) if !word.starts_with('-') => {
            eprintln!("{program}: unknown command {word:?}");
            eprint!("{SPIPED_USAGE}{SUBCOMMANDS_USAGE}");
            ExitCode::FAILURE
        }
        _ => spiped_main(&program, args, DropIn::Explained),
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
            eprintln!(
                "spiperelay {} (spiped 1.6.2 compatible)",
                env!("CARGO_PKG_VERSION")
            );
            return ExitCode::SUCCESS;
        }
        Ok(SpipedCommand::Run(args)) => args,
        Err(e) => {
            if style == DropIn::Explained || e.spiped_prints_message() {
                eprintln!("{program}: {e}");
            }
            if let Some(usage) = e.usage() {
                eprint!("{usage}");
            }
            return ExitCode::FAILURE;
        }
    };
    match spiperelay::relay::run(program, &args) {
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
            eprintln!(
                "spiperelay {} (spipe 1.6.2 compatible)",
                env!("CARGO_PKG_VERSION")
            );
            return ExitCode::SUCCESS;
        }
        Ok(SpipeCommand::Run(args)) => args,
        Err(e) => {
            if style == DropIn::Explained || e.spipe_prints_message() {
                eprintln!("{program}: {e}");
            }
            if e.usage().is_some() {
                eprint!("{SPIPE_USAGE}");
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
            eprintln!("{program}: {e}");
            ExitCode::FAILURE
        }
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
