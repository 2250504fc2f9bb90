//! Value-block allocator: a binary buddy system (Knowlton 1965, Knuth TAOCP
//! vol. 1 §2.5) kept as a complete binary tree of "largest free order in this
//! subtree" bytes, the array form popularised by `buddy2`.
//!
//! Node `1` is the root; node `n` has children `2n` and `2n + 1`; the leaves
//! (`leaves ..< 2 × leaves`) are 64-byte granules. A node's byte is
//! `order + 1` of the largest free block inside its subtree (0 = nothing
//! free); a free node of order `k` holds `k + 1` ("full"). Allocation walks
//! down from the root in O(log n); freeing marks the node full and merges
//! buddies on the way up, so freed space coalesces exactly and the tree
//! returns bit-for-bit to its initial state once everything is freed.
//!
//! Invariant: every descendant of an allocated node or of a wholly free node
//! reads "full" (so `free` can tell an allocated block, whose children read
//! full, from a node that reads 0 because its children are allocated).
//!
//! Granules beyond the data region (the tree covers the next power of two)
//! are reserved at initialisation as permanently allocated blocks.
//!
//! Only the writer-lock holder touches the tree; the bytes live in shared
//! memory, so they are accessed through `AtomicU32` words (four nodes per
//! word) with `Relaxed` ordering: the lock's Acquire/Release orders them.

use venom_core::loom::sync::{AtomicU32, Ordering};

use crate::error::{Error, Result};

/// Bytes of shared memory needed for a tree over `leaves` granules.
pub(crate) fn tree_bytes(leaves: usize) -> usize {
    (2 * leaves).div_ceil(4).max(1) * 4
}

/// Smallest order whose block holds `bytes` (order 0 = one 64-byte granule).
pub(crate) fn order_for(bytes: usize) -> u64 {
    let granules = bytes.div_ceil(super::config::GRANULE).max(1);
    u64::from(granules.next_power_of_two().trailing_zeros())
}

/// A view of the tree in shared memory.
pub(crate) struct BuddyTree {
    words: *const AtomicU32,
    leaves: usize,
    max_order: u64,
    granules: usize,
}

impl BuddyTree {
    /// # Safety
    /// `words` must point to `tree_bytes(leaves) / 4` aligned `AtomicU32`s
    /// that stay mapped for the life of the returned value; `leaves` must be
    /// a power of two ≥ `granules`.
    pub(crate) unsafe fn new(words: *const AtomicU32, leaves: usize, granules: usize) -> BuddyTree {
        BuddyTree { words, leaves, max_order: u64::from(leaves.trailing_zeros()), granules }
    }

    fn word(&self, node: usize) -> &AtomicU32 {
        // SAFETY: node < 2 × leaves for every caller, so node / 4 is inside
        // the tree_bytes(leaves) / 4 words promised by `new`.
        unsafe { &*self.words.add(node / 4) }
    }

    fn get(&self, node: usize) -> u64 {
        u64::from((self.word(node).load(Ordering::Relaxed) >> ((node % 4) * 8)) as u8)
    }

    fn set(&self, node: usize, v: u64) {
        let w = self.word(node);
        let shift = (node % 4) * 8;
        let old = w.load(Ordering::Relaxed);
        w.store((old & !(0xFF << shift)) | ((v as u32 & 0xFF) << shift), Ordering::Relaxed);
    }

    /// Order of the blocks at the level of `node`.
    fn node_order(&self, node: usize) -> u64 {
        self.max_order - u64::from(usize::BITS - 1 - node.leading_zeros())
    }

    /// Recomputes `node` from its children (node must be internal); returns
    /// whether its value changed.
    fn recompute(&self, node: usize) -> bool {
        let full = self.node_order(node) + 1;
        let (l, r) = (self.get(2 * node), self.get(2 * node + 1));
        let v = if l == full - 1 && r == full - 1 { full } else { l.max(r) };
        if self.get(node) == v {
            return false;
        }
        self.set(node, v);
        true
    }

    /// Propagates a change at `node` upwards, stopping at the first ancestor
    /// whose value is unchanged (its own ancestors then cannot change).
    fn fix_ancestors(&self, mut node: usize) {
        while node > 1 {
            node /= 2;
            if !self.recompute(node) {
                return;
            }
        }
    }

