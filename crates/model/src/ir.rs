//! The HE program: a list of operations over numbered ciphertext values.
//!
//! Value `i` is the result of `program.nodes[i]` (static single assignment). Every
//! node records the level and scale its ciphertext will have, so that a runtime can
//! check each result as it goes and the model file can be validated before use.

use serde::{Deserialize, Serialize};

use crate::ModelError;

/// Index of a value: the position of the node that produces it.
pub type ValueId = u32;

/// One CKKS operation. Semantics over slot vectors (length N/2, real):
///
/// | op | result | level | scale |
/// |----|--------|-------|-------|
/// | `Input{index}` | the client's ciphertext `index` | as encrypted | as encrypted |
/// | `Add{a,b}` / `Sub{a,b}` | a ± b (same level and scale required) | = | = |
/// | `AddPlain{a,pt}` | a + plaintexts\[pt\] (encoded at a's scale) | = | = |
/// | `MulPlain{a,pt}` | a ⊙ plaintexts\[pt\] (encoded at `plaintexts[pt].scale`) | = | a·pt |
/// | `AddConst{a,c}` | a + c in every slot | = | = |
/// | `MulConst{a,c,pt_scale}` | a · c, c encoded at `pt_scale` | = | a·pt_scale |
/// | `MulRelin{a,b}` | a ⊙ b, relinearised (same level) | = | a·b |
/// | `Square{a}` | a ⊙ a, relinearised | = | a² |
/// | `Rescale{a}` | a / q_level | −1 | a / q_level |
/// | `DropLevel{a,level}` | a, with primes above `level` dropped | `level` | = |
/// | `Rotate{a,step}` | out\[j\] = a\[(j+step) mod N/2\] (needs the Galois key of `step`) | = | = |
///
/// Several `Rotate`s of the same source in a row may be computed hoisted (one
/// decomposition); the compiler emits them consecutively where it can.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Op {
    Input {
        index: u32,
    },
    Add {
        a: ValueId,
        b: ValueId,
    },
    Sub {
        a: ValueId,
        b: ValueId,
    },
    AddPlain {
        a: ValueId,
        pt: u32,
    },
    MulPlain {
        a: ValueId,
        pt: u32,
    },
    AddConst {
        a: ValueId,
        c: f64,
    },
    MulConst {
        a: ValueId,
        c: f64,
        pt_scale: f64,
    },
    MulRelin {
        a: ValueId,
        b: ValueId,
    },
    Square {
        a: ValueId,
    },
    Rescale {
        a: ValueId,
    },
    /// (`target_level` on disk: a node's own `level` field sits beside the op's.)
    DropLevel {
        a: ValueId,
        #[serde(rename = "target_level")]
        level: u32,
    },
    Rotate {
        a: ValueId,
        step: i64,
    },
}

impl Op {
    /// The values this op reads.
    pub fn operands(&self) -> Vec<ValueId> {
        match *self {
            Op::Input { .. } => vec![],
            Op::Add { a, b } | Op::Sub { a, b } | Op::MulRelin { a, b } => vec![a, b],
            Op::AddPlain { a, .. }
            | Op::MulPlain { a, .. }
            | Op::AddConst { a, .. }
            | Op::MulConst { a, .. }
            | Op::Square { a }
            | Op::Rescale { a }
            | Op::DropLevel { a, .. }
            | Op::Rotate { a, .. } => vec![a],
        }
    }
    /// Short name for reports.
    pub fn name(&self) -> &'static str {
        match self {
            Op::Input { .. } => "input",
            Op::Add { .. } => "add",
            Op::Sub { .. } => "sub",
            Op::AddPlain { .. } => "add_plain",
            Op::MulPlain { .. } => "mul_plain",
            Op::AddConst { .. } => "add_const",
            Op::MulConst { .. } => "mul_const",
            Op::MulRelin { .. } => "mul_relin",
            Op::Square { .. } => "square",
            Op::Rescale { .. } => "rescale",
            Op::DropLevel { .. } => "drop_level",
            Op::Rotate { .. } => "rotate",
        }
    }
}

/// A node: the op, the level and scale of its result, and the layer it belongs to
/// (an index into `HeModel::layers`, for reports).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Node {
    pub op: Op,
    pub level: u32,
    pub scale: f64,
    pub layer: u32,
}

/// A plaintext operand: real slot values (zero-padded to N/2), encoded once at load
/// time at `level` (it serves that level and every lower one) and `scale`.
#[derive(Clone, Debug, PartialEq)]
pub struct PlainVec {
    pub level: u32,
    pub scale: f64,
    pub values: Vec<f64>,
}

/// Relative tolerance when comparing scales (the ckks engine's own tolerance is 1e-9).
pub const SCALE_RTOL: f64 = 1e-9;

/// Whether two scales are equal within [`SCALE_RTOL`] (what `Add`/`Sub` require).
pub fn same_scale(a: f64, b: f64) -> bool {
    ((a - b) / a).abs() <= SCALE_RTOL
}

