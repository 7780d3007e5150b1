//! Paillier linear models (`heinfer compile --scheme paillier`): k scores Σ w·x + b in
//! fixed point, computed by the server on d Paillier-encrypted inputs.
//!
//! Such a model has no CKKS program, so it is a type of its own, [`PaillierModel`], stored
//! in `model.hem` at file version [`LINEAR_FORMAT_VERSION`] (CKKS models stay at version 1,
//! byte for byte as before; a reader too old for version 2 says so). Its client spec,
//! [`LinearSpec`], carries `"scheme": "paillier"`; [`AnySpec`] and [`AnyModel`] read
//! either scheme and tell them apart by that field and by the file version.
//!
//! ```text
//! magic   8 bytes  "HEINFMDL"
//! version u32      2
//! flags   u32      0
//! meta    u64 length, then that many bytes of UTF-8 JSON (the PaillierModel)
//! sha256  32 bytes over everything before it
//! ```

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::file::{LINEAR_FORMAT_VERSION, MAGIC, MAX_FILE_BYTES};
pub use crate::spec::{scheme_of_json, Scheme};
use crate::spec::{ClientSpec, PostOp};
use crate::{HeModel, LayerInfo, ModelError};

/// `model.hem` version of a Paillier linear model.
/// Version of the [`LinearSpec`] JSON layout.
pub const LINEAR_SPEC_VERSION: u32 = 1;
/// The smallest Paillier modulus a client may make (128-bit security, NIST SP 800-57).
pub const MIN_PAILLIER_BITS: u32 = 3072;
/// Fractional bits of inputs plus weights, at most (the paillier crate's bound).
pub const MAX_SCORE_FRAC_BITS: u32 = 128;
/// Most inputs and scores a linear model may have (bounds what a client allocates).
pub const MAX_LINEAR_DIM: usize = 1 << 20;
pub const MAX_LINEAR_OUTPUTS: usize = 4096;

/// The input of a linear model: `shape` flattened row-major to d values, each encoded as
/// round(x · 2^frac_bits) and encrypted, in order, into one Paillier ciphertext batch.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LinearInput {
    pub name: String,
    pub shape: Vec<usize>,
    pub frac_bits: u32,
}

/// The k decrypted scores are integers with `frac_bits` fractional bits (the inputs' plus
/// the weights').
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LinearOutput {
    pub name: String,
    pub shape: Vec<usize>,
    pub frac_bits: u32,
    /// Name of the original model's final output (after post-processing).
    pub final_name: String,
}

/// What a client of a Paillier model needs: the key size, the input encoding, how to read
/// the scores and what to apply to them. Travels as the config parameter
/// `heinfer_client_spec`, like a CKKS [`ClientSpec`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LinearSpec {
    pub version: u32,
    /// Always [`Scheme::Paillier`]: what tells this spec from a CKKS one.
    pub scheme: Scheme,
    pub model: String,
    /// Smallest modulus the server accepts; clients make keys of this size.
    pub min_modulus_bits: u32,
    pub input: LinearInput,
    pub output: LinearOutput,
    /// Applied by the client, in order, to the decoded scores.
    pub postprocess: Vec<PostOp>,
    /// The LWE parameters and input encoding, for `"scheme": "lwe"` (absent for Paillier).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lwe: Option<crate::lwe_spec::LweSpec>,
}

impl LinearSpec {
    /// Number of inputs d.
    pub fn input_len(&self) -> usize {
        self.input.shape.iter().product()
    }

    /// Number of scores k.
    pub fn output_len(&self) -> usize {
        self.output.shape.iter().product()
    }

    pub fn postprocess(&self, y: &[f64]) -> Vec<f64> {
        crate::apply_postprocess(&self.postprocess, y)
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("linear spec serializes")
    }

