//! Residual connections: the sum (or difference) of two computed tensors, y = a ± b.
//!
//! The two operands come from different branches of the network, so in the HE program
//! they generally differ in three ways, each fixed here with ordinary IR ops (the
//! simulator and the noise analysis need nothing new):
//!
//! * **slot layout** — element i must sit in the same slot in both. When the layouts
//!   already agree (or one has zeros where the other has elements) they are added as
//!   they are. Otherwise one operand (or both) is re-packed by an *identity dense
//!   layer* in the block design of [`crate::lower`] (`DensePlan::Periodic`): its output
//!   puts element t at slot `bsz·t`, which is exactly the layout a dense layer with the
//!   same block size gives the other branch. Masks are multiplied before any rotation,
//!   so garbage never spreads; the rotations are powers of two, shared with the layers.
//!   A re-packing costs one level, on the branch that has levels to spare when it can.
//! * **level** — the higher operand is brought down with `DropLevel`;
//! * **scale** — when the scales differ (a branch went through an exact square, whose
//!   scale is Δ²/q), the higher operand is multiplied by the constant 1 encoded so that
//!   the rescale lands exactly on the other's scale; at equal levels one operand pays a
//!   level for it and the other is dropped to match.

use model::ir::same_scale;

use crate::affine::Affine;
use crate::lower::{self, block_layout, Builder, DensePlan, GARBAGE, V, ZERO};

/// Levels an addition may consume beyond its deeper operand (re-packing both operands
/// through an intermediate layout, then a scale alignment): a bound for chain sizing.
pub const MAX_DEPTH: u32 = 3;

/// A value with its layout.
type Packed = (V, Vec<i32>);
/// Re-packing option: ((levels lost, rotations), blocks for a, blocks for b).
type RepackOption = ((u32, usize), Vec<usize>, Vec<usize>);

/// Slot-wise layout of a + b: an element where both agree or the other is zero.
pub fn merge(la: &[i32], lb: &[i32]) -> Vec<i32> {
    la.iter()
        .zip(lb)
        .map(|(&x, &y)| {
            if x == y {
                x
            } else if x == ZERO {
                y
            } else if y == ZERO {
                x
            } else {
                GARBAGE
            }
        })
        .collect()
}

/// Whether every element `0..n` appears somewhere in `l`.
fn covers(l: &[i32], n: usize) -> bool {
    let mut seen = vec![false; n];
    for &e in l {
        if e >= 0 && (e as usize) < n {
            seen[e as usize] = true;
        }
    }
    seen.into_iter().all(|s| s)
}

/// Rotations of re-packing layout `l` into [`block_layout`]`(bsz)` in one identity
/// dense layer, or None when the block design cannot take it (period shorter than the
/// block, an element missing from the first period, too few slots).
fn step_cost(l: &[i32], bsz: usize, n: usize) -> Option<usize> {
    let s = l.len();
    let np = n.max(1).next_power_of_two();
    let pin = lower::period_of(l);
    if bsz > pin || s / bsz < np {
        return None;
    }
    if !covers(&l[..pin], n) {
        return None;
    }
    Some(DensePlan::Periodic { pin, bsz }.rotations(n))
}

/// The cheapest chain of at most two identity layers taking `l` to block size `bsz`:
/// (block sizes in order, rotations).
fn route(l: &[i32], bsz: usize, n: usize) -> Option<(Vec<usize>, usize)> {
    let s = l.len();
    let mut best: Option<(Vec<usize>, usize)> = step_cost(l, bsz, n).map(|c| (vec![bsz], c));
    let mut mid = 1;
    while mid < s {
        if let Some(c1) = step_cost(l, mid, n) {
            if let Some(c2) = step_cost(&block_layout(s, mid, n), bsz, n) {
                if best.as_ref().map(|b| b.0.len() > 1 && c1 + c2 < b.1).unwrap_or(true) {
                    best = Some((vec![mid, bsz], c1 + c2));
                }
            }
        }
        mid *= 2;
    }
    best
}

/// Re-packs `x` through the identity layers of a route.
fn repack(b: &mut Builder, mut x: V, l: &[i32], blocks: &[usize], n: usize) -> (V, Vec<i32>) {
    let id = Affine::identity(n);
    let mut l = l.to_vec();
    for &bsz in blocks {
        let plan = DensePlan::Periodic { pin: lower::period_of(&l), bsz };
        let (y, nl) = lower::dense_layer(b, x, &id, &l, &plan);
        x = y;
        l = nl;
    }
    (x, l)
}

/// Puts both operands in layouts whose sum holds every element once per slot.
fn align_layouts(
    b: &mut Builder,
    (va, la): (V, &[i32]),
    (vb, lb): (V, &[i32]),
    n: usize,
) -> Result<(Packed, Packed), String> {
    if covers(&merge(la, lb), n) {
        return Ok(((va, la.to_vec()), (vb, lb.to_vec())));
    }
    let s = b.slots;
    // Options: (blocks for a, blocks for b); scored by the level left, then rotations.
    let mut best: Option<RepackOption> = None;
    let mut consider = |ra: Vec<usize>, rb: Vec<usize>, rot: usize| {
        let la_left = va.level as i64 - ra.len() as i64;
        let lb_left = vb.level as i64 - rb.len() as i64;
        let left = la_left.min(lb_left);
        if left < 0 {
            return;
        }
        let key = (u32::MAX - left as u32, rot);
        if best.as_ref().map(|b| key < b.0).unwrap_or(true) {
            best = Some((key, ra, rb));
        }
    };
    let np = n.max(1).next_power_of_two();
    let mut bsz = 1;
    while bsz <= s / np {
        let target = block_layout(s, bsz, n);
        let ra = route(la, bsz, n);
        let rb = route(lb, bsz, n);
        if let Some((rb, c)) = &rb {
            if covers(&merge(la, &target), n) {
                consider(vec![], rb.clone(), *c);
            }
        }
        if let Some((ra, c)) = &ra {
            if covers(&merge(&target, lb), n) {
                consider(ra.clone(), vec![], *c);
            }
        }
        if let (Some((ra, ca)), Some((rb, cb))) = (&ra, &rb) {
            consider(ra.clone(), rb.clone(), ca + cb);
        }
        bsz *= 2;
    }
    let Some((_, ra, rb)) = best else {
        return Err(format!(
            "the two operands are packed differently and neither can be re-packed into the other's layout ({n} elements, N/2 = {s} slots, periods {} and {}); put a linear layer on the skip path or make both branches end in layers of the same width",
            lower::period_of(la),
            lower::period_of(lb)
        ));
    };
    Ok((repack(b, va, la, &ra, n), repack(b, vb, lb, &rb, n)))
}

