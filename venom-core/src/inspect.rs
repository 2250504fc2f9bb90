//! Read-only inspection of the venom objects in `/dev/shm`, for operators
//! and tools (the `venom` command is built on it).
//!
//! Inspection never maps a segment and never writes a byte: headers are read
//! with `pread(2)` from a read-only file descriptor, so it
//! * does not wait for a half-initialised segment to become READY (it
//!   reports [`Status::Initialising`] instead),
//! * cannot take a fault if a file is truncated under it (a short read is
//!   reported as such),
//! * does not count as a client, take a lock or bump a counter.
//!
//! Every file named `venom.*` is reported. Files that are not venom segments
//! (wrong magic, shorter than a header) are [`Status::Stray`] and segments
//! whose header fails validation are [`Status::Corrupt`], each with the
//! reason; neither is ever removed automatically. Symlinks are not followed
//! and FIFOs are not opened blocking ([`Status::Unreadable`] /
//! [`Status::Stray`]). [`remove`] deletes one
//! object by name, refusing one with a live owner unless forced, and
//! [`sweep_stale`] deletes every venom segment whose owner is provably dead.
//!
//! ```
//! use venom_core::{Segment, SegmentKind, inspect};
//! let name = format!("doc-inspect-{}", std::process::id());
//! let seg = Segment::builder(&name, SegmentKind::RAW).body_len(4096).create()?;
//! let info = inspect::inspect(&name)?;
//! assert_eq!(info.status, inspect::Status::Ready);
//! assert!(info.is_live());
//! assert!(inspect::list()?.iter().any(|i| i.name == name));
//! seg.unlink()?;
//! # Ok::<(), venom_core::Error>(())
//! ```

use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use crate::error::{Error, Result};
use crate::header::{self, HEADER_LEN, HeaderFields, MAGIC, SegmentKind};
use crate::name::OS_PREFIX;
use crate::process::{Liveness, ProcessId};

/// Directory where Linux exposes POSIX shared-memory objects.
pub const SHM_DIR: &str = "/dev/shm";
/// Byte offset of the packed owner word in the segment header.
const OWNER_OFFSET: usize = 64;
/// Largest [`read_bytes`] request (16 MiB): a dump is for eyes and scripts,
/// not for copying segments.
pub const MAX_READ: usize = 16 << 20;
/// An empty or all-zero object younger than this may be a creator between
/// `shm_open` and its first header store; [`sweep_stale`] leaves it alone.
pub const UNINIT_GRACE: Duration = Duration::from_secs(10);

/// What a `venom.*` file is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Status {
    /// A valid, published venom segment.
    Ready,
    /// A venom segment whose creator has not published it yet (or died
    /// before doing so; see [`SegmentInfo::is_live`]).
    Initialising,
    /// Empty or all-zero: a creator that died (or is still) between
    /// `shm_open` and writing the header.
    Uninitialised,
    /// Carries the venom magic but fails validation.
    Corrupt(String),
    /// Not a venom segment at all (a foreign file under our prefix).
    Stray(String),
    /// Cannot be opened for reading (another user's segment, or a symlink,
    /// which inspection does not follow); the reason is the OS error.
    Unreadable(String),
}

impl Status {
    /// One lowercase word for tables and JSON.
    pub fn as_str(&self) -> &'static str {
        match self {
            Status::Ready => "ready",
            Status::Initialising => "initialising",
            Status::Uninitialised => "uninitialised",
            Status::Corrupt(_) => "corrupt",
            Status::Stray(_) => "stray",
            Status::Unreadable(_) => "unreadable",
        }
    }

    /// Why the file is stray or corrupt.
    pub fn reason(&self) -> Option<&str> {
        match self {
            Status::Corrupt(r) | Status::Stray(r) | Status::Unreadable(r) => Some(r),
            _ => None,
        }
    }
}

/// Everything inspection learns about one `venom.*` object.
#[derive(Clone, Debug)]
pub struct SegmentInfo {
    /// The venom name (the file name without `venom.`).
    pub name: String,
    /// Full path of the object.
    pub path: PathBuf,
    /// File length in bytes (header + body for a segment).
    pub file_len: u64,
    /// Permission bits.
    pub mode: u32,
    /// Owning user id.
    pub uid: u32,
    /// Creation (birth) time of the file from `statx`, or its status
    /// change time on filesystems that do not record one.
    pub created: Option<SystemTime>,
    /// The decoded header, when the file is at least a header long.
    pub header: Option<HeaderFields>,
    /// Process recorded as owner after a take-over (0 in the header = none).
    pub owner: Option<ProcessId>,
    /// Liveness of the creator recorded in the header (None without one).
    pub creator_liveness: Option<Liveness>,
    /// Liveness of the recorded owner.
    pub owner_liveness: Option<Liveness>,
    /// What the file is.
    pub status: Status,
    /// `(device, inode)` of the file that was inspected.
    pub identity: (u64, u64),
}

