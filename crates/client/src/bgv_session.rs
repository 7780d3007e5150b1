//! The client of a BGV integer model (`"scheme": "bgv"`): the secret key under the
//! model's parameters, the key bundle a server registers (a relinearisation key only:
//! the layout needs no rotation), a batch of up to N samples encrypted one ciphertext per
//! feature (sample j in slot j; seeded, half the bytes), and decryption of the answers
//! to the exact integers and to the model's outputs (integers / output scale).

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
    params: Parameters,
    sk: SecretKey,
}

impl BgvSession {
    fn params_of(spec: &BgvSpec) -> Result<Parameters, BgvSessionError> {
        Parameters::from_spec(&spec.params, spec.plaintext_modulus).map_err(BgvSessionError::Params)
    }

    /// A new secret key from the operating system's randomness.
    pub fn generate(spec: BgvSpec) -> Result<Self, BgvSessionError> {
        let params = Self::params_of(&spec)?;
        let sk = KeyGenerator::new(&params).secret_key();
        Ok(Self { spec, params, sk })
    }

    /// The secret key of a file written by [`Self::save_secret`] (mode 0600 required).
    pub fn load(spec: BgvSpec, path: &Path) -> Result<Self, BgvSessionError> {
        let params = Self::params_of(&spec)?;
        let bytes = read_private(path)?;
        let sk = SecretKey::from_bytes(params.rlwe(), &bytes).map_err(BgvSessionError::KeyFile)?;
        Ok(Self { spec, params, sk })
    }

    /// Writes the secret key to a new 0600 file (never overwrites one).
    pub fn save_secret(&self, path: &Path) -> Result<(), BgvSessionError> {
        Ok(write_private(path, &self.sk.to_bytes())?)
    }

    pub fn spec(&self) -> &BgvSpec {
        &self.spec
    }

    pub fn params(&self) -> &Parameters {
        &self.params
    }

    /// The bundle a server registers (a relinearisation key) and its key id.
    pub fn key_bundle(&self) -> (Vec<u8>, rlwe::KeyId) {
        let bytes = KeyGenerator::new(&self.params).evaluation_keys(&self.sk, &[], false, true).to_bytes();
        let id = rlwe::KeyId::of_bundle(&bytes);
        (bytes, id)
    }

    /// Up to N samples (each the model's flattened input) as one ciphertext per feature;
    /// a value outside the compiled input range is refused (exactness is proven only inside).
    pub fn encrypt_batch(&self, samples: &[&[f64]]) -> Result<Vec<Vec<u8>>, BgvSessionError> {
        let n = self.params.n();
        if samples.is_empty() || samples.len() > n {
            return Err(BgvSessionError::Input(format!("{} samples: a batch holds 1 to {n}", samples.len())));
        }
        let ints = samples
            .iter()
            .enumerate()
            .map(|(i, x)| self.spec.encode_sample(x).map_err(|e| BgvSessionError::Input(format!("sample {i}: {e}"))))
            .collect::<Result<Vec<_>, _>>()?;
        let enc = Encoder::new(&self.params);
        let mut dec = Decryptor::new(&self.params, &self.sk).map_err(BgvSessionError::Params)?;
        let top = self.params.max_level();
        (0..self.spec.input_len())
            .map(|f| {
                let col: Vec<i64> = ints.iter().map(|s| s[f]).collect();
                let pt = enc.encode(&col, top).map_err(BgvSessionError::Params)?;
                Ok(dec.encrypt_symmetric(&pt).map_err(BgvSessionError::Params)?.to_bytes())
            })
            .collect()
    }

    /// The answers' exact integers, per sample (the first `samples` slots), centered mod t.
    pub fn decrypt_integers(&self, answers: &[&[u8]], samples: usize) -> Result<Vec<Vec<i64>>, BgvSessionError> {
        if answers.len() != self.spec.output_len() {
            return Err(BgvSessionError::Input(format!(
                "{} answer ciphertexts; this model answers {}",
                answers.len(),
                self.spec.output_len()
            )));
        }
        let enc = Encoder::new(&self.params);
        let dec = Decryptor::new(&self.params, &self.sk).map_err(BgvSessionError::Params)?;
        let cols = answers
            .iter()
            .enumerate()
            .map(|(index, b)| {
                let ct = bgv::Ciphertext::from_bytes(&self.params, b)
                    .map_err(|source| BgvSessionError::Answer { index, source })?;
                let pt = dec.decrypt(&ct).map_err(|source| BgvSessionError::Answer { index, source })?;
                enc.decode_signed(&pt).map_err(|source| BgvSessionError::Answer { index, source })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let samples = samples.min(self.params.n());
        Ok((0..samples).map(|s| cols.iter().map(|c| c[s]).collect()).collect())
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
