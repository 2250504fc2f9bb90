//! Cache configuration and its validation.

use std::time::Duration;

use crate::error::{Error, Result};

/// What a full cache does when a `put` needs an entry slot or data space.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Eviction {
    /// Fail the `put` with [`Error::CacheFull`] (expired entries are still
    /// reclaimed first).
    #[default]
    Reject,
    /// Evict entries by CLOCK (second chance), an approximation of LRU: every
    /// read sets an entry's reference bit; the clock hand clears set bits and
    /// evicts the first entry whose bit is already clear.
    Clock,
}

impl Eviction {
    pub(crate) fn code(self) -> u64 {
        match self {
            Eviction::Reject => 0,
            Eviction::Clock => 1,
        }
    }

    pub(crate) fn from_code(code: u64) -> Option<Eviction> {
        match code {
            0 => Some(Eviction::Reject),
            1 => Some(Eviction::Clock),
            _ => None,
        }
    }
}

/// Largest `max_entries` accepted (entry indices are 32-bit and the index has
/// two slots per entry).
pub const MAX_ENTRIES_LIMIT: usize = 1 << 28;
/// Largest `data_bytes` accepted (block numbers are 32-bit granules).
pub const MAX_DATA_BYTES: usize = 1 << 37;
/// Largest `max_key_len` accepted.
pub const MAX_KEY_LEN_LIMIT: usize = 4096;
/// Allocation granule: every value block is `GRANULE << order` bytes.
pub const GRANULE: usize = 64;

/// Geometry and policy of a cache, fixed at creation.
///
/// ```
/// use venom_collections::{KvConfig, Eviction};
/// let cfg = KvConfig { max_entries: 1024, data_bytes: 1 << 20, eviction: Eviction::Clock, ..KvConfig::default() };
/// assert!(cfg.validate().is_ok());
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KvConfig {
    /// Maximum number of live entries (1 ..= 2^28).
    pub max_entries: usize,
    /// Bytes available for values (rounded up to a multiple of 64; at most
    /// 128 GiB). Values live in power-of-two blocks of at least 64 bytes, so
    /// a value uses up to twice its size.
    pub data_bytes: usize,
    /// Longest key in bytes (1 ..= 4096). Keys are stored inline in the entry
    /// table, so every entry costs about `72 + max_key_len` bytes.
    pub max_key_len: usize,
    /// Longest value in bytes. Must fit in one block of the data region.
    pub max_value_len: usize,
    /// What a full cache does.
    pub eviction: Eviction,
    /// TTL applied by [`KvCache::put`](super::KvCache::put); `None` = never
    /// expire.
    pub default_ttl: Option<Duration>,
    /// Permission bits of the segment (default 0600).
    pub mode: u32,
}

impl Default for KvConfig {
    fn default() -> Self {
        KvConfig {
            max_entries: 4096,
            data_bytes: 4 << 20,
            max_key_len: 64,
            max_value_len: 64 << 10,
            eviction: Eviction::Reject,
            default_ttl: None,
            mode: venom_core::DEFAULT_MODE,
        }
    }
}

impl KvConfig {
    /// Checks every field; returns [`Error::InvalidConfig`] naming the first
    /// bad one.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::InvalidConfig(m));
        if self.max_entries == 0 || self.max_entries > MAX_ENTRIES_LIMIT {
            return bad(format!("max_entries {} must be in 1..={MAX_ENTRIES_LIMIT}", self.max_entries));
        }
        if self.data_bytes == 0 || self.data_bytes > MAX_DATA_BYTES {
            return bad(format!("data_bytes {} must be in 1..={MAX_DATA_BYTES}", self.data_bytes));
        }
        if self.max_key_len == 0 || self.max_key_len > MAX_KEY_LEN_LIMIT {
            return bad(format!("max_key_len {} must be in 1..={MAX_KEY_LEN_LIMIT}", self.max_key_len));
        }
        let largest = largest_block(self.data_bytes.div_ceil(GRANULE));
        if self.max_value_len > largest {
            return bad(format!(
                "max_value_len {} exceeds the largest block ({largest} bytes) of a {}-byte data region",
                self.max_value_len, self.data_bytes
            ));
        }
        if let Some(ttl) = self.default_ttl
            && (ttl.is_zero() || ttl.as_nanos() > u128::from(u64::MAX / 4))
        {
            return bad(format!("default_ttl {ttl:?} must be non-zero and below ~146 years"));
        }
        Ok(())
    }
}

/// Largest power-of-two block (in bytes) that fits in `granules` granules.
pub(crate) fn largest_block(granules: usize) -> usize {
    if granules == 0 {
        return 0;
    }
    GRANULE << (usize::BITS - 1 - granules.leading_zeros())
}

/// Converts a TTL to nanoseconds, rejecting zero and absurd values.
pub(crate) fn ttl_nanos(ttl: Duration) -> Result<u64> {
    let ns = ttl.as_nanos();
    if ns == 0 || ns > u128::from(u64::MAX / 4) {
        return Err(Error::InvalidConfig(format!("ttl {ttl:?} must be non-zero and below ~146 years")));
    }
    Ok(ns as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_bad_fields() {
        let ok = KvConfig::default();
        assert!(ok.validate().is_ok());
        for cfg in [
            KvConfig { max_entries: 0, ..ok.clone() },
            KvConfig { data_bytes: 0, ..ok.clone() },
            KvConfig { max_key_len: 0, ..ok.clone() },
            KvConfig { max_key_len: 5000, ..ok.clone() },
            KvConfig { data_bytes: 1000, max_value_len: 2000, ..ok.clone() },
            KvConfig { default_ttl: Some(Duration::ZERO), ..ok.clone() },
        ] {
            assert!(matches!(cfg.validate(), Err(Error::InvalidConfig(_))), "{cfg:?}");
        }
    }

    #[test]
    fn largest_block_is_power_of_two() {
        assert_eq!(largest_block(1), 64);
        assert_eq!(largest_block(3), 128);
        assert_eq!(largest_block(1024), 64 << 10);
    }
}
