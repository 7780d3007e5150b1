//! Stage: approximation. Replaces every activation by a polynomial fitted on what
//! calibration saw, at the smallest degree that keeps the model's decisions, and folds
//! the fits' normalisations into neighbouring linear maps where nothing else reads them
//! (each fold saves a level).

use crate::activation::ActFn;
use crate::calibrate::{Calibration, Range};
use crate::composite::{self, SignComposite};
use crate::import::{Imported, Stage};
use crate::network::{forward, top1, LStage};
use crate::{approx, cheb, Options};

/// Degrees tried, in order, when the user gives none: each is the largest of its depth.
const DEGREES: [usize; 5] = [2, 3, 7, 15, 31];

/// A composite |x| is taken over the single fit only if it gains more than this much
/// agreement (with margin) on calibration data, and the cheapest within this of the best.
const ABS_TOLERANCE: f64 = 0.002;

pub(crate) struct Approximated {
    /// The degree of every fitted activation (the largest, where they differ).
    pub degree: usize,
    /// Each activation's degree, in the order of the import's activations (2 for squares).
    pub degrees: Vec<usize>,
    /// Share of calibration samples whose top-1 class it keeps with a margin ([`agreement`]).
    pub agreement: f64,
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
    let n_acts = activations(imp);
    let agreement = |st: &[LStage]| agreement(imp, cal, st);
    let mut chosen = None;
    for &d in &degrees {
        let (st, fits) = fit_and_fold(imp, &cal.ranges, &vec![d; n_acts], opts.margin, None);
        let agree = agreement(&st);
        let ok = agree >= opts.target_agreement;
        chosen = Some((d, st, fits, agree));
        if ok || opts.degree.is_some() {
            break;
        }
    }
    let mut notes = vec![];
    // MaxPool's |x| where the single fits miss the target: composites, cheapest first.
    let has_abs = imp.stages.iter().any(|s| matches!(s, Stage::Act { f: ActFn::HalfAbs, .. }));
    if let (true, None, Some((d, _, _, single))) = (has_abs, opts.degree, chosen.as_ref()) {
        let (d, single) = (*d, *single);
        if single < opts.target_agreement {
            let mut tried: Vec<(SignComposite, f64)> = vec![];
            for c in composite::candidates() {
                let (st, _) = fit_and_fold(imp, &cal.ranges, &vec![d; n_acts], opts.margin, Some(&c));
                let agree = agreement(&st);
                let ok = agree >= opts.target_agreement;
                tried.push((c, agree));
                if ok {
                    break;
                }
            }
            // The first that meets the target; else the cheapest within ABS_TOLERANCE of the
            // best tried (the other activations' fits bound what a better |x| can add).
            let best = tried.iter().map(|t| t.1).fold(single, f64::max);
            let pick = tried.iter().position(|t| t.1 >= opts.target_agreement).or_else(|| {
                (single < best - ABS_TOLERANCE)
                    .then(|| tried.iter().position(|t| t.1 >= best - ABS_TOLERANCE))
                    .flatten()
            });
            let listed: Vec<String> = tried
                .iter()
                .map(|(c, a)| {
                    format!(
                        "{} (degrees {:?}, depth {}, eps {:.3}) {:.2}%",
                        c.label,
                        c.degrees(),
                        c.depth(),
                        c.epsilon(),
                        100.0 * a
                    )
                })
                .collect();
            notes.push(format!(
                "MaxPool |x|: single polynomial of degree {d} {:.2}% with margin on calibration data; composite signs tried: {}; chosen: {}",
                100.0 * single,
                listed.join(", "),
                pick.map_or(format!("degree {d}"), |i| tried[i].0.label.to_string())
            ));
            if let Some(i) = pick {
                let c = &tried[i].0;
                let (st, fits) = fit_and_fold(imp, &cal.ranges, &vec![d; n_acts], opts.margin, Some(c));
                chosen = Some((d, st, fits, tried[i].1));
            }
        }
    }
    let (degree, network, fits, cal_agree) = chosen.expect("at least one degree tried");
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
    Approximated { degree, degrees: uniform(imp, degree), agreement: cal_agree, network, fits, notes }
}

/// How many activations the import has (squares included).
fn activations(imp: &Imported) -> usize {
    imp.stages.iter().filter(|s| matches!(s, Stage::Act { .. })).count()
}

/// `degree` for every fitted activation, 2 for squares.
fn uniform(imp: &Imported, degree: usize) -> Vec<usize> {
    imp.stages
        .iter()
        .filter_map(|s| match s {
            Stage::Act { f, .. } => Some(if *f == ActFn::Square { 2 } else { degree }),
            _ => None,
        })
        .collect()
}

