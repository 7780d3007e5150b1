//! Exact integer models under BGV (`heinfer compile --scheme bgv --quantize BITS`): integer
//! linear layers and squares in layout T (ciphertext i = input feature i of up to N
//! samples), evaluated without requantization — the plaintext modulus t holds the largest
//! intermediate value, which the compiler proved from the integer weights and the input range.
//!
//! Stored in `model.hem` at file version [`BGV_FORMAT_VERSION`] (CKKS stays at 1, Paillier
//! and LWE at 2), framed as Paillier's (magic, version, flags, JSON length, JSON, SHA-256).
//! The client spec [`BgvSpec`] carries `"scheme": "bgv"`.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::file::{MAGIC, MAX_FILE_BYTES};
use crate::spec::{PostOp, Scheme};
use crate::ModelError;
use ckks::ParamsSpec;

/// `model.hem` version of a BGV integer model.
pub const BGV_FORMAT_VERSION: u32 = 3;
/// Version of the [`BgvSpec`] JSON layout.
pub const BGV_SPEC_VERSION: u32 = 1;
/// Most input or output features (each one ciphertext per batch and plaintext modulus).
pub const MAX_BGV_FEATURES: usize = 1 << 16;
/// Most plaintext moduli of a residue plan (`bgv::throughput::MAX_RESIDUES`).
pub const MAX_RESIDUES: usize = 4;

/// The input: `shape` flattened row-major to d features, each encoded as round(x·scale),
/// which must lie in [lo, hi] (the range the bound was proven for), one ciphertext per
/// feature with sample j in slot j.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BgvInput {
    pub name: String,
    pub shape: Vec<usize>,
    pub scale: f64,
    pub lo: i64,
    pub hi: i64,
}

/// The outputs: one ciphertext per output feature; a slot's value (centered mod t) divided
/// by `scale` is the model's output for that sample.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BgvOutput {
    pub name: String,
    pub shape: Vec<usize>,
    pub scale: f64,
    /// Name of the original model's final output (after post-processing).
    pub final_name: String,
    /// The level the answers come back at.
    pub level: usize,
}

/// What a client of a BGV model needs: parameters and t, the input encoding, how to read
/// the outputs. Keys: a relinearisation key only (no rotation in this layout).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BgvSpec {
    pub version: u32,
    /// Always [`Scheme::Bgv`].
    pub scheme: Scheme,
    pub model: String,
    pub params: ParamsSpec,
    pub plaintext_modulus: u64,
    /// Further plaintext moduli of a residue plan (values past one t): the network runs
    /// once per modulus, `plaintext_modulus` first, every one on `params`' chain and under
    /// one key; each output is the CRT of its residues. Empty: one t.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub residues: Vec<u64>,
    pub input: BgvInput,
    pub output: BgvOutput,
    pub postprocess: Vec<PostOp>,
    /// Circuit privacy (`compile --scheme bgv --circuit-privacy`): the server floods every
    /// answer under the client's public key (`bgv::circuit`), which the key bundle then
    /// carries. `slot_std` is 0: the outputs stay exact.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub circuit_privacy: Option<crate::CircuitPrivacy>,
}

