//! `heinfer serve`: the KServe v2 server (crate `server`) for a model repository.
//! Loads every model before binding, prints `heinfer serve ready http=… grpc=…` to
//! stderr once both listeners accept, and on SIGTERM/SIGINT stops accepting and
//! lets in-flight requests finish.

use std::path::PathBuf;

pub struct ServeArgs {
    pub repository: PathBuf,
    pub host: String,
    pub http_port: u16,
    pub grpc_port: u16,
    pub key_store_mb: Option<usize>,
    pub key_store_dir: Option<PathBuf>,
    pub max_request_mb: usize,
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
    };
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
