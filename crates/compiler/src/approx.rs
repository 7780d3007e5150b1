//! Polynomial approximation of activations: least squares in the Chebyshev basis on
//! the calibration range plus a margin (uniform grid + the calibration samples).

/// A fitted polynomial p(x) = Σ coef[k] · t^k with t = (x − center) / radius.
#[derive(Clone, Debug)]
pub struct Fit {
    pub center: f64,
    pub radius: f64,
    /// Power-basis coefficients in t.
    pub coef: Vec<f64>,
    /// The same polynomial in the Chebyshev basis of t (what the HE program evaluates:
    /// its coefficients stay small where the power basis's reach 10^8 at degree 31).
    pub cheb: Vec<f64>,
    pub max_abs_error: f64,
}

impl Fit {
    pub fn eval(&self, x: f64) -> f64 {
        let t = (x - self.center) / self.radius;
        self.coef.iter().rev().fold(0.0, |acc, &c| acc * t + c)
    }
    /// Coefficients in the power basis of x itself (for reports).
    pub fn coef_in_x(&self) -> Vec<f64> {
        // t = a x + b with a = 1/r, b = -c/r; expand Σ c_k (a x + b)^k.
        let (a, b) = (1.0 / self.radius, -self.center / self.radius);
        let d = self.coef.len();
        let mut out = vec![0.0; d];
        let mut pow = vec![1.0]; // (a x + b)^k coefficients
        for (k, &ck) in self.coef.iter().enumerate() {
            for (i, &p) in pow.iter().enumerate() {
                out[i] += ck * p;
            }
            if k + 1 < d {
                let mut next = vec![0.0; pow.len() + 1];
                for (i, &p) in pow.iter().enumerate() {
                    next[i] += b * p;
                    next[i + 1] += a * p;
                }
                pow = next;
            }
        }
        out
    }
}

/// Fits `f` with a polynomial of `degree` on [lo, hi], weighting the uniform grid and
/// the calibration `samples` (a subsample of them) equally in total.
pub fn fit(f: &dyn Fn(f64) -> f64, lo: f64, hi: f64, degree: usize, samples: &[f64]) -> Fit {
    let (lo, hi) = if hi - lo < 1e-9 { (lo - 1.0, hi + 1.0) } else { (lo, hi) };
    let center = 0.5 * (lo + hi);
    let radius = 0.5 * (hi - lo);
    let d = degree + 1;
    let grid: Vec<f64> = (0..=400).map(|i| -1.0 + 2.0 * i as f64 / 400.0).collect();
    let stride = (samples.len() / 8000).max(1);
    let sub: Vec<f64> = samples.iter().step_by(stride).map(|&x| ((x - center) / radius).clamp(-1.0, 1.0)).collect();
    // Mostly the empirical distribution (where the values are), a little of the whole range.
    let (gw, sw) = if sub.is_empty() { (1.0, 0.0) } else { (0.05, 0.95) };
    let wg = gw / grid.len() as f64;
    let ws = if sub.is_empty() { 0.0 } else { sw / sub.len() as f64 };
    // Normal equations in the Chebyshev basis (well conditioned on [-1, 1]).
    let mut ata = vec![0.0; d * d];
    let mut atb = vec![0.0; d];
    let mut row = vec![0.0; d];
    for (pts, w) in [(&grid, wg), (&sub, ws)] {
        for &t in pts.iter() {
            cheb_row(t, &mut row);
            let y = f(center + radius * t);
            for i in 0..d {
                atb[i] += w * row[i] * y;
                for j in 0..d {
                    ata[i * d + j] += w * row[i] * row[j];
                }
            }
        }
    }
    for i in 0..d {
        ata[i * d + i] += 1e-12;
    }
    let c = solve(&mut ata, &mut atb, d);
    // Chebyshev → power basis: T_0 = 1, T_1 = t, T_{k+1} = 2t T_k − T_{k−1}.
    let mut coef = vec![0.0; d];
    let mut tkm1 = vec![1.0];
    let mut tk = vec![0.0, 1.0];
    for (k, &ck) in c.iter().enumerate() {
        let tkk: &Vec<f64> = if k == 0 { &tkm1 } else { &tk };
        for (i, &v) in tkk.iter().enumerate() {
            coef[i] += ck * v;
        }
        if k >= 1 {
            let mut next = vec![0.0; tk.len() + 1];
            for (i, &v) in tk.iter().enumerate() {
                next[i + 1] += 2.0 * v;
            }
            for (i, &v) in tkm1.iter().enumerate() {
                next[i] -= v;
            }
            tkm1 = std::mem::replace(&mut tk, next);
        }
    }
    let mut fit = Fit { center, radius, coef, cheb: c, max_abs_error: 0.0 };
    fit.max_abs_error =
        grid.iter().map(|&t| (fit.eval(center + radius * t) - f(center + radius * t)).abs()).fold(0.0, f64::max);
    fit
}

fn cheb_row(t: f64, row: &mut [f64]) {
    row[0] = 1.0;
    if row.len() > 1 {
        row[1] = t;
    }
    for k in 2..row.len() {
        row[k] = 2.0 * t * row[k - 1] - row[k - 2];
    }
}

/// Gaussian elimination with partial pivoting (small dense systems).
fn solve(a: &mut [f64], b: &mut [f64], n: usize) -> Vec<f64> {
    for col in 0..n {
        let piv = (col..n).max_by(|&i, &j| a[i * n + col].abs().total_cmp(&a[j * n + col].abs())).unwrap();
        if piv != col {
            for k in 0..n {
                a.swap(col * n + k, piv * n + k);
            }
            b.swap(col, piv);
        }
        let p = a[col * n + col];
        if p.abs() < 1e-300 {
            continue;
        }
        for r in col + 1..n {
            let f = a[r * n + col] / p;
            if f != 0.0 {
                for k in col..n {
                    a[r * n + k] -= f * a[col * n + k];
                }
                b[r] -= f * b[col];
            }
        }
    }
    let mut x = vec![0.0; n];
    for r in (0..n).rev() {
        let s: f64 = (r + 1..n).map(|k| a[r * n + k] * x[k]).sum();
        let p = a[r * n + r];
        x[r] = if p.abs() < 1e-300 { 0.0 } else { (b[r] - s) / p };
    }
    x
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cheb::{cheb_eval, power_to_cheb};

    #[test]
    fn fits_relu_and_converts_bases() {
        let f = |x: f64| x.max(0.0);
        let p = fit(&f, -4.0, 4.0, 8, &[]);
        assert!(p.max_abs_error < 0.25, "{}", p.max_abs_error);
        let cx = p.coef_in_x();
        for x in [-3.0f64, -1.0, 0.5, 2.0] {
            let direct: f64 = cx.iter().enumerate().map(|(k, c)| c * x.powi(k as i32)).sum();
            assert!((direct - p.eval(x)).abs() < 1e-9);
        }
        let sq = fit(&|x| x * x, -3.0, 5.0, 2, &[]);
        assert!(sq.max_abs_error < 1e-9);
        for t in [-0.9f64, -0.2, 0.4, 1.0] {
            assert!((cheb_eval(&p.cheb, t) - p.eval(p.center + p.radius * t)).abs() < 1e-9);
            let back = power_to_cheb(&p.coef);
            assert!((cheb_eval(&back, t) - cheb_eval(&p.cheb, t)).abs() < 1e-9);
        }
    }
}
