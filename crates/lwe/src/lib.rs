//! Seeded LWE for linear scoring (logistic and linear regression, linear SVMs): the
//! cheapest messages this project has for a model that is one affine map.
//!
//! - The client holds a ternary secret s ∈ {−1,0,1}^n (made from a 32-byte seed) and
//!   encrypts each input value as (a_i, b_i = ⟨a_i, s⟩ + e_i + m_i) mod q; every a_i is
//!   expanded from one public 32-byte seed, so a query is the seed and d words of log q bits.
//! - The server holds no key at all: score j is Σ_i v_ji·(a_i, b_i) + (0, bias_j), computed
//!   in wrapping 64-bit arithmetic (q is a power of two), then modulus-switched down to the
//!   answer modulus q' (rounding a and b to the top bits), so that an answer is k ciphertexts
//!   of n + 1 words of log q' bits.
//! - Decryption is approximate, as in CKKS: the phase b' − ⟨a', s⟩ is the scaled score plus
//!   a bounded error ([`noise`] gives the bound the compiler reports).
//!
//! Parameters: n = 2048 and log q ≤ 53, the Homomorphic Encryption Security Standard's
//! 128-bit bound for ring dimension 2048 with a ternary secret (plain LWE of dimension n is
//! at least as hard as the ring version the table is for); others are refused.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod error;
mod eval;
#[cfg(feature = "secret-key")]
mod keys;
pub mod noise;
mod params;
mod public;
mod wire;

pub use error::LweError;
pub use eval::{evaluate, evaluate_rerandomized};
#[cfg(feature = "secret-key")]
pub use keys::SecretKey;
pub use params::{Params, LOG_N_DEFAULT, MAX_LOG_Q, SIGMA};
pub use public::{zero_sampler, PublicKey, Rerandomizer, PK_ERROR_BOUND};
pub use wire::{Answer, Query, MAGIC, VERSION};
