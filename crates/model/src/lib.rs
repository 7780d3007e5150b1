//! # model — the compiled heinfer model
//!
//! A compiled model ([`HeModel`]) is a CKKS parameter set, a straight-line program of
//! HE operations ([`Node`]/[`Op`]) over numbered ciphertext values, the plaintext
//! operands it uses ([`PlainVec`], real slot vectors the runtime encodes once at load),
//! the [`ClientSpec`] (parameters, input layout, rotation keys, output layout,
//! post-processing) and the compiler's [`Report`].
//!
//! * [`HeModel::to_bytes`] / [`HeModel::from_bytes`]: the versioned `model.hem` file
//!   (see [`file`]); the reader checks lengths before allocating, a SHA-256 checksum,
//!   and the whole program with [`ir::validate_program`] — bad files are errors.
//! * [`simulate`]: runs the very same op list on f64 slot vectors (cyclic rotations
//!   over N/2 slots), so that its output predicts the decrypted one up to CKKS noise.
//!
//! ```no_run
//! # fn main() -> Result<(), model::ModelError> {
//! let m = model::HeModel::read_file("model.hem")?;
//! let x = vec![0.0; m.client.input.shape.iter().product()];
//! let cts = m.client.pack_input(&x)?;            // client side: slot vectors to encrypt
//! let out = model::simulate(&m, &cts)?;          // what the server's result decrypts to
//! let logits = m.client.unpack_output(&out)?;
//! let probs = m.client.postprocess(&logits);
//! # Ok(()) }
//! ```

#![forbid(unsafe_code)]

pub mod answer;
pub mod bgv_model;
pub mod circuit;
pub mod client_aided;
pub mod dp;
pub mod file;
pub mod first_layer;
pub mod ir;
pub mod linear;
pub mod lwe_spec;
pub mod multi;
pub mod prefix;
pub mod public;
pub mod report;
pub mod sim;
pub mod spec;
pub mod throughput;

pub use answer::AnswerSpec;
pub use bgv_model::{BgvInput, BgvLayer, BgvModel, BgvOutput, BgvSpec};
pub use circuit::CircuitPrivacy;
pub use dp::{DpMechanism, OutputDp};
pub use ir::{validate_program, Node, Op, PlainVec, ValueId};
pub use linear::{AnyModel, AnySpec, LinearInput, LinearOutput, LinearSpec, PaillierModel, Scheme};
pub use lwe_spec::LweSpec;
pub use multi::{MultiProgram, MAX_MULTI_BATCH};
pub use public::{PublicPart, PUBLIC_PART_VERSION};
pub use report::{ActivationReport, CompositeReport, LayerReport, Report};
pub use sim::{simulate, simulate_values};
pub use spec::{
    apply_postprocess, argmax, ClientSpec, CompactInput, InputPart, InputSpec, KeyLevels, OutputSpec, PostOp,
    CLIENT_SPEC_VERSION,
};
pub use throughput::{LayoutCost, ThroughputLayer, ThroughputProgram, ThroughputSpec, THROUGHPUT_VERSION};

use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("not a heinfer model file (bad magic)")]
    Magic,
    #[error("model file version {found} is not supported (this build reads {supported})")]
    Version { found: u32, supported: u32 },
    #[error("model file truncated or malformed: {0}")]
    Truncated(String),
    #[error("model file checksum mismatch (corrupted file)")]
    Checksum,
    #[error("invalid model: {0}")]
    Invalid(String),
    #[error("shape: {0}")]
    Shape(String),
    #[error("I/O error on {path}: {source}")]
    Io { path: String, source: std::io::Error },
}

/// One named layer of the source model, as the program's nodes refer to it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LayerInfo {
    pub name: String,
    /// e.g. "conv 1x28x28 -> 4x8x8 (im2col by client)", "dense 256 -> 64", "square", "relu ~ poly deg 4"
    pub kind: String,
}

/// A compiled model.
#[derive(Clone, Debug, PartialEq)]
pub struct HeModel {
    pub name: String,
    pub client: ClientSpec,
    pub layers: Vec<LayerInfo>,
    pub nodes: Vec<Node>,
    pub plaintexts: Vec<PlainVec>,
    /// The values whose ciphertexts are the result, in `client.output` order.
    pub outputs: Vec<ValueId>,
    pub report: Option<Report>,
    /// Public features' weights and where they go (`compile --public-features`); None
    /// for a model that encrypts its whole input.
    pub public: Option<PublicPart>,
    /// Layout T's program (weights included), when compiled with it; its client side is
    /// `client.throughput`.
    pub throughput: Option<ThroughputProgram>,
    /// Layout M's program (`model::multi`), when compiled with it; its client side is
    /// `client.multi`.
    pub multi: Option<MultiProgram>,
    /// A compact query's first layer, applied before packing (`model::first_layer`); the
    /// program's input is then its output, one level below the query.
    pub first_layer: Option<first_layer::PackedFirstLayer>,
}

impl HeModel {
    /// N/2 for the model's parameters.
    pub fn slots(&self) -> usize {
        1usize << (self.client.params.log_n - 1)
    }

