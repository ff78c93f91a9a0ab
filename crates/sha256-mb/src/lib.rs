//! Multi-buffer SHA-256 compression: the FIPS 180-4 §6.2.2 compression function over many
//! independent streams at once.
//!
//! Independent streams (e.g. the HMACs of different spiped packets) have no data dependency on
//! each other, so they can share the CPU's wide units. Three kernels, chosen at run time by
//! [`Backend::detect`]:
//! - `avx512.rs`: 16 streams, one per 32-bit lane of the `zmm` registers (`vprord`,
//!   `vpternlogd`); on Intel CPUs with AVX-512F and AVX-512BW.
//! - `x86.rs`: 2 (or 4) streams interleaved on SHA-NI. One stream on SHA-NI is latency-bound
//!   (each `sha256rnds2` waits for the previous one); interleaving keeps the SHA unit busy.
//! - `avx2.rs`: 8 streams in the lanes of `ymm` registers, for CPUs with AVX2 but neither of
//!   the above.
//!
//! Otherwise a portable fallback compresses each stream in turn with [`sha2::compress256`].
//! All give bit-identical results (see the tests: every backend against `sha2` for every
//! stream count and several lengths). [`Backend::compress_many`] takes any number of streams
//! and splits them over the kernel's groups; [`Backend::name`] says which kernel runs.
//!
//! This crate holds the only `unsafe` of the kernel (x86_64 intrinsics, loads from checked
//! slices); each block names its invariant in a `// SAFETY:` comment. It is reviewed like a
//! vendored primitive.

// One of the kernel crates where `unsafe` may live (the workspace denies it elsewhere).
#![allow(unsafe_code)]

#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod avx512;
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

/// Which implementation compresses the streams. Only [`Backend::detect`], [`Backend::sha_ni`]
/// and [`Backend::avx512`] can return a SIMD kernel, and only after checking the CPU, so
/// holding a `Backend` proves its features were detected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backend(Kind);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// Each stream in turn through `sha2::compress256` (itself SHA-NI-accelerated if available).
    Portable,
    /// The interleaved SHA-NI kernel; constructed only after runtime detection.
    #[cfg(target_arch = "x86_64")]
    ShaNi,
    /// The 16-lane AVX-512 kernel for groups of streams, constructed only after runtime
    /// detection; `sha_ni` says whether the SHA-NI kernel (also detected) takes the streams
    /// left over when fewer than [`AVX512_MIN_STREAMS`] remain.
    #[cfg(target_arch = "x86_64")]
    Avx512 { sha_ni: bool },
    /// The 8-lane AVX2 kernel, for CPUs with neither SHA-NI nor AVX-512; constructed only
    /// after runtime detection.
    #[cfg(target_arch = "x86_64")]
    Avx2,
}

/// Streams the AVX2 kernel compresses in one call (one per 32-bit lane of a `ymm`).
pub const AVX2_LANES: usize = 8;

/// Streams the AVX-512 kernel compresses in one call (one per 32-bit lane of a `zmm`).
pub const AVX512_LANES: usize = 16;

/// The fewest streams worth a (partly empty) 16-lane AVX-512 call: below this, the SHA-NI
/// kernel's pairs are cheaper, since the 16-lane kernel costs the same for 1 stream as for 16.
/// Measured on an Intel Xeon (family 6 model 207, 2026-12-05) with `benches/packet_mac.rs` in
/// the relay crate: a full 16-lane call cost 0.61–0.82× sixteen streams through SHA-NI pairs
/// (three runs on a busy machine), so about as much as 10–11 streams.
pub const AVX512_MIN_STREAMS: usize = 12;

impl Backend {
    /// The backend this crate prefers on this CPU, checked at run time:
    /// - [`Backend::avx512`] (16 lanes) on Intel CPUs with `avx512f` and `avx512bw`;
    /// - else [`Backend::sha_ni`] (two interleaved streams) with `sha`, `sse2`, `ssse3`,
    ///   `sse4.1`;
    /// - else [`Backend::avx2`] (8 lanes) with `avx2`;
    /// - else [`Backend::portable`].
    ///
    /// AMD CPUs with AVX-512 (Zen 4 and later) get the SHA-NI kernel: they all have SHA-NI,
    /// and Zen 4 runs 512-bit operations as two 256-bit halves. The detection result is cached
    /// by the standard library; callers that compress often may also keep the returned value.
    pub fn detect() -> Self {
        let avx512 = if is_amd() { None } else { Self::avx512() };
        avx512.or_else(Self::sha_ni).unwrap_or_else(Self::portable)
    }

