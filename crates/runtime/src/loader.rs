//! Loading a model of a model repository (`<repo>/<model>/config.pbtxt`,
//! `<repo>/<model>/<version>/model.hem`) into a [`Service`], one way for every front
//! end: the Triton backend gets the directory, version and config from Triton,
//! `heinfer-server` reads them itself, and both call [`load_model`] and [`Settings`].

use std::path::{Path, PathBuf};
use std::sync::Arc;

use thiserror::Error;

use crate::exec::{CompiledModel, LoadError, SpecError};
use crate::protocol::{
    self, SettingError, DEFAULT_KEY_STORE_MB, DEFAULT_MAX_REQUEST_MB, KEY_STORE_DIR_MB_PARAM, KEY_STORE_DIR_PARAM,
    KEY_STORE_MB_PARAM, MAX_REQUEST_MB_PARAM, MODEL_FILE,
};
use crate::{KeyStore, Service};

/// A model file that cannot be served, with the file it came from.
#[derive(Debug, Error)]
pub enum ModelLoadError {
    #[error("{path}: {source}")]
    Load { path: PathBuf, source: LoadError },
    /// The config's client spec would send clients the wrong parameters or layout.
    #[error("{path}: {source}")]
    Spec { path: PathBuf, source: SpecError },
    #[error("{path}: {source}")]
    Throughput { path: PathBuf, source: crate::throughput::ThroughputLoadError },
    #[error("{path}: {source}")]
    Linear { path: PathBuf, source: crate::linear::LinearLoadError },
}

/// A model ready to take requests.
pub struct LoadedModel {
    pub service: Service,
    /// what clients are told (scheme, parameters, layout, keys), for the load log line
    pub client: model::AnySpec,
    /// bytes held by the encoded weights
    pub weight_bytes: usize,
}

/// `<model_dir>/<version>/<file>`; `file` defaults to `model.hem` (Triton lets a
/// config name another with `default_model_filename`).
pub fn model_path(model_dir: &Path, version: &str, file: Option<&str>) -> PathBuf {
    model_dir.join(version).join(file.filter(|f| !f.is_empty()).unwrap_or(MODEL_FILE))
}

/// The highest numeric version directory of `model_dir` that holds a `model.hem`
/// (Triton's default version policy serves the latest one).
pub fn latest_version(model_dir: &Path) -> std::io::Result<Option<(u64, PathBuf)>> {
    let mut best: Option<(u64, PathBuf)> = None;
    for e in std::fs::read_dir(model_dir)?.flatten() {
        let Some(v) = e.file_name().to_str().and_then(|s| s.parse::<u64>().ok()) else { continue };
        let hem = e.path().join(MODEL_FILE);
        if hem.is_file() && best.as_ref().is_none_or(|(b, _)| v > *b) {
            best = Some((v, hem));
        }
    }
    Ok(best)
}

/// Reads and prepares `hem`, checks the client spec its config publishes (when the
/// config has one) against it, and serves it with `keys`.
pub fn load_model(hem: &Path, client_spec: Option<&str>, keys: Arc<KeyStore>) -> Result<LoadedModel, ModelLoadError> {
    let any = model::AnyModel::read_file(hem)
        .map_err(|e| ModelLoadError::Load { path: hem.into(), source: LoadError::Model(e) })?;
    let m = match any {
        model::AnyModel::Ckks(m) => m,
        model::AnyModel::Paillier(m) => return load_linear(hem, m, client_spec, keys),
        model::AnyModel::Bgv(m) => return load_bgv(hem, m, client_spec, keys),
    };
    let exe = CompiledModel::load(m).map_err(|source| ModelLoadError::Load { path: hem.into(), source })?;
    if let Some(spec) = client_spec {
        exe.check_client_spec(spec).map_err(|source| ModelLoadError::Spec { path: hem.into(), source })?;
    }
    let client = model::AnySpec::Ckks(exe.model().client.clone());
    let weight_bytes = exe.weight_memory_bytes();
    let t = crate::throughput::for_model(exe.model())
        .map_err(|source| ModelLoadError::Throughput { path: hem.into(), source })?;
    let service = match (exe.into_service(keys), t) {
        (crate::Service::Ckks(s), Some(t)) => crate::Service::Ckks(s.with_throughput(Arc::new(t))),
        (s, _) => s,
    };
    Ok(LoadedModel { service, client, weight_bytes })
}

