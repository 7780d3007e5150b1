//! What a round refuses, in words the sender can act on.

use thiserror::Error;

/// Why a round operation was refused. The round is unchanged by a refused operation.
#[derive(Debug, Error)]
pub enum AggregateError {
    /// The round's configuration cannot be used.
    #[error("round configuration: {0}")]
    Config(String),
    /// Signed by a key the round does not know for this role, or a bad signature.
    #[error("authentication: {0}")]
    Auth(String),
    /// A contributor that has contributed already, or a member that has shared already.
    #[error("{0} already accepted; each is accepted once")]
    Duplicate(String),
    /// The operation does not fit the round's state (e.g. a share before the round closed).
    #[error("round {round} is {status}: {what}")]
    State {
        /// The round.
        round: String,
        /// Its status, in words.
        status: String,
        /// What was refused.
        what: String,
    },
    /// A malformed or oversized payload, or ciphertexts/shares that do not fit the round.
    #[error("payload: {0}")]
    Payload(String),
    /// The engine refused (parameters, wire format, protocol).
    #[error(transparent)]
    Engine(#[from] rlwe::Error),
    /// A ciphertext or share that does not read under the round's parameters.
    #[error("wire: {0}")]
    Wire(#[from] rlwe::WireError),
    /// The round's directory.
    #[error("round storage {path}: {source}")]
    Io {
        /// The file or directory.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
}
