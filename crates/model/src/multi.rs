//! Layout M (multi-sample) in a compiled model: B samples in one ciphertext, sample b's
//! slot j at slot j·B + b. The program is layout L's network built for N/(2B) slots;
//! interleaving makes it run on all B samples at once with nothing but its rotation
//! steps multiplied by B (a rotation by r·B moves slot j·B + b to (j + r mod N/(2B))·B + b:
//! each sample sees a cyclic rotation of its own N/(2B) slots) and each plaintext's
//! values repeated B times. So M costs what L costs per request, for B samples.
//!
//! The server's half is [`MultiProgram`] (the file keeps its plaintexts at N/(2B) values;
//! [`HeModel::multi_model`] widens them at load); the client's half is a whole
//! [`ClientSpec`] in `client.multi`, whose input is B samples one after the other and
//! whose output is B outputs of the model, so any layout-L client code serves it.
//!
//! Layouts L and M share the parameters, and so ciphertexts, secret key and
//! relinearisation key; they differ in their Galois keys (the compiler keeps the two
//! sets distinct). A bundle therefore serves one layout, and the server runs the
//! layout its bundle is for.

use serde::{Deserialize, Serialize};

use crate::ir::{Node, Op, PlainVec, ValueId};
use crate::{HeModel, ModelError};

/// The largest B a model may declare (a bound on what a reader allocates when widening).
pub const MAX_MULTI_BATCH: u32 = 1 << 12;

/// The server's layout-M program.
#[derive(Clone, Debug, PartialEq)]
pub struct MultiProgram {
    /// B: samples per request (a power of two ≥ 2).
    pub batch: u32,
    /// The program, its rotation steps already multiplied by B.
    pub nodes: Vec<Node>,
    pub outputs: Vec<ValueId>,
    /// Plaintext operands, one value per slot of N/(2B) (repeated B times at load).
    pub plaintexts: Vec<PlainVec>,
}

/// [`MultiProgram`] in the file's metadata; its plaintexts follow layout L's in the
/// file's plaintext section, from index `first_plain` on.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct MultiMeta {
    pub batch: u32,
    pub nodes: Vec<Node>,
    pub outputs: Vec<ValueId>,
    pub first_plain: u32,
}

/// `values` (one per slot of N/(2B)) as layout M lays them out: each repeated B times,
/// value j at slots j·B … j·B + B − 1.
pub fn widen_values(values: &[f64], batch: usize) -> Vec<f64> {
    values.iter().flat_map(|&v| std::iter::repeat_n(v, batch)).collect()
}

/// A rotation step of the N/(2B)-slot program as layout M rotates.
pub fn widen_step(step: i64, batch: usize) -> i64 {
    step * batch as i64
}

impl HeModel {
    /// Layout M as a model of its own (the program on all N/2 slots, its plaintexts
    /// widened, `client.multi` as its client spec), which the runtime loads as it loads
    /// layout L; None for a model compiled without it.
    pub fn multi_model(&self) -> Option<Result<HeModel, ModelError>> {
        let m = self.multi.as_ref()?;
        Some(self.assemble(m, true))
    }

    /// Checks layout M without widening its plaintexts (the reader runs this on every
    /// file: widening would allocate B times the file's plaintexts).
    pub(crate) fn validate_multi(&self) -> Result<(), ModelError> {
        match &self.multi {
            Some(m) => self.assemble(m, false).map(drop),
            None => Ok(()),
        }
    }

    /// Layout M as a model of its own, its plaintexts widened or (`widen` false, for
    /// validation) left at one value per sample slot, which every check accepts alike.
    fn assemble(&self, m: &MultiProgram, widen: bool) -> Result<HeModel, ModelError> {
        let bad = |why: &str| Err(ModelError::Invalid(format!("layout M: {why}")));
        let Some(spec) = self.client.multi.as_deref() else {
            return bad("the model has a layout-M program but its client spec has none");
        };
        let b = m.batch as usize;
        if !m.batch.is_power_of_two() || m.batch < 2 || m.batch > MAX_MULTI_BATCH || b > self.slots() / 2 {
            return bad(&format!("{} samples per request (a power of two, 2..={})", m.batch, self.slots() / 2));
        }
        if spec.multi_batch() != Some(b) {
            return bad("the program's batch differs from its client spec's");
        }
        let l = &self.client;
        // The spec's own checks: same parameters, B samples in and out.
        l.validate()?;
        // Layout-L mechanisms the M service does not run: a file claiming both is refused.
        if l.output_dp.is_some()
            || l.circuit_privacy.is_some()
            || l.input.compact.is_some()
            || !l.public_features.is_empty()
        {
            return bad("output DP, circuit privacy, compact queries and public features are layout L's only");
        }
        // The server tells the layouts apart by their bundles' Galois keys.
        let (mut le, mut me) = (l.galois_elements.clone(), spec.galois_elements.clone());
        le.sort_unstable();
        me.sort_unstable();
        if le == me {
            return bad("its Galois keys are layout L's: a bundle could not say which layout it is for");
        }
        let narrow = self.slots() / b;
        if let Some(p) = m.plaintexts.iter().position(|p| p.values.len() > narrow) {
            return bad(&format!("plaintext {p} has more values than the {narrow} slots a sample has"));
        }
        if m.nodes.iter().any(|n| matches!(n.op, Op::Rotate { step, .. } if step % b as i64 != 0)) {
            return bad("a rotation step is not a multiple of the batch");
        }
        let plaintexts = m
            .plaintexts
            .iter()
            .map(|p| PlainVec {
                level: p.level,
                scale: p.scale,
                values: if widen { widen_values(&p.values, b) } else { p.values.clone() },
            })
            .collect();
        let wide = HeModel {
            name: self.name.clone(),
            client: spec.clone(),
            layers: self.layers.clone(),
            nodes: m.nodes.clone(),
            plaintexts,
            outputs: m.outputs.clone(),
            report: None,
            public: None,
            throughput: None,
            multi: None,
            first_layer: None,
        };
        wide.validate()?;
        Ok(wide)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn widened_rotation_is_a_rotation_of_each_sample() {
        // 8 slots, B = 2: samples [a0..a3] and [b0..b3] interleaved.
        let (b, narrow) = (2usize, 4usize);
        let a = [1.0, 2.0, 3.0, 4.0];
        let c = [10.0, 20.0, 30.0, 40.0];
        let wide: Vec<f64> = (0..narrow * b).map(|i| if i % b == 0 { a[i / b] } else { c[i / b] }).collect();
        let s = widen_step(1, b) as usize;
        let rotated: Vec<f64> = (0..wide.len()).map(|i| wide[(i + s) % wide.len()]).collect();
        let want_a: Vec<f64> = (0..narrow).map(|j| a[(j + 1) % narrow]).collect();
        let want_c: Vec<f64> = (0..narrow).map(|j| c[(j + 1) % narrow]).collect();
        let got_a: Vec<f64> = rotated.iter().step_by(b).copied().collect();
        let got_c: Vec<f64> = rotated.iter().skip(1).step_by(b).copied().collect();
        assert_eq!(got_a, want_a);
        assert_eq!(got_c, want_c);
        assert_eq!(widen_values(&[1.0, 2.0], 3), [1.0, 1.0, 1.0, 2.0, 2.0, 2.0]);
    }
}
