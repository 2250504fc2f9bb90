//! Versioned, length-capped wire frames and their strict decoder.
//!
//! Every frame is `header (8 bytes) ‖ body`:
//!
//! | bytes | field |
//! |-------|-------|
//! | 0..2  | magic `b"VN"` |
//! | 2     | protocol version ([`PROTOCOL_VERSION`]) |
//! | 3     | frame type ([`FrameType`]) |
//! | 4..8  | body length, u32 LE, at most [`FrameType::max_body`] |
//!
//! All integers are little-endian. Decoding checks the magic, version, type,
//! the per-type body cap, every count against the bytes actually present and
//! rejects trailing bytes: any malformed input yields a typed [`Error`],
//! never a panic, and the decoder allocates nothing for update payloads
//! (they are borrowed from the input).
//!
//! Update payloads address bytes by *virtual offset* into the subscription
//! (see [`crate::proto::subscription`]); range checks against the subscription are
//! the mirror state machine's job, this module checks structure only.

mod update;

use crate::proto::subscription::Subscription;
use crate::proto::wire_code::wire_code_enum;
pub use update::{Update, encode_single_update};
pub(crate) use update::{encode_update_head, peek_flags, push_run_head, set_update_len, update_head};

use crate::error::{Error, Result};
use crate::proto::wire::{Reader, put_u32, put_u64};

/// Frame magic.
pub const MAGIC: [u8; 2] = *b"VN";
/// The protocol version this build speaks.
pub const PROTOCOL_VERSION: u8 = 1;
/// Length of the frame header.
pub const HEADER_LEN: usize = 8;
/// Cap on an update frame body (1 MiB of payload plus headers).
pub const MAX_UPDATE_BODY: usize = (1 << 20) + 4096;
/// Cap on every other frame body.
pub const MAX_CONTROL_BODY: usize = 16 * 1024;
/// Bytes of the fixed part of an update body.
pub const UPDATE_HEAD_LEN: usize = 4 + 8 + 8 + 8 + 8 + 4 + 1 + 4;
/// Bytes of a run header inside an update body (`virt: u64`, `len: u32`).
pub const RUN_HEAD_LEN: usize = 12;

/// Update flag: the update is a full snapshot of the subscription.
pub const FLAG_SNAPSHOT: u8 = 1;
/// Update flag: last frame of the update (apply now).
pub const FLAG_LAST: u8 = 2;
/// Update flag: a delta that also carries whole digest chunks the mirror
/// asked to repair ([`RepairFrame`]); it may have `seq == base_seq` (the
/// region did not change, only the repaired bytes are resent).
pub const FLAG_REPAIR: u8 = 4;
/// Most digest chunks one [`RepairFrame`] may name.
pub const MAX_REPAIR_CHUNKS: usize = 1024;

wire_code_enum! {
    /// Frame types. Values 16.. are reserved for the region catalog and mesh
    /// ownership frames of later protocol versions.
    pub enum FrameType {
        /// Mirror → publisher: subscription request.
        Hello = 1,
        /// Publisher → mirror: session parameters.
        Welcome = 2,
        /// Publisher → mirror: one frame of a snapshot or delta.
        Update = 3,
        /// Publisher → mirror: integrity digest of the subscribed bytes at a seq.
        Hash = 4,
        /// Mirror → publisher: cumulative acknowledgement.
        Ack = 5,
        /// Mirror → publisher: please send a full snapshot.
        Resync = 6,
        /// Mirror → publisher: resend these digest chunks in full.
        Repair = 7,
    }
}

impl FrameType {
    /// The body length cap of this frame type.
    pub fn max_body(self) -> usize {
        match self {
            FrameType::Update => MAX_UPDATE_BODY,
            _ => MAX_CONTROL_BODY,
        }
    }
}

/// A validated frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    /// Frame type.
    pub kind: FrameType,
    /// Body length (already checked against the cap).
    pub body_len: usize,
}

impl FrameHeader {
    /// Validates a header. Call this before reading (or allocating) the body.
    pub fn decode(b: &[u8; HEADER_LEN]) -> Result<Self> {
        if b[0..2] != MAGIC {
            return Err(Error::BadMagic(u16::from_be_bytes([b[0], b[1]])));
        }
        if b[2] != PROTOCOL_VERSION {
            return Err(Error::UnsupportedVersion(b[2]));
        }
        let kind = FrameType::from_code(b[3]).ok_or(Error::UnknownFrameType(b[3]))?;
        let body_len = u32::from_le_bytes([b[4], b[5], b[6], b[7]]) as usize;
        if body_len > kind.max_body() {
            return Err(Error::FrameTooLarge { len: body_len, max: kind.max_body() });
        }
        Ok(FrameHeader { kind, body_len })
    }
}

