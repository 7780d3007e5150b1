//! Affine maps over flattened tensors: what every linear op imports to, so that
//! consecutive ones compose into one before packing.

use std::collections::HashMap;

/// y = W x + b over flattened (row-major) tensors; W as sparse rows.
#[derive(Clone, Debug)]
pub struct Affine {
    pub n_in: usize,
    pub rows: Vec<Vec<(u32, f64)>>,
    pub bias: Vec<f64>,
}

impl Affine {
    pub fn identity(n: usize) -> Self {
        Affine { n_in: n, rows: (0..n).map(|i| vec![(i as u32, 1.0)]).collect(), bias: vec![0.0; n] }
    }
    pub fn n_out(&self) -> usize {
        self.rows.len()
    }
    pub fn apply(&self, x: &[f64]) -> Vec<f64> {
        self.rows
            .iter()
            .zip(&self.bias)
            .map(|(r, b)| b + r.iter().map(|&(i, w)| w * x[i as usize]).sum::<f64>())
            .collect()
    }
    /// x ↦ self(x) + sign·other(x) (both over the same input).
    pub fn plus(&self, other: &Affine, sign: f64) -> Affine {
        let rows = self
            .rows
            .iter()
            .zip(&other.rows)
            .map(|(r, o)| {
                let mut acc: std::collections::BTreeMap<u32, f64> = r.iter().copied().collect();
                for &(i, w) in o {
                    *acc.entry(i).or_insert(0.0) += sign * w;
                }
                acc.into_iter().filter(|e| e.1 != 0.0).collect()
            })
            .collect();
        let bias = self.bias.iter().zip(&other.bias).map(|(a, b)| a + sign * b).collect();
        Affine { n_in: self.n_in, rows, bias }
    }
    /// self ∘ inner: x ↦ self(inner(x)).
    pub fn compose(&self, inner: &Affine) -> Affine {
        let mut acc: HashMap<u32, f64> = HashMap::new();
        let rows = self
            .rows
            .iter()
            .map(|r| {
                acc.clear();
                for &(j, w) in r {
                    for &(i, v) in &inner.rows[j as usize] {
                        *acc.entry(i).or_insert(0.0) += w * v;
                    }
                }
                let mut row: Vec<(u32, f64)> = acc.iter().filter(|(_, v)| **v != 0.0).map(|(&i, &v)| (i, v)).collect();
                row.sort_unstable_by_key(|e| e.0);
                row
            })
            .collect();
        let bias = self
            .rows
            .iter()
            .zip(&self.bias)
            .map(|(r, b)| b + r.iter().map(|&(j, w)| w * inner.bias[j as usize]).sum::<f64>())
            .collect();
        Affine { n_in: inner.n_in, rows, bias }
    }
}