/// Checks that every node's operands exist and precede it, that the recorded level and
/// scale follow from the op's semantics, and that every constraint the engine will
/// enforce holds (equal levels and scales for additions, no rescale below level 0,
/// scales below the modulus). `q` are the ciphertext primes, `slots` = N/2.
pub fn validate_program(
    nodes: &[Node],
    plaintexts: &[PlainVec],
    q: &[u64],
    slots: usize,
    inputs: &[(u32, f64)],
) -> Result<(), ModelError> {
    let bad = |i: usize, why: String| ModelError::Invalid(format!("node {i}: {why}"));
    for (p, pt) in plaintexts.iter().enumerate() {
        if pt.values.len() > slots {
            return Err(ModelError::Invalid(format!("plaintext {p} has {} values > {slots} slots", pt.values.len())));
        }
        if pt.level as usize >= q.len() || !pt.scale.is_finite() || pt.scale < 1.0 {
            return Err(ModelError::Invalid(format!("plaintext {p}: bad level or scale")));
        }
        if pt.values.iter().any(|v| !v.is_finite()) {
            return Err(ModelError::Invalid(format!("plaintext {p}: non-finite value")));
        }
    }
    for (i, n) in nodes.iter().enumerate() {
        for o in n.op.operands() {
            if o as usize >= i {
                return Err(bad(i, format!("operand {o} does not precede it")));
            }
        }
        if n.level as usize >= q.len() {
            return Err(bad(i, format!("level {} beyond the chain", n.level)));
        }
        if !n.scale.is_finite() || n.scale < 1.0 {
            return Err(bad(i, "bad scale".into()));
        }
        let lv = |v: ValueId| (nodes[v as usize].level, nodes[v as usize].scale);
        let pt = |p: u32| plaintexts.get(p as usize).ok_or_else(|| bad(i, format!("no plaintext {p}")));
        let (level, scale) = match n.op {
            Op::Input { index } => {
                let &(l, s) = inputs.get(index as usize).ok_or_else(|| bad(i, format!("no input {index}")))?;
                (l, s)
            }
            Op::Add { a, b } | Op::Sub { a, b } => {
                let (la, sa) = lv(a);
                let (lb, sb) = lv(b);
                if la != lb || !same_scale(sa, sb) {
                    return Err(bad(i, format!("add of unequal levels/scales ({la},{sa}) ({lb},{sb})")));
                }
                (la, sa)
            }
            Op::AddPlain { a, pt: p } => {
                let (la, sa) = lv(a);
                let t = pt(p)?;
                if (t.level) < la || !same_scale(sa, t.scale) {
                    return Err(bad(i, "add_plain operand level/scale mismatch".into()));
                }
                (la, sa)
            }
            Op::MulPlain { a, pt: p } => {
                let (la, sa) = lv(a);
                let t = pt(p)?;
                if t.level < la {
                    return Err(bad(i, "plaintext below the ciphertext's level".into()));
                }
                (la, sa * t.scale)
            }
            Op::AddConst { a, c } => {
                if !c.is_finite() {
                    return Err(bad(i, "non-finite constant".into()));
                }
                lv(a)
            }
            Op::MulConst { a, c, pt_scale } => {
                if !c.is_finite() || !pt_scale.is_finite() || pt_scale < 1.0 {
                    return Err(bad(i, "bad constant or scale".into()));
                }
                let (la, sa) = lv(a);
                (la, sa * pt_scale)
            }
            Op::MulRelin { a, b } => {
                let (la, sa) = lv(a);
                let (lb, sb) = lv(b);
                if la != lb {
                    return Err(bad(i, "mul_relin of unequal levels".into()));
                }
                (la, sa * sb)
            }
            Op::Square { a } => {
                let (la, sa) = lv(a);
                (la, sa * sa)
            }
            Op::Rescale { a } => {
                let (la, sa) = lv(a);
                if la == 0 {
                    return Err(bad(i, "rescale at level 0".into()));
                }
                (la - 1, sa / q[la as usize] as f64)
            }
            Op::DropLevel { a, level } => {
                let (la, sa) = lv(a);
                if level > la {
                    return Err(bad(i, "drop_level raises the level".into()));
                }
                (level, sa)
            }
            Op::Rotate { a, step } => {
                if step.unsigned_abs() as usize >= slots || step == 0 {
                    return Err(bad(i, format!("rotation step {step} out of range")));
                }
                lv(a)
            }
        };
        if level != n.level || !same_scale(scale, n.scale) {
            return Err(bad(
                i,
                format!(
                    "recorded (level {}, scale 2^{:.3}) but op gives ({level}, 2^{:.3})",
                    n.level,
                    n.scale.log2(),
                    scale.log2()
                ),
            ));
        }
        let log_q: f64 = q[..=level as usize].iter().map(|&p| (p as f64).log2()).sum();
        if scale.log2() >= log_q - 1.0 {
            return Err(bad(i, format!("scale 2^{:.1} overflows the modulus 2^{log_q:.1}", scale.log2())));
        }
    }
    Ok(())
}
