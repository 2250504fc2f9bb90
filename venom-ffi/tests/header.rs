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
