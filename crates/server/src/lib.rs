//! # server — `heinfer-server` (and `heinfer serve`)
//!
//! A KServe v2 inference server for a model repository written by `heinfer compile`:
//! HTTP with Triton's binary-data extension (axum) and gRPC
//! `inference.GRPCInferenceService` (tonic), so the stock `tritonclient` talks to it
//! as to Triton with the heinfer backend. Every inference goes through
//! `runtime::Service`, the same request path the Triton backend uses; this crate is
//! only protocol framing, routing, limits, statistics, logs and lifecycle.
//!
//! The `heinfer-server` binary (src/main.rs) is what operators run: it links no client
//! code, so it cannot name a secret key (`runtime` resolves `ckks` without
//! `secret-key`; scripts/check-secret-key-boundary.sh proves it on this crate built
//! alone). `heinfer serve` runs the same [`serve()`].
//!
//! ```no_run
//! # async fn f() -> Result<(), server::ServerError> {
//! let repo = server::repo::load("model_repository".as_ref(), &Default::default())?;
//! let srv = server::Server::start(repo, &server::Options::default()).await?;
//! eprintln!("{}", srv.ready_line());
//! server::shutdown_signal().await;
//! srv.shutdown().await?;
//! # Ok(()) }
//! ```

#![forbid(unsafe_code)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use thiserror::Error;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub mod admission;
pub mod aggregation;
pub mod aggregation_grpc;
pub mod config;
pub mod error;
pub mod grpc;
pub mod http;
pub mod infer;
pub mod limits;
pub mod merge;
pub mod pbtxt;
pub mod repo;
pub mod serve;

pub use infer::RequestError;
pub use limits::Limits;
pub use repo::{KeyStoreOptions, LoadError, Repository};
/// The runtime as this crate resolves it (the secret-key boundary check names
/// `server::runtime::ckks::SecretKey` and expects it not to exist).
pub use runtime;
pub use runtime::protocol::DEFAULT_MAX_REQUEST_MB;
pub use serve::{serve, ServeArgs};

/// The protocol messages, generated from `proto/inference.proto` by build.rs.
pub mod pb {
    #![allow(clippy::all, missing_docs)]
    tonic::include_proto!("inference");
}

/// The aggregation API's messages, generated from `proto/aggregate.proto` by build.rs.
pub mod pb_aggregate {
    #![allow(clippy::all, missing_docs)]
    tonic::include_proto!("heinfer.aggregate.v1");
}

pub const SERVER_NAME: &str = "heinfer";
/// KServe/Triton protocol extensions this server implements.
pub const EXTENSIONS: &[&str] = &["binary_tensor_data", "model_configuration", "statistics"];

pub(crate) fn server_metadata_json() -> serde_json::Value {
    serde_json::json!({ "name": SERVER_NAME, "version": env!("CARGO_PKG_VERSION"), "extensions": EXTENSIONS })
}

#[derive(Debug, Error)]
pub enum ServerError {
    #[error(transparent)]
    Load(#[from] LoadError),
    #[error(
        "cannot listen on {addr} for {proto}: {source} (is the port in use? pass another, or 0 for any free port)"
    )]
    Bind { proto: &'static str, addr: String, source: std::io::Error },
    #[error("HTTP server: {0}")]
    Http(std::io::Error),
    #[error("gRPC server: {0}")]
    Grpc(String),
    #[error(transparent)]
    Limits(#[from] limits::LimitError),
    #[error("{0}")]
    Aggregation(String),
}

/// Where and how to listen.
#[derive(Debug, Clone)]
pub struct Options {
    pub host: String,
    /// 0 picks a free port (see [`Server::http_addr`])
    pub http_port: u16,
    pub grpc_port: u16,
    /// Largest HTTP body and gRPC message accepted (and sent): key bundles are tens of MB.
    pub max_request_bytes: usize,
    /// What clients together may make the server hold, and for how long.
    pub limits: Limits,
    /// Where aggregation rounds are saved (none: in memory only, lost on restart).
    pub aggregate_dir: Option<std::path::PathBuf>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            host: "127.0.0.1".into(),
            http_port: 0,
            grpc_port: 0,
            max_request_bytes: DEFAULT_MAX_REQUEST_MB << 20,
            limits: Limits::default(),
            aggregate_dir: None,
        }
    }
}

