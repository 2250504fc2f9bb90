//! Example programs live next to this file; see `Cargo.toml` for the list.
