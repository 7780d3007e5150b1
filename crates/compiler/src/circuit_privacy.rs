//! Circuit privacy (`--circuit-privacy [LAMBDA]`): the flood the server adds to each
//! answer (`model::circuit`), sized from the noise analysis's bound on the answer's
//! error, and the check that the outputs survive it.
//!
//! The bound on the answer's error: the noise analysis's largest output error on the
//! calibration samples (`noise::NoiseEstimate::max_err_at`, at the chosen scale) times
//! `SAFETY` = 2^6, taken for every slot (the masked unused slots carry the same
//! rescale and key-switch noise, times 0-or-1 plaintexts, as the outputs), then turned
//! into an ℓ1 bound on the coefficients by Parseval (`model::circuit::l1_from_slot_bound`).
//! It is a bound of the noise model with a wide margin, not a proof over every input.
//!
//! Refused when the flood would break decryption (2^(b+1) plus the outputs must stay
//! below the output level's modulus) or leave the outputs less precise than 1 % of the
//! largest calibration output (six standard deviations of the flood's slot noise).

use ckks::Parameters;
use model::circuit::{l1_from_slot_bound, CircuitPrivacy};
use model::HeModel;

use crate::{CompileError, Options};

/// Scales tried, most precise first, when circuit privacy is asked and `--scale-bits` is
/// not fixed: the flood costs ~60 bits of the answer's precision, so the compiler's usual
/// choice (the smallest scale the noise analysis allows, for the smallest keys) leaves it
/// nothing. 50 bits is the most a 60-bit q0 holds with the outputs' headroom.
const PRECISE_SCALES: [u32; 3] = [50, 45, 40];

/// Parameters for the program: with circuit privacy and no fixed scale, the first of
/// `PRECISE_SCALES` that `choose` accepts (then the usual choice); otherwise `choose` as asked.
pub(crate) fn choose_parameters<T>(
    opts: &Options,
    choose: impl Fn(&Options) -> Result<T, CompileError>,
) -> Result<T, CompileError> {
    if opts.circuit_privacy.is_none() || opts.scale_bits.is_some() {
        return choose(opts);
    }
    for s in PRECISE_SCALES {
        if let Ok(c) = choose(&Options { scale_bits: Some(s), ..opts.clone() }) {
            return Ok(c);
        }
    }
    choose(opts)
}

/// Margin over the largest modelled error seen on calibration samples.
pub(crate) const SAFETY: f64 = 64.0;
/// The outputs after flooding must stay within this share of the largest output.
const PRECISION: f64 = 0.01;

