//! Serving layout T (a batch per request, `model::throughput`): the same tensors as
//! layout L, told apart by the parameters the objects were made under (layout T has its
//! own set, so its fingerprint differs from L's).
//!
//! - `ENCRYPTED_INPUT`: one ciphertext per input feature (feature i in element i), each
//!   holding that feature of up to N/2 samples, at the spec's input level and scale,
//!   seeded (half the bytes) or not.
//! - `EVALUATION_KEYS` / `KEY_ID`: a bundle under the T parameters holding exactly a
//!   relinearisation key (no Galois key: weights are scalars).
//! - `ENCRYPTED_OUTPUT`: one ciphertext per output, sample s in slot s.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Instant;

use ckks::throughput::{Batch, Linear, LinearGroup, ThroughputEvaluator};
use ckks::wire::peek_header;
use ckks::{read_any_ciphertext_limited, Ciphertext, Parameters};
use model::{ThroughputLayer, ThroughputProgram, ThroughputSpec};

use crate::assembly::{Added, Assembler, Limits, PartTag};
use crate::keystore::{KeyId, KeyStore, KeyStoreError, Requirements};
use crate::service::{check_level, parse_key_id, OtherLayout, Request, Response, RunError, ServiceError};

/// A layout-T program that cannot be served.
#[derive(Debug, thiserror::Error)]
#[error("layout T cannot be served: {0}")]
pub struct ThroughputLoadError(String);

enum Step {
    Linear { layer: Linear, target_scale: f64 },
    Square,
}

/// Layout T of one model.
pub struct ThroughputService {
    params: Parameters,
    eval: ThroughputEvaluator,
    steps: Vec<Step>,
    spec: ThroughputSpec,
    needs: Requirements,
    /// batches sent in several requests (`BATCH_PART`), until their last part
    parts: RwLock<Arc<Assembler<Ciphertext>>>,
}

/// Rows that read the same inputs go to one group (up to the kernel's pass of
/// `ring::int_sums::GROUP` rows): a dense layer is then groups of that many rows over every input.
fn groups(rows: &[Vec<(u32, f64)>]) -> Vec<LinearGroup> {
    let mut out: Vec<LinearGroup> = Vec::new();
    for (o, row) in rows.iter().enumerate() {
        let inputs: Vec<usize> = row.iter().map(|&(i, _)| i as usize).collect();
        let weights = row.iter().map(|&(_, w)| w);
        match out.last_mut() {
            Some(g) if g.inputs == inputs && g.outputs.len() < ring::int_sums::GROUP => {
                g.outputs.push(o);
                g.weights.extend(weights);
            }
            _ => out.push(LinearGroup { outputs: vec![o], inputs, weights: weights.collect() }),
        }
    }
    out
}

impl ThroughputService {
    pub fn new(program: &ThroughputProgram, spec: &ThroughputSpec) -> Result<Self, ThroughputLoadError> {
        let params = Parameters::from_spec(&spec.params).map_err(|e| ThroughputLoadError(e.to_string()))?;
        let eval = ThroughputEvaluator::new(&params).map_err(|e| ThroughputLoadError(e.to_string()))?;
        let steps = program
            .layers
            .iter()
            .map(|l| match l {
                ThroughputLayer::Linear { inputs, rows, bias, target_scale } => Step::Linear {
                    layer: Linear { inputs: *inputs as usize, groups: groups(rows), bias: bias.clone() },
                    target_scale: *target_scale,
                },
                ThroughputLayer::Square => Step::Square,
            })
            .collect();
        let needs = Requirements::for_rotations(&params, &[], true);
        let parts = RwLock::new(Assembler::new(Limits::default()));
        Ok(Self { params, eval, steps, spec: spec.clone(), needs, parts })
    }

    /// The program: a linear layer after a square sums the three components, is
    /// relinearised, then rescaled twice (the square's prime and its own); the last layer
    /// keeps its own prime (the answer at level 1).
    fn run(
        &self,
        rk: &ckks::RelinKey,
        inputs: Vec<Ciphertext>,
        cancel: &AtomicBool,
    ) -> Result<Vec<Ciphertext>, RunError> {
        let mut x = Batch::from_ciphertexts(&self.params, inputs)?;
        let total = self.steps.len();
        for (i, step) in self.steps.iter().enumerate() {
            if cancel.load(Ordering::Relaxed) {
                return Err(RunError::Cancelled { done: i, total });
            }
            x = match step {
                Step::Square => self.eval.square(x)?,
                Step::Linear { layer, target_scale } => {
                    let r = x.degree();
                    let s = self.eval.linear_sums(&x, layer, *target_scale, r)?;
                    drop(x);
                    let mut y = self.eval.relinearize(s, rk)?;
                    let drops = if i + 1 == total { r - 1 } else { r };
                    for _ in 0..drops {
                        y = self.eval.rescale(y)?;
                    }
                    y
                }
            };
        }
        Ok(x.into_ciphertexts(&self.params)?)
    }
}

/// Layout T of a compiled model, if it has one.
pub fn for_model(m: &model::HeModel) -> Result<Option<ThroughputService>, ThroughputLoadError> {
    match (&m.throughput, &m.client.throughput) {
        (Some(p), Some(s)) => ThroughputService::new(p, s).map(Some),
        _ => Ok(None),
    }
}

impl OtherLayout for ThroughputService {
    fn params(&self) -> &Parameters {
        &self.params
    }

