//! Serving a BGV integer model (`model::BgvModel`, `--scheme bgv --quantize`): the same
//! tensors as every model.
//!
//! - `EVALUATION_KEYS`: the client's key bundle under the model's BGV parameters (rlwe
//!   wire format) holding a relinearisation key — the only key this layout needs (no
//!   rotation). Registered by key id (SHA-256 of its bytes), like a CKKS bundle, in a
//!   bounded in-memory map (least recently used out first).
//! - `ENCRYPTED_INPUT`: one BGV ciphertext per input feature (full or seeded), each
//!   holding that feature of up to N samples, at the top level with factor 1; for a
//!   residue plan (several plaintext moduli), that many per feature, residue-major (all
//!   features under the first t, then under the second, …).
//! - `ENCRYPTED_OUTPUT`: one ciphertext per output feature (and residue), at the model's
//!   output level, in the same order.
//!
//! A residue plan's moduli share one chain and one key: the bundle is read under the
//! first t and its relinearisation key re-tagged for the others (`RelinKey::under`).
//!
//! A model compiled with circuit privacy (`spec.circuit_privacy`) needs the client's public
//! key in the bundle, and floods every answer ciphertext under it (`bgv::circuit`): the
//! outputs stay exact, their noise and its wire bound no longer depend on the weights.
//!
//! The noise bound every ciphertext carries is checked by the evaluator at every step:
//! a result that might decrypt wrong is refused, never returned.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use bgv::throughput::{IntLayer, IntLinear, IntNetwork, Schedule};
use bgv::{Ciphertext, EvaluationKeys, Evaluator, Parameters, PublicKey, RelinKey};
use model::{BgvLayer, BgvModel};

use crate::keystore::{KeyId, KeyStore, KeyStoreError};
use crate::service::{Request, Response, ServiceError};

/// A BGV model that cannot be served.
#[derive(Debug, thiserror::Error)]
#[error("the BGV model cannot be served: {0}")]
pub struct BgvLoadError(String);

pub struct BgvService {
    model: BgvModel,
    /// One set and evaluator per plaintext modulus, the spec's order.
    sets: Vec<(Parameters, Evaluator)>,
    net: IntNetwork,
    schedule: Schedule,
    keys: Mutex<Keys>,
    capacity: usize,
    store: Arc<KeyStore>,
}

/// A client's keys under each plaintext modulus.
struct ClientKeys {
    relin: Vec<RelinKey>,
    /// Its public key, for a circuit-private model's flood.
    public: Option<Vec<PublicKey>>,
}

#[derive(Default)]
struct Keys {
    /// Per key id: the client's keys, and their last use.
    map: HashMap<[u8; 32], (Arc<ClientKeys>, u64)>,
    clock: u64,
}

fn bad_input(index: usize, what: String) -> ServiceError {
    ServiceError::WrongScheme(format!("ENCRYPTED_INPUT[{index}]: {what}"))
}

impl BgvService {
    /// The model under its parameters (refused unless they are 128-bit secure).
    pub fn new(model: BgvModel, store: Arc<KeyStore>) -> Result<Self, BgvLoadError> {
        let spec = &model.client;
        let mut sets = Vec::new();
        for t in spec.plaintext_moduli() {
            let params = Parameters::from_spec(&spec.params, t)
                .map_err(|e| BgvLoadError(format!("parameters (t = {t}): {e}")))?;
            if !params.is_secure() {
                return Err(BgvLoadError("parameters below 128-bit security".into()));
            }
            let eval = Evaluator::new(&params);
            sets.push((params, eval));
        }
        let params = sets[0].0.clone();
        let layers = model
            .layers
            .iter()
            .map(|l| match l {
                BgvLayer::Linear { inputs, weights, bias, .. } => {
                    IntLayer::Linear(IntLinear { inputs: *inputs, weights: weights.clone(), bias: bias.clone() })
                }
                BgvLayer::Square { .. } => IntLayer::Square,
            })
            .collect();
        let net = IntNetwork::new(spec.input_len(), layers).map_err(|e| BgvLoadError(e.to_string()))?;
        let schedule = Schedule { before: model.levels.clone(), last: spec.output.level, budget_bits: 0.0 };
        // A relinearisation key is ~dnum·2·(levels + specials)·N·8 bytes, held once per modulus;
        // with circuit privacy, a public key (2·levels·N·8 bytes) too.
        let spec_p = params.spec();
        let public_bytes = if model.client.circuit_privacy.is_some() { 2 * spec_p.q.len() * params.n() * 8 } else { 0 };
        let key_bytes = spec_p.dnum * 2 * (spec_p.q.len() + spec_p.p.len()) * params.n() * 8 + public_bytes;
        let capacity = (store.capacity() / (key_bytes * sets.len()).max(1)).max(1);
        Ok(Self { model, sets, net, schedule, keys: Mutex::default(), capacity, store })
    }

    pub fn key_store(&self) -> &Arc<KeyStore> {
        &self.store
    }

    pub fn model(&self) -> &BgvModel {
        &self.model
    }

    /// The integer network evaluated.
    pub fn network(&self) -> &IntNetwork {
        &self.net
    }

    /// The parameter set the model runs under (its first plaintext modulus).
    pub fn params(&self) -> &Parameters {
        &self.sets[0].0
    }

