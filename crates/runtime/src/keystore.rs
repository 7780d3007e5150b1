//! Evaluation-key store shared by the Triton backend and `heinfer serve`.
//!
//! A bundle is identified by its `key_id`, the SHA-256 of its serialized bytes, so
//! registering is idempotent and a key id names exactly one bundle. The store is
//! bounded in bytes (least recently used bundles are evicted from memory) and can
//! be persisted in a directory of content-addressed files, so that several server
//! replicas on a shared volume see the same keys: a replica that misses in memory
//! looks on disk, re-checks the hash, and loads.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

pub use ckks::KeyId;
use ckks::{EvaluationKeys, Parameters, WireError};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum KeyStoreError {
    #[error("KEY_ID must be the SHA-256 of a key bundle: {0}")]
    BadKeyId(WireError),
    #[error("unknown key id {0}: register the evaluation-key bundle first (send it as EVALUATION_KEYS)")]
    UnknownKey(KeyId),
    #[error("evaluation-key bundle rejected: {0}")]
    BadBundle(#[from] WireError),
    #[error("evaluation-key bundle of {size} bytes exceeds the key store's capacity of {capacity} bytes")]
    TooLarge { size: usize, capacity: usize },
    #[error("the key bundle lacks what the model needs: {0}")]
    Incomplete(String),
    #[error("key store directory {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
}

struct Entry {
    keys: Arc<EvaluationKeys>,
    bytes: usize,
    last_used: u64,
}

struct Inner {
    entries: HashMap<([u8; 32], KeyId), Entry>,
    total: usize,
    clock: u64,
}

/// Thread-safe, byte-bounded LRU of evaluation-key bundles, optionally backed by a directory.
pub struct KeyStore {
    capacity: usize,
    dir: Option<PathBuf>,
    inner: Mutex<Inner>,
}

impl KeyStore {
    /// `capacity` bounds the memory held by parsed bundles; `dir`, if given, keeps
    /// every registered bundle as `<dir>/<key_id>.hek`.
    pub fn new(capacity: usize, dir: Option<&Path>) -> Result<Self, KeyStoreError> {
        if let Some(d) = dir {
            std::fs::create_dir_all(d).map_err(|source| KeyStoreError::Io { path: d.to_path_buf(), source })?;
        }
        Ok(Self {
            capacity,
            dir: dir.map(Path::to_path_buf),
            inner: Mutex::new(Inner { entries: HashMap::new(), total: 0, clock: 0 }),
        })
    }

    /// Parses, checks and stores a bundle made for `params`; returns its key id.
    /// Registering the same bytes again is a cheap no-op.
    pub fn register(&self, params: &Parameters, bundle: &[u8]) -> Result<KeyId, KeyStoreError> {
        let id = KeyId::of_bundle(bundle);
        if self.lookup(params, id).is_some() {
            return Ok(id);
        }
        let keys = EvaluationKeys::from_bytes(params, bundle)?;
        self.insert(params, id, keys)?;
        if let Some(dir) = &self.dir {
            let path = dir.join(format!("{id}.hek"));
            if !path.exists() {
                // Write then rename, so a replica never reads a half-written file.
                let tmp = dir.join(format!(".{id}.{}.tmp", std::process::id()));
                let io = |source| KeyStoreError::Io { path: path.clone(), source };
                std::fs::write(&tmp, bundle).map_err(io)?;
                std::fs::rename(&tmp, &path).map_err(io)?;
            }
        }
        Ok(id)
    }

    /// The bundle for `id` under `params`: from memory, else from the directory.
    pub fn get(&self, params: &Parameters, id: KeyId) -> Result<Arc<EvaluationKeys>, KeyStoreError> {
        if let Some(k) = self.lookup(params, id) {
            return Ok(k);
        }
        if let Some(dir) = &self.dir {
            let path = dir.join(format!("{id}.hek"));
            if let Ok(bytes) = std::fs::read(&path) {
                // Content-addressed: a file whose hash differs from its name is ignored.
                if KeyId::of_bundle(&bytes) == id {
                    let keys = EvaluationKeys::from_bytes(params, &bytes)?;
                    return self.insert(params, id, keys);
                }
            }
        }
        Err(KeyStoreError::UnknownKey(id))
    }

    /// Bytes held in memory now.
    pub fn memory_bytes(&self) -> usize {
        self.lock().total
    }

    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic elsewhere while holding the lock leaves consistent data: keep serving.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn lookup(&self, params: &Parameters, id: KeyId) -> Option<Arc<EvaluationKeys>> {
        let mut g = self.lock();
        g.clock += 1;
        let now = g.clock;
        let e = g.entries.get_mut(&(*params.fingerprint(), id))?;
        e.last_used = now;
        Some(e.keys.clone())
    }

    fn insert(
        &self,
        params: &Parameters,
        id: KeyId,
        keys: EvaluationKeys,
    ) -> Result<Arc<EvaluationKeys>, KeyStoreError> {
        let bytes = keys.memory_bytes();
        if bytes > self.capacity {
            return Err(KeyStoreError::TooLarge { size: bytes, capacity: self.capacity });
        }
        let keys = Arc::new(keys);
        let mut g = self.lock();
        let key = (*params.fingerprint(), id);
        if let Some(e) = g.entries.get(&key) {
            return Ok(e.keys.clone());
        }
        while g.total + bytes > self.capacity {
            let oldest = g.entries.iter().min_by_key(|(_, e)| e.last_used).map(|(k, _)| *k);
            match oldest {
                Some(k) => {
                    let e = g.entries.remove(&k).expect("present");
                    g.total -= e.bytes;
                }
                None => break,
            }
        }
        g.clock += 1;
        let now = g.clock;
        g.total += bytes;
        g.entries.insert(key, Entry { keys: keys.clone(), bytes, last_used: now });
        Ok(keys)
    }
}
