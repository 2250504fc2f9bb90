//! The directory of named objects at the start of an
//! [`ObjectSegment`](crate::ObjectSegment) body.
//!
//! A fixed array of 128-byte entries, probed from `fixed_hash(name)`. Each
//! entry is claimed by CAS on its `owner` word (0 → the claimer's packed
//! [`ProcessId`](venom_core::ProcessId)), then goes through
//! `phase`: `FREE → NAMED → READY`, or to `DEAD` if its claimer died before
//! `READY`. Entries are never freed, so probing is monotonic:
//!
//! * a creator claims the **first** `FREE` entry on the name's probe path;
//!   anyone reaching an entry that is claimed but not yet `NAMED` waits for
//!   its name; a `NAMED` entry with the wanted name is waited on until
//!   `READY` (then attached) or `DEAD` (then skipped);
//! * names are immutable once `NAMED` and `DEAD` entries are never reused, so
//!   every process walking the same probe path sees the same sequence and
//!   two concurrent creators of one name meet at the same entry: **a name
//!   never appears twice**.
//!
//! All waits are bounded and check the claimer's liveness; a dead claimer's
//! entry is marked `DEAD` (its directory entry and any space it had
//! allocated are leaked, not reused: at most one entry per crash). A
//! creation that fails (e.g. [`Error::OutOfSpace`]) also retires its entry as
//! `DEAD`, so repeated failing creations consume directory entries. Objects
//! cannot be deleted; the segment is the unit of cleanup.

use std::time::Duration;

use venom_core::loom::sync::{AtomicU64, Ordering};

use crate::ctl::packed_alive;
use crate::error::{Error, Result};
use crate::hash::fixed_hash;
use crate::patience::Patience;

/// Longest object name in bytes.
pub const MAX_OBJECT_NAME: usize = 48;
/// Words per directory entry (128 bytes).
pub(crate) const ENTRY_WORDS: usize = 16;

const FREE: u64 = 0;
const NAMED: u64 = 1;
const READY: u64 = 2;
const DEAD: u64 = 3;

// Entry word indices.
const OWNER: usize = 0;
const PHASE: usize = 1;
const NAME: usize = 2; // 6 words
const KIND: usize = 8;
const ELEM: usize = 9; // size | align << 32
const AUX: usize = 10;
const FINGERPRINT: usize = 11;
const CAPACITY: usize = 12;
const OFFSET: usize = 13;
const LEN: usize = 14;

/// The structure kind of a named object.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ObjectKind {
    /// A [`Queue`](crate::Queue).
    Queue,
    /// A [`Stack`](crate::Stack).
    Stack,
    /// A [`HashMap`](crate::HashMap).
    HashMap,
    /// A [`Bitset`](crate::Bitset).
    Bitset,
    /// An [`Array`](crate::Array).
    Array,
    /// A code this build does not know.
    Unknown(u64),
}

impl ObjectKind {
    pub(crate) fn code(self) -> u64 {
        match self {
            ObjectKind::Queue => 1,
            ObjectKind::Stack => 2,
            ObjectKind::HashMap => 3,
            ObjectKind::Bitset => 4,
            ObjectKind::Array => 5,
            ObjectKind::Unknown(c) => c,
        }
    }

    pub(crate) fn from_code(c: u64) -> ObjectKind {
        match c {
            1 => ObjectKind::Queue,
            2 => ObjectKind::Stack,
            3 => ObjectKind::HashMap,
            4 => ObjectKind::Bitset,
            5 => ObjectKind::Array,
            c => ObjectKind::Unknown(c),
        }
    }

    /// A short lowercase name (`"queue"`, `"hashmap"`...).
    pub fn as_str(self) -> &'static str {
        match self {
            ObjectKind::Queue => "queue",
            ObjectKind::Stack => "stack",
            ObjectKind::HashMap => "hashmap",
            ObjectKind::Bitset => "bitset",
            ObjectKind::Array => "array",
            ObjectKind::Unknown(_) => "unknown",
        }
    }
}