/// Share of calibration samples whose top-1 class `st` keeps with a margin: the reference's
/// gap between its two best outputs exceeds twice the sample's largest output error. A
/// single output with no post-processing is a regression: there is no top-1 class, so a
/// sample counts when its error is within 1 % of the outputs' spread.
fn agreement(imp: &Imported, cal: &Calibration, st: &[LStage]) -> f64 {
    let regression = imp.postprocess.is_empty() && cal.reference.first().map(Vec::len) == Some(1);
    let spread = {
        let v: Vec<f64> = cal.reference.iter().filter_map(|r| r.first().copied()).collect();
        let mean = v.iter().sum::<f64>() / v.len().max(1) as f64;
        (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / v.len().max(1) as f64).sqrt()
    };
    (0..cal.rows)
        .filter(|&r| {
            let y = forward(st, cal.data.row(r));
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
        / cal.rows as f64
}

/// Shallower approximations than `from`, one activation a level lower at a time (31 → 15
/// → 7, never below 7): at each step the activation whose lowering keeps the most
/// agreement on calibration data (a greedy order: each step takes a level from one
/// activation, so the network's depth falls by at most one level per step, and by none
/// where that activation is off the longest path). For a key budget (`compile` in
/// `lib.rs`). A network with a composite |x| (MaxPool) is not lowered: its composite is
/// chosen for the whole network by [`approximate`], and a fixed degree there would drop it.
pub(crate) fn lowered(imp: &Imported, cal: &Calibration, opts: &Options, from: &Approximated) -> Vec<Approximated> {
    let lower_of = |d: usize| match d {
        d if d > 15 => Some(15),
        d if d > 7 => Some(7),
        _ => None,
    };
    if from.network.iter().any(|s| matches!(s, LStage::Composite { .. })) {
        return vec![];
    }
    let fitted: Vec<bool> = imp
        .stages
        .iter()
        .filter_map(|s| match s {
            Stage::Act { f, .. } => Some(*f != ActFn::Square),
            _ => None,
        })
        .collect();
    let mut out = vec![];
    let mut current = from.degrees.clone();
    loop {
        let best = (0..current.len())
            .filter(|&i| fitted[i])
            .filter_map(|i| {
                let mut degrees = current.clone();
                degrees[i] = lower_of(current[i])?;
                let (st, fits) = fit_and_fold(imp, &cal.ranges, &degrees, opts.margin, None);
                Some((agreement(imp, cal, &st), degrees, st, fits))
            })
            .max_by(|a, b| a.0.total_cmp(&b.0));
        let Some((agree, degrees, network, fits)) = best else { break };
        let listed: Vec<String> =
            fits.iter().map(|(fit, _, name, _)| format!("{name} {}", fit.cheb.len() - 1)).collect();
        let notes = vec![format!(
            "activation degrees {}: {:.2}% top-1 agreement with margin on calibration data",
            listed.join(", "),
            100.0 * agree
        )];
        current = degrees.clone();
        let degree = degrees.iter().copied().max().unwrap_or(2);
        out.push(Approximated { degree, degrees, agreement: agree, network, fits, notes });
    }
    out
}

/// An activation's fitted polynomial, its function, its node name and its degree.
pub(crate) type FittedActivation = (approx::Fit, ActFn, String, usize);

/// Fits activation i at `degrees[i]` and folds normalisations into the neighbouring
/// linear maps — where those maps feed nothing else: a value that also feeds a residual
/// branch is kept as it is, and the normalisation becomes an explicit affine stage.
fn fit_and_fold(
    imp: &Imported,
    ranges: &[Range],
    degrees: &[usize],
    margin: f64,
    abs: Option<&SignComposite>,
) -> (Vec<LStage>, Vec<FittedActivation>) {
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
                let degree = degrees[act_i];
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
                if let (ActFn::HalfAbs, Some(c)) = (f, abs) {
                    // |x|/2 by a composite sign on t = x/R: symmetric about the kink at 0.
                    let r = flo.abs().max(fhi.abs());
                    let src = if prev_linear {
                        if let Some(LStage::Linear { map, .. }) = out.get_mut(s - 1) {
                            for (row, b) in map.rows.iter_mut().zip(map.bias.iter_mut()) {
                                for e in row.iter_mut() {
                                    e.1 /= r;
                                }
                                *b /= r;
                            }
                        }
                        s
                    } else {
                        out.push(LStage::Poly {
                            name: format!("{name} (normalise)"),
                            kind: "affine".into(),
                            cheb: vec![0.0, 1.0 / r],
                            exact_zero: true,
                            src: s,
                        });
                        out.len()
                    };
                    // The fit entry is for the report's plot: the composite as a function of x.
                    let mut shown = approx::fit(&|x| f.eval(x), -r, r, 1, &[]);
                    shown.max_abs_error = r * c.half_abs_error();
                    fits.push((shown, *f, name.clone(), out.len()));
                    let kind = format!(
                        "{} ~ composite sign {} (degrees {:?}, depth {})",
                        f.name(),
                        c.label,
                        c.degrees(),
                        c.depth()
                    );
                    let stages = composite::half_abs_stages(c, r);
                    out.push(LStage::Composite { name: name.clone(), kind, stages, src });
                    vmap[iv] = out.len();
                    continue;
                }
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
