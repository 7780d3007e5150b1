//! The client spec: everything a client needs to make keys, lay out and encrypt its
//! input, and read the result. It travels as JSON in the Triton config parameter
//! `heinfer_client_spec` (and inside `model.hem`).

use ckks::ParamsSpec;
use serde::{Deserialize, Serialize};

use crate::ModelError;

/// Version of the client-spec JSON layout.
pub const CLIENT_SPEC_VERSION: u32 = 1;

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
    pub output: OutputSpec,
    /// Applied by the client, in order, to the decoded output vector.
    pub postprocess: Vec<PostOp>,
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

    /// Applies the recorded post-processing.
    pub fn postprocess(&self, y: &[f64]) -> Vec<f64> {
        apply_postprocess(&self.postprocess, y)
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("client spec serializes")
    }

    pub fn from_json(s: &str) -> Result<Self, ModelError> {
        let spec: ClientSpec = serde_json::from_str(s).map_err(|e| ModelError::Invalid(format!("client spec: {e}")))?;
        if spec.version != CLIENT_SPEC_VERSION {
            return Err(ModelError::Version { found: spec.version, supported: CLIENT_SPEC_VERSION });
        }
        Ok(spec)
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
