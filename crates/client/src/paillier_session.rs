//! The client of a Paillier linear model (`model::LinearSpec`): a key pair of at least
//! the spec's modulus size (3072 bits), the public key to register (its key id names it
//! afterwards), a sample encrypted in fixed point into the one element of
//! `ENCRYPTED_INPUT`, and the scores of `ENCRYPTED_OUTPUT` decrypted exactly and decoded.
//!
//! The secret key file is the paillier crate's secret-key wire format (`HEPA`, kind 3),
//! written 0600 and never overwritten, read only when others cannot read it — as a CKKS
//! secret key file is.

use std::path::Path;

use model::LinearSpec;
use paillier::{FixedPoint, Integer, PaillierError, PublicKey, SecretKey};
use thiserror::Error;

use crate::keys::{read_private, write_private, ClientError};

#[derive(Debug, Error)]
pub enum PaillierSessionError {
    #[error("the client spec is not usable: {0}")]
    Spec(#[from] model::ModelError),
    #[error(transparent)]
    Keys(#[from] ClientError),
    #[error("secret key file {path} is not a Paillier secret key: {source}")]
    KeyFile { path: String, source: PaillierError },
    #[error("the secret key has a {bits}-bit modulus; this model asks for at least {min}: make a new key pair")]
    KeyTooSmall { bits: u32, min: u32 },
    #[error("input: {0}")]
    Input(String),
    #[error("ENCRYPTED_OUTPUT holds {got} elements; a Paillier model returns one ciphertext batch")]
    OutputCount { got: usize },
    #[error("ENCRYPTED_OUTPUT is not this model's answer under this key: {0}")]
    Output(PaillierError),
    #[error("Paillier: {0}")]
    Paillier(#[from] PaillierError),
}

/// A Paillier model's client: spec + secret key.
pub struct PaillierSession {
    spec: LinearSpec,
    sk: SecretKey,
}

impl PaillierSession {
    /// A fresh key pair of the spec's modulus size (safe primes; seconds).
    pub fn generate(spec: LinearSpec) -> Result<Self, PaillierSessionError> {
        spec.validate()?;
        let sk = SecretKey::generate_with(&mut rand_core::OsRng, spec.min_modulus_bits)?;
        Ok(Self { spec, sk })
    }

    /// A session over an existing secret key (e.g. a test fixture), checked against the spec.
    pub fn with_key(spec: LinearSpec, sk: SecretKey) -> Result<Self, PaillierSessionError> {
        spec.validate()?;
        let bits = sk.public_key().modulus_bits();
        if bits < spec.min_modulus_bits {
            return Err(PaillierSessionError::KeyTooSmall { bits, min: spec.min_modulus_bits });
        }
        Ok(Self { spec, sk })
    }

    /// A session over a secret key file written by [`Self::save_secret`].
    pub fn load(spec: LinearSpec, path: &Path) -> Result<Self, PaillierSessionError> {
        let bytes = read_private(path)?;
        let sk = SecretKey::from_bytes(&bytes)
            .map_err(|source| PaillierSessionError::KeyFile { path: path.display().to_string(), source })?;
        Self::with_key(spec, sk)
    }

    pub fn save_secret(&self, path: &Path) -> Result<(), PaillierSessionError> {
        Ok(write_private(path, &self.sk.to_bytes())?)
    }

    pub fn spec(&self) -> &LinearSpec {
        &self.spec
    }

    pub fn public_key(&self) -> &PublicKey {
        self.sk.public_key()
    }

    /// What the server registers (`EVALUATION_KEYS`) and the key id that names it (`KEY_ID`).
    pub fn public_key_bytes(&self) -> (Vec<u8>, paillier::KeyId) {
        let pk = self.sk.public_key();
        (pk.to_bytes(), pk.key_id())
    }

    pub fn input_len(&self) -> usize {
        self.spec.input_len()
    }

    /// The fixed-point integers a sample encodes to (what is encrypted).
    pub fn encode(&self, x: &[f64]) -> Result<Vec<Integer>, PaillierSessionError> {
        if x.len() != self.input_len() {
            return Err(PaillierSessionError::Input(format!(
                "{} values given, the model takes {} ({:?})",
                x.len(),
                self.input_len(),
                self.spec.input.shape
            )));
        }
        let fp = FixedPoint::new(self.spec.input.frac_bits)?;
        Ok(x.iter().map(|&v| fp.encode(v)).collect::<Result<_, _>>()?)
    }

    /// One sample → the one element of `ENCRYPTED_INPUT` (a batch of d ciphertexts).
    pub fn encrypt(&self, x: &[f64]) -> Result<Vec<Vec<u8>>, PaillierSessionError> {
        let m = self.encode(x)?;
        let cts = m.iter().map(|v| self.sk.encrypt(v, &mut rand_core::OsRng)).collect::<Result<Vec<_>, _>>()?;
        Ok(vec![self.sk.public_key().write_ciphertexts(&cts)])
    }

    /// The exact integer scores of `ENCRYPTED_OUTPUT` (scaled by 2^output.frac_bits).
    pub fn decrypt_integers(&self, out: &[Vec<u8>]) -> Result<Vec<Integer>, PaillierSessionError> {
        let [batch] = out else { return Err(PaillierSessionError::OutputCount { got: out.len() }) };
        let cts = self.sk.public_key().read_ciphertexts(batch).map_err(PaillierSessionError::Output)?;
        if cts.len() != self.spec.output_len() {
            return Err(PaillierSessionError::Output(PaillierError::Dimension {
                expected: self.spec.output_len(),
                found: cts.len(),
            }));
        }
        cts.iter().map(|c| self.sk.decrypt(c).map_err(PaillierSessionError::Output)).collect()
    }

    /// The scores as reals (before post-processing).
    pub fn decrypt(&self, out: &[Vec<u8>]) -> Result<Vec<f64>, PaillierSessionError> {
        self.decode_scores(&self.decrypt_integers(out)?)
    }

    /// Integer scores (from [`Self::decrypt_integers`]) as reals.
    pub fn decode_scores(&self, scores: &[Integer]) -> Result<Vec<f64>, PaillierSessionError> {
        let fp = FixedPoint::new(self.spec.output.frac_bits)?;
        Ok(scores.iter().map(|v| fp.decode(v)).collect())
    }

    pub fn postprocess(&self, y: &[f64]) -> Vec<f64> {
        self.spec.postprocess(y)
    }
}
