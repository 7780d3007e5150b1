//! The client spec: everything a client needs to make keys, lay out and encrypt its
//! input, and read the result. It travels as JSON in the Triton config parameter
//! `heinfer_client_spec` (and inside `model.hem`).

use ckks::ParamsSpec;
use serde::{Deserialize, Serialize};

use crate::ModelError;

/// Version of the client-spec JSON layout.
pub const CLIENT_SPEC_VERSION: u32 = 1;

/// Most ciphertexts one sample may take in or give back (a bound on what a client
/// allocates for a spec it did not write).
pub const MAX_CIPHERTEXTS: usize = 4096;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClientSpec {
    pub version: u32,
    pub model: String,
    /// The CKKS parameter set (rebuild with `ckks::Parameters::from_spec`).
    pub params: ParamsSpec,
    pub input: InputSpec,
    /// Rotation steps (left, negative = right) the client must make Galois keys for.
    pub rotation_steps: Vec<i64>,
    /// The Galois elements of those steps, in the same order (for N = 2^params.log_n).
    pub galois_elements: Vec<u64>,
    /// Whether a relinearization key is needed (any ciphertext × ciphertext product).
    pub relinearization: bool,
    /// The highest level each key is used at, so the client makes it no higher (a key for
    /// level l has ⌈(l+1)/α⌉ of the dnum digits, over l+1 of the q primes: most of the
    /// upload for keys used deep in a network). Absent in specs written before: every key
    /// at the top level.
    #[serde(default, skip_serializing_if = "KeyLevels::is_empty")]
    pub key_levels: KeyLevels,
    pub output: OutputSpec,
    /// Applied by the client, in order, to the decoded output vector.
    pub postprocess: Vec<PostOp>,
    /// Differentially private outputs (`compile --output-dp`): the server clamps and adds
    /// noise; absent in models compiled without it (and in older files).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_dp: Option<crate::dp::OutputDp>,
    /// Circuit privacy (`compile --circuit-privacy`): the server floods each answer's
    /// noise under the client's public key, which the bundle must then carry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub circuit_privacy: Option<crate::circuit::CircuitPrivacy>,
    /// Input features sent in clear (`compile --public-features`; flattened indices,
    /// ascending): the client sends their values in `PLAIN_INPUT`, in this order, and
    /// the slot map never places them in the ciphertext. Empty: everything encrypted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub public_features: Vec<u32>,
    /// Layout T (a batch per request, `model::throughput`), when compiled with it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub throughput: Option<crate::ThroughputSpec>,
    /// Layout M (`model::multi`: B samples interleaved in one ciphertext), when compiled
    /// with it: the spec of a model whose input is B samples one after the other and
    /// whose output is their B outputs. Same parameters as this one; its own Galois keys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub multi: Option<Box<ClientSpec>>,
    /// What each compiled layout costs ("L", "T"), for the client's choice by batch size.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub layouts: Vec<crate::LayoutCost>,
    /// Split inference (`compile --split-at`): the public prefix the client runs in clear
    /// on the whole sample; its output is what `input` lays out and encrypts. Absent:
    /// the input is encrypted as it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<crate::prefix::Prefix>,
    /// Client-aided refresh (`compile --client-aided`): the segments and the clear steps
    /// between them (`model::client_aided`). Absent: one request, one answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_aided: Option<crate::client_aided::ClientAided>,
    /// Compact answers (`compile --answer`): each answer ciphertext is cut to a subring
    /// and a small modulus before it is sent (`model::answer`). Absent: full ciphertexts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answer: Option<crate::answer::AnswerSpec>,
}

/// Levels of the evaluation keys (see `ClientSpec::key_levels`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct KeyLevels {
    /// One per `rotation_steps` entry, in the same order (steps past its end: top level).
    pub rotation: Vec<u32>,
    /// The relinearization key's, if one is needed.
    pub relinearization: Option<u32>,
}

impl KeyLevels {
    /// Whether no level is given (every key at the top level).
    pub fn is_empty(&self) -> bool {
        self.rotation.is_empty() && self.relinearization.is_none()
    }
}

