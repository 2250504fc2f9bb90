//! The header at the start of every venom segment.
//!
//! ```text
//! offset  field            notes
//!      0  magic            b"VENOMSEG" as little-endian u64
//!      8  layout_version   LAYOUT_VERSION
//!     12  kind             SegmentKind
//!     16  total_len        header + body, must equal the mapping length
//!     24  body_offset      HEADER_LEN
//!     32  creator_pid      \ ProcessId of the creator; written first, so a
//!     40  creator_start    / half-initialised segment can be attributed
//!     36  init_state       UNINIT -> INITIALISING -> READY (Release)
//!     48  generation       bumped each time the name is reclaimed
//!     56  checksum         FNV-1a over the static fields above
//!     64  owner            packed ProcessId of a process that took over (0 = none)
//!     72  reserved         zero
//!    128  body
//! ```
//!
//! All fields are atomics because an opener may read them while the creator
//! is still writing them; the `init_state` Release/Acquire pair is what
//! publishes the rest. Validation works on a plain copy ([`HeaderFields`]) so
//! it can be fuzzed from raw bytes.

use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use crate::error::{Error, Result};
// Words of blocks inside a segment body: loom atomics in loom builds.
use crate::loom::sync as body;

/// `b"VENOMSEG"` read as a little-endian `u64`.
pub const MAGIC: u64 = u64::from_le_bytes(*b"VENOMSEG");
/// Bumped on any incompatible change to any segment layout in this crate
/// family.
pub const LAYOUT_VERSION: u32 = 1;
/// Size of the header; the body starts here (two cache lines, so the body is
/// 128-byte aligned).
pub const HEADER_LEN: usize = 128;

/// `init_state`: zero-filled, nothing written yet.
pub const UNINIT: u32 = 0;
/// `init_state`: the creator has recorded itself and is initialising.
pub const INITIALISING: u32 = 1;
/// `init_state`: header and body are initialised; published with Release.
pub const READY: u32 = 2;

/// What a segment holds. Stored in the header and checked on open.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SegmentKind(pub u32);

impl SegmentKind {
    /// A bare [`SeqRegion`](crate::SeqRegion).
    pub const SEQ_REGION: SegmentKind = SegmentKind(1);
    /// A daemon/shell channel.
    pub const CHANNEL: SegmentKind = SegmentKind(2);
    /// A `venom-collections` segment with named objects.
    pub const COLLECTIONS: SegmentKind = SegmentKind(3);
    /// A `venom-collections` key-value cache.
    pub const KV_CACHE: SegmentKind = SegmentKind(4);
    /// A `venom-net` mirror region.
    pub const MIRROR: SegmentKind = SegmentKind(5);
    /// Raw segments used by tests and tools.
    pub const RAW: SegmentKind = SegmentKind(0xFFFF);
}

/// The header as it lives in shared memory.
#[repr(C, align(64))]
pub(crate) struct SegmentHeader {
    pub(crate) magic: AtomicU64,
    pub(crate) layout_version: AtomicU32,
    pub(crate) kind: AtomicU32,
    pub(crate) total_len: AtomicU64,
    pub(crate) body_offset: AtomicU64,
    pub(crate) creator_pid: AtomicU32,
    pub(crate) init_state: AtomicU32,
    pub(crate) creator_start: AtomicU64,
    pub(crate) generation: AtomicU64,
    pub(crate) checksum: AtomicU64,
    /// Packed [`ProcessId`](crate::ProcessId) of a process that took the
    /// segment over from its creator (0 = none). Not checksummed: it changes.
    pub(crate) owner: AtomicU64,
    _reserved: [AtomicU64; 7],
}

const _: () = assert!(core::mem::size_of::<SegmentHeader>() == HEADER_LEN);

/// A plain copy of the header fields, for validation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HeaderFields {
    /// Magic number.
    pub magic: u64,
    /// Layout version.
    pub layout_version: u32,
    /// Segment kind.
    pub kind: u32,
    /// Total length (header + body).
    pub total_len: u64,
    /// Offset of the body.
    pub body_offset: u64,
    /// Creator pid.
    pub creator_pid: u32,
    /// Init state.
    pub init_state: u32,
    /// Creator start time.
    pub creator_start: u64,
    /// Generation.
    pub generation: u64,
    /// Checksum over the static fields.
    pub checksum: u64,
}

