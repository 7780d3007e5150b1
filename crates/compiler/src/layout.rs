//! Stage: layout. Packs the approximated network into one ciphertext and lowers it to
//! CKKS operations ([`lower`] for linear layers and polynomials, [`residual`] for
//! additions). The parameter search builds it on trial primes for each ring; the final
//! build on the chosen primes becomes the model with its client spec.

use model::{ClientSpec, HeModel, InputSpec, Op, OutputSpec};

use crate::import::Imported;
use crate::network::LStage;
use crate::{cheb, lower, residual, CompileError};

/// Builds the HE program for `stages` on S slots with primes `q`.
pub(crate) struct Built {
    pub b: lower::Builder,
    pub client_map: Vec<i32>,
    pub out: lower::V,
    pub out_layout: Vec<i32>,
    pub input_level: u32,
    pub input_scale: f64,
    pub layout_desc: String,
    /// The first layer's output layout and its bias plaintext (for public features).
    pub first_layout: Vec<i32>,
    pub first_bias_pt: Option<u32>,
    /// A compact input's period (`Shape::compact`).
    pub compact_period: Option<usize>,
    /// A compact input's first layer applied before packing (`Shape::pack_first`).
    pub first_layer: Option<model::first_layer::PackedFirstLayer>,
}

/// How the program is laid out beyond its stages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Shape {
    /// Where linear layers rotate their products.
    pub sum_at: lower::SumAt,
    /// The input arrives as a compact query (`compile --query compact`, `rlwe::packing`):
    /// laid out with a period of the next power of two ≥ its length, so that the client
    /// sends one word per element of a period, and at [`COMPACT_INPUT_BOOST`] times the
    /// scale, which the packing's noise needs. The first layer is then a dense layer on
    /// a periodic input (the "first layer" design lays the input out over all slots).
    pub compact: bool,
    /// With `compact`: the first linear layer runs on the query before packing
    /// (`model::first_layer`, a ring query), and the server packs its outputs.
    pub pack_first: bool,
    /// Rotation keys for powers of this radix only (`lower::Builder::radix`).
    pub radix: u32,
    /// The first layer's replicas summed with one key (`lower::Builder::one_top_key`).
    pub one_top_key: bool,
}

impl Shape {
    /// The shape `opts` ask for: a compact input's first layer goes before the packing
    /// where `--first-layer` says so, or, for `auto`, where that is cheaper
    /// ([`packs_first_cheaper`]).
    pub(crate) fn for_options(sum_at: lower::SumAt, opts: &crate::Options, stages: &[LStage]) -> Shape {
        let compact = opts.compact_query;
        let pack_first = compact
            && match opts.first_layer {
                crate::FirstLayer::Slots => false,
                crate::FirstLayer::Coefficients => true,
                crate::FirstLayer::Auto => packs_first_cheaper(stages),
            };
        Shape { sum_at, compact, pack_first, radix: opts.galois_radix.unwrap_or(2), one_top_key: opts.one_top_key }
    }
}

/// Whether packing the first layer's outputs costs fewer key switches than packing its
/// inputs: P_out + log2(N/P_out) against P_in + log2(N/P_in) plus the layer's own
/// rotations on the packed input (at least log2 P_in, to sum a period), where P is the
/// period (next power of two) of each side. N cancels. False where the first stage is not
/// a linear layer on the input alone, or a later stage reads the input.
pub(crate) fn packs_first_cheaper(stages: &[LStage]) -> bool {
    let Some(LStage::Linear { map, src: 0, .. }) = stages.first() else {
        return false;
    };
    if stages.iter().skip(1).any(reads_input) {
        return false;
    }
    let (p_in, p_out) = (compact_period(map.n_in) as f64, compact_period(map.n_out()) as f64);
    p_out - p_out.log2() < p_in
}

/// Whether a stage reads the network's input (value 0) directly.
fn reads_input(st: &LStage) -> bool {
    match st {
        LStage::Linear { src, .. } | LStage::Square { src, .. } | LStage::Poly { src, .. } => *src == 0,
        LStage::Composite { src, .. } => *src == 0,
        LStage::Add { a, b, .. } => *a == 0 || *b == 0,
    }
}

