//! # client — the side that holds the secret key
//!
//! Key generation from a model's parameters, the secret-key file (readable by its
//! owner only), the evaluation-key bundle a server registers, and its key id.

pub mod keys;

pub use keys::{ClientError, ClientKeys};
