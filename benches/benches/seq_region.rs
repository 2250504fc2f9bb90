//! Placeholder replaced by the SeqRegion bandwidth benchmark.
fn main() {}
