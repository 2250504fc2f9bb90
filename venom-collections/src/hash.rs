//! The one byte hash of the crate, with an explicit seed, and type
//! fingerprints.
//!
//! `std`'s `RandomState` is seeded per process, so two processes would put
//! the same key in different slots. [`seeded_hash`] is a small
//! multiply-rotate hash over 8-byte little-endian words, finished with the
//! `fmix64` finaliser of MurmurHash3; every process that uses the same
//! [`HashSeed`] computes the same value. It is fast and well-distributed for
//! short keys, but it is **not** DoS-resistant: do not key a map with
//! attacker-chosen data under a seed the attacker can learn.
//!
//! Its outputs decide placement in shared-memory maps, so they are pinned by
//! the unit tests below: changing them would make new builds misread maps
//! created by old ones. Two seeds are in use:
//! * [`HashSeed::FIXED`], behind [`fixed_hash`]: the `Map`, the `Directory`
//!   and [`type_fingerprint`];
//! * [`HashSeed::keyed`] with a per-cache seed drawn at creation
//!   ([`fresh_seed`]) and stored in the segment: the key-value cache's index,
//!   so two caches do not share collision sets.

/// The golden-ratio constant (2^64 / φ), the fixed start value and the keyed
/// seeds' multiplier.
const GOLDEN: u64 = 0x9E37_79B9_7F4A_7C15;
/// SplitMix64's first multiplier, the fixed seed's multiplier.
const SPLITMIX: u64 = 0xBF58_476D_1CE4_E5B9;

/// The seed of [`seeded_hash`]: the start value and the (odd) word
/// multiplier. Both are part of the seed so that each user's existing
/// outputs stay bit-for-bit what they were.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HashSeed {
    start: u64,
    mul: u64,
}

impl HashSeed {
    /// The seed every process agrees on without storing it anywhere.
    pub const FIXED: HashSeed = HashSeed { start: GOLDEN, mul: SPLITMIX };

    /// A seed from a stored 64-bit value (the key-value cache keeps its own
    /// in its segment header).
    pub const fn keyed(seed: u64) -> HashSeed {
        HashSeed { start: seed, mul: GOLDEN }
    }
}

/// MurmurHash3's 64-bit finaliser (Appleby; full avalanche).
#[inline]
pub(crate) fn fmix64(mut h: u64) -> u64 {
    h ^= h >> 33;
    h = h.wrapping_mul(0xFF51_AFD7_ED55_8CCD);
    h ^= h >> 33;
    h = h.wrapping_mul(0xC4CE_B9FE_1A85_EC53);
    h ^ (h >> 33)
}

/// Hashes `bytes` with `seed`.
#[inline]
pub fn seeded_hash(seed: HashSeed, bytes: &[u8]) -> u64 {
    let mix = |h: u64, w: u64| (h ^ w).wrapping_mul(seed.mul).rotate_left(29);
    let mut h = seed.start ^ (bytes.len() as u64).wrapping_mul(seed.mul);
    let mut chunks = bytes.chunks_exact(8);
    for c in &mut chunks {
        h = mix(h, u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]));
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        let mut w = [0u8; 8];
        w[..rest.len()].copy_from_slice(rest);
        h = mix(h, u64::from_le_bytes(w));
    }
    fmix64(h)
}

/// Hashes `bytes` with [`HashSeed::FIXED`].
#[inline]
pub fn fixed_hash(bytes: &[u8]) -> u64 {
    seeded_hash(HashSeed::FIXED, bytes)
}

/// A seed for a new key-value cache (time, pid and an address; not secret).
pub(crate) fn fresh_seed() -> u64 {
    let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as u64);
    let local = 0u8;
    fmix64(t.unwrap_or(0) ^ u64::from(std::process::id()).rotate_left(32) ^ (&local as *const u8 as u64))
}

/// A best-effort fingerprint of `T`: size, alignment and
/// `core::any::type_name::<T>()`, hashed with [`fixed_hash`].
///
/// `type_name` is not guaranteed stable across compiler versions and may
/// print two distinct types identically (or one type differently), so the
/// fingerprint catches honest mistakes (attaching a `Queue<u32>` as a
/// `Queue<f32>`) between builds of the same program, not adversaries. Size
/// and alignment are also checked separately on attach.
pub fn type_fingerprint<T>() -> u64 {
    let name = fixed_hash(core::any::type_name::<T>().as_bytes());
    let shape = ((core::mem::size_of::<T>() as u64) << 8) ^ core::mem::align_of::<T>() as u64;
    fmix64(name ^ shape.wrapping_mul(SPLITMIX))
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEYS: [&[u8]; 6] = [b"", b"a", b"abc", b"0123456789abcdef", b"key-0042", b"hello, shared memory"];

    /// Pinned: maps created by earlier builds (and other processes) place
    /// keys by these values; they must never change.
    #[test]
    fn fixed_outputs_are_pinned() {
        let want = [
            0x9ca0_66f1_a4ab_2eea,
            0x8922_c79b_c247_39c6,
            0x6c01_4916_1358_1006,
            0x1057_c345_b75e_0025,
            0x61ea_ef07_1ebb_46ec,
            0x54bd_81e8_21bf_37f5,
        ];
        for (k, w) in KEYS.iter().zip(want) {
            assert_eq!(fixed_hash(k), w, "{k:?}");
        }
    }

    /// Pinned: the key-value cache's index placement (seeds 0 and a stored
    /// seed).
    #[test]
    fn keyed_outputs_are_pinned() {
        let want0 = [
            0x0000_0000_0000_0000,
            0xb5d1_741f_d28a_78db,
            0x15de_8287_d520_5b8c,
            0x93a6_7147_016e_e0a8,
            0xc605_f0fc_23b3_efe6,
            0x0ab2_abc2_a534_c533,
        ];
        let want7 = [
            0x87cb_fbfe_8902_2cea,
            0x3cd6_9fbc_4987_6974,
            0xbd2c_bc94_e0e5_4b87,
            0xc50d_7fad_3435_6da6,
            0x2f0a_52bb_9485_811f,
            0xedc7_899f_c7f8_e28f,
        ];
        for ((k, w0), w7) in KEYS.iter().zip(want0).zip(want7) {
            assert_eq!(seeded_hash(HashSeed::keyed(0), k), w0, "{k:?}");
            assert_eq!(seeded_hash(HashSeed::keyed(0x0123_4567_89AB_CDEF), k), w7, "{k:?}");
        }
    }

    #[test]
    fn hash_spreads_and_fingerprints_differ() {
        assert_ne!(fixed_hash(&1u64.to_le_bytes()), fixed_hash(&2u64.to_le_bytes()));
        assert_ne!(fixed_hash(b""), fixed_hash(&[0]));
        assert_ne!(seeded_hash(HashSeed::keyed(1), b"a"), seeded_hash(HashSeed::keyed(1), b"a\0"));
        assert_ne!(seeded_hash(HashSeed::keyed(1), b"key"), seeded_hash(HashSeed::keyed(2), b"key"));
        assert_eq!(type_fingerprint::<u32>(), 0xd238_6dea_9e4e_9b35);
        assert_ne!(type_fingerprint::<u32>(), type_fingerprint::<f32>());
        assert_ne!(type_fingerprint::<[u8; 4]>(), type_fingerprint::<u32>());
    }
}
