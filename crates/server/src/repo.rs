//! The model repository as `heinfer compile` writes it (`<repo>/<model>/config.pbtxt`,
//! `<repo>/<model>/<version>/model.hem`), loaded into one `runtime::Service` per
//! model over one shared key store, plus the per-model statistics Triton reports.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use runtime::protocol::{self, ENCRYPTED_OUTPUT, INPUTS, REQUIRED_INPUTS};
use runtime::{KeyStore, Service};
use serde_json::{json, Value as Json};
use thiserror::Error;
use tokio::sync::Semaphore;

use crate::config::{ConfigError, ModelConfig};

/// Config parameters the Triton backend reads too (defined in `runtime::protocol`).
pub use runtime::protocol::{CLIENT_SPEC_PARAM, DEFAULT_KEY_STORE_MB, KEY_STORE_DIR_PARAM, KEY_STORE_MB_PARAM};

#[derive(Debug, Error)]
pub enum LoadError {
    #[error("model repository {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("model repository {0} holds no heinfer model (expected <model>/config.pbtxt and <model>/1/model.hem, as `heinfer compile` writes)")]
    Empty(PathBuf),
    #[error("model '{model}': {source}")]
    Config { model: String, source: ConfigError },
    #[error("model '{model}': no version directory with a model.hem (expected {dir}/1/model.hem)")]
    NoVersion { model: String, dir: PathBuf },
    #[error("model '{model}': {source}")]
    Model { model: String, source: runtime::ModelLoadError },
    #[error("model '{model}': {msg}")]
    Tensors { model: String, msg: String },
    #[error("model '{model}': {source}")]
    Param { model: String, source: runtime::protocol::SettingError },
    #[error("key store: {0}")]
    KeyStore(#[from] runtime::KeyStoreError),
}

/// Where the key store's size and directory come from: command-line flags win over
/// the model configs' `heinfer_key_store_mb` / `heinfer_key_store_dir`.
#[derive(Debug, Clone, Default)]
pub struct KeyStoreOptions {
    pub capacity_mb: Option<usize>,
    pub dir: Option<PathBuf>,
    /// quota of the directory's bundles (`heinfer_key_store_dir_mb`)
    pub dir_quota_mb: Option<usize>,
}

/// Counters behind `/v2/models/<m>/stats` (Triton's shape: counts and nanoseconds).
#[derive(Default)]
pub struct Stats {
    pub success_count: AtomicU64,
    pub success_ns: AtomicU64,
    pub fail_count: AtomicU64,
    pub fail_ns: AtomicU64,
    pub queue_ns: AtomicU64,
    pub compute_input_ns: AtomicU64,
    pub compute_infer_ns: AtomicU64,
    pub compute_output_ns: AtomicU64,
    /// milliseconds since the epoch
    pub last_inference_ms: AtomicU64,
    /// requests answered by an evaluation another request of their merge ran (merged
    /// twins): executions = successes − this
    pub merged: AtomicU64,
}

pub struct Timings {
    pub queue_ns: u64,
    pub input_ns: u64,
    pub infer_ns: u64,
    pub output_ns: u64,
}

impl Stats {
    pub fn record_success(&self, total_ns: u64, t: &Timings) {
        self.success_count.fetch_add(1, Ordering::Relaxed);
        self.success_ns.fetch_add(total_ns, Ordering::Relaxed);
        self.queue_ns.fetch_add(t.queue_ns, Ordering::Relaxed);
        self.compute_input_ns.fetch_add(t.input_ns, Ordering::Relaxed);
        self.compute_infer_ns.fetch_add(t.infer_ns, Ordering::Relaxed);
        self.compute_output_ns.fetch_add(t.output_ns, Ordering::Relaxed);
        self.touch();
    }

    pub fn record_failure(&self, total_ns: u64) {
        self.fail_count.fetch_add(1, Ordering::Relaxed);
        self.fail_ns.fetch_add(total_ns, Ordering::Relaxed);
        self.touch();
    }

