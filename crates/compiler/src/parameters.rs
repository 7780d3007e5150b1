//! Stage: parameters. Finds the smallest ring whose layout fits and whose parameter set
//! ([`params`]) keeps the decisions of calibration samples under the CKKS noise the
//! [`noise`] analysis predicts for the packed program.

use crate::calibrate::Calibration;
use crate::lower::SumAt;
use crate::network::{depth_bound, forward, LStage};
use crate::{layout, lower, noise, params, CompileError, Options};

/// Calibration samples the noise analysis simulates.
const NOISE_SAMPLES: usize = 64;
/// Share of them that must keep their top-1 class under `NOISE_SAFETY` × the modelled noise.
const NOISE_QUANTILE: f64 = 0.99;
const NOISE_SAFETY: f64 = 4.0;
/// Never below this scale, whatever the analysis says (constants and weights lose
/// precision below it).
const MIN_SCALE_BITS: u32 = 24;

pub(crate) struct Chosen {
    pub choice: params::Choice,
    /// The program's multiplicative depth as packed.
    pub depth: u32,
    /// What the noise analysis asked for and predicts, for the report.
    pub note: String,
    /// The noise analysis's largest output error at the chosen scale (circuit privacy's flood is sized from it).
    pub max_err: f64,
    /// Where linear layers rotate their products (`Options::rotations`).
    pub sum_at: SumAt,
    /// Bytes the client uploads: every key made up to the level it is used at.
    pub upload_bytes: usize,
    /// The program's estimated latency (the report's model), for choices under a key budget.
    pub est_ms: f64,
}

/// Where linear layers rotate ([`lower::SumAt`]): `compile --rotations`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RotationPolicy {
    /// Both, and the smaller upload on the smaller ring (ties: before the rescale).
    #[default]
    Auto,
    /// At the products' doubled scale: least noise.
    BeforeRescale,
    /// After the rescale: smaller keys, faster rotations.
    AfterRescale,
}

impl std::str::FromStr for RotationPolicy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(Self::Auto),
            "before-rescale" | "before" => Ok(Self::BeforeRescale),
            "after-rescale" | "after" => Ok(Self::AfterRescale),
            _ => Err(format!("unknown rotation placement {s:?}: choose auto, before-rescale or after-rescale")),
        }
    }
}

/// Chooses the parameters, and where linear layers rotate (`opts.rotations`): with
/// `Auto`, both programs are analysed and the one whose keys upload fewer bytes on the
/// smaller ring is kept; the report says what the other would have cost.
pub(crate) fn choose(
    stages: &[LStage],
    cal: &Calibration,
    opts: &Options,
    reach: f64,
    mask_output: bool,
) -> Result<Chosen, CompileError> {
    let one = |sum_at| choose_at(stages, cal, opts, reach, mask_output, sum_at);
    match opts.rotations {
        RotationPolicy::BeforeRescale => one(SumAt::Doubled),
        RotationPolicy::AfterRescale => one(SumAt::Rescaled),
        RotationPolicy::Auto => {
            let (doubled, rescaled) = (one(SumAt::Doubled), one(SumAt::Rescaled));
            let (mut pick, other) = match (doubled, rescaled) {
                (Ok(d), Ok(r)) => {
                    let key = |c: &Chosen| (c.choice.params.log_n(), c.upload_bytes);
                    if key(&r) < key(&d) {
                        (r, d)
                    } else {
                        (d, r)
                    }
                }
                (Ok(c), Err(_)) | (Err(_), Ok(c)) => return Ok(c),
                (Err(e), Err(_)) => return Err(e),
            };
            let mb = |b: usize| b as f64 / 1e6;
            pick.note += &format!(
                "; rotations {} (the other choice, {}: N = 2^{}, keys {:.2} MB to upload against {:.2} MB, predicted max output error {:.2e} against {:.2e}; `--rotations` forces one)",
                pick.sum_at.describe(),
                other.sum_at.describe(),
                other.choice.params.log_n(),
                mb(other.upload_bytes),
                mb(pick.upload_bytes),
                other.max_err,
                pick.max_err,
            );
            Ok(pick)
        }
    }
}