impl ClientSpec {
    /// `(step, level)` of each rotation key, the top level where the spec gives none.
    pub fn rotation_key_levels(&self) -> Vec<(i64, usize)> {
        let top = self.params.q.len().saturating_sub(1);
        self.rotation_steps
            .iter()
            .enumerate()
            .map(|(i, &s)| (s, self.key_levels.rotation.get(i).map_or(top, |&l| l as usize)))
            .collect()
    }
    /// `(Galois element, level)` of each key a compact input adds (none without one).
    pub fn compact_key_levels(&self) -> Vec<(u64, usize)> {
        let level = self.input.level as usize;
        self.input.compact.iter().flat_map(|c| c.galois_elements.iter().map(move |&g| (g, level))).collect()
    }
    /// The relinearization key's level (`None` if no product needs one).
    pub fn relin_key_level(&self) -> Option<usize> {
        let top = self.params.q.len().saturating_sub(1);
        self.relinearization.then(|| self.key_levels.relinearization.map_or(top, |l| l as usize))
    }
}

/// How one sample becomes ciphertexts.
///
/// The input tensor (shape `shape`, without the batch dimension) is flattened in
/// row-major (C) order to `x`. Ciphertext `c` then carries the real slot vector
/// `v[j] = x[slot_map[c][j]]` when `slot_map[c][j] >= 0`, and `v[j] = 0` when it is −1;
/// vectors shorter than N/2 are zero-padded. Encode each at `level` and `scale`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct InputSpec {
    pub name: String,
    pub shape: Vec<usize>,
    pub level: u32,
    pub scale: f64,
    /// One map per input ciphertext.
    pub slot_map: Vec<Vec<i32>>,
    /// Human-readable description of the layout (e.g. the im2col geometry).
    pub layout: String,
    /// For a model with several ONNX inputs: the flattened input is their
    /// concatenation, in the graph's order; part `k` is values
    /// `offset .. offset + len` (shape without the batch dimension). Empty for one input.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parts: Vec<InputPart>,
    /// The input may arrive as a compact query (`compile --query compact`); absent: as
    /// ciphertexts only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compact: Option<CompactInput>,
}

/// A compact query: instead of a ciphertext, the client sends one word per slot of the
/// slot map's period (`ckks::compact_query_coefficients` of `slot_map[0][..period]`,
/// encrypted with `Decryptor::encrypt_lwe` at the input's level and scale), and the
/// server packs them into the input ciphertext (`ckks::Evaluator::unpack_query`) with
/// Galois keys the bundle adds. A ciphertext laid out by the slot map is still accepted.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CompactInput {
    /// The slot map's period: the words one query carries.
    pub period: u32,
    /// The packing's and the conjugation's Galois elements, made at the input's level.
    pub galois_elements: Vec<u64>,
    /// The server applies the first layer before packing (`model::first_layer`): the
    /// client sends its first `ring_values` input values as a ring query
    /// (`Decryptor::encrypt_ring_query` of round(x·scale), no transform) and `period` is
    /// the layer's output period. Absent: an LWE query of the slot map's first period.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ring_values: Option<u32>,
}

/// One ONNX input of a multi-input model, as a range of the flattened input.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct InputPart {
    pub name: String,
    pub offset: usize,
    pub len: usize,
    pub shape: Vec<usize>,
}

/// Where the result lies: output element `i` is slot `slots[i].1` of result
/// ciphertext `slots[i].0`, multiplied by `multiplier`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OutputSpec {
    /// Name of the tensor the HE model computes (before post-processing).
    pub name: String,
    pub shape: Vec<usize>,
    pub ciphertexts: u32,
    pub slots: Vec<(u32, u32)>,
    pub multiplier: f64,
    pub level: u32,
    pub scale: f64,
    /// Name of the original model's final output (after post-processing).
    pub final_name: String,
}

