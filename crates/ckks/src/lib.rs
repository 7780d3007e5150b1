//! # ckks — leveled RNS-CKKS, secure by default
//!
//! Layers, bottom up: [`arith`] (word modular arithmetic), [`ntt`] (negacyclic
//! transforms), [`params`] (prime chains, the 128-bit security check and every
//! precomputed table), then the scheme: [`encoding`], [`keys`], [`encryption`],
//! [`eval`], and the versioned [`wire`] format. Nothing here knows about neural networks.

pub mod arith;
pub mod error;
pub mod ntt;
#[cfg(target_arch = "x86_64")]
mod ntt_simd;
pub mod params;
pub mod primes;
mod rns;
pub mod wire;

pub use error::{Error, ParamError, Result, WireError};
pub use params::{max_log_qp, Parameters, ParametersBuilder, ParamsSpec};