    fn touch(&self) {
        let ms = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0);
        self.last_inference_ms.store(ms, Ordering::Relaxed);
    }
}

pub struct LoadedModel {
    pub name: String,
    pub version: String,
    pub config: ModelConfig,
    /// rendered once: it never changes while serving
    pub config_json: Json,
    pub service: Service,
    pub stats: Stats,
    /// bounds concurrent evaluations to the configured instance count, as Triton does;
    /// waiting requests count as queue time
    pub slots: Semaphore,
    /// a merged twin's open groups (`max_batch_size` > 0: `crate::merge`)
    pub merger: Option<crate::merge::Merger>,
}

impl LoadedModel {
    /// A tensor's shape as model metadata gives it: Triton puts a batched config's batch
    /// dimension first, as -1 (clients such as perf_analyzer read shapes from here).
    pub fn metadata_shape(&self, t: &crate::config::TensorConfig) -> Vec<i64> {
        match self.config.max_batch_size {
            ..=0 => t.dims.clone(),
            _ => std::iter::once(-1).chain(t.dims.iter().copied()).collect(),
        }
    }

    pub fn metadata_json(&self) -> Json {
        let t = |ts: &[crate::config::TensorConfig]| -> Vec<Json> {
            ts.iter()
                .map(|t| json!({"name": t.name, "datatype": t.datatype(), "shape": self.metadata_shape(t)}))
                .collect()
        };
        json!({
            "name": self.name,
            "versions": [self.version],
            "platform": self.platform(),
            "inputs": t(&self.config.inputs),
            "outputs": t(&self.config.outputs),
        })
    }

    /// Triton reports the backend name as the platform of backend models.
    pub fn platform(&self) -> &str {
        if self.config.platform.is_empty() {
            &self.config.backend
        } else {
            &self.config.platform
        }
    }

    pub fn stats_json(&self) -> Json {
        let s = &self.stats;
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let ok = g(&s.success_count);
        let d = |count: u64, ns: u64| json!({"count": count, "ns": ns});
        json!({
            "name": self.name,
            "version": self.version,
            "last_inference": g(&s.last_inference_ms),
            "inference_count": ok,
            "execution_count": ok.saturating_sub(g(&s.merged)),
            "inference_stats": {
                "success": d(ok, g(&s.success_ns)),
                "fail": d(g(&s.fail_count), g(&s.fail_ns)),
                "queue": d(ok, g(&s.queue_ns)),
                "compute_input": d(ok, g(&s.compute_input_ns)),
                "compute_infer": d(ok, g(&s.compute_infer_ns)),
                "compute_output": d(ok, g(&s.compute_output_ns)),
                "cache_hit": d(0, 0),
                "cache_miss": d(0, 0),
            },
            "response_stats": {},
            "batch_stats": [],
            "memory_usage": [],
        })
    }

    pub fn stats_proto(&self) -> crate::pb::ModelStatistics {
        use crate::pb::{InferStatistics, ModelStatistics, StatisticDuration};
        let s = &self.stats;
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let ok = g(&s.success_count);
        let d = |count: u64, ns: u64| Some(StatisticDuration { count, ns });
        ModelStatistics {
            name: self.name.clone(),
            version: self.version.clone(),
            last_inference: g(&s.last_inference_ms),
            inference_count: ok,
            execution_count: ok.saturating_sub(g(&s.merged)),
            inference_stats: Some(InferStatistics {
                success: d(ok, g(&s.success_ns)),
                fail: d(g(&s.fail_count), g(&s.fail_ns)),
                queue: d(ok, g(&s.queue_ns)),
                compute_input: d(ok, g(&s.compute_input_ns)),
                compute_infer: d(ok, g(&s.compute_infer_ns)),
                compute_output: d(ok, g(&s.compute_output_ns)),
                cache_hit: d(0, 0),
                cache_miss: d(0, 0),
            }),
        }
    }
}