/// Post-processing moved from the server to the client.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum PostOp {
    Softmax,
    LogSoftmax,
    /// Element-wise logistic function.
    Sigmoid,
    /// Index of the largest value (a single number).
    ArgMax,
    /// From one score z to the two-class vector \[1−z, z\] (as ONNX-ML's binary classifiers report it).
    BinaryProbabilities,
    /// Divides by the sum of absolute values (ONNX-ML's L1 Normalizer after one-vs-rest
    /// logistic scores).
    L1Normalize,
}

impl ClientSpec {
    /// The slot vectors of the input ciphertexts for one sample `x` (flattened, row-major).
    pub fn pack_input(&self, x: &[f64]) -> Result<Vec<Vec<f64>>, ModelError> {
        let n: usize = self.input.shape.iter().product();
        if x.len() != n {
            return Err(ModelError::Shape(format!(
                "input has {} values, the model takes {n} ({:?})",
                x.len(),
                self.input.shape
            )));
        }
        Ok(self
            .input
            .slot_map
            .iter()
            .map(|m| m.iter().map(|&i| if i >= 0 { x[i as usize] } else { 0.0 }).collect())
            .collect())
    }

    /// The output vector (before post-processing) from the decoded result slot vectors.
    pub fn unpack_output(&self, cts: &[Vec<f64>]) -> Result<Vec<f64>, ModelError> {
        if cts.len() != self.output.ciphertexts as usize {
            return Err(ModelError::Shape(format!(
                "{} output ciphertexts, expected {}",
                cts.len(),
                self.output.ciphertexts
            )));
        }
        self.output
            .slots
            .iter()
            .map(|&(c, s)| {
                cts[c as usize]
                    .get(s as usize)
                    .map(|v| v * self.output.multiplier)
                    .ok_or_else(|| ModelError::Shape(format!("slot {s} missing in output {c}")))
            })
            .collect()
    }

    /// B, for layout M's own spec (`ClientSpec::multi`): the first dimension of its output.
    pub fn multi_batch(&self) -> Option<usize> {
        self.output.shape.first().copied()
    }

    /// Applies the recorded post-processing.
    pub fn postprocess(&self, y: &[f64]) -> Vec<f64> {
        apply_postprocess(&self.postprocess, y)
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("client spec serializes")
    }

    /// Parses and [validates](Self::validate) a spec.
    pub fn from_json(s: &str) -> Result<Self, ModelError> {
        let scheme = scheme_of_json(s)?;
        if scheme != Scheme::Ckks {
            return Err(ModelError::Invalid(format!(
                "client spec: this is a {scheme} model's spec, not a CKKS one; read it with model::AnySpec"
            )));
        }
        let spec: ClientSpec = serde_json::from_str(s).map_err(|e| ModelError::Invalid(format!("client spec: {e}")))?;
        spec.validate()?;
        Ok(spec)
    }

