//! The client of a seeded-LWE linear model (`model::LinearSpec` with `"scheme": "lwe"`): a
//! 32-byte secret key, the seeded RLWE public key the server re-randomises answers under
//! (13.6 KB, sent once in `EVALUATION_KEYS`, for models compiled with `rerandomize`; older
//! key-free models take none), a sample encoded per input in fixed point and encrypted as one
//! seeded query (the one element of `ENCRYPTED_INPUT`), and the scores of `ENCRYPTED_OUTPUT`
//! decrypted and decoded.
//!
//! The secret key file is the lwe crate's (`HELW`, kind 3: the seed of s), written 0600 and
//! never overwritten, as every secret key file is.

use std::path::Path;

use lwe::{Answer, LweError, Params, SecretKey};
use model::{LinearSpec, LweSpec};
use thiserror::Error;

use crate::keys::{read_private, write_private, ClientError};

#[derive(Debug, Error)]
pub enum LweSessionError {
    #[error("the client spec is not usable: {0}")]
    Spec(#[from] model::ModelError),
    #[error(transparent)]
    Keys(#[from] ClientError),
    #[error("secret key file {path} is not an LWE secret key: {source}")]
    KeyFile { path: String, source: LweError },
    #[error("input: {0}")]
    Input(String),
    #[error("ENCRYPTED_OUTPUT holds {got} elements; an LWE model returns one answer")]
    OutputCount { got: usize },
    #[error("ENCRYPTED_OUTPUT is not this model's answer under this key: {0}")]
    Output(LweError),
    #[error("LWE: {0}")]
    Lwe(#[from] LweError),
}

/// An LWE model's client: spec + secret key.
pub struct LweSession {
    spec: LinearSpec,
    lwe: LweSpec,
    params: Params,
    sk: SecretKey,
}

impl LweSession {
    fn check(spec: &LinearSpec) -> Result<(LweSpec, Params), LweSessionError> {
        spec.validate()?;
        let l = spec.lwe.clone().ok_or_else(|| {
            LweSessionError::Spec(model::ModelError::Invalid("not an LWE client spec (no \"lwe\" field)".into()))
        })?;
        let p = Params::new(l.log_n, l.log_q)?;
        Params::new(l.log_n, l.answer_log_q)?;
        Ok((l, p))
    }

    /// A fresh secret key (32 bytes from the operating system).
    pub fn generate(spec: LinearSpec) -> Result<Self, LweSessionError> {
        let (lwe, params) = Self::check(&spec)?;
        Ok(Self { sk: SecretKey::generate(params), spec, lwe, params })
    }

    /// A session over a secret key file written by [`Self::save_secret`].
    pub fn load(spec: LinearSpec, path: &Path) -> Result<Self, LweSessionError> {
        let (lwe, params) = Self::check(&spec)?;
        let bytes = read_private(path)?;
        let sk = SecretKey::from_bytes(&bytes)
            .map_err(|source| LweSessionError::KeyFile { path: path.display().to_string(), source })?;
        Ok(Self { sk, spec, lwe, params })
    }

    pub fn save_secret(&self, path: &Path) -> Result<(), LweSessionError> {
        Ok(write_private(path, &self.sk.to_bytes())?)
    }

    pub fn spec(&self) -> &LinearSpec {
        &self.spec
    }

    /// Whether the server re-randomises answers, so that it needs [`Self::public_key`].
    pub fn needs_public_key(&self) -> bool {
        self.lwe.rerandomize
    }

    /// The bytes to register in `EVALUATION_KEYS`: the seeded RLWE public key of this secret
    /// (derived from it: the same bytes every time, which the server holds to) for a
    /// re-randomising model, nothing for a key-free one.
    pub fn public_key(&self) -> Result<Vec<u8>, LweSessionError> {
        if !self.lwe.rerandomize {
            return Ok(Vec::new());
        }
        Ok(self.sk.public_key(self.params)?.to_bytes())
    }

    /// The key id queries carry (hex): `KEY_ID` may name it, and the public key is
    /// registered under it.
    pub fn key_id_hex(&self) -> String {
        self.sk.key_id().iter().map(|b| format!("{b:02x}")).collect()
    }

    pub fn input_len(&self) -> usize {
        self.spec.input_len()
    }

    /// The fixed-point integers a sample encodes to, each refused outside the range the
    /// compiler sized the model for.
    pub fn encode(&self, x: &[f64]) -> Result<Vec<i64>, LweSessionError> {
        if x.len() != self.input_len() {
            return Err(LweSessionError::Input(format!(
                "{} values given, the model takes {} ({:?})",
                x.len(),
                self.input_len(),
                self.spec.input.shape
            )));
        }
        let limit = 2f64.powi(self.lwe.input_bound_bits as i32);
        x.iter()
            .zip(&self.lwe.input_frac_bits)
            .enumerate()
            .map(|(i, (&v, &f))| {
                let m = (v * 2f64.powi(f)).round();
                if m.is_nan() || m.abs() >= limit {
                    return Err(LweSessionError::Input(format!(
                        "input {i} = {v} is outside the range the model was compiled for (|x| < {:e}); \
                         recompile with calibration data that covers it",
                        limit / 2f64.powi(f)
                    )));
                }
                Ok(m as i64)
            })
            .collect()
    }

    /// One sample → the one element of `ENCRYPTED_INPUT` (a seeded query).
    pub fn encrypt(&self, x: &[f64]) -> Result<Vec<Vec<u8>>, LweSessionError> {
        let m = self.encode(x)?;
        Ok(vec![self.sk.encrypt(self.params, &m)?.to_bytes()])
    }

    /// The scores as reals (before post-processing), each within the spec's `error_bound`
    /// of the fixed-point score (except with probability 2^-64).
    pub fn decrypt(&self, out: &[Vec<u8>]) -> Result<Vec<f64>, LweSessionError> {
        let [bytes] = out else { return Err(LweSessionError::OutputCount { got: out.len() }) };
        let a = Answer::from_bytes(bytes).map_err(LweSessionError::Output)?;
        if a.params.log_q() != self.lwe.answer_log_q || a.params.log_n() != self.lwe.log_n {
            return Err(LweSessionError::Output(LweError::ParamsMismatch {
                what: "answer",
                found_log_n: a.params.log_n(),
                found_log_q: a.params.log_q(),
                want_log_n: self.lwe.log_n,
                want_log_q: self.lwe.answer_log_q,
            }));
        }
        let rows = self.lwe.answered(self.spec.output_len());
        if a.cts.len() != rows.len() {
            return Err(LweSessionError::Output(LweError::Dimension { expected: rows.len(), found: a.cts.len() }));
        }
        let phases = self.sk.decrypt(&a).map_err(LweSessionError::Output)?;
        let scale = 2f64.powi(self.lwe.log_q as i32 - self.lwe.answer_log_q as i32 - self.spec.output.frac_bits as i32);
        let mut y = vec![0.0; self.spec.output_len()];
        for (&j, &p) in rows.iter().zip(&phases) {
            y[j] = p as f64 * scale;
        }
        for &[j, i] in &self.lwe.negated {
            y[j] = -y[i];
        }
        Ok(y)
    }

    pub fn postprocess(&self, y: &[f64]) -> Vec<f64> {
        self.spec.postprocess(y)
    }
}
