//! Stage: report. Per-layer operation counts, depth and estimated latency, sizes of keys
//! and messages, the activation fits (with plots) and the measured accuracy.

use model::report::{Accuracy, ActivationReport, CompositeReport, LayerReport, Report};
use model::{HeModel, Op};

use crate::approximate::Approximated;
use crate::calibrate::Range;
use crate::import::{Imported, Stage};
use crate::network::LStage;
use crate::svg;

/// Each fit's report entry and its plot, (file name, SVG).
pub(crate) fn activations(
    imp: &Imported,
    ranges: &[Range],
    ap: &Approximated,
) -> (Vec<ActivationReport>, Vec<(String, String)>) {
    let mut plots = vec![];
    let mut acts = vec![];
    for (i, (fit, f, name, at)) in ap.fits.iter().enumerate() {
        let seen = ranges.get(act_index(imp, name)).cloned().unwrap_or(Range { lo: 0.0, hi: 0.0, samples: vec![] });
        let file = format!("activation_{i}_{}.svg", sanitize(name));
        if let Some(LStage::Composite { kind, stages, .. }) = ap.network.get(*at) {
            let r = fit.radius;
            let p = |x: f64| crate::composite::eval_times_input(stages, x / r);
            plots.push((file.clone(), svg::plot_fn(&format!("{name} ({kind})"), -r, r, &p, *f, &seen.samples)));
            let sign = |t: f64| if t == 0.0 { 0.0 } else { p(t * r) / (0.5 * r * t) };
            let eps =
                (1..=4000).rev().map(|k| k as f64 / 4000.0).find(|&t| (sign(t) - 1.0).abs() > 0.01).unwrap_or(0.0);
            let depth = stages.iter().map(|c| crate::cheb::depth_rec(c)).sum::<u32>() + 1;
            let label =
                kind.split("composite sign ").nth(1).and_then(|k| k.split(' ').next()).unwrap_or("").to_string();
            acts.push(ActivationReport {
                layer: name.clone(),
                function: f.name(),
                degree: stages.iter().map(|c| crate::cheb::degree_of(c)).product::<usize>() + 1,
                lo: -r,
                hi: r,
                seen_lo: seen.lo,
                seen_hi: seen.hi,
                coefficients: vec![],
                max_abs_error: fit.max_abs_error,
                plot: Some(file),
                composite: Some(CompositeReport {
                    stages: label,
                    degrees: stages.iter().map(|c| crate::cheb::degree_of(c)).collect(),
                    depth,
                    radius: r,
                    epsilon: eps,
                    max_abs_error: fit.max_abs_error,
                }),
            });
            continue;
        }
        let degree = fit.cheb.len() - 1;
        plots.push((
            file.clone(),
            svg::plot(&format!("{} ({}) ~ degree {}", name, f.name(), degree), fit, *f, &seen.samples),
        ));
        acts.push(ActivationReport {
            layer: name.clone(),
            function: f.name(),
            degree,
            lo: fit.center - fit.radius,
            hi: fit.center + fit.radius,
            seen_lo: seen.lo,
            seen_hi: seen.hi,
            coefficients: fit.coef_in_x(),
            max_abs_error: fit.max_abs_error,
            plot: Some(file),
            composite: None,
        });
    }
    (acts, plots)
}

fn act_index(imp: &Imported, name: &str) -> usize {
    imp.stages
        .iter()
        .filter(|s| matches!(s, Stage::Act { .. }))
        .position(|s| matches!(s, Stage::Act { name: n, .. } if n == name))
        .unwrap_or(0)
}

