//! The short soak (`scripts/soak.sh --short`) on both backends: 256 MiB each way over one
//! connection and 16 MiB each way over each of 8 at once through an `-e`/`-d` pair, every
//! stream's SHA-256 compared, descriptors back to where they were and RSS flat afterwards.
//! The full soak (10 GiB, and 64 × 1 GiB) is `scripts/soak.sh` without `--short`.

mod adv_common;
mod bin_common;

use std::path::Path;
use std::process::Command;

use adv_common::backends;
use bin_common::{relay_bin, under_ci};

#[test]
fn short_soak_passes_on_every_backend() {
    if Command::new("python3").arg("--version").output().is_err() {
        assert!(!under_ci(), "python3 is missing under CI");
        eprintln!("SKIP: python3 not found");
        return;
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/soak.sh");
    let bin = relay_bin();
    let out = Command::new("timeout")
        .arg("900")
        .arg(&script)
        .args(["--short", "--no-build", "--backends", &backends().join(" ")])
        .arg("--bin")
        .arg(&bin)
        .output()
        .expect("run scripts/soak.sh");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("{stdout}");
    assert!(
        out.status.success(),
        "scripts/soak.sh --short failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    assert!(
        stdout.contains("PASS"),
        "no result table:\n{stdout}\n{stderr}"
    );
}
