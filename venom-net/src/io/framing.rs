//! Reading capped frames from a QUIC stream.

use crate::error::{Error, Result};
use crate::proto::frame::{FrameHeader, HEADER_LEN};
use std::task::{Poll, ready};
use tokio::sync::mpsc;

/// Reads the next bytes of the stream into `body`'s spare capacity, up to a
/// total length of `want` (> `body.len()`), without zero-filling the buffer
/// first (a snapshot's bodies add up to the region size: zeroing them was a
/// whole extra pass over the data). Returns the bytes read, 0 at the end of
/// the stream. Cancel-safe: bytes are taken from quinn and appended in the
/// same poll.
async fn read_into_spare(recv: &mut quinn::RecvStream, body: &mut Vec<u8>, want: usize) -> Result<usize> {
    body.reserve(want - body.len());
    std::future::poll_fn(|cx| {
        let len = body.len();
        let n = {
            let mut buf = tokio::io::ReadBuf::uninit(&mut body.spare_capacity_mut()[..want - len]);
            ready!(recv.poll_read_buf(cx, &mut buf))?;
            buf.filled().len()
        };
        // SAFETY: `ReadBuf` guarantees its first `n` bytes are initialised,
        // and they are the `n` bytes of spare capacity right after `len`.
        unsafe { body.set_len(len + n) };
        Poll::Ready(Ok(n))
    })
    .await
}

/// Reads one frame into `body`: the header is validated (magic, version,
/// type, size cap, and `max_body`) BEFORE the body buffer is sized.
/// `Ok(None)` at a clean end.
pub(crate) async fn read_frame(
    recv: &mut quinn::RecvStream,
    body: &mut Vec<u8>,
    max_body: usize,
) -> Result<Option<FrameHeader>> {
    let mut head = [0u8; HEADER_LEN];
    match recv.read_exact(&mut head).await {
        Ok(()) => {}
        Err(quinn::ReadExactError::FinishedEarly(0)) => return Ok(None),
        Err(e) => return Err(e.into()),
    }
    let h = FrameHeader::decode(&head)?;
    if h.body_len > max_body {
        return Err(Error::FrameTooLarge { len: h.body_len, max: max_body });
    }
    body.clear();
    while body.len() < h.body_len {
        if read_into_spare(recv, body, h.body_len).await? == 0 {
            return Err(Error::Truncated { needed: h.body_len, got: body.len() });
        }
    }
    Ok(Some(h))
}

/// Incremental, cancel-safe frame reader: progress lives in the struct and
/// each step is one cancel-safe `RecvStream::read`, so `next` can be raced in
/// a `select!` without losing bytes.
///
/// Invariant: `head_len <= HEADER_LEN`; once `header` is set, `body.len()`
/// (the bytes received so far) is at most its (capped) body length.
pub(crate) struct FrameReader {
    head: [u8; HEADER_LEN],
    head_len: usize,
    header: Option<FrameHeader>,
    body: Vec<u8>,
}

impl FrameReader {
    pub(crate) fn new() -> Self {
        FrameReader { head: [0; HEADER_LEN], head_len: 0, header: None, body: Vec::new() }
    }

    /// Reads the next frame; `spare` supplies the next body buffer (recycled
    /// by the caller). `Ok(None)` at a clean end of stream.
    pub(crate) async fn next(
        &mut self,
        recv: &mut quinn::RecvStream,
        spare: impl FnOnce() -> Vec<u8>,
    ) -> Result<Option<(FrameHeader, Vec<u8>)>> {
        while self.head_len < HEADER_LEN {
            match recv.read(&mut self.head[self.head_len..]).await? {
                Some(n) => self.head_len += n,
                None if self.head_len == 0 => return Ok(None),
                None => return Err(Error::Truncated { needed: HEADER_LEN, got: self.head_len }),
            }
        }
        let h = match self.header {
            Some(h) => h,
            None => {
                let h = FrameHeader::decode(&self.head)?; // validated before sizing the body
                self.body = spare();
                self.body.clear();
                self.header = Some(h);
                h
            }
        };
        while self.body.len() < h.body_len {
            if read_into_spare(recv, &mut self.body, h.body_len).await? == 0 {
                return Err(Error::Truncated { needed: h.body_len, got: self.body.len() });
            }
        }
        self.head_len = 0;
        self.header = None;
        Ok(Some((h, std::mem::take(&mut self.body))))
    }
}

/// A frame read by [`spawn_reader`]: header and body, or the error that ended the stream.
pub(crate) type Incoming = Result<(FrameHeader, Vec<u8>)>;

/// Frames [`spawn_reader`] reads ahead of its consumer. With `max_body`,
/// this bounds the memory one peer can make the reader hold.
const READ_AHEAD: usize = 8;

/// Reads frames of at most `max_body` body bytes on a separate task (reads
/// are not cancel-safe, so they are never raced in a `select!`) and forwards
/// them; ends the channel at EOF, on an error, or once the receiver is
/// dropped. The task ends when the connection closes (its read fails).
pub(crate) fn spawn_reader(mut recv: quinn::RecvStream, max_body: usize) -> mpsc::Receiver<Incoming> {
    let (tx, rx) = mpsc::channel(READ_AHEAD);
    tokio::spawn(async move {
        loop {
            let mut body = Vec::new();
            match read_frame(&mut recv, &mut body, max_body).await {
                Ok(Some(h)) => {
                    if tx.send(Ok((h, body))).await.is_err() {
                        return;
                    }
                }
                Ok(None) => return,
                Err(e) => {
                    let _ = tx.send(Err(e)).await;
                    return;
                }
            }
        }
    });
    rx
}

/// Whether an error is the peer's fault (bad frame) rather than the network's.
pub(crate) fn is_protocol_error(e: &Error) -> bool {
    matches!(
        e,
        Error::BadMagic(_)
            | Error::UnsupportedVersion(_)
            | Error::UnknownFrameType(_)
            | Error::FrameTooLarge { .. }
            | Error::Truncated { .. }
            | Error::Malformed(_)
            | Error::OutOfRange { .. }
            | Error::InvalidSubscription(_)
            | Error::Protocol(_)
    )
}