/// Brings two values to one level and one scale.
fn align_levels(b: &mut Builder, a: V, c: V) -> Result<(V, V), String> {
    if a.level == c.level && same_scale(a.scale, c.scale) {
        return Ok((a, c));
    }
    if a.level != c.level {
        let (hi, lo, swapped) = if a.level > c.level { (a, c, false) } else { (c, a, true) };
        let hi = if same_scale(hi.scale, lo.scale) {
            b.drop_to(hi, lo.level)
        } else {
            let h = b.drop_to(hi, lo.level + 1);
            b.mul_const_to(h, 1.0, lo.scale)
        };
        return Ok(if swapped { (lo, hi) } else { (hi, lo) });
    }
    if a.level == 0 {
        return Err("out of levels to align the operands' scales".into());
    }
    let a2 = b.mul_const_to(a, 1.0, c.scale);
    let c2 = b.drop_to(c, a.level - 1);
    Ok((a2, c2))
}

/// y = a + b (a − b with `sub`) of two values of `n` elements: layouts, levels and
/// scales aligned first. Returns y and its layout.
pub fn add(b: &mut Builder, a: (V, &[i32]), c: (V, &[i32]), n: usize, sub: bool) -> Result<Packed, String> {
    let ((va, la), (vc, lc)) = align_layouts(b, a, c, n)?;
    let (va, vc) = align_levels(b, va, vc)?;
    let y = if sub { b.sub(va, vc) } else { b.add(va, vc) };
    let layout = merge(&la, &lc);
    if !covers(&layout, n) {
        return Err("internal: the aligned layouts do not hold every element".into());
    }
    Ok((y, layout))
}

#[cfg(test)]
mod tests {
    use super::*;
    use model::{Node, Op};

    fn values(nodes: &[Node], plains: &[model::PlainVec], slots: usize, input: &[f64]) -> Vec<Vec<f64>> {
        let ops: Vec<Op> = nodes.iter().map(|n| n.op.clone()).collect();
        let pl: Vec<Vec<f64>> = plains
            .iter()
            .map(|p| {
                let mut v = p.values.clone();
                v.resize(slots, 0.0);
                v
            })
            .collect();
        model::sim::run(&ops, &pl, &[input.to_vec()], slots).unwrap()
    }

    /// Two different layouts of the same 8 elements: a replicated one (element e at
    /// every slot ≡ e mod 8) and a block one (element e at slot 4e); their sum holds 2x.
    #[test]
    fn repacks_and_adds_different_layouts() {
        let slots = 256;
        let n = 8;
        let q: Vec<u64> = (0..8).map(|i| (1u64 << 40) + ((2 * i + 1) << 24) + 1).collect();
        let mut b = Builder::new(q, slots);
        let x = b.input(0, 7, 2f64.powi(40));
        let la: Vec<i32> = (0..slots).map(|s| (s % 8) as i32).collect();
        let x_in: Vec<f64> = (0..slots).map(|s| 1.0 + (s % 8) as f64).collect();
        // The other operand: x re-packed to block size 4, then squared (other scale, lower level).
        let (vb, lb) = repack(&mut b, x, &la, &[4], n);
        let vb = b.square_rescale(vb);
        let (y, ly) = add(&mut b, (x, &la), (vb, &lb), n, false).unwrap();
        let vals = values(&b.nodes, &b.plains, slots, &x_in);
        let out = &vals[y.id as usize];
        for e in 0..n {
            let s = ly.iter().position(|&v| v == e as i32).unwrap();
            let want = (1.0 + e as f64) + (1.0 + e as f64).powi(2);
            assert!((out[s] - want).abs() < 1e-9, "element {e}: {} vs {want}", out[s]);
        }
        let inputs = [(7u32, 2f64.powi(40))];
        model::ir::validate_program(&b.nodes, &b.plains, &b.q, slots, &inputs).unwrap();
    }

    #[test]
    fn agreeing_layouts_add_directly() {
        let slots = 64;
        let q: Vec<u64> = (0..4).map(|i| (1u64 << 40) + ((2 * i + 1) << 24) + 1).collect();
        let mut b = Builder::new(q, slots);
        let x = b.input(0, 3, 2f64.powi(40));
        let l: Vec<i32> = (0..slots).map(|s| if s < 4 { s as i32 } else { ZERO }).collect();
        let before = b.nodes.len();
        let (_, ly) = add(&mut b, (x, &l), (x, &l), 4, true).unwrap();
        assert_eq!(b.nodes.len(), before + 1, "no re-packing when the layouts agree");
        assert_eq!(ly, l);
    }
}