impl HeaderFields {
    /// Decodes the first [`HEADER_LEN`] bytes. Returns `None` if `bytes` is
    /// shorter than that.
    pub fn from_bytes(bytes: &[u8]) -> Option<HeaderFields> {
        let b = bytes.get(..HEADER_LEN)?;
        let u64_at = |o: usize| u64::from_le_bytes(b[o..o + 8].try_into().unwrap_or([0; 8]));
        let u32_at = |o: usize| u32::from_le_bytes(b[o..o + 4].try_into().unwrap_or([0; 4]));
        Some(HeaderFields {
            magic: u64_at(0),
            layout_version: u32_at(8),
            kind: u32_at(12),
            total_len: u64_at(16),
            body_offset: u64_at(24),
            creator_pid: u32_at(32),
            init_state: u32_at(36),
            creator_start: u64_at(40),
            generation: u64_at(48),
            checksum: u64_at(56),
        })
    }

    /// The checksum the static fields should carry.
    pub fn expected_checksum(&self) -> u64 {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for word in [
            self.magic,
            u64::from(self.layout_version) | (u64::from(self.kind) << 32),
            self.total_len,
            self.body_offset,
            u64::from(self.creator_pid),
            self.creator_start,
            self.generation,
        ] {
            for byte in word.to_le_bytes() {
                h ^= u64::from(byte);
                h = h.wrapping_mul(0x0000_0100_0000_01b3);
            }
        }
        h
    }

    /// Checks every field against the real mapping length. `name` is used in
    /// error messages only. Never panics, whatever the input.
    pub fn validate(&self, name: &str, mapping_len: usize, expected: Option<SegmentKind>) -> Result<()> {
        if self.magic != MAGIC {
            return Err(Error::corrupt(name, format!("bad magic {:#018x}", self.magic)));
        }
        if self.layout_version != LAYOUT_VERSION {
            return Err(Error::VersionMismatch {
                name: name.to_owned(),
                expected: LAYOUT_VERSION,
                found: self.layout_version,
            });
        }
        if self.init_state != READY {
            return Err(Error::corrupt(name, format!("init state {} is not READY", self.init_state)));
        }
        if self.body_offset != HEADER_LEN as u64 {
            return Err(Error::corrupt(name, format!("body offset {} != {HEADER_LEN}", self.body_offset)));
        }
        if self.total_len < HEADER_LEN as u64 {
            return Err(Error::corrupt(name, format!("total length {} < header", self.total_len)));
        }
        if self.total_len != mapping_len as u64 {
            return Err(Error::corrupt(
                name,
                format!("header says {} bytes but the mapping has {mapping_len}", self.total_len),
            ));
        }
        if self.checksum != self.expected_checksum() {
            return Err(Error::corrupt(name, "header checksum mismatch"));
        }
        if let Some(kind) = expected {
            if self.kind != kind.0 {
                return Err(Error::WrongKind { name: name.to_owned(), expected: kind.0, found: self.kind });
            }
        }
        Ok(())
    }
}

/// Validates raw bytes as a segment header for a mapping of `bytes.len()`
/// bytes. This is the entry point of the `header` fuzz target.
///
/// ```
/// use venom_core::header::validate_header_bytes;
/// assert!(validate_header_bytes(&[0u8; 16], None).is_err());
/// assert!(validate_header_bytes(&[0u8; 4096], None).is_err());
/// ```
pub fn validate_header_bytes(bytes: &[u8], expected: Option<SegmentKind>) -> Result<HeaderFields> {
    let fields = HeaderFields::from_bytes(bytes)
        .ok_or_else(|| Error::corrupt("<bytes>", format!("{} bytes is shorter than the header", bytes.len())))?;
    fields.validate("<bytes>", bytes.len(), expected)?;
    Ok(fields)
}

/// A size or offset word of a block inside a segment body, as `usize`
/// (`usize::MAX` if it does not fit, which the caller's bounds checks then
/// reject). Relaxed: such words are static after init, published by the
/// segment's READY Acquire (or the caller's protocol) before the block could
/// be mapped.
pub(crate) fn static_usize(word: &body::AtomicU64) -> usize {
    usize::try_from(word.load(body::Ordering::Relaxed)).unwrap_or(usize::MAX)
}

/// Checks the magic and layout version of a block inside a segment body
/// (a channel header, a command queue...). `what` names the block in the
/// error message. Both words are static after init, so callers load them
/// with Relaxed after the segment's READY Acquire.
pub(crate) fn check_block(
    name: &str,
    what: &str,
    (magic, expected_magic): (u64, u64),
    (version, expected_version): (u64, u64),
) -> Result<()> {
    if magic != expected_magic {
        return Err(Error::corrupt(name, format!("bad {what} magic")));
    }
    if version != expected_version {
        return Err(Error::VersionMismatch {
            name: name.to_owned(),
            expected: expected_version as u32,
            found: u32::try_from(version).unwrap_or(u32::MAX),
        });
    }
    Ok(())
}

