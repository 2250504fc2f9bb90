//! Named shared-memory segments with a validated header.
//!
//! A [`Segment`] is a `MAP_SHARED` mapping of `/dev/shm/venom.<name>` that
//! starts with a [`header`](crate::header) and continues with a body owned by
//! whatever structure lives in it (a `SeqRegion`, a channel, a cache...).
//!
//! Creation never disturbs a live segment: if the name exists and its creator
//! (pid *and* start time) is alive, [`SegmentBuilder::create`] returns
//! [`Error::AlreadyExists`] without writing a byte. If the creator is dead, the
//! stale object is unlinked (under an `flock`, so two reclaimers cannot both
//! win) and a fresh one is created with the next generation number. Openers
//! wait, with a timeout, for a segment that is still initialising.

use std::time::Duration;

use crate::deadline::Deadline;

use crate::error::{Error, Result};
use crate::header::{self, HEADER_LEN, HeaderFields, SegmentHeader, SegmentKind};
use crate::name::SegmentName;
use crate::process::ProcessId;
use crate::shm::{self, Mapping, ReclaimLock, ShmFailure};

/// Default permission bits for new segments: owner read/write only.
pub const DEFAULT_MODE: u32 = 0o600;
/// Default time an opener waits for a creator to finish initialising.
pub const DEFAULT_INIT_TIMEOUT: Duration = Duration::from_secs(2);
/// Largest segment we agree to create or map (64 TiB): keeps every offset
/// computation far from overflow.
pub const MAX_SEGMENT_LEN: usize = 1 << 46;

/// A mapped, validated venom segment.
pub struct Segment {
    map: Mapping,
    name: SegmentName,
    fields: HeaderFields,
    identity: Option<(u64, u64)>,
    unlink_on_drop: bool,
}

impl std::fmt::Debug for Segment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Segment")
            .field("name", &self.name.as_str())
            .field("kind", &self.fields.kind)
            .field("len", &self.map.len())
            .field("generation", &self.fields.generation)
            .finish()
    }
}

/// Options for creating or opening a segment.
///
/// ```
/// use venom_core::{Segment, SegmentKind};
/// let name = format!("doc-builder-{}", std::process::id());
/// let seg = Segment::builder(&name, SegmentKind::RAW).body_len(4096).mode(0o640).create()?;
/// assert_eq!(seg.body_len(), 4096);
/// let again = Segment::builder(&name, SegmentKind::RAW).create();
/// assert!(matches!(again, Err(venom_core::Error::AlreadyExists { .. })));
/// seg.unlink()?;
/// # Ok::<(), venom_core::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct SegmentBuilder {
    name: String,
    kind: SegmentKind,
    body_len: usize,
    mode: u32,
    init_timeout: Duration,
}

/// What we found under a name that `O_EXCL` said exists.
enum Existing {
    /// A live creator owns it.
    Live(u32),
    /// Its creator is dead (or it never got initialised); reclaimable.
    Stale(u64),
    /// It disappeared while we looked.
    Gone,
}

impl Segment {
    /// Starts building a segment of `kind` named `name`.
    pub fn builder(name: &str, kind: SegmentKind) -> SegmentBuilder {
        SegmentBuilder {
            name: name.to_owned(),
            kind,
            body_len: 0,
            mode: DEFAULT_MODE,
            init_timeout: DEFAULT_INIT_TIMEOUT,
        }
    }

    /// Opens an existing segment of `kind`, waiting up to
    /// [`DEFAULT_INIT_TIMEOUT`] for its creator to finish initialising.
    pub fn open(name: &str, kind: SegmentKind) -> Result<Segment> {
        Segment::builder(name, kind).open()
    }

    /// Removes `name` from the namespace. Processes that have it mapped keep
    /// their mapping.
    pub fn unlink_name(name: &str) -> Result<()> {
        let name = SegmentName::new(name)?;
        shm::unlink(&name.os_id()).map_err(|f| failure(&name, f))
    }