/// What a caller asks for: the layout an existing object must match, and
/// what a new one is created with.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Spec {
    pub kind: ObjectKind,
    pub elem_size: u32,
    pub elem_align: u32,
    pub aux: u64,
    pub fingerprint: u64,
    /// `None` when attaching to whatever capacity exists.
    pub capacity: Option<u64>,
}

/// One object as listed by [`ObjectSegment::objects`](crate::ObjectSegment::objects).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectInfo {
    /// The object's name.
    pub name: String,
    /// Its structure kind.
    pub kind: ObjectKind,
    /// Its capacity (elements, bits for a bitset).
    pub capacity: u64,
    /// Bytes of the segment it occupies.
    pub bytes: u64,
    /// Size of one element (the key for a map) in bytes.
    pub elem_size: u32,
    /// Items it holds now (queue, stack, map entries, bitset ones, array
    /// elements); a snapshot, `None` for an unknown kind.
    pub items: Option<u64>,
    /// Byte offset of the object in the segment's data area.
    pub(crate) offset: u64,
}

/// A ready entry's placement, as read back from the directory.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Placement {
    pub capacity: u64,
    pub offset: u64,
    pub len: u64,
}

/// The directory view: `entries` words of the segment body.
pub(crate) struct Directory<'a> {
    pub entries: &'a [AtomicU64],
}

pub(crate) fn check_name(name: &str) -> Result<[u8; MAX_OBJECT_NAME]> {
    let bad = |reason| Err(Error::InvalidObjectName { name: name.to_owned(), reason });
    if name.is_empty() {
        return bad("empty");
    }
    if name.len() > MAX_OBJECT_NAME {
        return bad("longer than 48 bytes");
    }
    if name.bytes().any(|b| b == 0) {
        return bad("contains NUL");
    }
    let mut out = [0u8; MAX_OBJECT_NAME];
    out[..name.len()].copy_from_slice(name.as_bytes());
    Ok(out)
}

impl<'a> Directory<'a> {
    fn count(&self) -> usize {
        self.entries.len() / ENTRY_WORDS
    }