/// The flood for `hem`'s answer and the report's note on its cost; refused with what to
/// change when the parameters cannot carry it.
pub(crate) fn configure(
    lambda: u32,
    fixed_flood_bits: Option<u32>,
    params: &Parameters,
    hem: &HeModel,
    max_err: f64,
    max_out: f64,
) -> Result<(CircuitPrivacy, String), CompileError> {
    if !(1..=128).contains(&lambda) {
        return Err(CompileError::Params(format!(
            "circuit privacy at 2^-{lambda}: give λ between 1 and 128 (default {})",
            model::circuit::DEFAULT_LAMBDA
        )));
    }
    let out = &hem.client.output;
    let n = params.n();
    let slot_err = SAFETY * max_err / out.multiplier.abs().max(f64::MIN_POSITIVE);
    let l1 = l1_from_slot_bound(slot_err, n, out.scale).max(1.0);
    let mut cp = CircuitPrivacy::size(lambda, l1.log2(), n, out.scale);
    if let Some(b) = fixed_flood_bits {
        if b < cp.flood_bits {
            return Err(CompileError::Params(format!(
                "circuit privacy at 2^-{lambda} needs a flood of 2^{} per coefficient for this model (‖e‖₁ ≤ 2^{:.1}); \
                 --flood-bits {b} is too small: give {} or more, or a smaller λ",
                cp.flood_bits,
                l1.log2(),
                cp.flood_bits
            )));
        }
        cp = CircuitPrivacy { flood_bits: b, slot_std: model::circuit::slot_std(b, n, out.scale), ..cp };
    }
    let log_q: f64 = params.q()[..=out.level as usize].iter().map(|&q| (q as f64).log2()).sum();
    let out_err = 6.0 * cp.slot_std * out.multiplier.abs();
    let tolerated = PRECISION * max_out.max(1e-12);
    let bits_lost = (6.0 * cp.slot_std / (max_err / out.multiplier.abs())).log2();
    // The λ these parameters could give with the precision kept: each bit of λ is a bit of flood.
    let best = lambda as f64 - (out_err / tolerated).log2().ceil();
    let hint = |what: &str| {
        format!(
            "circuit privacy at 2^-{lambda} {} a flood of 2^{} per coefficient (the answer's error is bounded by \
             ‖e‖₁ ≤ 2^{:.1}); {what}. The flood costs {bits_lost:.0} bits of the answer's precision (λ, the bound's \
             margin and the ring's √N factors); {} Compile without --circuit-privacy, or raise the output precision (--scale-bits up \
             to 50; without it the compiler has tried 50, 45 and 40; a larger ring costs more bits), or compile an \
             integer version with --scheme bgv --quantize BITS: BGV's outputs stay exact under a 2^-40 flood, which \
             costs it modulus only",
            if fixed_flood_bits.is_some() { "with the fixed" } else { "needs" },
            cp.flood_bits,
            l1.log2(),
            if fixed_flood_bits.is_some() {
                "the fixed flood (--flood-bits) is too wide for these parameters: give a smaller one.".to_string()
            } else if best >= 1.0 {
                format!("these parameters keep 1 % precision up to λ = {best:.0} (--circuit-privacy {best:.0} states that weaker guarantee).")
            } else {
                "these parameters cannot keep 1 % precision at any λ.".to_string()
            }
        )
    };
    let need_q =
        (2f64.powi(cp.flood_bits as i32 + 1) + 2f64.sqrt() * out.scale * max_out / out.multiplier.abs()).log2() + 1.0;
    // The flood (< 2^(b+1)) and the outputs' coefficients (‖m‖∞ ≤ √2·Δ·max slot) below q/2.
    if need_q > log_q {
        return Err(CompileError::Params(hint(&format!(
            "the answer's level holds {log_q:.0} bits of modulus, the flood and the outputs need more"
        ))));
    }
    if out_err > tolerated {
        return Err(CompileError::Params(hint(&format!(
            "the outputs would carry errors up to {out_err:.2e} (6σ), over 1 % of the largest output ({tolerated:.2e})"
        ))));
    }
    // One public-key encryption per answer ciphertext: four transforms per limb (v, e0,
    // e1 and u) and the samplers; the same rough one-core model as the report's latency.
    let limbs = out.level as f64 + 1.0;
    let ntt_ms = n as f64 * params.log_n() as f64 * 2.0e-7;
    let extra_ms = out.ciphertexts as f64 * (4.0 * ntt_ms * limbs + n as f64 * 1e-5);
    let note = format!(
        "circuit privacy: each answer's noise flooded (an encryption of zero under the client's public key, plus u \
         uniform in [-2^{b}, 2^{b}) per coefficient): any two models with the same outputs give answers within \
         statistical distance 2^-{lambda}, given the answer's error bound ‖e‖₁ ≤ 2^{l1:.1} (the noise model's \
         largest error × {SAFETY}). Cost: {bits_lost:.0} bits of precision (output error σ = {sigma:.2e} per \
         slot, 6σ = {out_err:.2e}); one public-key encryption per answer ciphertext on the server (≈ {extra_ms:.1} \
         ms, rough one-core model); the bundle carries the public key ({pk} KB more){fixed}",
        b = cp.flood_bits,
        l1 = l1.log2(),
        sigma = cp.slot_std * out.multiplier.abs(),
        pk = (32 + params.poly_bytes(0..params.q().len())) / 1000,
        fixed = if fixed_flood_bits.is_some() {
            "; the flood is fixed (--flood-bits), not sized for this model"
        } else {
            ""
        },
    );
    Ok((cp, note))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The scale each call was asked for, and the first accepted (none below `from`).
    fn run(opts: &Options, from: u32) -> (Vec<Option<u32>>, Option<u32>) {
        let asked = std::cell::RefCell::new(vec![]);
        let got = choose_parameters(opts, |o| {
            asked.borrow_mut().push(o.scale_bits);
            match o.scale_bits {
                Some(s) if s > from => Err(CompileError::Params("too large".into())),
                s => Ok(s),
            }
        })
        .unwrap();
        (asked.into_inner(), got)
    }

    #[test]
    fn circuit_privacy_tries_the_most_precise_scale_first() {
        let cp = Options { circuit_privacy: Some(40), ..Options::default() };
        assert_eq!(run(&cp, 64), (vec![Some(50)], Some(50)));
        assert_eq!(run(&cp, 45), (vec![Some(50), Some(45)], Some(45)));
        // None of them: the usual choice.
        assert_eq!(run(&cp, 30), (vec![Some(50), Some(45), Some(40), None], None));
        // A fixed scale, or no circuit privacy: asked once, as given.
        let fixed = Options { scale_bits: Some(44), ..cp.clone() };
        assert_eq!(run(&fixed, 64), (vec![Some(44)], Some(44)));
        assert_eq!(run(&Options::default(), 64), (vec![None], None));
    }
}