    /// Whether a shared-memory object exists under `name`.
    pub fn exists(name: &str) -> bool {
        SegmentName::new(name).map(|n| shm::identity(&n.os_id()).is_some()).unwrap_or(false)
    }

    /// Unlinks the name if it still refers to this segment (not to a newer
    /// segment created after this one was reclaimed).
    pub fn unlink(&self) -> Result<()> {
        let os = self.name.os_id();
        if self.identity.is_some() && shm::identity(&os) != self.identity {
            return Ok(());
        }
        match shm::unlink(&os) {
            Ok(()) | Err(ShmFailure::NotFound) => Ok(()),
            Err(f) => Err(failure(&self.name, f)),
        }
    }

    /// Unlink the name when this handle is dropped (off by default).
    pub fn set_unlink_on_drop(&mut self, yes: bool) {
        self.unlink_on_drop = yes;
    }

    /// First byte of the body. 128-byte aligned; valid for
    /// [`Segment::body_len`] bytes for as long as `self` lives. Other
    /// processes may access it concurrently, so it must only be accessed
    /// through atomics or [`atomic_copy`](crate::atomic_copy).
    pub fn body_ptr(&self) -> *mut u8 {
        // SAFETY: the mapping is at least HEADER_LEN bytes long (checked at
        // create and open), so the offset stays inside it.
        unsafe { self.map.as_ptr().add(HEADER_LEN) }
    }

    /// Fails with [`Error::Truncated`] if the segment's file was shrunk under
    /// this mapping (see [`truncation`](crate::truncation)). Every operation
    /// built on a segment calls this before reporting success, since after a
    /// truncation the mapping reads as zeroes.
    ///
    /// ```
    /// use venom_core::{Segment, SegmentKind};
    /// let name = format!("doc-check-mapped-{}", std::process::id());
    /// let seg = Segment::builder(&name, SegmentKind::RAW).body_len(64).create()?;
    /// seg.check_mapped()?;
    /// seg.unlink()?;
    /// # Ok::<(), venom_core::Error>(())
    /// ```
    #[inline]
    pub fn check_mapped(&self) -> Result<()> {
        if self.map.is_lost() {
            return Err(self.truncated());
        }
        Ok(())
    }

    /// Like [`Segment::check_mapped`], but first touches the last byte of
    /// the mapping. Any shrink of the file cuts its last page, so this
    /// notices a truncation even in a process that only touches the front of
    /// the segment (a consumer waiting on an empty queue polls a few lines
    /// near the header). Costs one load of a cold line: blocking waits call
    /// it on their liveness interval, not on every poll.
    ///
    /// ```
    /// use venom_core::{Segment, SegmentKind};
    /// let name = format!("doc-probe-{}", std::process::id());
    /// let seg = Segment::builder(&name, SegmentKind::RAW).body_len(1 << 16).create()?;
    /// seg.probe_truncation()?;
    /// seg.unlink()?;
    /// # Ok::<(), venom_core::Error>(())
    /// ```
    pub fn probe_truncation(&self) -> Result<()> {
        let last = self.map.len() - 1;
        // If the file no longer covers the byte, the load below faults and the
        // truncation handler replaces the mapping with zero pages, marked lost.
        // SAFETY: `last` is inside the mapping, which lives as long as `self`;
        // atomic because another process may write the byte concurrently.
        let byte = unsafe { &*(self.map.as_ptr().add(last) as *const core::sync::atomic::AtomicU8) };
        // Relaxed: only the fault matters, not the value.
        byte.load(core::sync::atomic::Ordering::Relaxed);
        self.check_mapped()
    }

    #[cold]
    #[inline(never)]
    fn truncated(&self) -> Error {
        Error::Truncated { name: self.name.as_str().to_owned() }
    }

    /// Whether [`Segment::check_mapped`] can detect a truncation of this
    /// mapping (false only when the process has more than
    /// [`REGISTRY_CAPACITY`](crate::truncation::REGISTRY_CAPACITY) mappings).
    pub fn is_truncation_protected(&self) -> bool {
        self.map.is_protected()
    }