impl BgvSpec {
    pub fn input_len(&self) -> usize {
        self.input.shape.iter().product()
    }
    pub fn output_len(&self) -> usize {
        self.output.shape.iter().product()
    }
    /// Every plaintext modulus, `plaintext_modulus` first: one evaluation each, and as many
    /// ciphertexts per feature in queries and answers (residue-major).
    pub fn plaintext_moduli(&self) -> Vec<u64> {
        std::iter::once(self.plaintext_modulus).chain(self.residues.iter().copied()).collect()
    }
    /// Samples per batch: N (one per slot).
    pub fn batch_size(&self) -> usize {
        1 << self.params.log_n
    }
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("bgv spec serializes")
    }
    pub fn postprocess(&self, y: &[f64]) -> Vec<f64> {
        crate::apply_postprocess(&self.postprocess, y)
    }

    /// One sample's features as integers; refused outside the compiled range (the proof
    /// that nothing wraps modulo t holds only inside it).
    pub fn encode_sample(&self, x: &[f64]) -> Result<Vec<i64>, ModelError> {
        if x.len() != self.input_len() {
            return Err(ModelError::Invalid(format!("{} input values for {} features", x.len(), self.input_len())));
        }
        x.iter()
            .enumerate()
            .map(|(i, &v)| {
                let q = (v * self.input.scale).round();
                if !q.is_finite() || q < self.input.lo as f64 || q > self.input.hi as f64 {
                    return Err(ModelError::Invalid(format!(
                        "input feature {i} = {v} is outside the range the model was compiled for \
                         ([{}, {}]): its exactness is proven only there; recompile with calibration or evaluation data that covers it",
                        self.input.lo as f64 / self.input.scale,
                        self.input.hi as f64 / self.input.scale
                    )));
                }
                Ok(q as i64)
            })
            .collect()
    }

    /// Checks every count a client will allocate with.
    pub fn validate(&self) -> Result<(), ModelError> {
        let bad = |what: String| Err(ModelError::Invalid(format!("BGV client spec: {what}")));
        if self.version != BGV_SPEC_VERSION {
            return Err(ModelError::Version { found: self.version, supported: BGV_SPEC_VERSION });
        }
        if self.scheme != Scheme::Bgv {
            return bad(format!("scheme {} in a BGV spec", self.scheme));
        }
        for (what, shape) in [("input", &self.input.shape), ("output", &self.output.shape)] {
            let n = shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
            if !n.is_some_and(|n| (1..=MAX_BGV_FEATURES).contains(&n)) {
                return bad(format!("{what} shape {shape:?} is empty or holds more than {MAX_BGV_FEATURES} values"));
            }
        }
        let positive = |s: f64| s.is_finite() && s > 0.0;
        if self.input.lo > self.input.hi || !positive(self.input.scale) || !positive(self.output.scale) {
            return bad("input range or scales".into());
        }
        if self.output.level >= self.params.q.len() || !(13..=16).contains(&self.params.log_n) {
            return bad("output level or ring degree".into());
        }
        let ts = self.plaintext_moduli();
        let product = ts.iter().try_fold(1u128, |p, &t| p.checked_mul(t as u128).filter(|&p| p < 1 << 127));
        let distinct = ts.iter().enumerate().all(|(i, t)| !ts[..i].contains(t));
        if ts.len() > MAX_RESIDUES || product.is_none() || !distinct {
            return bad(format!(
                "plaintext moduli {ts:?}: at most {MAX_RESIDUES}, distinct, their product below 2^127"
            ));
        }
        Ok(())
    }
}

/// One layer of the integer network.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "lowercase")]
pub enum BgvLayer {
    /// Σ w·x + b: `weights` row-major, `bias.len()` rows of `inputs`.
    Linear {
        name: String,
        inputs: usize,
        weights: Vec<i64>,
        /// i128 (a deep layer's bias at its output scale passes 2^63 under a residue plan):
        /// a JSON number where it fits i64, a decimal string past that (serde_json reads no
        /// i128 number), so files with i64 biases read unchanged.
        #[serde(with = "wide_ints")]
        bias: Vec<i128>,
    },
    /// x², feature-wise.
    Square { name: String },
}

/// `Vec<i128>` in JSON: numbers within i64, decimal strings beyond.
mod wide_ints {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    #[derive(Serialize, Deserialize)]
    #[serde(untagged)]
    enum Wide {
        Int(i64),
        Text(String),
    }

    pub fn serialize<S: Serializer>(v: &[i128], s: S) -> Result<S::Ok, S::Error> {
        let w: Vec<Wide> =
            v.iter().map(|&x| i64::try_from(x).map(Wide::Int).unwrap_or_else(|_| Wide::Text(x.to_string()))).collect();
        w.serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<i128>, D::Error> {
        Vec::<Wide>::deserialize(d)?
            .into_iter()
            .map(|w| match w {
                Wide::Int(x) => Ok(x as i128),
                Wide::Text(t) => {
                    t.parse().map_err(|_| serde::de::Error::custom(format!("bias {t:?} is not an integer")))
                }
            })
            .collect()
    }
}

/// A compiled BGV integer model.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BgvModel {
    pub name: String,
    pub client: BgvSpec,
    pub layers: Vec<BgvLayer>,
    /// The level to switch every ciphertext to before each layer.
    pub levels: Vec<usize>,
    /// The proven largest |value| of any layer (decimal: a u128).
    pub bound: String,
    /// The compiler's report, as text.
    pub report: String,
}

