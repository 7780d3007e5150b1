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

use crate::keydir;

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
    #[error("KEY_ID {given} does not name the EVALUATION_KEYS sent with it (their key id is {actual})")]
    KeyIdMismatch { given: KeyId, actual: KeyId },
    #[error("the key bundle holds Galois keys this model never uses (elements {0:?}); send exactly the keys the client spec lists")]
    ExtraKeys(Vec<u64>),
    #[error("key store directory {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
}

/// What a model needs of a bundle: it is checked whole against this before the store
/// keeps it (in memory or on disk), so a bundle that cannot serve is never stored.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Requirements {
    pub relinearization: bool,
    /// the Galois elements of the model's rotations; the bundle must hold exactly these
    pub galois_elements: Vec<u64>,
    /// (step, Galois element, level): each key must serve its step's highest level
    pub rotation_levels: Vec<(i64, u64, usize)>,
    /// the level of the model's highest product, which the relinearization key must serve
    pub relin_level: Option<usize>,
    /// circuit privacy: the bundle must carry the client's public key
    pub public_key: bool,
    /// (Galois element, level) of keys named directly (`with_elements`)
    pub element_levels: Vec<(u64, usize)>,
}

impl Requirements {
    /// For a model rotating by `steps` (steps that are whole turns need no key).
    pub fn for_rotations(params: &Parameters, steps: &[i64], relinearization: bool) -> Self {
        let slots = params.slots() as i64;
        let mut galois_elements: Vec<u64> =
            steps.iter().filter(|s| s.rem_euclid(slots) != 0).map(|&s| params.galois_element(s)).collect();
        galois_elements.sort_unstable();
        galois_elements.dedup();
        Self { relinearization, galois_elements, ..Default::default() }
    }

    /// Also requires each key to serve the highest level its step (or the products) is
    /// used at: a client may make keys only that high (see `model::KeyLevels`).
    pub fn with_levels(mut self, params: &Parameters, rotation: &[(i64, usize)], relin: Option<usize>) -> Self {
        let slots = params.slots() as i64;
        self.rotation_levels = rotation
            .iter()
            .filter(|(s, _)| s.rem_euclid(slots) != 0)
            .map(|&(s, l)| (s, params.galois_element(s), l))
            .collect();
        self.relin_level = relin;
        self
    }

    /// Also requires keys for Galois elements named directly (a compact input's packing
    /// and conjugation), each serving `level`.
    pub fn with_elements(mut self, elements: &[u64], level: usize) -> Self {
        self.galois_elements.extend_from_slice(elements);
        self.galois_elements.sort_unstable();
        self.galois_elements.dedup();
        self.element_levels.extend(elements.iter().map(|&g| (g, level)));
        self
    }

    /// Missing keys first (what the client must add), then extra ones.
    pub fn check(&self, keys: &EvaluationKeys, steps: &[i64]) -> Result<(), KeyStoreError> {
        if self.relinearization && keys.relin.is_none() {
            return Err(KeyStoreError::Incomplete("no relinearization key".into()));
        }
        if self.public_key && keys.public.is_none() {
            return Err(KeyStoreError::Incomplete(
                "no public key, and this model is compiled with circuit privacy (the server floods each answer's \
                 noise with an encryption of zero under the client's public key); make the bundle from this \
                 model's client spec (heinfer keygen, heinfer.Client), which then includes the public key"
                    .into(),
            ));
        }
        let missing: Vec<i64> = steps.iter().copied().filter(|&s| !keys.has_rotation(s)).collect();
        if !missing.is_empty() {
            return Err(KeyStoreError::Incomplete(format!("no Galois keys for rotation steps {missing:?}")));
        }
        let low = |what: String, have: usize, need: usize| {
            KeyStoreError::Incomplete(format!(
                "the {what} key serves levels up to {have} but the model uses it at level {need}; make the keys from this model's client spec"
            ))
        };
        if let (Some(need), Some(rk)) = (self.relin_level, &keys.relin) {
            if rk.key().max_level() < need {
                return Err(low("relinearization".into(), rk.key().max_level(), need));
            }
        }
        for &(step, g, need) in &self.rotation_levels {
            if let Some(k) = keys.galois.get(g) {
                if k.max_level() < need {
                    return Err(low(format!("rotation-by-{step} Galois"), k.max_level(), need));
                }
            }
        }
        let absent: Vec<u64> =
            self.element_levels.iter().map(|&(g, _)| g).filter(|&g| keys.galois.get(g).is_none()).collect();
        if !absent.is_empty() {
            return Err(KeyStoreError::Incomplete(format!(
                "no Galois keys for elements {absent:?} (a compact query's packing and conjugation); make the \
                 keys from this model's client spec"
            )));
        }
        for &(g, need) in &self.element_levels {
            if let Some(k) = keys.galois.get(g).filter(|k| k.max_level() < need) {
                return Err(low(format!("element-{g} Galois"), k.max_level(), need));
            }
        }
        let extra: Vec<u64> =
            keys.galois.elements().filter(|e| self.galois_elements.binary_search(e).is_err()).collect();
        if !extra.is_empty() {
            return Err(KeyStoreError::ExtraKeys(extra));
        }
        Ok(())
    }
}