    /// Length of the body in bytes.
    pub fn body_len(&self) -> usize {
        self.map.len() - HEADER_LEN
    }

    /// The segment's name.
    pub fn name(&self) -> &str {
        self.name.as_str()
    }

    /// The segment's kind.
    pub fn kind(&self) -> SegmentKind {
        SegmentKind(self.fields.kind)
    }

    /// How many times this name was reclaimed from a dead creator before this
    /// segment was created.
    pub fn generation(&self) -> u64 {
        self.fields.generation
    }

    /// The process that created this segment.
    pub fn creator(&self) -> ProcessId {
        ProcessId { pid: self.fields.creator_pid, start_time: self.fields.creator_start }
    }

    /// Records `owner` as the process now responsible for this segment (for
    /// example a writer that took a region over from a dead creator). While
    /// the owner is alive, `create` on this name returns `AlreadyExists`
    /// even though the creator is dead.
    pub fn set_owner(&self, owner: ProcessId) {
        // Release: pairs with the Acquire load in `inspect_existing`.
        Segment::header(&self.map).owner.store(owner.pack(), core::sync::atomic::Ordering::Release);
    }

    /// Whether the creator or the recorded owner is alive.
    pub fn is_owned_by_live_process(&self) -> bool {
        let owner = Segment::header(&self.map).owner.load(core::sync::atomic::Ordering::Acquire);
        self.creator().is_alive() || ProcessId::packed_liveness(owner) == crate::Liveness::Alive
    }

    /// Permission bits of the object in `/dev/shm`, if it still exists.
    pub fn mode(&self) -> Option<u32> {
        shm::mode(&self.name.os_id())
    }

    fn header(map: &Mapping) -> &SegmentHeader {
        // SAFETY: callers check `map.len() >= HEADER_LEN`; the mapping is page
        // aligned (so aligned for SegmentHeader) and SegmentHeader is made of
        // atomics, which are valid for any bit pattern.
        unsafe { &*(map.as_ptr() as *const SegmentHeader) }
    }
}

impl Drop for Segment {
    fn drop(&mut self) {
        if self.unlink_on_drop {
            let _ = self.unlink();
        }
    }
}

impl SegmentBuilder {
    /// Body length in bytes (the header is added on top).
    pub fn body_len(mut self, len: usize) -> Self {
        self.body_len = len;
        self
    }

    /// Permission bits for a new segment (default 0600).
    pub fn mode(mut self, mode: u32) -> Self {
        self.mode = mode & 0o777;
        self
    }

    /// How long to wait for a half-initialised segment (default 2 s).
    pub fn init_timeout(mut self, t: Duration) -> Self {
        self.init_timeout = t;
        self
    }

    /// Creates the segment with a zero-filled body.
    pub fn create(self) -> Result<Segment> {
        self.create_with(|_| Ok(()))
    }

    /// Creates the segment and runs `init` on it before publishing it as
    /// READY. Openers never see the body before `init` returns. If `init`
    /// fails, the segment is unlinked and the error returned.
    pub fn create_with(self, init: impl FnOnce(&Segment) -> Result<()>) -> Result<Segment> {
        let name = SegmentName::new(&self.name)?;
        let os = name.os_id();
        let total = HEADER_LEN
            .checked_add(self.body_len)
            .filter(|&t| t <= MAX_SEGMENT_LEN)
            .ok_or_else(|| Error::InvalidConfig(format!("body length {} is too large", self.body_len)))?;
        let mut generation = 0;
        // Each pass either creates, fails, or reclaims one stale object; a
        // handful of passes covers any interleaving with other creators.
        for _ in 0..16 {
            match Mapping::create_exclusive(&os, total) {
                Ok(map) => return self.initialise(name, map, generation, init),
                Err(ShmFailure::Exists) => match self.inspect_existing(&name)? {
                    Existing::Live(pid) => return Err(Error::AlreadyExists { name: self.name, pid }),
                    Existing::Stale(old_gen) => {
                        generation = old_gen.wrapping_add(1);
                        reclaim(&name)?;
                    }
                    Existing::Gone => {}
                },
                Err(f) => return Err(failure(&name, f)),
            }
        }
        Err(Error::Timeout(self.init_timeout))
    }

