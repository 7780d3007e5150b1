//! Split models (`compile --split-at`) in the client commands (`run`, `bench`,
//! `encrypt`): sample files hold the ORIGINAL model's inputs; the spec's public prefix
//! turns each into the values the spec encrypts (`client::prefix`, tract).

#[cfg(feature = "split")]
use client::prefix::PrefixRunner;
use compiler::Array;
use model::ClientSpec;

/// The spec's prefix, loaded (hash checked); None for a model that was not split.
#[cfg(feature = "split")]
pub fn runner(spec: &ClientSpec) -> Result<Option<PrefixRunner>, String> {
    PrefixRunner::for_spec(spec).map_err(|e| e.to_string())
}

/// Built without tract: a model that was not split runs as before; a split one is
/// refused with what to rebuild.
#[cfg(not(feature = "split"))]
pub fn runner(spec: &ClientSpec) -> Result<Option<PrefixRunner>, String> {
    match spec.prefix {
        None => Ok(None),
        Some(_) => Err("this model was compiled with --split-at and this heinfer was built without split \
                        inference (cargo feature `split`, on by default)"
            .into()),
    }
}

/// Stands in for `client::prefix::PrefixRunner` without the `split` feature; never built.
#[cfg(not(feature = "split"))]
pub enum PrefixRunner {}

#[cfg(not(feature = "split"))]
impl PrefixRunner {
    fn input_len(&self) -> usize {
        match *self {}
    }
    fn run(&self, _: &[f64]) -> Result<Vec<f64>, String> {
        match *self {}
    }
}

/// Values of one sample as the user gives it: the original input's for a split model.
pub fn sample_len(spec: &ClientSpec) -> usize {
    spec.prefix.as_ref().map_or_else(|| spec.input.shape.iter().product(), |p| p.input_len())
}

/// One sample through the prefix (unchanged without one).
pub fn through(r: Option<&PrefixRunner>, x: &[f64]) -> Result<Vec<f64>, String> {
    #[cfg(feature = "split")]
    return client::prefix::encrypted_part(r, x).map_err(|e| e.to_string());
    #[cfg(not(feature = "split"))]
    match r {
        None => Ok(x.to_vec()),
        Some(r) => match *r {},
    }
}

/// Every sample of a file through the prefix: rows of the original input in, rows of
/// what the spec encrypts out.
pub fn through_array(spec: &ClientSpec, xs: Array) -> Result<Array, String> {
    let Some(r) = runner(spec)? else { return Ok(xs) };
    let n = r.input_len();
    if xs.data.is_empty() || !xs.data.len().is_multiple_of(n) {
        return Err(format!(
            "the input file has shape {:?}; this split model takes samples of its original input ({n} values each), \
             which the client runs through the public prefix",
            xs.shape
        ));
    }
    let rows = xs.data.len() / n;
    let mut data = Vec::new();
    for i in 0..rows {
        data.extend(r.run(&xs.data[i * n..(i + 1) * n]).map_err(|e| format!("sample {i}: {e}"))?);
    }
    let mut shape = vec![rows];
    shape.extend_from_slice(&spec.input.shape);
    Ok(Array { shape, data })
}
