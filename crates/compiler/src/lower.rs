//! Packing and lowering: each stage becomes CKKS ops over one ciphertext.
//!
//! A *layout* says, for every slot, which tensor element it holds (`>= 0`), or that it
//! is zero (`ZERO`) or holds a value nobody may read unmasked (`GARBAGE`). Linear layers
//! always multiply by their plaintext weights *before* any rotation, and the weights
//! are zero on slots that are not elements, so garbage never reaches a result.
//!
//! Designs (S = N/2 slots, all rotations left, sums by rotate-and-add "trees"):
//!
//! * **first layer** (the client lays the input out): the outputs are grouped by their
//!   input support (a convolution's window; a dense layer is one group). With `Wp`
//!   windows and `Cp` outputs per window (powers of two), outputs live at
//!   `w + Wp·c` with period `P = Wp·Cp`; the client places window `w`'s taps down its
//!   column so that `G` weight products, a rotation tree by `Wp·2^i` and a sum over
//!   `P·2^i` give every output in every period: one ciphertext, no input rotations, and
//!   an output already replicated for the next layer.
//! * **dense on a periodic input** (period `P_in`): blocks of `b` slots; output `t` at
//!   slot `b·t` sums `G = P_in/b` consecutive blocks (one whole period): `G` products,
//!   a tree by `b·2^i`, a sum over `1..b/2`.
//! * **dense on a strided input** (elements at `base + p·k`): one product per output
//!   row, a tree by `2^i` that moves row `r` to offset `−r`, and a sum over `p·2^i`.
//!
//! All layers share power-of-two rotation steps, so a whole network needs few Galois keys.

use std::collections::BTreeSet;

use model::{Node, Op, PlainVec};

use crate::affine::Affine;
use crate::CompileError;

pub const ZERO: i32 = -1;
pub const GARBAGE: i32 = -2;

/// A ciphertext value during building.
#[derive(Clone, Copy, Debug)]
pub struct V {
    pub id: u32,
    pub level: u32,
    pub scale: f64,
}

pub struct Builder {
    pub q: Vec<u64>,
    pub slots: usize,
    pub nodes: Vec<Node>,
    pub plains: Vec<PlainVec>,
    pub layer: u32,
    /// Emit `add_plain` of an all-zero vector too (the public features' bias plaintext
    /// must exist even when the model's bias is zero).
    pub keep_zero_add: bool,
    /// Where linear layers rotate their products ([`Builder::linear_sum`]).
    pub sum_at: SumAt,
    /// A compact input's scale (`layout::Shape::compact`) and its factor over the
    /// network's: products of that value (and its rotations, which keep its scale) take
    /// plaintexts at q/boost, so the rescale lands on the network's scale.
    pub boosted_input: Option<(f64, f64)>,
    /// Rotation keys only for powers of this radix (`compile --galois-radix`): a step of
    /// another size becomes that many rotations by the radix's powers (its base-R digits).
    /// 2: every power of two has its key (fewest rotations). 4 or 8: about half or a third
    /// of the keys, each sum tree level then costing up to R/2 rotations.
    pub radix: u32,
    /// The first layer's replica sum by one Galois key at the top level
    /// ([`first_layer`]): fewer bytes for more rotations where keys cost the most.
    pub one_top_key: bool,
}

/// Where a linear layer's rotate-and-sum runs: the compiler's trade between key bytes
/// and noise, chosen per model (`compile --rotations`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SumAt {
    /// At the products' doubled scale, then one rescale: the rotations' key-switch
    /// noise is 2^-(log q) smaller relative to the scale, but they run at the products'
    /// level, so their keys are made up to it.
    Doubled,
    /// After each giant's rescale, one level lower: a Galois key is made only up to the
    /// highest level its step is used at, and with one digit per prime its bytes grow
    /// with the square of the level, so this takes the top level's keys out of most
    /// bundles, and each rotation switches one limb less. The rotations' key-switch
    /// rounding is then added at the plain scale: a few units against 2^24 or more per
    /// rotation, which the noise analysis measures with the rest.
    Rescaled,
}

impl SumAt {
    /// For the report.
    pub fn describe(self) -> &'static str {
        match self {
            SumAt::Doubled => "before the rescale",
            SumAt::Rescaled => "after the rescale",
        }
    }
}

