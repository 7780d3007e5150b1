//! What a client of a seeded-LWE linear model needs beside the [`crate::LinearSpec`] it
//! extends (`"scheme": "lwe"`): the LWE parameters, each input's fixed-point scale, the
//! answer modulus and the error the compiler promises.
//!
//! The client encodes input i as m_i = round(x_i · 2^input_frac_bits[i]) (refusing
//! |m_i| ≥ 2^input_bound_bits, the range the compiler sized everything for), encrypts the
//! d values as one seeded query under n = 2^log_n, q = 2^log_q, and reads each decrypted
//! phase p of an answer at q' = 2^answer_log_q as the score p · 2^(log_q − answer_log_q) /
//! 2^score_frac_bits, where score_frac_bits is the spec's `output.frac_bits`.

use serde::{Deserialize, Serialize};

use crate::ModelError;

/// LWE parameters of a linear model.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LweSpec {
    pub log_n: u32,
    pub log_q: u32,
    /// The modulus answers are switched to (≤ log_q): the smallest that keeps `error_bound`.
    pub answer_log_q: u32,
    /// Per input: m_i = round(x_i · 2^bits); negative for large-valued inputs.
    pub input_frac_bits: Vec<i32>,
    /// |m_i| < 2^input_bound_bits, or the client refuses the value.
    pub input_bound_bits: u32,
    /// Bound on |decrypted score − fixed-point score| (real units; except with probability 2^-64).
    pub error_bound: f64,
    /// Pairs [j, i]: score j is −score i (a binary classifier's two scores), so the answer
    /// omits it and the client negates score i. The answer holds the other scores, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub negated: Vec<[usize; 2]>,
    /// The server re-randomises every answer under the client's registered RLWE public key
    /// (`lwe::PublicKey`, sent in `EVALUATION_KEYS`), so the answer does not reveal the
    /// weights; it refuses queries whose key id has no registered key. Absent (false) in
    /// files compiled before it existed: those are served key-free, as they were.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub rerandomize: bool,
    /// With `rerandomize`: the flood added to each score is uniform in [−2^flood_bits,
    /// 2^flood_bits) (integer units at q; 0: none). `error_bound` accounts for it.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub flood_bits: u32,
}

fn is_zero(x: &u32) -> bool {
    *x == 0
}

impl LweSpec {
    /// Checks every field a client computes with; the parameters' security is checked by
    /// the lwe crate when the client builds them.
    /// Scores the answer carries, in order (those not in `negated`).
    pub fn answered(&self, outputs: usize) -> Vec<usize> {
        (0..outputs).filter(|j| !self.negated.iter().any(|p| p[0] == *j)).collect()
    }

    pub fn validate_outputs(&self, outputs: usize) -> Result<(), ModelError> {
        for (n, &[j, i]) in self.negated.iter().enumerate() {
            let derived = |x: usize| self.negated.iter().any(|p| p[0] == x);
            if j >= outputs || i >= outputs || i == j || derived(i) || self.negated[..n].iter().any(|p| p[0] == j) {
                return Err(ModelError::Invalid(format!("LWE client spec: negated pair [{j}, {i}] is not valid")));
            }
        }
        Ok(())
    }

    pub fn validate(&self, inputs: usize) -> Result<(), ModelError> {
        let bad = |what: String| Err(ModelError::Invalid(format!("LWE client spec: {what}")));
        if !(11..=15).contains(&self.log_n) || !(20..=63).contains(&self.log_q) {
            return bad(format!("n = 2^{}, q = 2^{} out of range", self.log_n, self.log_q));
        }
        if self.answer_log_q < 20 || self.answer_log_q > self.log_q {
            return bad(format!("answer modulus 2^{} outside 2^20..=2^{}", self.answer_log_q, self.log_q));
        }
        if self.input_frac_bits.len() != inputs || self.input_frac_bits.iter().any(|b| !(-64..=64).contains(b)) {
            return bad(format!("needs {inputs} input scales within ±64 bits"));
        }
        if self.input_bound_bits == 0 || self.input_bound_bits + 1 >= self.log_q {
            return bad(format!("input bound 2^{} does not fit q = 2^{}", self.input_bound_bits, self.log_q));
        }
        if self.flood_bits > 0 && (!self.rerandomize || self.flood_bits + 2 >= self.log_q) {
            return bad(format!(
                "a flood of 2^{} needs re-randomisation and room below q = 2^{}",
                self.flood_bits, self.log_q
            ));
        }
        if !(self.error_bound.is_finite() && self.error_bound >= 0.0) {
            return bad("error bound is not a finite non-negative number".into());
        }
        Ok(())
    }
}
