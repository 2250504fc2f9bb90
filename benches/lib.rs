//! Shared helpers for the criterion benchmarks (process spawning, pinning).
