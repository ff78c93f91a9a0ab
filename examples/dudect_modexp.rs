//! A dudect-style timing-leak check of the group-14 exponentiations (§1.5) over their secret
//! exponent: Reparaz, Balasch and Verbauwhede, "Dude, is my code constant time?" (2017).
//!
//! For each exponentiation that takes the secret `priv` (the shared value `peer^x` by a fixed
//! window, and the public value `2^x` from the fixed-base table), measurements of two classes
//! are taken in a random interleaving: class A always uses one fixed `priv` (all zero bytes:
//! the sparsest exponent, `x = 2^258`), class B a fresh random `priv` each time. The inputs
//! and the class of every measurement are drawn before a batch is timed, so drawing them costs
//! nothing inside the timed region. The durations are compared with Welch's t-test, on all
//! measurements and, as dudect does, on the measurements below each of 100 percentiles
//! (cropping away the long upper tail that interrupts and other processes add), the
//! percentiles taken from the first batch. `|t| > 4.5` on any of them means the two classes'
//! timings differ: a leak is likely. A smaller `|t|` is no proof of constant time; it says this
//! many measurements on this CPU found no difference.
//!
//! ```text
//! cargo run --release --example dudect_modexp [SAMPLES] [SECONDS]
//! SPIPERELAY_KERNELS=reference cargo run --release --example dudect_modexp
//! ```
//! `SAMPLES` (default 100000) measurements per exponentiation, stopping early after `SECONDS`
//! (default 60) each. `SPIPERELAY_KERNELS` selects the arithmetic as the relay does (`fast`:
//! the BMI2/ADX kernel when the CPU has it; `reference`: the portable code). The last line is
//! the verdict: `verdict: no leak detected (max |t| = ...)` or `verdict: LEAK LIKELY (...)`,
//! and the exit status is 1 for a likely leak.
//!
//! With `--control` as the first argument it times instead a deliberately leaky
//! square-and-multiply (a multiplication only for the exponent's one bits) on the same
//! arithmetic, which must be reported as a leak: the check that the harness can see one. With
//! `--control-small` it times the real `shared_secret` plus one Montgomery squaring when the
//! lowest bit of `priv` is set (class B: half the time), a leak of about a microsecond in a
//! few hundred: what this machine's noise lets the harness see.
//!
//! `scripts/dudect-modexp.sh` runs it for both kernel sets and the control.

use std::hint::black_box;
use std::time::{Duration, Instant};

use spiperelay::proto::DH_PUBLIC_LEN;
use spiperelay::proto::dh::internals::{
    Arith, MONT_TWO, public_from_private_with, shared_secret_with,
};
use spiperelay::proto::dh::{DH_PRIVATE_LEN, public_from_private};
use spiperelay::proto::kernels::Kernels;

/// dudect's threshold: `|t|` above it means the classes' timings differ.
const T_THRESHOLD: f64 = 4.5;
/// Number of cropping percentiles (dudect's `DUDECT_NUMBER_PERCENTILES`).
const PERCENTILES: usize = 100;
/// Measurements per batch; the first batch sets the cropping thresholds.
const BATCH: usize = 5000;
/// A test counts only once each class has this many measurements in it.
const MIN_PER_CLASS: f64 = 1000.0;

/// Welch's t-test accumulated online (Welford's mean and variance per class).
#[derive(Clone, Copy, Debug, Default)]
struct Welch {
    n: [f64; 2],
    mean: [f64; 2],
    m2: [f64; 2],
}

impl Welch {
    /// Adds measurement `x` to class `class` (0 or 1).
    fn push(&mut self, class: usize, x: f64) {
        let c = class & 1;
        self.n[c] += 1.0;
        let delta = x - self.mean[c];
        self.mean[c] += delta / self.n[c];
        self.m2[c] += delta * (x - self.mean[c]);
    }

    /// Welch's t of the two classes, or `None` until each has two measurements.
    fn t(&self) -> Option<f64> {
        if self.n[0] < 2.0 || self.n[1] < 2.0 {
            return None;
        }
        let var0 = self.m2[0] / (self.n[0] - 1.0);
        let var1 = self.m2[1] / (self.n[1] - 1.0);
        let se = (var0 / self.n[0] + var1 / self.n[1]).sqrt();
        if se == 0.0 {
            return Some(if self.mean[0] == self.mean[1] {
                0.0
            } else {
                f64::INFINITY
            });
        }
        Some((self.mean[0] - self.mean[1]) / se)
    }

    /// The smaller class size.
    fn min_n(&self) -> f64 {
        self.n[0].min(self.n[1])
    }
}

/// The cropping thresholds of dudect: the `1 - 0.5^(10 (i + 1) / 100)` quantiles of `first`.
fn crop_thresholds(first: &[u64]) -> Vec<u64> {
    let mut sorted = first.to_vec();
    sorted.sort_unstable();
    (0..PERCENTILES)
        .map(|i| {
            let q = 1.0 - 0.5f64.powf(10.0 * (i as f64 + 1.0) / PERCENTILES as f64);
            let idx = ((sorted.len() as f64 * q) as usize).min(sorted.len().saturating_sub(1));
            sorted.get(idx).copied().unwrap_or(u64::MAX)
        })
        .collect()
}

