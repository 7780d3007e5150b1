//! A client of a model's layout T (a batch per request, `model::throughput`): its own
//! secret key under the layout's parameters, the bundle (a relinearisation key only),
//! a batch of samples → the elements of `ENCRYPTED_INPUT` (one seeded ciphertext per
//! input feature, sample s in slot s), and the answer → one output row per sample.

use std::path::Path;

use ckks::{Ciphertext, Decryptor, Encoder, KeyGenerator, KeyId, Parameters};
use model::{ClientSpec, LayoutCost, ThroughputSpec};
use rayon::prelude::*;

use crate::keys::ClientKeys;
use crate::session::SessionError;

/// Layout T of one model, with its secret key.
pub struct BatchSession {
    spec: ThroughputSpec,
    keys: ClientKeys,
    encoder: Encoder,
}

fn t_spec(spec: &ClientSpec) -> Result<ThroughputSpec, SessionError> {
    spec.throughput.clone().ok_or_else(|| {
        SessionError::Input("this model was compiled without layout T (recompile with --layout auto or T)".into())
    })
}

impl BatchSession {
    /// New keys (from the OS CSPRNG) under the layout's parameters.
    pub fn generate(spec: &ClientSpec) -> Result<Self, SessionError> {
        let t = t_spec(spec)?;
        let params = Parameters::from_spec(&t.params)?;
        Ok(Self::with_keys(t, ClientKeys::generate(&params)))
    }

    /// A session over a layout-T secret key saved earlier.
    pub fn load(spec: &ClientSpec, secret_key_file: &Path) -> Result<Self, SessionError> {
        let t = t_spec(spec)?;
        let params = Parameters::from_spec(&t.params)?;
        let keys = ClientKeys::load_secret(&params, secret_key_file)?;
        Ok(Self::with_keys(t, keys))
    }

    fn with_keys(spec: ThroughputSpec, keys: ClientKeys) -> Self {
        let encoder = Encoder::new(keys.params());
        Self { spec, keys, encoder }
    }

    pub fn spec(&self) -> &ThroughputSpec {
        &self.spec
    }

    pub fn keys(&self) -> &ClientKeys {
        &self.keys
    }

    /// Samples one request holds at most.
    pub fn max_batch(&self) -> usize {
        self.spec.max_batch as usize
    }

    /// The bundle: exactly a relinearisation key (top level), and its id.
    pub fn evaluation_bundle(&self) -> (Vec<u8>, KeyId) {
        let params = self.keys.params();
        let keys = ckks::EvaluationKeys {
            params: params.clone(),
            relin: Some(KeyGenerator::new(params).relin_key(self.keys.secret_key())),
            galois: Default::default(),
            public: None,
            answer: None,
        };
        let bytes = keys.to_bytes();
        let id = KeyId::of_bundle(&bytes);
        (bytes, id)
    }

    /// `samples` rows of `features` values (row-major) → one seeded ciphertext per
    /// feature; refuses more samples than one request holds.
    pub fn encrypt(&self, x: &[f64], samples: usize) -> Result<Vec<Vec<u8>>, SessionError> {
        let f = self.spec.features as usize;
        if samples == 0 || x.len() != samples * f {
            return Err(SessionError::Input(format!("{} values are not {samples} samples of {f} features", x.len())));
        }
        if samples > self.max_batch() {
            return Err(SessionError::Input(format!(
                "a batch of {samples} samples is larger than layout T's {} per request: split it",
                self.max_batch()
            )));
        }
        if let Some(bad) = x.iter().position(|v| !v.is_finite()) {
            return Err(SessionError::Input(format!("value {bad} of the batch is not finite")));
        }
        let (level, scale) = (self.spec.input_level as usize, self.spec.input_scale);
        (0..f)
            .into_par_iter()
            .map_init(
                || Decryptor::new(self.keys.secret_key()),
                |dec, i| {
                    let v: Vec<f64> = (0..samples).map(|s| x[s * f + i]).collect();
                    let pt = self.encoder.encode(&v, level, scale)?;
                    Ok(dec.encrypt_symmetric(&pt)?.to_bytes())
                },
            )
            .collect()
    }

