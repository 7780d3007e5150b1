//! Layout T (throughput, CryptoNets) in a compiled model: ciphertext i holds input
//! feature i of up to N/2 samples, one sample per slot, so every weight is a scalar and
//! no Galois key is needed (relinearisation only). It has its own parameter set, chosen
//! for the batch and the program's depth, so a T ciphertext or key is never read as an
//! L one (the fingerprints differ).
//!
//! The server-side program ([`ThroughputProgram`], weights included) lives in the model
//! file only; the client sees [`ThroughputSpec`] (parameters, counts, levels, scales)
//! in the client spec, and [`LayoutCost`] per layout to choose one by its batch.

use ckks::ParamsSpec;
use serde::{Deserialize, Serialize};

use crate::ModelError;

/// Version of the layout-T fields (model file and client spec).
pub const THROUGHPUT_VERSION: u32 = 1;

/// What a client needs to encrypt a batch in layout T and read the answer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ThroughputSpec {
    pub version: u32,
    /// The layout's own parameter set (every q prime below 2^31).
    pub params: ParamsSpec,
    /// Input features = ciphertexts in one request (feature i in ciphertext i).
    pub features: u32,
    /// Level and scale every input ciphertext must have.
    pub input_level: u32,
    pub input_scale: f64,
    /// Answer ciphertexts (output j of every sample in ciphertext j), their level and scale.
    pub outputs: u32,
    pub output_level: u32,
    pub output_scale: f64,
    /// Samples one request holds at most (N/2 slots).
    pub max_batch: u32,
}

/// One layer of the server's layout-T program.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum ThroughputLayer {
    /// y = W·x + b over features; `rows[o]` = (input, weight) pairs of output o; the result
    /// is brought to `target_scale` by its rescales.
    Linear { inputs: u32, rows: Vec<Vec<(u32, f64)>>, bias: Vec<f64>, target_scale: f64 },
    /// x², feature by feature (left unrelinearised until the next linear layer).
    Square,
}

/// The server's layout-T program (weights included: never sent to clients).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ThroughputProgram {
    pub version: u32,
    pub layers: Vec<ThroughputLayer>,
}

/// What one layout costs, from compile-time figures: the client picks the cheapest for
/// the batch it holds (`heinfer run --layout auto`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LayoutCost {
    /// "L" (one sample per request) or "T" (one sample per slot, a batch per request).
    pub layout: String,
    /// Estimated evaluation seconds of one request (any batch up to `max_batch`).
    pub latency_s: f64,
    /// Request and answer bytes of one full request, and of one sample at the full batch.
    pub request_bytes: usize,
    pub answer_bytes: usize,
    pub request_bytes_per_sample: f64,
    pub answer_bytes_per_sample: f64,
    /// Estimated evaluation seconds per sample at the full batch.
    pub cost_s_per_sample: f64,
    /// Upload of the evaluation-key bundle, and what it holds.
    pub key_bytes: usize,
    pub keys: String,
    /// Samples one request holds at most.
    pub max_batch: usize,
}

impl LayoutCost {
    /// Estimated seconds (evaluation) plus transfer at `bytes_per_s` to score `samples`
    /// samples in this layout: the quantity `--layout auto` minimises.
    pub fn total_s(&self, samples: usize, bytes_per_s: f64) -> f64 {
        let requests = samples.div_ceil(self.max_batch.max(1)).max(1) as f64;
        requests * (self.latency_s + (self.request_bytes + self.answer_bytes) as f64 / bytes_per_s)
    }
}

