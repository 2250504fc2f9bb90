//! Stopping a daemon's serve loop from another thread or a signal handler.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use crate::cmd_queue::CmdQueue;

/// Stops [`DaemonChannel::run`](super::DaemonChannel::run) and
/// [`DaemonChannel::recv_command`](super::DaemonChannel::recv_command) from
/// another thread or a signal handler. Cloneable and `Send + Sync`.
/// [`StopHandle::stop`] is async-signal-safe (an atomic store, an atomic
/// increment and a `futex` wake). Stopping is sticky.
#[derive(Clone)]
pub struct StopHandle {
    pub(super) flag: Arc<AtomicBool>,
    /// Keeps the doorbell's mapping alive.
    pub(super) queue: CmdQueue,
}

impl std::fmt::Debug for StopHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StopHandle").field("stopped", &self.is_stopped()).finish()
    }
}

impl StopHandle {
    /// Asks the serve loop to return; wakes it if it sleeps.
    pub fn stop(&self) {
        // SeqCst: ordered before the doorbell increment, which the sleeping
        // daemon's re-check follows (EventCount protocol).
        self.flag.store(true, std::sync::atomic::Ordering::SeqCst);
        self.queue.inner.block.doorbell().notify_all();
    }

    /// Whether [`StopHandle::stop`] was called.
    pub fn is_stopped(&self) -> bool {
        self.flag.load(std::sync::atomic::Ordering::SeqCst)
    }
}
