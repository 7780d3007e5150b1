//! What `heinfer serve` lets one client, and all clients together, make it hold.
//!
//! Memory is bounded by these numbers, whatever clients send: a request body is
//! refused beyond `max_request_bytes`, its JSON part beyond `max_json_bytes`, and
//! the bodies of all requests being read or served together beyond
//! `max_inflight_bytes`; evaluations run at most one per model instance, with at
//! most `max_queue` more waiting. Time is bounded too, so that slow or silent
//! clients cannot hold connections (`max_connections`) for ever.

use std::time::Duration;

pub const DEFAULT_MAX_JSON_KB: usize = 1024;
pub const DEFAULT_MAX_INFLIGHT_MB: usize = 512;
pub const DEFAULT_MAX_QUEUE: usize = 16;
pub const DEFAULT_MAX_CONNECTIONS: usize = 256;
pub const DEFAULT_MAX_STREAMS: u32 = 16;
pub const DEFAULT_HEADER_TIMEOUT_S: u64 = 10;
pub const DEFAULT_BODY_TIMEOUT_S: u64 = 120;
pub const DEFAULT_EVAL_TIMEOUT_S: u64 = 600;

/// Every limit but the request size (which predates them: [`crate::Options::max_request_bytes`]).
#[derive(Debug, Clone)]
pub struct Limits {
    /// The JSON header of a binary-data request, a whole JSON request body, and any
    /// gRPC message other than ModelInfer. JSON parses into several times its size,
    /// so it gets a cap far below the binary tensors'.
    pub max_json_bytes: usize,
    /// Request bytes held at once by all requests being read or evaluated; beyond,
    /// new requests get 503 / UNAVAILABLE.
    pub max_inflight_bytes: usize,
    /// Requests waiting for a model instance (all models together); beyond, 503.
    pub max_queue: usize,
    /// Open connections per listener (HTTP and gRPC each); more wait in the backlog.
    pub max_connections: usize,
    /// Concurrent HTTP/2 streams (gRPC calls) per connection.
    pub max_streams_per_connection: u32,
    /// From a connection's accept (or the end of its last request) to the end of the
    /// next request's header: HTTP/1 headers, and the first bytes of an HTTP/2 connection.
    pub header_timeout: Duration,
    /// From a request's header to the last byte of its body.
    pub body_timeout: Duration,
    /// From a request's body to its answer: the wait for an instance and the evaluation.
    pub eval_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_json_bytes: DEFAULT_MAX_JSON_KB << 10,
            max_inflight_bytes: DEFAULT_MAX_INFLIGHT_MB << 20,
            max_queue: DEFAULT_MAX_QUEUE,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_streams_per_connection: DEFAULT_MAX_STREAMS,
            header_timeout: Duration::from_secs(DEFAULT_HEADER_TIMEOUT_S),
            body_timeout: Duration::from_secs(DEFAULT_BODY_TIMEOUT_S),
            eval_timeout: Duration::from_secs(DEFAULT_EVAL_TIMEOUT_S),
        }
    }
}

/// A limit that cannot work as set.
#[derive(Debug, thiserror::Error)]
pub enum LimitError {
    #[error("{flag} must be at least {min}")]
    TooSmall { flag: &'static str, min: u64 },
    #[error("--max-inflight-mb ({inflight} MB) is below --max-request-mb ({request} MB): the largest request could never be admitted")]
    InflightBelowRequest { inflight: usize, request: usize },
}

impl Limits {
    /// Refuses settings under which no request could ever be served.
    pub fn check(&self, max_request_bytes: usize) -> Result<(), LimitError> {
        let nonzero = [
            ("--max-json-kb", self.max_json_bytes as u64),
            ("--max-connections", self.max_connections as u64),
            ("--max-streams", self.max_streams_per_connection as u64),
            ("--header-timeout-s", self.header_timeout.as_millis() as u64),
            ("--body-timeout-s", self.body_timeout.as_millis() as u64),
            ("--eval-timeout-s", self.eval_timeout.as_millis() as u64),
        ];
        if let Some((flag, _)) = nonzero.iter().find(|(_, v)| *v == 0) {
            return Err(LimitError::TooSmall { flag, min: 1 });
        }
        if self.max_inflight_bytes < max_request_bytes {
            return Err(LimitError::InflightBelowRequest {
                inflight: self.max_inflight_bytes >> 20,
                request: max_request_bytes >> 20,
            });
        }
        Ok(())
    }
}
