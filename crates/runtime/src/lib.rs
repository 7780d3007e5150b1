//! # runtime — encrypted evaluation on the server side
//!
//! Holds evaluation keys (public), model weights (plaintext) and ciphertexts; never a
//! secret key: it depends on `ckks` without the `secret-key` feature. Network code
//! lives in `server` and `triton`, above this crate.

#![forbid(unsafe_code)]

pub mod assembly;
pub mod bgv;
pub mod circuit_privacy;
pub mod dp;
pub mod exec;
mod keydir;
pub mod keystore;
pub mod linear;
pub mod loader;
pub mod lwe;
pub mod protocol;
pub mod public;
pub mod served;
pub mod service;
pub mod tensor;
pub mod throughput;

/// The engine as this crate resolves it: without `secret-key`. The secret-key boundary
/// check (scripts/check-secret-key-boundary.sh) names `runtime::ckks::SecretKey` and
/// expects the compiler to refuse it.
pub use ckks;
pub use dp::{BudgetError, BudgetLedger, DpAccount};
pub use exec::{CompiledModel, LoadError, SpecError};
pub use keystore::{KeyId, KeyStore, KeyStoreError, Requirements};
pub use linear::LinearService;
pub use loader::{load_model, LoadedModel, ModelLoadError, Settings, SharedKeyStore};
pub use protocol::CLIENT_SPEC_PARAM;
pub use served::Service;
pub use service::{CkksService, Executable, Request, Response, RunError, ServiceError};
pub use tensor::TensorError;