/// `reach`: how large the outputs may get after the server's own additions (output-DP
/// noise), beyond what calibration shows; 0 when nothing is added.
/// `mask_output`: the program ends with the output mask (one more level; see `layout::build`).
fn choose_at(
    stages: &[LStage],
    cal: &Calibration,
    opts: &Options,
    reach: f64,
    mask_output: bool,
    sum_at: SumAt,
) -> Result<Chosen, CompileError> {
    let (calib, cal_rows) = (cal.data, cal.rows);
    // Residual additions make the depth depend on the packing: each ring's program is
    // built on a chain long enough for the worst case and its depth measured.
    let depth_ub = depth_bound(stages) + mask_output as u32;
    let mut depth = depth_ub;
    let max_out = (0..cal_rows)
        .map(|r| forward(stages, calib.row(r)).iter().fold(0.0f64, |a, v| a.max(v.abs())))
        .fold(1.0f64, f64::max)
        .max(reach);
    let headroom = (max_out.log2().ceil().max(0.0) as u32 + 4).max(6);

    // Layout feasibility and rotation count on the smallest ring that holds it.
    let mut last_err = None;
    let mut choice = None;
    let mut noise_note = String::new();
    let mut max_err = 0.0;
    let mut noise_at: Option<(u32, noise::NoiseEstimate)> = None;
    let noise_rows: Vec<usize> = (0..cal_rows).step_by((cal_rows / NOISE_SAMPLES).max(1)).collect();
    for log_n in opts.min_log_n.max(12)..=16 {
        let slots = 1usize << (log_n - 1);
        // Every prime and the scale near 2^S_REF: the program for the noise analysis.
        // The primes differ (by 2^-16 relative) as real ones do, so that scales that
        // will differ under real primes differ here too and get the same alignment.
        let dummy_q: Vec<u64> =
            (0..=depth_ub as u64).map(|i| (1u64 << noise::S_REF) + ((2 * i + 1) << (noise::S_REF - 16)) + 1).collect();
        let shape = layout::Shape::for_options(sum_at, opts, stages);
        match layout::build(stages, &dummy_q, slots, 2f64.powi(noise::S_REF as i32), mask_output, shape) {
            Ok(bt) => {
                depth = depth_ub - bt.b.nodes.iter().map(|n| n.level).min().unwrap_or(depth_ub);
                let steps = lower::rotation_steps(&bt.b.nodes);
                let relin = layout::needs_relinearization(&bt.b);
                let inputs: Vec<Vec<f64>> = noise_rows
                    .iter()
                    .map(|&r| {
                        let x = calib.row(r);
                        let v: Vec<f64> =
                            bt.client_map.iter().map(|&i| if i >= 0 { x[i as usize] } else { 0.0 }).collect();
                        // A first layer before packing hands the program its output.
                        match &bt.first_layer {
                            Some(f) => f.slot_values(&v, slots),
                            None => v,
                        }
                    })
                    .collect();
                let n_out = bt.out_layout.iter().filter(|&&e| e >= 0).map(|&e| e as usize + 1).max().unwrap_or(0);
                let out_slots: Vec<usize> =
                    (0..n_out).filter_map(|o| bt.out_layout.iter().position(|&e| e == o as i32)).collect();
                // Simulated once, on the smallest ring the layout fits; larger rings scale it.
                let est = match &noise_at {
                    Some((k, e)) => noise::NoiseEstimate::for_larger_ring(e, log_n - k),
                    None => {
                        let e = noise::analyse(
                            &bt.b.nodes,
                            &bt.b.plains,
                            bt.out.id as usize,
                            &inputs,
                            &out_slots,
                            slots,
                            log_n,
                            NOISE_SAFETY,
                            compact_events(stages, opts, log_n),
                        );
                        noise_at = Some((log_n, e.clone()));
                        e
                    }
                };
                let req = params::ParamRequest {
                    depth,
                    scale_bits: opts.scale_bits,
                    min_scale_bits: MIN_SCALE_BITS,
                    noise: Some(est.clone()),
                    noise_quantile: NOISE_QUANTILE,
                    headroom_bits: headroom,
                    min_slots: slots,
                    galois_keys: steps.len(),
                    relin,
                    min_log_n: log_n,
                };
                match params::choose(&req) {
                    Ok(c) if c.params.log_n() == log_n => {
                        let s = c.scale_bits;
                        let min_bits = c.needed_scale_bits;
                        max_err = est.max_err_at(s, c.ks_factor);
                        noise_note = format!(
                            "scale 2^{s}: CKKS noise (encryption, rescale, key switch) simulated on {} calibration samples needs at least 2^{min_bits} for {:.0}% of them to keep their top-1 class under {NOISE_SAFETY}x the modelled noise; predicted max output error from noise at 2^{s}: {:.2e}",
                            inputs.len(),
                            100.0 * NOISE_QUANTILE,
                            est.max_err_at(s, c.ks_factor)
                        );
                        if s < min_bits {
                            noise_note += &format!(
                                " — below the 2^{min_bits} the noise analysis asks for: expect errors under encryption"
                            );
                        }
                        choice = Some(c);
                        break;
                    }
                    Ok(_) => continue,
                    Err(e) => last_err = Some(e),
                }
            }
            Err(e) => last_err = Some(e),
        }
    }
    match choice {
        Some(mut choice) => {
            let p = &choice.params;
            let shape = layout::Shape::for_options(sum_at, opts, stages);
            let bt = layout::build(stages, p.q(), p.slots(), p.default_scale(), mask_output, shape)?;
            let steps = lower::rotation_steps(&bt.b.nodes);
            let levels = lower::key_levels(&bt.b.nodes, &steps);
            let rotations = steps.iter().copied().zip(levels.rotation.iter().map(|&l| l as usize));
            let packing = layout::compact_keys(p, shape).into_iter().map(|g| (g, p.max_level()));
            let relin = levels.relinearization.map(|l| l as usize);
            let key_levels = crate::report::key_levels_by_element(p, rotations, packing, relin);
            let own_bytes = key_levels.iter().map(|&l| p.keyswitch_key_bytes_at(l)).sum::<usize>();
            if opts.key_bases {
                choice.params = params::with_key_bases(p, &key_levels, choice.ks_factor);
            }
            let p = &choice.params;
            let upload_bytes = key_levels.iter().map(|&l| p.keyswitch_key_bytes_at(l)).sum::<usize>();
            if !p.key_bases().is_empty() {
                let bases: Vec<String> = p
                    .key_bases()
                    .iter()
                    .map(|b| {
                        let (level, dnum) = (b.max_level(), b.dnum());
                        let log_p = b.log_qp() - b.log_q_at(level);
                        let s = if dnum == 1 { "" } else { "s" };
                        format!("level {level} in {dnum} digit{s} over {log_p:.0} bits of P")
                    })
                    .collect();
                noise_note += &format!(
                    "; keys for lower levels made with special primes of their own ({}): {:.2} MB to upload instead of {:.2} MB (`--no-key-bases` makes every key in the set's own {} digit{})",
                    bases.join(", "),
                    upload_bytes as f64 / 1e6,
                    own_bytes as f64 / 1e6,
                    p.dnum(),
                    if p.dnum() == 1 { "" } else { "s" },
                );
            }
            if let Some(b) = opts.key_budget_bytes.filter(|&b| upload_bytes > b) {
                return Err(CompileError::KeyBudget(format!(
                    "evaluation keys to upload: {:.2} MB with rotation keys for powers of {}{}, over --key-budget-mb \
                     {:.2}: try {}a lower --degree (fewer levels, smaller keys), or --rotations after-rescale",
                    upload_bytes as f64 / 1e6,
                    shape.radix,
                    if shape.one_top_key { " and one key at the top level" } else { "" },
                    b as f64 / 1e6,
                    match (shape.radix, shape.one_top_key) {
                        (8, true) => "",
                        (8, false) => "--one-top-key (fewer keys at the top level, more rotations there), ",
                        _ => "a larger --galois-radix (fewer keys, more rotations), ",
                    }
                )));
            }
            let splits = crate::report::KeySplits::new(
                p,
                steps.iter().copied().zip(levels.rotation.iter().map(|&l| l as usize)),
                levels.relinearization.map(|l| l as usize),
            );
            let est_ms = crate::report::est_program_ms(bt.b.nodes.iter().map(|n| (&n.op, n.level)), p.log_n(), &splits)
                .into_iter()
                .sum();
            Ok(Chosen { choice, depth, note: noise_note, max_err, sum_at, upload_bytes, est_ms })
        }
        None => Err(last_err.unwrap_or_else(|| CompileError::Params("no parameters found".into()))),
    }
}

/// The packing's key-switch events a compact input carries (0 without one, and 0 where
/// the first layer runs before the packing: its tree runs at the product's scale, q_top
/// times the input's, where the amplified roundings are below the weights' own).
fn compact_events(stages: &[LStage], opts: &Options, log_n: u32) -> f64 {
    if layout::Shape::for_options(lower::SumAt::Doubled, opts, stages).pack_first {
        return 0.0;
    }
    match stages.first() {
        Some(LStage::Linear { map, .. }) if opts.compact_query => {
            noise::compact_input_keyswitches(layout::compact_period(map.n_in), log_n)
        }
        _ => 0.0,
    }
}
