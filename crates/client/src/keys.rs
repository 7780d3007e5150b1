//! The client's keys: the secret key stays in a file only its owner can read; the
//! evaluation-key bundle (relinearization and exactly the Galois keys asked for)
//! goes to the server once, and is named by its SHA-256 (`KeyId`) afterwards.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;

use ckks::{KeyGenerator, KeyId, Parameters, SecretKey, WireError};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum ClientError {
    #[error("secret key file {path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("secret key file {path} is readable by others (mode {mode:o}); run `chmod 600 {path}`")]
    Permissions { path: String, mode: u32 },
    #[error("secret key file {path} does not match these parameters: {source}")]
    Wire { path: String, source: WireError },
}

/// Writes secret-key bytes to a new file with mode 0600; never overwrites one (any scheme).
pub(crate) fn write_private(path: &Path, bytes: &[u8]) -> Result<(), ClientError> {
    let io = |source| ClientError::Io { path: path.display().to_string(), source };
    let mut opts = OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path).map_err(io)?;
    f.write_all(bytes).map_err(io)?;
    f.sync_all().map_err(io)
}

/// Reads a secret-key file, refusing one that others can read.
pub(crate) fn read_private(path: &Path) -> Result<zeroize::Zeroizing<Vec<u8>>, ClientError> {
    let p = path.display().to_string();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let meta = std::fs::metadata(path).map_err(|source| ClientError::Io { path: p.clone(), source })?;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(ClientError::Permissions { path: p, mode });
        }
    }
    Ok(zeroize::Zeroizing::new(std::fs::read(path).map_err(|source| ClientError::Io { path: p, source })?))
}

/// A client's secret key and the parameters it belongs to.
pub struct ClientKeys {
    params: Parameters,
    sk: SecretKey,
}

impl ClientKeys {
    /// Fresh keys from the operating system's randomness.
    pub fn generate(params: &Parameters) -> Self {
        let sk = KeyGenerator::new(params).secret_key();
        Self { params: params.clone(), sk }
    }

    pub fn params(&self) -> &Parameters {
        &self.params
    }

    pub fn secret_key(&self) -> &SecretKey {
        &self.sk
    }

    /// Writes the secret key to a new file with mode 0600; never overwrites one.
    pub fn save_secret(&self, path: &Path) -> Result<(), ClientError> {
        write_private(path, &self.sk.to_bytes())
    }

    /// Reads a secret key file, refusing one that others can read.
    pub fn load_secret(params: &Parameters, path: &Path) -> Result<Self, ClientError> {
        let p = path.display().to_string();
        let bytes = read_private(path)?;
        let sk = SecretKey::from_bytes(params, &bytes).map_err(|source| ClientError::Wire { path: p, source })?;
        Ok(Self { params: params.clone(), sk })
    }

    /// The evaluation-key bundle with the relinearization key (if `relin`) and a Galois
    /// key for each rotation step (and conjugation, if asked), serialized, with its key id.
    pub fn evaluation_bundle(&self, steps: &[i64], conjugation: bool, relin: bool) -> (Vec<u8>, KeyId) {
        let keys = KeyGenerator::new(&self.params).evaluation_keys(&self.sk, steps, conjugation, relin);
        let bytes = keys.to_bytes();
        let id = KeyId::of_bundle(&bytes);
        (bytes, id)
    }

    /// The bundle a model's spec asks for: a Galois key per rotation step and the
    /// relinearization key if needed, each made only up to the level the spec gives it
    /// (the top level where it gives none), the public key if the model is circuit
    /// private, and its id.
    pub fn evaluation_bundle_for(&self, spec: &model::ClientSpec) -> (Vec<u8>, KeyId) {
        let mut kg = KeyGenerator::new(&self.params);
        let keys = ckks::EvaluationKeys {
            params: self.params.clone(),
            relin: spec.relin_key_level().map(|l| kg.relin_key_at(&self.sk, l)),
            galois: kg.galois_keys_with(&self.sk, &spec.rotation_key_levels(), None, &spec.compact_key_levels()),
            // A circuit-private model floods answers with an encryption of zero under it.
            public: spec.circuit_privacy.is_some().then(|| kg.public_key(&self.sk)),
            // A model whose answers fold into a subring needs the key that switches to it.
            // `Session` checked the shape against the parameters, so this cannot fail there.
            answer: spec
                .answer
                .filter(|a| a.shape().folds(&self.params))
                .and_then(|a| kg.answer_key(&self.sk, a.log_n).ok()),
        };
        let bytes = keys.to_bytes();
        let id = KeyId::of_bundle(&bytes);
        (bytes, id)
    }
}