/// Mirror → publisher: subscribe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hello {
    /// The mirror's id (for logs, stats and future mesh ownership).
    pub mirror_id: u64,
    /// Which published region (0 = the publisher's default; room for a catalog).
    pub region_id: u32,
    /// Ask for a blake3 [`HashFrame`] after every update.
    pub check_hash: bool,
    /// What to replicate.
    pub subscription: Subscription,
    /// On a reconnect: the `(epoch, seq)` the mirror's subscribed bytes are
    /// at, so a publisher whose backlog still reaches back there sends only
    /// what was missed instead of a snapshot. Encoded after the subscription
    /// when hello flag bit 1 is set (publishers built before the flag
    /// existed refuse it as malformed: upgrade publishers and relays first).
    pub resume: Option<Resume>,
}

/// A mirror's position, offered in its [`Hello`] to resume from the backlog.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resume {
    /// Epoch of the last applied update.
    pub epoch: u64,
    /// Seq of the last applied update.
    pub seq: u64,
}

/// Publisher → mirror: session parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Welcome {
    /// Publisher epoch: changes on every publisher start.
    pub epoch: u64,
    /// The publisher's owner id (future mesh ownership).
    pub owner_id: u64,
    /// The region served.
    pub region_id: u32,
    /// Chunk size of the published region.
    pub chunk_size: u32,
    /// Size of the published region.
    pub region_size: u64,
}

/// The digest scheme of [`HashFrame::scheme`]: the Merkle root of
/// [`crate::proto::digest`] (blake3, 16 KiB chunks).
pub const DIGEST_SCHEME_MERKLE16K: u8 = 1;

/// Publisher → mirror: digest of exactly the subscribed bytes (virtual
/// order) at `(epoch, seq)`. Sent at most every `hash_interval`, between
/// updates, never inside one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HashFrame {
    /// Region id.
    pub region_id: u32,
    /// Publisher epoch.
    pub epoch: u64,
    /// Region version hashed.
    pub seq: u64,
    /// How `digest` was computed ([`DIGEST_SCHEME_MERKLE16K`]; a mirror
    /// refuses schemes it does not know as a protocol violation).
    pub scheme: u8,
    /// The digest (Merkle root).
    pub digest: [u8; 32],
}

/// Mirror → publisher: everything up to `seq` is applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ack {
    /// Region id.
    pub region_id: u32,
    /// Publisher epoch.
    pub epoch: u64,
    /// Last applied seq.
    pub seq: u64,
}

/// Mirror → publisher: send a full snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resync {
    /// Region id.
    pub region_id: u32,
    /// Publisher epoch the mirror is in.
    pub epoch: u64,
    /// Last applied seq.
    pub last_seq: u64,
    /// Why ([`ResyncReason`] as u8).
    pub reason: u8,
}

/// Mirror → publisher: after a digest mismatch, resend the named digest
/// chunks (indices of [`crate::proto::digest::DIGEST_CHUNK`]-byte chunks of the
/// subscription's virtual bytes) in full with the next delta.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepairFrame {
    /// Region id.
    pub region_id: u32,
    /// Publisher epoch the mirror is in.
    pub epoch: u64,
    /// The mirror's last applied seq.
    pub seq: u64,
    /// Chunk indices, strictly increasing, at most [`MAX_REPAIR_CHUNKS`].
    pub chunks: Vec<u32>,
}

wire_code_enum! {
    /// Why a mirror asks for a resync.
    pub enum ResyncReason {
        /// A delta did not apply on top of the last applied seq.
        Gap = 1,
        /// The blake3 check failed.
        HashMismatch = 2,
        /// The frames of one update arrived out of order.
        BrokenUpdate = 3,
        /// Repeated request after a timeout.
        Retry = 4,
        /// Asked for by the application.
        Requested = 5,
    }
}

/// A decoded frame.
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum Frame<'a> {
    Hello(Hello),
    Welcome(Welcome),
    Update(Update<'a>),
    Hash(HashFrame),
    Ack(Ack),
    Resync(Resync),
    Repair(RepairFrame),
}

impl<'a> Frame<'a> {
    /// Decodes one frame from the start of `buf`; returns it and the bytes consumed.
    pub fn decode(buf: &'a [u8]) -> Result<(Frame<'a>, usize)> {
        let head: &[u8; HEADER_LEN] = buf
            .get(..HEADER_LEN)
            .and_then(|h| h.try_into().ok())
            .ok_or(Error::Truncated { needed: HEADER_LEN, got: buf.len() })?;
        let h = FrameHeader::decode(head)?;
        let total = HEADER_LEN + h.body_len;
        let body = buf.get(HEADER_LEN..total).ok_or(Error::Truncated { needed: total, got: buf.len() })?;
        Ok((Self::decode_body(h, body)?, total))
    }

