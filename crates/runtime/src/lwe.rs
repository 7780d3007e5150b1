//! Serving a seeded-LWE linear model (`"scheme": "lwe"`, a `model::PaillierModel` whose
//! client spec carries `lwe` parameters): the same tensors as every model.
//!
//! - `EVALUATION_KEYS`: for a model compiled with `rerandomize` (the default), the client's
//!   seeded RLWE public key (`lwe::PublicKey`), registered under its LWE key id like a
//!   Paillier public key (same bytes again: a no-op); every answer is re-randomised under
//!   it, and a query whose key id has none registered is refused. For an older key-free
//!   model: none (keys sent are refused).
//! - `KEY_ID`: optional; when given it must be the query's own key id (hex).
//! - `ENCRYPTED_INPUT`: one element, the seeded query (its parameters and length checked).
//! - `ENCRYPTED_OUTPUT`: one element, the k scores switched to the answer modulus.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use lwe::{Params, PublicKey, Query, Rerandomizer};
use model::PaillierModel;

use crate::keystore::{KeyId, KeyStore};
use crate::service::{Request, Response, ServiceError};

/// An LWE model that cannot be served.
#[derive(Debug, thiserror::Error)]
#[error("the LWE model cannot be served: {0}")]
pub struct LweLoadError(String);

pub struct LweService {
    model: PaillierModel,
    params: Params,
    answer_log_q: u32,
    /// The rows the answer carries (the spec's `negated` rows left out) and their biases.
    weights: Vec<Vec<i64>>,
    bias: Vec<i64>,
    store: Arc<KeyStore>,
    /// `Some(flood bits)` when answers are re-randomised (the spec's `rerandomize`).
    rerandomize: Option<u32>,
    keys: Mutex<Keys>,
    capacity: usize,
}

/// Memory one registered public key takes expanded (a and b, n words each, and the map).
const KEY_MEMORY: usize = 64 << 10;

#[derive(Default)]
struct Keys {
    map: HashMap<[u8; 32], (Arc<Rerandomizer>, u64)>,
    clock: u64,
}

impl LweService {
    pub fn new(model: PaillierModel, store: Arc<KeyStore>) -> Result<Self, LweLoadError> {
        let spec =
            model.client.lwe.clone().ok_or_else(|| LweLoadError("the client spec has no LWE parameters".into()))?;
        let params = Params::new(spec.log_n, spec.log_q).map_err(|e| LweLoadError(e.to_string()))?;
        Params::new(spec.log_n, spec.answer_log_q).map_err(|e| LweLoadError(e.to_string()))?;
        let bias = model
            .bias
            .iter()
            .map(|b| b.parse::<i64>().map_err(|e| LweLoadError(format!("bias {b:?}: {e}"))))
            .collect::<Result<Vec<_>, _>>()?;
        let rows = spec.answered(model.weights.len());
        let weights = rows.iter().map(|&j| model.weights[j].clone()).collect();
        let bias = rows.iter().map(|&j| bias[j]).collect();
        let rerandomize = spec.rerandomize.then_some(spec.flood_bits);
        let capacity = (store.capacity() / KEY_MEMORY).max(1);
        Ok(Self {
            model,
            params,
            answer_log_q: spec.answer_log_q,
            weights,
            bias,
            store,
            rerandomize,
            keys: Mutex::default(),
            capacity,
        })
    }

