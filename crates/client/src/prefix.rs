//! Split inference, client side: the public prefix of a split model (`compile
//! --split-at`) run in the clear with tract, a pure-Rust ONNX runtime, before the result
//! is encrypted. The user passes the whole original sample; the spec's prefix bytes are
//! checked against their SHA-256 before tract reads them. Only the client runs this:
//! the server crates do not depend on tract (`scripts/check-secret-key-boundary.sh`).

use model::prefix::Prefix;
use model::ClientSpec;
use thiserror::Error;
use tract_onnx::prelude::*;

#[derive(Debug, Error)]
pub enum PrefixError {
    #[error("{0}")]
    Spec(#[from] model::ModelError),
    #[error("the split prefix (ONNX) cannot be loaded by tract: {0}; recompile the model or report the prefix's ops")]
    Load(String),
    #[error("input: {0}")]
    Input(String),
    #[error("running the split prefix failed: {0}")]
    Run(String),
}

/// A split model's prefix, loaded once and run per sample.
pub struct PrefixRunner {
    prefix: Prefix,
    plan: std::sync::Arc<TypedRunnableModel>,
    out_len: usize,
}

impl PrefixRunner {
    /// The spec's prefix, if it has one (hash checked, plan optimised for batch 1).
    pub fn for_spec(spec: &ClientSpec) -> Result<Option<Self>, PrefixError> {
        let Some(p) = &spec.prefix else { return Ok(None) };
        let bytes = p.onnx_bytes()?;
        let mut shape = vec![1usize];
        shape.extend_from_slice(&p.input_shape);
        let load = |e: TractError| PrefixError::Load(format!("{e:#}"));
        let plan = tract_onnx::onnx()
            .model_for_read(&mut &bytes[..])
            .map_err(load)?
            .with_input_fact(0, f32::fact(&shape).into())
            .map_err(load)?
            .into_optimized()
            .map_err(load)?
            .into_runnable()
            .map_err(load)?;
        let out_len = spec.input.shape.iter().product();
        Ok(Some(PrefixRunner { prefix: p.clone(), plan, out_len }))
    }

    /// Values of one original sample.
    pub fn input_len(&self) -> usize {
        self.prefix.input_len()
    }

    /// One original sample (flattened, row-major) → the prefix's output, the values the
    /// spec's `input` lays out and encrypts.
    pub fn run(&self, x: &[f64]) -> Result<Vec<f64>, PrefixError> {
        let n = self.input_len();
        if x.len() != n {
            return Err(PrefixError::Input(format!(
                "the sample has {} values; this split model takes the original input '{}' of shape {:?} ({n} values)",
                x.len(),
                self.prefix.input_name,
                self.prefix.input_shape
            )));
        }
        if let Some(bad) = x.iter().position(|v| !v.is_finite()) {
            return Err(PrefixError::Input(format!("value {bad} of the input is not finite")));
        }
        let mut shape = vec![1usize];
        shape.extend_from_slice(&self.prefix.input_shape);
        let data: Vec<f32> = x.iter().map(|&v| v as f32).collect();
        let run = |e: TractError| PrefixError::Run(format!("{e:#}"));
        let t = Tensor::from_shape(&shape, &data).map_err(run)?;
        let out = self.plan.run(tvec!(t.into())).map_err(run)?;
        let first = out.first().ok_or_else(|| PrefixError::Run("no output".into()))?;
        let v: Vec<f64> = first.to_plain_array_view::<f32>().map_err(run)?.iter().map(|&v| f64::from(v)).collect();
        if v.len() != self.out_len {
            return Err(PrefixError::Run(format!(
                "the prefix gave {} values, the encrypted part takes {}",
                v.len(),
                self.out_len
            )));
        }
        Ok(v)
    }
}

/// The values to encrypt for one sample: the prefix's output for a split model, the
/// sample itself otherwise.
pub fn encrypted_part(runner: Option<&PrefixRunner>, x: &[f64]) -> Result<Vec<f64>, PrefixError> {
    match runner {
        Some(r) => r.run(x),
        None => Ok(x.to_vec()),
    }
}
