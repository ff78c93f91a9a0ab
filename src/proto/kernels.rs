//! Which implementation of each primitive the protocol core runs: our kernel crates (the
//! default) or only the reference RustCrypto paths.
//!
//! | primitive | [`Kernels::Fast`] (default) | [`Kernels::Reference`] |
//! |---|---|---|
//! | packet HMAC-SHA256 (§2) | `sha256-mb`: 16 AVX-512 lanes or interleaved SHA-NI, by CPU | the `hmac` + `sha2` crates, one packet at a time |
//! | packet AES-256-CTR (§2) | `aes-ctr-x86`: VAES, else the `aes` + `ctr` crates | the `aes` + `ctr` crates (`ctr::Ctr128BE<Aes256>`) |
//! | group-14 exponentiation (§1.5) | `mont2048-x86` (BMI2/ADX), else portable | the portable Montgomery code of `dh::bignum` |
//!
//! Both modes put the same bytes on the wire (tests: packets and handshakes byte for byte),
//! so a user who distrusts the kernels can turn them off, and a failure that goes away in
//! reference mode points at a kernel. The mode is process-wide: the binary sets it once at
//! start-up from `SPIPERELAY_KERNELS` (README), before any key is built; keys built before a
//! change keep the implementation they were built with. Choosing a mode is the caller's job
//! (this module reads no environment).

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};

/// The implementation set of the protocol core's primitives (module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kernels {
    /// Our kernel crates, each picking the fastest code this CPU has (the default).
    Fast,
    /// Only the reference RustCrypto paths and the portable bignum code.
    Reference,
}

/// Whether [`Kernels::Reference`] was selected (false: [`Kernels::Fast`]).
static REFERENCE: AtomicBool = AtomicBool::new(false);

/// A `SPIPERELAY_KERNELS` value that is neither `fast` nor `reference`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnknownKernels(pub String);

impl fmt::Display for UnknownKernels {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unknown kernel set {:?} (expected \"fast\" or \"reference\")",
            self.0
        )
    }
}

impl std::error::Error for UnknownKernels {}

impl Kernels {
    /// Parses `fast` or `reference` (ASCII case-insensitive; surrounding spaces ignored).
    ///
    /// # Errors
    /// [`UnknownKernels`] with the given text for anything else.
    pub fn parse(s: &str) -> Result<Self, UnknownKernels> {
        match s.trim().to_ascii_lowercase().as_str() {
            "fast" => Ok(Self::Fast),
            "reference" => Ok(Self::Reference),
            _ => Err(UnknownKernels(s.to_owned())),
        }
    }

    /// The mode new keys are built with.
    pub fn current() -> Self {
        if REFERENCE.load(Ordering::Relaxed) {
            Self::Reference
        } else {
            Self::Fast
        }
    }

    /// Makes `self` the mode for every key built from now on, process-wide.
    pub fn select(self) {
        REFERENCE.store(self == Self::Reference, Ordering::Relaxed);
    }

    /// "fast" or "reference".
    pub const fn name(self) -> &'static str {
        match self {
            Self::Fast => "fast",
            Self::Reference => "reference",
        }
    }

    /// One line naming the implementation of each primitive this mode runs on this CPU, e.g.
    /// `kernels fast: hmac-sha256 avx512 x16 + sha-ni x2, aes-256-ctr vaes, modexp adx`.
    pub fn describe(self) -> String {
        match self {
            Self::Fast => format!(
                "kernels fast: hmac-sha256 {}, aes-256-ctr {}, modexp {}",
                sha256_mb::Backend::detect().name(),
                aes_ctr_x86::Backend::detect().name(),
                crate::proto::dh::arith_name(self),
            ),
            Self::Reference => {
                "kernels reference: hmac-sha256 hmac+sha2 crates, aes-256-ctr aes+ctr crates, \
                 modexp portable"
                    .to_owned()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_accepts_the_two_names_only() {
        assert_eq!(Kernels::parse("fast"), Ok(Kernels::Fast));
        assert_eq!(Kernels::parse(" Reference "), Ok(Kernels::Reference));
        assert_eq!(Kernels::parse("ref"), Err(UnknownKernels("ref".to_owned())));
        assert!(
            UnknownKernels("x".into())
                .to_string()
                .contains("\"fast\" or \"reference\"")
        );
    }

    #[test]
    fn describe_names_every_primitive() {
        for k in [Kernels::Fast, Kernels::Reference] {
            let d = k.describe();
            for what in ["hmac-sha256", "aes-256-ctr", "modexp", k.name()] {
                assert!(d.contains(what), "{d}");
            }
        }
    }
}
