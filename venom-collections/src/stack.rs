//! [`Stack<T>`]: a bounded LIFO in shared memory, safe from ABA.
//!
//! Two Treiber stacks (R. K. Treiber, "Systems Programming: Coping with
//! Parallelism", IBM RJ 5118, 1986) over one array of nodes: `used` holds the
//! pushed items, `free` the spare nodes. A head is one `AtomicU64` packing a
//! node index (low 32 bits, `NIL` = empty) and a tag (high 32 bits) that is
//! incremented by every successful CAS, so a head that went A → B → A between
//! a load and a CAS still fails the CAS (ABA needs 2^32 operations inside one
//! thread's load–CAS window). Indices, not pointers: every process maps the
//! segment at a different address. A node's `next` link is an atomic word, so
//! the speculative read of a node that was just popped by someone else is a
//! race-free read whose value the failing CAS then discards.
//!
//! # Crash tolerance
//! Nothing waits, so a crashed peer cannot block anyone. A process killed
//! between taking a node from one list and linking it into the other leaks
//! that node: capacity shrinks by one per such crash, and for a killed `pop`
//! the item it was taking is lost (its `pop` never returned). `len` may then
//! be off by one.
//!
//! # Layout
//! ```text
//! word 0   used head (tag | index)        word 16  free head        word 32  len
//! word 48  nodes: capacity × [next, value words...]
//! ```

use std::marker::PhantomData;

use bytemuck::Pod;
use venom_core::loom::sync::{AtomicU64, Ordering};

use crate::error::{Error, Result};
use crate::object_segment::Region;
use crate::patience::Contention;
use crate::words::{LINE_WORDS, load_elem, store_elem, words_for};

const USED: usize = 0;
const FREE: usize = LINE_WORDS;
const LEN: usize = 2 * LINE_WORDS;
pub(crate) const HEADER_WORDS: usize = 3 * LINE_WORDS;
const NIL: u64 = u32::MAX as u64;
/// Largest stack capacity (indices are 32-bit, `u32::MAX` is `NIL`).
pub const MAX_STACK_CAPACITY: u64 = u32::MAX as u64 - 1;

/// The algorithm over a slice of words.
pub(crate) struct StackCore<'a> {
    /// Header plus `capacity` nodes of `stride` words; node indices read
    /// from shared memory are bounds-checked against it.
    pub words: &'a [AtomicU64],
    /// Words per node: 1 (next link) + value words.
    pub stride: usize,
}

impl<'a> StackCore<'a> {
    pub(crate) fn words_needed(capacity: u64, elem_words: usize) -> Option<usize> {
        (capacity as usize).checked_mul(1 + elem_words)?.checked_add(HEADER_WORDS)
    }

    /// Links every node into the free list.
    pub(crate) fn init(words: &[AtomicU64], capacity: u64, stride: usize) {
        // Relaxed: published by the directory's READY store.
        for i in 0..capacity {
            let next = if i + 1 < capacity { i + 1 } else { NIL };
            words[HEADER_WORDS + i as usize * stride].store(next, Ordering::Relaxed);
        }
        words[USED].store(NIL, Ordering::Relaxed);
        words[FREE].store(if capacity > 0 { 0 } else { NIL }, Ordering::Relaxed);
    }

    #[inline]
    fn node(&self, idx: u64) -> &'a [AtomicU64] {
        let i = HEADER_WORDS + idx as usize * self.stride;
        &self.words[i..i + self.stride]
    }

    /// Treiber pop of a node index from the list at `head`.
    #[inline]
    fn take(&self, head: usize) -> Option<u64> {
        let head = &self.words[head];
        // Acquire: pairs with the Release of the push that linked the node,
        // making its `next` and value visible.
        let mut cur = head.load(Ordering::Acquire);
        let mut backoff = Contention::default();
        loop {
            let idx = cur & 0xFFFF_FFFF;
            if idx == NIL {
                return None;
            }
            if idx as usize >= (self.words.len() - HEADER_WORDS) / self.stride {
                return None; // corrupt index: treat as empty rather than go out of bounds
            }
            // Relaxed: a stale `next` makes the tagged CAS below fail.
            let next = self.node(idx)[0].load(Ordering::Relaxed) & 0xFFFF_FFFF;
            let new = ((cur >> 32).wrapping_add(1) << 32) | next;
            // Acquire on success: we now own the node and read its value.
            match head.compare_exchange_weak(cur, new, Ordering::Acquire, Ordering::Acquire) {
                Ok(_) => return Some(idx),
                Err(v) => {
                    cur = v;
                    backoff.spin();
                }
            }
        }
    }

    /// Treiber push of node `idx` onto the list at `head`.
    #[inline]
    fn put(&self, head: usize, idx: u64) {
        let head = &self.words[head];
        // Relaxed: the CAS below validates it.
        let mut cur = head.load(Ordering::Relaxed);
        let mut backoff = Contention::default();
        loop {
            // Relaxed: published by the Release CAS.
            self.node(idx)[0].store(cur & 0xFFFF_FFFF, Ordering::Relaxed);
            let new = ((cur >> 32).wrapping_add(1) << 32) | idx;
            // Release: publishes `next` and the node's value to the taker.
            match head.compare_exchange_weak(cur, new, Ordering::Release, Ordering::Relaxed) {
                Ok(_) => return,
                Err(v) => {
                    cur = v;
                    backoff.spin();
                }
            }
        }
    }

    pub(crate) fn push<T: Pod>(&self, v: &T) -> bool {
        let Some(idx) = self.take(FREE) else { return false };
        store_elem(&self.node(idx)[1..], v);
        self.put(USED, idx);
        // Relaxed: an approximate count.
        self.words[LEN].fetch_add(1, Ordering::Relaxed);
        true
    }

    pub(crate) fn pop<T: Pod>(&self) -> Option<T> {
        let idx = self.take(USED)?;
        let v = load_elem(&self.node(idx)[1..]);
        self.put(FREE, idx);
        // Relaxed: an approximate count.
        self.words[LEN].fetch_sub(1, Ordering::Relaxed);
        Some(v)
    }

    fn len(&self) -> u64 {
        // Relaxed: an approximate count (may be transiently off by the
        // in-flight operations, and wraps below zero for a moment).
        (self.words[LEN].load(Ordering::Relaxed) as i64).max(0) as u64
    }
}

