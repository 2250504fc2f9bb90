//! The per-slot control word shared by the map and the large-element array:
//! a seqlock version and a small state machine in one `AtomicU64`, with the
//! owner's pid inside while the slot is busy.
//!
//! ```text
//! stable: | version (38 bits) | unused | state (2) | 0 |
//! busy:   | version (38 bits) | pid (22 bits) | kind (2) | 0... 1 |
//!           bits 26..63          bits 3..24     bits 1..2  bit 0
//! ```
//! Keeping the owner in the word that is CAS-claimed means there is no window
//! in which a slot is busy but its owner unknown: a reader that finds a slot
//! busy for too long can ask whether that pid is still alive and repair the
//! slot if not. The version survives the busy phase, so the repairer can move
//! the slot on to `version + 1` and seqlock readers never mistake a repaired
//! slot for the one they started reading. Versions wrap after 2^38
//! transitions of one slot; a reader would have to sleep through all of them
//! to be fooled. Only the pid is recorded (Linux pids fit in 22 bits), so a
//! dead owner whose pid is reused before anyone checks looks alive: waiters
//! then time out with a typed error instead of repairing.

pub(crate) const BUSY: u64 = 1;
const VERSION_SHIFT: u32 = 26;
const VERSION_MASK: u64 = (1 << 38) - 1;
const PID_MASK: u64 = (1 << 22) - 1;

/// A decoded control word.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Ctl(pub u64);

impl Ctl {
    #[inline]
    pub(crate) const fn stable(state: u64, version: u64) -> Ctl {
        Ctl(((version & VERSION_MASK) << VERSION_SHIFT) | (state << 1))
    }

    #[inline]
    pub(crate) const fn busy(kind: u64, pid: u32, version: u64) -> Ctl {
        Ctl(((version & VERSION_MASK) << VERSION_SHIFT) | ((pid as u64 & PID_MASK) << 3) | (kind << 1) | BUSY)
    }

    #[inline]
    pub(crate) const fn is_busy(self) -> bool {
        self.0 & BUSY != 0
    }

    /// The stable state or the busy kind (2 bits).
    #[inline]
    pub(crate) const fn state(self) -> u64 {
        (self.0 >> 1) & 3
    }

    #[inline]
    pub(crate) const fn version(self) -> u64 {
        self.0 >> VERSION_SHIFT
    }

    #[inline]
    pub(crate) const fn pid(self) -> u32 {
        ((self.0 >> 3) & PID_MASK) as u32
    }
}

/// The pid recorded in busy words written by this process.
pub(crate) fn my_pid() -> u32 {
    std::process::id()
}

/// Whether the process with this pid may still touch the segment. Under loom
/// every owner is a live thread.
pub(crate) fn pid_alive(pid: u32) -> bool {
    #[cfg(loom)]
    {
        let _ = pid;
        true
    }
    #[cfg(not(loom))]
    {
        venom_core::ProcessId { pid, start_time: 0 }.is_alive()
    }
}

/// Whether a full packed `ProcessId` (0 = nobody) is still alive.
pub(crate) fn packed_alive(packed: u64) -> bool {
    #[cfg(loom)]
    {
        let _ = packed;
        true
    }
    #[cfg(not(loom))]
    {
        packed != 0 && venom_core::ProcessId::packed_liveness(packed) == venom_core::Liveness::Alive
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let c = Ctl::busy(2, 4_000_000, 12345);
        assert!(c.is_busy());
        assert_eq!((c.state(), c.pid(), c.version()), (2, 4_000_000, 12345));
        let s = Ctl::stable(3, VERSION_MASK + 5);
        assert!(!s.is_busy());
        assert_eq!((s.state(), s.version()), (3, 4));
    }
}
