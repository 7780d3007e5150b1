//! Runs a compiled model (`model::HeModel`) on ciphertexts.
//!
//! At load: the parameters are rebuilt from the client spec (and must be secure),
//! every plaintext operand is encoded once, in NTT form at its level and with Shoup
//! companions, and the last use of every value is noted so that intermediate
//! ciphertexts are freed as soon as nothing reads them. At run time the op list is
//! interpreted in order; consecutive rotations of one value share one decomposition
//! (hoisting) and run in parallel.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use ckks::{Ciphertext, Encoder, EvaluationKeys, Evaluator, Parameters, PreparedPlaintext};
use model::{HeModel, Op};
use rayon::prelude::*;
use thiserror::Error;

use crate::protocol::CLIENT_SPEC_PARAM;
use crate::service::{Executable, RunError};

/// A model config's client spec that cannot serve this model's clients.
#[derive(Debug, Error)]
pub enum SpecError {
    #[error("config parameter {CLIENT_SPEC_PARAM} is not a client spec: {0}")]
    Malformed(model::ModelError),
    #[error("config parameter {CLIENT_SPEC_PARAM} does not describe this model.hem (clients would encrypt under the wrong parameters or layout); write both with `heinfer compile`")]
    Differs,
}

#[derive(Debug, Error)]
pub enum LoadError {
    #[error(transparent)]
    Model(#[from] model::ModelError),
    #[error("the model's CKKS parameters are refused: {0}")]
    Params(#[from] ckks::ParamError),
    #[error("cannot encode the model's plaintext {index}: {source}")]
    Encode { index: usize, source: ckks::Error },
    #[error("cannot prepare the first layer applied before packing: {0}")]
    FirstLayer(ckks::Error),
    #[error("the model's compact answers cannot be made under its parameters: {0}")]
    Answer(ckks::Error),
}

/// A model ready to serve: parameters, encoded weights, the program.
pub struct CompiledModel {
    model: HeModel,
    params: Parameters,
    plaintexts: Vec<PreparedPlaintext>,
    /// for each node, the index of the last node reading it (or `usize::MAX` for outputs)
    last_use: Vec<usize>,
    steps: Vec<i64>,
    /// Layout M (`model::multi`), loaded as a model of its own, if compiled with it.
    multi: Option<Box<CompiledModel>>,
    /// A compact ring query's first layer (`model::first_layer`), prepared for packing.
    first_layer: Option<ckks::LinearLeaves>,
}

impl CompiledModel {
    /// Prepares a model read from `model.hem` (which the reader has validated).
    pub fn load(model: HeModel) -> Result<Self, LoadError> {
        model.validate()?;
        let params = Parameters::from_spec(&model.client.params)?;
        params.require_secure()?;
        if let Some(a) = &model.client.answer {
            a.shape().check(&params).map_err(LoadError::Answer)?;
        }
        let enc = Encoder::new(&params);
        let plaintexts = model
            .plaintexts
            .par_iter()
            .enumerate()
            .map(|(index, p)| {
                enc.encode(&p.values, p.level as usize, p.scale)
                    .map(PreparedPlaintext::new)
                    .map_err(|source| LoadError::Encode { index, source })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let mut last_use = vec![0usize; model.nodes.len()];
        for (i, n) in model.nodes.iter().enumerate() {
            for o in n.op.operands() {
                last_use[o as usize] = i;
            }
        }
        for &o in &model.outputs {
            last_use[o as usize] = usize::MAX;
        }
        let steps = model.client.rotation_steps.clone();
        let multi = model.multi_model().transpose()?.map(|m| Self::load(m).map(Box::new)).transpose()?;
        let first_layer = match &model.first_layer {
            Some(f) => {
                // At the scale of the prime the packing's rescale drops, so the program's
                // input lands at the query's scale.
                let level = model.client.input.level as usize;
                let scale = params.q()[level] as f64;
                let m = f.matrix(scale)?;
                Some(
                    ckks::LinearLeaves::new(&params, level, f.n_in as usize, &m, scale)
                        .map_err(LoadError::FirstLayer)?,
                )
            }
            None => None,
        };
        Ok(Self { model, params, plaintexts, last_use, steps, multi, first_layer })
    }

    pub fn load_file(path: &std::path::Path) -> Result<Self, LoadError> {
        Self::load(HeModel::read_file(path)?)
    }

    pub fn model(&self) -> &HeModel {
        &self.model
    }

    /// Checks the client spec a model config publishes (parameter [`CLIENT_SPEC_PARAM`])
    /// against the one inside `model.hem`: both servers refuse to load a model whose
    /// config would send clients the wrong spec.
    pub fn check_client_spec(&self, json: &str) -> Result<(), SpecError> {
        let spec = model::ClientSpec::from_json(json).map_err(SpecError::Malformed)?;
        if spec != self.model.client {
            return Err(SpecError::Differs);
        }
        Ok(())
    }

    /// Bytes held by the encoded plaintext operands (layout M's included).
    pub fn weight_memory_bytes(&self) -> usize {
        self.plaintexts.iter().map(PreparedPlaintext::memory_bytes).sum::<usize>()
            + self.first_layer.as_ref().map_or(0, ckks::LinearLeaves::memory_bytes)
            + self.multi.as_ref().map_or(0, |m| m.weight_memory_bytes())
    }

    pub fn into_executable(self) -> Arc<dyn Executable> {
        Arc::new(self)
    }

    /// The model served with `keys`: a [`Service`] that takes inputs only at the level
    /// and scale the client spec tells clients to encrypt at. Every front end (Triton,
    /// `heinfer serve`, the CLI) builds its service this way.
    pub fn into_service(mut self, keys: Arc<crate::KeyStore>) -> crate::Service {
        let blocks = self.model.multi.as_ref().map_or(0, |p| p.batch as usize);
        let multi = self.multi.take().map(|m| {
            let input = &m.model.client.input;
            let (level, scale) = (input.level as usize, input.scale);
            crate::service::CkksService::new(m.into_executable(), keys.clone()).with_input_level(level, scale)
        });
        let input = &self.model.client.input;
        let (level, scale) = (input.level as usize, input.scale);
        let dp = self.model.client.output_dp.clone().map(|cfg| {
            let out = &self.model.client.output;
            crate::dp::DpNoise::new(&self.params, &self.model.name, cfg, out.slots.clone(), out.multiplier)
        });
        let flooding = self.model.client.circuit_privacy.clone().map(crate::circuit_privacy::Flooding::new);
        let service = match (crate::Service::new(self.into_executable(), keys).with_input_level(level, scale), multi) {
            (crate::Service::Ckks(s), Some(m)) => crate::Service::Ckks(s.with_multi(m, blocks)),
            (s, _) => s,
        };
        let service = match dp {
            Some(d) => service.with_output_dp(d),
            None => service,
        };
        match flooding {
            Some(f) => service.with_circuit_privacy(f),
            None => service,
        }
    }
}

impl Executable for CompiledModel {
    fn params(&self) -> &Parameters {
        &self.params
    }

    fn input_count(&self) -> usize {
        self.model.client.input.slot_map.len()
    }

    fn rotation_steps(&self) -> &[i64] {
        &self.steps
    }

    fn needs_relinearization(&self) -> bool {
        self.model.client.relinearization
    }

    fn key_levels(&self) -> (Vec<(i64, usize)>, Option<usize>) {
        let mut rot: std::collections::BTreeMap<i64, usize> = std::collections::BTreeMap::new();
        let mut relin = None;
        for n in &self.model.nodes {
            let l = n.level as usize;
            match n.op {
                Op::Rotate { step, .. } => {
                    let e = rot.entry(step).or_insert(l);
                    *e = (*e).max(l);
                }
                Op::MulRelin { .. } | Op::Square { .. } => relin = Some(relin.map_or(l, |r: usize| r.max(l))),
                _ => {}
            }
        }
        (rot.into_iter().collect(), relin)
    }

    fn run(
        &self,
        eval: &Evaluator,
        keys: &EvaluationKeys,
        inputs: Vec<Ciphertext>,
    ) -> Result<Vec<Ciphertext>, RunError> {
        self.run_cancellable(eval, keys, inputs, &AtomicBool::new(false))
    }

    fn run_cancellable(
        &self,
        eval: &Evaluator,
        keys: &EvaluationKeys,
        inputs: Vec<Ciphertext>,
        cancel: &AtomicBool,
    ) -> Result<Vec<Ciphertext>, RunError> {
        self.run_program(eval, keys, inputs, cancel, None)
    }

    fn public_features(&self) -> usize {
        self.model.public.as_ref().map_or(0, |p| p.n_public())
    }

    fn compact_input(&self) -> Option<&model::CompactInput> {
        self.model.client.input.compact.as_ref()
    }

    fn first_layer(&self) -> Option<&ckks::LinearLeaves> {
        self.first_layer.as_ref()
    }

    fn answer(&self) -> Option<ckks::AnswerShape> {
        self.model.client.answer.map(|a| a.shape())
    }

    fn run_with_plain(
        &self,
        eval: &Evaluator,
        keys: &EvaluationKeys,
        inputs: Vec<Ciphertext>,
        plain: &[f64],
        cancel: &AtomicBool,
    ) -> Result<Vec<Ciphertext>, RunError> {
        let bias = bias_plaintext(&self.model, &self.params, plain)?;
        self.run_program(eval, keys, inputs, cancel, Some(bias))
    }
}

impl CompiledModel {
    /// The program on `inputs`; `bias` replaces one plaintext operand for this request
    /// (the first layer's bias with the public features' share added).
    fn run_program(
        &self,
        eval: &Evaluator,
        keys: &EvaluationKeys,
        inputs: Vec<Ciphertext>,
        cancel: &AtomicBool,
        bias: Option<(u32, ckks::Plaintext)>,
    ) -> Result<Vec<Ciphertext>, RunError> {
        let nodes = &self.model.nodes;
        let mut inputs: Vec<Option<Ciphertext>> = inputs.into_iter().map(Some).collect();
        let mut values: Vec<Option<Ciphertext>> = (0..nodes.len()).map(|_| None).collect();
        let relin = || keys.relin.as_ref().ok_or(RunError::NoRelinKey);
        let mut i = 0;
        while i < nodes.len() {
            if cancel.load(Ordering::Relaxed) {
                return Err(RunError::Cancelled { done: i, total: nodes.len() });
            }
            // A run of rotations of one value: one decomposition, the rotations in parallel.
            if let Op::Rotate { a, .. } = nodes[i].op {
                let end = (i..nodes.len())
                    .find(|&j| !matches!(nodes[j].op, Op::Rotate { a: b, .. } if b == a))
                    .unwrap_or(nodes.len());
                let src = get(&values, a)?;
                let rotated: Vec<Ciphertext> = if end - i == 1 {
                    let Op::Rotate { step, .. } = nodes[i].op else { unreachable!() };
                    vec![eval.rotate(src, step, &keys.galois)?]
                } else {
                    // One decomposition per set the keys were made in: the model's set, or
                    // a key basis (keys for lower levels may have their own special primes).
                    let key_of = |n: &model::Node| {
                        let Op::Rotate { step, .. } = n.op else { unreachable!() };
                        keys.galois.get(eval.params().galois_element(step))
                    };
                    let mut decs = vec![];
                    for key in nodes[i..end].iter().filter_map(key_of) {
                        if !decs.iter().any(|d: &ckks::Decomposed| d.params().same(key.params())) {
                            decs.push(eval.decompose_for(src, key)?);
                        }
                    }
                    nodes[i..end]
                        .par_iter()
                        .map(|n| {
                            let Op::Rotate { step, .. } = n.op else { unreachable!() };
                            let dec = key_of(n).and_then(|k| decs.iter().find(|d| d.params().same(k.params())));
                            match dec.or(decs.first()) {
                                Some(dec) => eval.rotate_decomposed(src, dec, step, &keys.galois),
                                // No key for any step: each says which it misses.
                                None => eval.rotate(src, step, &keys.galois),
                            }
                        })
                        .collect::<Result<_, _>>()?
                };
                for (k, ct) in rotated.into_iter().enumerate() {
                    values[i + k] = Some(ct);
                }
                for j in i..end {
                    self.release(&mut values, j);
                }
                i = end;
                continue;
            }
            let out = match nodes[i].op {
                Op::Input { index } => {
                    inputs.get_mut(index as usize).and_then(Option::take).ok_or(RunError::Input(index))?
                }
                Op::Add { a, b } => eval.add(get(&values, a)?, get(&values, b)?)?,
                Op::Sub { a, b } => eval.sub(get(&values, a)?, get(&values, b)?)?,
                Op::AddPlain { a, pt } => {
                    let p = match &bias {
                        Some((b, p)) if *b == pt => p,
                        _ => self.plaintexts[pt as usize].plaintext(),
                    };
                    eval.add_plain(get(&values, a)?, p)?
                }
                Op::MulPlain { a, pt } => eval.mul_prepared(get(&values, a)?, &self.plaintexts[pt as usize])?,
                Op::AddConst { a, c } => eval.add_const(get(&values, a)?, c)?,
                Op::MulConst { a, c, pt_scale } => eval.mul_const_scaled(get(&values, a)?, c, pt_scale)?,
                Op::MulRelin { a, b } => eval.mul_relin(get(&values, a)?, get(&values, b)?, relin()?)?,
                Op::Square { a } => eval.square_relin(get(&values, a)?, relin()?)?,
                Op::Rescale { a } => eval.rescale(get(&values, a)?)?,
                Op::DropLevel { a, level } => eval.drop_level(get(&values, a)?, level as usize)?,
                Op::Rotate { .. } => unreachable!("handled above"),
            };
            values[i] = Some(out);
            self.release(&mut values, i);
            i += 1;
        }
        self.model.outputs.iter().map(|&o| values[o as usize].take().ok_or(RunError::Output(o))).collect()
    }
}

impl CompiledModel {
    /// Frees the operands of node `i` that no later node reads.
    fn release(&self, values: &mut [Option<Ciphertext>], i: usize) {
        for o in self.model.nodes[i].op.operands() {
            if self.last_use[o as usize] == i {
                values[o as usize] = None;
            }
        }
    }
}

fn get(values: &[Option<Ciphertext>], v: u32) -> Result<&Ciphertext, RunError> {
    values.get(v as usize).and_then(Option::as_ref).ok_or(RunError::Value(v))
}

/// The first layer's bias plaintext for one request: b + W_p·x_p in the layer's output
/// layout, encoded at the bias's level and scale.
fn bias_plaintext(m: &HeModel, params: &Parameters, x: &[f64]) -> Result<(u32, ckks::Plaintext), RunError> {
    let part = m.public.as_ref().ok_or_else(|| RunError::Public("this model takes no public features".into()))?;
    let base = &m.plaintexts[part.bias_pt as usize];
    let values = part.bias_values(base, x, m.slots()).map_err(|e| RunError::Public(e.to_string()))?;
    let pt = Encoder::new(params).encode(&values, base.level as usize, base.scale)?;
    Ok((part.bias_pt, pt))
}
