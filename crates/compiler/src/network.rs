//! The approximated network: what the approximate stage produces and every later stage
//! reads — the f64 function the HE program must compute exactly.

use model::{LayerInfo, PostOp};

use crate::affine::Affine;
use crate::{cheb, residual};

/// A stage after approximation, with affine folds applied. As in the imported `Stage`,
/// value 0 is the input and stage `i` produces value `i + 1`; the last stage is the output.
#[derive(Clone, Debug)]
pub(crate) enum LStage {
    Linear {
        name: String,
        kind: String,
        map: Affine,
        src: usize,
    },
    Square {
        name: String,
        kind: String,
        src: usize,
    },
    /// A polynomial in its input, by its Chebyshev coefficients (see `lower::poly`).
    Poly {
        name: String,
        kind: String,
        cheb: Vec<f64>,
        exact_zero: bool,
        src: usize,
    },
    /// x · p_k(…p_1(x)), each stage by its Chebyshev coefficients: |x|/2 by a composite
    /// sign (`composite`), x already normalised to [−1, 1] (see `lower::composite`).
    Composite {
        name: String,
        kind: String,
        stages: Vec<Vec<f64>>,
        src: usize,
    },
    /// value a ± value b, `n` elements (see `residual::add`).
    Add {
        name: String,
        kind: String,
        a: usize,
        b: usize,
        sub: bool,
        n: usize,
    },
}

impl LStage {
    pub fn apply(&self, vals: &[Vec<f64>]) -> Vec<f64> {
        match self {
            LStage::Linear { map, src, .. } => map.apply(&vals[*src]),
            LStage::Square { src, .. } => vals[*src].iter().map(|x| x * x).collect(),
            LStage::Poly { cheb, src, .. } => vals[*src].iter().map(|&x| cheb::cheb_eval(cheb, x)).collect(),
            LStage::Composite { stages, src, .. } => {
                vals[*src].iter().map(|&x| crate::composite::eval_times_input(stages, x)).collect()
            }
            LStage::Add { a, b, sub, .. } => {
                let sg = if *sub { -1.0 } else { 1.0 };
                vals[*a].iter().zip(&vals[*b]).map(|(x, y)| x + sg * y).collect()
            }
        }
    }
    /// Levels this stage consumes on its path (an upper bound for an addition, which
    /// may re-pack one operand and align scales).
    pub fn depth(&self) -> u32 {
        match self {
            LStage::Linear { .. } | LStage::Square { .. } => 1,
            LStage::Poly { cheb, .. } => cheb::depth_rec(cheb),
            // The stages, the product x·s(x), and the mask that zeroes slots outside the
            // layout first where there are any (`layout::lower_stages`).
            LStage::Composite { stages, .. } => stages.iter().map(|c| cheb::depth_rec(c)).sum::<u32>() + 2,
            LStage::Add { .. } => residual::MAX_DEPTH,
        }
    }
    pub fn info(&self) -> LayerInfo {
        let (n, k) = match self {
            LStage::Linear { name, kind, .. }
            | LStage::Square { name, kind, .. }
            | LStage::Poly { name, kind, .. }
            | LStage::Composite { name, kind, .. }
            | LStage::Add { name, kind, .. } => (name, kind),
        };
        LayerInfo { name: n.clone(), kind: k.clone() }
    }
}

/// The network's output for one sample, in f64.
pub(crate) fn forward(stages: &[LStage], x: &[f64]) -> Vec<f64> {
    let mut vals: Vec<Vec<f64>> = Vec::with_capacity(stages.len() + 1);
    vals.push(x.to_vec());
    for s in stages {
        let v = s.apply(&vals);
        vals.push(v);
    }
    vals.pop().unwrap_or_default()
}

/// Upper bound of the program's depth: the longest path, each addition at its worst.
pub(crate) fn depth_bound(stages: &[LStage]) -> u32 {
    let mut d = vec![0u32; stages.len() + 1];
    for (i, s) in stages.iter().enumerate() {
        let inp = match s {
            LStage::Linear { src, .. }
            | LStage::Square { src, .. }
            | LStage::Poly { src, .. }
            | LStage::Composite { src, .. } => d[*src],
            LStage::Add { a, b, .. } => d[*a].max(d[*b]),
        };
        d[i + 1] = inp + s.depth();
    }
    d.last().copied().unwrap_or(0)
}

/// The top-1 class of output `v` after the client's post-processing.
pub(crate) fn top1(post: &[PostOp], v: &[f64]) -> usize {
    let f = model::apply_postprocess(post, v);
    if post.last() == Some(&PostOp::ArgMax) {
        f[0] as usize
    } else {
        model::argmax(&f)
    }
}