    /// The portable fallback on every CPU (for tests and benchmarks of the fallback path).
    pub const fn portable() -> Self {
        Self(Kind::Portable)
    }

    /// The interleaved SHA-NI kernel, if `sha`, `sse2`, `ssse3` and `sse4.1` are detected at
    /// run time (x86_64 only).
    pub fn sha_ni() -> Option<Self> {
        #[cfg(target_arch = "x86_64")]
        {
            if std::is_x86_feature_detected!("sha")
                && std::is_x86_feature_detected!("sse2")
                && std::is_x86_feature_detected!("ssse3")
                && std::is_x86_feature_detected!("sse4.1")
            {
                return Some(Self(Kind::ShaNi));
            }
        }
        None
    }

    /// The 16-lane AVX-512 kernel, if `avx512f` and `avx512bw` are detected at run time
    /// (x86_64 only), whatever the CPU's vendor. Groups of fewer than
    /// [`AVX512_MIN_STREAMS`] streams go to the SHA-NI kernel when the CPU has it too.
    pub fn avx512() -> Option<Self> {
        #[cfg(target_arch = "x86_64")]
        {
            if std::is_x86_feature_detected!("avx512f") && std::is_x86_feature_detected!("avx512bw")
            {
                let sha_ni = Self::sha_ni().is_some();
                return Some(Self(Kind::Avx512 { sha_ni }));
            }
        }
        None
    }

    /// The 8-lane AVX2 kernel, if `avx2` is detected at run time (x86_64 only). Meant for
    /// CPUs without SHA-NI: a lone stream goes through [`compress`] (`sha2`).
    pub fn avx2() -> Option<Self> {
        #[cfg(target_arch = "x86_64")]
        {
            if std::is_x86_feature_detected!("avx2") {
                return Some(Self(Kind::Avx2));
            }
        }
        None
    }

    /// Every backend this CPU supports, portable first (for tests and benchmarks).
    pub fn available() -> Vec<Self> {
        let mut v = vec![Self::portable()];
        v.extend(Self::sha_ni());
        v.extend(Self::avx2());
        v.extend(Self::avx512());
        v
    }

