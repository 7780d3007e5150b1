//! The one ring operation re-randomisation needs: a product in Z_q[X]/(X^n + 1) by a
//! ternary polynomial. q is a power of two, so there is no NTT; a ternary factor makes the
//! schoolbook product n² additions and subtractions of rotated copies (no multiplications),
//! which for n = 2048 is a few milliseconds at most.

/// a·u in Z_{2^64}[X]/(X^n + 1) (callers mask to q), u ternary.
pub(crate) fn mul_ternary(a: &[u64], u: &[i64]) -> Vec<u64> {
    let n = a.len();
    debug_assert_eq!(u.len(), n);
    let mut out = vec![0u64; n];
    for (k, &uk) in u.iter().enumerate() {
        if uk == 0 {
            continue;
        }
        // X^k·a: coefficients i < n − k move up to i + k; the rest wrap to i + k − n with a minus sign.
        let (low, high) = a.split_at(n - k);
        if uk > 0 {
            add_into(&mut out[k..], low);
            sub_into(&mut out[..k], high);
        } else {
            sub_into(&mut out[k..], low);
            add_into(&mut out[..k], high);
        }
    }
    out
}

/// Coefficient 0 of a·u (the only one of the b-part an extracted sample needs): n terms.
pub(crate) fn constant_of_product(a: &[u64], u: &[i64]) -> u64 {
    let n = a.len();
    let mut acc = a[0].wrapping_mul(u[0] as u64);
    for k in 1..n {
        // X^k·X^(n−k) = X^n = −1
        acc = acc.wrapping_sub(a[n - k].wrapping_mul(u[k] as u64));
    }
    acc
}

fn add_into(out: &mut [u64], x: &[u64]) {
    for (o, &v) in out.iter_mut().zip(x) {
        *o = o.wrapping_add(v);
    }
}

fn sub_into(out: &mut [u64], x: &[u64]) {
    for (o, &v) in out.iter_mut().zip(x) {
        *o = o.wrapping_sub(v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The definition: Σ a_i u_k X^(i+k), X^n = −1.
    fn naive(a: &[u64], u: &[i64]) -> Vec<u64> {
        let n = a.len();
        let mut out = vec![0u64; n];
        for i in 0..n {
            for k in 0..n {
                let t = a[i].wrapping_mul(u[k] as u64);
                if i + k < n {
                    out[i + k] = out[i + k].wrapping_add(t);
                } else {
                    out[i + k - n] = out[i + k - n].wrapping_sub(t);
                }
            }
        }
        out
    }

    #[test]
    fn matches_the_definition() {
        let n = 16;
        let a: Vec<u64> = (0..n as u64).map(|i| i.wrapping_mul(0x9e37_79b9_7f4a_7c15)).collect();
        let u: Vec<i64> = (0..n as i64).map(|i| (i * 7 % 3) - 1).collect();
        let want = naive(&a, &u);
        assert_eq!(mul_ternary(&a, &u), want);
        assert_eq!(constant_of_product(&a, &u), want[0]);
    }
}
