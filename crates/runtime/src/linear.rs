//! Serving a Paillier linear model (`model::PaillierModel`): the same tensors as a CKKS
//! model, other contents.
//!
//! - `EVALUATION_KEYS`: the client's Paillier public key (HEPA wire format; at least
//!   3072 bits, the reader refuses less). There are no evaluation keys in Paillier: the
//!   public key is what a server needs, and it is registered the same way, by key id
//!   (SHA-256 of its bytes), then named by `KEY_ID` alone.
//! - `ENCRYPTED_INPUT`: one element, the d inputs as one ciphertext batch (which names the
//!   key it was made for; every ciphertext is checked below n² and invertible).
//! - `ENCRYPTED_OUTPUT`: one element, the k scores as one re-randomized batch.
//!
//! Registered keys are kept with their evaluator (its re-randomization table, ≈ 15 MB
//! for a 3072-bit key) in a store bounded by the key store's memory budget, least recently
//! used first out. They are not written to the key directory: a public key is a few
//! hundred bytes, cheaper to send again (`EVALUATION_KEYS` with the request) than to share.
//!
//! Re-randomizing an answer is most of its cost (a fixed-base exponentiation, ~6 ms at 3072
//! bits, against ~4 ms for the scores). The re-randomizer does not depend on the request,
//! so one thread per model computes them ahead, while no request of the model is being
//! evaluated, up to [`POOL`] per registered key (768 B each at 3072 bits); an answer takes
//! one from its key's pool, or computes its own when the pool is empty (under sustained
//! load). Each is used once.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use model::PaillierModel;
use paillier::{Evaluator, FixedPoint, Integer, LinearModel, PaillierError, PublicKey, Rerandomize};

use crate::keystore::{KeyId, KeyStore, KeyStoreError};
use crate::service::{Request, Response, ServiceError};

/// Memory one registered key takes with its evaluator (the fixed-base table dominates).
const KEY_MEMORY: usize = 16 << 20;
/// Re-randomizers kept ready per registered key.
pub const POOL: usize = 32;
/// How often the refill thread looks again when it has nothing to do (registrations and
/// idle moments wake it sooner).
const REFILL_NAP: Duration = Duration::from_millis(250);

/// A linear model that cannot be served.
#[derive(Debug, thiserror::Error)]
#[error("the Paillier model cannot be served: {0}")]
pub struct LinearLoadError(#[from] PaillierError);

pub struct LinearService {
    model: PaillierModel,
    linear: LinearModel,
    shared: Arc<Shared>,
    capacity: usize,
    /// the key store this model was loaded with (its memory budget bounds `keys`)
    store: Arc<KeyStore>,
    refill: Option<std::thread::JoinHandle<()>>,
}

/// What requests and the refill thread share.
#[derive(Default)]
struct Shared {
    keys: Mutex<Keys>,
    /// requests of this model being evaluated now: the refill thread waits while any runs
    busy: AtomicUsize,
    stop: AtomicBool,
}

#[derive(Default)]
struct Keys {
    map: HashMap<[u8; 32], (Arc<Evaluator>, u64)>,
    clock: u64,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Keys> {
        self.keys.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The registered key whose pool is shortest, if one is below [`POOL`].
    fn neediest(&self) -> Option<Arc<Evaluator>> {
        let g = self.lock();
        g.map.values().map(|(e, _)| e).filter(|e| e.precomputed() < POOL).min_by_key(|e| e.precomputed()).cloned()
    }
}

/// The refill thread: one re-randomizer at a time, only while no request of the model is
/// being evaluated, until every pool is full; it ends with its service.
fn refill(shared: Weak<Shared>) {
    loop {
        let Some(sh) = shared.upgrade() else { return };
        if sh.stop.load(Ordering::Relaxed) {
            return;
        }
        let next = if sh.busy.load(Ordering::Relaxed) == 0 { sh.neediest() } else { None };
        match next {
            Some(e) => e.precompute(1, &mut rand_core::OsRng),
            None => {
                drop(sh);
                std::thread::park_timeout(REFILL_NAP);
            }
        }
    }
}

/// Counts a request as being evaluated; the last one out wakes the refill thread.
struct Busy<'a>(&'a LinearService);

impl<'a> Busy<'a> {
    fn new(svc: &'a LinearService) -> Self {
        svc.shared.busy.fetch_add(1, Ordering::Relaxed);
        Busy(svc)
    }
}

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        if self.0.shared.busy.fetch_sub(1, Ordering::Relaxed) == 1 {
            self.0.wake_refill();
        }
    }
}

impl Drop for LinearService {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.refill.take() {
            t.thread().unpark();
            let _ = t.join();
        }
    }
}