    /// Plaintext moduli (1 unless a residue plan).
    pub fn residues(&self) -> usize {
        self.sets.len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Keys> {
        self.keys.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn lookup(&self, id: KeyId) -> Option<Arc<ClientKeys>> {
        let mut g = self.lock();
        g.clock += 1;
        let now = g.clock;
        let e = g.map.get_mut(&id.0)?;
        e.1 = now;
        Some(e.0.clone())
    }

    /// Registers a key bundle holding a relinearisation key; returns its key id.
    pub fn register(&self, bytes: &[u8]) -> Result<KeyId, ServiceError> {
        let id = KeyId::of_bundle(bytes);
        if self.lookup(id).is_some() {
            return Ok(id);
        }
        if bytes.starts_with(b"HEPA") {
            return Err(ServiceError::WrongScheme(
                "EVALUATION_KEYS holds a Paillier public key, but this model is BGV: make its keys with \
                 `heinfer keygen` on this model (a relinearisation key under its parameters)"
                    .into(),
            ));
        }
        let keys = EvaluationKeys::from_bytes(self.params().rlwe(), bytes).map_err(|e| {
            ServiceError::WrongScheme(format!(
                "EVALUATION_KEYS is not a key bundle under this BGV model's parameters ({e}): make its keys with \
                 `heinfer keygen` on this model"
            ))
        })?;
        let rk = keys.relin.ok_or_else(|| {
            ServiceError::IncompleteKeys("a BGV model squares: the bundle needs a relinearisation key".into())
        })?;
        let rks = self
            .sets
            .iter()
            .map(|(p, _)| rk.under(p.rlwe()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| ServiceError::WrongScheme(format!("relinearisation key: {e}")))?;
        let public =
            match (&self.model.client.circuit_privacy, keys.public) {
                (None, _) => None,
                (Some(_), None) => return Err(ServiceError::IncompleteKeys(
                    "no public key, and this model is compiled with circuit privacy (the server floods each answer \
                     under the client's public key): make the bundle from this model's client spec (`heinfer keygen` \
                     on this model, or heinfer.client_for), which adds it"
                        .into(),
                )),
                (Some(_), Some(pk)) => Some(
                    self.sets
                        .iter()
                        .map(|(p, _)| pk.under(p.rlwe()))
                        .collect::<Result<Vec<_>, _>>()
                        .map_err(|e| ServiceError::WrongScheme(format!("public key: {e}")))?,
                ),
            };
        let rks = ClientKeys { relin: rks, public };
        let mut g = self.lock();
        while g.map.len() >= self.capacity {
            let Some(oldest) = g.map.iter().min_by_key(|(_, (_, t))| *t).map(|(k, _)| *k) else { break };
            g.map.remove(&oldest);
        }
        g.clock += 1;
        let now = g.clock;
        g.map.insert(id.0, (Arc::new(rks), now));
        Ok(id)
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
        let keys = self.lookup(id).ok_or(ServiceError::Keys(KeyStoreError::UnknownKey(id)))?;
        let d = self.net.inputs();
        if req.ciphertexts.is_empty() {
            return Err(ServiceError::MissingInput("ENCRYPTED_INPUT"));
        }
        if req.ciphertexts.len() != d * self.sets.len() {
            return Err(ServiceError::WrongCount { expected: d * self.sets.len(), got: req.ciphertexts.len() });
        }
        let top = self.params().max_level();
        let x = req
            .ciphertexts
            .iter()
            .enumerate()
            .map(|(i, bytes)| {
                if bytes.starts_with(b"HEPA") {
                    return Err(bad_input(i, "a Paillier ciphertext, but this model is BGV".into()));
                }
                let residue = i / d;
                let ct = bgv::ciphertext::read_any_ciphertext(&self.sets[residue].0, bytes).map_err(|e| {
                    bad_input(
                        i,
                        format!(
                            "not a BGV ciphertext under this model's parameters for residue {residue} ({e}): \
                             encrypt each input feature with `heinfer encrypt` on this model (a ciphertext of \
                             another scheme, parameter set or plaintext modulus is refused)"
                        ),
                    )
                })?;
                if ct.level() != top || ct.factor() != 1 {
                    return Err(bad_input(
                        i,
                        format!(
                            "at level {} with factor {}; fresh encryptions at level {top} (factor 1) are expected",
                            ct.level(),
                            ct.factor()
                        ),
                    ));
                }
                Ok(ct)
            })
            .collect::<Result<Vec<Ciphertext>, _>>()?;
        if cancel.load(Ordering::Relaxed) {
            return Err(ServiceError::Run(crate::service::RunError::Cancelled { done: 0, total: 1 }));
        }
        let mut x = x.into_iter();
        let mut out = Vec::with_capacity(self.net.outputs() * self.sets.len());
        for (r, ((params, eval), rk)) in self.sets.iter().zip(keys.relin.iter()).enumerate() {
            if cancel.load(Ordering::Relaxed) {
                return Err(ServiceError::Run(crate::service::RunError::Cancelled { done: r, total: self.sets.len() }));
            }
            let mut y = self
                .net
                .evaluate(eval, rk, &self.schedule, x.by_ref().take(d).collect())
                .map_err(|e| ServiceError::WrongScheme(format!("BGV evaluation refused: {e}")))?;
            if let (Some(cp), Some(pks)) = (&self.model.client.circuit_privacy, &keys.public) {
                let refused = |e: bgv::Error| ServiceError::WrongScheme(format!("BGV circuit privacy refused: {e}"));
                let mut enc = bgv::Encryptor::new(params, &pks[r]).map_err(refused)?;
                y = y
                    .iter()
                    .map(|c| bgv::circuit::flood(&mut enc, c, cp.flood_bits, cp.lambda))
                    .collect::<Result<_, _>>()
                    .map_err(refused)?;
            }
            out.extend(y.iter().map(|c| c.to_bytes()));
        }
        Ok(Response { ciphertexts: out, key_id: id, dp: None })
    }
}
