//! Generation of NTT-friendly prime chains.

use crate::arith::is_prime;
use crate::error::PrimeError;

/// `count` distinct primes of exactly `bits` bits with q ≡ 1 (mod 2N), the largest
/// first, none of them in `exclude`. Primes close to 2^bits keep the scale drift of
/// rescaling small.
pub fn ntt_primes(bits: u32, n: usize, count: usize, exclude: &[u64]) -> Result<Vec<u64>, PrimeError> {
    if !(20..=61).contains(&bits) {
        return Err(PrimeError::PrimeBits { bits });
    }
    let two_n = 2 * n as u64;
    let top = 1u64 << bits;
    let floor = 1u64 << (bits - 1);
    let mut out = Vec::with_capacity(count);
    // Largest candidate below 2^bits that is ≡ 1 mod 2N.
    let mut c = top - two_n + 1;
    while out.len() < count {
        if c <= floor {
            return Err(PrimeError::NotEnoughPrimes { bits, n, count });
        }
        if is_prime(c) && !exclude.contains(&c) {
            out.push(c);
        }
        c -= two_n;
    }
    Ok(out)
}