    /// A short name for logs: "portable", "sha-ni x2", "avx2 x8" or "avx512 x16" (with
    /// "+ sha-ni x2" when SHA-NI takes the small groups).
    pub const fn name(self) -> &'static str {
        match self.0 {
            Kind::Portable => "portable",
            #[cfg(target_arch = "x86_64")]
            Kind::ShaNi => "sha-ni x2",
            #[cfg(target_arch = "x86_64")]
            Kind::Avx512 { sha_ni: true } => "avx512 x16 + sha-ni x2",
            #[cfg(target_arch = "x86_64")]
            Kind::Avx512 { sha_ni: false } => "avx512 x16",
            #[cfg(target_arch = "x86_64")]
            Kind::Avx2 => "avx2 x8",
        }
    }

    /// Whether this is a SIMD kernel rather than the portable fallback.
    pub const fn is_interleaved(self) -> bool {
        !matches!(self.0, Kind::Portable)
    }

    /// How many streams a caller should hand [`Backend::compress_many`] at once to use this
    /// backend fully: 16 for AVX-512, 8 for AVX2, 2 for SHA-NI, 1 for the portable fallback.
    pub const fn lanes(self) -> usize {
        match self.0 {
            Kind::Portable => 1,
            #[cfg(target_arch = "x86_64")]
            Kind::ShaNi => 2,
            #[cfg(target_arch = "x86_64")]
            Kind::Avx512 { .. } => AVX512_LANES,
            #[cfg(target_arch = "x86_64")]
            Kind::Avx2 => AVX2_LANES,
        }
    }

    /// Compresses `blocks[i]` into `states[i]` for both streams, as two separate calls of
    /// [`compress`] would. `states` are the eight working words H0..H7.
    ///
    /// # Panics
    /// If the two block slices differ in length or are not a whole number of 64-byte blocks
    /// (the caller's fixed layout, never outside input).
    pub fn compress_x2(self, states: [&mut [u32; 8]; 2], blocks: [&[u8]; 2]) {
        let len = check_lengths(&blocks);
        self.pairs(states, blocks, len);
    }

    /// Like [`Backend::compress_x2`] for four streams (the SHA-NI kernel interleaves all four).
    ///
    /// # Panics
    /// As for [`Backend::compress_x2`].
    pub fn compress_x4(self, states: [&mut [u32; 8]; 4], blocks: [&[u8]; 4]) {
        let len = check_lengths(&blocks);
        match self.0 {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `Kind::ShaNi` is only constructed by `Backend::sha_ni` after
            // is_x86_feature_detected! reported sha, sse2, ssse3 and sse4.1, the features the
            // kernel is compiled for; the slice lengths the kernel reads are checked above.
            Kind::ShaNi => unsafe { x86::compress_interleaved(states, blocks) },
            _ => {
                let [a, b, c, d] = states;
                let [w, x, y, z] = blocks;
                self.pairs([a, b], [w, x], len);
                self.pairs([c, d], [y, z], len);
            }
        }
    }

    /// Compresses `blocks[i]` into `states[i]` for every i, any number of streams, as separate
    /// calls of [`compress`] would: on AVX-512 16 streams per kernel call (a last group of at
    /// least [`AVX512_MIN_STREAMS`] in a partly empty call, a smaller one in SHA-NI pairs),
    /// on AVX2 8 per call (a last 2..7 in a partly empty call), on SHA-NI in pairs, else one
    /// by one.
    ///
    /// # Panics
    /// If `states` and `blocks` differ in length, or the block slices differ in length or are
    /// not a whole number of 64-byte blocks (the caller's fixed layout, never outside input).
    pub fn compress_many(self, states: &mut [[u32; 8]], blocks: &[&[u8]]) {
        assert_eq!(
            states.len(),
            blocks.len(),
            "sha256-mb: one block run per state"
        );
        let Some(first) = blocks.first() else {
            return;
        };
        let len = first.len();
        check_lengths(blocks);
        let (mut states, mut blocks) = (states, blocks);
        #[cfg(target_arch = "x86_64")]
        if let Kind::Avx512 { sha_ni } = self.0 {
            // Full groups of 16, then a last group of at least AVX512_MIN_STREAMS (or any
            // size without SHA-NI to take it) in one partly empty call.
            while blocks.len() >= AVX512_MIN_STREAMS || (!sha_ni && !blocks.is_empty()) {
                let n = blocks.len().min(AVX512_LANES);
                let (st, rest_st) = states.split_at_mut(n);
                let (bl, rest_bl) = blocks.split_at(n);
                // Unused lanes recompute lane 0 (results discarded).
                let mut group: [[u32; 8]; AVX512_LANES] =
                    core::array::from_fn(|i| st.get(i).copied().unwrap_or(st[0]));
                let data: [&[u8]; AVX512_LANES] =
                    core::array::from_fn(|i| bl.get(i).copied().unwrap_or(bl[0]));
                // SAFETY: `Kind::Avx512` is only constructed by `Backend::avx512` after
                // is_x86_feature_detected! reported avx512f and avx512bw, the features the
                // kernel is compiled for; every block slice holds `len` bytes, a whole number
                // of blocks (checked above).
                unsafe { avx512::compress_x16(&mut group, data, len / BLOCK_LEN) };
                st.copy_from_slice(&group[..n]);
                (states, blocks) = (rest_st, rest_bl);
            }
        }
        #[cfg(target_arch = "x86_64")]
        if let Kind::Avx2 = self.0 {
            // Groups of 8, then a last group of 2..7 in one partly empty call (cheaper than
            // two streams through software SHA-256); a lone stream goes through `compress`.
            while blocks.len() >= 2 {
                let n = blocks.len().min(AVX2_LANES);
                let (st, rest_st) = states.split_at_mut(n);
                let (bl, rest_bl) = blocks.split_at(n);
                let mut group: [[u32; 8]; AVX2_LANES] =
                    core::array::from_fn(|i| st.get(i).copied().unwrap_or(st[0]));
                let data: [&[u8]; AVX2_LANES] =
                    core::array::from_fn(|i| bl.get(i).copied().unwrap_or(bl[0]));
                // SAFETY: `Kind::Avx2` is only constructed by `Backend::avx2` after
                // is_x86_feature_detected! reported avx2, the feature the kernel is compiled
                // for; every block slice holds `len` bytes, a whole number of blocks (checked
                // above).
                unsafe { avx2::compress_x8(&mut group, data, len / BLOCK_LEN) };
                st.copy_from_slice(&group[..n]);
                (states, blocks) = (rest_st, rest_bl);
            }
        }
        let mut st = states.chunks_exact_mut(2);
        let mut bl = blocks.chunks_exact(2);
        for (s, b) in (&mut st).zip(&mut bl) {
            if let ([s0, s1], [b0, b1]) = (s, b) {
                self.pairs([s0, s1], [b0, b1], len);
            }
        }
        for (s, b) in st.into_remainder().iter_mut().zip(bl.remainder()) {
            compress(s, b);
        }
    }

    /// Two streams of `len` bytes each (checked by the caller): the SHA-NI kernel if this
    /// backend has it, else one by one.
    fn pairs(self, states: [&mut [u32; 8]; 2], blocks: [&[u8]; 2], len: usize) {
        debug_assert!(blocks.iter().all(|b| b.len() == len));
        match self.0 {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `Kind::ShaNi` comes only from `Backend::sha_ni` and `Kind::Avx512 {
            // sha_ni: true }` only from `Backend::avx512` after `Backend::sha_ni` succeeded,
            // both after is_x86_feature_detected! reported sha, sse2, ssse3 and sse4.1, the
            // features the kernel is compiled for; the caller checked the slice lengths.
            Kind::ShaNi | Kind::Avx512 { sha_ni: true } => unsafe {
                x86::compress_interleaved(states, blocks)
            },
            _ => {
                for (state, data) in states.into_iter().zip(blocks) {
                    compress(state, data);
                }
            }
        }
    }
}

