//! Shared helpers for the garbage/hostile-input tests: one deterministic PRNG, so that a failing
//! seed reproduces everywhere. (Benches keep their own copy: they cannot `mod` a tests/ file.)
#![allow(dead_code)]

/// Deterministic xorshift64 (Marsaglia); never seed it with 0.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    pub fn byte(&mut self) -> u8 {
        (self.next() & 0xff) as u8
    }

    /// `len` random bytes.
    pub fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.byte()).collect()
    }
}
