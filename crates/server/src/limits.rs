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

/// The limits as `heinfer-server` / `heinfer serve` flags (flattened into [`crate::ServeArgs`]).
#[derive(clap::Args, Debug, Clone)]
pub struct LimitArgs {
    /// largest JSON request body, JSON header of a binary-data request, or non-infer gRPC message, in KB
    #[arg(long, default_value_t = DEFAULT_MAX_JSON_KB)]
    pub max_json_kb: usize,
    /// request bytes held at once by all requests being read or evaluated, in MB; beyond, 503 / UNAVAILABLE
    #[arg(long, default_value_t = DEFAULT_MAX_INFLIGHT_MB)]
    pub max_inflight_mb: usize,
    /// requests that may wait for a busy model instance (all models); beyond, 503 / UNAVAILABLE
    #[arg(long, default_value_t = DEFAULT_MAX_QUEUE)]
    pub max_queue: usize,
    /// open connections per listener (HTTP, gRPC); more wait in the accept backlog
    #[arg(long, default_value_t = DEFAULT_MAX_CONNECTIONS)]
    pub max_connections: usize,
    /// concurrent gRPC calls (HTTP/2 streams) per connection
    #[arg(long, default_value_t = DEFAULT_MAX_STREAMS)]
    pub max_streams: u32,
    /// seconds for a request's header to arrive (from accept, or from the previous request)
    #[arg(long, default_value_t = DEFAULT_HEADER_TIMEOUT_S)]
    pub header_timeout_s: u64,
    /// seconds for a request's body to arrive, after its header
    #[arg(long, default_value_t = DEFAULT_BODY_TIMEOUT_S)]
    pub body_timeout_s: u64,
    /// seconds for an evaluation, its wait for an instance included; past it the work stops
    #[arg(long, default_value_t = DEFAULT_EVAL_TIMEOUT_S)]
    pub eval_timeout_s: u64,
}

impl LimitArgs {
    pub fn limits(&self) -> Limits {
        Limits {
            max_json_bytes: self.max_json_kb.saturating_mul(1 << 10),
            max_inflight_bytes: self.max_inflight_mb.saturating_mul(1 << 20),
            max_queue: self.max_queue,
            max_connections: self.max_connections,
            max_streams_per_connection: self.max_streams,
            header_timeout: Duration::from_secs(self.header_timeout_s),
            body_timeout: Duration::from_secs(self.body_timeout_s),
            eval_timeout: Duration::from_secs(self.eval_timeout_s),
        }
    }
}
