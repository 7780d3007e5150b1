//! # ring — arithmetic in Z_Q[X]/(X^N + 1), in RNS form
//!
//! The bottom layer of heinfer's engine (as Lattigo's `ring` and tfhe-rs's
//! `core_crypto` are): nothing here knows a key, a ciphertext or a scheme. Modules in
//! layers, each using only those listed before it:
//!
//! | layer | modules |
//! |-------|---------|
//! | facts | [`isa`] (the CPU's features, read once), [`arith`] (word modular arithmetic), [`error`], [`int_sums`] (the generic body of integer-weighted sums) |
//! | tables | [`primes`], [`twiddles`] |
//! | kernels | `x86_64` (per instruction set, side by side) |
//! | dispatch | [`kernels`] (slice kernels), [`ntt`] (transforms) |
//! | objects | [`poly`] (RNS polynomials and their buffer pool) |
//! | algorithms | [`rns`] (exact base conversion), [`automorphism`], [`sampling`], [`ternary`] (exact products by a ternary polynomial modulo a power of two) |
//!
//! Code above this crate never names an instruction set: it calls the dispatching
//! functions, which pick a kernel with a token from [`isa`].

#![deny(missing_docs)]

pub mod arith;
pub mod automorphism;
pub mod error;
pub mod int_sums;
pub mod isa;
pub mod kernels;
pub mod ntt;
pub mod poly;
pub mod primes;
pub mod rns;
pub mod sampling;
pub mod ternary;
pub mod twiddles;
#[cfg(target_arch = "x86_64")]
mod x86_64;

pub use arith::Modulus;
pub use automorphism::{Automorphisms, GaloisPerm};
pub use error::PrimeError;
pub use ntt::NttTable;
pub use poly::Poly;
pub use rns::BaseConverter;
pub use sampling::{fresh_seed, Sampler};