impl ThroughputProgram {
    /// Checks the program against its client spec: shapes chain, every square sits
    /// between linear layers, the last layer is linear with `spec.outputs` outputs.
    pub fn validate(&self, spec: &ThroughputSpec) -> Result<(), ModelError> {
        let bad = |m: &str| Err(ModelError::Invalid(format!("layout-T program: {m}")));
        if self.version != THROUGHPUT_VERSION || spec.version != THROUGHPUT_VERSION {
            return bad("unsupported version");
        }
        if spec.params.q.iter().any(|&q| q >= 1 << 31) || !(10..=16).contains(&spec.params.log_n) {
            return bad("parameters unfit for layout T");
        }
        if spec.max_batch as usize > 1usize << (spec.params.log_n - 1) || spec.max_batch == 0 {
            return bad("maximum batch beyond the slots");
        }
        let mut width = spec.features as usize;
        let mut prev_square = true;
        for l in &self.layers {
            match l {
                ThroughputLayer::Linear { inputs, rows, bias, target_scale } => {
                    if *inputs as usize != width || rows.len() != bias.len() || !target_scale.is_finite() {
                        return bad("linear layer shapes disagree");
                    }
                    if rows.iter().flatten().any(|&(i, w)| i >= *inputs || !w.is_finite()) {
                        return bad("weight index out of range");
                    }
                    width = bias.len();
                    prev_square = false;
                }
                ThroughputLayer::Square if prev_square => return bad("a square must follow a linear layer"),
                ThroughputLayer::Square => prev_square = true,
            }
        }
        if prev_square || width != spec.outputs as usize {
            return bad("the program must end in a linear layer of the spec's outputs");
        }
        if spec.input_level as usize >= spec.params.q.len() || spec.output_level > spec.input_level {
            return bad("levels out of range");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> ThroughputSpec {
        ThroughputSpec {
            version: THROUGHPUT_VERSION,
            params: ParamsSpec {
                log_n: 13,
                q: vec![(1 << 30) - 35, (1 << 20) + 1, (1 << 20) + 7],
                p: vec![],
                dnum: 1,
                log_scale: 20.0,
                key_bases: vec![],
            },
            features: 2,
            input_level: 2,
            input_scale: 1e6,
            outputs: 1,
            output_level: 1,
            output_scale: 1e9,
            max_batch: 4096,
        }
    }

    fn linear(inputs: u32, outputs: usize) -> ThroughputLayer {
        ThroughputLayer::Linear {
            inputs,
            rows: (0..outputs).map(|_| (0..inputs).map(|i| (i, 0.5)).collect()).collect(),
            bias: vec![0.0; outputs],
            target_scale: 1e6,
        }
    }

    fn program(layers: Vec<ThroughputLayer>) -> ThroughputProgram {
        ThroughputProgram { version: THROUGHPUT_VERSION, layers }
    }

    #[test]
    fn validate_accepts_linear_square_linear_and_refuses_broken_chains() {
        let s = spec();
        assert!(program(vec![linear(2, 3), ThroughputLayer::Square, linear(3, 1)]).validate(&s).is_ok());
        for bad in [
            vec![ThroughputLayer::Square, linear(2, 1)],
            vec![linear(2, 3), ThroughputLayer::Square],
            vec![linear(2, 3), ThroughputLayer::Square, ThroughputLayer::Square, linear(3, 1)],
            vec![linear(2, 3), linear(2, 1)],
            vec![linear(2, 2)],
        ] {
            assert!(program(bad.clone()).validate(&s).is_err(), "{bad:?}");
        }
        let mut big = spec();
        big.max_batch = 5000;
        assert!(program(vec![linear(2, 1)]).validate(&big).is_err());
        let mut wide = spec();
        wide.params.q.push(1 << 40);
        assert!(program(vec![linear(2, 1)]).validate(&wide).is_err());
    }

    #[test]
    fn total_cost_prefers_l_for_one_sample_and_t_for_a_batch() {
        let l = LayoutCost {
            layout: "L".into(),
            latency_s: 0.05,
            request_bytes: 200_000,
            answer_bytes: 100_000,
            request_bytes_per_sample: 200_000.0,
            answer_bytes_per_sample: 100_000.0,
            cost_s_per_sample: 0.05,
            key_bytes: 0,
            keys: String::new(),
            max_batch: 1,
        };
        let t =
            LayoutCost { layout: "T".into(), latency_s: 1.0, request_bytes: 6_000_000, max_batch: 4096, ..l.clone() };
        assert!(l.total_s(1, 1e8) < t.total_s(1, 1e8));
        assert!(t.total_s(4096, 1e8) < l.total_s(4096, 1e8));
        assert_eq!(t.total_s(4097, 1e8), 2.0 * t.total_s(4096, 1e8));
    }
}