/// A compact input's scale over the network's. The packing adds up to ~2^23 of noise at
/// N = 2^13 (measured: `cargo test -p ckks --release --test compact_query`), and the
/// first layer's weights then have 2^-boost of their usual precision: 2^6 balances the
/// two (each ~0.005 on a digits MLP's first layer against its 0.2 output error).
pub(crate) const COMPACT_INPUT_BOOST: f64 = 64.0;

/// `mask_output`: end with a 0/1 mask that keeps one slot per output and zeroes every
/// other (one more level): the answer then carries the outputs and nothing else of the
/// computation (output DP needs it; circuit privacy's first half).
pub(crate) fn build(
    stages: &[LStage],
    q: &[u64],
    slots: usize,
    scale: f64,
    mask_output: bool,
    shape: Shape,
) -> Result<Built, CompileError> {
    build_with(stages, q, slots, scale, mask_output, false, shape)
}

/// [`build`], with `keep_first_bias`: the first layer's bias plaintext is emitted even
/// when zero (public features add to it per request).
pub(crate) fn build_with(
    stages: &[LStage],
    q: &[u64],
    slots: usize,
    scale: f64,
    mask_output: bool,
    keep_first_bias: bool,
    shape: Shape,
) -> Result<Built, CompileError> {
    let mut b = lower::Builder::new(q.to_vec(), slots);
    b.sum_at = shape.sum_at;
    b.radix = shape.radix;
    b.one_top_key = shape.one_top_key;
    let top = q.len() as u32 - 1;
    if shape.compact {
        return build_compact(b, stages, scale, mask_output, shape);
    }
    let x = b.input(0, top, scale);
    let (v0, layout0, client_map, desc) = match stages.first() {
        Some(LStage::Linear { map, src: 0, .. }) => {
            let plan = lower::plan_first(map, slots)?;
            let desc = format!(
                "{} window(s) x {} outputs: output (window w, member c) at slot w + {}*c, period {}; client puts window w's tap t in column w (see slot_map), replicated every {} slots",
                plan.groups.len(),
                plan.cp,
                plan.wp,
                plan.period(),
                plan.period() * plan.rr
            );
            b.keep_zero_add = keep_first_bias;
            let (v, l, c) = lower::first_layer(&mut b, x, map, &plan);
            b.keep_zero_add = false;
            (v, l, c, desc)
        }
        _ => {
            return Err(CompileError::Layout("the model must begin with a linear layer (Gemm, MatMul or Conv)".into()))
        }
    };
    let first_layout = layout0.clone();
    let first_bias_pt = match b.nodes.last() {
        Some(model::Node { op: Op::AddPlain { pt, .. }, .. }) => Some(*pt),
        _ => None,
    };
    // Every value with its layout (the input's is the client's slot map).
    let vals = vec![(x, client_map.clone()), (v0, layout0)];
    let (b, out, out_layout) = lower_stages(b, stages, vals, 1, mask_output)?;
    Ok(Built {
        b,
        client_map,
        out,
        out_layout,
        input_level: top,
        input_scale: scale,
        layout_desc: desc,
        first_layout,
        first_bias_pt,
        compact_period: None,
        first_layer: None,
    })
}

