//! Differentially private outputs (`compile --output-dp EPS[,DELTA]`): a clamp of the
//! outputs appended to the imported network (fitted like any activation, so its error
//! is in the report), the noise calibrated to the fitted clamp's range, and the room
//! the noise needs at the output level. The server adds the noise (runtime `dp`).

use model::{DpMechanism, OutputDp};

use crate::activation::ActFn;
use crate::approximate::Approximated;
use crate::calibrate::Calibration;
use crate::import::{Imported, Stage};
use crate::network::{forward, top1};
use crate::npy::Array;
use crate::CompileError;

/// The stage name of the clamp, which finds its fit again.
const CLAMP_STAGE: &str = "output_dp_clamp";
/// Quantile of |output| over calibration data used as the clamp when none is given.
const DEFAULT_CLAMP_QUANTILE: f64 = 0.95;

/// What the model owner asks for.
#[derive(Clone, Debug, PartialEq)]
pub struct OutputDpRequest {
    /// ε per query
    pub epsilon: f64,
    /// δ per query; 0 selects the discrete Laplace mechanism
    pub delta: f64,
    /// outputs clipped to [−clamp, clamp]; None: the 95th percentile of |output| on the calibration data
    pub clamp: Option<f64>,
    /// ε each key id may spend on the model (None: unlimited, still counted)
    pub budget: Option<f64>,
}

impl OutputDpRequest {
    /// Parses `EPS[,DELTA]` (δ defaults to 0: Laplace).
    pub fn parse(s: &str) -> Result<Self, String> {
        let mut it = s.split(',');
        let num = |v: Option<&str>, what: &str| -> Result<Option<f64>, String> {
            v.map(|t| t.trim().parse::<f64>().map_err(|_| format!("--output-dp: {what} '{t}' is not a number")))
                .transpose()
        };
        let epsilon = num(it.next(), "ε")?.ok_or("--output-dp needs ε")?;
        let delta = num(it.next(), "δ")?.unwrap_or(0.0);
        if it.next().is_some() {
            return Err(format!("--output-dp takes EPS[,DELTA], got '{s}'"));
        }
        Ok(Self { epsilon, delta, clamp: None, budget: None })
    }
}

/// Appends the clamp to the imported network; returns the clamp's bound.
pub(crate) fn insert_clamp(imp: &mut Imported, calib: &Array, req: &OutputDpRequest) -> Result<f64, CompileError> {
    let c = match req.clamp {
        Some(c) if c.is_finite() && c > 0.0 => c,
        Some(c) => return Err(CompileError::Data(format!("--dp-clamp must be a positive number, got {c}"))),
        None => {
            let mut v: Vec<f64> = (0..calib.rows()).flat_map(|r| imp.reference(calib.row(r))).map(f64::abs).collect();
            if v.is_empty() {
                return Err(CompileError::Data("output DP needs calibration data to choose the clamp".into()));
            }
            v.sort_by(f64::total_cmp);
            let q = v[((v.len() - 1) as f64 * DEFAULT_CLAMP_QUANTILE).round() as usize];
            // A clamp of zero would erase every output.
            if q > 0.0 {
                q
            } else {
                1.0
            }
        }
    };
    let src = imp.stages.len();
    imp.stages.push(Stage::Act { name: CLAMP_STAGE.into(), f: ActFn::Clip(-c, c), src });
    imp.notes
        .push(format!("output DP: outputs clamped to ±{c:.4} by a fitted polynomial clip (stage '{CLAMP_STAGE}')"));
    Ok(c)
}

/// The noise calibrated to the fitted clamp's largest value on its fit interval.
pub(crate) fn configure(
    ap: &Approximated,
    req: &OutputDpRequest,
    clamp: f64,
    outputs: usize,
) -> Result<OutputDp, CompileError> {
    let (fit, ..) = ap
        .fits
        .iter()
        .find(|f| f.2 == CLAMP_STAGE)
        .ok_or_else(|| CompileError::Internal("the output clamp was not fitted".into()))?;
    let (lo, hi) = (fit.center - fit.radius, fit.center + fit.radius);
    // A fine grid plus the ends; a degree ≤ 31 polynomial cannot hide a peak between
    // 8193 points by more than a sliver, and 1 % of slack covers it.
    let steps = 8192;
    let top = (0..=steps).map(|i| fit.eval(lo + (hi - lo) * i as f64 / steps as f64).abs()).fold(0.0, f64::max);
    let bound = (top * 1.01).max(clamp);
    OutputDp::calibrate(req.epsilon, req.delta, clamp, bound, (lo, hi), outputs as u32, req.budget)
        .map_err(|e| CompileError::Data(e.to_string()))
}