impl Builder {
    pub fn new(q: Vec<u64>, slots: usize) -> Self {
        Builder {
            q,
            slots,
            nodes: vec![],
            plains: vec![],
            layer: 0,
            keep_zero_add: false,
            sum_at: SumAt::Doubled,
            boosted_input: None,
            radix: 2,
            one_top_key: false,
        }
    }
    fn push(&mut self, op: Op, level: u32, scale: f64) -> V {
        self.nodes.push(Node { op, level, scale, layer: self.layer });
        V { id: self.nodes.len() as u32 - 1, level, scale }
    }
    pub fn input(&mut self, index: u32, level: u32, scale: f64) -> V {
        self.push(Op::Input { index }, level, scale)
    }
    fn plain(&mut self, mut values: Vec<f64>, level: u32, scale: f64) -> u32 {
        while values.last() == Some(&0.0) {
            values.pop();
        }
        self.plains.push(PlainVec { level, scale, values });
        self.plains.len() as u32 - 1
    }
    /// x ⊙ values at scale x.scale·q_level (the rescale that follows restores the
    /// scale), not yet rescaled. Linear layers sum their products at this scale and
    /// rescale the sums once each ([`Builder::linear_sum`]): a rescale's rounding is
    /// then added once instead of to every product.
    pub fn mul_plain(&mut self, x: V, values: Vec<f64>) -> V {
        let mut ps = self.q[x.level as usize] as f64;
        if let Some((scale, boost)) = self.boosted_input {
            if x.scale == scale {
                ps /= boost;
            }
        }
        let pt = self.plain(values, x.level, ps);
        self.push(Op::MulPlain { a: x.id, pt }, x.level, x.scale * ps)
    }
    pub fn rescale(&mut self, x: V) -> V {
        let q = self.q[x.level as usize] as f64;
        self.push(Op::Rescale { a: x.id }, x.level - 1, x.scale / q)
    }
    pub fn add_plain(&mut self, x: V, values: Vec<f64>) -> V {
        if !self.keep_zero_add && values.iter().all(|&v| v == 0.0) {
            return x;
        }
        let pt = self.plain(values, x.level, x.scale);
        self.push(Op::AddPlain { a: x.id, pt }, x.level, x.scale)
    }
    pub fn add(&mut self, a: V, b: V) -> V {
        debug_assert_eq!(a.level, b.level);
        self.push(Op::Add { a: a.id, b: b.id }, a.level, a.scale)
    }
    pub fn sub(&mut self, a: V, b: V) -> V {
        debug_assert_eq!(a.level, b.level);
        self.push(Op::Sub { a: a.id, b: b.id }, a.level, a.scale)
    }
    pub fn rotate(&mut self, x: V, step: i64) -> V {
        let s = self.slots as i64;
        let mut k = step.rem_euclid(s);
        if k > s / 2 {
            k -= s;
        }
        if k == 0 {
            return x;
        }
        if self.radix <= 2 {
            return self.push(Op::Rotate { a: x.id, step: k }, x.level, x.scale);
        }
        // k = ±Σ d_j·R^j: d_j rotations by ±R^j each (keys for the radix's powers only).
        let (sign, radix) = (k.signum(), self.radix as u64);
        let (mut rest, mut power, mut v) = (k.unsigned_abs(), 1u64, x);
        while rest > 0 {
            for _ in 0..rest % radix {
                v = self.push(Op::Rotate { a: v.id, step: sign * power as i64 }, x.level, x.scale);
            }
            rest /= radix;
            power *= radix;
        }
        v
    }
    pub fn square_rescale(&mut self, x: V) -> V {
        let m = self.push(Op::Square { a: x.id }, x.level, x.scale * x.scale);
        self.rescale(m)
    }
    pub fn mul_relin_rescale(&mut self, a: V, b: V) -> V {
        let m = self.push(Op::MulRelin { a: a.id, b: b.id }, a.level, a.scale * b.scale);
        self.rescale(m)
    }
    pub fn drop_to(&mut self, x: V, level: u32) -> V {
        if x.level == level {
            return x;
        }
        self.push(Op::DropLevel { a: x.id, level }, level, x.scale)
    }
    /// c·x at (x.level − 1, target_scale).
    pub fn mul_const_to(&mut self, x: V, c: f64, target_scale: f64) -> V {
        let q = self.q[x.level as usize] as f64;
        let ps = target_scale * q / x.scale;
        let m = self.push(Op::MulConst { a: x.id, c, pt_scale: ps }, x.level, x.scale * ps);
        let mut r = self.rescale(m);
        r.scale = target_scale; // equal up to rounding; recorded exactly
        self.nodes[r.id as usize].scale = target_scale;
        r
    }
    pub fn add_const(&mut self, x: V, c: f64) -> V {
        if c == 0.0 {
            return x;
        }
        self.push(Op::AddConst { a: x.id, c }, x.level, x.scale)
    }
    /// Σ_g rot(v_g, g·step) by a binary tree (len−1 rotations, steps step·2^i).
    pub fn rot_tree(&mut self, mut vs: Vec<V>, step: i64) -> V {
        let mut s = step;
        while vs.len() > 1 {
            let mut next = Vec::with_capacity(vs.len().div_ceil(2));
            for pair in vs.chunks(2) {
                if pair.len() == 2 {
                    let r = self.rotate(pair[1], s);
                    next.push(self.add(pair[0], r));
                } else {
                    next.push(pair[0]);
                }
            }
            vs = next;
            s *= 2;
        }
        vs[0]
    }
    /// Σ_g rot(x ⊙ d_g, g·step), then x + rot(x, s) for each of `then`, rescaled, as
    /// baby-step/giant-step: with g = j·B + b,
    /// rot(x ⊙ d_g, g·step) = rot(rot(x, b·step) ⊙ rot(d_g, b·step), j·B·step), so the
    /// B − 1 baby rotations are of `x` alone and share one key-switch decomposition
    /// (the runtime hoists consecutive rotations of one value), and only G/B − 1 giant
    /// rotations remain, by a tree. `max_babies` 2 needs no key beyond the power-of-two
    /// steps every layer already uses; 4 needs one more (3·step). The giant tree and
    /// `then` rotate before or after the rescale as [`Builder::sum_at`] says.
    pub fn linear_sum(
        &mut self,
        x: V,
        diags: Vec<Vec<f64>>,
        step: i64,
        max_babies: usize,
        then: impl IntoIterator<Item = i64>,
    ) -> V {
        self.linear_sum_then(x, diags, step, max_babies, |b, u| b.rot_sum(u, then))
    }
    /// [`Builder::linear_sum`] with the last part of the sum (`then`) given as a function
    /// of the giants' sum, before the rescale.
    pub fn linear_sum_then(
        &mut self,
        x: V,
        diags: Vec<Vec<f64>>,
        step: i64,
        max_babies: usize,
        then: impl FnOnce(&mut Self, V) -> V,
    ) -> V {
        let g = diags.len();
        let babies = g.min(max_babies).max(1);
        let slots = self.slots as i64;
        let mut xs = vec![x];
        for b in 1..babies {
            // With keys for a radix's powers only, b·step is b rotations from x but one
            // from the previous baby: the babies go in a chain (not hoisted).
            let next = match self.radix {
                2 => self.rotate(x, b as i64 * step),
                _ => self.rotate(xs[b - 1], step),
            };
            xs.push(next);
        }
        let mut giants = Vec::with_capacity(g.div_ceil(babies));
        for chunk in diags.chunks(babies) {
            let mut acc: Option<V> = None;
            for (bi, d) in chunk.iter().enumerate() {
                let k = (bi as i64 * step).rem_euclid(slots) as usize;
                let rd: Vec<f64> = d[k..].iter().chain(&d[..k]).copied().collect();
                if rd.iter().all(|&v| v == 0.0) {
                    continue;
                }
                let m = self.mul_plain(xs[bi], rd);
                acc = Some(match acc {
                    Some(a) => self.add(a, m),
                    None => m,
                });
            }
            // An all-zero group still needs a value of the right level and scale.
            let acc = acc.unwrap_or_else(|| self.mul_plain(x, vec![0.0]));
            giants.push(if self.sum_at == SumAt::Rescaled { self.rescale(acc) } else { acc });
        }
        let u = self.rot_tree(giants, babies as i64 * step);
        let u = then(self, u);
        match self.sum_at {
            SumAt::Doubled => self.rescale(u),
            SumAt::Rescaled => u,
        }
    }
    /// Σ_{t < count} rot(x, t·step) by Horner's rule, x + rot(x + rot(x + …, step), step):
    /// count − 1 rotations, all by `step` (one key where doubling needs log2(count)). `step`
    /// must be in (−slots/2, slots/2] and non-zero.
    pub fn horner_copies(&mut self, x: V, step: i64, count: usize) -> V {
        debug_assert!(step != 0 && step.unsigned_abs() as usize <= self.slots / 2, "step {step}");
        let mut acc = x;
        for _ in 1..count {
            // By `step` itself whatever the radix: its key is the one key of the sum, where
            // the radix's digits would be several rotations each time.
            let r = self.push(Op::Rotate { a: acc.id, step }, acc.level, acc.scale);
            acc = self.add(x, r);
        }
        acc
    }
    /// x + rot(x, s) for s in steps.
    pub fn rot_sum(&mut self, mut x: V, steps: impl IntoIterator<Item = i64>) -> V {
        for s in steps {
            let r = self.rotate(x, s);
            x = self.add(x, r);
        }
        x
    }
}

