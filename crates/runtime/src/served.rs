//! The model a front end serves, of either scheme: a CKKS program ([`CkksService`]) or a
//! Paillier linear model ([`LinearService`]), behind one request path.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use crate::keystore::{KeyId, KeyStore};
use crate::linear::LinearService;
use crate::lwe::LweService;
use crate::service::{CkksService, Executable, Request, Response, ServiceError};

/// A model being served, of either scheme: every front end holds one of these.
// One per served model, held in an Arc: the variants' sizes do not matter.
#[allow(clippy::large_enum_variant)]
pub enum Service {
    Ckks(CkksService),
    Paillier(LinearService),
    Lwe(LweService),
    Bgv(crate::bgv::BgvService),
}

impl Service {
    pub fn new(exe: Arc<dyn Executable>, keys: Arc<KeyStore>) -> Self {
        Service::Ckks(CkksService::new(exe, keys))
    }

    /// Requires CKKS inputs at this level and scale (the client spec says which).
    pub fn with_input_level(self, level: usize, scale: f64) -> Self {
        match self {
            Service::Ckks(s) => Service::Ckks(s.with_input_level(level, scale)),
            p => p,
        }
    }

    /// Adds noise for differentially private outputs, with its per-key budget (CKKS
    /// models compiled with `--output-dp`).
    pub fn with_output_dp(self, dp: crate::dp::DpNoise) -> Self {
        match self {
            Service::Ckks(s) => Service::Ckks(s.with_output_dp(dp)),
            p => p,
        }
    }

    /// Floods every answer's noise under the client's public key (CKKS models compiled
    /// with `--circuit-privacy`); bundles without a public key are refused.
    pub fn with_circuit_privacy(self, flooding: crate::circuit_privacy::Flooding) -> Self {
        match self {
            Service::Ckks(s) => Service::Ckks(s.with_circuit_privacy(flooding)),
            p => p,
        }
    }

    /// Overrides the model's privacy budget per key id (a serving config's
    /// `heinfer_dp_budget`); no effect on a model without output DP.
    pub fn set_dp_budget(&mut self, budget: Option<f64>) {
        if let Service::Ckks(s) = self {
            s.set_dp_budget(budget);
        }
    }

    /// The output-DP noise this service adds, if any.
    pub fn output_dp(&self) -> Option<&crate::dp::DpNoise> {
        match self {
            Service::Ckks(s) => s.output_dp(),
            Service::Paillier(_) | Service::Lwe(_) | Service::Bgv(_) => None,
        }
    }

    /// The CKKS program, if this is a CKKS model.
    pub fn executable(&self) -> Option<&Arc<dyn Executable>> {
        match self {
            Service::Ckks(s) => Some(s.executable()),
            Service::Paillier(_) | Service::Lwe(_) | Service::Bgv(_) => None,
        }
    }

    pub fn key_store(&self) -> &Arc<KeyStore> {
        match self {
            Service::Ckks(s) => s.key_store(),
            Service::Paillier(p) => p.key_store(),
            Service::Lwe(l) => l.key_store(),
            Service::Bgv(b) => b.key_store(),
        }
    }

    /// Elements of `ENCRYPTED_INPUT` one request carries.
    pub fn input_count(&self) -> usize {
        match self {
            Service::Ckks(s) => s.executable().input_count(),
            Service::Paillier(_) | Service::Lwe(_) => 1,
            Service::Bgv(b) => b.model().client.input_len() * b.residues(),
        }
    }

    /// Elements of `ENCRYPTED_INPUT` a layout-T request carries, if the model has layout T.
    pub fn throughput_count(&self) -> Option<usize> {
        match self {
            Service::Ckks(s) => s.throughput().map(|t| t.input_count()),
            Service::Paillier(_) | Service::Lwe(_) | Service::Bgv(_) => None,
        }
    }

    /// Whether `ENCRYPTED_INPUT` may hold `n` elements (one layout's count); `part`: the
    /// request is one part of a layout-T batch (`BATCH_PART`), which holds 1 to all of
    /// the batch's ciphertexts.
    pub fn accepts_input_count(&self, n: usize, part: bool) -> bool {
        if part {
            return self.throughput_count().is_some_and(|t| (1..=t).contains(&n));
        }
        n == self.input_count() || self.throughput_count() == Some(n)
    }

    /// Bounds of the layout-T batches held for their parts (models with layout T).
    pub fn set_batch_limits(&self, limits: crate::assembly::Limits) {
        if let Service::Ckks(s) = self {
            if let Some(t) = s.throughput() {
                t.set_batch_limits(limits);
            }
        }
    }

    pub fn scheme(&self) -> model::Scheme {
        match self {
            Service::Ckks(_) => model::Scheme::Ckks,
            Service::Paillier(_) => model::Scheme::Paillier,
            Service::Lwe(_) => model::Scheme::Lwe,
            Service::Bgv(_) => model::Scheme::Bgv,
        }
    }