    fn entry(&self, i: usize) -> &'a [AtomicU64] {
        &self.entries[i * ENTRY_WORDS..(i + 1) * ENTRY_WORDS]
    }

    fn name_of(e: &[AtomicU64]) -> [u8; MAX_OBJECT_NAME] {
        crate::words::load_elem::<[u8; MAX_OBJECT_NAME]>(&e[NAME..NAME + 6])
    }

    /// Finds `name`, or (with `create`) claims an entry for it and calls
    /// `place(spec) -> (offset, len)` to allocate and initialise the object.
    pub(crate) fn lookup(
        &self,
        name: &str,
        spec: &Spec,
        create: bool,
        timeout: Duration,
        place: impl FnOnce(u64) -> Result<(u64, u64)>,
    ) -> Result<Placement> {
        let key = check_name(name)?;
        let n = self.count();
        let start = (fixed_hash(&key) % n as u64) as usize;
        let mut patience = Patience::new(timeout);
        let mut place = Some(place);
        for probe in 0..n {
            let e = self.entry((start + probe) % n);
            loop {
                // Acquire: pairs with the claimer's Release stores of phase,
                // making the name (NAMED) and the fields (READY) visible.
                let phase = e[PHASE].load(Ordering::Acquire);
                let owner = e[OWNER].load(Ordering::Acquire);
                match phase {
                    READY => {
                        if Self::name_of(e) != key {
                            break;
                        }
                        return Self::attach(e, name, spec);
                    }
                    DEAD => break,
                    NAMED if Self::name_of(e) != key => break,
                    FREE if owner == 0 => {
                        if !create {
                            return Err(Error::ObjectNotFound(name.to_owned()));
                        }
                        let me = venom_core::ProcessId::current().pack();
                        // AcqRel: the claim orders our name stores after it
                        // and synchronises with a concurrent claimer.
                        if e[OWNER].compare_exchange(0, me, Ordering::AcqRel, Ordering::Acquire).is_err() {
                            continue;
                        }
                        let place = place.take().ok_or_else(|| Error::Corrupt("placement reused".into()))?;
                        return Self::create(e, &key, spec, place);
                    }
                    FREE | NAMED => {
                        // Claimed and in progress: wait for its name or
                        // readiness, or find its claimer dead.
                        if patience.check_liveness() && !packed_alive(owner) {
                            // AcqRel: only one observer retires the entry.
                            let _ = e[PHASE].compare_exchange(phase, DEAD, Ordering::AcqRel, Ordering::Relaxed);
                            continue;
                        }
                        if !patience.wait() {
                            return Err(Error::Timeout(timeout));
                        }
                    }
                    other => return Err(Error::Corrupt(format!("directory entry phase {other}"))),
                }
            }
        }
        if create { Err(Error::DirectoryFull(n)) } else { Err(Error::ObjectNotFound(name.to_owned())) }
    }

    fn create(
        e: &[AtomicU64],
        key: &[u8; MAX_OBJECT_NAME],
        spec: &Spec,
        place: impl FnOnce(u64) -> Result<(u64, u64)>,
    ) -> Result<Placement> {
        crate::words::store_elem(&e[NAME..NAME + 6], key);
        // Release: the name is visible to anyone who sees NAMED.
        e[PHASE].store(NAMED, Ordering::Release);
        let capacity = spec.capacity.ok_or_else(|| Error::InvalidConfig("capacity required to create".into()));
        let placed = capacity.and_then(|c| place(c).map(|p| (c, p)));
        let (capacity, (offset, len)) = match placed {
            Ok(v) => v,
            Err(err) => {
                // Release: observers skip the entry (its name may be retried).
                e[PHASE].store(DEAD, Ordering::Release);
                return Err(err);
            }
        };
        // Relaxed field stores, published by the Release store of READY.
        e[KIND].store(spec.kind.code(), Ordering::Relaxed);
        e[ELEM].store(u64::from(spec.elem_size) | (u64::from(spec.elem_align) << 32), Ordering::Relaxed);
        e[AUX].store(spec.aux, Ordering::Relaxed);
        e[FINGERPRINT].store(spec.fingerprint, Ordering::Relaxed);
        e[CAPACITY].store(capacity, Ordering::Relaxed);
        e[OFFSET].store(offset, Ordering::Relaxed);
        e[LEN].store(len, Ordering::Relaxed);
        e[PHASE].store(READY, Ordering::Release);
        Ok(Placement { capacity, offset, len })
    }

    fn attach(e: &[AtomicU64], name: &str, spec: &Spec) -> Result<Placement> {
        // Relaxed: the fields are immutable after READY, which we acquired.
        let kind = ObjectKind::from_code(e[KIND].load(Ordering::Relaxed));
        if kind != spec.kind {
            return Err(Error::KindMismatch {
                name: name.to_owned(),
                expected: spec.kind.as_str(),
                found: kind.as_str(),
            });
        }
        let elem = e[ELEM].load(Ordering::Relaxed);
        let mismatch = |field, expected: u64, found: u64| {
            (expected != found).then(|| Error::LayoutMismatch { name: name.to_owned(), field, expected, found })
        };
        let capacity = e[CAPACITY].load(Ordering::Relaxed);
        let checks = [
            mismatch("element size", u64::from(spec.elem_size), elem & 0xFFFF_FFFF),
            mismatch("element alignment", u64::from(spec.elem_align), elem >> 32),
            mismatch("value size", spec.aux, e[AUX].load(Ordering::Relaxed)),
            mismatch("type fingerprint", spec.fingerprint, e[FINGERPRINT].load(Ordering::Relaxed)),
            spec.capacity.and_then(|c| mismatch("capacity", c, capacity)),
        ];
        if let Some(err) = checks.into_iter().flatten().next() {
            return Err(err);
        }
        let offset = e[OFFSET].load(Ordering::Relaxed);
        let len = e[LEN].load(Ordering::Relaxed);
        Ok(Placement { capacity, offset, len })
    }

    /// Every `READY` entry.
    pub(crate) fn list(&self) -> Vec<ObjectInfo> {
        (0..self.count())
            .map(|i| self.entry(i))
            .filter(|e| e[PHASE].load(Ordering::Acquire) == READY)
            .map(|e| {
                let raw = Self::name_of(e);
                let end = raw.iter().position(|&b| b == 0).unwrap_or(raw.len());
                ObjectInfo {
                    name: String::from_utf8_lossy(&raw[..end]).into_owned(),
                    kind: ObjectKind::from_code(e[KIND].load(Ordering::Relaxed)),
                    capacity: e[CAPACITY].load(Ordering::Relaxed),
                    bytes: e[LEN].load(Ordering::Relaxed),
                    elem_size: e[ELEM].load(Ordering::Relaxed) as u32,
                    items: None,
                    offset: e[OFFSET].load(Ordering::Relaxed),
                }
            })
            .collect()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    fn entries(n: usize) -> Vec<AtomicU64> {
        (0..n * ENTRY_WORDS).map(|_| AtomicU64::new(0)).collect()
    }

    fn spec() -> Spec {
        Spec { kind: ObjectKind::Bitset, elem_size: 8, elem_align: 8, aux: 0, fingerprint: 1, capacity: Some(64) }
    }

    fn dead_claimer() -> u64 {
        let mut c = std::process::Command::new("true").spawn().unwrap();
        let pid = c.id();
        c.wait().unwrap();
        venom_core::ProcessId { pid, start_time: 1 }.pack()
    }

    #[test]
    fn entries_of_dead_claimers_are_retired_and_skipped() {
        let words = entries(4);
        let dir = Directory { entries: &words };
        let dead = dead_claimer();
        // Three entries claimed by a process that died before READY (one
        // even got as far as writing the name we want).
        for (i, phase) in [(0, FREE), (1, NAMED), (2, NAMED)] {
            words[i * ENTRY_WORDS + OWNER].store(dead, Ordering::SeqCst);
            words[i * ENTRY_WORDS + PHASE].store(phase, Ordering::SeqCst);
            crate::words::store_elem(
                &words[i * ENTRY_WORDS + NAME..i * ENTRY_WORDS + NAME + 6],
                &check_name("x").unwrap(),
            );
        }
        let t = Duration::from_secs(5);
        let p = dir.lookup("x", &spec(), true, t, |_| Ok((0, 8))).unwrap();
        assert_eq!((p.capacity, p.offset, p.len), (64, 0, 8));
        let phases: Vec<u64> = (0..4).map(|i| words[i * ENTRY_WORDS + PHASE].load(Ordering::SeqCst)).collect();
        assert_eq!(phases.iter().filter(|&&p| p == READY).count(), 1);
        // Attach finds the same entry; a second name finds no room.
        assert!(dir.lookup("x", &spec(), false, t, |_| unreachable!()).is_ok());
        assert!(matches!(dir.lookup("y", &spec(), true, t, |_| Ok((8, 8))), Err(Error::DirectoryFull(4))));
    }

    #[test]
    fn live_claimer_that_never_finishes_times_out() {
        let words = entries(1);
        let dir = Directory { entries: &words };
        words[OWNER].store(venom_core::ProcessId::current().pack(), Ordering::SeqCst);
        let t = Duration::from_millis(50);
        assert!(matches!(dir.lookup("x", &spec(), true, t, |_| Ok((0, 8))), Err(Error::Timeout(_))));
    }
}
