//! # ckks — leveled RNS-CKKS, secure by default
//!
//! Layers, bottom up: [`arith`] (word modular arithmetic), [`ntt`] (negacyclic
//! transforms), [`params`] (prime chains, the 128-bit security check and every
//! precomputed table), then the scheme: [`encoding`], [`keys`], [`encryption`],
//! [`eval`], and the versioned [`wire`] format. Nothing here knows about neural networks.

pub mod arith;
pub mod encoding;
pub mod encryption;
pub mod error;
pub mod eval;
#[cfg(target_arch = "x86_64")]
mod fma;
pub mod keys;
pub mod ntt;
#[cfg(target_arch = "x86_64")]
mod ntt_avx2;
#[cfg(target_arch = "x86_64")]
mod ntt_fma;
#[cfg(target_arch = "x86_64")]
mod ntt_simd;
pub mod params;
mod poly;
pub mod primes;
mod rns;
mod sampling;
mod simd;
pub mod wire;

pub use encoding::{Encoder, Plaintext, PreparedPlaintext};
#[cfg(feature = "secret-key")]
pub use encryption::Decryptor;
pub use encryption::{Ciphertext, Encryptor, SeededCiphertext};
pub use error::{Error, ParamError, Result, WireError};
pub use eval::{Decomposed, Evaluator};
pub use keys::{EvaluationKeys, GaloisKeys, KeySwitchKey, PublicKey, RelinKey};
#[cfg(feature = "secret-key")]
pub use keys::{KeyGenerator, SecretKey};
pub use num_complex::Complex64;
pub use params::{max_log_qp, Parameters, ParametersBuilder, ParamsSpec};
pub use wire::{read_any_ciphertext, read_any_ciphertext_limited, KeyId};
