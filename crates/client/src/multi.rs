//! A client of a model's layout M (`model::multi`: B samples interleaved in one
//! ciphertext). Layout M shares layout L's parameters, so a layout-L secret key serves
//! it too; its bundle holds layout M's own Galois keys. Up to B samples → one seeded
//! ciphertext (the missing samples are zeros); the answer → one output row per sample.

use std::path::Path;

use ckks::KeyId;
use model::ClientSpec;

use crate::keys::ClientKeys;
use crate::session::{Session, SessionError};

/// Layout M of one model, with its secret key.
pub struct MultiSession {
    inner: Session,
    batch: usize,
    features: usize,
    outputs: usize,
}

fn m_spec(spec: &ClientSpec) -> Result<ClientSpec, SessionError> {
    // The whole spec: its checks of layout M (B, shapes) are what bound this client's buffers.
    spec.validate()?;
    spec.multi.as_deref().cloned().ok_or_else(|| {
        SessionError::Input("this model was compiled without layout M (recompile with --layout auto or M)".into())
    })
}

impl MultiSession {
    /// New keys (from the OS CSPRNG) under the model's parameters.
    pub fn generate(spec: &ClientSpec) -> Result<Self, SessionError> {
        Ok(Self::over(Session::generate(m_spec(spec)?)?, spec))
    }

    /// A session over a secret key saved earlier (layout L's or M's: they are one).
    pub fn load(spec: &ClientSpec, secret_key_file: &Path) -> Result<Self, SessionError> {
        Ok(Self::over(Session::load(m_spec(spec)?, secret_key_file)?, spec))
    }

    fn over(inner: Session, l: &ClientSpec) -> Self {
        // Validated with the spec (`ClientSpec::validate`): B ≥ 2, B × the sample's values.
        let batch = inner.spec().multi_batch().unwrap_or(1).max(1);
        let features = l.input.shape.iter().product();
        let outputs = l.output.shape.iter().product();
        Self { inner, batch, features, outputs }
    }

    /// Layout M's own client spec (B samples in, B outputs out).
    pub fn spec(&self) -> &ClientSpec {
        self.inner.spec()
    }

    pub fn keys(&self) -> &ClientKeys {
        self.inner.keys()
    }

    /// B: samples one request holds at most.
    pub fn max_batch(&self) -> usize {
        self.batch
    }

    /// Values in one sample's input and output.
    pub fn input_len(&self) -> usize {
        self.features
    }
    pub fn output_len(&self) -> usize {
        self.outputs
    }

    /// The bundle: the relinearisation key if the model needs one and layout M's Galois
    /// keys (a bundle serves one layout: the server runs M for it), and its id.
    pub fn evaluation_bundle(&self) -> (Vec<u8>, KeyId) {
        self.inner.evaluation_bundle()
    }

    /// `samples` rows of the model's input (row-major) → one seeded ciphertext; refuses
    /// more samples than one request holds.
    pub fn encrypt(&self, x: &[f64], samples: usize) -> Result<Vec<Vec<u8>>, SessionError> {
        let f = self.features;
        if samples == 0 || x.len() != samples * f {
            return Err(SessionError::Input(format!("{} values are not {samples} samples of {f} values", x.len())));
        }
        if samples > self.batch {
            return Err(SessionError::Input(format!(
                "a batch of {samples} samples is larger than layout M's {} per request: split it",
                self.batch
            )));
        }
        let mut full = x.to_vec();
        full.resize(self.batch * f, 0.0);
        self.inner.encrypt(&full)
    }

    /// One sample in block `block` only (zeros in every other): a request the server may
    /// add to other same-key requests on other blocks and answer with one evaluation
    /// (`runtime::Service::infer_merged`, Triton's `BLOCK` input). Read the answer with
    /// [`MultiSession::decrypt_block`].
    pub fn encrypt_block(&self, x: &[f64], block: usize) -> Result<Vec<Vec<u8>>, SessionError> {
        let f = self.features;
        if x.len() != f {
            return Err(SessionError::Input(format!("{} values are not one sample of {f} values", x.len())));
        }
        if block >= self.batch {
            return Err(SessionError::Input(format!("block {block}: layout M has blocks 0..{}", self.batch)));
        }
        let mut full = vec![0.0; self.batch * f];
        full[block * f..(block + 1) * f].copy_from_slice(x);
        self.inner.encrypt(&full)
    }

    /// A merged answer's elements → the outputs of the sample in block `block`.
    pub fn decrypt_block<B: AsRef<[u8]>>(&self, outputs: &[B], block: usize) -> Result<Vec<f64>, SessionError> {
        if block >= self.batch {
            return Err(SessionError::Input(format!("block {block}: layout M has blocks 0..{}", self.batch)));
        }
        let y = self.inner.decrypt(outputs)?;
        y.get(block * self.outputs..(block + 1) * self.outputs).map(<[f64]>::to_vec).ok_or_else(|| {
            SessionError::Input(format!("the answer holds {} values, not {} blocks", y.len(), self.batch))
        })
    }

    /// The answer's elements → `samples` rows of the model's outputs (row-major).
    pub fn decrypt<B: AsRef<[u8]>>(&self, outputs: &[B], samples: usize) -> Result<Vec<f64>, SessionError> {
        if samples > self.batch {
            return Err(SessionError::Input(format!("at most {} samples per answer", self.batch)));
        }
        let mut y = self.inner.decrypt(outputs)?;
        y.truncate(samples * self.outputs);
        Ok(y)
    }
}

impl crate::batch::BatchLayout for MultiSession {
    fn layout(&self) -> &'static str {
        "M"
    }
    fn keys(&self) -> &ClientKeys {
        MultiSession::keys(self)
    }
    fn max_batch(&self) -> usize {
        MultiSession::max_batch(self)
    }
    fn input_len(&self) -> usize {
        MultiSession::input_len(self)
    }
    fn output_len(&self) -> usize {
        MultiSession::output_len(self)
    }
    fn evaluation_bundle(&self) -> (Vec<u8>, KeyId) {
        MultiSession::evaluation_bundle(self)
    }
    fn encrypt(&self, x: &[f64], samples: usize) -> Result<Vec<Vec<u8>>, SessionError> {
        MultiSession::encrypt(self, x, samples)
    }
    fn decrypt(&self, outputs: &[Vec<u8>], samples: usize) -> Result<Vec<f64>, SessionError> {
        MultiSession::decrypt(self, outputs, samples)
    }
}
