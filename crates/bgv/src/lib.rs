//! # bgv — leveled RNS-BGV: exact arithmetic modulo t, secure by default
//!
//! The BGV scheme (Brakerski–Gentry–Vaikuntanathan, in the RNS form of Gentry–Halevi–Smart
//! and of Lattigo's `bgv` and OpenFHE's `BGVrns`) on [`rlwe`] (keys, encryption of ring
//! elements, hybrid key switching, the wire format) and [`ring`] (arithmetic). Values
//! stay in NTT form over the RNS chain, as CKKS's do; a ciphertext product is a tensor
//! plus relinearisation; modulus switching plays the part of CKKS's rescale.
//!
//! **Representation.** A ciphertext (c0, c1) here satisfies c0 + c1·s ≡ t⁻¹·x (mod Q)
//! where x = f·m + t·e is small: the usual BGV ciphertext scaled by t⁻¹ mod Q. In that
//! form BGV's encryption, relinearisation, rotation and modulus switching (with its
//! correction δ ≡ 0 mod t) are exactly the RLWE layer's operations — its keys (error
//! not multiplied by t), its key switching and CKKS's rounding division by the top
//! prime — so BGV shares every hot path with CKKS. The factor f ∈ Z_t^* (q_l⁻¹ after
//! each switch) is tracked per ciphertext and removed at decryption.
//!
//! **Noise.** Every ciphertext carries an upper bound on ‖x‖ (canonical embedding, which
//! bounds the coefficients), from the high-probability estimates of Costache–Smart and
//! Kim–Polyakov–Zucca (each random term within 6 standard deviations in every slot, a
//! failure probability below 2^-39) and the exact product rule. An operation whose bound
//! would reach Q_l/2 — where decryption could be wrong — is refused with
//! [`Error::NoiseBudgetExhausted`]; [`Ciphertext::noise_budget_bits`] reports what is left.
//!
//! Modules in layers, each using only those before it: [`error`] → [`params`] → [`noise`]
//! → [`encoding`] → [`ciphertext`] → [`encryption`] → [`eval`] → [`circuit`] (circuit privacy:
//! answers flooded under the client's public key) → [`throughput`] (exact integer networks in
//! layout T, with the choice of t and chain that holds them). The secret key, key
//! generation, decryption and the measured noise exist only with feature `secret-key`.

#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod ciphertext;
pub mod circuit;
pub mod encoding;
pub mod encryption;
pub mod error;
pub mod eval;
pub mod noise;
pub mod params;
pub mod throughput;

pub use ciphertext::{Ciphertext, SeededCiphertext};
pub use encoding::{Encoder, Plaintext};
pub use encryption::{decrypt_from_phase, Encryptor};
#[cfg(feature = "secret-key")]
pub use encryption::{Decryptor, KeyGenerator};
pub use error::{Error, Result};
pub use eval::Evaluator;
pub use params::{Parameters, ParametersBuilder};
#[cfg(feature = "secret-key")]
pub use rlwe::SecretKey;
pub use rlwe::{Decomposed, EvaluationKeys, GaloisKeys, ParamError, PublicKey, RelinKey, WireError};
