//! A command handed out by [`DaemonChannel::recv_command`](super::DaemonChannel::recv_command).

use std::sync::mpsc;

use super::ClientId;
use crate::cmd_queue::Message;

/// A command received by [`DaemonChannel::recv_command`](super::DaemonChannel::recv_command). Answer it with
/// [`DaemonChannel::respond`](super::DaemonChannel::respond). A command dropped unanswered is reported to
/// its client as [`Error::NoReply`](crate::Error::NoReply) at the daemon's next `recv_command` or
/// `respond`, so the client's request window never leaks.
#[derive(Debug)]
pub struct Command {
    pub(super) client: ClientId,
    pub(super) request_id: u64,
    pub(super) data: Vec<u8>,
    /// Where `Drop` reports an unanswered command; `None` once answered.
    pub(super) unanswered: Option<mpsc::Sender<Message>>,
}

impl Drop for Command {
    fn drop(&mut self) {
        if let Some(tx) = self.unanswered.take() {
            let _ = tx.send(self.message());
        }
    }
}

impl Command {
    /// The sending client.
    pub fn client(&self) -> ClientId {
        self.client
    }

    /// The client's request id (unique per client slot generation).
    pub fn request_id(&self) -> u64 {
        self.request_id
    }

    /// The command bytes.
    pub fn data(&self) -> &[u8] {
        &self.data
    }

    pub(super) fn message(&self) -> Message {
        Message { lane: self.client.slot(), generation: self.client.generation, tag: self.request_id, len: 0 }
    }
}
