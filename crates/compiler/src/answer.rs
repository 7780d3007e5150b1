//! `--answer auto|compact|full`: where the server cuts each answer (`model::answer`).
//!
//! The cut adds two noises, both sized here against the noise analysis's predicted
//! output error E (`parameters::Chosen::max_err`): together, at six standard deviations,
//! they may add at most E/4 to an output.
//!
//! - The fold's key switch (one digit over q0, divided by P): per coefficient about
//!   sqrt(N/12)·σ·q0/P, then sqrt(N'/2) of those in a slot, at the answer's scale Δ.
//! - The modulus switch's rounding: (1 + 2N'/3)/12 per coefficient (c0's rounding and
//!   c1's times a ternary s'), sqrt(N'/2) of them per slot, at Δ' = Δ·2^log_q/q0. This
//!   sets log_q: the smallest that keeps the sum within E/4.
//!
//! The fold needs a period the program proves (`model::answer::output_period`); outputs
//! with DP noise are never folded (a fold averages the copies, and the noise added per
//! slot with them, which would weaken the guarantee the client is told).

use ckks::{AnswerShape, Parameters};
use model::{AnswerSpec, HeModel};

use crate::CompileError;

/// `compile --answer`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum AnswerRequest {
    /// Compact for models with a compact query (a client that counts bytes both ways),
    /// full ciphertexts otherwise.
    #[default]
    Auto,
    /// Cut every answer as far as its precision allows.
    Compact,
    /// Full ciphertexts at the output level.
    Full,
}

impl std::str::FromStr for AnswerRequest {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(Self::Auto),
            "compact" => Ok(Self::Compact),
            "full" => Ok(Self::Full),
            _ => Err(format!("unknown answer form {s:?}: auto, compact or full")),
        }
    }
}

/// The error's standard deviation σ of fresh RLWE noise.
const SIGMA: f64 = 3.2;

/// The shape for `hem` (None: full answers) and the report's note.
pub(crate) fn configure(
    req: AnswerRequest,
    params: &Parameters,
    hem: &HeModel,
    max_err: f64,
) -> Result<(Option<AnswerSpec>, Option<String>), CompileError> {
    let wanted = match req {
        AnswerRequest::Full => false,
        AnswerRequest::Compact => true,
        AnswerRequest::Auto => hem.client.input.compact.is_some(),
    };
    if !wanted {
        return Ok((None, None));
    }
    let n = params.n() as f64;
    let q0 = params.q()[0] as f64;
    let q0_bits = 64 - params.q()[0].leading_zeros();
    let p: f64 = params.p().iter().map(|&p| p as f64).product();
    let scale = hem.client.output.scale;
    let budget = max_err.max(1e-6) / 4.0 / 6.0; // a standard deviation
    let period = if hem.client.output_dp.is_some() { params.slots() } else { model::answer::output_period(hem) };
    let mut log_n = AnswerShape::min_log_n(params).max((2 * period).trailing_zeros()).min(params.log_n());
    let fold_std = |log_n: u32| -> f64 {
        let n_sub = (1u64 << log_n) as f64;
        (n / 12.0).sqrt() * SIGMA * (q0 / p) * (n_sub / 2.0).sqrt() / scale
    };
    let mut why_not = None;
    if log_n < params.log_n() && fold_std(log_n) > budget / 2f64.sqrt() {
        why_not = Some(format!(
            "its key switch would add {:.1e} per output (6σ), more than half the budget",
            6.0 * fold_std(log_n)
        ));
        log_n = params.log_n();
    }
    let folds = log_n < params.log_n();
    let n_sub = (1u64 << log_n) as f64;
    let fold = if folds { fold_std(log_n) } else { 0.0 };
    let room = (budget * budget - fold * fold).sqrt();
    let rounding = ((1.0 + 2.0 * n_sub / 3.0) / 12.0).sqrt() * (n_sub / 2.0).sqrt();
    // Δ' ≥ rounding / room, and Δ' = Δ·2^k/q0.
    let log_q = ((rounding / room / scale * q0).log2().ceil() as u32).max(8);
    if log_q >= q0_bits {
        return Ok((
            None,
            Some(format!(
                "full answers: a modulus below the {q0_bits}-bit last prime would add more than a quarter of the \
                 predicted output error ({max_err:.2e})"
            )),
        ));
    }
    let spec = AnswerSpec { log_n, log_q };
    spec.shape().check(params).map_err(|e| CompileError::Params(format!("compact answer: {e}")))?;
    let full = params.ciphertext_bytes(hem.client.output.level as usize, false);
    let added = 6.0 * (fold * fold + (rounding * q0 / (scale * 2f64.powi(log_q as i32))).powi(2)).sqrt();
    let how = if folds {
        format!(
            "the outputs repeat every {period} slots, so the server folds each answer into the subring of degree \
             2^{log_n} with one key switch (an answer key of {:.1} KB in the bundle), then",
            params.answer_key_bytes() as f64 / 1e3
        )
    } else {
        match &why_not {
            Some(w) => format!("no fold into a subring ({w}); the server"),
            None if hem.client.output_dp.is_some() => {
                "no fold into a subring (a fold would average the DP noise of repeated slots); the server".into()
            }
            None => format!(
                "no fold into a subring (the program's answer repeats only every {period} slots, the smallest \
                 degree these parameters can fold to securely is 2^{}); the server",
                AnswerShape::min_log_n(params)
            ),
        }
    };
    let note = format!(
        "compact answer: {} B instead of {full} B per answer ciphertext; {how} switches it from the {q0_bits}-bit \
         last prime to 2^{log_q}, adding at most {added:.1e} to an output (6σ; a quarter of the predicted {max_err:.2e})",
        spec.shape().bytes()
    );
    Ok((Some(spec), Some(note)))
}
