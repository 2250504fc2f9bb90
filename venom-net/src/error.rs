//! The crate's one error type.

use std::time::Duration;

/// Everything that can go wrong in `venom-net`.
///
/// Bad input from a peer (a malformed, oversized or out-of-range frame) is
/// always reported as one of the `Frame*`/`Protocol` variants; nothing in
/// this crate panics or allocates beyond the documented caps on such input.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The frame does not start with the `VN` magic.
    #[error("bad frame magic {0:#06x}")]
    BadMagic(u16),
    /// The frame's protocol version is not one this build speaks.
    #[error("unsupported protocol version {0}")]
    UnsupportedVersion(u8),
    /// The frame type byte is unknown.
    #[error("unknown frame type {0}")]
    UnknownFrameType(u8),
    /// The frame body is longer than the cap for its type.
    #[error("frame body of {len} bytes exceeds the cap of {max}")]
    FrameTooLarge {
        /// Announced body length.
        len: usize,
        /// Cap for this frame type.
        max: usize,
    },
    /// The buffer ended before the frame did.
    #[error("truncated frame: {needed} bytes needed, {got} available")]
    Truncated {
        /// Bytes needed.
        needed: usize,
        /// Bytes available.
        got: usize,
    },
    /// A field has an invalid value.
    #[error("malformed frame: {0}")]
    Malformed(&'static str),
    /// An offset/length pair falls outside the allowed range.
    #[error("{what}: range {offset}+{len} is outside 0..{limit}")]
    OutOfRange {
        /// Which range.
        what: &'static str,
        /// Offset.
        offset: u64,
        /// Length.
        len: u64,
        /// Exclusive upper bound.
        limit: u64,
    },
    /// A subscription is invalid (overlapping parts, bad shape, too many runs...).
    #[error("invalid subscription: {0}")]
    InvalidSubscription(String),
    /// The peer broke the protocol (a frame that is valid on its own but not
    /// allowed in the current state).
    #[error("protocol violation: {0}")]
    Protocol(String),
    /// The local or published region failed.
    #[error("region: {0}")]
    Region(#[from] venom_core::Error),
    /// TLS configuration failed.
    #[error("tls: {0}")]
    Tls(#[from] rustls::Error),
    /// Certificate generation failed.
    #[error("certificate: {0}")]
    Cert(#[from] rcgen::Error),
    /// A TLS or QUIC crypto configuration cannot be built (bad roots, no TLS 1.3 suite...).
    #[error("tls config: {0}")]
    TlsConfig(String),
    /// Opening a QUIC connection failed.
    #[error("connect: {0}")]
    Connect(#[from] quinn::ConnectError),
    /// The QUIC connection failed or was closed.
    #[error("connection: {0}")]
    Connection(quinn::ConnectionError),
    /// The publisher refused or ended the session for a reason it names
    /// (its QUIC close code): a cap, the identity limit, the policy, a deadline.
    #[error("refused by the publisher: {reason} ({detail})")]
    Refused {
        /// Why.
        reason: crate::proto::admission::Refusal,
        /// The publisher's close reason text.
        detail: String,
    },
    /// The publisher's policy does not allow this peer this subscription.
    #[error("unauthorized: {0}")]
    Unauthorized(String),
    /// A policy text is malformed.
    #[error("policy line {line}: {why}")]
    PolicySyntax {
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        why: String,
    },
    /// Reading or writing a QUIC stream failed.
    #[error("stream: {0}")]
    Stream(String),
    /// A socket or other OS call failed.
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    /// A wait ran out of time.
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    /// The browser view (`web` feature) cannot serve this configuration.
    #[error("web view: {0}")]
    Web(String),
    /// The publisher or mirror was shut down.
    #[error("closed")]
    Closed,
    /// The mirror gave up on its publisher after too many consecutive faults.
    #[error("mirror failed: {0}")]
    MirrorFailed(crate::proto::stats::MirrorFailure),
    /// A region catalog is structurally invalid (bad magic, count, name, dtype or shape).
    #[error("malformed catalog: {0}")]
    CatalogMalformed(&'static str),
    /// A catalog entry points outside its region (or into the catalog itself).
    #[error("catalog array {name:?}: bytes {offset}+{len} are outside {min}..{limit}")]
    CatalogOutOfBounds {
        /// Array name.
        name: String,
        /// Byte offset of the array.
        offset: u64,
        /// Byte length of the array.
        len: u64,
        /// First byte an array may use (the end of the catalog prefix).
        min: u64,
        /// Region size.
        limit: u64,
    },
    /// Two catalog entries have the same name.
    #[error("catalog names {0:?} twice")]
    CatalogDuplicate(String),
    /// Two catalog entries overlap.
    #[error("catalog arrays {0:?} and {1:?} overlap")]
    CatalogOverlap(String, String),
    /// No array of that name in the catalog.
    #[error("no array named {0:?}")]
    NoSuchArray(String),
    /// A typed view was asked for with the wrong element type.
    #[error("array {name:?} holds {found:?}, not {wanted:?}")]
    DtypeMismatch {
        /// Array name.
        name: String,
        /// Element type of the array.
        found: crate::Dtype,
        /// Element type requested.
        wanted: crate::Dtype,
    },
    /// An index or index range lies outside an array's shape.
    #[error("index {index:?} is outside shape {shape:?}")]
    BadIndex {
        /// The index (or range bounds) given.
        index: Vec<u64>,
        /// The array's shape.
        shape: Vec<u64>,
    },
    /// A mesh peer tried to write (or serve) a part it does not own.
    #[error("peer {peer:?} does not own part {part:?}")]
    NotOwner {
        /// The peer.
        peer: String,
        /// The part.
        part: String,
    },
}

/// Shorthand for results in this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<quinn::ConnectionError> for Error {
    /// An application close with a [`Refusal`](crate::proto::admission::Refusal) code becomes [`Error::Refused`].
    fn from(e: quinn::ConnectionError) -> Self {
        if let quinn::ConnectionError::ApplicationClosed(c) = &e
            && let Some(reason) = crate::proto::admission::Refusal::from_code(c.error_code.into_inner())
        {
            let detail = String::from_utf8_lossy(&c.reason).into_owned();
            return Error::Refused { reason, detail };
        }
        if let quinn::ConnectionError::ConnectionClosed(c) = &e
            && c.error_code == quinn::TransportErrorCode::CONNECTION_REFUSED
        {
            // quinn's `Incoming::refuse`: the publisher's connection caps.
            return Error::Refused { reason: crate::proto::admission::Refusal::Busy, detail: e.to_string() };
        }
        Error::Connection(e)
    }
}

impl From<quinn::WriteError> for Error {
    fn from(e: quinn::WriteError) -> Self {
        match e {
            quinn::WriteError::ConnectionLost(c) => c.into(),
            e => Error::Stream(e.to_string()),
        }
    }
}

impl From<quinn::ReadError> for Error {
    fn from(e: quinn::ReadError) -> Self {
        match e {
            quinn::ReadError::ConnectionLost(c) => c.into(),
            e => Error::Stream(e.to_string()),
        }
    }
}

impl From<quinn::ReadExactError> for Error {
    fn from(e: quinn::ReadExactError) -> Self {
        match e {
            quinn::ReadExactError::ReadError(r) => r.into(),
            e => Error::Stream(e.to_string()),
        }
    }
}
