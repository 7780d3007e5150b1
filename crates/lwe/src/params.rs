//! The LWE dimension and modulus, and the 128-bit security check on them.

use crate::error::LweError;

/// log2 of the default dimension n = 2048.
pub const LOG_N_DEFAULT: u32 = 11;
/// Largest log2 q this crate computes with (wrapping 64-bit words, products of two
/// residues never needed).
pub const MAX_LOG_Q: u32 = 63;
/// Standard deviation of the fresh error (the Homomorphic Encryption Standard's 3.2),
/// cut at 6σ by the sampler, so |e| ≤ 20.
pub const SIGMA: f64 = 3.2;

/// Largest log2 q for 128-bit classical security with a ternary secret, per the
/// Homomorphic Encryption Security Standard as updated in 2024 (ia.cr/2024/463; the same
/// table as `rlwe::security`), by log2 n.
const MAX_LOG_Q_128: [(u32, u32); 5] = [(11, 53), (12, 106), (13, 214), (14, 430), (15, 868)];

/// An LWE parameter set: dimension n = 2^log_n and modulus q = 2^log_q.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Params {
    log_n: u32,
    log_q: u32,
}

impl Params {
    /// A parameter set, refused unless it has 128-bit security and fits 64-bit words.
    pub fn new(log_n: u32, log_q: u32) -> Result<Self, LweError> {
        let bound = MAX_LOG_Q_128.iter().find(|(l, _)| *l == log_n).map(|&(_, b)| b.min(MAX_LOG_Q));
        match bound {
            Some(b) if (20..=b).contains(&log_q) => Ok(Self { log_n, log_q }),
            _ => Err(LweError::Insecure { log_n, log_q }),
        }
    }

    /// n = 2048, q = 2^53: the largest modulus 128-bit security allows at that dimension.
    pub fn default_128() -> Self {
        Self { log_n: LOG_N_DEFAULT, log_q: 53 }
    }

    /// The dimension n.
    pub fn n(&self) -> usize {
        1 << self.log_n
    }

    /// log2 n.
    pub fn log_n(&self) -> u32 {
        self.log_n
    }

    /// log2 q.
    pub fn log_q(&self) -> u32 {
        self.log_q
    }

    /// q − 1, the mask that reduces a wrapping 64-bit word modulo q.
    pub fn mask(&self) -> u64 {
        mask(self.log_q)
    }
}

/// 2^bits − 1.
pub(crate) fn mask(bits: u32) -> u64 {
    if bits >= 64 {
        u64::MAX
    } else {
        (1u64 << bits) - 1
    }
}

/// Expands the public halves a_0, a_1, … of a seeded query, n words each reduced modulo q,
/// one at a time (so memory stays at one vector whatever the number of inputs).
pub(crate) fn expand_a(params: Params, seed: [u8; 32], count: usize, mut f: impl FnMut(usize, &[u64])) {
    let mut rng = ring::sampling::Sampler::from_seed(seed);
    let n = params.n();
    let mut bytes = vec![0u8; n * 8];
    let mut a = vec![0u64; n];
    for i in 0..count {
        rng.fill_bytes(&mut bytes);
        for (w, c) in a.iter_mut().zip(bytes.chunks_exact(8)) {
            *w = u64::from_le_bytes(c.try_into().expect("8 bytes")) & params.mask();
        }
        f(i, &a);
    }
}
