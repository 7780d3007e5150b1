//! The BYTES tensor encoding that Triton and KServe v2 use for `ENCRYPTED_INPUT`,
//! `KEY_ID`, `EVALUATION_KEYS` and `ENCRYPTED_OUTPUT`: each element is a 4-byte
//! little-endian length followed by that many bytes, elements back to back. Both
//! front ends (the Triton backend and `heinfer serve`) read and write it here.

use thiserror::Error;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum TensorError {
    #[error("BYTES tensor {name}: element {index} claims {claimed} bytes but only {left} remain (truncated or not length-prefixed)")]
    Truncated { name: String, index: usize, claimed: usize, left: usize },
    #[error("BYTES tensor {name}: element {index} has a partial 4-byte length prefix")]
    PartialLength { name: String, index: usize },
    #[error("BYTES tensor {name}: its shape says {expected} elements, its data holds {found}")]
    Count { name: String, expected: usize, found: usize },
}

/// Splits a BYTES tensor into its elements, borrowing from `data`. `expected`, when
/// given (the element count from the tensor's shape), must match exactly.
pub fn split_bytes<'a>(name: &str, data: &'a [u8], expected: Option<usize>) -> Result<Vec<&'a [u8]>, TensorError> {
    let mut out = Vec::new();
    let mut rest = data;
    while !rest.is_empty() {
        let index = out.len();
        if rest.len() < 4 {
            return Err(TensorError::PartialLength { name: name.into(), index });
        }
        let claimed = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        rest = &rest[4..];
        if claimed > rest.len() {
            return Err(TensorError::Truncated { name: name.into(), index, claimed, left: rest.len() });
        }
        out.push(&rest[..claimed]);
        rest = &rest[claimed..];
        if let Some(e) = expected {
            // Stop early on a flood of empty elements rather than growing without bound.
            if out.len() > e {
                return Err(TensorError::Count { name: name.into(), expected: e, found: out.len() });
            }
        }
    }
    if let Some(e) = expected {
        if out.len() != e {
            return Err(TensorError::Count { name: name.into(), expected: e, found: out.len() });
        }
    }
    Ok(out)
}

/// Bytes needed to hold these elements as a BYTES tensor.
pub fn encoded_len<B: AsRef<[u8]>>(elements: &[B]) -> usize {
    elements.iter().map(|e| 4 + e.as_ref().len()).sum()
}

/// Writes elements as a BYTES tensor into `out`, which must be exactly
/// [`encoded_len`] bytes long (a front end's preallocated output buffer).
pub fn write_bytes_into<B: AsRef<[u8]>>(elements: &[B], out: &mut [u8]) {
    assert_eq!(out.len(), encoded_len(elements), "output buffer sized by encoded_len");
    let mut at = 0;
    for e in elements {
        let e = e.as_ref();
        out[at..at + 4].copy_from_slice(&(e.len() as u32).to_le_bytes());
        out[at + 4..at + 4 + e.len()].copy_from_slice(e);
        at += 4 + e.len();
    }
}

/// Elements as a new BYTES tensor.
pub fn join_bytes<B: AsRef<[u8]>>(elements: &[B]) -> Vec<u8> {
    let mut out = vec![0; encoded_len(elements)];
    write_bytes_into(elements, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_errors() {
        let els: Vec<Vec<u8>> = vec![b"abc".to_vec(), vec![], vec![7; 300]];
        let data = join_bytes(&els);
        assert_eq!(data.len(), 4 + 3 + 4 + 4 + 300);
        let back = split_bytes("T", &data, Some(3)).unwrap();
        assert_eq!(back, els.iter().map(|e| &e[..]).collect::<Vec<_>>());
        assert!(matches!(split_bytes("T", &data, Some(2)), Err(TensorError::Count { expected: 2, .. })));
        assert!(matches!(
            split_bytes("T", &data[..data.len() - 1], None),
            Err(TensorError::Truncated { index: 2, .. })
        ));
        assert!(matches!(split_bytes("T", &data[..9], None), Err(TensorError::PartialLength { index: 1, .. })));
        assert_eq!(split_bytes("T", &[], Some(0)).unwrap().len(), 0);
        // A length prefix pointing past the end is refused, not trusted.
        assert!(split_bytes("T", &[0xff, 0xff, 0xff, 0xff, 1], None).is_err());
    }
}