    /// Decodes a body whose header was validated by [`FrameHeader::decode`].
    pub fn decode_body(h: FrameHeader, body: &'a [u8]) -> Result<Frame<'a>> {
        if body.len() != h.body_len || body.len() > h.kind.max_body() {
            return Err(Error::Malformed("body length does not match header"));
        }
        let mut r = Reader::new(body);
        let f = match h.kind {
            FrameType::Hello => {
                let mirror_id = r.u64()?;
                let region_id = r.u32()?;
                let flags = r.u32()?;
                if flags & !3 != 0 {
                    return Err(Error::Malformed("unknown hello flags"));
                }
                let subscription = Subscription::decode(&mut r)?;
                let resume = if flags & 2 != 0 { Some(Resume { epoch: r.u64()?, seq: r.u64()? }) } else { None };
                Frame::Hello(Hello { mirror_id, region_id, check_hash: flags & 1 != 0, subscription, resume })
            }
            FrameType::Welcome => Frame::Welcome(Welcome {
                epoch: r.u64()?,
                owner_id: r.u64()?,
                region_id: r.u32()?,
                chunk_size: r.u32()?,
                region_size: r.u64()?,
            }),
            FrameType::Update => Frame::Update(Update::decode(&mut r)?),
            FrameType::Hash => Frame::Hash(HashFrame {
                region_id: r.u32()?,
                epoch: r.u64()?,
                seq: r.u64()?,
                scheme: r.u8()?,
                digest: r.array()?,
            }),
            FrameType::Ack => Frame::Ack(Ack { region_id: r.u32()?, epoch: r.u64()?, seq: r.u64()? }),
            FrameType::Resync => {
                Frame::Resync(Resync { region_id: r.u32()?, epoch: r.u64()?, last_seq: r.u64()?, reason: r.u8()? })
            }
            FrameType::Repair => {
                let (region_id, epoch, seq) = (r.u32()?, r.u64()?, r.u64()?);
                let n = r.u32()? as usize;
                // Count checked against the cap and the bytes present before allocating.
                if n > MAX_REPAIR_CHUNKS || n.saturating_mul(4) != r.remaining() {
                    return Err(Error::Malformed("repair chunk count"));
                }
                let mut chunks = Vec::with_capacity(n);
                for _ in 0..n {
                    let c = r.u32()?;
                    if chunks.last().is_some_and(|&p| c <= p) {
                        return Err(Error::Malformed("repair chunks not strictly increasing"));
                    }
                    chunks.push(c);
                }
                Frame::Repair(RepairFrame { region_id, epoch, seq, chunks })
            }
        };
        r.finish()?;
        Ok(f)
    }

    /// Appends the encoded frame to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        if let Frame::Update(u) = self {
            u.encode(out);
            return;
        }
        let start = begin(out, self.kind());
        match self {
            Frame::Hello(h) => {
                put_u64(out, h.mirror_id);
                put_u32(out, h.region_id);
                put_u32(out, h.check_hash as u32 | (h.resume.is_some() as u32) << 1);
                h.subscription.encode(out);
                if let Some(r) = h.resume {
                    put_u64(out, r.epoch);
                    put_u64(out, r.seq);
                }
            }
            Frame::Welcome(w) => {
                put_u64(out, w.epoch);
                put_u64(out, w.owner_id);
                put_u32(out, w.region_id);
                put_u32(out, w.chunk_size);
                put_u64(out, w.region_size);
            }
            Frame::Update(_) => {} // encoded above
            Frame::Hash(h) => {
                put_u32(out, h.region_id);
                put_u64(out, h.epoch);
                put_u64(out, h.seq);
                out.push(h.scheme);
                out.extend_from_slice(&h.digest);
            }
            Frame::Ack(a) => {
                put_u32(out, a.region_id);
                put_u64(out, a.epoch);
                put_u64(out, a.seq);
            }
            Frame::Resync(r) => {
                put_u32(out, r.region_id);
                put_u64(out, r.epoch);
                put_u64(out, r.last_seq);
                out.push(r.reason);
            }
            Frame::Repair(r) => {
                put_u32(out, r.region_id);
                put_u64(out, r.epoch);
                put_u64(out, r.seq);
                put_u32(out, r.chunks.len() as u32);
                for &c in &r.chunks {
                    put_u32(out, c);
                }
            }
        }
        end(out, start);
    }

    /// The frame type.
    pub fn kind(&self) -> FrameType {
        match self {
            Frame::Hello(_) => FrameType::Hello,
            Frame::Welcome(_) => FrameType::Welcome,
            Frame::Update(_) => FrameType::Update,
            Frame::Hash(_) => FrameType::Hash,
            Frame::Ack(_) => FrameType::Ack,
            Frame::Resync(_) => FrameType::Resync,
            Frame::Repair(_) => FrameType::Repair,
        }
    }
}

pub(crate) fn begin(out: &mut Vec<u8>, kind: FrameType) -> usize {
    let start = out.len();
    out.extend_from_slice(&MAGIC);
    out.push(PROTOCOL_VERSION);
    out.push(kind as u8);
    put_u32(out, 0);
    start
}

pub(crate) fn end(out: &mut [u8], start: usize) {
    let len = (out.len() - start - HEADER_LEN) as u32;
    out[start + 4..start + 8].copy_from_slice(&len.to_le_bytes());
}
