//! Split inference (`compile --split-at`): the public prefix of a model that the client
//! runs in clear before encrypting. The client spec carries the prefix's ONNX bytes
//! (base64) and their SHA-256; the bytes are checked against the hash before anything
//! reads them, so a spec whose prefix was altered in transit is refused, not run.

use base64::Engine;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::ModelError;

/// Largest prefix a client accepts from a spec (base64 characters): a bound on what it
/// decodes for a spec it did not write. A prefix is a few public layers, not a backbone
/// of hundreds of megabytes (those belong in a file the client already has).
pub const MAX_PREFIX_BASE64: usize = 64 << 20;

/// The client-side prefix of a split model.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Prefix {
    /// The original model's input: what the user passes (without the batch dimension).
    pub input_name: String,
    pub input_shape: Vec<usize>,
    /// The tensor where the graph was cut: the prefix's output, the suffix's input.
    pub cut: String,
    /// The ONNX nodes that run in clear on the client, in order.
    pub nodes: Vec<String>,
    /// The prefix as a serialized ONNX ModelProto, base64 (standard alphabet, padded).
    pub onnx_base64: String,
    /// Lower-case hex SHA-256 of the ONNX bytes.
    pub sha256: String,
}

impl Prefix {
    /// A prefix over these ONNX bytes (the hash is computed here).
    pub fn new(input_name: String, input_shape: Vec<usize>, cut: String, nodes: Vec<String>, onnx: &[u8]) -> Self {
        Prefix {
            input_name,
            input_shape,
            cut,
            nodes,
            onnx_base64: base64::engine::general_purpose::STANDARD.encode(onnx),
            sha256: sha256_hex(onnx),
        }
    }

    /// The ONNX bytes, after checking them against `sha256`.
    pub fn onnx_bytes(&self) -> Result<Vec<u8>, ModelError> {
        self.check_sizes()?;
        let bytes = base64::engine::general_purpose::STANDARD.decode(&self.onnx_base64).map_err(|e| {
            ModelError::Invalid(format!(
                "client spec: the split prefix is not valid base64 ({e}); fetch the spec again"
            ))
        })?;
        let got = sha256_hex(&bytes);
        if got != self.sha256.to_ascii_lowercase() {
            return Err(ModelError::Invalid(format!(
                "client spec: the split prefix's SHA-256 is {got}, the spec says {}: the prefix was altered or \
                 corrupted; refusing to run it (fetch the spec again from the model's owner)",
                self.sha256
            )));
        }
        Ok(bytes)
    }

    /// Bounds checked before decoding (and by `ClientSpec::validate`).
    pub fn check_sizes(&self) -> Result<(), ModelError> {
        let bad = |w: String| Err(ModelError::Invalid(format!("client spec: split prefix: {w}")));
        if self.onnx_base64.len() > MAX_PREFIX_BASE64 {
            return bad(format!(
                "{} base64 characters, more than the {MAX_PREFIX_BASE64} accepted",
                self.onnx_base64.len()
            ));
        }
        if self.sha256.len() != 64 || !self.sha256.bytes().all(|c| c.is_ascii_hexdigit()) {
            return bad("sha256 is not 64 hex digits".into());
        }
        let n = self.input_shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
        if !n.is_some_and(|n| n > 0 && n <= 1 << 28) {
            return bad(format!("input shape {:?} is empty or too large", self.input_shape));
        }
        Ok(())
    }

    /// Values of one original sample (the product of `input_shape`).
    pub fn input_len(&self) -> usize {
        self.input_shape.iter().product()
    }
}

/// Lower-case hex SHA-256.
pub fn sha256_hex(b: &[u8]) -> String {
    Sha256::digest(b).iter().map(|x| format!("{x:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn altered_prefix_is_refused() {
        let p = Prefix::new("x".into(), vec![2], "c".into(), vec!["n".into()], b"onnx bytes");
        assert_eq!(p.onnx_bytes().unwrap(), b"onnx bytes");
        let mut q = p.clone();
        q.onnx_base64 = base64::engine::general_purpose::STANDARD.encode(b"other bytes");
        assert!(q.onnx_bytes().unwrap_err().to_string().contains("SHA-256"));
        let mut r = p;
        r.sha256 = "zz".into();
        assert!(r.onnx_bytes().is_err());
    }
}
