//! A compact query's first layer applied before packing (`compile --query compact`, when
//! it is cheaper than packing the inputs).
//!
//! The client sends its n input values as a ring query (`rlwe::LweQuery::is_ring`: one word
//! per value, like an LWE query). The server applies the first linear layer to the query
//! keylessly (`rlwe::pack_linear`: each output's LWE ciphertext is a product of the
//! query's ring element by that output's weights, Cheetah-style coefficient encoding),
//! and packs the layer's *outputs* (`ckks::Evaluator::unpack_linear`): a tree of
//! `period` leaves instead of one per input, and no rotation for the layer itself.
//!
//! The weights stay on the server (in `model.hem`, never in the client spec). The layer's
//! bias is the program's first `add_plain`; the program's input is the layer's output laid
//! out with period `period` (slot j holds output j mod period), one level below the query.

use serde::{Deserialize, Serialize};

use crate::{HeModel, ModelError};

/// Version of [`PackedFirstLayer`]'s layout; a reader refuses one it does not know.
pub const FIRST_LAYER_VERSION: u32 = 1;

/// The first layer's weights, applied to a ring query before packing.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PackedFirstLayer {
    pub version: u32,
    /// Values in a query (the layer's inputs).
    pub n_in: u32,
    /// The layer's outputs.
    pub n_out: u32,
    /// The program input's period: a power of two ≥ `n_out`, the packing tree's leaves.
    pub period: u32,
    /// W, row-major: `n_out` rows of `n_in` weights.
    pub weights: Vec<f64>,
}

impl PackedFirstLayer {
    /// W·x laid out as the program's input: slot j holds output j mod period (zero past
    /// `n_out`), over `slots` slots. The plaintext simulator's first step.
    pub fn slot_values(&self, x: &[f64], slots: usize) -> Vec<f64> {
        let (n_in, period) = (self.n_in as usize, self.period as usize);
        let y: Vec<f64> =
            self.weights.chunks_exact(n_in).map(|row| row.iter().zip(x).map(|(w, v)| w * v).sum()).collect();
        (0..slots).map(|j| y.get(j % period).copied().unwrap_or(0.0)).collect()
    }

    /// The integer matrix the server packs with: `period` rows of `n_in`, row r the
    /// compact-query coefficient r of W's columns (`ckks::compact_query_transform`) at
    /// `scale` (the prime the packing's rescale drops), rounded.
    pub fn matrix(&self, scale: f64) -> Result<Vec<i64>, ModelError> {
        let (n_in, n_out, period) = (self.n_in as usize, self.n_out as usize, self.period as usize);
        let mut m = vec![0i64; period * n_in];
        for i in 0..n_in {
            let col: Vec<f64> = (0..n_out).map(|r| self.weights[r * n_in + i]).collect();
            let coeffs = ckks::compact_query_transform(&col, period, scale)
                .map_err(|e| ModelError::Invalid(format!("first layer before packing: {e}")))?;
            for (r, v) in coeffs.into_iter().enumerate() {
                if !v.is_finite() || v.abs() >= 2f64.powi(62) {
                    return Err(ModelError::Invalid(format!(
                        "first layer before packing: weight coefficient {v:e} does not fit 63 bits"
                    )));
                }
                m[r * n_in + i] = v.round() as i64;
            }
        }
        Ok(m)
    }

    /// Checks the layer against its model (the file reader runs it).
    pub fn validate(&self, m: &HeModel) -> Result<(), ModelError> {
        let bad = |why: String| Err(ModelError::Invalid(format!("first layer before packing: {why}")));
        if self.version != FIRST_LAYER_VERSION {
            return Err(ModelError::Version { found: self.version, supported: FIRST_LAYER_VERSION });
        }
        let (n_in, n_out, period) = (self.n_in as usize, self.n_out as usize, self.period as usize);
        let n = 2 * m.slots();
        if n_in == 0 || n_in > n || n_out == 0 || n_out > period || !period.is_power_of_two() || 2 * period > n {
            return bad(format!("{n_in} inputs, {n_out} outputs, period {period} (N = {n})"));
        }
        if self.weights.len() != n_in * n_out || self.weights.iter().any(|w| !w.is_finite()) {
            return bad(format!("{} weights for {n_out} x {n_in}, or one not finite", self.weights.len()));
        }
        match &m.client.input.compact {
            Some(c) if c.ring_values == Some(self.n_in) && c.period == self.period => {}
            _ => return bad("the client spec does not ask for a ring query of its inputs at its period".into()),
        }
        if m.client.input.level == 0 {
            return bad("the query is at level 0, with no level for the packing's rescale".into());
        }
        Ok(())
    }
}
