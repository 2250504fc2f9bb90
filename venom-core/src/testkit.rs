//! Helpers for multi-process tests (feature `testkit`).
//!
//! Cross-process behaviour is tested with real processes: a test re-runs its
//! own test binary, selecting a single "child" test function by exact name and
//! passing its role through the environment. Child test functions return
//! immediately when the role variable is absent, so they are no-ops in a
//! normal `cargo test` run.
//!
//! ```no_run
//! use venom_core::testkit;
//! #[test]
//! fn child_writer() {
//!     let Some(arg) = testkit::child_arg("writer") else { return };
//!     // ... act as the writer, using `arg` ...
//! }
//! #[test]
//! fn parent() {
//!     let mut child = testkit::spawn_child("child_writer", "writer", "some-arg").unwrap();
//!     assert!(child.wait_timeout(std::time::Duration::from_secs(10)).unwrap().success());
//! }
//! ```

use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

const ROLE_VAR: &str = "VENOM_TEST_ROLE";
const ARG_VAR: &str = "VENOM_TEST_ARG";

/// A unique segment name for a test: `prefix-<pid>-<counter>`.
pub fn unique_name(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!("{prefix}-{}-{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed))
}

/// In a child test function: `Some(arg)` if this process was spawned with
/// `role`, `None` otherwise (a normal test run).
pub fn child_arg(role: &str) -> Option<String> {
    (std::env::var(ROLE_VAR).ok()? == role).then(|| std::env::var(ARG_VAR).unwrap_or_default())
}

/// A spawned child process, killed on drop if still running.
pub struct ChildProc {
    inner: std::process::Child,
}

/// Re-runs the current test binary, running only `test_fn` with `role` and
/// `arg` in the environment. Child stdout is discarded; stderr is inherited so
/// failures are visible.
pub fn spawn_child(test_fn: &str, role: &str, arg: &str) -> std::io::Result<ChildProc> {
    let exe = std::env::current_exe()?;
    let inner = Command::new(exe)
        .args([test_fn, "--exact", "--nocapture", "--test-threads=1", "-q"])
        .env(ROLE_VAR, role)
        .env(ARG_VAR, arg)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()?;
    Ok(ChildProc { inner })
}

impl ChildProc {
    /// The child's pid.
    pub fn pid(&self) -> u32 {
        self.inner.id()
    }

    /// Sends SIGKILL and reaps the child (so it is not left a zombie).
    pub fn kill9(&mut self) {
        let _ = self.inner.kill();
        let _ = self.inner.wait();
    }

    /// The exit status if the child has exited, without waiting.
    pub fn try_wait(&mut self) -> std::io::Result<Option<ExitStatus>> {
        self.inner.try_wait()
    }

    /// Waits up to `timeout` for the child to exit. On timeout the child is
    /// killed and an error returned.
    pub fn wait_timeout(&mut self, timeout: Duration) -> std::io::Result<ExitStatus> {
        let deadline = crate::Deadline::after(timeout);
        loop {
            if let Some(status) = self.inner.try_wait()? {
                return Ok(status);
            }
            if deadline.is_past() {
                self.kill9();
                return Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "child did not exit in time"));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for ChildProc {
    fn drop(&mut self) {
        if let Ok(None) = self.inner.try_wait() {
            self.kill9();
        }
    }
}

/// The pid of a process that has exited and been reaped: a stand-in for a
/// crashed owner in recovery tests.
pub fn dead_pid() -> u32 {
    let mut child = Command::new("true").spawn().expect("spawn `true`");
    let pid = child.id();
    let _ = child.wait();
    pid
}

/// Polls `cond` every millisecond until it holds or `timeout` passes.
pub fn wait_for(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = crate::Deadline::after(timeout);
    while !deadline.is_past() {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    cond()
}

/// Shrinks (or grows) the file behind segment `name` to `len` bytes with
/// `ftruncate`, as a hostile or buggy same-user process could.
pub fn truncate_segment(name: &str, len: u64) -> std::io::Result<()> {
    let name = crate::SegmentName::new(name).map_err(std::io::Error::other)?;
    let f = std::fs::OpenOptions::new().write(true).open(format!("/dev/shm/{}", name.os_id()))?;
    f.set_len(len)
}

/// Parent side of a truncation test: waits for the child's `ready` marker,
/// truncates segment `name` to `len(full length)`, and requires the child
/// to exit normally (not by a signal) within 30 s. Panics otherwise.
pub fn truncate_under(name: &str, child: &mut ChildProc, len: impl FnOnce(u64) -> u64) {
    use std::os::unix::process::ExitStatusExt;
    let ready = marker_path(name, "ready");
    assert!(wait_for(Duration::from_secs(10), || ready.exists()), "child never got ready");
    let full = segment_file_len(name).unwrap();
    truncate_segment(name, len(full)).unwrap();
    let status = child.wait_timeout(Duration::from_secs(30)).unwrap();
    let _ = std::fs::remove_file(&ready);
    assert_eq!(status.signal(), None, "reader died by signal {:?}", status.signal());
    assert!(status.success(), "reader failed: {status:?}");
}

/// How far a truncation test shrinks a segment file, from its full length.
pub type Shrink = fn(u64) -> u64;

/// The usual shrinks: to nothing, and to half.
pub fn shrinks() -> [(&'static str, Shrink); 2] {
    [("zero", |_| 0), ("half", |n| n / 2)]
}

/// Size in bytes of the file behind segment `name`.
pub fn segment_file_len(name: &str) -> std::io::Result<u64> {
    let name = crate::SegmentName::new(name).map_err(std::io::Error::other)?;
    Ok(std::fs::metadata(format!("/dev/shm/{}", name.os_id()))?.len())
}

/// Disables core dumps for this process (for children that are meant to die
/// by a signal in a test).
pub fn disable_core_dumps() {
    let zero = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: setrlimit with a valid, initialised struct.
    unsafe { libc::setrlimit(libc::RLIMIT_CORE, &zero) };
}

/// A file-based marker for parent/child handshakes: `touch` in one process,
/// `wait` in the other.
pub fn marker_path(name: &str, what: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("venom-{name}.{what}"))
}