    /// Checks every count and size a client will allocate or compute with.
    pub fn validate(&self) -> Result<(), ModelError> {
        let bad = |what: String| Err(ModelError::Invalid(format!("Paillier client spec: {what}")));
        if self.version != LINEAR_SPEC_VERSION {
            return Err(ModelError::Version { found: self.version, supported: LINEAR_SPEC_VERSION });
        }
        match (self.scheme, &self.lwe) {
            (Scheme::Paillier, None) => {}
            (Scheme::Lwe, Some(l)) => {
                l.validate(self.input_len())?;
                l.validate_outputs(self.output_len())?;
            }
            (s, _) => {
                return bad(format!("scheme {s} with{} LWE parameters", if self.lwe.is_some() { "" } else { "out" }))
            }
        }
        if self.scheme == Scheme::Paillier
            && (self.min_modulus_bits < MIN_PAILLIER_BITS || self.min_modulus_bits > 16384)
        {
            return bad(format!(
                "a {}-bit modulus is outside {MIN_PAILLIER_BITS}..=16384 (128-bit security needs {MIN_PAILLIER_BITS})",
                self.min_modulus_bits
            ));
        }
        for (what, shape, max) in
            [("input", &self.input.shape, MAX_LINEAR_DIM), ("output", &self.output.shape, MAX_LINEAR_OUTPUTS)]
        {
            let n = shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
            if !n.is_some_and(|n| (1..=max).contains(&n)) {
                return bad(format!("{what} shape {shape:?} is empty or holds more than {max} values"));
            }
        }
        if self.input.frac_bits > self.output.frac_bits || self.output.frac_bits > MAX_SCORE_FRAC_BITS {
            return bad(format!(
                "input fractional bits {} and score fractional bits {} (at most {MAX_SCORE_FRAC_BITS}, inputs' ≤ scores')",
                self.input.frac_bits, self.output.frac_bits
            ));
        }
        Ok(())
    }
}

/// A compiled Paillier linear model: integer weights (k × d, scaled by 2^weight_frac_bits)
/// and biases (decimal integers, scaled by 2^(input + weight fractional bits)).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PaillierModel {
    pub name: String,
    pub client: LinearSpec,
    pub layers: Vec<LayerInfo>,
    pub weight_frac_bits: u32,
    pub weights: Vec<Vec<i64>>,
    /// Decimal, so that biases of up to 2^252 survive JSON.
    pub bias: Vec<String>,
    /// The compiler's report (scheme choice, precision, accuracy), as text.
    pub report: String,
}

impl PaillierModel {
    pub fn validate(&self) -> Result<(), ModelError> {
        self.client.validate()?;
        let (d, k) = (self.client.input_len(), self.client.output_len());
        let bad = |what: String| Err(ModelError::Invalid(format!("Paillier model: {what}")));
        if self.weights.len() != k || self.bias.len() != k || self.weights.iter().any(|r| r.len() != d) {
            return bad(format!("needs {k} rows of {d} weights and {k} biases"));
        }
        if self.client.input.frac_bits + self.weight_frac_bits != self.client.output.frac_bits {
            return bad("score fractional bits are not the inputs' plus the weights'".into());
        }
        for b in &self.bias {
            let digits = b.strip_prefix('-').unwrap_or(b);
            if digits.is_empty() || digits.len() > 80 || !digits.bytes().all(|c| c.is_ascii_digit()) {
                return bad(format!("bias {b:?} is not a decimal integer below 10^80"));
            }
        }
        Ok(())
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let json = serde_json::to_vec(self).expect("linear model serializes");
        let mut out = Vec::with_capacity(56 + json.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&LINEAR_FORMAT_VERSION.to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes());
        out.extend_from_slice(&(json.len() as u64).to_le_bytes());
        out.extend_from_slice(&json);
        let digest = Sha256::digest(&out);
        out.extend_from_slice(&digest);
        out
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
        let version = u32::from_le_bytes(bytes[8..12].try_into().unwrap());
        if version != LINEAR_FORMAT_VERSION {
            return Err(ModelError::Version { found: version, supported: LINEAR_FORMAT_VERSION });
        }
        if bytes[12..16] != [0; 4] {
            return Err(ModelError::Truncated("unknown flags".into()));
        }
        let (body, digest) = bytes.split_at(bytes.len() - 32);
        if Sha256::digest(body).as_slice() != digest {
            return Err(ModelError::Checksum);
        }
        let len = u64::from_le_bytes(body[16..24].try_into().unwrap());
        if len != (body.len() - 24) as u64 {
            return Err(ModelError::Truncated(format!(
                "metadata of {len} bytes announced, {} present",
                body.len() - 24
            )));
        }
        let m: PaillierModel =
            serde_json::from_slice(&body[24..]).map_err(|e| ModelError::Invalid(format!("metadata: {e}")))?;
        m.validate()?;
        Ok(m)
    }
}

/// A model of any scheme, as `model.hem` holds it.
// A few per process: the variants' sizes do not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq)]
pub enum AnyModel {
    Ckks(HeModel),
    Paillier(PaillierModel),
    Bgv(crate::BgvModel),
}

