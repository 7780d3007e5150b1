//! Stage: approximation. Replaces every activation by a polynomial fitted on what
//! calibration saw, at the smallest degree that keeps the model's decisions, and folds
//! the fits' normalisations into neighbouring linear maps where nothing else reads them
//! (each fold saves a level).

use crate::activation::ActFn;
use crate::calibrate::{Calibration, Range};
use crate::import::{Imported, Stage};
use crate::network::{forward, top1, LStage};
use crate::{approx, cheb, Options};

/// Degrees tried, in order, when the user gives none: each is the largest of its depth.
const DEGREES: [usize; 5] = [2, 3, 7, 15, 31];

pub(crate) struct Approximated {
    pub degree: usize,
    pub network: Vec<LStage>,
    pub fits: Vec<FittedActivation>,
    pub notes: Vec<String>,
}

/// The degree given, or the smallest meeting the target agreement on calibration data.
pub(crate) fn approximate(imp: &Imported, cal: &Calibration, opts: &Options) -> Approximated {
    let needs_fit = imp.stages.iter().any(|s| matches!(s, Stage::Act { f, .. } if *f != ActFn::Square));
    let degrees: Vec<usize> = match (opts.degree, needs_fit) {
        (_, false) => vec![2],
        (Some(d), true) => vec![d.max(1)],
        (None, true) => DEGREES.into_iter().filter(|&d| d <= opts.max_degree.max(2)).collect(),
    };
    // A single output with no post-processing is a regression: there is no top-1 class,
    // so a sample counts when its error is within 1 % of the outputs' spread.
    let regression = imp.postprocess.is_empty() && cal.reference.first().map(Vec::len) == Some(1);
    let spread = {
        let v: Vec<f64> = cal.reference.iter().filter_map(|r| r.first().copied()).collect();
        let mean = v.iter().sum::<f64>() / v.len().max(1) as f64;
        (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / v.len().max(1) as f64).sqrt()
    };
    let mut chosen = None;
    for &d in &degrees {
        let (st, fits) = fit_and_fold(imp, &cal.ranges, d, opts.margin);
        // A sample counts only if the top-1 class agrees with a margin: the reference's
        // gap between its two best outputs exceeds twice this sample's largest output error.
        let agree = (0..cal.rows)
            .filter(|&r| {
                let y = forward(&st, cal.data.row(r));
                let want = &cal.reference[r];
                if regression {
                    return (y[0] - want[0]).abs() <= 0.01 * spread;
                }
                if top1(&imp.postprocess, &y) != top1(&imp.postprocess, want) {
                    return false;
                }
                let err = y.iter().zip(want).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
                let mut sorted = want.clone();
                sorted.sort_by(|a, b| b.total_cmp(a));
                sorted.len() < 2 || sorted[0] - sorted[1] > 2.0 * err
            })
            .count() as f64
            / cal.rows as f64;
        let ok = agree >= opts.target_agreement;
        chosen = Some((d, st, fits, agree));
        if ok || opts.degree.is_some() {
            break;
        }
    }
    let (degree, network, fits, cal_agree) = chosen.expect("at least one degree tried");
    let mut notes = vec![];
    if needs_fit {
        if cal_agree < opts.target_agreement && opts.degree.is_none() {
            notes.push(format!(
                "no degree up to {} reaches {:.2}% agreement on calibration data (best tried: {:.2}% at degree {degree})",
                opts.max_degree,
                100.0 * opts.target_agreement,
                100.0 * cal_agree
            ));
        }
        notes.push(format!(
            "activation degree {degree}: {:.2}% top-1 agreement with margin on calibration data",
            100.0 * cal_agree
        ));
    }
    Approximated { degree, network, fits, notes }
}

/// An activation's fitted polynomial, its function, its node name and its degree.
pub(crate) type FittedActivation = (approx::Fit, ActFn, String, usize);

