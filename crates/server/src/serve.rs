//! Serving a model repository until SIGTERM/SIGINT: what `heinfer-server` and
//! `heinfer serve` both run. Loads every model before binding, prints
//! `heinfer serve ready http=… grpc=…` to stderr once both listeners accept, and on a
//! signal stops accepting and lets in-flight requests finish.

use std::path::PathBuf;

use runtime::protocol::DEFAULT_MAX_REQUEST_MB;

/// The command line of `heinfer-server` (and of `heinfer serve`, which flattens it).
#[derive(Debug, Clone, clap::Args)]
pub struct ServeArgs {
    /// the model repository (`heinfer compile -o DIR` writes one)
    pub model_repository: PathBuf,
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// 0 picks a free port (printed in the ready line)
    #[arg(long, default_value_t = 8000)]
    pub http_port: u16,
    #[arg(long, default_value_t = 8001)]
    pub grpc_port: u16,
    /// evaluation-key store size in MB [default: a config's heinfer_key_store_mb, else 2048]
    #[arg(long)]
    pub key_store_mb: Option<usize>,
    /// keep registered key bundles in this directory (shared by replicas) [default: a config's heinfer_key_store_dir]
    #[arg(long)]
    pub key_store_dir: Option<PathBuf>,
    /// bound on the key directory in MB; the least recently used bundles go beyond it [default: a config's heinfer_key_store_dir_mb, else none]
    #[arg(long)]
    pub key_store_dir_mb: Option<usize>,
    /// where secure-aggregation rounds are saved (default: <key-store-dir>/aggregate when
    /// a key-store directory is given; otherwise rounds live in memory only); with it, the
    /// model repository may be empty (an aggregation-only server)
    #[arg(long)]
    pub aggregate_dir: Option<PathBuf>,
    /// largest HTTP request body / gRPC message, in MB
    #[arg(long, default_value_t = DEFAULT_MAX_REQUEST_MB)]
    pub max_request_mb: usize,
    #[command(flatten)]
    pub limits: crate::limits::LimitArgs,
}

pub fn serve(a: ServeArgs) -> Result<(), String> {
    crate::init_logging();
    if a.max_request_mb == 0 {
        return Err("--max-request-mb must be at least 1".into());
    }
    // Settings that could never admit a request are refused before the (slow) load.
    a.limits.limits().check(a.max_request_mb.saturating_mul(1 << 20)).map_err(|e| e.to_string())?;
    // Loading encodes every weight: CPU work, done before the async runtime starts.
    // A server given --aggregate-dir may hold no model: it then serves aggregation only.
    let aggregation_only = a.aggregate_dir.is_some();
    let aggregate_dir = a.aggregate_dir.or_else(|| a.key_store_dir.as_ref().map(|d| d.join("aggregate")));
    let ko =
        crate::KeyStoreOptions { capacity_mb: a.key_store_mb, dir: a.key_store_dir, dir_quota_mb: a.key_store_dir_mb };
    let repo = crate::repo::load_with(&a.model_repository, &ko, aggregation_only).map_err(|e| e.to_string())?;
    let opts = crate::Options {
        host: a.host,
        http_port: a.http_port,
        grpc_port: a.grpc_port,
        max_request_bytes: a.max_request_mb.saturating_mul(1 << 20),
        limits: a.limits.limits(),
        aggregate_dir,
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("heinfer-serve")
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?;
    rt.block_on(async {
        let srv = crate::Server::start(repo, &opts).await.map_err(|e| e.to_string())?;
        // Plain eprintln, not a log event: fixtures wait for this exact line.
        eprintln!("{}", srv.ready_line());
        crate::shutdown_signal().await;
        tracing::info!("shutting down: in-flight requests finish, new connections are refused");
        srv.shutdown().await.map_err(|e| e.to_string())?;
        tracing::info!("stopped");
        Ok(())
    })
}