impl SegmentInfo {
    /// The segment kind, when the header carries the venom magic.
    pub fn kind(&self) -> Option<SegmentKind> {
        self.venom_header().map(|h| SegmentKind(h.kind))
    }

    /// The creating process, when the header names one.
    pub fn creator(&self) -> Option<ProcessId> {
        let h = self.header.as_ref()?;
        (h.creator_pid != 0).then_some(ProcessId { pid: h.creator_pid, start_time: h.creator_start })
    }

    /// Generation (times the name was reclaimed before this segment).
    pub fn generation(&self) -> Option<u64> {
        self.venom_header().map(|h| h.generation)
    }

    /// Whether a live process (creator or recorded owner) holds the
    /// segment. Always false for stray, corrupt and uninitialised files.
    pub fn is_live(&self) -> bool {
        matches!(self.status, Status::Ready | Status::Initialising)
            && (self.creator_liveness == Some(Liveness::Alive) || self.owner_liveness == Some(Liveness::Alive))
    }

    /// The pid to show as the segment's owner: the live recorded owner if
    /// there is one, else the creator.
    pub fn owner_pid(&self) -> Option<u32> {
        match (self.owner, self.owner_liveness) {
            (Some(o), Some(Liveness::Alive)) => Some(o.pid),
            _ => self.creator().map(|c| c.pid),
        }
    }

    /// Whether the segment is a provably dead venom segment: a valid or
    /// initialising header whose creator and owner are both dead, or an
    /// uninitialised object older than [`UNINIT_GRACE`].
    pub fn is_stale(&self) -> bool {
        match self.status {
            Status::Ready | Status::Initialising => !self.is_live(),
            Status::Uninitialised => self.age().is_some_and(|a| a >= UNINIT_GRACE),
            Status::Corrupt(_) | Status::Stray(_) | Status::Unreadable(_) => false,
        }
    }

    /// Time since [`SegmentInfo::created`].
    pub fn age(&self) -> Option<Duration> {
        self.created.and_then(|c| SystemTime::now().duration_since(c).ok())
    }

    fn venom_header(&self) -> Option<&HeaderFields> {
        self.header.as_ref().filter(|h| h.magic == MAGIC)
    }
}

/// Lowercase name of a segment kind (`"region"`, `"channel"`, ...), or
/// `None` for a kind this build does not know.
pub fn kind_name(kind: SegmentKind) -> Option<&'static str> {
    Some(match kind {
        SegmentKind::SEQ_REGION => "region",
        SegmentKind::CHANNEL => "channel",
        SegmentKind::COLLECTIONS => "collections",
        SegmentKind::KV_CACHE => "kv",
        SegmentKind::MIRROR => "mirror",
        SegmentKind::RAW => "raw",
        _ => return None,
    })
}

/// Why a header read by an opener means "not a venom segment", if it does.
///
/// A creator stores the magic exactly once, between marking itself
/// INITIALISING and publishing READY, into a zero-filled object. So a
/// non-zero foreign magic, or a zero magic with a state no creator ever
/// writes before the magic (READY or an unknown value), can never be a
/// segment on its way up. `fields` must come from a file at least
/// [`HEADER_LEN`] bytes long.
pub(crate) fn foreign_reason(fields: &HeaderFields) -> Option<String> {
    if fields.magic == MAGIC {
        return None;
    }
    if fields.magic == 0 && matches!(fields.init_state, header::UNINIT | header::INITIALISING) {
        return None;
    }
    Some(format!("no venom magic (first 8 bytes {:#018x})", fields.magic))
}

/// Every `venom.*` object in [`SHM_DIR`], sorted by name. Files that vanish
/// while being listed are skipped; unreadable ones are reported as stray.
pub fn list() -> Result<Vec<SegmentInfo>> {
    list_in(Path::new(SHM_DIR))
}

