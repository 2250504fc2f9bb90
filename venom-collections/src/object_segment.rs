//! [`ObjectSegment`]: one named shared-memory segment holding many named
//! structures (the Rust counterpart of posix-shm's `SharedMemory`).
//!
//! Body layout (all words are `AtomicU64`, offsets from the body start, which
//! venom-core aligns to 128 bytes):
//!
//! ```text
//! 0      magic "VNMCOLL1" | layout version | directory entries | data offset | data len
//! 128    used: bump-allocator counter (bytes of the data area handed out)
//! 256    directory: entries × 128 bytes (see `directory`)
//! data   objects, each 128-byte aligned, placed by the bump allocator
//! ```
//!
//! Space is handed out by a lock-free bump allocator (CAS on `used`) and
//! never reclaimed: objects live as long as the segment. Running out is
//! [`Error::OutOfSpace`].

use std::sync::Arc;
use venom_core::loom::sync::{AtomicU64, Ordering};
use venom_core::{Segment, SegmentKind};

use crate::directory::{Directory, ENTRY_WORDS, ObjectInfo, ObjectKind, Spec};
use crate::error::{Error, Result};
use crate::patience::DEFAULT_STALL_TIMEOUT;

const MAGIC: u64 = u64::from_le_bytes(*b"VNMCOLL1");
const LAYOUT_VERSION: u64 = 1;
const USED_WORD: usize = 16;
const DIR_OFFSET: usize = 256;
/// Directory entries of [`ObjectSegment::create`].
pub const DEFAULT_DIRECTORY_ENTRIES: usize = 64;
const MAX_DIRECTORY_ENTRIES: usize = 1 << 16;

/// A named segment with a directory of named objects.
///
/// ```
/// use venom_collections::ObjectSegment;
/// let name = format!("doc-objseg-{}", std::process::id());
/// let seg = ObjectSegment::create(&name, 1 << 20)?;
/// let tasks = seg.queue::<u64>("tasks", 1024)?;
/// tasks.try_push(7).unwrap();
/// let other = ObjectSegment::open(&name)?; // normally in another process
/// assert_eq!(other.open_queue::<u64>("tasks")?.try_pop(), Some(7));
/// assert_eq!(other.objects()[0].name, "tasks");
/// seg.unlink()?;
/// # Ok::<(), venom_collections::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct ObjectSegment {
    /// The mapping, shared with every object handle made from it.
    seg: Arc<Segment>,
    /// Directory entries (1..=65536, validated at open).
    entries: usize,
    /// `256 + entries * 128`: start of the data area in the body.
    data_offset: u64,
    /// `body_len - data_offset`: every object lies inside the data area.
    data_len: u64,
}

/// Where an object lives: the segment (kept mapped) and its words.
pub(crate) struct Region {
    /// Keeps the mapping alive while the object handle exists.
    pub _mapping: Arc<Segment>,
    pub ptr: *const AtomicU64,
    pub words: usize,
    pub capacity: u64,
}

// The handles built on a region (stack, map, bitset, array) copy their `Pod`
// values in and out of its words, so they are `Send + Sync` through it
// (checked below).
// SAFETY: `ptr` points into the mapping that `_mapping` keeps alive, and
// `words` only hands it out as `&[AtomicU64]`: every access is atomic.
unsafe impl Send for Region {}
// SAFETY: as above.
unsafe impl Sync for Region {}

const _: () = {
    const fn send_sync<T: Send + Sync>() {}
    send_sync::<crate::Stack<u64>>();
    send_sync::<crate::Array<u64>>();
    send_sync::<crate::Bitset>();
    send_sync::<crate::HashMap<u64, u64>>();
    send_sync::<crate::Queue<u64>>();
};

/// `r`, unless the segment was truncated under this process's mapping (the
/// contents `r` was computed from were zero pages): then
/// `Error::Core(Truncated)`. Every public operation on a segment ends here.
#[inline]
pub(crate) fn guarded<T>(seg: Option<&Segment>, r: Result<T>) -> Result<T> {
    // Fast path: one load of a static in a process that never lost a mapping;
    // `r` is not touched on the check path (it stays in registers).
    if venom_core::truncation::any_lost()
        && let Some(e) = seg.and_then(lost_error)
    {
        return Err(e);
    }
    r
}

#[cold]
#[inline(never)]
fn lost_error(seg: &Segment) -> Option<Error> {
    seg.check_mapped().err().map(Error::from)
}

impl Region {
    /// The segment holding this object.
    #[inline]
    pub(crate) fn segment(&self) -> &Segment {
        &self._mapping
    }

    /// `Error::Core(Truncated)` if the segment's file was truncated under
    /// this mapping.
    #[inline]
    pub(crate) fn check_mapped(&self) -> Result<()> {
        Ok(self._mapping.check_mapped()?)
    }