fn load_linear(
    hem: &Path,
    m: model::PaillierModel,
    client_spec: Option<&str>,
    keys: Arc<KeyStore>,
) -> Result<LoadedModel, ModelLoadError> {
    if let Some(json) = client_spec {
        let spec = model::AnySpec::from_json(json)
            .map_err(|e| ModelLoadError::Spec { path: hem.into(), source: SpecError::Malformed(e) })?;
        if spec != model::AnySpec::Paillier(m.client.clone()) {
            return Err(ModelLoadError::Spec { path: hem.into(), source: SpecError::Differs });
        }
    }
    let client = model::AnySpec::Paillier(m.client.clone());
    let weight_bytes = m.weights.iter().map(|r| r.len() * 8).sum();
    if m.client.scheme == model::Scheme::Lwe {
        let svc = crate::lwe::LweService::new(m, keys).map_err(|e| ModelLoadError::Load {
            path: hem.into(),
            source: LoadError::Model(model::ModelError::Invalid(e.to_string())),
        })?;
        return Ok(LoadedModel { service: crate::Service::Lwe(svc), client, weight_bytes });
    }
    let svc = crate::linear::LinearService::new(m, keys)
        .map_err(|source| ModelLoadError::Linear { path: hem.into(), source })?;
    Ok(LoadedModel { service: crate::Service::Paillier(svc), client, weight_bytes })
}

fn load_bgv(
    hem: &Path,
    m: model::BgvModel,
    client_spec: Option<&str>,
    keys: Arc<KeyStore>,
) -> Result<LoadedModel, ModelLoadError> {
    if let Some(json) = client_spec {
        let spec = model::AnySpec::from_json(json)
            .map_err(|e| ModelLoadError::Spec { path: hem.into(), source: SpecError::Malformed(e) })?;
        if spec != model::AnySpec::Bgv(m.client.clone()) {
            return Err(ModelLoadError::Spec { path: hem.into(), source: SpecError::Differs });
        }
    }
    let client = model::AnySpec::Bgv(m.client.clone());
    let weight_bytes = m
        .layers
        .iter()
        .map(|l| match l {
            model::BgvLayer::Linear { weights, .. } => weights.len() * 8,
            model::BgvLayer::Square { .. } => 0,
        })
        .sum();
    let svc = crate::bgv::BgvService::new(m, keys).map_err(|e| ModelLoadError::Load {
        path: hem.into(),
        source: LoadError::Model(model::ModelError::Invalid(e.to_string())),
    })?;
    Ok(LoadedModel { service: crate::Service::Bgv(svc), client, weight_bytes })
}

/// The key-store and request-size settings of a model config; `None` where the
/// config does not say (the front end's flags or the defaults apply).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Settings {
    pub key_store_bytes: Option<usize>,
    pub key_store_dir: Option<PathBuf>,
    /// quota of the key directory (unbounded when not set)
    pub key_store_dir_bytes: Option<usize>,
    pub max_request_bytes: Option<usize>,
}

impl Settings {
    /// Reads the `heinfer_*` parameters through `param` (a config's parameters, or
    /// Triton's backend config behind them).
    pub fn from_params(param: impl Fn(&str) -> Option<String>) -> Result<Self, SettingError> {
        let mb = |key: &'static str| param(key).map(|v| protocol::megabytes(key, &v)).transpose();
        Ok(Self {
            key_store_bytes: mb(KEY_STORE_MB_PARAM)?,
            key_store_dir: param(KEY_STORE_DIR_PARAM)
                .map(|d| d.trim().to_string())
                .filter(|d| !d.is_empty())
                .map(PathBuf::from),
            key_store_dir_bytes: mb(KEY_STORE_DIR_MB_PARAM)?,
            max_request_bytes: mb(MAX_REQUEST_MB_PARAM)?,
        })
    }

