//! How a request fails, as both protocols map it (HTTP status, gRPC code): the
//! bottom layer of the server's modules, so admission and inference can both name it.

use runtime::ServiceError;
use thiserror::Error;

/// A request that failed; its message goes back to the client verbatim.
#[derive(Debug, Error)]
pub enum RequestError {
    /// malformed framing, wrong tensors, or the runtime refused the inputs
    #[error("{0}")]
    BadRequest(String),
    /// the runtime refused the request (keys, ciphertexts) or its evaluation failed;
    /// kept typed so that logs and callers see the cause
    #[error(transparent)]
    Refused(#[from] ServiceError),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Unavailable(String),
    #[error("{0}")]
    Internal(String),
    /// a body, header or message past a configured size
    #[error("{0}")]
    TooLarge(String),
    /// a body that did not arrive in time
    #[error("{0}")]
    Timeout(String),
    /// an evaluation (with its wait for an instance) past its deadline
    #[error("{0}")]
    Deadline(String),
}

impl RequestError {
    pub fn bad(msg: impl Into<String>) -> Self {
        RequestError::BadRequest(msg.into())
    }

    pub fn unknown_model(name: &str, version: Option<&str>) -> Self {
        // Triton's wording, which clients and tests match on.
        match version {
            Some(v) if !v.is_empty() => {
                RequestError::NotFound(format!("Request for unknown model: '{name}' version {v} is not found"))
            }
            _ => RequestError::NotFound(format!("Request for unknown model: '{name}' is not found")),
        }
    }
}