fn sanitize(s: &str) -> String {
    s.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect()
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn make_report(
    m: &HeModel,
    params: &ckks::Parameters,
    key_each: usize,
    depth: u32,
    activations: Vec<ActivationReport>,
    accuracy: Option<Accuracy>,
    notes: Vec<String>,
    secs: f64,
) -> Report {
    let spec = params.spec();
    let mut layers: Vec<LayerReport> = m
        .layers
        .iter()
        .map(|l| LayerReport { name: l.name.clone(), kind: l.kind.clone(), ..Default::default() })
        .collect();
    let mut prev_level = m.client.input.level;
    let splits = KeySplits::new(params, m.client.rotation_key_levels(), m.client.relin_key_level());
    let node_ms = est_program_ms(m.nodes.iter().map(|n| (&n.op, n.level)), spec.log_n, &splits);
    for (n, &ms) in m.nodes.iter().zip(&node_ms) {
        let lr = &mut layers[n.layer as usize];
        lr.est_ms += ms;
        match n.op {
            Op::Rotate { step, .. } => {
                lr.rotations += 1;
                if !lr.rotation_steps.contains(&step) {
                    lr.rotation_steps.push(step);
                }
            }
            Op::MulPlain { .. } => lr.mul_plain += 1,
            Op::MulRelin { .. } | Op::Square { .. } => lr.ct_mults += 1,
            Op::Rescale { .. } => lr.rescales += 1,
            Op::Input { .. } => {}
            _ => lr.other_ops += 1,
        }
        lr.level_out = n.level;
    }
    for lr in layers.iter_mut() {
        lr.depth = prev_level.saturating_sub(lr.level_out);
        prev_level = lr.level_out;
    }
    let steps = m.client.rotation_steps.clone();
    let compact = m.client.input.compact.as_ref();
    let key_levels = key_levels_by_element(
        params,
        m.client.rotation_key_levels(),
        m.client.compact_key_levels(),
        m.client.relin_key_level(),
    );
    let keys = key_levels.len();
    // A compact answer folded into a subring adds one key at level 0 (and its degree byte).
    let answer_key = m.client.answer.is_some_and(|a| a.shape().folds(params));
    let upload: usize = key_levels.iter().map(|&l| params.keyswitch_key_bytes_at(l)).sum::<usize>()
        + if answer_key { params.answer_key_bytes() } else { 0 };
    // The answer key is always in the set itself (a key basis never holds it).
    let key_memory: usize = key_levels.iter().map(|&l| key_memory_at(params, l)).sum::<usize>()
        + if answer_key { key_memory_in(params, 0) } else { 0 };
    // A compact query is unpacked first: period + log2(N/period) key switches at the input level.
    let unpack_ms = compact.map_or(0.0, |c| {
        let switches = c.period as usize + (params.n() / c.period as usize).trailing_zeros() as usize;
        let (l_total, k) = (spec.q.len(), spec.p.len());
        switches as f64 * est_keyswitch_ms(m.client.input.level, spec.log_n, spec.dnum, k, l_total)
    });
    let est: f64 = layers.iter().map(|l| l.est_ms).sum::<f64>() + unpack_ms;
    Report {
        model: m.name.clone(),
        log_n: spec.log_n,
        slots: params.slots(),
        q_bits: spec.q.iter().map(|&q| (q as f64).log2()).collect(),
        p_bits: spec.p.iter().map(|&q| (q as f64).log2()).collect(),
        dnum: spec.dnum,
        log_qp: params.log_qp(),
        security_bound: ckks::max_log_qp(spec.log_n).unwrap_or(0),
        log_scale: spec.log_scale,
        depth,
        total_rotations: layers.iter().map(|l| l.rotations).sum(),
        layers,
        galois_keys: steps.len(),
        rotation_steps: steps,
        relinearization: m.client.relinearization,
        evaluation_key_bytes: upload,
        evaluation_key_bytes_top_level: keys * key_each,
        key_memory_bytes: key_memory,
        input_ciphertexts: m.client.input.slot_map.len(),
        query_bytes: match compact {
            Some(c) => params.lwe_query_bytes(
                m.client.input.level as usize,
                c.ring_values.map_or(c.period as usize, |v| v as usize),
            ),
            None => m.client.input.slot_map.len() * params.ciphertext_bytes(params.max_level(), true),
        },
        response_bytes: m.outputs.len()
            * m.client
                .answer
                .map_or(params.ciphertext_bytes(m.client.output.level as usize, false), |a| a.shape().bytes()),
        // A first layer before packing keeps one row per output in NTT form at the query's level.
        plaintext_memory_bytes: m.plaintexts.iter().map(|p| params.n() * (p.level as usize + 1) * 8).sum::<usize>()
            + m.first_layer
                .as_ref()
                .map_or(0, |f| f.period as usize * params.n() * (m.client.input.level as usize + 1) * 8),
        est_latency_ms: est,
        activations,
        accuracy,
        notes,
        compile_seconds: secs,
        layouts: vec![],
    }
}

/// The level of every key a client uploads: one per Galois element at the highest level
/// it is used at (a compact input's packing keys can share an element with a rotation: 5
/// is step 1), then the relinearisation key's. Both the parameter choice and the report
/// count the upload with it.
pub(crate) fn key_levels_by_element(
    params: &ckks::Parameters,
    rotations: impl IntoIterator<Item = (i64, usize)>,
    elements: impl IntoIterator<Item = (u64, usize)>,
    relin: Option<usize>,
) -> Vec<usize> {
    let mut galois: std::collections::BTreeMap<u64, usize> = std::collections::BTreeMap::new();
    let by_element = rotations.into_iter().map(|(s, l)| (params.galois_element(s), l)).chain(elements);
    for (g, l) in by_element {
        let e = galois.entry(g).or_insert(l);
        *e = (*e).max(l);
    }
    galois.into_values().chain(relin).collect()
}

/// Bytes a key for ciphertexts up to `level` takes in the server's memory: b and a with a
/// companion word each, per digit, over the key's primes.
fn key_memory_at(params: &ckks::Parameters, level: usize) -> usize {
    // A key for a level with a key basis is made in the basis (its digits, its P).
    key_memory_in(params.key_basis_at(level).unwrap_or(params), level)
}

/// [`key_memory_at`] for a key made in `params` itself.
fn key_memory_in(params: &ckks::Parameters, level: usize) -> usize {
    let alpha = params.q().len().div_ceil(params.dnum().max(1));
    let digits = (level + 1).div_ceil(alpha);
    let q_limbs = (digits * alpha).min(params.q().len());
    4 * digits * (q_limbs + params.p().len()) * params.n() * 8
}

/// One key switch (a rotation, or a relinearisation's) at `level`, in ms on one core
/// (rough): ModUp of each digit, the inner product with the key, ModDown. BGV's report
/// costs its relinearisations with it too (`quantize`).
pub(crate) fn est_keyswitch_ms(level: u32, log_n: u32, dnum: usize, k: usize, l_total: usize) -> f64 {
    est_modup_ms(level, log_n, dnum, k, l_total) + est_after_modup_ms(level, log_n, dnum, k, l_total)
}

/// The decomposition's share of a key switch (digits raised to Q·P): what hoisted
/// rotations of one ciphertext pay once.
fn est_modup_ms(level: u32, log_n: u32, dnum: usize, k: usize, l_total: usize) -> f64 {
    let n = (1u64 << log_n) as f64;
    let ntt = n * log_n as f64 * 2.0e-7; // ms per limb NTT (rough, one core)
    let limbs = level as f64 + 1.0;
    let alpha = (l_total as f64 / dnum as f64).ceil();
    let digits = (limbs / alpha).ceil();
    ntt * (limbs + digits * (limbs + k as f64))
}

/// The rest of a key switch: the inner product with the key and ModDown.
fn est_after_modup_ms(level: u32, log_n: u32, dnum: usize, k: usize, l_total: usize) -> f64 {
    let n = (1u64 << log_n) as f64;
    let ntt = n * log_n as f64 * 2.0e-7;
    let limbs = level as f64 + 1.0;
    let alpha = (l_total as f64 / dnum as f64).ceil();
    let digits = (limbs / alpha).ceil();
    ntt * (2.0 * k as f64 + 2.0 * limbs) + n * 1e-6 * digits * (limbs + k as f64) * 2.0
}

/// Estimated ms of each node of a program, with hoisting as the runtime does it: a run of
/// rotations of one value pays one decomposition per key set among its keys.
pub(crate) fn est_program_ms<'a>(
    nodes: impl IntoIterator<Item = (&'a Op, u32)>,
    log_n: u32,
    splits: &KeySplits,
) -> Vec<f64> {
    let mut prev: Option<(u32, (usize, usize, usize))> = None;
    let mut raised: Vec<(usize, usize, usize)> = vec![];
    nodes
        .into_iter()
        .map(|(op, level)| {
            let Op::Rotate { a, .. } = op else {
                prev = None;
                return est_node_ms(op, level, log_n, splits);
            };
            let split = splits.of(op);
            let (dnum, k, l_total) = split;
            if prev.map(|(src, _)| src) != Some(*a) {
                raised.clear();
            }
            prev = Some((*a, split));
            let rest = est_after_modup_ms(level, log_n, dnum, k, l_total);
            if raised.contains(&split) {
                rest
            } else {
                raised.push(split);
                rest + est_modup_ms(level, log_n, dnum, k, l_total)
            }
        })
        .collect()
}

/// The split each key switch of a program runs in: that of the set its key is made in (a
/// key basis where the key's level has one, `Parameters::key_basis_at`), as (dnum, special
/// primes, chain length): the latency model prices a switch by its key's digits.
pub(crate) struct KeySplits {
    rotation: std::collections::HashMap<i64, (usize, usize, usize)>,
    relin: (usize, usize, usize),
    top: (usize, usize, usize),
}

impl KeySplits {
    pub(crate) fn new(
        params: &ckks::Parameters,
        rotations: impl IntoIterator<Item = (i64, usize)>,
        relin: Option<usize>,
    ) -> Self {
        let of = |level: usize| {
            let p = params.key_basis_at(level).unwrap_or(params);
            (p.dnum(), p.p().len(), p.q().len())
        };
        let top = of(params.max_level());
        Self { rotation: rotations.into_iter().map(|(s, l)| (s, of(l))).collect(), relin: relin.map_or(top, of), top }
    }

    fn of(&self, op: &Op) -> (usize, usize, usize) {
        match op {
            Op::Rotate { step, .. } => self.rotation.get(step).copied().unwrap_or(self.top),
            Op::MulRelin { .. } | Op::Square { .. } => self.relin,
            _ => self.top,
        }
    }
}

pub(crate) fn est_node_ms(op: &Op, level: u32, log_n: u32, splits: &KeySplits) -> f64 {
    let n = (1u64 << log_n) as f64;
    let ntt = n * log_n as f64 * 2.0e-7; // ms per limb NTT (rough, one core)
    let limbs = level as f64 + 1.0;
    let (dnum, k, l_total) = splits.of(op);
    let ks = est_keyswitch_ms(level, log_n, dnum, k, l_total);
    match op {
        Op::Rotate { .. } => ks,
        Op::MulRelin { .. } | Op::Square { .. } => ks + n * 4e-6 * limbs,
        Op::Rescale { .. } => 2.0 * ntt * (limbs + 1.0),
        Op::MulPlain { .. } | Op::MulConst { .. } => n * 2e-6 * limbs,
        Op::Input { .. } | Op::DropLevel { .. } => 0.0,
        _ => n * 1e-6 * limbs,
    }
}