    pub fn key_store_bytes_or_default(&self) -> usize {
        self.key_store_bytes.unwrap_or(DEFAULT_KEY_STORE_MB << 20)
    }

    pub fn max_request_bytes_or_default(&self) -> usize {
        self.max_request_bytes.unwrap_or(DEFAULT_MAX_REQUEST_MB << 20)
    }

    /// The key store these settings describe.
    pub fn open_key_store(&self) -> Result<KeyStore, crate::KeyStoreError> {
        Ok(KeyStore::new(self.key_store_bytes_or_default(), self.key_store_dir.as_deref())?
            .with_dir_quota(self.key_store_dir_bytes))
    }
}

/// The one key store of a process, opened by the first model that loads: a client's
/// keys then serve every model with the same parameters, and the memory bound holds
/// for the process rather than per model. (Triton loads models one at a time, each
/// with its own config; `heinfer-server` settles the settings before loading.)
#[derive(Default)]
pub struct SharedKeyStore {
    inner: std::sync::Mutex<Option<(Settings, Arc<KeyStore>)>>,
}

impl SharedKeyStore {
    /// The process's store, opened with `settings` if none is open yet. When one is,
    /// and `settings` ask for another size or directory, the open store is returned
    /// with the settings it was opened with, for the caller to warn about.
    pub fn get_or_open(&self, settings: &Settings) -> Result<(Arc<KeyStore>, Option<Settings>), crate::KeyStoreError> {
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((opened, store)) = g.as_ref() {
            let same = opened.key_store_bytes_or_default() == settings.key_store_bytes_or_default()
                && opened.key_store_dir == settings.key_store_dir
                && opened.key_store_dir_bytes == settings.key_store_dir_bytes;
            return Ok((store.clone(), (!same).then(|| opened.clone())));
        }
        let store = Arc::new(settings.open_key_store()?);
        *g = Some((settings.clone(), store.clone()));
        Ok((store, None))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_from_params() {
        let s = Settings::from_params(|k| match k {
            KEY_STORE_MB_PARAM => Some("3".into()),
            KEY_STORE_DIR_PARAM => Some("  ".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!(s, Settings { key_store_bytes: Some(3 << 20), ..Settings::default() });
        assert_eq!(s.max_request_bytes_or_default(), DEFAULT_MAX_REQUEST_MB << 20);
        let e = Settings::from_params(|k| (k == MAX_REQUEST_MB_PARAM).then(|| "x".into())).unwrap_err();
        assert_eq!(e.param, MAX_REQUEST_MB_PARAM);
    }

    #[test]
    fn one_key_store_per_process() {
        let shared = SharedKeyStore::default();
        let a = Settings { key_store_bytes: Some(1 << 20), ..Settings::default() };
        let (s1, warn1) = shared.get_or_open(&a).unwrap();
        let (s2, warn2) = shared.get_or_open(&a.clone()).unwrap();
        assert!(Arc::ptr_eq(&s1, &s2) && warn1.is_none() && warn2.is_none());
        // Another model asking for another size gets the same store, and is told which.
        let b = Settings { key_store_bytes: Some(2 << 20), ..Settings::default() };
        let (s3, warn3) = shared.get_or_open(&b).unwrap();
        assert!(Arc::ptr_eq(&s1, &s3));
        assert_eq!(warn3, Some(a));
    }

    #[test]
    fn latest_version_skips_empty_and_non_numeric() {
        let d = tempfile::tempdir().unwrap();
        for (v, with_model) in [("1", true), ("3", false), ("2", true), ("latest", true)] {
            std::fs::create_dir(d.path().join(v)).unwrap();
            if with_model {
                std::fs::write(d.path().join(v).join(MODEL_FILE), b"").unwrap();
            }
        }
        let (v, p) = latest_version(d.path()).unwrap().unwrap();
        assert_eq!((v, p), (2, model_path(d.path(), "2", None)));
        assert!(latest_version(&d.path().join("none")).is_err());
    }
}