    /// The object's words.
    #[inline]
    pub(crate) fn words(&self) -> &[AtomicU64] {
        // SAFETY: `ptr..ptr + words` lies inside the mapping (checked against
        // the data area when the region was built), is 8-byte aligned (objects
        // are 128-byte aligned), and `_mapping` keeps the mapping alive as long as
        // `self`. The memory is only accessed through atomics.
        unsafe { core::slice::from_raw_parts(self.ptr, self.words) }
    }
}

impl ObjectSegment {
    /// Creates a segment of `size` bytes (directory and objects included)
    /// with [`DEFAULT_DIRECTORY_ENTRIES`] directory entries and mode 0600.
    pub fn create(name: &str, size: usize) -> Result<ObjectSegment> {
        Self::create_with(name, size, DEFAULT_DIRECTORY_ENTRIES, venom_core::DEFAULT_MODE)
    }

    /// Creates a segment with `entries` directory entries and permission
    /// bits `mode`.
    pub fn create_with(name: &str, size: usize, entries: usize, mode: u32) -> Result<ObjectSegment> {
        if entries == 0 || entries > MAX_DIRECTORY_ENTRIES {
            return Err(Error::InvalidConfig(format!(
                "directory entries {entries} not in 1..={MAX_DIRECTORY_ENTRIES}"
            )));
        }
        let data_offset = (DIR_OFFSET + entries * ENTRY_WORDS * 8) as u64;
        if (size as u64) < data_offset {
            return Err(Error::InvalidConfig(format!(
                "size {size} is smaller than the directory ({data_offset} bytes)"
            )));
        }
        let seg = Segment::builder(name, SegmentKind::COLLECTIONS).body_len(size).mode(mode).create_with(|seg| {
            let h = header_words(seg);
            // Relaxed: the segment is published READY by venom-core after init.
            h[0].store(MAGIC, Ordering::Relaxed);
            h[1].store(LAYOUT_VERSION, Ordering::Relaxed);
            h[2].store(entries as u64, Ordering::Relaxed);
            h[3].store(data_offset, Ordering::Relaxed);
            h[4].store(size as u64 - data_offset, Ordering::Relaxed);
            Ok(())
        })?;
        Ok(ObjectSegment { seg: Arc::new(seg), entries, data_offset, data_len: size as u64 - data_offset })
    }

    /// Opens an existing segment, validating its layout.
    pub fn open(name: &str) -> Result<ObjectSegment> {
        let seg = Segment::open(name, SegmentKind::COLLECTIONS)?;
        if seg.body_len() < DIR_OFFSET {
            return Err(Error::Corrupt(format!("object segment {name:?} is too short")));
        }
        let h = header_words(&seg);
        // Relaxed: the header was published by venom-core's READY handshake.
        let [magic, version, entries, data_offset, data_len] = [0, 1, 2, 3, 4].map(|i| h[i].load(Ordering::Relaxed));
        let body = seg.body_len() as u64;
        let corrupt = |what: &str| Err(Error::Corrupt(format!("object segment {name:?}: {what}")));
        if magic != MAGIC {
            return corrupt("bad magic");
        }
        if version != LAYOUT_VERSION {
            return corrupt("unknown layout version");
        }
        if entries == 0 || entries > MAX_DIRECTORY_ENTRIES as u64 {
            return corrupt("directory size out of range");
        }
        let expected_offset = (DIR_OFFSET as u64) + entries * (ENTRY_WORDS as u64) * 8;
        if data_offset != expected_offset || data_offset.checked_add(data_len) != Some(body) {
            return corrupt("data area does not match the body");
        }
        Ok(ObjectSegment { seg: Arc::new(seg), entries: entries as usize, data_offset, data_len })
    }

    /// The segment name.
    pub fn name(&self) -> &str {
        self.seg.name()
    }

    /// Removes the name; mapped handles keep working.
    pub fn unlink(&self) -> Result<()> {
        Ok(self.seg.unlink()?)
    }

    /// Unlinks the name when the mapping is finally dropped (after this
    /// handle, its clones and every object handle from it are gone). Only
    /// possible before cloning or attaching objects; returns whether it took
    /// effect.
    pub fn set_unlink_on_drop(&mut self, yes: bool) -> bool {
        match Arc::get_mut(&mut self.seg) {
            Some(s) => {
                s.set_unlink_on_drop(yes);
                true
            }
            None => false,
        }
    }

    /// Bytes of the data area handed out so far.
    pub fn used_bytes(&self) -> u64 {
        // Relaxed: a statistic.
        self.used().load(Ordering::Relaxed).min(self.data_len)
    }

    /// Size of the data area (the segment minus header and directory).
    pub fn data_bytes(&self) -> u64 {
        self.data_len
    }

