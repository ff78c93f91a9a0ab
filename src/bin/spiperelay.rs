//! The spiperelay command-line program.

fn main() {
    eprintln!(
        "spiperelay {}: the relay daemon is not implemented yet",
        env!("CARGO_PKG_VERSION")
    );
    std::process::exit(1);
}