fn pow2(n: usize) -> usize {
    n.max(1).next_power_of_two()
}

fn log2(n: usize) -> usize {
    n.trailing_zeros() as usize
}

/// The client-side layout and cost of a first layer, without building it.
pub struct FirstPlan {
    pub groups: Vec<(Vec<u32>, Vec<usize>)>,
    pub wp: usize,
    pub cp: usize,
    pub g: usize,
    pub rr: usize,
}

impl FirstPlan {
    pub fn period(&self) -> usize {
        self.wp * self.cp
    }
}

/// Groups a map's rows by identical support.
pub fn plan_first(map: &Affine, slots: usize) -> Result<FirstPlan, CompileError> {
    let mut groups: Vec<(Vec<u32>, Vec<usize>)> = vec![];
    let mut index: std::collections::HashMap<Vec<u32>, usize> = Default::default();
    for (o, r) in map.rows.iter().enumerate() {
        let sup: Vec<u32> = r.iter().map(|e| e.0).collect();
        match index.get(&sup) {
            Some(&g) => groups[g].1.push(o),
            None => {
                index.insert(sup.clone(), groups.len());
                groups.push((sup, vec![o]));
            }
        }
    }
    // Many tiny groups (a dense layer with some exact zeros) are better as one dense group.
    if groups.len() > 1 && groups.iter().map(|g| g.0.len()).max().unwrap_or(0) * 2 > map.n_in {
        let all: Vec<u32> = (0..map.n_in as u32).collect();
        groups = vec![(all, (0..map.n_out()).collect())];
    }
    let wp = pow2(groups.len());
    let k = groups.iter().map(|g| g.0.len()).max().unwrap_or(1).max(1);
    let mut cp = pow2(groups.iter().map(|g| g.1.len()).max().unwrap_or(1));
    loop {
        let p = wp * cp;
        if p > slots {
            return Err(CompileError::Layout(format!(
                "the first layer needs {p} slots per period ({} windows × {} outputs) but N/2 = {slots}",
                groups.len(),
                cp
            )));
        }
        let r = slots / p;
        let (g, rr) = if k <= r { (1, pow2(k)) } else { (pow2(k.div_ceil(r)), r) };
        if g <= cp {
            return Ok(FirstPlan { groups, wp, cp, g, rr });
        }
        cp *= 2;
    }
}

