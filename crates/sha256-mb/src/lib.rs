//! Multi-buffer SHA-256 compression: the FIPS 180-4 §6.2.2 compression function over 2 or 4
//! independent streams at once.
//!
//! One SHA-256 stream on SHA-NI is latency-bound: each `sha256rnds2` waits for the previous
//! one. Independent streams (e.g. the HMACs of different spiped packets) have no data
//! dependency on each other, so running their instruction sequences interleaved in one function
//! keeps the SHA unit busy. [`Backend::detect`] picks the SHA-NI kernel when the CPU has it
//! (checked at run time) and otherwise a portable fallback that compresses each stream in turn
//! with [`sha2::compress256`]; both give bit-identical results (see the tests).
//!
//! This crate holds the only `unsafe` of the kernel (x86_64 intrinsics, loads from checked
//! slices); each block names its invariant in a `// SAFETY:` comment. It is reviewed like a
//! vendored primitive.

// One of the kernel crates where `unsafe` may live (the workspace denies it elsewhere).
#![allow(unsafe_code)]

#[cfg(target_arch = "x86_64")]
mod x86;

use sha2::digest::generic_array::GenericArray;

/// Bytes in one SHA-256 message block (FIPS 180-4 §5.2.1).
pub const BLOCK_LEN: usize = 64;

/// The SHA-256 initial hash value H(0) (FIPS 180-4 §5.3.3).
pub const IV: [u32; 8] = [
    0x6a09_e667,
    0xbb67_ae85,
    0x3c6e_f372,
    0xa54f_f53a,
    0x510e_527f,
    0x9b05_688c,
    0x1f83_d9ab,
    0x5be0_cd19,
];

/// Which implementation compresses the streams. Only [`Backend::detect`] can return the SHA-NI
/// kernel, so holding a `Backend` proves its CPU features were checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backend(Kind);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// Each stream in turn through `sha2::compress256` (itself SHA-NI-accelerated if available).
    Portable,
    /// The interleaved SHA-NI kernel; constructed only after runtime detection.
    #[cfg(target_arch = "x86_64")]
    ShaNi,
}

impl Backend {
    /// The fastest backend this CPU supports: the interleaved SHA-NI kernel on x86_64 when
    /// `sha`, `sse2`, `ssse3` and `sse4.1` are detected at run time, else [`Backend::portable`].
    /// The detection result is cached by the standard library; callers that compress often may
    /// also keep the returned value.
    pub fn detect() -> Self {
        #[cfg(target_arch = "x86_64")]
        {
            if std::is_x86_feature_detected!("sha")
                && std::is_x86_feature_detected!("sse2")
                && std::is_x86_feature_detected!("ssse3")
                && std::is_x86_feature_detected!("sse4.1")
            {
                return Self(Kind::ShaNi);
            }
        }
        Self::portable()
    }

    /// The portable fallback on every CPU (for tests and benchmarks of the fallback path).
    pub const fn portable() -> Self {
        Self(Kind::Portable)
    }

    /// Whether this is the interleaved SIMD kernel rather than the portable fallback.
    pub const fn is_interleaved(self) -> bool {
        !matches!(self.0, Kind::Portable)
    }

    /// Compresses `blocks[i]` into `states[i]` for both streams, as two separate calls of
    /// [`compress`] would. `states` are the eight working words H0..H7.
    ///
    /// # Panics
    /// If the two block slices differ in length or are not a whole number of 64-byte blocks
    /// (the caller's fixed layout, never outside input).
    pub fn compress_x2(self, states: [&mut [u32; 8]; 2], blocks: [&[u8]; 2]) {
        self.compress_n(states, blocks);
    }

    /// Like [`Backend::compress_x2`] for four streams.
    ///
    /// # Panics
    /// As for [`Backend::compress_x2`].
    pub fn compress_x4(self, states: [&mut [u32; 8]; 4], blocks: [&[u8]; 4]) {
        self.compress_n(states, blocks);
    }

    fn compress_n<const N: usize>(self, states: [&mut [u32; 8]; N], blocks: [&[u8]; N]) {
        let len = blocks[0].len();
        assert!(
            len.is_multiple_of(BLOCK_LEN) && blocks.iter().all(|b| b.len() == len),
            "sha256-mb: every stream needs the same whole number of 64-byte blocks"
        );
        match self.0 {
            Kind::Portable => {
                for (state, data) in states.into_iter().zip(blocks) {
                    compress(state, data);
                }
            }
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `Kind::ShaNi` is only constructed by `Backend::detect` after
            // is_x86_feature_detected! reported sha, sse2, ssse3 and sse4.1, the features the
            // kernel is compiled for; the slice lengths the kernel reads are asserted above.
            Kind::ShaNi => unsafe { x86::compress_interleaved(states, blocks) },
        }
    }
}

/// Compresses `blocks` (a whole number of 64-byte blocks) into `state`: one stream, through
/// [`sha2::compress256`].
///
/// # Panics
/// If `blocks.len()` is not a multiple of 64.
pub fn compress(state: &mut [u32; 8], blocks: &[u8]) {
    assert!(
        blocks.len().is_multiple_of(BLOCK_LEN),
        "sha256-mb: a whole number of 64-byte blocks"
    );
    for block in blocks.chunks_exact(BLOCK_LEN) {
        sha2::compress256(
            state,
            core::slice::from_ref(GenericArray::from_slice(block)),
        );
    }
}