impl BgvModel {
    pub fn validate(&self) -> Result<(), ModelError> {
        self.client.validate()?;
        let bad = |what: String| Err(ModelError::Invalid(format!("BGV model: {what}")));
        if self.levels.len() != self.layers.len() {
            return bad(format!("{} levels for {} layers", self.levels.len(), self.layers.len()));
        }
        let top = self.client.params.q.len();
        if self.levels.iter().any(|&l| l >= top) || self.levels.windows(2).any(|w| w[1] > w[0]) {
            return bad("levels must be within the chain and never rise".into());
        }
        let mut width = self.client.input_len();
        for l in &self.layers {
            if let BgvLayer::Linear { name, inputs, weights, bias } = l {
                if *inputs != width || bias.is_empty() || bias.len() > MAX_BGV_FEATURES {
                    return bad(format!("layer {name} reads {inputs} features where {width} come"));
                }
                if weights.len() != inputs * bias.len() {
                    return bad(format!("layer {name}: {} weights for {} × {inputs}", weights.len(), bias.len()));
                }
                width = bias.len();
            }
        }
        if width != self.client.output_len() {
            return bad(format!("{width} outputs where the spec says {}", self.client.output_len()));
        }
        Ok(())
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let json = serde_json::to_vec(self).expect("bgv model serializes");
        let mut out = Vec::with_capacity(56 + json.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&BGV_FORMAT_VERSION.to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes());
        out.extend_from_slice(&(json.len() as u64).to_le_bytes());
        out.extend_from_slice(&json);
        let digest = Sha256::digest(&out);
        out.extend_from_slice(&digest);
        out
    }

    /// Whether `bytes` start as a BGV model file (magic and version).
    pub fn is_bgv_file(bytes: &[u8]) -> bool {
        bytes.len() >= 12 && &bytes[..8] == MAGIC && bytes[8..12] == BGV_FORMAT_VERSION.to_le_bytes()
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Self, ModelError> {
        if bytes.len() > MAX_FILE_BYTES {
            return Err(ModelError::Truncated(format!(
                "{} bytes is larger than the {MAX_FILE_BYTES} limit",
                bytes.len()
            )));
        }
        if bytes.len() < 8 || &bytes[..8] != MAGIC {
            return Err(ModelError::Magic);
        }
        if bytes.len() < 24 + 32 {
            return Err(ModelError::Truncated("shorter than the header".into()));
        }
        let version = u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes"));
        if version != BGV_FORMAT_VERSION {
            return Err(ModelError::Version { found: version, supported: BGV_FORMAT_VERSION });
        }
        if bytes[12..16] != [0; 4] {
            return Err(ModelError::Truncated("unknown flags".into()));
        }
        let (body, digest) = bytes.split_at(bytes.len() - 32);
        if Sha256::digest(body).as_slice() != digest {
            return Err(ModelError::Checksum);
        }
        let len = u64::from_le_bytes(body[16..24].try_into().expect("8 bytes"));
        if len != (body.len() - 24) as u64 {
            return Err(ModelError::Truncated(format!(
                "metadata of {len} bytes announced, {} present",
                body.len() - 24
            )));
        }
        let m: BgvModel =
            serde_json::from_slice(&body[24..]).map_err(|e| ModelError::Invalid(format!("metadata: {e}")))?;
        m.validate()?;
        Ok(m)
    }

    pub fn read_file(path: impl AsRef<std::path::Path>) -> Result<Self, ModelError> {
        let p = path.as_ref();
        let io = |e| ModelError::Io { path: p.display().to_string(), source: e };
        let meta = std::fs::metadata(p).map_err(io)?;
        if meta.len() > MAX_FILE_BYTES as u64 {
            return Err(ModelError::Truncated(format!(
                "{} is larger than the {MAX_FILE_BYTES} byte limit",
                p.display()
            )));
        }
        Self::from_bytes(&std::fs::read(p).map_err(io)?)
    }
}