pub struct Repository {
    pub path: PathBuf,
    pub models: BTreeMap<String, Arc<LoadedModel>>,
    pub keys: Arc<KeyStore>,
}

fn highest_version(model: &str, dir: &Path) -> Result<(String, PathBuf), LoadError> {
    let best = runtime::loader::latest_version(dir).map_err(|source| LoadError::Io { path: dir.into(), source })?;
    best.map(|(v, p)| (v.to_string(), p)).ok_or_else(|| LoadError::NoVersion { model: model.into(), dir: dir.into() })
}

fn check_tensors(c: &ModelConfig) -> Result<(), String> {
    for t in c.inputs.iter().chain(&c.outputs) {
        if t.name == protocol::BLOCK {
            if c.max_batch_size <= 0 || t.datatype() != "INT32" || t.optional {
                return Err(format!(
                    "input {} must be TYPE_INT32, required, and only in a batched config (a merged twin)",
                    t.name
                ));
            }
            continue;
        }
        if t.name == protocol::PLAIN_INPUT {
            if t.datatype() != "FP32" || !t.optional {
                return Err(format!("input {} must be TYPE_FP32 and optional: true", t.name));
            }
            continue;
        }
        if t.datatype() != "BYTES" {
            return Err(format!("tensor {} is {}; heinfer tensors are TYPE_STRING", t.name, t.data_type));
        }
    }
    for t in &c.inputs {
        if !INPUTS.contains(&t.name.as_str()) && t.name != protocol::BLOCK {
            return Err(format!("input {} is not one of {INPUTS:?}", t.name));
        }
    }
    for need in REQUIRED_INPUTS {
        if c.input(need).is_none() {
            return Err(format!("config.pbtxt declares no input {need}"));
        }
    }
    if c.max_batch_size > 0 && c.input(protocol::BLOCK).is_none() {
        return Err(format!(
            "max_batch_size {}: a batched config is a merged twin (heinfer compile --merged) and declares {}",
            c.max_batch_size,
            protocol::BLOCK
        ));
    }
    if c.outputs.len() != 1 || c.outputs[0].name != ENCRYPTED_OUTPUT {
        return Err(format!("the only output must be {ENCRYPTED_OUTPUT}"));
    }
    Ok(())
}

struct Found {
    dir_name: String,
    config: ModelConfig,
    hem: PathBuf,
    version: String,
}

/// Loads every heinfer model of the repository. Directories without a
/// `config.pbtxt`, and models of other backends, are skipped with a warning;
/// a broken heinfer model stops the load, as Triton's default strict mode does.
pub fn load(path: &Path, ko: &KeyStoreOptions) -> Result<Repository, LoadError> {
    load_with(path, ko, false)
}