    /// Checks every index and count the client will use against the others, so that a
    /// spec from an untrusted server's config fails here, with the field named, instead
    /// of panicking (or allocating without bound) in packing, key generation or decoding.
    /// The parameter set itself is checked when it is built (`Parameters::from_spec`).
    pub fn validate(&self) -> Result<(), ModelError> {
        let bad = |what: String| Err(ModelError::Invalid(format!("client spec: {what}")));
        if self.version != CLIENT_SPEC_VERSION {
            return Err(ModelError::Version { found: self.version, supported: CLIENT_SPEC_VERSION });
        }
        let log_n = self.params.log_n;
        if !(1..=ckks::params::MAX_LOG_N).contains(&log_n) {
            return bad(format!("ring degree 2^{log_n} is out of range"));
        }
        let slots = 1usize << (log_n - 1);
        let levels = self.params.q.len();
        let n_in = self.input.shape.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d));
        let Some(n_in) = n_in.filter(|&n| n > 0 && n <= slots * MAX_CIPHERTEXTS) else {
            return bad(format!("input shape {:?} is empty or larger than the ciphertexts can hold", self.input.shape));
        };
        if self.public_features.len() >= n_in
            || self.public_features.windows(2).any(|w| w[0] >= w[1])
            || self.public_features.last().is_some_and(|&i| i as usize >= n_in)
        {
            return bad("public_features are not ascending indices of some (not all) input features".into());
        }
        let mut next = 0usize;
        for p in &self.input.parts {
            let len = p.shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
            if p.offset != next || len != Some(p.len) || p.len == 0 {
                return bad(format!("input part '{}' does not continue the input where the last one ended", p.name));
            }
            next += p.len;
        }
        if !self.input.parts.is_empty() && next != n_in {
            return bad(format!("the input parts cover {next} values, the input has {n_in}"));
        }
        if let Some(p) = &self.prefix {
            p.check_sizes()?;
        }
        if let Some(c) = &self.client_aided {
            c.check()?;
        }
        if let Some(m) = &self.multi {
            if m.params != self.params || m.multi.is_some() || m.throughput.is_some() || m.input.compact.is_some() {
                return bad("layout M's spec must share the parameters and have no other layout of its own".into());
            }
            m.validate()?;
            // B samples of this model's input in, B of its outputs out (a client sizes its
            // buffers from these: checked here, not trusted).
            let n_out = self.output.shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
            let b = m.multi_batch();
            let fits = match (b, n_out) {
                (Some(b), Some(n_out)) => {
                    b >= 2
                        && b.is_power_of_two()
                        && b <= slots / 2
                        && m.input.shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d)) == b.checked_mul(n_in)
                        && m.output.shape == [b, n_out]
                        && Some(m.output.slots.len()) == b.checked_mul(n_out)
                }
                _ => false,
            };
            if !fits {
                return bad(
                    "layout M's spec is not B samples (a power of two, 2..=N/4) of this model in and out".into()
                );
            }
        }
        if self.input.slot_map.is_empty() || self.input.slot_map.len() > MAX_CIPHERTEXTS {
            return bad(format!("{} input ciphertexts (1..={MAX_CIPHERTEXTS} allowed)", self.input.slot_map.len()));
        }
        for (c, m) in self.input.slot_map.iter().enumerate() {
            if m.len() > slots {
                return bad(format!("input ciphertext {c} maps {} slots, more than the {slots} it has", m.len()));
            }
            if let Some(&i) = m.iter().find(|&&i| i < -1 || i >= 0 && i as usize >= n_in) {
                return bad(format!("input ciphertext {c} reads value {i}, outside the {n_in} input values"));
            }
        }
        if let Some(c) = &self.input.compact {
            let period = c.period as usize;
            let m = &self.input.slot_map[0];
            if !period.is_power_of_two() || period < 2 || period > slots || self.input.slot_map.len() != 1 {
                return bad(format!(
                    "a compact input of period {period} (a power of two, 2..={slots}, one ciphertext)"
                ));
            }
            match c.ring_values {
                // A ring query carries the values themselves, element t at coefficient t.
                Some(n) => {
                    if m.len() != n as usize || m.iter().enumerate().any(|(t, &e)| e != t as i32) || n as usize > slots
                    {
                        return bad(format!("a ring query of {n} values whose slot map is not element t at t"));
                    }
                }
                None => {
                    if (0..m.len()).any(|j| m[j] != m[j % period]) {
                        return bad(format!("the slot map does not repeat with the compact input's period {period}"));
                    }
                }
            }
            if c.galois_elements.len() > 64 {
                return bad(format!("{} packing keys (64 at most)", c.galois_elements.len()));
            }
        }
        for (what, level, scale) in
            [("input", self.input.level, self.input.scale), ("output", self.output.level, self.output.scale)]
        {
            if level as usize >= levels {
                return bad(format!(
                    "{what} level {level} is above the chain's top level {}",
                    levels.saturating_sub(1)
                ));
            }
            if !scale.is_finite() || scale < 1.0 {
                return bad(format!("{what} scale {scale} is not a finite number ≥ 1"));
            }
        }
        let cts = self.output.ciphertexts as usize;
        if cts == 0 || cts > MAX_CIPHERTEXTS {
            return bad(format!("{cts} output ciphertexts (1..={MAX_CIPHERTEXTS} allowed)"));
        }
        if let Some(&(c, s)) = self.output.slots.iter().find(|&&(c, s)| c as usize >= cts || s as usize >= slots) {
            return bad(format!("output slot ({c}, {s}) is outside {cts} ciphertexts of {slots} slots"));
        }
        if !self.output.multiplier.is_finite() {
            return bad(format!("output multiplier {} is not finite", self.output.multiplier));
        }
        let kl = &self.key_levels;
        let top = self.params.q.len().saturating_sub(1) as u32;
        // Steps past the end of the levels get top-level keys (a spec extended by hand).
        if kl.rotation.len() > self.rotation_steps.len() {
            return bad(format!(
                "{} rotation key levels for {} rotation steps; give at most one per step",
                kl.rotation.len(),
                self.rotation_steps.len()
            ));
        }
        if let Some(&l) = kl.rotation.iter().chain(&kl.relinearization).find(|&&l| l > top) {
            return bad(format!("key level {l} is above the top level {top}"));
        }
        if kl.relinearization.is_some() && !self.relinearization {
            return bad("a relinearization key level without relinearization".to_string());
        }
        // Each rotation key is megabytes: a spec asking for more than there are rotations is hostile.
        if self.rotation_steps.len() > slots {
            return bad(format!(
                "{} rotation keys asked for; there are only {slots} rotations",
                self.rotation_steps.len()
            ));
        }
        Ok(())
    }
}