/// Whether the CPU is AMD's (x86_64 `cpuid` leaf 0 vendor string "AuthenticAMD").
fn is_amd() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        let r = core::arch::x86_64::__cpuid(0);
        (r.ebx, r.edx, r.ecx) == (0x6874_7541, 0x6974_6e65, 0x444d_4163)
    }
    #[cfg(not(target_arch = "x86_64"))]
    false
}

/// Asserts that every block slice has the first one's length, a whole number of blocks, and
/// returns it.
fn check_lengths(blocks: &[&[u8]]) -> usize {
    let len = blocks.first().map_or(0, |b| b.len());
    assert!(
        len.is_multiple_of(BLOCK_LEN) && blocks.iter().all(|b| b.len() == len),
        "sha256-mb: every stream needs the same whole number of 64-byte blocks"
    );
    len
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
        let v = Backend::available();
        if v.len() < 4 {
            eprintln!("note: only {:?} on this CPU; the others are not tested", v);
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
    fn compress_many_matches_compress256_for_every_stream_count_and_length() {
        // Every stream count from 0 to past two full 16-lane groups (so every size of a
        // last partial group, on both sides of AVX512_MIN_STREAMS), several block counts.
        let mut rng = Rng(3);
        for backend in backends() {
            for streams in 0..=2 * AVX512_LANES + 3 {
                for nblocks in [0, 1, 2, 17, 18] {
                    let init: Vec<[u32; 8]> = (0..streams).map(|_| rng.state()).collect();
                    let data: Vec<Vec<u8>> = (0..streams)
                        .map(|_| rng.bytes(nblocks * BLOCK_LEN))
                        .collect();
                    let want: Vec<[u32; 8]> = (0..streams)
                        .map(|i| reference(&init[i], &data[i]))
                        .collect();
                    let mut got = init.clone();
                    let refs: Vec<&[u8]> = data.iter().map(|d| &d[..]).collect();
                    backend.compress_many(&mut got, &refs);
                    assert_eq!(
                        got,
                        want,
                        "{} streams={streams} n={nblocks}",
                        backend.name()
                    );
                }
            }
        }
    }

    #[test]
    fn the_lane_kernels_keep_every_lane_apart() {
        // One stream differing from the others (all identical) in one bit of its last block,
        // at each lane position: only that lane's result may differ.
        let kernels: Vec<(Backend, usize)> = [
            Backend::avx512().map(|b| (b, AVX512_LANES)),
            Backend::avx2().map(|b| (b, AVX2_LANES)),
        ]
        .into_iter()
        .flatten()
        .collect();
        if kernels.is_empty() {
            eprintln!("note: no AVX2 or AVX-512 on this CPU; the lane kernels are not tested");
        }
        let mut rng = Rng(4);
        let data = rng.bytes(3 * BLOCK_LEN);
        let s0 = rng.state();
        for (backend, lanes) in kernels {
            for lane in 0..lanes {
                let mut other = data.clone();
                other[3 * BLOCK_LEN - 1 - lane] ^= 0x80;
                let refs: Vec<&[u8]> = (0..lanes)
                    .map(|i| if i == lane { &other[..] } else { &data[..] })
                    .collect();
                let mut got = vec![s0; lanes];
                backend.compress_many(&mut got, &refs);
                for (i, g) in got.iter().enumerate() {
                    let want = reference(&s0, refs[i]);
                    assert_eq!(*g, want, "{} lane {i}, odd one at {lane}", backend.name());
                }
                assert_ne!(got[lane], got[(lane + 1) % lanes]);
            }
        }
    }

    #[test]
    fn detect_names_a_backend_this_cpu_has() {
        let d = Backend::detect();
        assert!(Backend::available().contains(&d), "{d:?}");
        assert!(d.lanes() >= 1 && d.lanes() <= AVX512_LANES);
        assert!(!d.name().is_empty());
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