    /// Full consistency check (the reader runs it on every file).
    pub fn validate(&self) -> Result<(), ModelError> {
        let p = &self.client.params;
        if !(1..=17).contains(&p.log_n) || p.q.is_empty() {
            return Err(ModelError::Invalid("bad parameter description".into()));
        }
        let n_in = self.client.input.slot_map.len();
        // A first layer applied before packing hands the program its output, one level down.
        let program_level = self.client.input.level.saturating_sub(self.first_layer.is_some() as u32);
        let inputs: Vec<(u32, f64)> = vec![(program_level, self.client.input.scale); n_in];
        let slots = self.slots();
        let elems: usize = self.client.input.shape.iter().product();
        for m in &self.client.input.slot_map {
            if m.len() > slots || m.iter().any(|&i| i < -1 || i >= elems as i32) {
                return Err(ModelError::Invalid("input slot map out of range".into()));
            }
        }
        validate_program(&self.nodes, &self.plaintexts, &p.q, slots, &inputs)?;
        match &self.public {
            Some(part) => part.validate(self)?,
            None if !self.client.public_features.is_empty() => {
                return Err(ModelError::Invalid(
                    "the client spec names public features the model has no weights for".into(),
                ))
            }
            None => {}
        }
        match &self.first_layer {
            Some(f) => f.validate(self)?,
            None if self.client.input.compact.as_ref().is_some_and(|c| c.ring_values.is_some()) => {
                return Err(ModelError::Invalid(
                    "the client spec asks for a ring query the model has no layer for".into(),
                ))
            }
            None => {}
        }
        match (&self.throughput, &self.client.throughput) {
            (Some(p), Some(spec)) => p.validate(spec)?,
            (None, None) => {}
            _ => return Err(ModelError::Invalid("layout-T program and client spec disagree".into())),
        }
        match (&self.multi, &self.client.multi) {
            (Some(_), Some(_)) => self.validate_multi()?,
            (None, None) => {}
            _ => return Err(ModelError::Invalid("layout-M program and client spec disagree".into())),
        }
        if let Some(a) = &self.client.answer {
            let q0_bits = p.q.first().map_or(0, |&q| 64 - q.leading_zeros());
            if a.log_n > p.log_n || a.log_n < 10 || a.log_q < 8 || a.log_q >= q0_bits {
                return Err(ModelError::Invalid(format!(
                    "compact answer of degree 2^{} modulo 2^{} does not fit N = 2^{} and a {q0_bits}-bit last prime",
                    a.log_n, a.log_q, p.log_n
                )));
            }
            if a.log_n < p.log_n && 2 * answer::output_period(self) > 1 << a.log_n {
                return Err(ModelError::Invalid(format!(
                    "compact answer folded to degree 2^{}, but the program's answer repeats only every {} slots",
                    a.log_n,
                    answer::output_period(self)
                )));
            }
        }
        if self.outputs.len() != self.client.output.ciphertexts as usize {
            return Err(ModelError::Invalid("output count differs from the client spec".into()));
        }
        for &o in &self.outputs {
            let n =
                self.nodes.get(o as usize).ok_or_else(|| ModelError::Invalid(format!("output value {o} missing")))?;
            if n.level != self.client.output.level || ((n.scale - self.client.output.scale) / n.scale).abs() > 1e-9 {
                return Err(ModelError::Invalid("output level/scale differ from the client spec".into()));
            }
        }
        for &(c, s) in &self.client.output.slots {
            if c as usize >= self.outputs.len() || s as usize >= slots {
                return Err(ModelError::Invalid("output slot out of range".into()));
            }
        }
        let mut steps: Vec<i64> = self
            .nodes
            .iter()
            .filter_map(|n| if let Op::Rotate { step, .. } = n.op { Some(step) } else { None })
            .collect();
        steps.sort_unstable();
        steps.dedup();
        let mut declared = self.client.rotation_steps.clone();
        declared.sort_unstable();
        if steps != declared {
            return Err(ModelError::Invalid("rotation steps in the program differ from the client spec".into()));
        }
        let relin = self.nodes.iter().any(|n| matches!(n.op, Op::MulRelin { .. } | Op::Square { .. }));
        if relin != self.client.relinearization {
            return Err(ModelError::Invalid("relinearization flag differs from the program".into()));
        }
        // Keys made only up to a level must reach every use.
        let levels: std::collections::HashMap<i64, usize> = self.client.rotation_key_levels().into_iter().collect();
        let relin_level = self.client.relin_key_level();
        for n in &self.nodes {
            let (what, have) = match n.op {
                Op::Rotate { step, .. } => (format!("rotation by {step}"), levels.get(&step).copied()),
                Op::MulRelin { .. } | Op::Square { .. } => ("relinearization".to_string(), relin_level),
                _ => continue,
            };
            if have.is_some_and(|l| (n.level as usize) > l) {
                return Err(ModelError::Invalid(format!(
                    "the client spec's key for {what} stops at level {} but the program uses it at level {}",
                    have.unwrap_or(0),
                    n.level
                )));
            }
        }
        Ok(())
    }

    /// Operation counts by op name.
    pub fn op_counts(&self) -> std::collections::BTreeMap<&'static str, usize> {
        let mut m = std::collections::BTreeMap::new();
        for n in &self.nodes {
            *m.entry(n.op.name()).or_insert(0) += 1;
        }
        m
    }
}
