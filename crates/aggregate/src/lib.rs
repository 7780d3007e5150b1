//! # aggregate — secure aggregation rounds, server side
//!
//! Many clients each encrypt a vector under a committee's collective public key
//! (`rlwe::multiparty`); the server adds what arrives — a client that drops out costs
//! nothing — and, once the round closes, t of the n committee members each send one
//! decryption share of the sum; the server combines them into the sum in the clear. No
//! single party, the server included, can decrypt one client's vector.
//!
//! Every contribution and share is signed (Ed25519, `ed25519-dalek`) by a key the round
//! was created with, and accepted once. A round keeps only the running sum, never the
//! contributions, so its memory is one vector of ciphertexts whatever the number of
//! clients; it is saved to a directory after every change, so a restart loses no round.
//!
//! Distributed differential privacy ([`dp`]): clients clip, round and add their share of
//! discrete-Gaussian noise; an RDP accountant gives (ε, δ) per round and over rounds.
//!
//! Modules in layers: [`error`] → [`auth`], [`dp`] → [`round`] → [`store`].

#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod auth;
pub mod dp;
pub mod error;
pub mod round;
pub mod store;

pub use auth::{signing_message, Signer};
pub use dp::{epsilon_after, privatize, Accountant, DpConfig};
pub use error::AggregateError;
pub use round::{Packing, Round, RoundConfig, Status};