/// Builds the first layer. Returns the result, its layout, and the client's slot map.
pub fn first_layer(b: &mut Builder, x: V, map: &Affine, plan: &FirstPlan) -> (V, Vec<i32>, Vec<i32>) {
    let s = b.slots;
    let (wp, cp, g, rr) = (plan.wp, plan.cp, plan.g, plan.rr);
    let p = wp * cp;
    let qq = p * rr;
    // Client layout, periodic with period qq.
    let tap_of = |slot: usize| -> (usize, usize) {
        let slot = slot % qq;
        let w = slot % wp;
        let rho = slot / wp;
        let (r2, m2) = (rho % cp, rho / cp);
        (w, (r2 % g) * rr + m2)
    };
    let client: Vec<i32> = (0..s)
        .map(|slot| {
            let (w, t) = tap_of(slot);
            match plan.groups.get(w) {
                Some((sup, _)) if t < sup.len() => sup[t] as i32,
                _ => ZERO,
            }
        })
        .collect();
    let row_of = |j: usize| -> Option<usize> {
        let j = j % p;
        plan.groups.get(j % wp).and_then(|(_, rows)| rows.get(j / wp).copied())
    };
    let mut diags = Vec::with_capacity(g);
    for gi in 0..g {
        let d: Vec<f64> = (0..s)
            .map(|slot| {
                let el = client[slot];
                if el < 0 {
                    return 0.0;
                }
                let j = (slot + s - (wp * gi) % s) % p;
                match row_of(j) {
                    Some(o) => map.rows[o].iter().find(|e| e.0 == el as u32).map(|e| e.1).unwrap_or(0.0),
                    None => 0.0,
                }
            })
            .collect();
        diags.push(d);
    }
    // The rr replicas of each window's taps are summed at the top level, where a Galois
    // key costs the most (every digit of every prime). By doubling: log2(rr) rotations,
    // a key per power of two. With `one_top_key`: Horner's rule over the rr rows, rr − 1
    // rotations all by p, one key (the other powers are then used only lower down, if at all).
    let mut y = if b.one_top_key && rr > 2 {
        b.linear_sum_then(x, diags, wp as i64, 4, |b, u| b.horner_copies(u, p as i64, rr))
    } else {
        b.linear_sum(x, diags, wp as i64, 4, (0..log2(rr)).map(|i| (p << i) as i64))
    };
    let layout: Vec<i32> = (0..s).map(|j| row_of(j).map(|o| o as i32).unwrap_or(ZERO)).collect();
    let bias: Vec<f64> = layout.iter().map(|&o| if o >= 0 { map.bias[o as usize] } else { 0.0 }).collect();
    y = b.add_plain(y, bias);
    (y, layout, client)
}

