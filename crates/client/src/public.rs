//! Public features (`compile --public-features`): the client sends their values in
//! clear in `PLAIN_INPUT` beside the ciphertext, which holds only the other features.
//! The user passes the whole sample; the split is the client spec's.

use model::ClientSpec;

/// `PLAIN_INPUT`'s values for one whole sample (flattened, row-major), in the client
/// spec's order; None for a model that encrypts its whole input (send no `PLAIN_INPUT`).
/// The ciphertext for the same sample comes from `Session::encrypt(x)` unchanged: the
/// slot map never places a public feature.
pub fn plain_values(spec: &ClientSpec, x: &[f64]) -> Option<Vec<f32>> {
    if spec.public_features.is_empty() {
        return None;
    }
    Some(model::public::split_sample(&spec.public_features, x).into_iter().map(|v| v as f32).collect())
}

/// Little-endian FP32 bytes of [`plain_values`] (the binary form KServe v2 and Triton
/// carry).
pub fn plain_bytes(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}