/// [`list`] for another directory (tests, containers with a bind-mounted
/// `/dev/shm`).
pub fn list_in(dir: &Path) -> Result<Vec<SegmentInfo>> {
    let entries = std::fs::read_dir(dir).map_err(|source| Error::Os { op: "read /dev/shm", source })?;
    let mut out = Vec::new();
    for entry in entries.flatten() {
        let file_name = entry.file_name();
        let Some(name) = file_name.to_str().and_then(|f| f.strip_prefix(OS_PREFIX)) else { continue };
        if name.is_empty() {
            continue;
        }
        match inspect_path(name, &entry.path()) {
            Ok(info) => out.push(info),
            Err(Error::NotFound(_)) => {}
            Err(e) => return Err(e),
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// Inspects the object behind `name`. Fails with [`Error::NotFound`] if
/// there is none and [`Error::InvalidName`] for a name that cannot be a file
/// in [`SHM_DIR`]. Stray names that `Segment` would reject (spaces, ...) are
/// accepted so that whatever [`list`] shows can be inspected and removed.
pub fn inspect(name: &str) -> Result<SegmentInfo> {
    inspect_path(name, &path_of(name)?)
}

/// Path of `name` under [`SHM_DIR`], for any name that is one file name.
fn path_of(name: &str) -> Result<PathBuf> {
    let bad = |reason| Err(Error::InvalidName { name: name.to_owned(), reason });
    if name.is_empty() {
        return bad("empty");
    }
    if name.contains('/') || name.contains('\0') {
        return bad("contains '/' or NUL");
    }
    if name.len() + OS_PREFIX.len() > 255 {
        return bad("longer than a file name");
    }
    Ok(Path::new(SHM_DIR).join(format!("{OS_PREFIX}{name}")))
}

fn inspect_path(name: &str, path: &Path) -> Result<SegmentInfo> {
    let file = match open_read_only(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(Error::NotFound(name.to_owned())),
        Err(e) => {
            // Not ours to read (another user's file): report it, don't fail.
            let meta = std::fs::symlink_metadata(path).map_err(|_| Error::NotFound(name.to_owned()))?;
            return Ok(SegmentInfo::from_file(name, path, &meta, Status::Unreadable(e.to_string())));
        }
    };
    let mut info = inspect_file(name, path, &file)?;
    // The kernel copy in pread is not ordered against a creator's stores; a
    // header caught mid-initialisation can look corrupt for an instant. Ask
    // again before calling it corrupt.
    if matches!(info.status, Status::Corrupt(_)) {
        std::thread::sleep(Duration::from_millis(2));
        info = inspect_file(name, path, &file)?;
    }
    Ok(info)
}

impl SegmentInfo {
    /// What the file's metadata alone tells (no header read yet).
    fn from_file(name: &str, path: &Path, meta: &std::fs::Metadata, status: Status) -> SegmentInfo {
        SegmentInfo {
            name: name.to_owned(),
            path: path.to_owned(),
            file_len: meta.len(),
            mode: meta.mode() & 0o7777,
            uid: meta.uid(),
            created: created(meta),
            header: None,
            owner: None,
            creator_liveness: None,
            owner_liveness: None,
            status,
            identity: (meta.dev(), meta.ino()),
        }
    }
}

/// Opens for reading without following a symlink and without blocking on
/// a FIFO (both are reported, never read through).
fn open_read_only(path: &Path) -> std::io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    File::options().read(true).custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK).open(path)
}

/// Inspects an open file (the fd decides the identity, not the path).
fn inspect_file(name: &str, path: &Path, file: &File) -> Result<SegmentInfo> {
    let meta = file.metadata().map_err(|source| Error::Os { op: "fstat", source })?;
    let mut info = SegmentInfo::from_file(name, path, &meta, Status::Uninitialised);
    if !meta.is_file() {
        info.status = Status::Stray("not a regular file".into());
        return Ok(info);
    }
    let mut buf = [0u8; HEADER_LEN];
    let got = read_full_at(file, &mut buf, 0).map_err(|source| Error::Os { op: "read header", source })?;
    info.status = classify(&buf[..got], meta.len());
    if info.status == Status::Uninitialised {
        return Ok(info);
    }
    // `None` when the file is shorter than a header.
    info.header = HeaderFields::from_bytes(&buf[..got]);
    let Some(fields) = info.header.filter(|_| !matches!(info.status, Status::Stray(_))) else { return Ok(info) };
    let creator = ProcessId { pid: fields.creator_pid, start_time: fields.creator_start };
    info.creator_liveness = (fields.creator_pid != 0).then(|| creator.liveness());
    let owner = u64::from_le_bytes(buf[OWNER_OFFSET..OWNER_OFFSET + 8].try_into().unwrap_or([0; 8]));
    if owner != 0 {
        info.owner = Some(ProcessId::unpack(owner));
        info.owner_liveness = Some(ProcessId::packed_liveness(owner));
    }
    Ok(info)
}

/// What the first bytes of a file say it is, for a file of `file_len`
/// bytes: the pure part of inspection (no liveness checks), used by
/// [`inspect`] and by the `inspect_classify` fuzz target. `header` is the
/// start of the file (at most [`HEADER_LEN`] bytes are looked at; fewer
/// means the file ended). Never panics.
///
/// ```
/// use venom_core::inspect::{Status, classify};
/// assert_eq!(classify(&[], 0), Status::Uninitialised);
/// assert!(matches!(classify(b"#!/bin/sh", 9), Status::Stray(_)));
/// assert_eq!(classify(&[0; 128], 4096), Status::Uninitialised);
/// ```
pub fn classify(header: &[u8], file_len: u64) -> Status {
    let header = &header[..header.len().min(HEADER_LEN)];
    if header.is_empty() {
        return Status::Uninitialised;
    }
    if header.len() < HEADER_LEN {
        return Status::Stray(format!("{} bytes is shorter than a venom header", header.len()));
    }
    if header.iter().all(|&b| b == 0) {
        return Status::Uninitialised;
    }
    let Some(fields) = HeaderFields::from_bytes(header) else { return Status::Uninitialised };
    if let Some(reason) = foreign_reason(&fields) {
        return Status::Stray(reason);
    }
    match fields.init_state {
        header::UNINIT | header::INITIALISING => Status::Initialising,
        _ => match fields.validate("<file>", usize::try_from(file_len).unwrap_or(usize::MAX), None) {
            Ok(()) => Status::Ready,
            Err(Error::Corrupt { reason, .. }) => Status::Corrupt(reason),
            Err(Error::VersionMismatch { expected, found, .. }) => {
                Status::Corrupt(format!("layout version {found}, this build reads {expected}"))
            }
            Err(e) => Status::Corrupt(e.to_string()),
        },
    }
}

/// Birth time if the filesystem records it (tmpfs does, through statx);
/// otherwise ctime, which writes through a mapping can move forward.
fn created(meta: &std::fs::Metadata) -> Option<SystemTime> {
    if let Ok(t) = meta.created() {
        return Some(t);
    }
    let secs = u64::try_from(meta.ctime()).ok()?;
    let nanos = u32::try_from(meta.ctime_nsec()).unwrap_or(0);
    SystemTime::UNIX_EPOCH.checked_add(Duration::new(secs, nanos.min(999_999_999)))
}

/// `pread` until `buf` is full or end of file; returns the bytes read.
fn read_full_at(file: &File, buf: &mut [u8], offset: u64) -> std::io::Result<usize> {
    let mut done = 0;
    while done < buf.len() {
        match file.read_at(&mut buf[done..], offset + done as u64) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}

/// Reads up to `len` bytes at `offset` of the object behind `name` (header
/// included: offset 0 is the magic), with `pread`, so it works on stray and
/// corrupt files too and never faults. Returns fewer bytes at end of file.
/// Fails with [`Error::OutOfBounds`] for an offset past the end and
/// [`Error::InvalidConfig`] for `len` above [`MAX_READ`].
pub fn read_bytes(name: &str, offset: u64, len: usize) -> Result<Vec<u8>> {
    if len > MAX_READ {
        return Err(Error::InvalidConfig(format!("read of {len} bytes exceeds the maximum of {MAX_READ}")));
    }
    let path = path_of(name)?;
    let file = open_read_only(&path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => Error::NotFound(name.to_owned()),
        _ => Error::Os { op: "open segment for reading", source: e },
    })?;
    let size = file.metadata().map_err(|source| Error::Os { op: "fstat", source })?.len();
    if offset > size {
        return Err(Error::OutOfBounds {
            offset: usize::try_from(offset).unwrap_or(usize::MAX),
            len,
            size: usize::try_from(size).unwrap_or(usize::MAX),
        });
    }
    let want = usize::try_from(size - offset).unwrap_or(usize::MAX).min(len);
    let mut buf = vec![0u8; want];
    let got = read_full_at(&file, &mut buf, offset).map_err(|source| Error::Os { op: "read segment", source })?;
    buf.truncate(got);
    Ok(buf)
}

/// What [`remove`] did.
#[derive(Clone, Debug)]
pub struct Removed {
    /// The object as inspected (under the lock) just before unlinking.
    pub info: SegmentInfo,
    /// It had a live owner and was removed because `force` was set.
    pub forced: bool,
}

/// Unlinks the object behind `name`.
///
/// A segment with a live creator or owner is refused with
/// [`Error::InUse`] unless `force` is set (processes that have it mapped
/// keep their mapping; new openers will not find it). Dead, uninitialised,
/// corrupt and stray objects are removed.
///
/// The decision is taken under the same `flock` that
/// [`SegmentBuilder::create`](crate::SegmentBuilder::create) holds while
/// reclaiming a stale name, on the very inode that is then unlinked (checked
/// with its device and inode numbers), so `remove` never deletes a segment
/// created after it looked.
pub fn remove(name: &str, force: bool) -> Result<Removed> {
    let path = path_of(name)?;
    let file = match open_read_only(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(Error::NotFound(name.to_owned())),
        // Unreadable (another user's file): only unlinking can tell.
        Err(_) => return remove_unreadable(name, &path),
    };
    lock(&file)?;
    let info = inspect_file(name, &path, &file)?;
    let bound = std::fs::symlink_metadata(&path).map(|m| (m.dev(), m.ino())).ok();
    if bound != Some(info.identity) {
        // Replaced (or removed) since we opened it: someone else acted first.
        return Err(Error::NotFound(name.to_owned()));
    }
    let live = info.is_live();
    if live && !force {
        return Err(Error::InUse { name: name.to_owned(), pid: info.owner_pid().unwrap_or(0) });
    }
    match std::fs::remove_file(&path) {
        Ok(()) => Ok(Removed { info, forced: live }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(Error::NotFound(name.to_owned())),
        Err(source) => Err(Error::Os { op: "unlink segment", source }),
    }
    // `file` (and the lock) is released here, after the unlink.
}

fn remove_unreadable(name: &str, path: &Path) -> Result<Removed> {
    let info = inspect_path(name, path)?;
    std::fs::remove_file(path).map_err(|source| Error::Os { op: "unlink segment", source })?;
    Ok(Removed { info, forced: false })
}

/// Takes the reclaim `flock`, trying for up to a second (a reclaimer holds
/// it only for a few syscalls).
fn lock(file: &File) -> Result<()> {
    for _ in 0..1000 {
        // SAFETY: flock on a valid, owned file descriptor.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if rc == 0 {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    Err(Error::Os { op: "flock segment", source: std::io::Error::from_raw_os_error(libc::EWOULDBLOCK) })
}

/// Removes every provably dead venom segment ([`SegmentInfo::is_stale`])
/// whose name starts with `prefix` (`""` for all). Stray and corrupt files
/// are left alone: remove them by name. Returns what was removed; objects
/// that changed or vanished meanwhile are skipped.
pub fn sweep_stale(prefix: &str) -> Result<Vec<Removed>> {
    let mut removed = Vec::new();
    for info in list()?.into_iter().filter(|i| i.name.starts_with(prefix) && i.is_stale()) {
        match remove(&info.name, false) {
            // `remove` re-inspected under the lock; only count what is
            // still stale there.
            Ok(r) => removed.push(r),
            Err(Error::NotFound(_) | Error::InUse { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(magic: u64, init_state: u32) -> HeaderFields {
        HeaderFields { magic, init_state, ..HeaderFields::default() }
    }

    #[test]
    fn foreign_reason_only_for_impossible_headers() {
        assert!(foreign_reason(&fields(MAGIC, header::READY)).is_none());
        assert!(foreign_reason(&fields(0, header::UNINIT)).is_none());
        assert!(foreign_reason(&fields(0, header::INITIALISING)).is_none());
        assert!(foreign_reason(&fields(0, header::READY)).is_some());
        assert!(foreign_reason(&fields(0xEEEE, header::UNINIT)).is_some());
        assert!(foreign_reason(&fields(0, 0xEEEE_EEEE)).is_some());
    }

    #[test]
    fn bad_names_and_missing_objects() {
        assert!(matches!(inspect(""), Err(Error::InvalidName { .. })));
        assert!(matches!(inspect("../etc"), Err(Error::InvalidName { .. })));
        assert!(matches!(inspect("no-such-venom-object-xyz"), Err(Error::NotFound(_))));
        assert!(matches!(remove("no-such-venom-object-xyz", false), Err(Error::NotFound(_))));
        assert!(matches!(read_bytes("x", 0, MAX_READ + 1), Err(Error::InvalidConfig(_))));
    }

    proptest::proptest! {
        #[test]
        fn classify_never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..300), len: u64) {
            let _ = classify(&bytes, len);
        }
    }
}
