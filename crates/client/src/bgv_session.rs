//! The client of a BGV integer model (`"scheme": "bgv"`): the secret key under the
//! model's parameters, the key bundle a server registers (a relinearisation key only:
//! the layout needs no rotation), a batch of up to N samples encrypted one ciphertext per
//! feature (sample j in slot j; seeded, half the bytes), and decryption of the answers
//! to the exact integers and to the model's outputs (integers / output scale).
//!
//! A residue plan (values past one t) encrypts each feature once per plaintext modulus,
//! residue-major, under the one secret (`SecretKey::under`), and recombines each output
//! from its residues by CRT (`bgv::throughput::crt_combine`).

use std::path::Path;

use bgv::{Decryptor, Encoder, KeyGenerator, Parameters, SecretKey};
use model::BgvSpec;

use crate::keys::{read_private, write_private, ClientError};

#[derive(Debug, thiserror::Error)]
pub enum BgvSessionError {
    #[error("BGV parameters of the client spec: {0}")]
    Params(bgv::Error),
    #[error(transparent)]
    Key(#[from] ClientError),
    #[error("secret key file does not match this model's BGV parameters: {0}")]
    KeyFile(bgv::WireError),
    #[error("{0}")]
    Input(String),
    #[error("answer {index}: {source}")]
    Answer { index: usize, source: bgv::Error },
}

pub struct BgvSession {
    spec: BgvSpec,
    /// One set per plaintext modulus, the spec's order; `sk` is under the first.
    sets: Vec<Parameters>,
    sk: SecretKey,
}

impl BgvSession {
    fn sets_of(spec: &BgvSpec) -> Result<Vec<Parameters>, BgvSessionError> {
        spec.validate().map_err(|e| BgvSessionError::Input(e.to_string()))?;
        spec.plaintext_moduli()
            .into_iter()
            .map(|t| Parameters::from_spec(&spec.params, t).map_err(BgvSessionError::Params))
            .collect()
    }

    /// A new secret key from the operating system's randomness.
    pub fn generate(spec: BgvSpec) -> Result<Self, BgvSessionError> {
        let sets = Self::sets_of(&spec)?;
        let sk = KeyGenerator::new(&sets[0]).secret_key();
        Ok(Self { spec, sets, sk })
    }

    /// The secret key of a file written by [`Self::save_secret`] (mode 0600 required).
    pub fn load(spec: BgvSpec, path: &Path) -> Result<Self, BgvSessionError> {
        let sets = Self::sets_of(&spec)?;
        let bytes = read_private(path)?;
        let sk = SecretKey::from_bytes(sets[0].rlwe(), &bytes).map_err(BgvSessionError::KeyFile)?;
        Ok(Self { spec, sets, sk })
    }

    /// Writes the secret key to a new 0600 file (never overwrites one).
    pub fn save_secret(&self, path: &Path) -> Result<(), BgvSessionError> {
        Ok(write_private(path, &self.sk.to_bytes())?)
    }

    pub fn spec(&self) -> &BgvSpec {
        &self.spec
    }

    /// The parameter set under the first plaintext modulus (the key's).
    pub fn params(&self) -> &Parameters {
        &self.sets[0]
    }

    /// The secret under residue `r`'s set.
    fn secret_for(&self, r: usize) -> Result<SecretKey, BgvSessionError> {
        self.sk.under(self.sets[r].rlwe()).map_err(|e| BgvSessionError::Params(e.into()))
    }

    /// The bundle a server registers (a relinearisation key; and the public key when the
    /// model is compiled with circuit privacy: the server floods answers under it) and its key id.
    pub fn key_bundle(&self) -> (Vec<u8>, rlwe::KeyId) {
        let mut kg = KeyGenerator::new(self.params());
        let mut keys = kg.evaluation_keys(&self.sk, &[], false, true);
        if self.spec.circuit_privacy.is_some() {
            keys.public = Some(kg.public_key(&self.sk));
        }
        let bytes = keys.to_bytes();
        let id = rlwe::KeyId::of_bundle(&bytes);
        (bytes, id)
    }