    /// Ciphertexts one request carries (one per input feature).
    fn input_count(&self) -> usize {
        self.spec.features as usize
    }

    /// Whether these wire bytes (a ciphertext or a key bundle) were made under layout T's
    /// parameters.
    fn owns(&self, bytes: &[u8]) -> bool {
        peek_header(bytes).is_ok_and(|h| &h.fingerprint == self.params.fingerprint())
    }

    /// Registers a layout-T bundle (exactly a relinearisation key under the T parameters).
    fn register(&self, store: &KeyStore, bundle: &[u8], key_id: Option<KeyId>) -> Result<KeyId, ServiceError> {
        store.register_for(&self.params, bundle, key_id, &self.needs, &[]).map_err(|e| match e {
            KeyStoreError::Incomplete(what) => ServiceError::IncompleteKeys(format!("layout T: {what}")),
            KeyStoreError::KeyIdMismatch { given, actual } => ServiceError::KeyIdMismatch { given, actual },
            e => ServiceError::Keys(e),
        })
    }

    fn set_batch_limits(&self, limits: Limits) {
        *self.parts.write().unwrap_or_else(|e| e.into_inner()) = Assembler::new(limits);
    }

    /// One layout-T request, or one part of a batch (`batch_part`: its `BATCH_PART`).
    /// `l_params`: the model's layout-L parameters, to say so when a KEY_ID names an L
    /// bundle.
    fn infer(
        &self,
        store: &KeyStore,
        l_params: &Parameters,
        req: Request<'_>,
        batch_part: Option<&[u8]>,
        cancel: &AtomicBool,
    ) -> Result<Response, ServiceError> {
        let part = batch_part.map(PartTag::parse).transpose()?;
        let id = match (req.evaluation_keys, req.key_id) {
            (Some(bundle), given) if self.owns(bundle) => {
                self.register(store, bundle, given.map(parse_key_id).transpose()?)?
            }
            (Some(_), _) => {
                return Err(ServiceError::WrongScheme(
                    "layout mismatch: ENCRYPTED_INPUT is a layout-T batch but EVALUATION_KEYS is not a layout-T \
                     bundle; make the bundle from the client spec's `throughput` parameters (a relinearisation key only)"
                        .into(),
                ))
            }
            (None, Some(g)) => parse_key_id(g)?,
            (None, None) => return Err(ServiceError::MissingInput("KEY_ID")),
        };
        let keys = match store.get(&self.params, id) {
            Ok(k) => k,
            Err(KeyStoreError::UnknownKey(_)) if store.get(l_params, id).is_ok() => {
                return Err(ServiceError::WrongScheme(format!(
                    "layout mismatch: KEY_ID {id} names this model's layout-L key bundle, but ENCRYPTED_INPUT is a \
                     layout-T batch; register the layout-T bundle (a relinearisation key under the spec's \
                     `throughput` parameters) and send its key id"
                )))
            }
            Err(e) => return Err(e.into()),
        };
        let rk = keys.relin.as_ref().ok_or_else(|| ServiceError::IncompleteKeys("no relinearization key".into()))?;
        let want = self.input_count();
        let fits = match &part {
            None => req.ciphertexts.len() == want,
            Some(_) => (1..=want).contains(&req.ciphertexts.len()),
        };
        if !fits {
            return Err(ServiceError::WrongScheme(format!(
                "ENCRYPTED_INPUT holds {} layout-T ciphertexts; a layout-T batch holds exactly one per input \
                 feature ({want}), each for up to {} samples, in one request or in parts tagged BATCH_PART \
                 (\"<batch id>:<k>/<n>\", at least one ciphertext each); a larger batch is several batches",
                req.ciphertexts.len(),
                self.spec.max_batch
            )));
        }
        let (level, scale) = (self.spec.input_level as usize, self.spec.input_scale);
        let inputs = req
            .ciphertexts
            .iter()
            .enumerate()
            .map(|(index, b)| {
                if !self.owns(b) {
                    return Err(ServiceError::WrongScheme(format!(
                        "layout mismatch: ENCRYPTED_INPUT[{index}] is not a layout-T ciphertext of this model, but \
                         ENCRYPTED_INPUT[0] is; one request holds one layout"
                    )));
                }
                let ct = read_any_ciphertext_limited(&self.params, b, Some(level))
                    .map_err(|source| ServiceError::Malformed { index, source })?;
                check_level(index, &ct, level, scale)?;
                Ok(ct)
            })
            .collect::<Result<Vec<_>, _>>()?;
        let inputs = match part {
            None => inputs,
            Some(tag) => {
                // Held as read (the bytes a ciphertext takes in memory, not on the wire).
                let n = self.params.n();
                let bytes = inputs.iter().map(|c| 2 * (c.level() + 1) * n * 8).sum();
                let parts = self.parts.read().unwrap_or_else(|e| e.into_inner()).clone();
                match parts.add(&tag, id, inputs, bytes, want, Instant::now())? {
                    Added::Waiting { .. } => return Ok(Response { ciphertexts: Vec::new(), key_id: id, dp: None }),
                    Added::Complete(all) => all,
                }
            }
        };
        let out = self.run(rk, inputs, cancel)?;
        Ok(Response { ciphertexts: out.iter().map(Ciphertext::to_bytes).collect(), key_id: id, dp: None })
    }
}