/// [`Backend::compress_x2`] on [`Backend::detect`]'s backend.
///
/// # Panics
/// As for [`Backend::compress_x2`].
pub fn compress_x2(states: [&mut [u32; 8]; 2], blocks: [&[u8]; 2]) {
    Backend::detect().compress_x2(states, blocks);
}

/// [`Backend::compress_x4`] on [`Backend::detect`]'s backend.
///
/// # Panics
/// As for [`Backend::compress_x2`].
pub fn compress_x4(states: [&mut [u32; 8]; 4], blocks: [&[u8]; 4]) {
    Backend::detect().compress_x4(states, blocks);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// splitmix64: deterministic test data without a dependency.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        }

        fn state(&mut self) -> [u32; 8] {
            core::array::from_fn(|_| self.next() as u32)
        }

        fn bytes(&mut self, len: usize) -> Vec<u8> {
            (0..len).map(|_| self.next() as u8).collect()
        }
    }

    fn backends() -> Vec<Backend> {
        let mut v = vec![Backend::portable()];
        if Backend::detect().is_interleaved() {
            v.push(Backend::detect());
        } else {
            eprintln!("note: no SHA-NI on this CPU; only the portable backend is tested");
        }
        v
    }

    /// The reference: `sha2::compress256` block by block, on its own.
    fn reference(state: &[u32; 8], data: &[u8]) -> [u32; 8] {
        let mut s = *state;
        for block in data.chunks_exact(BLOCK_LEN) {
            sha2::compress256(&mut s, &[*GenericArray::from_slice(block)]);
        }
        s
    }

    #[test]
    fn x2_and_x4_match_single_stream_compress256_for_many_block_counts() {
        let mut rng = Rng(1);
        for backend in backends() {
            for nblocks in 0..=40 {
                for _ in 0..8 {
                    let init: [[u32; 8]; 4] = core::array::from_fn(|_| rng.state());
                    let data: Vec<Vec<u8>> =
                        (0..4).map(|_| rng.bytes(nblocks * BLOCK_LEN)).collect();
                    let want: Vec<[u32; 8]> =
                        (0..4).map(|i| reference(&init[i], &data[i])).collect();

                    let [mut a, mut b, mut c, mut d] = init;
                    backend.compress_x2([&mut a, &mut b], [&data[0], &data[1]]);
                    assert_eq!([a, b], [want[0], want[1]], "{backend:?} x2 n={nblocks}");

                    let [mut a, mut b, mut c2, mut d2] = init;
                    backend.compress_x4(
                        [&mut a, &mut b, &mut c2, &mut d2],
                        [&data[0], &data[1], &data[2], &data[3]],
                    );
                    assert_eq!(&[a, b, c2, d2][..], &want[..], "{backend:?} x4 n={nblocks}");

                    compress(&mut c, &data[2]);
                    compress(&mut d, &data[3]);
                    assert_eq!([c, d], [want[2], want[3]], "compress n={nblocks}");
                }
            }
        }
    }

    #[test]
    fn identical_and_aliasing_looking_inputs_stay_independent() {
        // The same data in every stream from different states, and the same state with
        // data differing in one bit: each stream must only see its own inputs.
        let mut rng = Rng(2);
        for backend in backends() {
            let data = rng.bytes(17 * BLOCK_LEN);
            let mut other = data.clone();
            other[17 * BLOCK_LEN - 1] ^= 1;
            let s0 = rng.state();
            let (mut a, mut b, mut c, mut d) = (s0, s0, IV, IV);
            backend.compress_x4(
                [&mut a, &mut b, &mut c, &mut d],
                [&data, &other, &data, &other],
            );
            assert_eq!(a, reference(&s0, &data));
            assert_eq!(b, reference(&s0, &other));
            assert_eq!(c, reference(&IV, &data));
            assert_eq!(d, reference(&IV, &other));
            assert_ne!(a, b);
        }
    }

    #[test]
    fn the_iv_and_padding_give_the_fips_test_vector() {
        // SHA-256("abc") (FIPS 180-4 example): one padded block from H(0).
        let mut block = [0u8; BLOCK_LEN];
        block[..3].copy_from_slice(b"abc");
        block[3] = 0x80;
        block[63] = 24;
        for backend in backends() {
            let (mut a, mut b) = (IV, IV);
            backend.compress_x2([&mut a, &mut b], [&block, &block]);
            let digest: Vec<u8> = a.iter().flat_map(|w| w.to_be_bytes()).collect();
            let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
            assert_eq!(
                hex,
                "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
            );
            assert_eq!(a, b);
        }
    }

    #[test]
    #[should_panic(expected = "same whole number")]
    fn unequal_lengths_are_refused() {
        let (mut a, mut b) = (IV, IV);
        Backend::detect().compress_x2([&mut a, &mut b], [&[0; 64], &[0; 128]]);
    }

    #[test]
    #[should_panic(expected = "same whole number")]
    fn partial_blocks_are_refused() {
        let (mut a, mut b) = (IV, IV);
        Backend::portable().compress_x2([&mut a, &mut b], [&[0; 65], &[0; 65]]);
    }
}
