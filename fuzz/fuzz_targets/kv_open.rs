//! KvCache geometry validation (what `KvCache::open` checks before trusting
//! a segment) must return Ok or a typed error for any bytes and body length,
//! and anything it accepts must describe regions that fit in the body.
#![no_main]
use libfuzzer_sys::fuzz_target;
use venom_collections::kv::KvLayout;

fuzz_target!(|data: &[u8]| {
    let Some((len, words)) = data.split_first_chunk::<8>() else { return };
    let body_len = (u64::from_le_bytes(*len) % (1 << 40)) as usize;
    if let Ok(l) = KvLayout::from_body_bytes(words, body_len) {
        assert_eq!(l.body_len, body_len);
        assert!(l.index_off < l.entries_off && l.entries_off <= l.tree_off && l.tree_off < l.data_off);
        assert!(l.data_off + l.data_granules * 64 == l.body_len);
        assert!(l.index_slots.is_power_of_two() && l.index_slots >= 2 * l.max_entries);
        assert!(l.max_value_len <= 64 << (usize::BITS - 1 - l.data_granules.leading_zeros()));
    }
});