/// What every handler shares.
pub struct AppState {
    pub repo: Repository,
    /// false once shutdown begins: readiness probes fail, in-flight requests finish
    pub ready: AtomicBool,
    pub max_request_bytes: usize,
    pub admission: admission::Admission,
    /// Secure-aggregation rounds (`aggregation`).
    pub rounds: aggregation::Rounds,
}

impl AppState {
    /// The model by name; `version` (if given) must be the one served.
    pub fn model(&self, name: &str, version: Option<&str>) -> Result<Arc<repo::LoadedModel>, RequestError> {
        match self.repo.models.get(name) {
            Some(m) if version.is_none_or(str::is_empty) || version == Some(m.version.as_str()) => Ok(m.clone()),
            _ => Err(RequestError::unknown_model(name, version)),
        }
    }
}

/// A running server: both listeners bound and serving.
pub struct Server {
    state: Arc<AppState>,
    http_addr: SocketAddr,
    grpc_addr: SocketAddr,
    stop: watch::Sender<bool>,
    http: JoinHandle<std::io::Result<()>>,
    grpc: JoinHandle<Result<(), String>>,
}

async fn bind(proto: &'static str, host: &str, port: u16) -> Result<TcpListener, ServerError> {
    let addr = format!("{host}:{port}");
    TcpListener::bind(&addr).await.map_err(|source| ServerError::Bind { proto, addr, source })
}

pub(crate) async fn stopped(mut rx: watch::Receiver<bool>) {
    // Either a `true` arrives or the sender is gone; both mean stop.
    let _ = rx.wait_for(|s| *s).await;
}

impl Server {
    /// Binds both listeners and starts serving on the current tokio runtime.
    pub async fn start(repo: Repository, opts: &Options) -> Result<Server, ServerError> {
        opts.limits.check(opts.max_request_bytes)?;
        let state = Arc::new(AppState {
            repo,
            ready: AtomicBool::new(false),
            max_request_bytes: opts.max_request_bytes,
            admission: admission::Admission::new(opts.max_request_bytes, opts.limits.clone()),
            rounds: aggregation::Rounds::open(opts.aggregate_dir.clone()).map_err(ServerError::Aggregation)?,
        });
        let http_l = bind("HTTP", &opts.host, opts.http_port).await?;
        let grpc_l = bind("gRPC", &opts.host, opts.grpc_port).await?;
        let http_addr = http_l.local_addr().map_err(ServerError::Http)?;
        let grpc_addr = grpc_l.local_addr().map_err(|e| ServerError::Grpc(e.to_string()))?;
        let (stop, rx) = watch::channel(false);

        let app = http::router(state.clone());
        let http = tokio::spawn(http::serve(http_l, app, state.clone(), rx.clone()));
        let grpc = tokio::spawn(grpc::serve(grpc_l, state.clone(), rx));
        state.ready.store(true, Ordering::Relaxed);
        Ok(Server { state, http_addr, grpc_addr, stop, http, grpc })
    }

    pub fn http_addr(&self) -> SocketAddr {
        self.http_addr
    }

    pub fn grpc_addr(&self) -> SocketAddr {
        self.grpc_addr
    }

    pub fn state(&self) -> &Arc<AppState> {
        &self.state
    }

    /// The line `heinfer serve` prints once both listeners are bound; scripts and
    /// test fixtures parse `http=HOST:PORT grpc=HOST:PORT` from it.
    pub fn ready_line(&self) -> String {
        format!("heinfer serve ready http={} grpc={}", self.http_addr, self.grpc_addr)
    }

    /// Stops accepting, lets in-flight requests finish, then returns.
    pub async fn shutdown(self) -> Result<(), ServerError> {
        self.state.ready.store(false, Ordering::Relaxed);
        let _ = self.stop.send(true);
        let h = self.http.await;
        let g = self.grpc.await;
        match h {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(ServerError::Http(e)),
            Err(e) => return Err(ServerError::Http(std::io::Error::other(e.to_string()))),
        }
        match g {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(ServerError::Grpc(e)),
            Err(e) => Err(ServerError::Grpc(e.to_string())),
        }
    }
}

/// Resolves on SIGTERM or SIGINT (Ctrl-C).
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}

/// Structured logs to stderr, one line per event; `RUST_LOG` filters (default info).
pub fn init_logging() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .with_target(false)
        .try_init();
}
