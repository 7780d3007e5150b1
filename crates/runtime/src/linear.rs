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

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use model::PaillierModel;
use paillier::{Evaluator, FixedPoint, Integer, LinearModel, PaillierError, PublicKey, Rerandomize};

use crate::keystore::{KeyId, KeyStore, KeyStoreError};
use crate::service::{Request, Response, ServiceError};

/// Memory one registered key takes with its evaluator (the fixed-base table dominates).
const KEY_MEMORY: usize = 16 << 20;

/// A linear model that cannot be served.
#[derive(Debug, thiserror::Error)]
#[error("the Paillier model cannot be served: {0}")]
pub struct LinearLoadError(#[from] PaillierError);

pub struct LinearService {
    model: PaillierModel,
    linear: LinearModel,
    keys: Mutex<Keys>,
    capacity: usize,
    /// the key store this model was loaded with (its memory budget bounds `keys`)
    store: Arc<KeyStore>,
}

#[derive(Default)]
struct Keys {
    map: HashMap<[u8; 32], (Arc<Evaluator>, u64)>,
    clock: u64,
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
        Ok(Self { model, linear, keys: Mutex::default(), capacity, store })
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
        self.keys.lock().unwrap_or_else(|e| e.into_inner())
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