    /// The answer's elements → `samples` rows of the model's outputs (row-major).
    pub fn decrypt<B: AsRef<[u8]> + Sync>(&self, outputs: &[B], samples: usize) -> Result<Vec<f64>, SessionError> {
        let k = self.spec.outputs as usize;
        if outputs.len() != k {
            return Err(SessionError::OutputCount { expected: k, got: outputs.len() });
        }
        if samples > self.max_batch() {
            return Err(SessionError::Input(format!("at most {} samples per answer", self.max_batch())));
        }
        let cols = outputs
            .par_iter()
            .enumerate()
            .map(|(index, b)| {
                let ct = Ciphertext::from_bytes(self.keys.params(), b.as_ref())
                    .map_err(|source| SessionError::Output { index, source })?;
                let dec = Decryptor::new(self.keys.secret_key());
                Ok(self.encoder.decode(&dec.decrypt(&ct)?)?)
            })
            .collect::<Result<Vec<Vec<f64>>, SessionError>>()?;
        Ok((0..samples).flat_map(|s| cols.iter().map(move |c| c[s])).collect())
    }
}

/// A client of one of a model's batch layouts — T ([`BatchSession`]) or M
/// ([`crate::MultiSession`]) — as the CLI and the Python SDK drive either.
pub trait BatchLayout: Send + Sync {
    /// "T" or "M".
    fn layout(&self) -> &'static str;
    fn keys(&self) -> &ClientKeys;
    /// Samples one request holds at most.
    fn max_batch(&self) -> usize;
    /// Values in one sample's input and output.
    fn input_len(&self) -> usize;
    fn output_len(&self) -> usize;
    /// The layout's evaluation-key bundle and its id.
    fn evaluation_bundle(&self) -> (Vec<u8>, KeyId);
    /// `samples` rows (row-major) → the elements of one request's `ENCRYPTED_INPUT`.
    fn encrypt(&self, x: &[f64], samples: usize) -> Result<Vec<Vec<u8>>, SessionError>;
    /// One answer's elements → `samples` rows of the model's outputs (row-major).
    fn decrypt(&self, outputs: &[Vec<u8>], samples: usize) -> Result<Vec<f64>, SessionError>;
}

impl BatchLayout for BatchSession {
    fn layout(&self) -> &'static str {
        "T"
    }
    fn keys(&self) -> &ClientKeys {
        BatchSession::keys(self)
    }
    fn max_batch(&self) -> usize {
        BatchSession::max_batch(self)
    }
    fn input_len(&self) -> usize {
        self.spec.features as usize
    }
    fn output_len(&self) -> usize {
        self.spec.outputs as usize
    }
    fn evaluation_bundle(&self) -> (Vec<u8>, KeyId) {
        BatchSession::evaluation_bundle(self)
    }
    fn encrypt(&self, x: &[f64], samples: usize) -> Result<Vec<Vec<u8>>, SessionError> {
        BatchSession::encrypt(self, x, samples)
    }
    fn decrypt(&self, outputs: &[Vec<u8>], samples: usize) -> Result<Vec<f64>, SessionError> {
        BatchSession::decrypt(self, outputs, samples)
    }
}

/// The session of batch layout `layout` ("T" or "M") of the model `spec` describes: over
/// a saved secret key, or with fresh keys.
pub fn batch_session(
    spec: &ClientSpec,
    layout: &str,
    secret_key: Option<&Path>,
) -> Result<Box<dyn BatchLayout>, SessionError> {
    Ok(match (layout, secret_key) {
        ("T" | "t", Some(sk)) => Box::new(BatchSession::load(spec, sk)?),
        ("T" | "t", None) => Box::new(BatchSession::generate(spec)?),
        ("M" | "m", Some(sk)) => Box::new(crate::MultiSession::load(spec, sk)?),
        ("M" | "m", None) => Box::new(crate::MultiSession::generate(spec)?),
        (other, _) => return Err(SessionError::Input(format!("unknown batch layout {other:?}: choose T or M"))),
    })
}

/// The cheapest of the spec's layouts for `samples` samples (evaluation plus transfer at
/// `bytes_per_s`), with the figures it was chosen on; L when the spec lists none.
pub fn choose_layout(spec: &ClientSpec, samples: usize, bytes_per_s: f64) -> Option<&LayoutCost> {
    spec.layouts
        .iter()
        .filter(|c| match c.layout.as_str() {
            "T" => spec.throughput.is_some(),
            "M" => spec.multi.is_some(),
            _ => true,
        })
        .min_by(|a, b| a.total_s(samples, bytes_per_s).total_cmp(&b.total_s(samples, bytes_per_s)))
}
