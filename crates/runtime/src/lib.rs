//! # runtime — encrypted evaluation on the server side
//!
//! Holds evaluation keys (public), model weights (plaintext) and ciphertexts; never a
//! secret key: it depends on `ckks` without the `secret-key` feature. Network code
//! lives in `server` and `triton`, above this crate.

pub mod exec;
pub mod keystore;
pub mod service;
pub mod tensor;

pub use exec::{CompiledModel, LoadError, SpecError, CLIENT_SPEC_PARAM};
pub use keystore::{KeyId, KeyStore, KeyStoreError};
pub use service::{Executable, Request, Response, RunError, Service, ServiceError};
pub use tensor::TensorError;
