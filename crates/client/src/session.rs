//! A client of one served model: its spec, the secret key, and the three things a
//! client does — make the evaluation-key bundle, encrypt a sample into the bytes of
//! `ENCRYPTED_INPUT`, decrypt the bytes of `ENCRYPTED_OUTPUT` into the model's output.
//! Everything a front end (CLI, Python, tests) needs, with no network code.

use std::path::Path;

use ckks::{Ciphertext, Decryptor, Encoder, KeyId, Parameters};
use model::ClientSpec;
use thiserror::Error;

use crate::keys::{ClientError, ClientKeys};
use crate::release::{decrypt_for_release, Guarantee, Release, ReleaseError};

#[derive(Debug, Error)]
pub enum SessionError {
    #[error("the client spec names parameters this client refuses: {0}")]
    Params(#[from] ckks::ParamError),
    #[error(transparent)]
    Keys(#[from] ClientError),
    #[error("the client spec is not usable: {0}")]
    Spec(#[from] model::ModelError),
    #[error("input: {0}")]
    Input(String),
    #[error("ENCRYPTED_OUTPUT holds {got} ciphertexts; this model returns {expected}")]
    OutputCount { expected: usize, got: usize },
    #[error("ENCRYPTED_OUTPUT[{index}] is not a ciphertext under this model's parameters: {source}")]
    Output { index: usize, source: ckks::WireError },
    #[error("release refused: {0}")]
    Release(#[from] ReleaseError),
    #[error("encryption failed: {0}")]
    Ckks(#[from] ckks::Error),
}

/// A model's client: spec + secret key. Encrypts samples, decrypts results.
pub struct Session {
    spec: ClientSpec,
    keys: ClientKeys,
    encoder: Encoder,
}

impl Session {
    /// New keys (from the OS CSPRNG) for the model this spec describes.
    pub fn generate(spec: ClientSpec) -> Result<Self, SessionError> {
        spec.validate()?;
        let params = Parameters::from_spec(&spec.params)?;
        Ok(Self::with_keys(spec, ClientKeys::generate(&params)))
    }

    /// A session over a secret key saved earlier (see [`ClientKeys::save_secret`]).
    pub fn load(spec: ClientSpec, secret_key_file: &Path) -> Result<Self, SessionError> {
        spec.validate()?;
        let params = Parameters::from_spec(&spec.params)?;
        let keys = ClientKeys::load_secret(&params, secret_key_file)?;
        Ok(Self::with_keys(spec, keys))
    }

    fn with_keys(spec: ClientSpec, keys: ClientKeys) -> Self {
        let encoder = Encoder::new(keys.params());
        Self { spec, keys, encoder }
    }

    pub fn spec(&self) -> &ClientSpec {
        &self.spec
    }

    pub fn keys(&self) -> &ClientKeys {
        &self.keys
    }

    pub fn params(&self) -> &Parameters {
        self.keys.params()
    }

    /// Writes the secret key to a new file readable by its owner only.
    pub fn save_secret(&self, path: &Path) -> Result<(), SessionError> {
        Ok(self.keys.save_secret(path)?)
    }

    /// The evaluation-key bundle for this model — the relinearization key if it needs
    /// one and a Galois key for exactly the rotation steps its spec lists, each only as
    /// high as the spec's key levels — and its id.
    pub fn evaluation_bundle(&self) -> (Vec<u8>, KeyId) {
        self.keys.evaluation_bundle_for(&self.spec)
    }

    /// How many values one sample has (the product of the input shape).
    pub fn input_len(&self) -> usize {
        self.spec.input.shape.iter().product()
    }

    /// One sample (flattened row-major) → the elements of `ENCRYPTED_INPUT`, one
    /// seeded ciphertext each (half the bytes of a full one), or, for a model compiled
    /// with a compact input, one compact query (a word per slot of the input's period).
    pub fn encrypt(&self, x: &[f64]) -> Result<Vec<Vec<u8>>, SessionError> {
        if let Some(bad) = x.iter().position(|v| !v.is_finite()) {
            return Err(SessionError::Input(format!("value {bad} of the input is not finite")));
        }
        let slots = self.spec.pack_input(x).map_err(|e| SessionError::Input(e.to_string()))?;
        let mut dec = Decryptor::new(self.keys.secret_key());
        Ok(encrypt_slots(&self.spec, &mut dec, &self.encoder, &slots)?)
    }

    /// The elements of `ENCRYPTED_OUTPUT` → the model's output vector before the
    /// client-side post-processing (logits, typically). For the key's holder only:
    /// values that leave the client go through [`decrypt_for_release`](Self::decrypt_for_release).
    pub fn decrypt<B: AsRef<[u8]>>(&self, outputs: &[B]) -> Result<Vec<f64>, SessionError> {
        let cts = self.read_outputs(outputs)?;
        let dec = Decryptor::new(self.keys.secret_key());
        let slots = cts
            .iter()
            .map(|ct| Ok(self.encoder.decode(&dec.decrypt(ct)?)?))
            .collect::<Result<Vec<_>, SessionError>>()?;
        self.spec.unpack_output(&slots).map_err(|e| SessionError::Input(e.to_string()))
    }

    /// Like [`decrypt`](Self::decrypt), for values that will be published, logged or
    /// sent to anyone: flooded or rounded as `policy` says (see [`crate::release`]).
    /// `Release::Flood`'s `releases` counts answers; each of this model's output
    /// ciphertexts is one decryption, so the bound covers `releases` × that many.
    pub fn decrypt_for_release<B: AsRef<[u8]>>(
        &self,
        outputs: &[B],
        policy: &Release,
    ) -> Result<(Vec<f64>, Guarantee), SessionError> {
        let cts = self.read_outputs(outputs)?;
        let per_answer = cts.len() as u64;
        let policy = match *policy {
            Release::Flood { security_bits, releases, max_error, max_noise } => {
                Release::Flood { security_bits, releases: releases.saturating_mul(per_answer), max_error, max_noise }
            }
            round => round,
        };
        let mut guarantee = None;
        let mut slots = Vec::with_capacity(cts.len());
        for ct in &cts {
            let (values, g) = decrypt_for_release(self.keys.secret_key(), &self.encoder, ct, &policy)?;
            slots.push(values);
            guarantee = Some(g);
        }
        let values = self.spec.unpack_output(&slots).map_err(|e| SessionError::Input(e.to_string()))?;
        let guarantee = guarantee.ok_or_else(|| SessionError::Input("the model returns no ciphertext".into()))?;
        Ok((values, guarantee))
    }

    fn read_outputs<B: AsRef<[u8]>>(&self, outputs: &[B]) -> Result<Vec<Ciphertext>, SessionError> {
        let expected = self.spec.output.ciphertexts as usize;
        if outputs.len() != expected {
            return Err(SessionError::OutputCount { expected, got: outputs.len() });
        }
        outputs
            .iter()
            .enumerate()
            .map(|(index, b)| {
                Ciphertext::from_bytes(self.params(), b.as_ref())
                    .map_err(|source| SessionError::Output { index, source })
            })
            .collect()
    }

    /// The recorded post-processing (softmax, argmax, …) applied to a decrypted output.
    pub fn postprocess(&self, y: &[f64]) -> Vec<f64> {
        self.spec.postprocess(y)
    }
}

/// The slot vectors of one sample (`ClientSpec::pack_input`) → the elements of
/// `ENCRYPTED_INPUT`: a seeded ciphertext per vector, or, for a compact input, one
/// compact query (`ckks::compact_query_coefficients` of the first period, a word each).
pub fn encrypt_slots(
    spec: &ClientSpec,
    dec: &mut Decryptor,
    encoder: &Encoder,
    slots: &[Vec<f64>],
) -> Result<Vec<Vec<u8>>, ckks::Error> {
    let (level, scale) = (spec.input.level as usize, spec.input.scale);
    if let (Some(c), Some(first)) = (&spec.input.compact, slots.first()) {
        if let Some(n) = c.ring_values {
            // The values themselves at coefficients 0..n: the server's first layer reads them.
            let x = &first[..(n as usize).min(first.len())];
            if let Some(&v) = x.iter().find(|v| !v.is_finite()) {
                return Err(ckks::Error::NotFinite(v));
            }
            if let Some(&v) = x.iter().find(|v| (*v * scale).abs() >= 2f64.powi(100)) {
                return Err(ckks::Error::ValueTooLarge { value: v, log_scale: scale.log2() });
            }
            let m: Vec<i128> = x.iter().map(|v| (v * scale).round() as i128).collect();
            return Ok(vec![dec.encrypt_ring_query(&m, level, scale)?.to_bytes()]);
        }
        let period = c.period as usize;
        let coeffs = ckks::compact_query_coefficients(&first[..period.min(first.len())], period, scale)?;
        return Ok(vec![dec.encrypt_lwe(&coeffs, level, scale)?.to_bytes()]);
    }
    slots.iter().map(|v| Ok(dec.encrypt_symmetric(&encoder.encode(v, level, scale)?)?.to_bytes())).collect()
}
