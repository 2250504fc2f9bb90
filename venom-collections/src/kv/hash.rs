//! Key hashing: a seeded multiply-xorshift over 8-byte words, finished with
//! MurmurHash3's `fmix64`. Fast for short keys; not cryptographic. The seed
//! is drawn at cache creation and stored in the segment, so every process
//! hashes alike while two caches do not share collision sets.

const K: u64 = 0x9E37_79B9_7F4A_7C15;

/// Hashes `key` with `seed`.
pub(crate) fn hash_key(seed: u64, key: &[u8]) -> u64 {
    let mut h = seed ^ (key.len() as u64).wrapping_mul(K);
    let mut chunks = key.chunks_exact(8);
    for c in &mut chunks {
        let w = u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
        h = (h ^ w).wrapping_mul(K).rotate_left(29);
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        let mut buf = [0u8; 8];
        buf[..rest.len()].copy_from_slice(rest);
        h = (h ^ u64::from_le_bytes(buf)).wrapping_mul(K).rotate_left(29);
    }
    fmix64(h)
}

/// MurmurHash3 64-bit finaliser (Appleby).
fn fmix64(mut h: u64) -> u64 {
    h ^= h >> 33;
    h = h.wrapping_mul(0xFF51_AFD7_ED55_8CCD);
    h ^= h >> 33;
    h = h.wrapping_mul(0xC4CE_B9FE_1A85_EC53);
    h ^ (h >> 33)
}

/// A seed for a new cache (time, pid and an address; not secret).
pub(crate) fn fresh_seed() -> u64 {
    let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as u64);
    let local = 0u8;
    fmix64(t.unwrap_or(0) ^ u64::from(std::process::id()).rotate_left(32) ^ (&local as *const u8 as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn differs_by_length_and_seed() {
        assert_ne!(hash_key(1, b"a"), hash_key(1, b"a\0"));
        assert_ne!(hash_key(1, b"key"), hash_key(2, b"key"));
        assert_eq!(hash_key(7, b"0123456789abcdef"), hash_key(7, b"0123456789abcdef"));
    }
}
