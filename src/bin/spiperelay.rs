//! The spiperelay command-line program: a drop-in for `spiped -e|-d` (spec §3).
//!
//! Errors are printed as `<program>: <message>` (plus the usage text for command-line shape
//! errors, as spiped does) and exit with status 1.

use std::process::ExitCode;

use spiperelay::cli::{SpipedArgs, SpipedCommand};

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
    let mut argv = argv.peekable();
    if argv.peek().is_some_and(|a| a == "keys") {
        return spiperelay::relay::control::keys_main(&program, argv.skip(1).collect());
    }
    let args = match SpipedArgs::parse(argv) {
        Ok(SpipedCommand::Version) => {
            eprintln!(
                "spiperelay {} (spiped 1.6.2 compatible)",
                env!("CARGO_PKG_VERSION")
            );
            return ExitCode::SUCCESS;
        }
        Ok(SpipedCommand::Run(args)) => args,
        Err(e) => {
            eprintln!("{program}: {e}");
            if let Some(usage) = e.usage() {
                eprint!("{usage}");
            }
            return ExitCode::FAILURE;
        }
    };
    match spiperelay::relay::run(&program, &args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{program}: {e}");
            ExitCode::FAILURE
        }
    }
}