/// Smallest power-of-two period of the element positions of a layout.
pub fn period_of(layout: &[i32]) -> usize {
    let s = layout.len();
    let mut p = 1;
    while p < s {
        if (0..s).all(|i| {
            let base = layout[i % p];
            base < 0 || layout[i] == base
        }) && (0..s).all(|i| layout[i] < 0 || layout[i % p] == layout[i])
        {
            return p;
        }
        p *= 2;
    }
    s
}

/// Canonical (first) slot of each element in `[0, limit)`.
fn first_pos(layout: &[i32], n: usize, limit: usize) -> Vec<Option<usize>> {
    let mut pos = vec![None; n];
    for (sl, &e) in layout[..limit].iter().enumerate() {
        if e >= 0 && (e as usize) < n && pos[e as usize].is_none() {
            pos[e as usize] = Some(sl);
        }
    }
    pos
}

/// The layout a block-design dense layer of `n` outputs and block size `bsz` produces:
/// element t at slot `bsz·(t + np·k)` (np = n rounded up to a power of two), garbage
/// between the blocks' first slots.
pub fn block_layout(slots: usize, bsz: usize, n: usize) -> Vec<i32> {
    let np = pow2(n);
    (0..slots)
        .map(|sl| {
            if sl % bsz != 0 {
                return GARBAGE;
            }
            let o = (sl / bsz) % np;
            if o < n {
                o as i32
            } else {
                ZERO
            }
        })
        .collect()
}

pub enum DensePlan {
    Periodic { pin: usize, bsz: usize },
    Strided { base: usize, stride: usize, k: usize },
}

impl DensePlan {
    pub fn rotations(&self, n_out: usize) -> usize {
        match *self {
            DensePlan::Periodic { pin, bsz } => pin / bsz - 1 + log2(bsz),
            DensePlan::Strided { k, .. } => tree_rotations(n_out) + log2(k),
        }
    }
}

fn tree_rotations(n: usize) -> usize {
    let mut len = n;
    let mut r = 0;
    while len > 1 {
        r += len / 2;
        len = len.div_ceil(2);
    }
    r
}

/// Chooses the cheapest design for a dense map on an input layout.
pub fn plan_dense(map: &Affine, layout: &[i32]) -> Result<DensePlan, CompileError> {
    let s = layout.len();
    let n_in = map.n_in;
    let n_out = map.n_out();
    let np = pow2(n_out);
    let mut best: Option<(usize, DensePlan)> = None;
    let pin = period_of(layout);
    let pos = first_pos(layout, n_in, pin);
    let missing = pos
        .iter()
        .enumerate()
        .find(|(i, p)| p.is_none() && map.rows.iter().any(|r| r.iter().any(|e| e.0 == *i as u32)));
    if missing.is_none() {
        let mut bsz = 1;
        while bsz <= pin {
            if s / bsz >= np {
                let c = DensePlan::Periodic { pin, bsz };
                let cost = c.rotations(n_out);
                if best.as_ref().map(|b| cost < b.0).unwrap_or(true) {
                    best = Some((cost, c));
                }
            }
            bsz *= 2;
        }
    }
    // Strided: canonical positions base + stride·k.
    let pos_all = first_pos(layout, n_in, s);
    if pos_all.iter().all(|p| p.is_some()) && n_in > 0 {
        let ps: Vec<usize> = pos_all.iter().map(|p| p.unwrap()).collect();
        let base = *ps.iter().min().unwrap();
        let mut stride = s;
        for &p in &ps {
            let d = p - base;
            if d > 0 {
                stride = stride.min(1 << d.trailing_zeros());
            }
        }
        if n_in == 1 {
            stride = s;
        }
        let k = pow2((ps.iter().max().unwrap() - base) / stride + 1);
        if np <= stride && stride * k <= s {
            let c = DensePlan::Strided { base, stride, k };
            let cost = c.rotations(n_out);
            if best.as_ref().map(|b| cost < b.0).unwrap_or(true) {
                best = Some((cost, c));
            }
        }
    }
    best.map(|b| b.1).ok_or_else(|| {
        CompileError::Layout(format!(
            "no packing found for a dense layer {n_in} -> {n_out} on this layout (N/2 = {s} slots)"
        ))
    })
}

