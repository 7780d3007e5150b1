//! # client — the side that holds the secret key
//!
//! Key generation from a model's parameters, the secret-key file (readable by its
//! owner only), the evaluation-key bundle a server registers and its key id, and
//! [`Session`]: encrypt a sample into `ENCRYPTED_INPUT`, decrypt `ENCRYPTED_OUTPUT`
//! (privately, or for release: see [`release`]).

#![forbid(unsafe_code)]

pub mod aggregate;
pub mod batch;
pub mod bgv_session;
pub mod keys;
pub mod lwe_session;
pub mod multi;
pub mod paillier_session;
#[cfg(feature = "prefix")]
pub mod prefix;
pub mod public;
pub mod release;
pub mod session;

pub use batch::{batch_session, choose_layout, BatchLayout, BatchSession};
pub use bgv_session::{BgvSession, BgvSessionError};
pub use keys::{ClientError, ClientKeys};
pub use lwe_session::{LweSession, LweSessionError};
pub use model::ClientSpec;
pub use multi::MultiSession;
pub use paillier_session::{PaillierSession, PaillierSessionError};
pub use release::{decrypt_answer_for_release, decrypt_for_release, Guarantee, Release, ReleaseError};
pub use session::{Session, SessionError};
