//! Public features (`compile --public-features`): input features the client sends in
//! clear beside the ciphertext.
//!
//! The first linear layer y = W·x + b splits into W_e·x_e + (W_p·x_p + b): the
//! ciphertext holds only the encrypted features x_e (the client's slot map never names
//! a public one), and the server computes W_p·x_p in f64 for each request and adds it
//! to the first layer's bias plaintext, in the layer's output layout. The bias is an
//! `AddPlain` the program has anyway: no level, no rotation, no key.
//!
//! The weights W_p stay on the server (in `model.hem`, never in the client spec); the
//! client spec carries only which features are public (`ClientSpec::public_features`).

use serde::{Deserialize, Serialize};

use crate::ir::{Op, PlainVec};
use crate::{HeModel, ModelError};

/// Version of [`PublicPart`]'s layout; a reader refuses one it does not know (rather
/// than serve a model whose public half it would silently drop).
pub const PUBLIC_PART_VERSION: u32 = 1;

/// Largest number of public features (a bound on what a request may make the server
/// allocate and compute).
pub const MAX_PUBLIC_FEATURES: usize = 1 << 16;

/// The server's half of the public features: the weights of the public columns and
/// where their product goes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PublicPart {
    pub version: u32,
    /// Public input features (flattened indices, ascending); equal to the client
    /// spec's `public_features`.
    pub indices: Vec<u32>,
    /// W_p, row-major: `n_out` rows of `indices.len()` weights.
    pub weights: Vec<f64>,
    pub n_out: u32,
    /// The plaintext holding the first layer's bias (read by exactly one `AddPlain`).
    pub bias_pt: u32,
    /// For each slot of the first layer's output, the output it holds (or < 0).
    pub layout: Vec<i32>,
}

impl PublicPart {
    pub fn n_public(&self) -> usize {
        self.indices.len()
    }

    /// W_p·x_p (one value per output of the first layer).
    pub fn product(&self, x_pub: &[f64]) -> Result<Vec<f64>, ModelError> {
        let k = self.indices.len();
        if x_pub.len() != k {
            return Err(ModelError::Shape(format!(
                "PLAIN_INPUT has {} values; this model takes {k} public features (indices {:?})",
                x_pub.len(),
                short(&self.indices)
            )));
        }
        if let Some(i) = x_pub.iter().position(|v| !v.is_finite()) {
            return Err(ModelError::Shape(format!("PLAIN_INPUT[{i}] is not a finite number")));
        }
        Ok(self.weights.chunks_exact(k.max(1)).map(|row| row.iter().zip(x_pub).map(|(w, x)| w * x).sum()).collect())
    }

    /// The bias plaintext's slot values for one request: b + W_p·x_p in the first
    /// layer's output layout (`base` is the compiled bias plaintext).
    pub fn bias_values(&self, base: &PlainVec, x_pub: &[f64], slots: usize) -> Result<Vec<f64>, ModelError> {
        let c = self.product(x_pub)?;
        let mut v = base.values.clone();
        v.resize(slots, 0.0);
        for (slot, &o) in self.layout.iter().enumerate().take(slots) {
            if o >= 0 {
                v[slot] += c[o as usize];
            }
        }
        Ok(v)
    }

    /// Checks the part against its model (the file reader runs it).
    pub fn validate(&self, m: &HeModel) -> Result<(), ModelError> {
        let bad = |why: String| Err(ModelError::Invalid(format!("public features: {why}")));
        if self.version != PUBLIC_PART_VERSION {
            return Err(ModelError::Version { found: self.version, supported: PUBLIC_PART_VERSION });
        }
        let k = self.indices.len();
        if k == 0 || k > MAX_PUBLIC_FEATURES {
            return bad(format!("{k} public features"));
        }
        if self.indices != m.client.public_features {
            return bad("the client spec names other public features than the model".into());
        }
        let elems: usize = m.client.input.shape.iter().product();
        if self.indices.windows(2).any(|w| w[0] >= w[1]) || self.indices.last().is_some_and(|&i| i as usize >= elems) {
            return bad("indices not ascending or beyond the input".into());
        }
        if self.weights.len() != k * self.n_out as usize || self.weights.iter().any(|w| !w.is_finite()) {
            return bad("weights do not fit the outputs × public features".into());
        }
        if self.layout.len() > m.slots() || self.layout.iter().any(|&o| o >= self.n_out as i32) {
            return bad("output layout out of range".into());
        }
        if m.plaintexts.get(self.bias_pt as usize).is_none() {
            return bad(format!("no plaintext {}", self.bias_pt));
        }
        let readers = m.nodes.iter().filter(|n| matches!(n.op, Op::AddPlain { pt, .. } if pt == self.bias_pt)).count();
        let others = m.nodes.iter().filter(|n| matches!(n.op, Op::MulPlain { pt, .. } if pt == self.bias_pt)).count();
        if readers != 1 || others != 0 {
            return bad("the bias plaintext is not read by exactly one addition".into());
        }
        if m.client.input.slot_map.iter().flatten().any(|&i| i >= 0 && self.indices.binary_search(&(i as u32)).is_ok())
        {
            return bad("a public feature is also encrypted".into());
        }
        Ok(())
    }
}

