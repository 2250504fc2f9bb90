//! [`Bitset`]: a fixed-size set of bits in shared memory with atomic
//! single-bit operations.
//!
//! Bits live in `AtomicU64` words; `set`/`clear`/`flip` are one
//! `fetch_or`/`fetch_and`/`fetch_xor` (`set`/`clear` skip it when the bit
//! already has the wanted value) and return the previous bit. Indices are
//! `u64`, so sets of 2^32 bits and more (512 MiB per 2^32 bits) work.
//! `count_ones` and iteration read word by word (Relaxed): under concurrent
//! writes they see each word at some moment, not the whole set at one
//! moment. Crash tolerance is trivial: every change is one atomic
//! instruction, so a killed process has either made its change or not.

use venom_core::loom::sync::{AtomicU64, Ordering};

use crate::error::{Error, Result};
use crate::object_segment::Region;

/// A fixed-size atomic bitset in an [`ObjectSegment`](crate::ObjectSegment).
///
/// ```
/// use venom_collections::ObjectSegment;
/// let name = format!("doc-bits-{}", std::process::id());
/// let seg = ObjectSegment::create(&name, 1 << 20)?;
/// let flags = seg.bitset("flags", 1_000_000)?;
/// assert!(!flags.set(42)?);   // previous value
/// assert!(flags.test(42)?);
/// assert!(!flags.flip(100)?);
/// assert_eq!(flags.count_ones(), 2);
/// assert_eq!(flags.iter_ones().collect::<Vec<_>>(), vec![42, 100]);
/// assert!(flags.set(1_000_000).is_err()); // out of bounds
/// seg.unlink()?;
/// # Ok::<(), venom_collections::Error>(())
/// ```
pub struct Bitset {
    /// At least `ceil(bits / 64)` words (checked on attach).
    region: Region,
    /// Number of bits; indices `>= bits` are rejected.
    bits: u64,
}

impl std::fmt::Debug for Bitset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bitset").field("bits", &self.bits).finish()
    }
}

impl Bitset {
    pub(crate) fn from_region(region: Region) -> Bitset {
        let bits = region.capacity;
        Bitset { region, bits }
    }

    pub(crate) fn bytes(bits: u64) -> Result<u64> {
        bits.div_ceil(64)
            .checked_mul(8)
            .filter(|&b| b > 0 || bits == 0)
            .map(|b| b.max(8))
            .ok_or_else(|| Error::InvalidConfig(format!("bitset of {bits} bits is too large")))
    }

    /// Runs `op` on bit `i`'s word and mask; the result is checked against
    /// a truncated mapping like every public operation.
    #[inline]
    fn on_bit(&self, i: u64, op: impl FnOnce(&AtomicU64, u64) -> bool) -> Result<bool> {
        let r = if i < self.bits {
            Ok(op(&self.region.words()[(i / 64) as usize], 1u64 << (i % 64)))
        } else {
            Err(Error::IndexOutOfBounds { index: i, len: self.bits })
        };
        crate::object_segment::guarded(Some(self.region.segment()), r)
    }

    /// Sets bit `i`; returns its previous value.
    ///
    /// Test-and-test-and-set: if the bit is already set this is a plain
    /// Acquire load and writes nothing (no cache-line ownership transfer), so
    /// it then does not publish the caller's earlier writes either.
    #[inline]
    pub fn set(&self, i: u64) -> Result<bool> {
        self.on_bit(i, |w, m| {
            // Acquire: as `test`.
            // AcqRel: a bit can act as a flag guarding other shared data.
            w.load(Ordering::Acquire) & m != 0 || w.fetch_or(m, Ordering::AcqRel) & m != 0
        })
    }

    /// Clears bit `i`; returns its previous value. Like [`Bitset::set`], a
    /// bit that is already clear is only loaded.
    #[inline]
    pub fn clear(&self, i: u64) -> Result<bool> {
        self.on_bit(i, |w, m| {
            // Acquire: as `test`. AcqRel: as in `set`.
            w.load(Ordering::Acquire) & m != 0 && w.fetch_and(!m, Ordering::AcqRel) & m != 0
        })
    }

    /// Flips bit `i`; returns its previous value.
    #[inline]
    pub fn flip(&self, i: u64) -> Result<bool> {
        // AcqRel: as in `set`.
        self.on_bit(i, |w, m| w.fetch_xor(m, Ordering::AcqRel) & m != 0)
    }

    /// Reads bit `i`.
    #[inline]
    pub fn test(&self, i: u64) -> Result<bool> {
        // Acquire: pairs with the AcqRel writers.
        self.on_bit(i, |w, m| w.load(Ordering::Acquire) & m != 0)
    }

    /// Number of set bits (word-by-word snapshot).
    pub fn count_ones(&self) -> u64 {
        let words = self.bits.div_ceil(64) as usize;
        // Relaxed: a statistic; bits past `len` are never set.
        self.region.words()[..words].iter().map(|w| u64::from(w.load(Ordering::Relaxed).count_ones())).sum()
    }

    /// Clears every bit (word by word, not atomically as a whole).
    pub fn clear_all(&self) {
        let words = self.bits.div_ceil(64) as usize;
        for w in &self.region.words()[..words] {
            // Release: as a store of each word's flags.
            w.store(0, Ordering::Release);
        }
    }

    /// Indices of set bits in increasing order (word-by-word snapshot).
    pub fn iter_ones(&self) -> IterOnes<'_> {
        IterOnes { set: self, word: 0, bits: 0 }
    }

    /// Number of bits.
    pub fn len(&self) -> u64 {
        self.bits
    }

    /// Whether the set has zero bits of capacity.
    pub fn is_empty(&self) -> bool {
        self.bits == 0
    }
}

/// Iterator over the set bits of a [`Bitset`].
pub struct IterOnes<'a> {
    set: &'a Bitset,
    /// Index of the next word to load.
    word: u64,
    /// Remaining set bits of word `word - 1`.
    bits: u64,
}

impl Iterator for IterOnes<'_> {
    type Item = u64;

    fn next(&mut self) -> Option<u64> {
        let words = self.set.bits.div_ceil(64);
        while self.bits == 0 {
            if self.word >= words {
                return None;
            }
            // Relaxed: a snapshot, as documented.
            self.bits = self.set.region.words()[self.word as usize].load(Ordering::Relaxed);
            self.word += 1;
        }
        let b = self.bits.trailing_zeros() as u64;
        self.bits &= self.bits - 1;
        Some((self.word - 1) * 64 + b)
    }
}

impl Bitset {
    /// Fails with `Error::Core(Truncated)` if the segment's file was shrunk
    /// under this process's mapping. `Result`-returning methods check this
    /// themselves; the others (`len`, `try_pop`, ...) see a lost mapping as
    /// zeroes, and this tells the two apart.
    pub fn check_mapped(&self) -> crate::Result<()> {
        self.region.check_mapped()
    }
}