impl LinearService {
    /// The model, keeping at most the store's capacity in registered keys.
    pub fn new(model: PaillierModel, store: Arc<KeyStore>) -> Result<Self, LinearLoadError> {
        let bias = model
            .bias
            .iter()
            .map(|b| {
                b.parse::<Integer>()
                    .map_err(|e| PaillierError::Invalid { field: "bias", detail: format!("{b:?}: {e}") })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let linear = LinearModel::new(
            model.weights.clone(),
            bias,
            FixedPoint::new(model.client.input.frac_bits)?,
            FixedPoint::new(model.weight_frac_bits)?,
        )?;
        let capacity = (store.capacity() / KEY_MEMORY).max(1);
        let shared = Arc::new(Shared::default());
        let weak = Arc::downgrade(&shared);
        // Without the thread (the OS refused one) answers are still re-randomized, inline.
        let refill = std::thread::Builder::new().name("paillier-refill".into()).spawn(move || refill(weak)).ok();
        Ok(Self { model, linear, shared, capacity, store, refill })
    }

    fn wake_refill(&self) {
        if let Some(t) = &self.refill {
            t.thread().unpark();
        }
    }

    /// Re-randomizers ready for `id`'s answers (`None`: not registered).
    pub fn pooled(&self, id: KeyId) -> Option<usize> {
        self.lock().map.get(&id.0).map(|(e, _)| e.precomputed())
    }

    pub fn key_store(&self) -> &Arc<KeyStore> {
        &self.store
    }

    pub fn model(&self) -> &PaillierModel {
        &self.model
    }

    pub fn linear(&self) -> &LinearModel {
        &self.linear
    }

    /// Registered keys held now.
    pub fn registered(&self) -> usize {
        self.lock().map.len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Keys> {
        self.shared.lock()
    }

    /// Registers a client's public key; returns its key id. The same bytes again are a no-op.
    pub fn register(&self, bytes: &[u8]) -> Result<KeyId, ServiceError> {
        let id = KeyId(paillier::KeyId::of_bytes(bytes).0);
        if self.lookup(id).is_some() {
            return Ok(id);
        }
        if bytes.starts_with(b"HEIN") {
            return Err(ServiceError::WrongScheme(
                "EVALUATION_KEYS holds a CKKS key bundle, but this model is Paillier: make a Paillier key pair \
                 for it (`heinfer keygen` on this model, or heinfer.Client) and send its public key"
                    .into(),
            ));
        }
        let key = PublicKey::from_bytes(bytes).map_err(ServiceError::PaillierKey)?;
        if key.modulus_bits() < self.model.client.min_modulus_bits {
            return Err(ServiceError::PaillierKey(PaillierError::ModulusSize {
                bits: key.modulus_bits(),
                min: self.model.client.min_modulus_bits,
                max: paillier::MAX_MODULUS_BITS,
            }));
        }
        let eval = Arc::new(Evaluator::new(key, Rerandomize::FixedBase, &mut rand_core::OsRng));
        let mut g = self.lock();
        while g.map.len() >= self.capacity {
            let Some(oldest) = g.map.iter().min_by_key(|(_, (_, t))| *t).map(|(k, _)| *k) else { break };
            g.map.remove(&oldest);
        }
        g.clock += 1;
        let now = g.clock;
        g.map.insert(id.0, (eval, now));
        drop(g);
        self.wake_refill();
        Ok(id)
    }

    fn lookup(&self, id: KeyId) -> Option<Arc<Evaluator>> {
        let mut g = self.lock();
        g.clock += 1;
        let now = g.clock;
        let e = g.map.get_mut(&id.0)?;
        e.1 = now;
        Some(e.0.clone())
    }

    pub fn infer_cancellable(&self, req: Request<'_>, cancel: &AtomicBool) -> Result<Response, ServiceError> {
        let _busy = Busy::new(self);
        let id = match (req.evaluation_keys, req.key_id) {
            (Some(key), given) => {
                let id = self.register(key)?;
                if let Some(g) = given.map(crate::service::parse_key_id).transpose()? {
                    if g != id {
                        return Err(ServiceError::KeyIdMismatch { given: g, actual: id });
                    }
                }
                id
            }
            (None, Some(g)) => crate::service::parse_key_id(g)?,
            (None, None) => return Err(ServiceError::MissingInput("KEY_ID")),
        };
        let eval = self.lookup(id).ok_or(ServiceError::Keys(KeyStoreError::UnknownKey(id)))?;
        let [batch] = req.ciphertexts[..] else {
            if req.ciphertexts.is_empty() {
                return Err(ServiceError::MissingInput("ENCRYPTED_INPUT"));
            }
            return Err(ServiceError::WrongCount { expected: 1, got: req.ciphertexts.len() });
        };
        if batch.starts_with(b"HEIN") {
            return Err(ServiceError::WrongScheme(
                "ENCRYPTED_INPUT holds a CKKS ciphertext, but this model is Paillier: encrypt with the \
                 Paillier public key registered for it, as its client spec says"
                    .into(),
            ));
        }
        let key = eval.key();
        let x = key.read_ciphertexts(batch).map_err(|source| ServiceError::Paillier { index: 0, source })?;
        if x.len() != self.linear.inputs() {
            return Err(ServiceError::Paillier {
                index: 0,
                source: PaillierError::Dimension { expected: self.linear.inputs(), found: x.len() },
            });
        }
        if cancel.load(Ordering::Relaxed) {
            return Err(ServiceError::Run(crate::service::RunError::Cancelled { done: 0, total: 1 }));
        }
        let scores = eval
            .evaluate(&self.linear, &x, &mut rand_core::OsRng)
            .map_err(|source| ServiceError::Paillier { index: 0, source })?;
        Ok(Response { ciphertexts: vec![key.write_ciphertexts(&scores)], key_id: id, dp: None })
    }
}