/// All the t-tests of one exponentiation: uncropped, then one per cropping threshold.
struct Tests {
    all: Welch,
    cropped: Vec<(u64, Welch)>,
}

impl Tests {
    fn new(thresholds: Vec<u64>) -> Self {
        Tests {
            all: Welch::default(),
            cropped: thresholds
                .into_iter()
                .map(|t| (t, Welch::default()))
                .collect(),
        }
    }

    fn push(&mut self, class: usize, ns: u64) {
        self.all.push(class, ns as f64);
        for (limit, w) in &mut self.cropped {
            if ns < *limit {
                w.push(class, ns as f64);
            }
        }
    }

    /// The largest `|t|` among tests with enough measurements, and which test it is.
    fn max_t(&self) -> (f64, String) {
        let mut best = (0.0f64, "none".to_owned());
        let all = std::iter::once(("all".to_owned(), &self.all));
        let cropped = self
            .cropped
            .iter()
            .enumerate()
            .map(|(i, (limit, w))| (format!("crop {i} (< {limit} ns)"), w));
        for (name, w) in all.chain(cropped) {
            if w.min_n() < MIN_PER_CLASS {
                continue;
            }
            if let Some(t) = w.t()
                && t.abs() > best.0
            {
                best = (t.abs(), name);
            }
        }
        best
    }
}

/// Random bytes from the OS.
fn random<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    getrandom::fill(&mut b).expect("getrandom");
    b
}

/// Runs `samples` measurements of `f` (stopping after `limit`), classes interleaved at random;
/// returns the tests and the number of measurements taken.
fn measure(
    samples: usize,
    limit: Duration,
    mut f: impl FnMut(&[u8; DH_PRIVATE_LEN]),
) -> (Tests, usize) {
    let fixed = [0u8; DH_PRIVATE_LEN];
    let start = Instant::now();
    let mut tests: Option<Tests> = None;
    let mut first: Vec<u64> = Vec::with_capacity(BATCH);
    let mut first_classes: Vec<usize> = Vec::with_capacity(BATCH);
    let mut done = 0;
    // Warm-up: caches, branch predictors, frequency.
    for _ in 0..200 {
        f(&fixed);
    }
    while done < samples && start.elapsed() < limit {
        let n = BATCH.min(samples - done);
        let coins: Vec<u8> = (0..n).map(|_| random::<1>()[0] & 1).collect();
        let inputs: Vec<[u8; DH_PRIVATE_LEN]> = coins
            .iter()
            .map(|&c| if c == 0 { fixed } else { random() })
            .collect();
        let mut times = Vec::with_capacity(n);
        for input in &inputs {
            let t0 = Instant::now();
            f(black_box(input));
            times.push(t0.elapsed().as_nanos() as u64);
        }
        match tests.as_mut() {
            None => {
                first.extend_from_slice(&times);
                first_classes.extend(coins.iter().map(|&c| usize::from(c)));
                let mut t = Tests::new(crop_thresholds(&first));
                for (&c, &ns) in first_classes.iter().zip(&first) {
                    t.push(c, ns);
                }
                tests = Some(t);
            }
            Some(t) => {
                for (&c, &ns) in coins.iter().zip(&times) {
                    t.push(usize::from(c), ns);
                }
            }
        }
        done += n;
    }
    (tests.unwrap_or_else(|| Tests::new(Vec::new())), done)
}

/// Which positive control runs instead of the real exponentiations.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Control {
    None,
    Gross,
    Small,
}

/// `2^x` with `x = 2^258 + private` by left-to-right square-and-multiply that multiplies only
/// for one bits: NOT constant time, on purpose (the positive control).
fn leaky_pow(arith: Arith, private: &[u8; DH_PRIVATE_LEN]) -> [u64; 32] {
    let mut acc = MONT_TWO; // the top bit, 2^258
    for bit in (0..8 * DH_PRIVATE_LEN + 2).rev() {
        acc = arith.sqr(&acc);
        let set = bit < 8 * DH_PRIVATE_LEN
            && (private[DH_PRIVATE_LEN - 1 - bit / 8] >> (bit % 8)) & 1 == 1;
        if set {
            acc = arith.mul(&acc, &MONT_TWO);
        }
    }
    acc
}

fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let control = match args.first().map(String::as_str) {
        Some("--control") => Control::Gross,
        Some("--control-small") => Control::Small,
        _ => Control::None,
    };
    if control != Control::None {
        args.remove(0);
    }
    let arg = |i: usize, default: u64| -> u64 {
        args.get(i)
            .map(|a| a.parse().expect("a number"))
            .unwrap_or(default)
    };
    run(
        control,
        arg(0, 100_000) as usize,
        Duration::from_secs(arg(1, 60)),
    );
}

