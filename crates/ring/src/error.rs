//! Errors of the ring layer.

use thiserror::Error;

/// No prime chain of the asked shape exists.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PrimeError {
    /// Primes are 20 to 61 bits: below, the NTT has too few candidates; above, lazy
    /// reductions overflow 64-bit words.
    #[error("prime size of {bits} bits is outside 20..=61")]
    PrimeBits {
        /// The size asked for.
        bits: u32,
    },
    /// Fewer primes of that size are ≡ 1 mod 2N than were asked for.
    #[error("not enough {bits}-bit primes ≡ 1 mod 2N for N = {n} (wanted {count})")]
    NotEnoughPrimes {
        /// The size asked for.
        bits: u32,
        /// The ring degree.
        n: usize,
        /// How many were asked for.
        count: usize,
    },
}