pub fn apply_postprocess(ops: &[PostOp], y: &[f64]) -> Vec<f64> {
    let mut v = y.to_vec();
    for op in ops {
        v = match op {
            PostOp::Softmax | PostOp::LogSoftmax => {
                let m = v.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let e: Vec<f64> = v.iter().map(|x| (x - m).exp()).collect();
                let s: f64 = e.iter().sum();
                if *op == PostOp::Softmax {
                    e.iter().map(|x| x / s).collect()
                } else {
                    v.iter().map(|x| x - m - s.ln()).collect()
                }
            }
            PostOp::Sigmoid => v.iter().map(|x| 1.0 / (1.0 + (-x).exp())).collect(),
            PostOp::ArgMax => vec![argmax(&v) as f64],
            PostOp::BinaryProbabilities => {
                let z = v.first().copied().unwrap_or(0.0);
                vec![1.0 - z, z]
            }
            PostOp::L1Normalize => {
                let s: f64 = v.iter().map(|x| x.abs()).sum();
                if s > 0.0 {
                    v.iter().map(|x| x / s).collect()
                } else {
                    v
                }
            }
        }
    }
    v
}

/// Index of the largest value (first on ties).
pub fn argmax(v: &[f64]) -> usize {
    let mut best = 0;
    for (i, x) in v.iter().enumerate() {
        if *x > v[best] {
            best = i;
        }
    }
    best
}

/// The encryption scheme a model is compiled for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scheme {
    /// Approximate arithmetic on reals (RNS-CKKS): any network the compiler takes.
    #[default]
    Ckks,
    /// Exact arithmetic modulo t (RNS-BGV): integer and quantized models.
    Bgv,
    /// Additively homomorphic (Paillier): linear scoring, no evaluation keys.
    Paillier,
    /// Seeded LWE (`model::lwe_spec`): linear scoring, no server keys, the smallest messages.
    Lwe,
}

impl Scheme {
    pub fn name(self) -> &'static str {
        match self {
            Scheme::Ckks => "ckks",
            Scheme::Bgv => "bgv",
            Scheme::Paillier => "paillier",
            Scheme::Lwe => "lwe",
        }
    }
}

impl std::fmt::Display for Scheme {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The `"scheme"` field of a spec's JSON (CKKS when absent).
pub fn scheme_of_json(s: &str) -> Result<Scheme, ModelError> {
    #[derive(Deserialize)]
    struct Tag {
        #[serde(default)]
        scheme: Scheme,
    }
    let t: Tag = serde_json::from_str(s).map_err(|e| ModelError::Invalid(format!("client spec: {e}")))?;
    Ok(t.scheme)
}