/// [`check_block`] on the block's own magic and version words. Relaxed:
/// both are static after init, published by the segment's READY Acquire (or
/// the caller's protocol) before the block could be mapped.
pub(crate) fn check_block_words(
    name: &str,
    what: &str,
    (magic, expected_magic): (&body::AtomicU64, u64),
    (version, expected_version): (&body::AtomicU64, u64),
) -> Result<()> {
    check_block(
        name,
        what,
        (magic.load(Ordering::Relaxed), expected_magic),
        (version.load(Ordering::Relaxed), expected_version),
    )
}

impl SegmentHeader {
    /// Snapshot of the fields. `init_state` is loaded with Acquire first so
    /// that, when it reads READY, the other (Relaxed) loads see the values the
    /// creator wrote before its Release store.
    pub(crate) fn load(&self) -> HeaderFields {
        let init_state = self.init_state.load(Ordering::Acquire);
        HeaderFields {
            magic: self.magic.load(Ordering::Relaxed),
            layout_version: self.layout_version.load(Ordering::Relaxed),
            kind: self.kind.load(Ordering::Relaxed),
            total_len: self.total_len.load(Ordering::Relaxed),
            body_offset: self.body_offset.load(Ordering::Relaxed),
            creator_pid: self.creator_pid.load(Ordering::Relaxed),
            init_state,
            creator_start: self.creator_start.load(Ordering::Relaxed),
            generation: self.generation.load(Ordering::Relaxed),
            checksum: self.checksum.load(Ordering::Relaxed),
        }
    }

    /// Writes the static fields (Relaxed; published later by
    /// [`SegmentHeader::publish`]).
    pub(crate) fn store_static(&self, f: &HeaderFields) {
        self.magic.store(f.magic, Ordering::Relaxed);
        self.layout_version.store(f.layout_version, Ordering::Relaxed);
        self.kind.store(f.kind, Ordering::Relaxed);
        self.total_len.store(f.total_len, Ordering::Relaxed);
        self.body_offset.store(f.body_offset, Ordering::Relaxed);
        self.generation.store(f.generation, Ordering::Relaxed);
        self.checksum.store(f.expected_checksum(), Ordering::Relaxed);
    }

    /// Marks the segment READY. Release: everything the creator wrote to the
    /// header and body before this call is visible to any opener whose
    /// Acquire load of `init_state` reads READY.
    pub(crate) fn publish(&self) {
        self.init_state.store(READY, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn good(len: usize) -> HeaderFields {
        let mut f = HeaderFields {
            magic: MAGIC,
            layout_version: LAYOUT_VERSION,
            kind: SegmentKind::RAW.0,
            total_len: len as u64,
            body_offset: HEADER_LEN as u64,
            creator_pid: 1,
            init_state: READY,
            creator_start: 7,
            generation: 0,
            checksum: 0,
        };
        f.checksum = f.expected_checksum();
        f
    }

    #[test]
    fn miri_valid_header_passes() {
        assert!(good(4096).validate("t", 4096, Some(SegmentKind::RAW)).is_ok());
    }

    #[test]
    fn miri_each_corruption_is_a_typed_error() {
        let len = 4096;
        type Damage = Box<dyn Fn(&mut HeaderFields)>;
        let cases: Vec<(&str, Damage)> = vec![
            ("magic", Box::new(|f| f.magic ^= 1)),
            ("version", Box::new(|f| f.layout_version = 99)),
            ("state", Box::new(|f| f.init_state = INITIALISING)),
            ("absurd len", Box::new(|f| f.total_len = u64::MAX)),
            ("short len", Box::new(|f| f.total_len = 3)),
            ("offset", Box::new(|f| f.body_offset = 1 << 40)),
            ("checksum", Box::new(|f| f.generation += 1)),
        ];
        for (what, corrupt) in cases {
            let mut f = good(len);
            corrupt(&mut f);
            assert!(f.validate("t", len, None).is_err(), "{what} accepted");
        }
        assert!(matches!(good(len).validate("t", len, Some(SegmentKind::CHANNEL)), Err(Error::WrongKind { .. })));
        assert!(matches!(good(len).validate("t", len - 1, None), Err(Error::Corrupt { .. })));
        assert!(matches!(good(len).validate("t", len, None).map(|_| ()), Ok(())));
        let mut v = good(len);
        v.layout_version = 2;
        assert!(matches!(v.validate("t", len, None), Err(Error::VersionMismatch { .. })));
    }

    proptest::proptest! {
        #[test]
        fn validate_never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..512)) {
            let _ = validate_header_bytes(&bytes, None);
        }
    }
}