fn run(control: Control, samples: usize, limit: Duration) {
    let kernels = match std::env::var("SPIPERELAY_KERNELS") {
        Ok(v) => Kernels::parse(&v).expect("SPIPERELAY_KERNELS"),
        Err(_) => Kernels::Fast,
    };
    kernels.select();
    let arith = Arith::detect();
    println!(
        "kernels {} (modexp arithmetic: {}); classes: A fixed priv = 0, B random priv; \
         threshold |t| > {T_THRESHOLD}",
        kernels.name(),
        arith.name()
    );
    let peer: [u8; DH_PUBLIC_LEN] = public_from_private(&random());
    // Builds the fixed-base table before timing it.
    black_box(public_from_private_with(arith, &[0; DH_PRIVATE_LEN]));

    let mut worst = 0.0f64;
    type Case<'a> = (&'a str, Box<dyn FnMut(&[u8; DH_PRIVATE_LEN]) + 'a>);
    let cases: Vec<Case<'_>> = match control {
        Control::Gross => vec![(
            "CONTROL: leaky square-and-multiply (must leak)",
            Box::new(|p| {
                black_box(leaky_pow(arith, p));
            }),
        )],
        Control::Small => vec![(
            "CONTROL: shared_secret + 1 squaring when priv is odd",
            Box::new(|p| {
                let out = black_box(shared_secret_with(arith, &peer, p));
                if p[DH_PRIVATE_LEN - 1] & 1 == 1 {
                    black_box(arith.sqr(&MONT_TWO));
                }
                black_box(out);
            }),
        )],
        Control::None => {
            vec![
                (
                    "shared_secret (peer^x, fixed window)",
                    Box::new(|p| {
                        black_box(shared_secret_with(arith, &peer, p));
                    }),
                ),
                (
                    "public_from_private (2^x, fixed-base table)",
                    Box::new(|p| {
                        black_box(public_from_private_with(arith, p));
                    }),
                ),
            ]
        }
    };
    for (name, f) in cases {
        let (tests, n) = measure(samples, limit, f);
        let (t, which) = tests.max_t();
        let med = |c: usize| tests.all.mean[c] / 1000.0;
        println!(
            "{name}: {n} measurements ({:.0} A / {:.0} B), mean A {:.1} µs, mean B {:.1} µs, \
             t(all) {:+.2}, max |t| {t:.2} at {which}",
            tests.all.n[0],
            tests.all.n[1],
            med(0),
            med(1),
            tests.all.t().unwrap_or(0.0),
        );
        worst = worst.max(t);
    }
    if worst > T_THRESHOLD {
        println!("verdict: LEAK LIKELY (max |t| = {worst:.2} > {T_THRESHOLD})");
        std::process::exit(1);
    }
    println!("verdict: no leak detected (max |t| = {worst:.2} <= {T_THRESHOLD})");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn welch_t_matches_a_hand_computed_value() {
        // Class 0: 1, 2, 3, 4 (mean 2.5, variance 5/3); class 1: 2, 4, 6 (mean 4, variance 4).
        // t = (2.5 - 4) / sqrt(5/3/4 + 4/3) = -1.5 / sqrt(1.75) = -1.1338934...
        let mut w = Welch::default();
        for x in [1.0, 2.0, 3.0, 4.0] {
            w.push(0, x);
        }
        for x in [2.0, 4.0, 6.0] {
            w.push(1, x);
        }
        let t = w.t().expect("enough samples");
        assert!((t - (-1.5 / 1.75f64.sqrt())).abs() < 1e-12, "{t}");
        assert_eq!(w.min_n(), 3.0);
    }

    #[test]
    fn welch_t_needs_two_per_class_and_handles_zero_variance() {
        let mut w = Welch::default();
        w.push(0, 5.0);
        w.push(1, 5.0);
        assert_eq!(w.t(), None);
        w.push(0, 5.0);
        w.push(1, 5.0);
        assert_eq!(w.t(), Some(0.0));
        w.push(1, 5.0);
        w.push(0, 6.0);
        assert!(w.t().is_some_and(|t| t.is_finite() && t > 0.0));
    }

    #[test]
    fn identical_distributions_give_a_small_t_and_shifted_ones_a_large_one() {
        // A deterministic mixing sequence stands in for noise.
        let noise = |i: u64| (i.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 54) as f64;
        let (mut same, mut shifted) = (Welch::default(), Welch::default());
        for i in 0..20_000u64 {
            let class = (noise(i ^ 0x55) as usize) & 1;
            same.push(class, 1000.0 + noise(i));
            shifted.push(
                class,
                1000.0 + noise(i) + if class == 1 { 30.0 } else { 0.0 },
            );
        }
        assert!(same.t().unwrap().abs() < T_THRESHOLD, "{:?}", same.t());
        assert!(
            shifted.t().unwrap().abs() > T_THRESHOLD,
            "{:?}",
            shifted.t()
        );
    }

    #[test]
    fn crop_thresholds_rise_with_the_percentile() {
        let data: Vec<u64> = (0..1000).collect();
        let th = crop_thresholds(&data);
        assert_eq!(th.len(), PERCENTILES);
        assert!(th.windows(2).all(|w| w[0] <= w[1]));
        // The first percentile is 1 - 0.5^0.1 = 6.7 %, the last 1 - 0.5^10 = 99.9 %.
        assert_eq!(th[0], 66);
        assert_eq!(th[PERCENTILES - 1], 999);
    }
}