pub fn dense_layer(b: &mut Builder, x: V, map: &Affine, layout: &[i32], plan: &DensePlan) -> (V, Vec<i32>) {
    let s = b.slots;
    let n_in = map.n_in;
    let n_out = map.n_out();
    let np = pow2(n_out);
    let weight = |o: usize, i: usize| map.rows[o].iter().find(|e| e.0 as usize == i).map(|e| e.1).unwrap_or(0.0);
    match *plan {
        DensePlan::Periodic { pin, bsz } => {
            let g = pin / bsz;
            let pos = first_pos(layout, n_in, pin);
            let mut diags = Vec::with_capacity(g);
            for gi in 0..g {
                let d: Vec<f64> = (0..s)
                    .map(|sl| {
                        let e = layout[sl];
                        if e < 0 || pos[e as usize] != Some(sl % pin) {
                            return 0.0;
                        }
                        let t = ((sl / bsz) + s / bsz - gi) % (s / bsz);
                        let o = t % np;
                        if o < n_out {
                            weight(o, e as usize)
                        } else {
                            0.0
                        }
                    })
                    .collect();
                diags.push(d);
            }
            let mut y = b.linear_sum(x, diags, bsz as i64, 4, (0..log2(bsz)).map(|i| 1i64 << i));
            let out = block_layout(s, bsz, n_out);
            let bias = out.iter().map(|&o| if o >= 0 { map.bias[o as usize] } else { 0.0 }).collect();
            y = b.add_plain(y, bias);
            (y, out)
        }
        DensePlan::Strided { base, stride, k } => {
            let pos = first_pos(layout, n_in, s);
            let mut diags = Vec::with_capacity(n_out);
            for o in 0..n_out {
                let mut d = vec![0.0; s];
                for (i, p) in pos.iter().enumerate() {
                    if let Some(p) = p {
                        d[*p] = weight(o, i);
                    }
                }
                diags.push(d);
            }
            // Steps 1 and 2^i only: a baby step of 3 would cost a Galois key for this layer alone.
            let mut y = b.linear_sum(x, diags, 1, 2, (0..log2(k)).map(|i| (stride << i) as i64));
            let mut out = vec![GARBAGE; s];
            for o in 0..n_out {
                out[(base + s - o) % s] = o as i32;
            }
            let _ = np;
            let bias = out.iter().map(|&o| if o >= 0 { map.bias[o as usize] } else { 0.0 }).collect();
            y = b.add_plain(y, bias);
            (y, out)
        }
    }
}

/// Evaluates p(x) = Σ cheb[k] T_k(x) (x already normalised to [−1, 1]) at depth
/// ⌈log2(deg+1)⌉-ish: T_(2^k) by doubling (T_2m = 2·T_m² − 1), then p = q·T_m + r
/// recursively. In the Chebyshev basis the coefficients of a fitted activation stay
/// near its values (the power basis of a degree-31 ReLU fit reaches 10^8, which
/// multiplies CKKS noise by as much). The result has level `x.level − depth` and
/// scale `x.scale`.
pub fn poly(b: &mut Builder, x: V, coef: &[f64]) -> V {
    poly_at(b, x, coef, x.scale)
}

/// `poly` with its result at `scale` instead of x's (a product that follows can then land
/// exactly on the scale it needs, as `eval_rec`'s own products do).
fn poly_at(b: &mut Builder, x: V, coef: &[f64], scale: f64) -> V {
    let depth = crate::cheb::depth_rec(coef);
    let out_level = x.level - depth;
    let mut pows = vec![x];
    let d = crate::cheb::degree_of(coef);
    while (1usize << pows.len()) <= d {
        let last = *pows.last().unwrap();
        let sq = b.square_rescale(last);
        let twice = b.add(sq, sq);
        pows.push(b.add_const(twice, -1.0));
    }
    match eval_rec(b, &pows, coef, out_level, scale) {
        Term::Ct(v) => v,
        Term::Const(c) => {
            // A constant polynomial: 0·x + c.
            let z = b.mul_const_to(x, 0.0, scale);
            let z = b.drop_to(z, out_level);
            b.add_const(z, c)
        }
    }
}

/// x · p_k(…p_1(x)) (`composite`: |x|/2 by a composite sign), x normalised to [−1, 1]:
/// each stage by `poly`, the last at the scale that makes the product with x land on
/// x's scale exactly. Level `x.level − Σ depth(p_i) − 1`.
pub fn composite(b: &mut Builder, x: V, stages: &[Vec<f64>]) -> V {
    let Some((last, first)) = stages.split_last() else { return x };
    let s = first.iter().fold(x, |s, c| poly(b, s, c));
    let at = s.level - crate::cheb::depth_rec(last);
    let xd = b.drop_to(x, at);
    let target = x.scale * b.q[at as usize] as f64 / xd.scale;
    let p = poly_at(b, s, last, target);
    let p = b.drop_to(p, at);
    let m = b.mul_relin_rescale(p, xd);
    b.nodes[m.id as usize].scale = x.scale;
    V { scale: x.scale, ..m }
}