    fn initialise(
        self,
        name: SegmentName,
        map: Mapping,
        generation: u64,
        init: impl FnOnce(&Segment) -> Result<()>,
    ) -> Result<Segment> {
        let os = name.os_id();
        let me = ProcessId::current();
        let hdr = Segment::header(&map);
        // Record ourselves first so a concurrent creator can tell a live,
        // initialising creator from a dead one.
        hdr.creator_pid.store(me.pid, core::sync::atomic::Ordering::Relaxed);
        hdr.creator_start.store(me.start_time, core::sync::atomic::Ordering::Relaxed);
        hdr.init_state.store(header::INITIALISING, core::sync::atomic::Ordering::Release);
        let fields = HeaderFields {
            magic: header::MAGIC,
            layout_version: header::LAYOUT_VERSION,
            kind: self.kind.0,
            total_len: map.len() as u64,
            body_offset: HEADER_LEN as u64,
            creator_pid: me.pid,
            init_state: header::READY,
            creator_start: me.start_time,
            generation,
            checksum: 0,
        };
        let fields = HeaderFields { checksum: fields.expected_checksum(), ..fields };
        hdr.store_static(&fields);
        let identity = shm::identity(&os);
        let seg = Segment { map, name, fields, identity, unlink_on_drop: false };
        let result = shm::chmod(&os, self.mode).map_err(|f| failure(&seg.name, f)).and_then(|()| init(&seg));
        if let Err(e) = result {
            let _ = seg.unlink();
            return Err(e);
        }
        Segment::header(&seg.map).publish();
        Ok(seg)
    }

    fn inspect_existing(&self, name: &SegmentName) -> Result<Existing> {
        let os = name.os_id();
        let deadline = Deadline::after(self.init_timeout);
        let mut backoff = Backoff::default();
        loop {
            let past = deadline.is_past();
            let map = match map_sized(&os, &deadline, &mut backoff) {
                Ok(Some(m)) => m,
                Ok(None) => return Ok(Existing::Stale(0)),
                Err(ShmFailure::NotFound) => return Ok(Existing::Gone),
                Err(f) => return Err(failure(name, f)),
            };
            if map.len() < HEADER_LEN {
                // A creator sizes its object in one ftruncate to at least a
                // header (0 bytes is `Empty` above), so this is a foreign
                // file: never delete it on a guess.
                return Err(self.stray(name, format!("{} bytes is shorter than a venom header", map.len())));
            }
            let f = Segment::header(&map).load();
            if let Some(reason) = crate::inspect::foreign_reason(&f) {
                return Err(self.stray(name, reason));
            }
            let creator = ProcessId { pid: f.creator_pid, start_time: f.creator_start };
            match f.init_state {
                header::READY => {
                    f.validate(name.as_str(), map.len(), None)?;
                    // Acquire: pairs with the Release in `set_owner`.
                    let owner = Segment::header(&map).owner.load(core::sync::atomic::Ordering::Acquire);
                    if creator.is_alive() {
                        return Ok(Existing::Live(f.creator_pid));
                    }
                    if ProcessId::packed_liveness(owner) == crate::Liveness::Alive {
                        return Ok(Existing::Live(ProcessId::unpack(owner).pid));
                    }
                    return Ok(Existing::Stale(f.generation));
                }
                header::INITIALISING if !creator.is_alive() => return Ok(Existing::Stale(0)),
                header::INITIALISING | header::UNINIT => {
                    if past {
                        return match f.init_state {
                            header::INITIALISING => Ok(Existing::Live(f.creator_pid)),
                            _ => Ok(Existing::Stale(0)),
                        };
                    }
                    backoff.sleep();
                }
                other => return Err(Error::corrupt(name.as_str(), format!("unknown init state {other}"))),
            }
        }
    }

