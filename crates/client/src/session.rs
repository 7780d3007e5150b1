//! A client of one served model: its spec, the secret key, and the three things a
//! client does — make the evaluation-key bundle, encrypt a sample into the bytes of
//! `ENCRYPTED_INPUT`, decrypt the bytes of `ENCRYPTED_OUTPUT` into the model's output.
//! Everything a front end (CLI, Python, tests) needs, with no network code.

use std::path::Path;

use ckks::{Ciphertext, Decryptor, Encoder, KeyId, Parameters};
use model::ClientSpec;
use thiserror::Error;

use crate::keys::{ClientError, ClientKeys};
use crate::release::{decrypt_answer_for_release, decrypt_for_release, Guarantee, Release, ReleaseError};

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
        check_answer(&spec, &params)?;
        Ok(Self::with_keys(spec, ClientKeys::generate(&params)))
    }

    /// A session over a secret key saved earlier (see [`ClientKeys::save_secret`]).
    pub fn load(spec: ClientSpec, secret_key_file: &Path) -> Result<Self, SessionError> {
        spec.validate()?;
        let params = Parameters::from_spec(&spec.params)?;
        check_answer(&spec, &params)?;
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
        decrypt_outputs(&self.spec, self.keys.secret_key(), &self.encoder, outputs)
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
        let answers = read_outputs(&self.spec, self.params(), outputs)?;
        let per_answer = outputs.len() as u64;
        let policy = match *policy {
            Release::Flood { security_bits, releases, max_error, max_noise } => {
                Release::Flood { security_bits, releases: releases.saturating_mul(per_answer), max_error, max_noise }
            }
            round => round,
        };
        let sk = self.keys.secret_key();
        let released: Vec<(Vec<f64>, Guarantee)> = match &answers {
            Answers::Full(cts) => {
                cts.iter().map(|ct| decrypt_for_release(sk, &self.encoder, ct, &policy)).collect::<Result<_, _>>()?
            }
            Answers::Compact(answers) => answers
                .iter()
                .map(|a| decrypt_answer_for_release(sk, a, &policy).map(|(v, g)| (every_slot(self.params(), v), g)))
                .collect::<Result<_, _>>()?,
        };
        let guarantee = released
            .last()
            .map(|r| r.1)
            .ok_or_else(|| SessionError::Input("the model returns no ciphertext".into()))?;
        let slots: Vec<Vec<f64>> = released.into_iter().map(|r| r.0).collect();
        let values = self.spec.unpack_output(&slots).map_err(|e| SessionError::Input(e.to_string()))?;
        Ok((values, guarantee))
    }

    /// The recorded post-processing (softmax, argmax, …) applied to a decrypted output.
    pub fn postprocess(&self, y: &[f64]) -> Vec<f64> {
        self.spec.postprocess(y)
    }
}

/// `ENCRYPTED_OUTPUT` read: whole ciphertexts, or compact answers (`model::answer`).
enum Answers {
    Full(Vec<Ciphertext>),
    Compact(Vec<ckks::CompactAnswer>),
}

/// The elements of `ENCRYPTED_OUTPUT` → the model's output vector (before post-processing)
/// under `sk`, whole ciphertexts or compact answers as `spec` says: [`Session::decrypt`]
/// for front ends that hold their own keys (`heinfer run`).
pub fn decrypt_outputs<B: AsRef<[u8]>>(
    spec: &ClientSpec,
    sk: &ckks::SecretKey,
    encoder: &Encoder,
    outputs: &[B],
) -> Result<Vec<f64>, SessionError> {
    let dec = Decryptor::new(sk);
    let params = sk.params();
    let slots = match read_outputs(spec, params, outputs)? {
        Answers::Full(cts) => {
            cts.iter().map(|ct| Ok(encoder.decode(&dec.decrypt(ct)?)?)).collect::<Result<Vec<_>, SessionError>>()?
        }
        Answers::Compact(answers) => answers
            .iter()
            .map(|a| {
                let mut phase = dec.decrypt_answer(a)?;
                let coeffs: Vec<f64> = phase.iter().map(|&c| c as f64).collect();
                zeroize::Zeroize::zeroize(&mut phase);
                Ok(every_slot(params, ckks::decode_coefficients(&coeffs, a.scale())?))
            })
            .collect::<Result<Vec<_>, SessionError>>()?,
    };
    spec.unpack_output(&slots).map_err(|e| SessionError::Input(e.to_string()))
}

/// A folded answer's N'/2 slots → the N/2 the model's output layout indexes: the answer
/// repeats with that period (`model::answer`).
fn every_slot(params: &Parameters, first: Vec<f64>) -> Vec<f64> {
    let slots = params.slots();
    if first.len() >= slots {
        return first;
    }
    (0..slots).map(|j| first[j % first.len()]).collect()
}

fn read_outputs<B: AsRef<[u8]>>(
    spec: &ClientSpec,
    params: &Parameters,
    outputs: &[B],
) -> Result<Answers, SessionError> {
    let expected = spec.output.ciphertexts as usize;
    if outputs.len() != expected {
        return Err(SessionError::OutputCount { expected, got: outputs.len() });
    }
    let out = |index: usize| move |source| SessionError::Output { index, source };
    Ok(match spec.answer {
        Some(a) => Answers::Compact(
            outputs
                .iter()
                .enumerate()
                .map(|(i, b)| ckks::CompactAnswer::from_bytes(params, b.as_ref(), a.shape()).map_err(out(i)))
                .collect::<Result<_, _>>()?,
        ),
        None => Answers::Full(
            outputs
                .iter()
                .enumerate()
                .map(|(i, b)| Ciphertext::from_bytes(params, b.as_ref()).map_err(out(i)))
                .collect::<Result<_, _>>()?,
        ),
    })
}

/// Refuses a spec whose compact answers these parameters cannot make.
fn check_answer(spec: &ClientSpec, params: &Parameters) -> Result<(), SessionError> {
    match spec.answer {
        Some(a) => Ok(a.shape().check(params)?),
        None => Ok(()),
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
