//! `PLAIN_INPUT`: the public features' values a request carries in clear, for models
//! compiled with `--public-features` (see `model::public`). The front ends read the
//! tensor ([`PlainInput`]); [`check`] holds it against the model, and the program adds
//! W_p·x_p to the first layer's bias plaintext (`exec`).

use thiserror::Error;

use crate::protocol::PLAIN_INPUT;

/// The datatype `PLAIN_INPUT` must have (KServe v2 / Triton name).
pub const PLAIN_DATATYPE: &str = "FP32";

/// A `PLAIN_INPUT` that cannot serve the model: the request is refused (400 /
/// INVALID_ARG), nothing else is affected.
#[derive(Debug, Error)]
pub enum PlainInputError {
    #[error("missing input tensor {PLAIN_INPUT}: this model takes {0} public features in clear beside ENCRYPTED_INPUT (FP32, shape [{0}] or [1, {0}]); heinfer clients split the sample themselves")]
    Missing(usize),
    #[error("{PLAIN_INPUT} was sent, but this model has no public features: encrypt the whole sample in ENCRYPTED_INPUT and drop {PLAIN_INPUT}")]
    Unexpected,
    #[error("{PLAIN_INPUT} has datatype {0}; it must be {PLAIN_DATATYPE}")]
    Datatype(String),
    #[error("{PLAIN_INPUT} has shape {got:?}; this model takes [{want}] or [1, {want}] (its public features, in the client spec's order)")]
    Shape { got: Vec<i64>, want: usize },
    #[error("{PLAIN_INPUT} holds {got} bytes; shape {shape:?} of {PLAIN_DATATYPE} needs {want}")]
    Bytes { got: usize, want: usize, shape: Vec<i64> },
    #[error("{PLAIN_INPUT}[{0}] is not a finite number")]
    NotFinite(usize),
}

/// A request's `PLAIN_INPUT`, as a front end read it.
#[derive(Clone, Debug)]
pub struct PlainInput {
    pub datatype: String,
    pub shape: Vec<i64>,
    pub values: Vec<f32>,
}

impl PlainInput {
    /// From the tensor's raw little-endian bytes (binary HTTP, gRPC raw contents, Triton):
    /// the datatype and the byte count are checked before anything is allocated.
    pub fn from_le_bytes(datatype: &str, shape: &[i64], raw: &[u8]) -> Result<Self, PlainInputError> {
        if datatype != PLAIN_DATATYPE {
            return Err(PlainInputError::Datatype(datatype.to_string()));
        }
        let count = shape
            .iter()
            .try_fold(1usize, |n, &d| usize::try_from(d).ok().and_then(|d| n.checked_mul(d)))
            .filter(|&n| n <= model::public::MAX_PUBLIC_FEATURES)
            .ok_or_else(|| PlainInputError::Shape { got: shape.to_vec(), want: 0 })?;
        if raw.len() != count * 4 {
            return Err(PlainInputError::Bytes { got: raw.len(), want: count * 4, shape: shape.to_vec() });
        }
        let values = raw.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes"))).collect();
        Ok(PlainInput { datatype: datatype.to_string(), shape: shape.to_vec(), values })
    }
}

/// Holds a request's `PLAIN_INPUT` against a model taking `n_public` public features
/// (0: none). Returns the values to use, if any.
pub fn check(plain: Option<PlainInput>, n_public: usize) -> Result<Option<Vec<f64>>, PlainInputError> {
    let p = match (plain, n_public) {
        (None, 0) => return Ok(None),
        (None, n) => return Err(PlainInputError::Missing(n)),
        (Some(_), 0) => return Err(PlainInputError::Unexpected),
        (Some(p), _) => p,
    };
    if p.datatype != PLAIN_DATATYPE {
        return Err(PlainInputError::Datatype(p.datatype));
    }
    let n = n_public as i64;
    if !(p.shape == [n] || p.shape == [1, n]) || p.values.len() != n_public {
        return Err(PlainInputError::Shape { got: p.shape, want: n_public });
    }
    if let Some(i) = p.values.iter().position(|v| !v.is_finite()) {
        return Err(PlainInputError::NotFinite(i));
    }
    Ok(Some(p.values.iter().map(|&v| v as f64).collect()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(datatype: &str, shape: &[i64], values: &[f32]) -> PlainInput {
        PlainInput { datatype: datatype.into(), shape: shape.to_vec(), values: values.to_vec() }
    }

    #[test]
    fn every_bad_plain_input_is_named() {
        assert!(check(None, 0).unwrap().is_none());
        assert!(matches!(check(None, 2), Err(PlainInputError::Missing(2))));
        assert!(matches!(check(Some(p("FP32", &[2], &[1.0, 2.0])), 0), Err(PlainInputError::Unexpected)));
        assert!(matches!(check(Some(p("FP64", &[2], &[1.0, 2.0])), 2), Err(PlainInputError::Datatype(_))));
        assert!(matches!(check(Some(p("FP32", &[3], &[1.0, 2.0, 3.0])), 2), Err(PlainInputError::Shape { .. })));
        assert!(matches!(check(Some(p("FP32", &[2, 1], &[1.0, 2.0])), 2), Err(PlainInputError::Shape { .. })));
        assert!(matches!(check(Some(p("FP32", &[2], &[1.0, f32::NAN])), 2), Err(PlainInputError::NotFinite(1))));
        assert_eq!(check(Some(p("FP32", &[1, 2], &[1.0, 2.0])), 2).unwrap(), Some(vec![1.0, 2.0]));
        assert!(PlainInput::from_le_bytes("FP32", &[2], &[0; 7]).is_err());
        assert!(PlainInput::from_le_bytes("INT32", &[2], &[0; 8]).is_err());
        assert!(PlainInput::from_le_bytes("FP32", &[i64::MAX, 4], &[]).is_err());
        let ok = PlainInput::from_le_bytes("FP32", &[2], &[0, 0, 128, 63, 0, 0, 0, 64]).unwrap();
        assert_eq!(ok.values, vec![1.0, 2.0]);
    }
}