enum Term {
    Ct(V),
    Const(f64),
}

fn eval_rec(b: &mut Builder, pows: &[V], c: &[f64], level: u32, scale: f64) -> Term {
    let d = crate::cheb::degree_of(c);
    if d == 0 {
        return Term::Const(c[0]);
    }
    if d == 1 {
        let x = pows[0];
        let t = if c[1] == 1.0 && x.level == level && (x.scale / scale - 1.0).abs() < 1e-12 {
            x
        } else {
            let xd = b.drop_to(x, level + 1);
            b.mul_const_to(xd, c[1], scale)
        };
        return Term::Ct(b.add_const(t, c[0]));
    }
    let k = 63 - (d as u64).leading_zeros() as usize;
    let split = 1usize << k;
    let p = pows[k];
    let pd = b.drop_to(p, level + 1);
    let qs = scale * b.q[(level + 1) as usize] as f64 / pd.scale;
    let (qc, rc) = crate::cheb::cheb_split(&c[..=d], split);
    let prod = match eval_rec(b, pows, &qc, level + 1, qs) {
        Term::Const(cq) => b.mul_const_to(pd, cq, scale),
        Term::Ct(qv) => {
            let m = b.mul_relin_rescale(qv, pd);
            b.nodes[m.id as usize].scale = scale;
            V { scale, ..m }
        }
    };
    match eval_rec(b, pows, &rc, level, scale) {
        Term::Const(c0) => Term::Ct(b.add_const(prod, c0)),
        Term::Ct(r) => {
            let r = b.drop_to(r, level);
            Term::Ct(b.add(prod, r))
        }
    }
}

/// The highest level each of `steps` is used at, and that of any ciphertext product: the
/// client makes each key only that high (a key for level l has ⌈(l+1)/α⌉ digits over l+1
/// q primes), which is most of the key bytes for a network's deeper layers.
pub fn key_levels(nodes: &[Node], steps: &[i64]) -> model::KeyLevels {
    let mut rot: std::collections::HashMap<i64, u32> = std::collections::HashMap::new();
    let mut relin: Option<u32> = None;
    for n in nodes {
        match n.op {
            Op::Rotate { step, .. } => {
                let e = rot.entry(step).or_insert(0);
                *e = (*e).max(n.level);
            }
            Op::MulRelin { .. } | Op::Square { .. } => relin = Some(relin.map_or(n.level, |l| l.max(n.level))),
            _ => {}
        }
    }
    model::KeyLevels {
        rotation: steps.iter().map(|s| rot.get(s).copied().unwrap_or(0)).collect(),
        relinearization: relin,
    }
}