/// Fits every activation at `degree` and folds normalisations into the neighbouring
/// linear maps — where those maps feed nothing else: a value that also feeds a residual
/// branch is kept as it is, and the normalisation becomes an explicit affine stage.
fn fit_and_fold(imp: &Imported, ranges: &[Range], degree: usize, margin: f64) -> (Vec<LStage>, Vec<FittedActivation>) {
    let uses = imp.uses();
    // Import values read by exactly one stage, a linear one.
    let mut only_linear = vec![false; imp.stages.len() + 1];
    for s in &imp.stages {
        if let Stage::Linear { src, .. } = s {
            only_linear[*src] = uses[*src] == 1;
        }
    }
    let mut out: Vec<LStage> = vec![];
    let mut fits = vec![];
    // Import value → LStage value; and an affine a·v + c still owed to a value's (linear) reader.
    let mut vmap = vec![0usize; imp.stages.len() + 1];
    let mut pending: Vec<Option<(f64, f64)>> = vec![None; imp.stages.len() + 1];
    let mut act_i = 0;
    for (si, st) in imp.stages.iter().enumerate() {
        let iv = si + 1;
        match st {
            Stage::Linear { name, kind, map, src, .. } => {
                let mut map = map.clone();
                if let Some((a, c)) = pending[*src].take() {
                    // W ← a·W, b ← b + c·rowsum(W)
                    for (r, b) in map.rows.iter_mut().zip(map.bias.iter_mut()) {
                        let rs: f64 = r.iter().map(|e| e.1).sum();
                        *b += c * rs;
                        for e in r.iter_mut() {
                            e.1 *= a;
                        }
                    }
                }
                out.push(LStage::Linear { name: name.clone(), kind: kind.clone(), map, src: vmap[*src] });
            }
            Stage::Add { name, a, b, sub, n } => {
                out.push(LStage::Add {
                    name: name.clone(),
                    kind: if *sub { "residual sub".into() } else { "residual add".into() },
                    a: vmap[*a],
                    b: vmap[*b],
                    sub: *sub,
                    n: *n,
                });
            }
            Stage::Act { name, f, src } => {
                let Range { lo, hi, samples } = &ranges[act_i];
                act_i += 1;
                let s = vmap[*src];
                // The producing linear stage, when this activation is its only reader.
                let prev_linear = s > 0 && uses[*src] == 1 && matches!(out.get(s - 1), Some(LStage::Linear { .. }));
                if *f == ActFn::Square {
                    out.push(LStage::Square { name: name.clone(), kind: "square (exact)".into(), src: s });
                    vmap[iv] = out.len();
                    continue;
                }
                let w = (hi - lo).max(1e-6);
                let (flo, fhi) = (lo - margin * w, hi + margin * w);
                let fit = approx::fit(&|x| f.eval(x), flo, fhi, degree, samples);
                let cx = fit.coef_in_x();
                let kind = format!("{} ~ poly deg {}", f.name(), degree);
                fits.push((fit.clone(), *f, name.clone(), out.len()));
                if degree == 2 && prev_linear && cx[2].abs() > 1e-12 {
                    // p(x) = A (x + h)^2 + c: h into the previous bias, A and c into the next layer.
                    let (a2, b1, c0) = (cx[2], cx[1], cx[0]);
                    let h = b1 / (2.0 * a2);
                    let c = c0 - b1 * b1 / (4.0 * a2);
                    if let Some(LStage::Linear { map, .. }) = out.get_mut(s - 1) {
                        for b in map.bias.iter_mut() {
                            *b += h;
                        }
                    }
                    out.push(LStage::Square { name: name.clone(), kind: kind + " (folded)", src: s });
                    if only_linear[iv] {
                        pending[iv] = Some((a2, c));
                    } else {
                        out.push(LStage::Poly {
                            name: format!("{name} (affine)"),
                            kind: "affine".into(),
                            cheb: vec![c, a2],
                            exact_zero: c == 0.0,
                            src: out.len(),
                        });
                    }
                } else if prev_linear {
                    if let Some(LStage::Linear { map, .. }) = out.get_mut(s - 1) {
                        for (r, b) in map.rows.iter_mut().zip(map.bias.iter_mut()) {
                            for e in r.iter_mut() {
                                e.1 /= fit.radius;
                            }
                            *b = (*b - fit.center) / fit.radius;
                        }
                    }
                    let z = fit.coef[0] == 0.0;
                    out.push(LStage::Poly { name: name.clone(), kind, cheb: fit.cheb.clone(), exact_zero: z, src: s });
                } else if degree <= 3 {
                    let cheb = cheb::power_to_cheb(&cx);
                    out.push(LStage::Poly { name: name.clone(), kind, cheb, exact_zero: cx[0] == 0.0, src: s });
                } else {
                    // Normalise explicitly (one level): the power basis in x is unstable at high degree.
                    let c0 = -fit.center / fit.radius;
                    out.push(LStage::Poly {
                        name: format!("{name} (normalise)"),
                        kind: "affine".into(),
                        cheb: vec![c0, 1.0 / fit.radius],
                        exact_zero: c0 == 0.0,
                        src: s,
                    });
                    let z = fit.coef[0] == 0.0;
                    out.push(LStage::Poly {
                        name: name.clone(),
                        kind,
                        cheb: fit.cheb.clone(),
                        exact_zero: z,
                        src: out.len(),
                    });
                }
            }
        }
        vmap[iv] = out.len();
    }
    (out, fits)
}
