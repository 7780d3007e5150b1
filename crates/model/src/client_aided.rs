//! Client-aided refresh (`compile --client-aided`): a CKKS model too deep for one
//! parameter set, cut at its non-linear activations into SEGMENTS, each an ordinary
//! model (`<name>__seg0`, `<name>__seg1`, …) served unchanged. Between two segments the
//! client decrypts, runs the exact activation in clear (a small ONNX graph, hashed like
//! a split prefix), re-encrypts with fresh randomness and calls the next segment. The
//! server keeps nothing between calls: an abandoned exchange leaves nothing behind.
//!
//! Every segment's spec carries the same manifest, with its own `index`, so that a
//! client holding any segment's spec knows the whole exchange.

use serde::{Deserialize, Serialize};

use crate::prefix::Prefix;
use crate::ModelError;

/// Most segments a manifest may list (a bound on what a client allocates for a spec it
/// did not write; a real model has a handful).
pub const MAX_SEGMENTS: usize = 256;

/// The exchange a client-aided model's client drives.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClientAided {
    /// This segment's position in `segments`.
    pub index: u32,
    /// The segments' model names, in the order the client calls them.
    pub segments: Vec<String>,
    /// `clear[k]` runs on the client, in clear, between segment k's decrypted output and
    /// segment k+1's input (one fewer than `segments`). Its `input_shape` is segment k's
    /// output shape (no batch); its `cut` is the tensor segment k+1 reads.
    pub clear: Vec<Prefix>,
}

impl ClientAided {
    /// Bounds checked before a client uses the manifest (and by `ClientSpec::validate`).
    pub fn check(&self) -> Result<(), ModelError> {
        let bad = |w: String| Err(ModelError::Invalid(format!("client spec: client-aided manifest: {w}")));
        if self.segments.len() < 2 || self.segments.len() > MAX_SEGMENTS {
            return bad(format!("{} segments (2..={MAX_SEGMENTS} allowed)", self.segments.len()));
        }
        if self.clear.len() + 1 != self.segments.len() {
            return bad(format!(
                "{} clear steps between {} segments (one fewer expected); fetch the spec again",
                self.clear.len(),
                self.segments.len()
            ));
        }
        if self.index as usize >= self.segments.len() {
            return bad(format!("index {} past the {} segments", self.index, self.segments.len()));
        }
        for c in &self.clear {
            c.check_sizes()?;
        }
        Ok(())
    }

    /// The next segment's model name after this one (None for the last).
    pub fn next(&self) -> Option<&str> {
        self.segments.get(self.index as usize + 1).map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest() -> ClientAided {
        let relu = Prefix::new("h".into(), vec![4], "a".into(), vec!["relu1".into()], b"onnx");
        ClientAided { index: 0, segments: vec!["m__seg0".into(), "m__seg1".into()], clear: vec![relu] }
    }

    #[test]
    fn manifest_bounds_are_checked() {
        let m = manifest();
        m.check().unwrap();
        assert_eq!(m.next(), Some("m__seg1"));
        let mut no_clear = m.clone();
        no_clear.clear.clear();
        assert!(no_clear.check().unwrap_err().to_string().contains("one fewer"));
        let mut past = m.clone();
        past.index = 2;
        assert!(past.check().is_err());
        let mut one = m;
        one.segments.truncate(1);
        assert!(one.check().is_err());
    }
}
