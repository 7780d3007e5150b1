//! # ckks — leveled RNS-CKKS, secure by default
//!
//! The CKKS scheme on [`rlwe`] (keys, encryption, key switching, wire format) and
//! [`ring`] (arithmetic): [`encoding`] (complex slots ↔ ring elements through the
//! canonical embedding), [`eval`] (the evaluator: scales, rescale, levels, products,
//! rotations) and [`throughput`] (layout T: one ciphertext per feature, integer-weighted
//! sums, lazy relinearisation). Nothing here knows about neural networks, and nothing names an
//! instruction set. The `rlwe` types a CKKS user needs are re-exported, so `ckks` is
//! the one import of a CKKS application.

#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod encoding;
pub mod eval;
pub mod throughput;

pub use rlwe::{encryption, error, keys, params, plaintext, wire};

pub use encoding::{compact_query_coefficients, compact_query_transform, decode_coefficients, Encoder};
pub use eval::Evaluator;
pub use num_complex::Complex64;
#[cfg(feature = "secret-key")]
pub use rlwe::Decryptor;
pub use rlwe::{
    max_log_qp, read_any_ciphertext, read_any_ciphertext_limited, Ciphertext, Decomposed, Encryptor, Error,
    EvaluationKeys, GaloisKeys, KeyBasisSpec, KeyId, KeySwitchKey, ParamError, Parameters, ParametersBuilder,
    ParamsSpec, Plaintext, PreparedPlaintext, PublicKey, RelinKey, Result, SeededCiphertext, WireError,
};
pub use rlwe::{packing_elements, AnswerKey, AnswerShape, CompactAnswer, LinearLeaves, LweQuery};
#[cfg(feature = "secret-key")]
pub use rlwe::{KeyGenerator, SecretKey};