/// [`build_with`] for a compact input ([`Shape::compact`]).
fn build_compact(
    mut b: lower::Builder,
    stages: &[LStage],
    scale: f64,
    mask_output: bool,
    shape: Shape,
) -> Result<Built, CompileError> {
    let Some(LStage::Linear { map, src: 0, .. }) = stages.first() else {
        return Err(CompileError::Layout("the model must begin with a linear layer (Gemm, MatMul or Conv)".into()));
    };
    if shape.pack_first {
        return build_packed_first(b, stages, map, scale, mask_output);
    }
    let n_in = map.n_in;
    let period = compact_period(n_in);
    if 2 * period > b.slots {
        return Err(CompileError::Layout(format!(
            "a compact query of {n_in} values needs {} slots (twice the period {period}) but N/2 = {}",
            2 * period,
            b.slots
        )));
    }
    let top = b.q.len() as u32 - 1;
    let input_scale = scale * COMPACT_INPUT_BOOST;
    b.boosted_input = Some((input_scale, COMPACT_INPUT_BOOST));
    let x = b.input(0, top, input_scale);
    let client_map: Vec<i32> =
        (0..b.slots).map(|j| if j % period < n_in { (j % period) as i32 } else { lower::ZERO }).collect();
    let desc = format!(
        "compact query: element t at slot t, period {period} (one word per element of a period, packed by the server), scale x{COMPACT_INPUT_BOOST}"
    );
    let (b, out, out_layout) = lower_stages(b, stages, vec![(x, client_map.clone())], 0, mask_output)?;
    let first_layout = vec![];
    Ok(Built {
        b,
        client_map,
        out,
        out_layout,
        input_level: top,
        input_scale,
        layout_desc: desc,
        first_layout,
        first_bias_pt: None,
        compact_period: Some(period),
        first_layer: None,
    })
}

/// [`build_compact`] with the first layer applied before packing ([`Shape::pack_first`]):
/// the program's input is the layer's output (without its bias, which is the first
/// `add_plain`) with the period of its outputs, one level below the query, at the
/// network's scale (the packing runs at the product's scale: no raised input scale).
fn build_packed_first(
    mut b: lower::Builder,
    stages: &[LStage],
    map: &crate::affine::Affine,
    scale: f64,
    mask_output: bool,
) -> Result<Built, CompileError> {
    let (n_in, n_out) = (map.n_in, map.n_out());
    let period = compact_period(n_out);
    if 2 * period > b.slots || n_in > b.slots {
        return Err(CompileError::Layout(format!(
            "a first layer of {n_in} -> {n_out} before packing needs {} slots (twice the output period {period}) \
             and {n_in} query values, but N/2 = {}",
            2 * period,
            b.slots
        )));
    }
    if let Some(st) = stages.iter().skip(1).find(|s| reads_input(s)) {
        return Err(CompileError::Layout(format!(
            "layer '{}' reads the model's input itself, which a first layer applied before packing consumes; \
             use --first-layer slots",
            st.info().name
        )));
    }
    let top = b.q.len() as u32 - 1;
    if top == 0 {
        return Err(CompileError::Layout("no level for the packing's rescale".into()));
    }
    b.layer = 0;
    let h = b.input(0, top - 1, scale);
    let layout: Vec<i32> =
        (0..b.slots).map(|j| if j % period < n_out { (j % period) as i32 } else { lower::ZERO }).collect();
    let bias: Vec<f64> = layout.iter().map(|&e| if e >= 0 { map.bias[e as usize] } else { 0.0 }).collect();
    let h = b.add_plain(h, bias);
    let client_map: Vec<i32> = (0..n_in as i32).collect();
    let mut weights = vec![0.0; n_out * n_in];
    for (r, row) in map.rows.iter().enumerate() {
        for &(i, w) in row {
            weights[r * n_in + i as usize] = w;
        }
    }
    let desc = format!(
        "compact ring query: element t at coefficient t ({n_in} words); the server applies the first layer \
         ({n_in} -> {n_out}) before packing its outputs with period {period}"
    );
    // Value 0 (the input) is never read past the first layer: it stands in for it.
    let (b, out, out_layout) = lower_stages(b, stages, vec![(h, layout.clone()), (h, layout)], 1, mask_output)?;
    Ok(Built {
        b,
        client_map,
        out,
        out_layout,
        input_level: top,
        input_scale: scale,
        layout_desc: desc,
        first_layout: vec![],
        first_bias_pt: None,
        compact_period: Some(period),
        first_layer: Some(model::first_layer::PackedFirstLayer {
            version: model::first_layer::FIRST_LAYER_VERSION,
            n_in: n_in as u32,
            n_out: n_out as u32,
            period: period as u32,
            weights,
        }),
    })
}

