//! The only module that touches the `shared_memory` crate.
//!
//! `shared_memory` 0.12 is unmaintained and has known gaps (fixed 0600 mode,
//! leaks on crash, `!Send` handles, unlink-on-drop by default). This wrapper
//! keeps it to what it does well, `shm_open` + `ftruncate` + `mmap`, and adds
//! what it lacks: chmod, inode identity, and a lock used to reclaim a stale
//! object without racing another reclaimer. Everything above this module
//! sees only [`Mapping`].

use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{MetadataExt, PermissionsExt};

use shared_memory::{Shmem, ShmemConf, ShmemError};

use crate::truncation;

/// Where Linux exposes POSIX shared-memory objects as files.
const SHM_DIR: &str = "/dev/shm";

/// A failure from the wrapped crate or the OS, before it is given a name.
#[derive(Debug)]
pub(crate) enum ShmFailure {
    /// `O_EXCL` creation found an existing object.
    Exists,
    /// No object with this id.
    NotFound,
    /// The object exists but has length 0 (its creator has not sized it
    /// yet, or died before doing so); it cannot be mapped.
    Empty,
    /// Anything else, with the errno when known.
    Os(&'static str, std::io::Error),
}

/// A `MAP_SHARED` read-write mapping of a POSIX shared-memory object.
pub(crate) struct Mapping {
    /// Declared first so it is dropped (unregistered) before `shmem` unmaps.
    guard: truncation::Guard,
    shmem: Shmem,
    ptr: *mut u8,
    len: usize,
}

// SAFETY: `Shmem` is `!Send`/`!Sync` only because it holds a raw pointer. The
// mapping itself is process-wide memory that stays valid until `Shmem` is
// dropped (munmap); every access to its contents goes through atomics or the
// `atomic_copy` module, so sharing the handle between threads is sound.
unsafe impl Send for Mapping {}
// SAFETY: see the `Send` impl above; `&Mapping` only hands out the pointer.
unsafe impl Sync for Mapping {}

impl Mapping {
    /// Creates a new object of `len` bytes with `O_CREAT|O_EXCL`, mode 0600.
    /// The memory is zero-filled by the kernel.
    pub(crate) fn create_exclusive(os_id: &str, len: usize) -> Result<Mapping, ShmFailure> {
        match ShmemConf::new().os_id(slash(os_id)).size(len).create() {
            Ok(mut shmem) => {
                // We manage unlinking ourselves (see `unlink`).
                shmem.set_owner(false);
                Ok(Mapping::wrap(shmem))
            }
            Err(ShmemError::MappingIdExists) => Err(ShmFailure::Exists),
            Err(e) => Err(ShmFailure::Os("shm create", errno_of(&e))),
        }
    }

    /// Opens an existing object and maps its current length.
    pub(crate) fn open(os_id: &str) -> Result<Mapping, ShmFailure> {
        if std::fs::metadata(path_of(os_id)).is_ok_and(|m| m.len() == 0) {
            return Err(ShmFailure::Empty);
        }
        match ShmemConf::new().os_id(slash(os_id)).open() {
            Ok(mut shmem) => {
                shmem.set_owner(false);
                Ok(Mapping::wrap(shmem))
            }
            Err(ShmemError::MapOpenFailed(e)) if e as i32 == libc::ENOENT => Err(ShmFailure::NotFound),
            Err(e) => Err(ShmFailure::Os("shm open", errno_of(&e))),
        }
    }

    fn wrap(shmem: Shmem) -> Mapping {
        let ptr = shmem.as_ptr();
        let len = shmem.len();
        let guard = truncation::register(ptr, len);
        Mapping { guard, shmem, ptr, len }
    }

    /// Whether the file was truncated under this mapping and the `SIGBUS`
    /// handler replaced it with zero pages (see [`truncation`]).
    #[inline]
    pub(crate) fn is_lost(&self) -> bool {
        self.guard.is_lost()
    }

    /// Whether a truncation would be caught (the registry had room).
    pub(crate) fn is_protected(&self) -> bool {
        self.guard.is_protected()
    }

    /// Start of the mapping (page aligned).
    pub(crate) fn as_ptr(&self) -> *mut u8 {
        self.ptr
    }

    /// Length of the mapping in bytes, as the kernel reported it.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// The os id this mapping was opened with.
    #[allow(dead_code)]
    pub(crate) fn os_id(&self) -> &str {
        self.shmem.get_os_id()
    }
}

fn slash(os_id: &str) -> String {
    format!("/{os_id}")
}

fn errno_of(e: &ShmemError) -> std::io::Error {
    match e {
        ShmemError::MapCreateFailed(n) | ShmemError::MapOpenFailed(n) | ShmemError::UnknownOsError(n) => {
            std::io::Error::from_raw_os_error(*n as i32)
        }
        other => std::io::Error::other(other.to_string()),
    }
}

fn path_of(os_id: &str) -> String {
    format!("{SHM_DIR}/{os_id}")
}

/// Removes the name. Existing mappings stay valid until unmapped.
pub(crate) fn unlink(os_id: &str) -> Result<(), ShmFailure> {
    match std::fs::remove_file(path_of(os_id)) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(ShmFailure::NotFound),
        Err(e) => Err(ShmFailure::Os("shm unlink", e)),
    }
}

/// Sets the permission bits of the object.
pub(crate) fn chmod(os_id: &str, mode: u32) -> Result<(), ShmFailure> {
    std::fs::set_permissions(path_of(os_id), std::fs::Permissions::from_mode(mode))
        .map_err(|e| ShmFailure::Os("shm chmod", e))
}

/// Permission bits of the object, if it exists.
pub(crate) fn mode(os_id: &str) -> Option<u32> {
    std::fs::metadata(path_of(os_id)).ok().map(|m| m.permissions().mode() & 0o7777)
}

/// Identity (device, inode) of the object currently bound to the name.
pub(crate) fn identity(os_id: &str) -> Option<(u64, u64)> {
    std::fs::metadata(path_of(os_id)).ok().map(|m| (m.dev(), m.ino()))
}

/// An exclusive `flock` on one shm object, held while deciding whether to
/// reclaim it. Two reclaimers of the same stale object serialise here; the
/// loser then sees that the name points to a different inode and backs off.
pub(crate) struct ReclaimLock {
    file: File,
}

impl ReclaimLock {
    /// Opens the object currently bound to `os_id` and locks it, giving up
    /// after `budget` tries spaced 1 ms apart (another reclaimer holds the
    /// lock only for a few syscalls).
    pub(crate) fn acquire(os_id: &str, budget: u32) -> Result<ReclaimLock, ShmFailure> {
        let file = File::options().read(true).open(path_of(os_id)).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                ShmFailure::NotFound
            } else {
                ShmFailure::Os("open for reclaim", e)
            }
        })?;
        for _ in 0..budget {
            // SAFETY: flock on a valid, owned file descriptor.
            let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
            if rc == 0 {
                return Ok(ReclaimLock { file });
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        Err(ShmFailure::Os("flock for reclaim", std::io::Error::from_raw_os_error(libc::EWOULDBLOCK)))
    }

    /// Whether the name still refers to the locked object.
    pub(crate) fn still_bound(&self, os_id: &str) -> bool {
        match (self.file.metadata(), identity(os_id)) {
            (Ok(m), Some(id)) => (m.dev(), m.ino()) == id,
            _ => false,
        }
    }
}