    /// Rebuilds the whole tree with exactly `blocks` (granule, order)
    /// allocated plus the reserved tail. Blocks must not overlap (checked by
    /// the caller). O(leaves).
    pub(crate) fn rebuild(&self, blocks: impl Iterator<Item = (u64, u64)>) {
        for node in 1..2 * self.leaves {
            self.set(node, self.node_order(node) + 1);
        }
        let mut marked = vec![0u64; (2 * self.leaves).div_ceil(64)];
        let mut mark = |node: usize| {
            marked[node / 64] |= 1 << (node % 64);
            self.set(node, 0);
        };
        for (granule, order) in blocks.chain(self.tail_blocks()) {
            mark((granule as usize + self.leaves) >> order);
        }
        for node in (1..self.leaves).rev() {
            if marked[node / 64] & (1 << (node % 64)) == 0 {
                let _ = self.recompute(node);
            }
        }
    }

    /// Maximal aligned blocks covering `granules ..< leaves`.
    fn tail_blocks(&self) -> impl Iterator<Item = (u64, u64)> {
        let (mut at, end) = (self.granules as u64, self.leaves as u64);
        std::iter::from_fn(move || {
            if at >= end {
                return None;
            }
            let mut order = u64::from(at.trailing_zeros()).min(63);
            while at + (1 << order) > end {
                order -= 1;
            }
            let block = (at, order);
            at += 1 << order;
            Some(block)
        })
    }

    /// Allocates a block of `order`; returns its first granule.
    pub(crate) fn alloc(&self, order: u64) -> Option<u64> {
        if order > self.max_order || self.get(1) < order + 1 {
            return None;
        }
        let (mut node, mut level) = (1usize, self.max_order);
        while level > order {
            // Prefer the left child: keeps allocations packed low.
            node = if self.get(2 * node) > order { 2 * node } else { 2 * node + 1 };
            level -= 1;
        }
        self.set(node, 0);
        self.fix_ancestors(node);
        Some(((node << order) - self.leaves) as u64)
    }

    /// Frees the block of `order` at `granule`. A block that is not currently
    /// allocated at exactly that place is reported as corruption.
    pub(crate) fn free(&self, granule: u64, order: u64) -> Result<()> {
        let g = granule as usize;
        if order > self.max_order || g >= self.granules || g % (1 << order) != 0 {
            return Err(Error::Corrupt(format!("free of bad block {granule}/{order}")));
        }
        let node = (g + self.leaves) >> order;
        // An allocated block reads 0 and (invariant) its children read
        // "full"; a node that reads 0 because its children are allocated is
        // not a block.
        if self.get(node) != 0 || (order > 0 && self.get(2 * node) != order) {
            return Err(Error::Corrupt(format!("double free of block {granule}/{order}")));
        }
        self.set(node, order + 1);
        self.fix_ancestors(node);
        Ok(())
    }

    /// Size in bytes of the largest block that can be allocated now.
    pub(crate) fn largest_free(&self) -> u64 {
        match self.get(1) {
            0 => 0,
            // A corrupt root may exceed the tree's height: clamp.
            v => (super::config::GRANULE as u64) << (v - 1).min(self.max_order),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(granules: usize) -> (Vec<AtomicU32>, usize) {
        let leaves = granules.next_power_of_two();
        ((0..tree_bytes(leaves) / 4).map(|_| AtomicU32::new(0)).collect(), leaves)
    }

    #[test]
    fn alloc_free_returns_to_initial_state() {
        let (words, leaves) = tree(100);
        // SAFETY: `words` has tree_bytes(leaves) / 4 words and outlives `t`.
        let t = unsafe { BuddyTree::new(words.as_ptr(), leaves, 100) };
        t.rebuild(std::iter::empty());
        let initial: Vec<u32> = words.iter().map(|w| w.load(Ordering::Relaxed)).collect();
        assert_eq!(t.largest_free(), 64 * 64);
        let mut got = Vec::new();
        for order in [0, 3, 1, 0, 5, 2] {
            got.push((t.alloc(order).unwrap(), order));
        }
        for (g, o) in &got {
            assert!(*g as usize + (1 << o) <= 100);
        }
        assert!(t.free(got[0].0, got[0].1).is_ok());
        assert!(t.free(got[0].0, got[0].1).is_err(), "double free detected");
        for (g, o) in got.iter().skip(1).rev() {
            t.free(*g, *o).unwrap();
        }
        let now: Vec<u32> = words.iter().map(|w| w.load(Ordering::Relaxed)).collect();
        assert_eq!(initial, now);
        assert!(t.alloc(7).is_none(), "tail beyond 100 granules is reserved");
    }

    #[test]
    fn order_for_sizes() {
        assert_eq!(order_for(0), 0);
        assert_eq!(order_for(64), 0);
        assert_eq!(order_for(65), 1);
        assert_eq!(order_for(64 << 10), 10);
    }
}