    /// Registers a CKKS key bundle or a Paillier public key, as the model's scheme takes.
    pub fn register(&self, keys: &[u8]) -> Result<KeyId, ServiceError> {
        match self {
            Service::Ckks(s) => s.register(keys),
            Service::Paillier(p) => p.register(keys),
            Service::Lwe(l) => l.register(keys),
            Service::Bgv(b) => b.register(keys),
        }
    }

    pub fn infer(&self, req: Request<'_>) -> Result<Response, ServiceError> {
        self.infer_cancellable(req, &AtomicBool::new(false))
    }

    pub fn infer_cancellable(&self, req: Request<'_>, cancel: &AtomicBool) -> Result<Response, ServiceError> {
        match self {
            Service::Ckks(s) => s.infer_cancellable(req, cancel),
            Service::Paillier(p) => p.infer_cancellable(req, cancel),
            Service::Lwe(l) => l.infer_cancellable(req, cancel),
            Service::Bgv(b) => b.infer_cancellable(req, cancel),
        }
    }

    /// Public features the model takes in clear (`PLAIN_INPUT` holds that many values).
    pub fn public_features(&self) -> usize {
        match self {
            Service::Ckks(s) => s.executable().public_features(),
            Service::Paillier(_) | Service::Lwe(_) | Service::Bgv(_) => 0,
        }
    }

    /// [`Service::infer_cancellable`] with the request's `PLAIN_INPUT`, if it has one.
    pub fn infer_with_plain(
        &self,
        req: Request<'_>,
        plain: Option<crate::public::PlainInput>,
        cancel: &AtomicBool,
    ) -> Result<Response, ServiceError> {
        self.infer_parts(req, plain, None, cancel)
    }

    /// [`Service::infer_with_plain`] with the request's `BATCH_PART`, if it has one (a
    /// part of a layout-T batch sent in several requests: `crate::assembly`).
    pub fn infer_parts(
        &self,
        req: Request<'_>,
        plain: Option<crate::public::PlainInput>,
        batch_part: Option<&[u8]>,
        cancel: &AtomicBool,
    ) -> Result<Response, ServiceError> {
        if batch_part.is_some() && !matches!(self, Service::Ckks(_)) {
            return Err(crate::assembly::AssemblyError::NotLayoutT("this model is not a CKKS model").into());
        }
        match self {
            Service::Ckks(s) => s.infer_parts(req, plain, batch_part, cancel),
            Service::Paillier(p) => {
                crate::public::check(plain, 0)?;
                p.infer_cancellable(req, cancel)
            }
            Service::Lwe(l) => {
                crate::public::check(plain, 0)?;
                l.infer_cancellable(req, cancel)
            }
            Service::Bgv(b) => {
                crate::public::check(plain, 0)?;
                b.infer_cancellable(req, cancel)
            }
        }
    }

    /// Layout M's samples per ciphertext (B) where the model merges same-key requests
    /// into one evaluation ([`CkksService::infer_merged`]); None for any other model.
    pub fn merged_blocks(&self) -> Option<usize> {
        match self {
            Service::Ckks(s) => s.merged_blocks(),
            _ => None,
        }
    }

    /// [`CkksService::infer_merged`]: several same-key layout-M requests, one evaluation.
    /// A model that does not merge answers each request alone.
    pub fn infer_merged(
        &self,
        key_id: &[u8],
        requests: &[Vec<&[u8]>],
        cancel: &AtomicBool,
    ) -> Vec<Result<Response, ServiceError>> {
        match self {
            Service::Ckks(s) if s.merged_blocks().is_some() => s.infer_merged(key_id, requests, cancel),
            _ => requests
                .iter()
                .map(|cts| {
                    let req = Request { ciphertexts: cts.clone(), key_id: Some(key_id), evaluation_keys: None };
                    self.infer_cancellable(req, cancel)
                })
                .collect(),
        }
    }

    /// A merged model's request served by itself: like one member of
    /// [`Service::infer_merged`] (layout M's program, whatever bundle the key id names,
    /// so that a layout-L key cannot run the wrong program on a block), registering the
    /// bundle first when the request carries one.
    pub fn infer_merged_alone(&self, req: Request<'_>, cancel: &AtomicBool) -> Result<Response, ServiceError> {
        let id = match (req.evaluation_keys, req.key_id) {
            (Some(bundle), given) => {
                let id = self.register(bundle)?;
                match given.map(crate::service::parse_key_id).transpose()? {
                    Some(g) if g != id => return Err(ServiceError::KeyIdMismatch { given: g, actual: id }),
                    _ => id,
                }
            }
            (None, Some(g)) => crate::service::parse_key_id(g)?,
            (None, None) => return Err(ServiceError::MissingInput("KEY_ID")),
        };
        let hex = id.hex();
        let mut answers = self.infer_merged(hex.as_bytes(), &[req.ciphertexts], cancel);
        answers.pop().unwrap_or(Err(ServiceError::Merged("no answer".into())))
    }
}
