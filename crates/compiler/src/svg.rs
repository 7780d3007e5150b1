//! SVG picture of an activation's polynomial against the true function over the fitted
//! range, over the histogram of calibration values.

use crate::activation::ActFn;
use crate::approx::Fit;

pub fn plot(title: &str, fit: &Fit, f: ActFn, samples: &[f64]) -> String {
    plot_fn(title, fit.center - fit.radius, fit.center + fit.radius, &|x| fit.eval(x), f, samples)
}

/// `plot` for any approximation `p` of `f` on [lo, hi] (a composite has no one `Fit`).
pub fn plot_fn(title: &str, lo: f64, hi: f64, p: &dyn Fn(f64) -> f64, f: ActFn, samples: &[f64]) -> String {
    let (w, h, m) = (640.0, 400.0, 40.0);
    let xs: Vec<f64> = (0..=200).map(|i| lo + (hi - lo) * i as f64 / 200.0).collect();
    let ys_f: Vec<f64> = xs.iter().map(|&x| f.eval(x)).collect();
    let ys_p: Vec<f64> = xs.iter().map(|&x| p(x)).collect();
    let ymin = ys_f.iter().chain(&ys_p).cloned().fold(f64::INFINITY, f64::min);
    let ymax = ys_f.iter().chain(&ys_p).cloned().fold(f64::NEG_INFINITY, f64::max);
    let ymax = if ymax - ymin < 1e-9 { ymin + 1.0 } else { ymax };
    let px = |x: f64| m + (x - lo) / (hi - lo) * (w - 2.0 * m);
    let py = |y: f64| h - m - (y - ymin) / (ymax - ymin) * (h - 2.0 * m);
    let mut s = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="12">
<rect width="100%" height="100%" fill="white"/>
<text x="{m}" y="20">{}</text>
"#,
        title.replace('&', "&amp;").replace('<', "&lt;")
    );
    // Histogram of calibration values.
    let bins = 40;
    let mut hist = vec![0usize; bins];
    for &v in samples {
        if v >= lo && v <= hi {
            let b = (((v - lo) / (hi - lo)) * bins as f64) as usize;
            hist[b.min(bins - 1)] += 1;
        }
    }
    let hmax = *hist.iter().max().unwrap_or(&1).max(&1) as f64;
    let bw = (w - 2.0 * m) / bins as f64;
    for (i, &c) in hist.iter().enumerate() {
        let bh = c as f64 / hmax * (h - 2.0 * m) * 0.9;
        s += &format!(
            "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"#cfe3f7\"/>\n",
            m + i as f64 * bw,
            h - m - bh,
            bw - 1.0,
            bh
        );
    }
    let line = |ys: &[f64], color: &str, dash: &str| {
        let pts: Vec<String> = xs.iter().zip(ys).map(|(&x, &y)| format!("{:.1},{:.1}", px(x), py(y))).collect();
        format!("<polyline fill=\"none\" stroke=\"{color}\" stroke-width=\"2\" {dash} points=\"{}\"/>\n", pts.join(" "))
    };
    s += &line(&ys_f, "black", "");
    s += &line(&ys_p, "#d62728", "stroke-dasharray=\"6,3\"");
    s += &format!(
        "<line x1=\"{m}\" y1=\"{0}\" x2=\"{1}\" y2=\"{0}\" stroke=\"gray\"/>\n<text x=\"{m}\" y=\"{2}\">{lo:.2}</text><text x=\"{3}\" y=\"{2}\" text-anchor=\"end\">{hi:.2}</text>\n",
        h - m,
        w - m,
        h - m + 15.0,
        w - m
    );
    s += &format!(
        "<text x=\"{0}\" y=\"40\" text-anchor=\"end\">black: {1}; red dashed: polynomial (max |err| {2:.4}); blue: calibration histogram</text>\n</svg>\n",
        w - m,
        f.name(),
        ys_f.iter().zip(&ys_p).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max)
    );
    s
}