/// The encrypted program's output for one sample in f64, public features included:
/// what decrypting the server's answer gives, up to CKKS noise.
pub fn simulate_public(m: &HeModel, inputs: &[Vec<f64>], x_pub: Option<&[f64]>) -> Result<Vec<Vec<f64>>, ModelError> {
    let slots = m.slots();
    let mut plains: Vec<Vec<f64>> = m
        .plaintexts
        .iter()
        .map(|p| {
            let mut v = p.values.clone();
            v.resize(slots, 0.0);
            v
        })
        .collect();
    match (&m.public, x_pub) {
        (Some(part), Some(x)) => {
            plains[part.bias_pt as usize] = part.bias_values(&m.plaintexts[part.bias_pt as usize], x, slots)?
        }
        (Some(_), None) => return Err(ModelError::Shape("this model takes public features in clear".into())),
        (None, Some(_)) => return Err(ModelError::Shape("this model has no public features".into())),
        (None, None) => {}
    }
    let ops: Vec<Op> = m.nodes.iter().map(|n| n.op.clone()).collect();
    let vals = crate::sim::run(&ops, &plains, &crate::sim::program_inputs(m, inputs), slots)?;
    Ok(m.outputs.iter().map(|&o| vals[o as usize].clone()).collect())
}

/// Parses `0-9,15,20-29` (flattened input indices, inclusive ranges) against `n` inputs:
/// ascending, without repeats.
pub fn parse_ranges(spec: &str, n: usize) -> Result<Vec<u32>, String> {
    let mut out = std::collections::BTreeSet::new();
    for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let num = |s: &str| {
            s.trim().parse::<usize>().map_err(|_| format!("'{s}' in '{part}' is not an input index (0-based integer)"))
        };
        let (a, b) = match part.split_once('-') {
            Some((a, b)) => (num(a)?, num(b)?),
            None => (num(part)?, num(part)?),
        };
        if a > b || b >= n {
            return Err(format!("'{part}' is not a range within the {n} input features (0-{})", n.saturating_sub(1)));
        }
        out.extend(a as u32..=b as u32);
    }
    if out.is_empty() {
        return Err("no public feature named".into());
    }
    if out.len() == n {
        return Err("every feature would be public: nothing left to encrypt (run the model in clear instead)".into());
    }
    Ok(out.into_iter().collect())
}

/// The public values of a full sample, in `public`'s order (what `PLAIN_INPUT` carries);
/// the encrypted part is packed from the full sample by `ClientSpec::pack_input`, whose
/// slot map names no public feature.
pub fn split_sample(public: &[u32], x: &[f64]) -> Vec<f64> {
    public.iter().map(|&i| x.get(i as usize).copied().unwrap_or(0.0)).collect()
}

fn short(v: &[u32]) -> String {
    if v.len() <= 8 {
        format!("{v:?}")
    } else {
        format!("{:?}… ({} in all)", &v[..8], v.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_parse_and_refuse() {
        assert_eq!(parse_ranges("0-2, 5,7-8", 10).unwrap(), vec![0, 1, 2, 5, 7, 8]);
        assert_eq!(parse_ranges("3,1-3", 10).unwrap(), vec![1, 2, 3]);
        assert!(parse_ranges("8-12", 10).is_err());
        assert!(parse_ranges("3-1", 10).is_err());
        assert!(parse_ranges("a", 10).is_err());
        assert!(parse_ranges("", 10).is_err());
        assert!(parse_ranges("0-9", 10).is_err());
    }

    #[test]
    fn bias_values_add_the_public_product_in_the_layout() {
        let part = PublicPart {
            version: 1,
            indices: vec![1, 3],
            weights: vec![1.0, 2.0, -1.0, 0.5],
            n_out: 2,
            bias_pt: 0,
            layout: vec![0, 1, -1, 0],
        };
        let base = PlainVec { level: 0, scale: 1.0, values: vec![10.0, 20.0] };
        let v = part.bias_values(&base, &[3.0, 4.0], 4).unwrap();
        // outputs: 3 + 8 = 11, -3 + 2 = -1
        assert_eq!(v, vec![21.0, 19.0, 0.0, 11.0]);
        assert!(part.bias_values(&base, &[3.0], 4).is_err());
        assert!(part.bias_values(&base, &[3.0, f64::NAN], 4).is_err());
    }
}