/// Distinct rotation steps used by nodes.
pub fn rotation_steps(nodes: &[Node]) -> Vec<i64> {
    let set: BTreeSet<i64> =
        nodes.iter().filter_map(|n| if let Op::Rotate { step, .. } = n.op { Some(step) } else { None }).collect();
    set.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(b: &Builder, input: &[f64]) -> Vec<Vec<f64>> {
        let ops: Vec<Op> = b.nodes.iter().map(|n| n.op.clone()).collect();
        let pl: Vec<Vec<f64>> = b
            .plains
            .iter()
            .map(|p| {
                let mut v = p.values.clone();
                v.resize(b.slots, 0.0);
                v
            })
            .collect();
        model::sim::run(&ops, &pl, &[input.to_vec()], b.slots).unwrap()
    }

    /// A 3×3 convolution on an 8×8 image as the first layer: with `one_top_key` the
    /// replicas are summed by one key at the top level (step = the period) instead of a key
    /// per power of two, with more rotations there, and every output slot keeps its value.
    #[test]
    fn one_top_key_sums_the_first_layer_with_one_key() {
        let slots = 4096;
        let q: Vec<u64> = (0..4).map(|i| (1u64 << 40) + ((2 * i + 1) << 24) + 1).collect();
        // 2 output channels × 6×6 windows, 9 taps each.
        let mut rows = vec![];
        for c in 0..2 {
            for y in 0..6 {
                for x in 0..6 {
                    let taps = (0..9)
                        .map(|t| (((y + t / 3) * 8 + x + t % 3) as u32, ((c * 9 + t) as f64 * 0.71).cos()))
                        .collect();
                    rows.push(taps);
                }
            }
        }
        let map = Affine { n_in: 64, bias: vec![0.0; rows.len()], rows };
        let image: Vec<f64> = (0..64).map(|i| (i as f64 * 0.23).sin()).collect();
        let top = 3;
        let build_with = |one: bool, radix: u32, sum_at: SumAt| {
            let mut b = Builder::new(q.clone(), slots);
            b.one_top_key = one;
            b.radix = radix;
            b.sum_at = sum_at;
            let plan = plan_first(&map, slots).unwrap();
            let x = b.input(0, top, 2f64.powi(30));
            let (y, layout, client) = first_layer(&mut b, x, &map, &plan);
            let input: Vec<f64> = client.iter().map(|&e| if e >= 0 { image[e as usize] } else { 0.0 }).collect();
            let out = run(&b, &input)[y.id as usize].clone();
            let top_steps: std::collections::BTreeSet<i64> = b
                .nodes
                .iter()
                .filter_map(|n| match n.op {
                    Op::Rotate { step, .. } if n.level == top => Some(step),
                    _ => None,
                })
                .collect();
            let rotations = b.nodes.iter().filter(|n| matches!(n.op, Op::Rotate { .. })).count();
            (out, layout, top_steps, rotations, plan.rr)
        };
        let build = |one: bool| build_with(one, 2, SumAt::Doubled);
        let (_, layout, steps, rotations, rr) = build(false);
        let (_, layout1, steps1, rotations1, _) = build(true);
        assert_eq!(layout, layout1);
        assert!(rr > 2, "the plan replicates {rr} times");
        // Every output slot exact, with and without, at any radix, before or after the rescale.
        for (one, radix, sum_at) in [(false, 2, SumAt::Doubled), (true, 2, SumAt::Doubled), (true, 8, SumAt::Doubled)]
            .into_iter()
            .chain([(true, 4, SumAt::Rescaled), (false, 8, SumAt::Rescaled)])
        {
            let (got, l, ..) = build_with(one, radix, sum_at);
            assert_eq!(l, layout);
            for (j, &o) in layout.iter().enumerate() {
                if o >= 0 {
                    let exact: f64 = map.rows[o as usize].iter().map(|&(i, w)| w * image[i as usize]).sum();
                    assert!((got[j] - exact).abs() < 1e-9, "slot {j}, one key {one}, radix {radix}, {sum_at:?}");
                }
            }
        }
        assert_eq!(steps.len(), rr.trailing_zeros() as usize, "{steps:?}");
        assert_eq!(steps1.len(), 1, "{steps1:?}");
        assert!(rotations1 > rotations);
    }

    /// A sum over 64 slots (steps 1…32) and a few odd steps, with keys for every power of
    /// two and for powers of 4 or 8 only: the same values, fewer distinct steps, more
    /// rotations, every step a power of the radix.
    #[test]
    fn a_radix_keeps_the_values_with_fewer_keys() {
        let slots = 256;
        let q: Vec<u64> = (0..4).map(|i| (1u64 << 40) + ((2 * i + 1) << 24) + 1).collect();
        let input: Vec<f64> = (0..slots).map(|i| (i as f64 * 0.37).sin()).collect();
        let build = |radix: u32| {
            let mut b = Builder::new(q.clone(), slots);
            b.radix = radix;
            let x = b.input(0, 3, 2f64.powi(40));
            let s = b.rot_sum(x, (0..6).map(|i| 1i64 << i));
            let r = b.rotate(s, 48);
            let r = b.rotate(r, -3);
            (r.id as usize, b)
        };
        let (out2, b2) = build(2);
        let want = &run(&b2, &input)[out2];
        for radix in [4u32, 8] {
            let (out, b) = build(radix);
            let got = &run(&b, &input)[out];
            assert!(want.iter().zip(got).all(|(a, g)| (a - g).abs() < 1e-9), "radix {radix}");
            let steps = rotation_steps(&b.nodes);
            assert!(
                steps.iter().all(|s| (s.unsigned_abs() as u32).is_power_of_two()
                    && (s.unsigned_abs().trailing_zeros() % radix.trailing_zeros()) == 0),
                "{steps:?}"
            );
            let rotations = |b: &Builder| b.nodes.iter().filter(|n| matches!(n.op, Op::Rotate { .. })).count();
            assert!(steps.len() < rotation_steps(&b2.nodes).len() && rotations(&b) > rotations(&b2), "{steps:?}");
        }
        // Radix 4: 48 = 3·16 is three rotations by 16, −3 three by −1.
        let (_, b4) = build(4);
        let tail: Vec<i64> = b4
            .nodes
            .iter()
            .rev()
            .take(6)
            .filter_map(|n| if let Op::Rotate { step, .. } = n.op { Some(step) } else { None })
            .collect();
        assert_eq!(tail, vec![-1, -1, -1, 16, 16, 16]);
    }
}
