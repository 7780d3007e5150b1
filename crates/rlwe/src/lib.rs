//! # rlwe — what every RLWE scheme shares
//!
//! On [`ring`], below the schemes (as Lattigo's `core/rlwe`): parameter sets and their
//! 128-bit security check, keys (secret, public, key-switching: relinearisation and
//! Galois), plaintexts and ciphertexts as ring elements with their level and scale,
//! encryption and decryption of ring elements, hybrid key switching and hoisting, and
//! the versioned wire format. Nothing here encodes a message: that is the schemes'.
//!
//! Modules in layers, each using only those before it: [`error`], [`security`] →
//! [`params`] → [`plaintext`], [`keys`] → [`encryption`] → [`keyswitch`] →
//! [`packing`] (compact LWE queries) → [`answer`] (compact answers) → [`multiparty`] (collective keys, threshold decryption) → [`wire`].
//!
//! The secret key, key generation and decryption exist only with feature `secret-key`:
//! server-side crates depend on this crate without it and cannot name a secret key.

#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod answer;
pub mod encryption;
pub mod error;
pub mod keys;
pub mod keyswitch;
pub mod multiparty;
pub mod packing;
pub mod params;
pub mod plaintext;
pub mod security;
pub mod wire;

pub use ring;

pub use answer::{AnswerShape, CompactAnswer};
#[cfg(feature = "secret-key")]
pub use encryption::Decryptor;
pub use encryption::{Ciphertext, Encryptor, SeededCiphertext};
pub use error::{Error, ParamError, Result, WireError};
pub use keys::{AnswerKey, EvaluationKeys, GaloisKeys, KeySwitchKey, PublicKey, RelinKey};
#[cfg(feature = "secret-key")]
pub use keys::{KeyGenerator, SecretKey};
pub use keyswitch::{Addend, Decomposed};
pub use packing::{pack, pack_linear, packing_elements, LinearLeaves, LweQuery};
pub use params::{KeyBasisSpec, Parameters, ParametersBuilder, ParamsSpec, Scheme};
pub use plaintext::{check_scale, Plaintext, PreparedPlaintext};
pub use security::max_log_qp;
pub use wire::{read_any_ciphertext, read_any_ciphertext_limited, KeyId};