/// Noise on the output slots protects nothing if other slots of the answer carry the
/// outputs (replicated copies) or other values of the computation: the client decrypts
/// every slot. Until circuit privacy's mask exists (issue #20 item 2), output DP is
/// refused for layouts that leave anything but zeros outside the output slots — checked
/// by running the program in f64 on calibration samples (zeros there are exact: they
/// come from zero weights and zero-padded inputs, not from cancellation).
pub(crate) fn check_unused_slots(hem: &model::HeModel, calib: &Array) -> Result<(), CompileError> {
    let out = &hem.client.output;
    let mut used: Vec<Vec<bool>> = Vec::new();
    let mut worst = 0.0f64;
    for r in 0..calib.rows().min(16) {
        let slots = hem.client.pack_input(calib.row(r)).map_err(|e| CompileError::Internal(e.to_string()))?;
        let vals = model::simulate(hem, &slots).map_err(|e| CompileError::Internal(e.to_string()))?;
        if used.is_empty() {
            used = vals.iter().map(|v| vec![false; v.len()]).collect();
            for &(c, j) in &out.slots {
                if let Some(u) = used.get_mut(c as usize).and_then(|u| u.get_mut(j as usize)) {
                    *u = true;
                }
            }
        }
        for (v, u) in vals.iter().zip(&used) {
            for (x, &is_out) in v.iter().zip(u) {
                if !is_out {
                    worst = worst.max(x.abs());
                }
            }
        }
    }
    if worst > 1e-9 {
        return Err(CompileError::Layout(format!(
            "--output-dp: this model's layout leaves values other than its outputs in the answer's unused slots (up to {worst:.3e}); \
             the client would read them without noise. Output DP needs those slots masked (circuit privacy, not yet implemented) — \
             it is available for models whose answer holds only the outputs"
        )));
    }
    Ok(())
}

/// How far the noisy outputs can reach: the clamp's range plus a tail the noise
/// passes with probability below 2^-60 per output.
pub(crate) fn reach(dp: &OutputDp) -> f64 {
    let tail = match dp.mechanism {
        // P(|z| > 10σ) < 2^-70 for the discrete Gaussian
        DpMechanism::Gaussian => 10.0 * dp.sigma,
        // P(|z| > m·t) = e^-m for the discrete Laplace of scale t = σ/√2; m = 45
        DpMechanism::Laplace => 45.0 * dp.sigma / std::f64::consts::SQRT_2,
    };
    dp.bound + tail
}

/// What the noise costs an honest client: top-1 agreement with the model without
/// noise on calibration data (the clamped network, noise drawn in the clear with the
/// same law, 20 draws per sample; a deterministic generator: this is a report, not
/// the server's noise).
pub(crate) fn honest_cost_note(ap: &Approximated, cal: &Calibration, imp: &Imported, dp: &OutputDp) -> String {
    let mut rng = SplitMix(0x005e_edd9);
    let draws = 20;
    let (mut agree, mut total) = (0usize, 0usize);
    for r in 0..cal.rows {
        let y = forward(&ap.network, cal.data.row(r));
        let want = top1(&imp.postprocess, &cal.reference[r]);
        for _ in 0..draws {
            let noisy: Vec<f64> = y.iter().map(|v| v + rng.noise(dp)).collect();
            agree += (top1(&imp.postprocess, &noisy) == want) as usize;
            total += 1;
        }
    }
    format!(
        "{}; an honest client's answer keeps the noiseless top-1 class in {:.1}% of {} noisy answers on calibration data",
        dp.describe(),
        100.0 * agree as f64 / total.max(1) as f64,
        total
    )
}

/// A small generator for the report's estimate only.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
    }

    /// A draw of (nearly) the server's law, in output units.
    fn noise(&mut self, dp: &OutputDp) -> f64 {
        let (u1, u2) = (self.next().max(1e-300), self.next());
        match dp.mechanism {
            DpMechanism::Gaussian => dp.sigma * (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos(),
            DpMechanism::Laplace => {
                let b = dp.sigma / std::f64::consts::SQRT_2;
                if u2 < 0.5 {
                    b * u1.ln()
                } else {
                    -b * u1.ln()
                }
            }
        }
    }
}
