//! Shared pieces of the example programs and the demo.
//!
//! The programs themselves live next to this file (see `Cargo.toml`).

pub mod life_world;
pub mod net_cli;

use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

/// Child processes of one demo section: spawned as `<exe> --child <section> ...`,
/// joined with a timeout, and killed on drop (error paths included), so a
/// failing demo never leaves processes behind.
pub struct Children {
    section: &'static str,
    /// The running children, in spawn order.
    pub procs: Vec<Child>,
}

impl Children {
    /// No children yet, for `section`.
    pub fn new(section: &'static str) -> Self {
        Children { section, procs: Vec::new() }
    }

    /// Spawns `exe --child <section> args...`.
    pub fn spawn(&mut self, exe: &Path, args: &[&str]) -> Result<(), Box<dyn std::error::Error>> {
        self.procs.push(Command::new(exe).args(["--child", self.section]).args(args).spawn()?);
        Ok(())
    }

    /// Waits (bounded) for every child to exit successfully, then forgets them.
    pub fn join(&mut self, timeout: Duration) -> Result<(), Box<dyn std::error::Error>> {
        let deadline = Instant::now() + timeout;
        for c in &mut self.procs {
            loop {
                if let Some(status) = c.try_wait()? {
                    if !status.success() {
                        return Err(format!("{} child failed: {status}", self.section).into());
                    }
                    break;
                }
                if Instant::now() > deadline {
                    return Err(format!("{} child timed out", self.section).into());
                }
                std::thread::sleep(Duration::from_millis(2));
            }
        }
        self.procs.clear();
        Ok(())
    }

    /// Sends SIGKILL to child `i` and reaps it.
    pub fn kill9(&mut self, i: usize) -> std::io::Result<()> {
        self.procs[i].kill()?;
        self.procs[i].wait().map(|_| ())
    }
}

impl Drop for Children {
    fn drop(&mut self) {
        for c in &mut self.procs {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Marsaglia's xorshift64 (13, 7, 17): the examples' deterministic
/// pseudo-random stream. Advances `state` (which must be non-zero) and
/// returns the new value.
pub fn xorshift64(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}
