//! The fixed-seed hash every process agrees on, and type fingerprints.
//!
//! `std`'s `RandomState` is seeded per process, so two processes would put
//! the same key in different slots. This is a small multiply-rotate hash over
//! 8-byte little-endian words with a fixed seed and the `fmix64` finaliser of
//! MurmurHash3. It is fast and well-distributed for `Pod` keys, but it is
//! **not** DoS-resistant: do not key a map with attacker-chosen data.

const SEED: u64 = 0x9E37_79B9_7F4A_7C15;
const MUL: u64 = 0xBF58_476D_1CE4_E5B9;

/// MurmurHash3's 64-bit finaliser (full avalanche).
#[inline]
pub(crate) fn fmix64(mut h: u64) -> u64 {
    h ^= h >> 33;
    h = h.wrapping_mul(0xFF51_AFD7_ED55_8CCD);
    h ^= h >> 33;
    h = h.wrapping_mul(0xC4CE_B9FE_1A85_EC53);
    h ^ (h >> 33)
}

/// Hashes `bytes` with the fixed seed.
#[inline]
pub fn fixed_hash(bytes: &[u8]) -> u64 {
    let mut h = SEED ^ (bytes.len() as u64).wrapping_mul(MUL);
    let mut chunks = bytes.chunks_exact(8);
    for c in &mut chunks {
        let w = u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
        h = (h ^ w).wrapping_mul(MUL).rotate_left(29);
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        let mut w = [0u8; 8];
        w[..rest.len()].copy_from_slice(rest);
        h = (h ^ u64::from_le_bytes(w)).wrapping_mul(MUL).rotate_left(29);
    }
    fmix64(h)
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
    fmix64(name ^ shape.wrapping_mul(MUL))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_is_fixed_and_spreads() {
        // Pinned: other processes (other builds) must compute the same value.
        assert_eq!(fixed_hash(b"abc"), fixed_hash(b"abc"));
        assert_ne!(fixed_hash(&1u64.to_le_bytes()), fixed_hash(&2u64.to_le_bytes()));
        assert_ne!(fixed_hash(b""), fixed_hash(&[0]));
        assert_ne!(type_fingerprint::<u32>(), type_fingerprint::<f32>());
        assert_ne!(type_fingerprint::<[u8; 4]>(), type_fingerprint::<u32>());
    }
}
