//! Paillier encryption for linear scoring (logistic and linear regression, linear SVMs):
//! a client makes a key pair and sends only its public key; the server evaluates k scores
//! Σ w·x + b on d encrypted inputs; the client decrypts the scores exactly.
//!
//! Arithmetic is GMP's (through `rug`). What makes it fast:
//! - encryption with the secret key draws r^n as g_p^a mod p², g_q^b mod q² from fixed-base
//!   tables (no squarings) and g^m = 1 + m·n;
//! - decryption works modulo p² and q² with exponents p−1, q−1 (or modulo p² alone for
//!   scores of known bound);
//! - evaluation is one Bos–Coster multi-exponentiation per score (and one inversion for the
//!   negative weights);
//! - answers are re-randomized from a fixed-base table (or a fresh r^n, or not at all), inline
//!   or from a pool precomputed while the server is idle.
//!
//! Keys have at least 3072-bit moduli (128-bit security, NIST SP 800-57); smaller ones are
//! refused by key generation and by every reader (the feature `insecure-test-keys` adds
//! `SecretKey::generate_insecure` for fast tests, whose keys no reader takes). The secret key, key
//! generation, encryption and decryption are behind the `secret-key` feature, so that server
//! crates cannot name them.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod bigint;
mod encoding;
mod error;
mod key_id;
mod keys;
mod linear;
mod wire;

pub use encoding::{FixedPoint, MAX_ENCODED_BITS, MAX_FRAC_BITS};
pub use error::PaillierError;
pub use key_id::KeyId;
#[cfg(feature = "secret-key")]
pub use keys::SecretKey;
pub use keys::{Ciphertext, PublicKey, MAX_MODULUS_BITS, MIN_MODULUS_BITS};
pub use linear::{Evaluator, LinearModel, Rerandomize};
pub use rug::Integer;
pub use wire::{MAGIC, VERSION};