    /// Registered public keys held now.
    pub fn registered(&self) -> usize {
        self.lock().map.len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Keys> {
        self.keys.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn lookup(&self, id: &[u8; 32]) -> Option<Arc<Rerandomizer>> {
        let mut g = self.lock();
        g.clock += 1;
        let now = g.clock;
        let e = g.map.get_mut(id)?;
        e.1 = now;
        Some(e.0.clone())
    }

    pub fn key_store(&self) -> &Arc<KeyStore> {
        &self.store
    }

    pub fn model(&self) -> &PaillierModel {
        &self.model
    }

    fn no_keys() -> ServiceError {
        ServiceError::WrongScheme(
            "this model is seeded LWE compiled before answers were re-randomised, and takes no keys: send the \
             query alone in ENCRYPTED_INPUT \
             (EVALUATION_KEYS must be absent)"
                .into(),
        )
    }

    /// Registers a client's LWE public key under its key id (a key-free model refuses it).
    /// The same key again is a no-op; the least recently used key goes when the store's
    /// memory budget is reached.
    pub fn register(&self, bytes: &[u8]) -> Result<KeyId, ServiceError> {
        if self.rerandomize.is_none() {
            return Err(Self::no_keys());
        }
        if bytes.starts_with(b"HEIN") || bytes.starts_with(b"HEPA") || !bytes.starts_with(lwe::MAGIC) {
            return Err(ServiceError::LweKey(
                "EVALUATION_KEYS is not an LWE public key: this model is seeded LWE; send the public key \
                 `heinfer keygen` wrote for it (or heinfer.LweClient.public_key())"
                    .into(),
            ));
        }
        let key = PublicKey::from_bytes(bytes).map_err(|e| {
            ServiceError::LweKey(format!("EVALUATION_KEYS is not an LWE public key this model accepts: {e}"))
        })?;
        if key.params != self.params {
            return Err(ServiceError::LweKey(format!(
                "EVALUATION_KEYS is not an LWE public key this model accepts: {}",
                lwe::LweError::ParamsMismatch {
                    what: "public key",
                    found_log_n: key.params.log_n(),
                    found_log_q: key.params.log_q(),
                    want_log_n: self.params.log_n(),
                    want_log_q: self.params.log_q(),
                }
            )));
        }
        let id = key.key_id;
        if let Some(k) = self.lookup(&id) {
            if *k.key() == key {
                return Ok(KeyId(id));
            }
            // One secret key has one public key (derived from its seed): another one under a
            // registered id is someone else's, and would spoil that client's answers.
            return Err(ServiceError::LweKey(format!(
                "another public key is already registered for key id {}: a secret key has one public key; \
                 send the one `heinfer keygen` wrote for it (or make a new secret key)",
                KeyId(id)
            )));
        }
        let r = Arc::new(key.expand());
        let mut g = self.lock();
        while g.map.len() >= self.capacity {
            let Some(oldest) = g.map.iter().min_by_key(|(_, (_, t))| *t).map(|(k, _)| *k) else { break };
            g.map.remove(&oldest);
        }
        g.clock += 1;
        let now = g.clock;
        g.map.insert(id, (r, now));
        Ok(KeyId(id))
    }

    pub fn infer_cancellable(&self, req: Request<'_>, cancel: &AtomicBool) -> Result<Response, ServiceError> {
        let registered = match req.evaluation_keys.filter(|k| !k.is_empty()) {
            Some(k) => Some(self.register(k)?),
            None => None,
        };
        let [bytes] = req.ciphertexts[..] else {
            if req.ciphertexts.is_empty() {
                return Err(ServiceError::MissingInput("ENCRYPTED_INPUT"));
            }
            return Err(ServiceError::WrongCount { expected: 1, got: req.ciphertexts.len() });
        };
        if bytes.starts_with(b"HEIN") || bytes.starts_with(b"HEPA") {
            return Err(ServiceError::WrongScheme(
                "ENCRYPTED_INPUT holds a CKKS or Paillier ciphertext, but this model is seeded LWE: encrypt \
                 with an LWE key as its client spec says"
                    .into(),
            ));
        }
        let query = Query::from_bytes(bytes).map_err(ServiceError::Lwe)?;
        let id = KeyId(query.key_id);
        if let Some(g) = req.key_id.map(crate::service::parse_key_id).transpose()? {
            if g != id {
                return Err(ServiceError::Lwe(lwe::LweError::Invalid {
                    field: "KEY_ID",
                    detail: format!(
                        "{g} is not the key id the query was made under ({id}): send the id `heinfer keygen` \
                         printed for the key that encrypted it"
                    ),
                }));
            }
        }
        if cancel.load(Ordering::Relaxed) {
            return Err(ServiceError::Run(crate::service::RunError::Cancelled { done: 0, total: 1 }));
        }
        if let Some(r) = registered.filter(|r| *r != id) {
            return Err(ServiceError::LweKey(format!(
                "the query was made under key id {id} but EVALUATION_KEYS is the public key of {r}: send the \
                 public key of the secret key that encrypted the query"
            )));
        }
        let answer = match self.rerandomize {
            None => lwe::evaluate(self.params, &query, &self.weights, &self.bias, self.answer_log_q),
            Some(flood_bits) => {
                let key = self.lookup(&id.0).ok_or_else(|| {
                    ServiceError::LweKey(format!(
                        "no LWE public key is registered for key id {id}: this model re-randomises its answers \
                         under the client's public key; send it once in EVALUATION_KEYS (with this query or \
                         before it) — `heinfer keygen` writes it, heinfer.LweClient.public_key() returns it"
                    ))
                })?;
                lwe::evaluate_rerandomized(
                    self.params,
                    &query,
                    &self.weights,
                    &self.bias,
                    self.answer_log_q,
                    &key,
                    flood_bits,
                )
            }
        }
        .map_err(ServiceError::Lwe)?;
        Ok(Response { ciphertexts: vec![answer.to_bytes()], key_id: id, dp: None })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use model::{LinearInput, LinearOutput, LinearSpec, LweSpec, Scheme};

    fn model(rerandomize: bool) -> PaillierModel {
        let lwe = LweSpec {
            log_n: 11,
            log_q: 53,
            answer_log_q: 40,
            input_frac_bits: vec![10, 10],
            input_bound_bits: 20,
            error_bound: 1.0,
            negated: Vec::new(),
            rerandomize,
            flood_bits: if rerandomize { 8 } else { 0 },
        };
        PaillierModel {
            name: "t".into(),
            client: LinearSpec {
                version: model::linear::LINEAR_SPEC_VERSION,
                scheme: Scheme::Lwe,
                model: "t".into(),
                min_modulus_bits: 0,
                input: LinearInput { name: "x".into(), shape: vec![2], frac_bits: 0 },
                output: LinearOutput { name: "y".into(), shape: vec![1], frac_bits: 20, final_name: "y".into() },
                lwe: Some(lwe),
                postprocess: Vec::new(),
            },
            layers: Vec::new(),
            weight_frac_bits: 20,
            weights: vec![vec![3, -2]],
            bias: vec!["5".into()],
            report: String::new(),
        }
    }

    fn service(rerandomize: bool) -> LweService {
        LweService::new(model(rerandomize), Arc::new(KeyStore::new(1 << 20, None).unwrap())).unwrap()
    }

    fn infer(s: &LweService, q: &[u8], keys: Option<&[u8]>) -> Result<Response, ServiceError> {
        s.infer_cancellable(
            Request { ciphertexts: vec![q], key_id: None, evaluation_keys: keys },
            &AtomicBool::new(false),
        )
    }

    #[test]
    fn a_rerandomizing_model_needs_the_public_key_and_keeps_the_first() {
        let p = Params::default_128();
        let sk = lwe::SecretKey::generate(p);
        let q = sk.encrypt(p, &[1000, 7]).unwrap().to_bytes();
        let s = service(true);
        let e = infer(&s, &q, None).err().expect("no public key registered");
        assert!(e.to_string().contains("no LWE public key is registered"), "{e}");
        let pk = sk.public_key(p).unwrap().to_bytes();
        let out = infer(&s, &q, Some(&pk)).unwrap();
        let a = lwe::Answer::from_bytes(&out.ciphertexts[0]).unwrap();
        let got = sk.decrypt(&a).unwrap()[0] as f64 * 2f64.powi(13);
        let bound = lwe::noise::rerandomized_error_bound(&[3, -2], 2048, 53, 40, 8);
        assert!((got - (3.0 * 1000.0 - 14.0 + 5.0)).abs() <= bound, "{got}");
        // registered: the next query needs no keys; another public key under this id is refused
        assert!(infer(&s, &q, None).is_ok());
        let mut other = pk.clone();
        other[100] ^= 1;
        let e = infer(&s, &q, Some(&other)).err().expect("another key under the id");
        assert!(e.to_string().contains("already registered"), "{e}");
        assert_eq!(s.registered(), 1);
    }

    #[test]
    fn a_key_free_model_compiled_before_rerandomization_is_served_as_before() {
        let p = Params::default_128();
        let sk = lwe::SecretKey::generate(p);
        let q = sk.encrypt(p, &[1000, 7]).unwrap().to_bytes();
        let s = service(false);
        let out = infer(&s, &q, None).unwrap();
        let a = lwe::Answer::from_bytes(&out.ciphertexts[0]).unwrap();
        let got = sk.decrypt(&a).unwrap()[0] as f64 * 2f64.powi(13);
        assert!((got - 2991.0).abs() <= lwe::noise::score_error_bound(&[3, -2], 2048, 53, 40));
        let e = infer(&s, &q, Some(&sk.public_key(p).unwrap().to_bytes())).err().expect("keys refused");
        assert!(e.to_string().contains("takes no keys"), "{e}");
    }
}