/// The Galois elements a compact input adds to the bundle (made at the input level):
/// the packing's and the conjugation's; none without one.
pub(crate) fn compact_keys(params: &ckks::Parameters, shape: Shape) -> Vec<u64> {
    if !shape.compact {
        return vec![];
    }
    let mut e = ckks::packing_elements(params);
    e.push(params.conjugation_element());
    e
}

/// The period of a compact query of `n` values: the next power of two, at least 2.
pub(crate) fn compact_period(n: usize) -> usize {
    n.next_power_of_two().max(2)
}

/// Lowers `stages[from..]` on `vals` (value and layout of the input and of each stage
/// before `from`), then the output mask if asked. Returns the builder, the output and
/// its layout.
fn lower_stages(
    mut b: lower::Builder,
    stages: &[LStage],
    mut vals: Vec<(lower::V, Vec<i32>)>,
    from: usize,
    mask_output: bool,
) -> Result<(lower::Builder, lower::V, Vec<i32>), CompileError> {
    for (i, st) in stages.iter().enumerate().skip(from) {
        b.layer = i as u32;
        let next = match st {
            LStage::Linear { map, src, .. } => {
                let (v, layout) = &vals[*src];
                let plan = lower::plan_dense(map, layout)?;
                lower::dense_layer(&mut b, *v, map, layout, &plan)
            }
            LStage::Square { src, .. } => {
                let (v, layout) = vals[*src].clone();
                if v.level < 1 {
                    return Err(CompileError::Internal("out of levels".into()));
                }
                (b.square_rescale(v), layout)
            }
            LStage::Poly { cheb, exact_zero, src, .. } => {
                let (v, mut layout) = vals[*src].clone();
                if v.level < cheb::depth_rec(cheb) {
                    return Err(CompileError::Internal("out of levels".into()));
                }
                let y = lower::poly(&mut b, v, cheb);
                if !exact_zero {
                    for e in layout.iter_mut() {
                        if *e == lower::ZERO {
                            *e = lower::GARBAGE;
                        }
                    }
                }
                (y, layout)
            }
            LStage::Composite { stages, src, .. } => {
                let (mut v, mut layout) = vals[*src].clone();
                if v.level < st.depth() - 1 {
                    return Err(CompileError::Internal("out of levels".into()));
                }
                // Slots outside the layout hold whatever the rotations brought there. The
                // composite's polynomials (degree ~7^3) send such a value past the modulus
                // as soon as it leaves the fitted interval, and one such slot wraps every
                // coefficient: the whole answer decrypts wrong, though the simulation's
                // used slots are right. Zeroed first, for one level (`LStage::depth` counts it).
                if layout.contains(&lower::GARBAGE) {
                    if v.level < st.depth() {
                        return Err(CompileError::Internal("out of levels".into()));
                    }
                    let mask: Vec<f64> = layout.iter().map(|&e| if e >= 0 { 1.0 } else { 0.0 }).collect();
                    let masked = b.mul_plain(v, mask);
                    v = b.rescale(masked);
                    for e in layout.iter_mut().filter(|e| **e == lower::GARBAGE) {
                        *e = lower::ZERO;
                    }
                }
                // x·s(x) with odd stages: zero where x is zero, so the layout stays.
                (lower::composite(&mut b, v, stages), layout)
            }
            LStage::Add { name, a, b: bb, sub, n, .. } => {
                let (va, la) = vals[*a].clone();
                let (vb, lb) = vals[*bb].clone();
                residual::add(&mut b, (va, &la), (vb, &lb), *n, *sub)
                    .map_err(|e| CompileError::Layout(format!("residual connection '{name}': {e}")))?
            }
        };
        vals.push(next);
    }
    let (mut out, mut out_layout) = vals.pop().expect("at least one stage");
    if mask_output {
        if out.level < 1 {
            return Err(CompileError::Internal("no level left for the output mask".into()));
        }
        // Keep the first slot of each output (where the client spec will point), zero the rest.
        let mut seen = std::collections::HashSet::new();
        let mask: Vec<f64> = out_layout.iter().map(|&e| if e >= 0 && seen.insert(e) { 1.0 } else { 0.0 }).collect();
        for (e, &m) in out_layout.iter_mut().zip(&mask) {
            if m == 0.0 {
                *e = lower::ZERO;
            }
        }
        // Counted with the last layer in the report (the clamp, under output DP).
        b.layer = stages.len().saturating_sub(1) as u32;
        let masked = b.mul_plain(out, mask);
        out = b.rescale(masked);
    }
    Ok((b, out, out_layout))
}