/// Items of a stack's words, for [`ObjectSegment::objects`](crate::ObjectSegment::objects)
/// (approximate, like [`Stack::len`]).
pub(crate) fn items_in(words: &[AtomicU64]) -> Option<u64> {
    // Relaxed: an approximate count for tools.
    Some((words.get(LEN)?.load(Ordering::Relaxed) as i64).max(0) as u64)
}

/// A bounded lock-free LIFO of `T` in an [`ObjectSegment`](crate::ObjectSegment).
///
/// ```
/// use venom_collections::ObjectSegment;
/// let name = format!("doc-stack-{}", std::process::id());
/// let seg = ObjectSegment::create(&name, 1 << 20)?;
/// let s = seg.stack::<u32>("undo", 2)?;
/// s.push(1).unwrap();
/// s.push(2).unwrap();
/// assert_eq!(s.push(3), Err(3)); // full
/// assert_eq!(s.pop(), Some(2));
/// seg.unlink()?;
/// # Ok::<(), venom_collections::Error>(())
/// ```
pub struct Stack<T: Pod> {
    /// The stack's words (see the layout above).
    region: Region,
    /// `1 + words_for::<T>()`.
    stride: usize,
    _t: PhantomData<fn(T) -> T>,
}

impl<T: Pod> Stack<T> {
    pub(crate) fn from_region(region: Region) -> Stack<T> {
        Stack { region, stride: 1 + words_for::<T>(), _t: PhantomData }
    }

    pub(crate) fn bytes(capacity: u64) -> Result<u64> {
        if capacity > MAX_STACK_CAPACITY {
            return Err(Error::InvalidConfig(format!("stack capacity {capacity} exceeds {MAX_STACK_CAPACITY}")));
        }
        StackCore::words_needed(capacity, words_for::<T>())
            .and_then(|w| (w as u64).checked_mul(8))
            .ok_or_else(|| Error::InvalidConfig(format!("stack capacity {capacity} is too large")))
    }

    pub(crate) fn init(words: &[AtomicU64], capacity: u64) {
        StackCore::init(words, capacity, 1 + words_for::<T>());
    }

    #[inline]
    fn core(&self) -> StackCore<'_> {
        StackCore { words: self.region.words(), stride: self.stride }
    }

    /// Pushes `v`; `Err(v)` if the stack is full.
    pub fn push(&self, v: T) -> std::result::Result<(), T> {
        if self.core().push(&v) { Ok(()) } else { Err(v) }
    }

    /// Pops the most recently pushed item.
    pub fn pop(&self) -> Option<T> {
        self.core().pop()
    }

    /// Approximate number of items.
    pub fn len(&self) -> usize {
        self.core().len() as usize
    }

    /// Whether the stack looks empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The capacity.
    pub fn capacity(&self) -> usize {
        self.region.capacity as usize
    }
}

#[cfg(all(test, loom))]
mod loom_tests {
    use super::*;
    use loom::sync::Arc;

    #[test]
    fn loom_stack_push_pop() {
        loom::model(|| {
            let words = Arc::new(crate::words::heap_words(StackCore::words_needed(2, 1).unwrap()));
            StackCore::init(&words, 2, 2);
            let w2 = words.clone();
            let t = loom::thread::spawn(move || {
                let s = StackCore { words: &w2, stride: 2 };
                assert!(s.push(&1u64));
                s.pop::<u64>()
            });
            let s = StackCore { words: &words, stride: 2 };
            assert!(s.push(&2u64));
            let mine = s.pop::<u64>();
            let theirs = t.join().unwrap();
            let mut got: Vec<u64> = [mine, theirs].into_iter().flatten().collect();
            got.sort();
            assert_eq!(got, vec![1, 2]);
            assert_eq!(s.pop::<u64>(), None);
        });
    }
}

impl<T: Pod> Stack<T> {
    /// Fails with `Error::Core(Truncated)` if the segment's file was shrunk
    /// under this process's mapping. `Result`-returning methods check this
    /// themselves; the others (`len`, `try_pop`, ...) see a lost mapping as
    /// zeroes, and this tells the two apart.
    pub fn check_mapped(&self) -> crate::Result<()> {
        self.region.check_mapped()
    }
}
