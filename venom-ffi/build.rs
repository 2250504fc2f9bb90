//! Generates `include/venom.h` from this crate's sources with cbindgen, so
//! the C header can never drift from the Rust ABI (it is a build output,
//! not a checked-in file; `.gitignore` lists it).
//!
//! The file is rewritten only when its content changes (an unchanged header
//! keeps its mtime, so C builds that depend on it are not redone), through a
//! temporary file and a rename, so a concurrent debug and release build never
//! leave a half-written header. Writing into the source tree (as
//! cbindgen's own docs do) would fail `cargo package`'s verification; the
//! crate is not published, and a C user needs the header at a stable path.

use std::path::{Path, PathBuf};

fn main() {
    let dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    println!("cargo:rerun-if-changed=src");
    println!("cargo:rerun-if-changed=cbindgen.toml");
    println!("cargo:rerun-if-changed=include/venom.h");
    let config = cbindgen::Config::from_file(dir.join("cbindgen.toml")).expect("venom-ffi/cbindgen.toml parses");
    let bindings = match cbindgen::Builder::new().with_crate(&dir).with_config(config).generate() {
        Ok(b) => b,
        // A syntax error in src/ is reported by rustc with a better message;
        // leave the old header alone and let the compile fail there.
        Err(e) => {
            println!("cargo:warning=venom.h not regenerated: {e}");
            return;
        }
    };
    let mut header = Vec::new();
    bindings.write(&mut header);
    let out = dir.join("include/venom.h");
    write_if_changed(&out, &header);
}

fn write_if_changed(path: &Path, content: &[u8]) {
    if std::fs::read(path).is_ok_and(|old| old == content) {
        return;
    }
    std::fs::create_dir_all(path.parent().expect("include/")).expect("create venom-ffi/include");
    let tmp = path.with_extension(format!("h.{}.tmp", std::process::id()));
    std::fs::write(&tmp, content).expect("write the generated header");
    std::fs::rename(&tmp, path).expect("move the generated header into place");
}