    /// Up to N samples (each the model's flattened input) as one ciphertext per feature (and
    /// plaintext modulus, residue-major); a value outside the compiled input range is refused
    /// (exactness is proven only inside).
    pub fn encrypt_batch(&self, samples: &[&[f64]]) -> Result<Vec<Vec<u8>>, BgvSessionError> {
        let n = self.params().n();
        if samples.is_empty() || samples.len() > n {
            return Err(BgvSessionError::Input(format!("{} samples: a batch holds 1 to {n}", samples.len())));
        }
        let ints = samples
            .iter()
            .enumerate()
            .map(|(i, x)| self.spec.encode_sample(x).map_err(|e| BgvSessionError::Input(format!("sample {i}: {e}"))))
            .collect::<Result<Vec<_>, _>>()?;
        let mut out = Vec::with_capacity(self.spec.input_len() * self.sets.len());
        for (r, params) in self.sets.iter().enumerate() {
            let sk = self.secret_for(r)?;
            let enc = Encoder::new(params);
            let mut dec = Decryptor::new(params, &sk).map_err(BgvSessionError::Params)?;
            let top = params.max_level();
            for f in 0..self.spec.input_len() {
                let col: Vec<i64> = ints.iter().map(|s| s[f]).collect();
                let pt = enc.encode(&col, top).map_err(BgvSessionError::Params)?;
                out.push(dec.encrypt_symmetric(&pt).map_err(BgvSessionError::Params)?.to_bytes());
            }
        }
        Ok(out)
    }

    /// The answers' exact integers, per sample (the first `samples` slots): centered mod t,
    /// or for a residue plan the CRT of the residues, centered mod their product.
    pub fn decrypt_integers(&self, answers: &[&[u8]], samples: usize) -> Result<Vec<Vec<i128>>, BgvSessionError> {
        let (k, r) = (self.spec.output_len(), self.sets.len());
        if answers.len() != k * r {
            return Err(BgvSessionError::Input(format!(
                "{} answer ciphertexts; this model answers {} ({k} outputs × {r} plaintext moduli)",
                answers.len(),
                k * r
            )));
        }
        let mut cols = Vec::with_capacity(answers.len()); // [residue · k + output][slot]
        for (res, params) in self.sets.iter().enumerate() {
            let sk = self.secret_for(res)?;
            let enc = Encoder::new(params);
            let dec = Decryptor::new(params, &sk).map_err(BgvSessionError::Params)?;
            for (o, b) in answers[res * k..(res + 1) * k].iter().enumerate() {
                let index = res * k + o;
                let ct = bgv::Ciphertext::from_bytes(params, b)
                    .map_err(|source| BgvSessionError::Answer { index, source })?;
                let pt = dec.decrypt(&ct).map_err(|source| BgvSessionError::Answer { index, source })?;
                cols.push(enc.decode_signed(&pt).map_err(|source| BgvSessionError::Answer { index, source })?);
            }
        }
        let ts = self.spec.plaintext_moduli();
        let samples = samples.min(self.params().n());
        (0..samples)
            .map(|s| {
                (0..k)
                    .map(|o| {
                        let residues: Vec<i64> = (0..r).map(|res| cols[res * k + o][s]).collect();
                        bgv::throughput::crt_combine(&residues, &ts).ok_or_else(|| {
                            BgvSessionError::Input(format!("plaintext moduli {ts:?} cannot be recombined"))
                        })
                    })
                    .collect()
            })
            .collect()
    }

    /// The model's outputs per sample: the integers divided by the output scale.
    pub fn decrypt_batch(&self, answers: &[&[u8]], samples: usize) -> Result<Vec<Vec<f64>>, BgvSessionError> {
        let scale = self.spec.output.scale;
        Ok(self
            .decrypt_integers(answers, samples)?
            .into_iter()
            .map(|v| v.into_iter().map(|x| x as f64 / scale).collect())
            .collect())
    }

    pub fn postprocess(&self, y: &[f64]) -> Vec<f64> {
        self.spec.postprocess(y)
    }
}
