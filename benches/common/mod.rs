//! Pieces every criterion suite in `benches/` shares (included with `mod common;`).

use std::time::Duration;

use criterion::Criterion;

/// Short runs: each suite stays within a few minutes on a shared 2-core machine.
pub(crate) fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(30)
}
