//! `heinfer serve`: the KServe v2 server (crate `server`) for a model repository.
//! Loads every model before binding, prints `heinfer serve ready http=… grpc=…` to
//! stderr once both listeners accept, and on SIGTERM/SIGINT stops accepting and
//! lets in-flight requests finish.

use std::path::PathBuf;
use std::time::Duration;

use server::limits as l;

/// What clients may make the server hold, and for how long (`server::Limits`).
#[derive(clap::Args, Debug, Clone)]
pub struct LimitArgs {
    /// largest JSON request body, JSON header of a binary-data request, or non-infer gRPC message, in KB
    #[arg(long, default_value_t = l::DEFAULT_MAX_JSON_KB)]
    pub max_json_kb: usize,
    /// request bytes held at once by all requests being read or evaluated, in MB; beyond, 503 / UNAVAILABLE
    #[arg(long, default_value_t = l::DEFAULT_MAX_INFLIGHT_MB)]
    pub max_inflight_mb: usize,
    /// requests that may wait for a busy model instance (all models); beyond, 503 / UNAVAILABLE
    #[arg(long, default_value_t = l::DEFAULT_MAX_QUEUE)]
    pub max_queue: usize,
    /// open connections per listener (HTTP, gRPC); more wait in the accept backlog
    #[arg(long, default_value_t = l::DEFAULT_MAX_CONNECTIONS)]
    pub max_connections: usize,
    /// concurrent gRPC calls (HTTP/2 streams) per connection
    #[arg(long, default_value_t = l::DEFAULT_MAX_STREAMS)]
    pub max_streams: u32,
    /// seconds for a request's header to arrive (from accept, or from the previous request)
    #[arg(long, default_value_t = l::DEFAULT_HEADER_TIMEOUT_S)]
    pub header_timeout_s: u64,
    /// seconds for a request's body to arrive, after its header
    #[arg(long, default_value_t = l::DEFAULT_BODY_TIMEOUT_S)]
    pub body_timeout_s: u64,
    /// seconds for an evaluation, its wait for an instance included; past it the work stops
    #[arg(long, default_value_t = l::DEFAULT_EVAL_TIMEOUT_S)]
    pub eval_timeout_s: u64,
}

impl LimitArgs {
    pub fn limits(&self) -> server::Limits {
        server::Limits {
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

pub struct ServeArgs {
    pub repository: PathBuf,
    pub host: String,
    pub http_port: u16,
    pub grpc_port: u16,
    pub key_store_mb: Option<usize>,
    pub key_store_dir: Option<PathBuf>,
    pub max_request_mb: usize,
    pub limits: LimitArgs,
}

pub fn serve(a: ServeArgs) -> Result<(), String> {
    server::init_logging();
    if a.max_request_mb == 0 {
        return Err("--max-request-mb must be at least 1".into());
    }
    // Loading encodes every weight: CPU work, done before the async runtime starts.
    let ko = server::KeyStoreOptions { capacity_mb: a.key_store_mb, dir: a.key_store_dir };
    let repo = server::repo::load(&a.repository, &ko).map_err(|e| e.to_string())?;
    let opts = server::Options {
        host: a.host,
        http_port: a.http_port,
        grpc_port: a.grpc_port,
        max_request_bytes: a.max_request_mb.saturating_mul(1 << 20),
        limits: a.limits.limits(),
    };
    opts.limits.check(opts.max_request_bytes).map_err(|e| e.to_string())?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("heinfer-serve")
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?;
    rt.block_on(async {
        let srv = server::Server::start(repo, &opts).await.map_err(|e| e.to_string())?;
        // Plain eprintln, not a log event: fixtures wait for this exact line.
        eprintln!("{}", srv.ready_line());
        server::shutdown_signal().await;
        tracing::info!("shutting down: in-flight requests finish, new connections are refused");
        srv.shutdown().await.map_err(|e| e.to_string())?;
        tracing::info!("stopped");
        Ok(())
    })
}
