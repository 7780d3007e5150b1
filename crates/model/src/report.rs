//! The compiler's report, stored in the model file so `heinfer inspect` can re-print it.

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LayerReport {
    pub name: String,
    pub kind: String,
    /// Multiplicative depth (levels) this layer consumes.
    pub depth: u32,
    pub rotations: usize,
    pub mul_plain: usize,
    pub ct_mults: usize,
    pub rescales: usize,
    pub other_ops: usize,
    /// Distinct rotation steps used by this layer.
    pub rotation_steps: Vec<i64>,
    /// Level of the layer's result.
    pub level_out: u32,
    pub est_ms: f64,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ActivationReport {
    pub layer: String,
    pub function: String,
    pub degree: usize,
    /// Range the polynomial was fitted on.
    pub lo: f64,
    pub hi: f64,
    /// Range of the pre-activation values seen in calibration.
    pub seen_lo: f64,
    pub seen_hi: f64,
    /// Coefficients in the power basis of x.
    pub coefficients: Vec<f64>,
    pub max_abs_error: f64,
    /// Picture file (SVG), relative to the model directory.
    pub plot: Option<String>,
    /// |x| by a composite sign instead of one polynomial (MaxPool), when one was chosen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub composite: Option<CompositeReport>,
}

/// MaxPool's |x|/2 as (R/2)·t·p_k(…p_1(t)), t = x/R: which stages, their degrees, the
/// levels it costs, and its error.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CompositeReport {
    /// The stages in order of application, e.g. "g3∘g3∘f3".
    pub stages: String,
    pub degrees: Vec<usize>,
    /// Levels: each stage's evaluation plus the product with t.
    pub depth: u32,
    /// R: inputs are divided by it first.
    pub radius: f64,
    /// The sign is within 1 % of ±1 for |t| ≥ ε.
    pub epsilon: f64,
    /// max |error| of |x|/2 on [−R, R].
    pub max_abs_error: f64,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Accuracy {
    /// Where the reference came from ("onnxruntime 1.x" or "heinfer f64 interpreter").
    pub reference: String,
    pub samples: usize,
    /// Share of samples whose top-1 class from the plaintext simulation equals the reference's.
    pub top1_agreement: f64,
    pub max_abs_error: f64,
    pub mean_abs_error: f64,
    /// Accuracy against labels, if given: of the reference model and of the simulation.
    pub reference_accuracy: Option<f64>,
    pub simulated_accuracy: Option<f64>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub model: String,
    pub log_n: u32,
    pub slots: usize,
    pub q_bits: Vec<f64>,
    pub p_bits: Vec<f64>,
    pub dnum: usize,
    pub log_qp: f64,
    pub security_bound: u32,
    pub log_scale: f64,
    pub depth: u32,
    pub layers: Vec<LayerReport>,
    pub total_rotations: usize,
    pub rotation_steps: Vec<i64>,
    pub galois_keys: usize,
    pub relinearization: bool,
    /// What the client uploads: every key made only as high as the program uses it.
    pub evaluation_key_bytes: usize,
    /// The same keys all made for the top level (what bundles were before key levels).
    #[serde(default)]
    pub evaluation_key_bytes_top_level: usize,
    /// The parsed keys in the server's key store (both halves and their companions).
    #[serde(default)]
    pub key_memory_bytes: usize,
    pub input_ciphertexts: usize,
    pub query_bytes: usize,
    pub response_bytes: usize,
    pub plaintext_memory_bytes: usize,
    pub est_latency_ms: f64,
    pub activations: Vec<ActivationReport>,
    pub accuracy: Option<Accuracy>,
    pub notes: Vec<String>,
    pub compile_seconds: f64,
    /// Per compiled layout (L, T): latency, cost per sample, bytes, keys, largest batch.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub layouts: Vec<crate::LayoutCost>,
}

impl Report {
    /// Human-readable text.
    pub fn to_text(&self) -> String {
        use std::fmt::Write;
        let mut s = String::new();
        let _ = writeln!(s, "model {}", self.model);
        let _ = writeln!(
            s,
            "parameters: N = 2^{} ({} slots), q = {:?} bits, p = {:?} bits, dnum {}, log2(QP) = {:.1} <= {} (128-bit, HE standard 2024), scale 2^{}",
            self.log_n,
            self.slots,
            self.q_bits.iter().map(|b| b.round() as i64).collect::<Vec<_>>(),
            self.p_bits.iter().map(|b| b.round() as i64).collect::<Vec<_>>(),
            self.dnum,
            self.log_qp,
            self.security_bound,
            self.log_scale
        );
        let _ = writeln!(s, "depth {}", self.depth);
        let _ = writeln!(
            s,
            "{:<28} {:<34} {:>5} {:>5} {:>6} {:>6} {:>5} {:>8}",
            "layer", "kind", "depth", "rot", "mulpt", "ctmul", "lvl", "est ms"
        );
        for l in &self.layers {
            let _ = writeln!(
                s,
                "{:<28} {:<34} {:>5} {:>5} {:>6} {:>6} {:>5} {:>8.2}",
                trunc(&l.name, 28),
                trunc(&l.kind, 34),
                l.depth,
                l.rotations,
                l.mul_plain,
                l.ct_mults,
                l.level_out,
                l.est_ms
            );
        }
        let _ = writeln!(
            s,
            "totals: {} rotations, {} Galois keys {:?}, relinearization {}",
            self.total_rotations, self.galois_keys, self.rotation_steps, self.relinearization
        );
        if self.key_memory_bytes > 0 {
            let _ = writeln!(
                s,
                "keys: {:.2} MB to upload (each key made only up to the level it is used at; {:.2} MB all at the top level), {:.1} MB in the server's key store",
                mb(self.evaluation_key_bytes),
                mb(self.evaluation_key_bytes_top_level),
                mb(self.key_memory_bytes)
            );
        }
        // A compact query (a few KB of LWE words) is given in bytes, not as ciphertexts.
        let query = if self.query_bytes < 10_000 {
            format!("{} B", self.query_bytes)
        } else {
            format!("{:.3} MB ({} ciphertext(s))", mb(self.query_bytes), self.input_ciphertexts)
        };
        let _ = writeln!(
            s,
            "sizes: evaluation keys {:.2} MB, query {query}, response {:.3} MB, server plaintexts {:.1} MB",
            mb(self.evaluation_key_bytes),
            mb(self.response_bytes),
            mb(self.plaintext_memory_bytes)
        );
        let _ = writeln!(s, "estimated latency: {:.1} ms (one core, rough model)", self.est_latency_ms);
        for a in &self.activations {
            if let Some(c) = &a.composite {
                let _ = writeln!(
                    s,
                    "activation {}: {} ~ composite sign {} (degrees {:?}, depth {}) on [{:.3}, {:.3}] (seen [{:.3}, {:.3}]), eps {:.3}, max |error| {:.4}",
                    a.layer, a.function, c.stages, c.degrees, c.depth, -c.radius, c.radius, a.seen_lo, a.seen_hi, c.epsilon, c.max_abs_error
                );
                continue;
            }
            let _ = writeln!(
                s,
                "activation {}: {} ~ degree-{} polynomial on [{:.3}, {:.3}] (seen [{:.3}, {:.3}]), max |error| {:.4}{}",
                a.layer,
                a.function,
                a.degree,
                a.lo,
                a.hi,
                a.seen_lo,
                a.seen_hi,
                a.max_abs_error,
                a.plot.as_ref().map(|p| format!(", plot {p}")).unwrap_or_default()
            );
        }
        if let Some(acc) = &self.accuracy {
            let _ = writeln!(
                s,
                "accuracy vs {} on {} samples: top-1 agreement {:.2}%, max |error| {:.4}, mean |error| {:.5}",
                acc.reference,
                acc.samples,
                100.0 * acc.top1_agreement,
                acc.max_abs_error,
                acc.mean_abs_error
            );
            if let (Some(r), Some(m)) = (acc.reference_accuracy, acc.simulated_accuracy) {
                let _ = writeln!(
                    s,
                    "accuracy vs labels: original {:.2}%, compiled (simulated) {:.2}%",
                    100.0 * r,
                    100.0 * m
                );
            }
        }
        for n in &self.notes {
            let _ = writeln!(s, "note: {n}");
        }
        for l in &self.layouts {
            let _ = writeln!(
                s,
                "layout {}: ~{:.3} s per request, ~{:.2e} s per sample, {:.0} B request + {:.0} B answer per sample \
                 (batch {}), keys {} B ({})",
                l.layout,
                l.latency_s,
                l.cost_s_per_sample,
                l.request_bytes_per_sample,
                l.answer_bytes_per_sample,
                l.max_batch,
                l.key_bytes,
                l.keys
            );
        }
        if self.compile_seconds > 0.0 {
            let _ = writeln!(s, "compiled in {:.2} s", self.compile_seconds);
        }
        s
    }
}

/// Decimal megabytes, as `heinfer bench`, the peer tables and the issues count them
/// (the report said 8.78 "MB" for a 9.20 MB bundle).
fn mb(b: usize) -> f64 {
    b as f64 / 1e6
}

fn trunc(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        s.chars().take(n - 1).collect::<String>() + "…"
    }
}
