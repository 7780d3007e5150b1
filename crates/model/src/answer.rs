//! Compact answers (`compile --answer compact`): where the server cuts each answer
//! (`ckks::AnswerShape`: a subring of degree N' and a modulus 2^log_q), and the
//! analysis that says whether a subring holds the answer.
//!
//! An answer can be folded into degree N' only if its slots repeat with a period
//! dividing N'/2 (`ckks::answer`). [`output_period`] proves that on the program: a
//! periodic input stays periodic through additions, products and rotations, and with a
//! plaintext operand the period is the larger of the two (periods are powers of two).
//! Nothing is assumed of the values: the unused slots of a periodic layout are copies.

use serde::{Deserialize, Serialize};

use crate::ir::Op;
use crate::HeModel;

/// Where the server cuts each answer; the client decrypts with the same.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnswerSpec {
    /// log2 N'; below the parameters' log2 N the bundle carries an answer key.
    pub log_n: u32,
    /// The answer's modulus is 2^log_q.
    pub log_q: u32,
}

impl AnswerSpec {
    /// The engine's shape.
    pub fn shape(&self) -> ckks::AnswerShape {
        ckks::AnswerShape { log_n: self.log_n, log_q: self.log_q }
    }
}

/// The smallest power of two P with v[j] = v[j mod P] for all j < `slots` (missing
/// values are zero).
pub fn period_of(v: &[f64], slots: usize) -> usize {
    period_by(slots, |j| v.get(j).copied().unwrap_or(0.0).to_bits())
}

fn period_by<T: PartialEq>(slots: usize, at: impl Fn(usize) -> T) -> usize {
    let mut p = 1;
    while p < slots && !(p..slots).all(|j| at(j) == at(j % p)) {
        p *= 2;
    }
    p
}

/// The largest period of the model's answer ciphertexts (N/2 where nothing repeats), as
/// the program proves it (see the module's text). A model with public features, whose
/// clear part the server adds outside the program, is not analysed: N/2.
pub fn output_period(m: &HeModel) -> usize {
    let slots = m.slots();
    if m.public.is_some() {
        return slots;
    }
    let input_period = |i: usize| -> usize {
        // A compact query is unpacked (or its first layer's outputs packed) with its period
        // in every slot; otherwise the client fills the slots as the slot map says.
        if let Some(c) = &m.client.input.compact {
            return (c.period as usize).min(slots);
        }
        m.client.input.slot_map.get(i).map_or(slots, |map| period_by(slots, |j| map.get(j).copied().unwrap_or(-1)))
    };
    let plain: Vec<usize> = m.plaintexts.iter().map(|p| period_of(&p.values, slots)).collect();
    let mut period: Vec<usize> = Vec::with_capacity(m.nodes.len());
    for n in &m.nodes {
        let of = |v: u32| period.get(v as usize).copied().unwrap_or(slots);
        let p = match n.op {
            Op::Input { index } => input_period(index as usize),
            Op::Add { a, b } | Op::Sub { a, b } | Op::MulRelin { a, b } => of(a).max(of(b)),
            Op::AddPlain { a, pt } | Op::MulPlain { a, pt } => {
                of(a).max(plain.get(pt as usize).copied().unwrap_or(slots))
            }
            Op::AddConst { a, .. }
            | Op::MulConst { a, .. }
            | Op::Square { a }
            | Op::Rescale { a }
            | Op::DropLevel { a, .. }
            | Op::Rotate { a, .. } => of(a),
        };
        period.push(p);
    }
    m.outputs.iter().map(|&o| period.get(o as usize).copied().unwrap_or(slots)).max().unwrap_or(slots)
}