/// [`load`], or — `allow_empty`, for a server that only aggregates — a repository with
/// no model at all.
pub fn load_with(path: &Path, ko: &KeyStoreOptions, allow_empty: bool) -> Result<Repository, LoadError> {
    let rd = std::fs::read_dir(path).map_err(|source| LoadError::Io { path: path.into(), source })?;
    let mut dirs: Vec<PathBuf> = rd.flatten().map(|e| e.path()).filter(|p| p.is_dir()).collect();
    dirs.sort();
    let mut found = Vec::new();
    for dir in dirs {
        let dir_name = dir.file_name().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
        let cfg_path = dir.join(protocol::CONFIG_FILE);
        let src = match std::fs::read_to_string(&cfg_path) {
            Ok(s) => s,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                tracing::warn!(dir = %dir.display(), "skipped: no config.pbtxt");
                continue;
            }
            Err(source) => return Err(LoadError::Io { path: cfg_path, source }),
        };
        let config = ModelConfig::parse(&src, &dir_name)
            .map_err(|source| LoadError::Config { model: dir_name.clone(), source })?;
        if config.backend != protocol::BACKEND {
            tracing::warn!(model = %dir_name, backend = %config.backend, "skipped: not an heinfer model");
            continue;
        }
        check_tensors(&config).map_err(|msg| LoadError::Tensors { model: dir_name.clone(), msg })?;
        let (version, hem) = highest_version(&dir_name, &dir)?;
        found.push(Found { dir_name, config, hem, version });
    }
    if found.is_empty() && !allow_empty {
        return Err(LoadError::Empty(path.into()));
    }

    // One key store for the whole server (a client's keys serve every model with the
    // same parameters). Flags win; otherwise the largest size and the first directory
    // any config asks for.
    let mut store = runtime::Settings {
        key_store_bytes: ko.capacity_mb.map(|mb| mb.saturating_mul(1 << 20)),
        key_store_dir: ko.dir.clone(),
        key_store_dir_bytes: ko.dir_quota_mb.map(|mb| mb.saturating_mul(1 << 20)),
        max_request_bytes: None,
    };
    for f in &found {
        let s = runtime::Settings::from_params(|k| f.config.parameters.get(k).cloned())
            .map_err(|source| LoadError::Param { model: f.dir_name.clone(), source })?;
        if ko.capacity_mb.is_none() {
            store.key_store_bytes = store.key_store_bytes.max(s.key_store_bytes);
        }
        if store.key_store_dir.is_none() {
            store.key_store_dir = s.key_store_dir;
        }
        if ko.dir_quota_mb.is_none() {
            store.key_store_dir_bytes = store.key_store_dir_bytes.max(s.key_store_dir_bytes);
        }
    }
    let capacity = store.key_store_bytes_or_default();
    let keys = Arc::new(store.open_key_store()?);
    tracing::info!(capacity_mb = capacity >> 20, dir = ?store.key_store_dir, "key store");

    let mut models = BTreeMap::new();
    for f in found {
        let spec = f.config.parameters.get(CLIENT_SPEC_PARAM).map(String::as_str);
        let runtime::LoadedModel { mut service, weight_bytes: weights, .. } =
            runtime::load_model(&f.hem, spec, keys.clone())
                .map_err(|source| LoadError::Model { model: f.dir_name.clone(), source })?;
        // The config may override the privacy budget the model was compiled with.
        if let Some(v) = f.config.parameters.get(runtime::protocol::DP_BUDGET_PARAM) {
            let budget = runtime::protocol::dp_budget(v)
                .map_err(|source| LoadError::Param { model: f.dir_name.clone(), source })?;
            service.set_dp_budget(budget);
        }
        let batch_limits = runtime::assembly::Limits::from_params(|k| f.config.parameters.get(k).cloned())
            .map_err(|source| LoadError::Param { model: f.dir_name.clone(), source })?;
        service.set_batch_limits(batch_limits);
        let merger = match (f.config.max_batch_size, service.merged_blocks()) {
            (..=0, _) => None,
            (_, Some(b)) => {
                Some(crate::merge::Merger::new(b, std::time::Duration::from_micros(runtime::protocol::MERGE_DELAY_US)))
            }
            (n, None) => {
                return Err(LoadError::Tensors {
                    model: f.dir_name.clone(),
                    msg: format!(
                        "max_batch_size {n} needs a model with layout M, whose same-key requests are merged \
                         (heinfer compile --merged); set max_batch_size: 0"
                    ),
                })
            }
        };
        let instances = f.config.instance_count();
        tracing::info!(model = %f.dir_name, version = %f.version, weights_mb = weights >> 20, instances, "loaded");
        let config_json = f.config.to_json();
        models.insert(
            f.dir_name.clone(),
            Arc::new(LoadedModel {
                name: f.dir_name,
                version: f.version,
                config: f.config,
                config_json,
                service,
                stats: Stats::default(),
                slots: Semaphore::new(instances),
                merger,
            }),
        );
    }
    Ok(Repository { path: path.into(), models, keys })
}
