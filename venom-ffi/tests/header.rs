//! The checked-in `include/venom.h` is what cbindgen generates from the
//! sources. `VENOM_BLESS=1` rewrites it.

use std::path::PathBuf;

#[test]
fn header_is_current() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let config = cbindgen::Config::from_file(dir.join("cbindgen.toml")).expect("cbindgen.toml");
    let bindings = cbindgen::Builder::new()
        .with_crate(&dir)
        .with_config(config)
        .generate()
        .expect("cbindgen generates the header");
    let mut generated = Vec::new();
    bindings.write(&mut generated);
    let checked_in_path = dir.join("include/venom.h");
    if std::env::var_os("VENOM_BLESS").is_some_and(|v| v == "1") {
        std::fs::write(&checked_in_path, &generated).expect("write include/venom.h");
        return;
    }
    let checked_in = std::fs::read(&checked_in_path).unwrap_or_default();
    if checked_in != generated {
        let tmp = std::env::temp_dir().join(format!("venom-{}.h", std::process::id()));
        std::fs::write(&tmp, &generated).expect("write the generated header");
        panic!(
            "venom-ffi/include/venom.h is stale.\n  diff: diff -u {} {}\n  fix:  VENOM_BLESS=1 cargo test -p venom-ffi --test header",
            checked_in_path.display(),
            tmp.display()
        );
    }
}

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
