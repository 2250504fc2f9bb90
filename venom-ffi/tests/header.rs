//! `include/venom.h` is a build output (build.rs runs cbindgen over `src/`
//! on every build, so it cannot go stale): it must compile as C and C++.

use std::path::PathBuf;

/// The header compiles cleanly as strict C99 and as C++11 (`extern "C"`
/// guards, no C-only constructs).
#[test]
fn header_compiles_as_c_and_cpp() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let tu = std::env::temp_dir().join(format!("venom-header-{}.c", std::process::id()));
    std::fs::write(&tu, "#include \"venom.h\"\nint venom_header_check(void) { return VENOM_OK; }\n").unwrap();
    let target = if cfg!(target_arch = "aarch64") { "aarch64-unknown-linux-gnu" } else { "x86_64-unknown-linux-gnu" };
    for (cpp, std_flag, lang) in [(false, "-std=c99", "c"), (true, "-std=c++11", "c++")] {
        let compiler = cc::Build::new()
            .cpp(cpp)
            .target(target)
            .host(target)
            .opt_level(0)
            .cargo_metadata(false)
            .try_get_compiler()
            .expect("a C/C++ compiler (install gcc and g++, or set CC/CXX)");
        let out = compiler
            .to_command()
            .args(["-x", lang, std_flag, "-Wall", "-Wextra", "-pedantic", "-Werror", "-fsyntax-only", "-I"])
            .arg(dir.join("include"))
            .arg(&tu)
            .output()
            .expect("run the compiler");
        assert!(out.status.success(), "venom.h does not compile as {lang}:\n{}", String::from_utf8_lossy(&out.stderr));
    }
    let _ = std::fs::remove_file(&tu);
}