    /// Every ready object, for tooling, with its current item count. Only
    /// loads: listing claims nothing and counts as no participant.
    pub fn objects(&self) -> Vec<ObjectInfo> {
        let mut list = self.directory().list();
        for o in &mut list {
            // A region that fails the bounds check is reported without a count.
            let Ok(region) = self.region(o.offset, o.bytes, o.capacity) else { continue };
            let words = region.words();
            o.items = match o.kind {
                ObjectKind::Queue => crate::queue::items_in(words, o.capacity),
                ObjectKind::Stack => crate::stack::items_in(words),
                ObjectKind::HashMap => crate::map::items_in(words),
                ObjectKind::Bitset if crate::Bitset::bytes(o.capacity).is_ok_and(|b| b <= o.bytes) => {
                    Some(crate::Bitset::from_region(region).count_ones())
                }
                ObjectKind::Array => Some(o.capacity),
                _ => None,
            };
        }
        list
    }

    fn used(&self) -> &AtomicU64 {
        &header_words(&self.seg)[USED_WORD]
    }

    fn directory(&self) -> Directory<'_> {
        let len = self.entries * ENTRY_WORDS;
        // SAFETY: the directory (entries × 128 bytes from byte 256) lies in
        // the body (validated at create/open), is aligned, lives as long as
        // `self.seg`, and is only accessed through atomics.
        let entries = unsafe { core::slice::from_raw_parts(self.seg.body_ptr().add(DIR_OFFSET) as *const _, len) };
        Directory { entries }
    }

    /// Fails with `Error::Core(Truncated)` if the segment's file was shrunk
    /// by another process while this one had it mapped (see
    /// `venom_core::truncation`). Every `Result`-returning operation on the
    /// segment and its objects already checks this; call it to tell an empty
    /// structure from a lost one after an `Option`/`bool`-returning call
    /// (`try_pop`, `len`, ...), which see a lost mapping as zeroes.
    pub fn check_mapped(&self) -> Result<()> {
        Ok(self.seg.check_mapped()?)
    }

    /// Lock-free bump allocation of `len` bytes, 128-byte aligned.
    fn allocate(&self, len: u64) -> Result<u64> {
        let used = self.used();
        // Relaxed: the counter only hands out disjoint ranges; the object's
        // contents are published through the directory's READY store.
        let mut cur = used.load(Ordering::Relaxed);
        loop {
            let start = cur.next_multiple_of(128);
            let end = start.checked_add(len).filter(|&e| e <= self.data_len);
            let Some(end) = end else {
                return Err(Error::OutOfSpace { requested: len, available: self.data_len.saturating_sub(start) });
            };
            match used.compare_exchange_weak(cur, end, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => return Ok(start),
                Err(v) => cur = v,
            }
        }
    }

    /// Finds or creates the object `name` per `spec`. `bytes(capacity)` gives
    /// the object's size; `init` initialises fresh (zeroed) words.
    pub(crate) fn place(
        &self,
        name: &str,
        spec: Spec,
        create: bool,
        bytes: impl Fn(u64) -> Result<u64>,
        init: impl FnOnce(&[AtomicU64], u64),
    ) -> Result<Region> {
        let p = self.directory().lookup(name, &spec, create, DEFAULT_STALL_TIMEOUT, |capacity| {
            let len = bytes(capacity)?;
            let offset = self.allocate(len)?;
            let region = self.region(offset, len, capacity)?;
            init(region.words(), capacity);
            Ok((offset, len))
        })?;
        self.check_mapped()?;
        let region = self.region(p.offset, p.len, p.capacity)?;
        let expected = bytes(p.capacity)?;
        if expected != p.len {
            return Err(Error::Corrupt(format!("object {name:?} has {} bytes, its capacity needs {expected}", p.len)));
        }
        Ok(region)
    }

    fn region(&self, offset: u64, len: u64, capacity: u64) -> Result<Region> {
        let in_bounds = offset % 128 == 0 && offset.checked_add(len).is_some_and(|e| e <= self.data_len);
        if !in_bounds {
            return Err(Error::Corrupt(format!("object at {offset}+{len} is outside the data area")));
        }
        let start = self.data_offset + offset;
        // SAFETY: data_offset + offset + len <= body_len (checked above and at
        // open), so the pointer stays inside the mapping.
        let ptr = unsafe { self.seg.body_ptr().add(start as usize) } as *const AtomicU64;
        Ok(Region { _mapping: self.seg.clone(), ptr, words: (len / 8) as usize, capacity })
    }
}

/// The header words. Callers guarantee `body_len() >= DIR_OFFSET` (checked
/// by `create_with` and `open` before any call).
fn header_words(seg: &Segment) -> &[AtomicU64] {
    debug_assert!(seg.body_len() >= DIR_OFFSET);
    // SAFETY: the body is at least DIR_OFFSET bytes (see above), 128-byte
    // aligned, lives as long as `seg`, and is only accessed through atomics.
    unsafe { core::slice::from_raw_parts(seg.body_ptr() as *const AtomicU64, DIR_OFFSET / 8) }
}