/// Whether the program needs the relinearization key.
pub(crate) fn needs_relinearization(b: &lower::Builder) -> bool {
    b.nodes.iter().any(|n| matches!(n.op, Op::Square { .. } | Op::MulRelin { .. }))
}

/// The model: the network built on `params`' primes, with the client spec that says how
/// to lay out the input and where the `n_out` outputs are.
#[allow(clippy::too_many_arguments)] // the build's knobs, each from a different stage of `compile`
pub(crate) fn program(
    imp: &Imported,
    stages: &[LStage],
    params: &ckks::Parameters,
    n_out: usize,
    name: &str,
    mask_output: bool,
    public: Option<crate::hybrid::Split>,
    shape: Shape,
) -> Result<HeModel, CompileError> {
    let slots = params.slots();
    let bt = build_with(stages, params.q(), slots, params.default_scale(), mask_output, public.is_some(), shape)?;
    let steps = lower::rotation_steps(&bt.b.nodes);
    let relin = needs_relinearization(&bt.b);
    let mut out_slots = Vec::with_capacity(n_out);
    for o in 0..n_out {
        let s = bt
            .out_layout
            .iter()
            .position(|&e| e == o as i32)
            .ok_or_else(|| CompileError::Internal(format!("output {o} has no slot")))?;
        out_slots.push((0u32, s as u32));
    }
    let out_node = &bt.b.nodes[bt.out.id as usize];
    let client = ClientSpec {
        version: model::CLIENT_SPEC_VERSION,
        model: name.to_string(),
        params: params.spec().clone(),
        input: InputSpec {
            name: imp.input_name.clone(),
            shape: imp.input_shape.clone(),
            level: bt.input_level,
            scale: bt.input_scale,
            slot_map: vec![bt.client_map.clone()],
            layout: bt.layout_desc.clone(),
            parts: imp.input_parts.clone(),
            compact: bt.compact_period.map(|period| model::CompactInput {
                period: period as u32,
                galois_elements: compact_keys(params, shape),
                ring_values: bt.first_layer.as_ref().map(|f| f.n_in),
            }),
        },
        rotation_steps: steps.clone(),
        galois_elements: steps.iter().map(|&s| params.galois_element(s)).collect(),
        relinearization: relin,
        key_levels: lower::key_levels(&bt.b.nodes, &steps),
        output: OutputSpec {
            name: imp.he_output.clone(),
            shape: vec![n_out],
            ciphertexts: 1,
            slots: out_slots,
            multiplier: 1.0,
            level: out_node.level,
            scale: out_node.scale,
            final_name: imp.final_output.clone(),
        },
        postprocess: imp.postprocess.clone(),
        output_dp: None,
        circuit_privacy: None,
        public_features: vec![],
        throughput: None,
        multi: None,
        layouts: vec![],
        prefix: None,
        client_aided: None,
        answer: None,
    };
    let mut hem = HeModel {
        name: name.to_string(),
        client,
        layers: stages.iter().map(|s| s.info()).collect(),
        nodes: bt.b.nodes,
        plaintexts: bt.b.plains,
        outputs: vec![bt.out.id],
        report: None,
        public: None,
        throughput: None,
        multi: None,
        first_layer: bt.first_layer,
    };
    hem.validate().map_err(|e| CompileError::Internal(e.to_string()))?;
    if let Some(split) = public {
        crate::hybrid::attach(&mut hem, split, bt.first_bias_pt, bt.first_layout)?;
    }
    Ok(hem)
}
