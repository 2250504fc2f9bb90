//! Process identity and liveness.
//!
//! A pid alone is not an identity: pids are reused. We pair it with the
//! process start time (field 22 of `/proc/<pid>/stat`, clock ticks since
//! boot), which is stable for the life of a process and different for any
//! later process that reuses the pid. A zombie counts as dead: it can never
//! touch shared memory again.

use std::sync::OnceLock;

/// A process identity that survives pid reuse.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ProcessId {
    /// The pid.
    pub pid: u32,
    /// Start time in clock ticks since boot (0 if unknown).
    pub start_time: u64,
}

/// Liveness of a recorded process.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Liveness {
    /// The same process (pid and start time) is still running.
    Alive,
    /// The process exited, is a zombie, or the pid now belongs to another
    /// process.
    Dead,
}

impl ProcessId {
    /// The calling process. Cached after the first call (a `fork`ed child
    /// gets a fresh value because the pid differs).
    pub fn current() -> ProcessId {
        static CACHE: OnceLock<std::sync::Mutex<Option<ProcessId>>> = OnceLock::new();
        let pid = std::process::id();
        let cell = CACHE.get_or_init(|| std::sync::Mutex::new(None));
        let mut guard = cell.lock().unwrap_or_else(|e| e.into_inner());
        match *guard {
            Some(p) if p.pid == pid => p,
            _ => {
                let p = ProcessId { pid, start_time: stat(pid).map(|s| s.1).unwrap_or(0) };
                *guard = Some(p);
                p
            }
        }
    }

    /// Whether this exact process is still running.
    pub fn liveness(&self) -> Liveness {
        if self.pid == 0 {
            return Liveness::Dead;
        }
        match stat(self.pid) {
            None => Liveness::Dead,
            Some((state, start)) => {
                if state == 'Z' || state == 'X' || (self.start_time != 0 && start != self.start_time) {
                    Liveness::Dead
                } else {
                    Liveness::Alive
                }
            }
        }
    }

    /// Shorthand for `liveness() == Liveness::Alive`.
    pub fn is_alive(&self) -> bool {
        self.liveness() == Liveness::Alive
    }

    /// Packs pid and start time into one `u64` (pid in the low 32 bits, the
    /// low 32 bits of the start time above). Used where an identity must be
    /// claimed with a single CAS. 0 never denotes a process.
    pub fn pack(&self) -> u64 {
        (self.start_time << 32) | u64::from(self.pid)
    }

    /// Inverse of [`ProcessId::pack`]. The start time is truncated to 32 bits,
    /// which [`ProcessId::liveness`] accounts for.
    pub fn unpack(v: u64) -> ProcessId {
        ProcessId { pid: v as u32, start_time: v >> 32 }
    }

    /// Liveness check for a packed identity (start time truncated to 32 bits).
    pub fn packed_liveness(v: u64) -> Liveness {
        let p = ProcessId::unpack(v);
        if p.pid == 0 {
            return Liveness::Dead;
        }
        match stat(p.pid) {
            None => Liveness::Dead,
            Some((state, start)) => {
                if state == 'Z' || state == 'X' || (start & 0xFFFF_FFFF) != p.start_time {
                    Liveness::Dead
                } else {
                    Liveness::Alive
                }
            }
        }
    }
}

/// Reads `(state, starttime)` from `/proc/<pid>/stat`.
fn stat(pid: u32) -> Option<(char, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may itself contain
    // spaces or ')'; everything after the last ')' is space-separated.
    let rest = &text[text.rfind(')')? + 1..];
    let mut fields = rest.split_ascii_whitespace();
    let state = fields.next()?.chars().next()?;
    // Fields after the state: ppid(4) ... starttime(22) is the 19th after it.
    let start = fields.nth(18)?.parse().ok()?;
    Some((state, start))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn current_is_alive_and_packs() {
        let me = ProcessId::current();
        assert_eq!(me.pid, std::process::id());
        assert!(me.start_time > 0);
        assert!(me.is_alive());
        assert_eq!(ProcessId::packed_liveness(me.pack()), Liveness::Alive);
    }

    #[test]
    fn wrong_start_time_or_missing_pid_is_dead() {
        let me = ProcessId::current();
        let other = ProcessId { pid: me.pid, start_time: me.start_time + 1 };
        assert_eq!(other.liveness(), Liveness::Dead);
        assert_eq!(ProcessId { pid: 0, start_time: 0 }.liveness(), Liveness::Dead);
        // pid_max is at most 2^22 on Linux.
        assert_eq!(ProcessId { pid: u32::MAX - 1, start_time: 0 }.liveness(), Liveness::Dead);
    }

    #[test]
    fn exited_child_is_dead() {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let id = ProcessId { pid: child.id(), start_time: stat(child.id()).map(|s| s.1).unwrap_or(0) };
        child.wait().unwrap();
        assert_eq!(id.liveness(), Liveness::Dead);
    }
}
