//! Chebyshev-basis polynomial algebra shared by the fits (which produce coefficients)
//! and the lowering (which evaluates them): one definition of the split keeps the
//! predicted depth and the emitted program in step.

/// Multiplicative depth of evaluating a polynomial given by power-basis coefficients
/// with the recursive Chebyshev split of the HE evaluation (⌈log2(d+1)⌉, plus one when the
/// leading part needs a constant product).
#[cfg(test)]
fn poly_depth(coef: &[f64]) -> u32 {
    depth_rec(&power_to_cheb(coef))
}

/// Power basis → Chebyshev basis (t·T_j = (T_{j+1} + T_{|j−1|}) / 2).
pub fn power_to_cheb(coef: &[f64]) -> Vec<f64> {
    let d = coef.len();
    let mut out = vec![0.0; d.max(1)];
    let mut tk = vec![1.0]; // t^k in the Chebyshev basis
    for (k, &ck) in coef.iter().enumerate() {
        for (j, &v) in tk.iter().enumerate() {
            out[j] += ck * v;
        }
        if k + 1 < d {
            let mut next = vec![0.0; tk.len() + 1];
            for (j, &v) in tk.iter().enumerate() {
                if j == 0 {
                    next[1] += v;
                } else {
                    next[j + 1] += 0.5 * v;
                    next[j - 1] += 0.5 * v;
                }
            }
            tk = next;
        }
    }
    out
}

/// Σ c_k T_k(t) by Clenshaw's recurrence.
pub fn cheb_eval(c: &[f64], t: f64) -> f64 {
    let (mut b1, mut b2) = (0.0, 0.0);
    for &ck in c.iter().skip(1).rev() {
        let b0 = ck + 2.0 * t * b1 - b2;
        b2 = b1;
        b1 = b0;
    }
    c.first().copied().unwrap_or(0.0) + t * b1 - b2
}

/// p = q·T_m + r with deg r < m, for Chebyshev coefficients `c` of degree d, m ≤ d < 2m:
/// T_{m+i} = 2·T_m·T_i − T_{m−i}.
pub(crate) fn cheb_split(c: &[f64], m: usize) -> (Vec<f64>, Vec<f64>) {
    let d = degree_of(c);
    let mut q = vec![0.0; d - m + 1];
    let mut r = c[..m].to_vec();
    q[0] = c[m];
    for i in 1..=d - m {
        q[i] = 2.0 * c[m + i];
        r[m - i] -= c[m + i];
    }
    (q, r)
}

pub(crate) fn degree_of(coef: &[f64]) -> usize {
    coef.iter().rposition(|&c| c != 0.0).unwrap_or(0)
}

/// Depth of the HE evaluation (`lower::poly`) of Chebyshev coefficients `c`; the
/// packing must consume exactly these levels, so both follow one split.
pub(crate) fn depth_rec(c: &[f64]) -> u32 {
    let d = degree_of(c);
    if d == 0 {
        return 0;
    }
    if d == 1 {
        return if c[1] == 1.0 { 0 } else { 1 };
    }
    let k = 63 - (d as u64).leading_zeros(); // 2^k <= d
    let (q, r) = cheb_split(c, 1usize << k);
    let dq = depth_rec(&q);
    let qd = if degree_of(&q) == 0 { 1 } else { dq };
    (k.max(qd) + 1).max(depth_rec(&r))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chebyshev_split_is_exact() {
        let c: Vec<f64> = (0..12).map(|i| 1.0 / (1.0 + i as f64)).collect();
        let (q, r) = cheb_split(&c, 8);
        for t in [-1.0f64, -0.3, 0.1, 0.77] {
            let t8 = cheb_eval(&[0., 0., 0., 0., 0., 0., 0., 0., 1.], t);
            let lhs = cheb_eval(&c, t);
            let rhs = cheb_eval(&q, t) * t8 + cheb_eval(&r, t);
            assert!((lhs - rhs).abs() < 1e-12, "{lhs} {rhs}");
        }
    }

    #[test]
    fn depth_is_logarithmic() {
        assert_eq!(poly_depth(&[0.0, 2.0]), 1);
        assert_eq!(poly_depth(&[1.0, 2.0, 3.0, 4.0]), 2);
        assert_eq!(poly_depth(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0]), 3);
        assert!(poly_depth(&[1.0, 2.0, 3.0, 4.0, 5.0]) <= 3);
    }
}
