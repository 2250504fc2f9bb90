//! Shared helpers for the criterion benchmarks.
#![warn(missing_docs)]

/// xorshift64: cheap, deterministic bytes for the benches' writes (not for
/// anything that needs real randomness).
///
/// ```
/// let mut r = venom_benches::Rng(0x9E37_79B9_7F4A_7C15);
/// assert_ne!(r.next(), r.next());
/// ```
pub struct Rng(pub u64);

impl Rng {
    /// The next value of the sequence (the state must start nonzero).
    #[allow(clippy::should_implement_trait)] // not an Iterator: it never ends
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}