    fn stray(&self, name: &SegmentName, reason: String) -> Error {
        Error::StrayFile {
            name: name.as_str().to_owned(),
            path: format!("{}/{}", crate::inspect::SHM_DIR, name.os_id()),
            reason,
        }
    }

    /// Opens the existing segment, waiting for initialisation up to the
    /// builder's timeout.
    pub fn open(self) -> Result<Segment> {
        let name = SegmentName::new(&self.name)?;
        let os = name.os_id();
        let deadline = Deadline::after(self.init_timeout);
        let mut backoff = Backoff::default();
        loop {
            let past = deadline.is_past();
            let Some(map) = map_sized(&os, &deadline, &mut backoff).map_err(|f| failure(&name, f))? else {
                return Err(Error::corrupt(name.as_str(), "empty object (creator never sized it)"));
            };
            if map.len() < HEADER_LEN {
                if past {
                    return Err(Error::corrupt(
                        name.as_str(),
                        format!("{} bytes is shorter than the header", map.len()),
                    ));
                }
                backoff.sleep();
                continue;
            }
            if map.len() > MAX_SEGMENT_LEN {
                return Err(Error::corrupt(name.as_str(), "mapping larger than MAX_SEGMENT_LEN"));
            }
            let fields = Segment::header(&map).load();
            match fields.init_state {
                header::READY => {
                    fields.validate(name.as_str(), map.len(), Some(self.kind))?;
                    let identity = shm::identity(&os);
                    return Ok(Segment { map, name, fields, identity, unlink_on_drop: false });
                }
                header::INITIALISING | header::UNINIT => {
                    let creator = ProcessId { pid: fields.creator_pid, start_time: fields.creator_start };
                    if fields.init_state == header::INITIALISING && !creator.is_alive() {
                        return Err(Error::corrupt(name.as_str(), "creator died during initialisation"));
                    }
                    if past {
                        return Err(Error::InitTimeout(self.name));
                    }
                    backoff.sleep();
                }
                other => return Err(Error::corrupt(name.as_str(), format!("unknown init state {other}"))),
            }
        }
    }
}

/// Maps `os` once its creator has sized it (it is empty between its
/// `shm_open` and its `ftruncate`), retrying with `backoff`; `Ok(None)` if it
/// is still empty when `deadline` has passed.
fn map_sized(os: &str, deadline: &Deadline, backoff: &mut Backoff) -> Result<Option<Mapping>, ShmFailure> {
    loop {
        let past = deadline.is_past();
        match Mapping::open(os) {
            Ok(m) => return Ok(Some(m)),
            Err(ShmFailure::Empty) if past => return Ok(None),
            Err(ShmFailure::Empty) => backoff.sleep(),
            Err(f) => return Err(f),
        }
    }
}

/// Unlinks a stale object, unless another process reclaimed it first.
fn reclaim(name: &SegmentName) -> Result<()> {
    let os = name.os_id();
    let lock = match ReclaimLock::acquire(&os, 1000) {
        Ok(l) => l,
        Err(ShmFailure::NotFound) => return Ok(()),
        Err(f) => return Err(failure(name, f)),
    };
    if lock.still_bound(&os) {
        match shm::unlink(&os) {
            Ok(()) | Err(ShmFailure::NotFound) => {}
            Err(f) => return Err(failure(name, f)),
        }
    }
    Ok(())
}

fn failure(name: &SegmentName, f: ShmFailure) -> Error {
    match f {
        ShmFailure::NotFound => Error::NotFound(name.as_str().to_owned()),
        ShmFailure::Exists => Error::AlreadyExists { name: name.as_str().to_owned(), pid: 0 },
        ShmFailure::Empty => Error::corrupt(name.as_str(), "empty object"),
        ShmFailure::Os(op, source) => Error::Os { op, source },
    }
}

/// Sleep-based backoff for slow paths (open/create), 100 µs doubling to 10 ms.
#[derive(Default)]
struct Backoff(u32);

impl Backoff {
    fn sleep(&mut self) {
        let us = (100u64 << self.0.min(7)).min(10_000);
        self.0 += 1;
        std::thread::sleep(Duration::from_micros(us));
    }
}
