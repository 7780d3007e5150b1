//! Serving a seeded-LWE linear model (`"scheme": "lwe"`, a `model::PaillierModel` whose
//! client spec carries `lwe` parameters): the same tensors as every model, and no keys.
//!
//! - `EVALUATION_KEYS`: none. The server needs no key: the query's a_i are expanded from its
//!   seed and the scores are plaintext-weighted sums. Keys sent anyway are refused (they are
//!   another scheme's).
//! - `KEY_ID`: optional; when given it must be the query's own key id (hex).
//! - `ENCRYPTED_INPUT`: one element, the seeded query (its parameters and length checked).
//! - `ENCRYPTED_OUTPUT`: one element, the k scores switched to the answer modulus.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use lwe::{Params, Query};
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
        Ok(Self { model, params, answer_log_q: spec.answer_log_q, weights, bias, store })
    }

    pub fn key_store(&self) -> &Arc<KeyStore> {
        &self.store
    }

    pub fn model(&self) -> &PaillierModel {
        &self.model
    }

    fn no_keys() -> ServiceError {
        ServiceError::WrongScheme(
            "this model is seeded LWE and takes no keys: send the query alone in ENCRYPTED_INPUT \
             (EVALUATION_KEYS must be absent)"
                .into(),
        )
    }

    /// There is nothing to register for an LWE model.
    pub fn register(&self, _keys: &[u8]) -> Result<KeyId, ServiceError> {
        Err(Self::no_keys())
    }

    pub fn infer_cancellable(&self, req: Request<'_>, cancel: &AtomicBool) -> Result<Response, ServiceError> {
        if req.evaluation_keys.is_some_and(|k| !k.is_empty()) {
            return Err(Self::no_keys());
        }
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
        let answer = lwe::evaluate(self.params, &query, &self.weights, &self.bias, self.answer_log_q)
            .map_err(ServiceError::Lwe)?;
        Ok(Response { ciphertexts: vec![answer.to_bytes()], key_id: id, dp: None })
    }
}
