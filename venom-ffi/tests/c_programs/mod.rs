//! Building the C test programs (tests/c/*.c) against `include/venom.h` and
//! the static library, and running them as child processes with a bound.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `libvenom.a` of the build that produced this test binary (`libvenom.so`
/// is next to it).
///
/// Cargo compiles the library target with all of its crate types (rlib,
/// staticlib, cdylib) into `target/<profile>/deps/` before it links the
/// integration tests against the rlib, so the staticlib next to this
/// executable is always from the same sources. (The copy one level up is
/// only refreshed by `cargo build`, so it may be stale and is not used.)
pub fn static_lib() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let deps = exe.parent().expect("test binary directory");
    let lib = deps.join("libvenom.a");
    assert!(
        lib.exists(),
        "{} not found: the venom-ffi library target should have been built with crate-type staticlib",
        lib.display()
    );
    lib
}

/// A built C program in a directory of its own, deleted when dropped so
/// test runs leave nothing in the temp directory.
pub struct CExe(PathBuf);

impl std::ops::Deref for CExe {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl AsRef<std::ffi::OsStr> for CExe {
    fn as_ref(&self) -> &std::ffi::OsStr {
        self.0.as_os_str()
    }
}

impl Drop for CExe {
    fn drop(&mut self) {
        if let Some(dir) = self.0.parent() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// How a C program links libvenom.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Link {
    /// `libvenom.a` plus the system libraries Rust's std needs.
    Static,
    /// `-lvenom` (libvenom.so) with an rpath to its directory.
    Dynamic,
}

/// Compiles `tests/c/<name>.c` into a private temp directory and returns
/// the executable.
pub fn build(name: &str) -> CExe {
    build_c(&crate_dir().join("tests/c").join(format!("{name}.c")), name, 1)
}

/// Compiles the C file `src` into a private temp directory as `exe_name`
/// at `-O<opt>`, statically linked.
pub fn build_c(src: &Path, exe_name: &str, opt: u32) -> CExe {
    build_c_with(src, exe_name, opt, Link::Static)
}

/// Compiles the C file `src` as `exe_name` at `-O<opt>`. Uses the `cc`
/// crate to find the C compiler (honours `CC` and `CFLAGS`).
pub fn build_c_with(src: &Path, exe_name: &str, opt: u32, link: Link) -> CExe {
    // One directory per build: tests run in parallel and may build the
    // same program.
    static BUILDS: AtomicUsize = AtomicUsize::new(0);
    let n = BUILDS.fetch_add(1, Ordering::Relaxed); // Relaxed: only uniqueness matters.
    let out_dir = std::env::temp_dir().join(format!("venom-ffi-c-{}-{n}", std::process::id()));
    std::fs::create_dir_all(&out_dir).expect("temp dir");
    let exe = out_dir.join(exe_name);
    let target = if cfg!(target_arch = "aarch64") { "aarch64-unknown-linux-gnu" } else { "x86_64-unknown-linux-gnu" };
    let compiler = cc::Build::new()
        .target(target)
        .host(target)
        .opt_level(opt)
        .debug(false)
        .cargo_metadata(false)
        .warnings(true)
        .try_get_compiler()
        .expect("a C compiler (install gcc or set CC)");
    let lib = static_lib();
    let lib_dir = lib.parent().expect("library directory");
    let mut cmd = compiler.to_command();
    cmd.arg("-std=c11")
        .arg("-D_POSIX_C_SOURCE=200809L")
        .arg("-Wall")
        .arg("-Werror")
        .arg("-I")
        .arg(crate_dir().join("include"))
        .arg("-I")
        .arg(crate_dir().join("tests/c"))
        .arg(src);
    // Libraries after the source: the linker resolves left to right.
    match link {
        Link::Static => cmd.arg(&lib),
        // `--disable-new-dtags` writes DT_RPATH, which the loader searches
        // before LD_LIBRARY_PATH: `cargo test` puts target/<profile> on that
        // path, whose libvenom.so only `cargo build` refreshes, so a RUNPATH
        // would load a stale library after an edit.
        Link::Dynamic => cmd
            .arg("-L")
            .arg(lib_dir)
            .arg("-lvenom")
            .arg(format!("-Wl,-rpath,{}", lib_dir.display()))
            .arg("-Wl,--disable-new-dtags"),
    };
    let out = cmd
        .args(["-lpthread", "-ldl", "-lm", "-lrt", "-lgcc_s", "-lc"])
        .arg("-o")
        .arg(&exe)
        .output()
        .expect("run the C compiler");
    assert!(
        out.status.success(),
        "compiling {} failed:\n{}{}",
        src.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    CExe(exe)
}

/// A running C program, killed and reaped when dropped unless [`finish`]
/// took it: a test that fails half-way leaves no process behind.
pub struct Proc(Option<Child>);

impl std::ops::Deref for Proc {
    type Target = Child;
    fn deref(&self) -> &Child {
        self.0.as_ref().expect("a Proc holds its child until finish or drop")
    }
}

impl std::ops::DerefMut for Proc {
    fn deref_mut(&mut self) -> &mut Child {
        self.0.as_mut().expect("a Proc holds its child until finish or drop")
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Spawns `exe` with piped stdout/stderr.
pub fn spawn(exe: &Path, args: &[&str]) -> Proc {
    Proc(Some(
        Command::new(exe)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn the C program"),
    ))
}

/// Reads stdout lines until one starts with `prefix` (a readiness marker)
/// and returns it. The child's own timeouts bound the wait: it prints the
/// marker or exits (EOF).
pub fn wait_for_line(child: &mut Child, prefix: &str) -> String {
    let stdout = child.stdout.as_mut().expect("piped stdout");
    let mut reader = BufReader::new(stdout);
    let mut line = String::new();
    loop {
        line.clear();
        let n = reader.read_line(&mut line).expect("read child stdout");
        assert!(n > 0, "child exited before printing {prefix:?}");
        if line.starts_with(prefix) {
            return line.trim_end().to_owned();
        }
    }
}

/// Waits for `child` up to `limit`, killing it on timeout; returns its
/// output (the part not yet consumed) and asserts it succeeded.
pub fn finish(mut proc: Proc, limit: Duration) -> Output {
    let mut child = proc.0.take().expect("a Proc holds its child until finish or drop");
    let deadline = Instant::now() + limit;
    loop {
        match child.try_wait().expect("try_wait") {
            Some(_) => break,
            None if Instant::now() >= deadline => {
                let _ = child.kill();
                let out = child.wait_with_output().expect("wait");
                panic!("C program timed out after {limit:?}; stderr:\n{}", String::from_utf8_lossy(&out.stderr));
            }
            // Polling a child's exit status has no handshake to wait on; the
            // sleep only paces the poll, it does not synchronise anything.
            None => std::thread::sleep(Duration::from_millis(5)),
        }
    }
    let out = child.wait_with_output().expect("wait");
    assert!(
        out.status.success(),
        "C program failed ({}):\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A segment name unique to this test process.
pub fn unique(tag: &str) -> String {
    format!("ffi-{}-{tag}", std::process::id())
}