/// Memory a bundle of `wire_len` bytes takes once parsed, known before parsing it:
/// every key-switching key on the wire is its `b` half (the `a` half is a seed), and in
/// memory it is `b`, `a` and both halves' companions, all as 64-bit words. Exact for a
/// well-formed bundle of top-level keys (the framing is smaller than one key). Keys made
/// for lower levels have other lengths: each value of at least `min_bits` bits on the wire
/// is 4 words in memory, which bounds them from above.
pub fn estimated_memory(params: &Parameters, wire_len: usize) -> usize {
    let full = params.keyswitch_key_bytes().max(1);
    let framing = wire_len % full;
    // (Only in sets without key bases: a basis's records have other lengths.)
    if params.key_bases().is_empty() && (framing == BUNDLE_FRAMING || wire_len < full) {
        return (wire_len / full).saturating_mul(key_memory(params));
    }
    wire_len.saturating_mul(256) / min_prime_bits(params).max(1)
}

/// Bits of the narrowest prime a key of `params` can be over (its key bases' included).
fn min_prime_bits(params: &Parameters) -> usize {
    let bases = params.key_bases().iter().flat_map(|b| b.p().iter());
    params.q().iter().chain(params.p()).chain(bases).map(|&q| 64 - q.leading_zeros() as usize).min().unwrap_or(1)
}

/// Header, relinearization flag and Galois key count of a bundle.
const BUNDLE_FRAMING: usize = 40 + 1 + 4;

fn key_memory(params: &Parameters) -> usize {
    let levels = params.q().len();
    let digits = levels.div_ceil(levels.div_ceil(params.dnum().max(1)));
    4 * digits * (levels + params.p().len()) * params.n() * 8
}

/// The longest bundle whose [`estimated_memory`] fits in `capacity`.
fn max_wire_len(params: &Parameters, capacity: usize) -> u64 {
    let keys = capacity / key_memory(params).max(1);
    let full = ((keys as u64 + 1) * params.keyswitch_key_bytes() as u64).saturating_sub(1);
    // Keys made for lower levels take more memory per wire byte (fewer of the small
    // middle primes): never more than this, since every value is at least min_bits wide.
    full.max(capacity as u64 * min_prime_bits(params) as u64 / 256)
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
    /// bytes the directory's bundles may take; beyond, the least recently used go
    dir_quota: Option<u64>,
    inner: Mutex<Inner>,
    /// ε spent per (model, key id) on models with differentially private outputs;
    /// persisted under `<dir>/dp-budget/` when the store has a directory
    budgets: crate::dp::BudgetLedger,
}

impl KeyStore {
    /// `capacity` bounds the memory held by parsed bundles; `dir`, if given, keeps
    /// every registered bundle as `<dir>/<key_id>.hek`.
    pub fn new(capacity: usize, dir: Option<&Path>) -> Result<Self, KeyStoreError> {
        if let Some(d) = dir {
            std::fs::create_dir_all(d).map_err(|source| KeyStoreError::Io { path: d.to_path_buf(), source })?;
            // What a killed writer left behind; a best effort (another replica may race us).
            let _ = keydir::sweep_stale_temps(d, keydir::STALE_TEMP);
        }
        Ok(Self {
            capacity,
            dir: dir.map(Path::to_path_buf),
            dir_quota: None,
            inner: Mutex::new(Inner { entries: HashMap::new(), total: 0, clock: 0 }),
            budgets: crate::dp::BudgetLedger::new(dir.map(|d| d.join("dp-budget")).as_deref()),
        })
    }

    /// Bounds the bytes of bundles kept in the directory: after each write, the least
    /// recently used bundles (registered or read last) are removed until they fit.
    pub fn with_dir_quota(mut self, bytes: Option<usize>) -> Self {
        self.dir_quota = bytes.map(|b| b as u64);
        self
    }

    /// Parses, checks and stores a bundle made for `params`; returns its key id.
    /// Registering the same bytes again is a cheap no-op.
    pub fn register(&self, params: &Parameters, bundle: &[u8]) -> Result<KeyId, KeyStoreError> {
        self.register_checked(params, bundle, |_| Ok(()))
    }