impl AnyModel {
    /// Reads either file version (1: CKKS, 2: Paillier).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, ModelError> {
        if bytes.len() >= 12 && &bytes[..8] == MAGIC && bytes[8..12] == LINEAR_FORMAT_VERSION.to_le_bytes() {
            return PaillierModel::from_bytes(bytes).map(AnyModel::Paillier);
        }
        if crate::BgvModel::is_bgv_file(bytes) {
            return crate::BgvModel::from_bytes(bytes).map(AnyModel::Bgv);
        }
        HeModel::from_bytes(bytes).map(AnyModel::Ckks)
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

    pub fn to_bytes(&self) -> Vec<u8> {
        match self {
            AnyModel::Ckks(m) => m.to_bytes(),
            AnyModel::Paillier(m) => m.to_bytes(),
            AnyModel::Bgv(m) => m.to_bytes(),
        }
    }

    pub fn scheme(&self) -> Scheme {
        match self {
            AnyModel::Ckks(_) => Scheme::Ckks,
            AnyModel::Paillier(m) => m.client.scheme,
            AnyModel::Bgv(_) => Scheme::Bgv,
        }
    }

    pub fn name(&self) -> &str {
        match self {
            AnyModel::Ckks(m) => &m.name,
            AnyModel::Paillier(m) => &m.name,
            AnyModel::Bgv(m) => &m.name,
        }
    }

    pub fn spec(&self) -> AnySpec {
        match self {
            AnyModel::Ckks(m) => AnySpec::Ckks(m.client.clone()),
            AnyModel::Paillier(m) => AnySpec::Paillier(m.client.clone()),
            AnyModel::Bgv(m) => AnySpec::Bgv(m.client.clone()),
        }
    }
}

/// A client spec of any scheme.
#[allow(clippy::large_enum_variant)] // one per model or client
#[derive(Clone, Debug, PartialEq)]
pub enum AnySpec {
    Ckks(ClientSpec),
    Paillier(LinearSpec),
    Bgv(crate::BgvSpec),
}

impl AnySpec {
    /// Parses and validates a spec; `"scheme"` picks the kind (absent: CKKS, as every
    /// spec written before schemes were recorded).
    pub fn from_json(s: &str) -> Result<Self, ModelError> {
        match scheme_of_json(s)? {
            Scheme::Ckks => ClientSpec::from_json(s).map(AnySpec::Ckks),
            Scheme::Paillier | Scheme::Lwe => {
                let spec: LinearSpec =
                    serde_json::from_str(s).map_err(|e| ModelError::Invalid(format!("Paillier client spec: {e}")))?;
                spec.validate()?;
                Ok(AnySpec::Paillier(spec))
            }
            Scheme::Bgv => {
                let spec: crate::BgvSpec =
                    serde_json::from_str(s).map_err(|e| ModelError::Invalid(format!("BGV client spec: {e}")))?;
                spec.validate()?;
                Ok(AnySpec::Bgv(spec))
            }
        }
    }

    pub fn to_json(&self) -> String {
        match self {
            AnySpec::Ckks(s) => s.to_json(),
            AnySpec::Paillier(s) => s.to_json(),
            AnySpec::Bgv(s) => s.to_json(),
        }
    }

    pub fn scheme(&self) -> Scheme {
        match self {
            AnySpec::Ckks(_) => Scheme::Ckks,
            AnySpec::Paillier(s) => s.scheme,
            AnySpec::Bgv(_) => Scheme::Bgv,
        }
    }

    /// One line for a server's load log.
    pub fn summary(&self) -> String {
        match self {
            AnySpec::Ckks(s) => format!(
                "CKKS, N = 2^{}, {} input ciphertext(s), {} rotation keys",
                s.params.log_n,
                s.input.slot_map.len(),
                s.rotation_steps.len()
            ),
            AnySpec::Paillier(s) if s.scheme == Scheme::Lwe => format!(
                "seeded LWE, no server keys, {} inputs → {} scores, answers at 2^{} (score error ≤ {:.2e})",
                s.input_len(),
                s.output_len(),
                s.lwe.as_ref().map_or(0, |l| l.answer_log_q),
                s.lwe.as_ref().map_or(0.0, |l| l.error_bound)
            ),
            AnySpec::Paillier(s) => format!(
                "Paillier ≥ {} bits, {} inputs → {} scores, {} + {} fractional bits",
                s.min_modulus_bits,
                s.input_len(),
                s.output_len(),
                s.input.frac_bits,
                s.output.frac_bits - s.input.frac_bits
            ),
            AnySpec::Bgv(s) => format!(
                "BGV exact integers, N = 2^{}, t = {}, {} input ciphertexts (one per feature, N samples) → {}, \
                 relinearisation key only",
                s.params.log_n,
                s.plaintext_modulus,
                s.input_len(),
                s.output_len()
            ),
        }
    }
}
