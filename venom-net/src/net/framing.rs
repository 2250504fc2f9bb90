//! Reading capped frames from a QUIC stream.

use crate::frame::{FrameHeader, HEADER_LEN};
use crate::{Error, Result};
use tokio::sync::mpsc;

/// Reads one frame into `body`: the header is validated (magic, version,
/// type, size cap) BEFORE the body buffer is sized. `Ok(None)` at a clean end.
pub(crate) async fn read_frame(recv: &mut quinn::RecvStream, body: &mut Vec<u8>) -> Result<Option<FrameHeader>> {
    let mut head = [0u8; HEADER_LEN];
    match recv.read_exact(&mut head).await {
        Ok(()) => {}
        Err(quinn::ReadExactError::FinishedEarly(0)) => return Ok(None),
        Err(e) => return Err(e.into()),
    }
    let h = FrameHeader::decode(&head)?;
    body.clear();
    body.resize(h.body_len, 0);
    recv.read_exact(body).await?;
    Ok(Some(h))
}

/// A frame read by [`spawn_reader`]: header and body, or the error that ended the stream.
pub(crate) type Incoming = Result<(FrameHeader, Vec<u8>)>;

/// Reads frames on a separate task (reads are not cancel-safe, so they are
/// never raced in a `select!`) and forwards them; ends the channel at EOF.
pub(crate) fn spawn_reader(mut recv: quinn::RecvStream) -> mpsc::Receiver<Incoming> {
    let (tx, rx) = mpsc::channel(64);
    tokio::spawn(async move {
        loop {
            let mut body = Vec::new();
            match read_frame(&mut recv, &mut body).await {
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