    /// Registers a bundle for a model: the bundle must hold what `need` asks and no
    /// other Galois key, and hash to `key_id` when the client named one; all checked
    /// before anything is kept. `steps` are the model's rotations (for the message
    /// naming what is missing).
    pub fn register_for(
        &self,
        params: &Parameters,
        bundle: &[u8],
        key_id: Option<KeyId>,
        need: &Requirements,
        steps: &[i64],
    ) -> Result<KeyId, KeyStoreError> {
        self.register_for_any(params, bundle, key_id, &[(need, steps)]).map(|(id, _)| id).map_err(|mut e| e.remove(0))
    }

    /// [`register_for`](Self::register_for) for a model served in several layouts on the same
    /// parameters (L and M): the bundle is parsed once, however many layouts it is checked
    /// against — a deep model's bundle is hundreds of MB. Returns the key id and the index of
    /// the first layout whose requirements it meets; else every layout's refusal, in order, or
    /// one error when the bundle itself is refused (too large, unreadable, another key id).
    pub fn register_for_any(
        &self,
        params: &Parameters,
        bundle: &[u8],
        key_id: Option<KeyId>,
        layouts: &[(&Requirements, &[i64])],
    ) -> Result<(KeyId, usize), Vec<KeyStoreError>> {
        let mut matched = None;
        let mut refusals = Vec::new();
        let r = self.register_checked(params, bundle, |keys| {
            refusals.clear();
            for (i, (need, steps)) in layouts.iter().enumerate() {
                match need.check(keys, steps) {
                    Ok(()) => {
                        matched = Some(i);
                        break;
                    }
                    Err(e) => refusals.push(e),
                }
            }
            if matched.is_none() {
                // Reported whole below; this one only stops the bundle from being kept.
                return Err(KeyStoreError::Incomplete(String::new()));
            }
            match key_id {
                // Checked after the bundle itself, so that a broken bundle is reported as such.
                Some(given) if given != KeyId::of_bundle(bundle) => {
                    Err(KeyStoreError::KeyIdMismatch { given, actual: KeyId::of_bundle(bundle) })
                }
                _ => Ok(()),
            }
        });
        match (r, matched) {
            (Ok(id), Some(i)) => Ok((id, i)),
            (Err(_), None) if !refusals.is_empty() => Err(refusals),
            (Err(e), _) => Err(vec![e]),
            // A bundle is kept only when a layout's check passed; were that ever broken, the
            // request fails with a message instead of the process panicking.
            (Ok(_), None) => Err(vec![KeyStoreError::Incomplete(
                "internal error: the bundle was kept but matched no layout (please report this)".into(),
            )]),
        }
    }

    fn register_checked(
        &self,
        params: &Parameters,
        bundle: &[u8],
        check: impl FnOnce(&EvaluationKeys) -> Result<(), KeyStoreError>,
    ) -> Result<KeyId, KeyStoreError> {
        let id = KeyId::of_bundle(bundle);
        if let Some(keys) = self.lookup(params, id) {
            check(&keys)?;
            return Ok(id);
        }
        // Refused before parsing: parsing is what allocates (expanding every `a` half).
        let estimate = estimated_memory(params, bundle.len());
        if estimate > self.capacity {
            return Err(KeyStoreError::TooLarge { size: estimate, capacity: self.capacity });
        }
        let keys = EvaluationKeys::from_bytes(params, bundle)?;
        check(&keys)?;
        self.insert(params, id, keys)?;
        if let Some(dir) = &self.dir {
            let io = |source| KeyStoreError::Io { path: keydir::bundle_path(dir, id), source };
            keydir::write(dir, id, bundle).map_err(io)?;
            if let Some(quota) = self.dir_quota {
                keydir::collect(dir, quota, id).map_err(|source| KeyStoreError::Io { path: dir.clone(), source })?;
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
            // A file too large to keep in memory is not even read.
            if let Some(bytes) = keydir::read(dir, id, max_wire_len(params, self.capacity)) {
                let keys = EvaluationKeys::from_bytes(params, &bytes)?;
                return self.insert(params, id, keys);
            }
        }
        Err(KeyStoreError::UnknownKey(id))
    }

    /// The memory bound, in bytes.
    /// The privacy budgets of this store's key ids (models with output DP).
    pub fn budgets(&self) -> &crate::dp::BudgetLedger {
        &self.budgets
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// The directory bundles are kept in, if any.
    pub fn dir(&self) -> Option<&Path> {
        self.dir.as_deref()
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
