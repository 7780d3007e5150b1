//! Decryption for values that leave the client.
//!
//! A CKKS decryption is m + e, and e is a function of the secret key: whoever sees a
//! decrypted vector next to its ciphertext can solve for the key (Li–Micciancio,
//! Eurocrypt 2021; `tests/release.rs` does it against heinfer). [`Session::decrypt`]
//! is for the key's holder alone. Anything that is published, logged, returned to a
//! server or handed to another party goes through [`decrypt_for_release`], which
//! either floods e with noise whose width makes it statistically invisible, or
//! rounds it away, and says which of the two guarantees the caller got.
//!
//! [`Session::decrypt`]: crate::Session::decrypt

use std::fmt;

use ckks::{Ciphertext, Decryptor, Encoder, Plaintext, SecretKey};
use ring::{Poly, Sampler};
use thiserror::Error;
use zeroize::Zeroize;

/// How decrypted values are made safe to release.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Release {
    /// Add to every coefficient of m + e an independent uniform integer from
    /// [-B', B'), B' ≥ 2^security_bits · releases · N · B a power of two, where B bounds
    /// |e| (from `max_error`). By the smudging lemma the releases, together, are within
    /// statistical distance 2^-security_bits of releases made with e = 0: they say
    /// nothing about the key beyond that. The values lose about B'·√(N/6)/Δ of
    /// precision (reported in the [`Guarantee`]).
    Flood {
        /// Statistical security λ (40 is the usual choice).
        security_bits: u32,
        /// How many decryptions under this key will ever be released.
        releases: u64,
        /// A bound on the decryption error of every slot, in the values' units (the
        /// compile report's error estimate is one; an underestimate voids the guarantee).
        max_error: f64,
        /// Refuse, rather than release, when the added noise's standard deviation in
        /// the values' units would exceed this.
        max_noise: Option<f64>,
    },
    /// Round every released value to a multiple of 2^-bits, so the low bits that carry
    /// e are not released. A heuristic (it is what Lattigo recommends), with no proof:
    /// prefer `Flood` where the parameters leave room for it.
    Round {
        /// Fractional bits kept.
        bits: u32,
    },
}

impl Release {
    /// Flooding at statistical security 2^-40 for `releases` releases.
    pub fn flood(releases: u64, max_error: f64) -> Self {
        Release::Flood { security_bits: 40, releases, max_error, max_noise: None }
    }

    /// Parses the command-line form: `flood:RELEASES:MAX_ERROR[:SECURITY_BITS[:MAX_NOISE]]`
    /// or `round:BITS`.
    pub fn parse(s: &str) -> Result<Self, ReleaseError> {
        let bad = |why: &str| {
            ReleaseError::Policy(format!(
                "{s:?}: {why}; expected flood:RELEASES:MAX_ERROR[:SECURITY_BITS[:MAX_NOISE]] or round:BITS"
            ))
        };
        let parts: Vec<&str> = s.split(':').collect();
        match parts.as_slice() {
            ["round", bits] => Ok(Release::Round { bits: bits.parse().map_err(|_| bad("BITS is not an integer"))? }),
            ["flood", rest @ ..] if (2..=4).contains(&rest.len()) => {
                let releases = rest[0].parse().map_err(|_| bad("RELEASES is not an integer"))?;
                let max_error = rest[1].parse().map_err(|_| bad("MAX_ERROR is not a number"))?;
                let security_bits =
                    rest.get(2).map(|b| b.parse()).transpose().map_err(|_| bad("SECURITY_BITS is not an integer"))?;
                let max_noise =
                    rest.get(3).map(|b| b.parse()).transpose().map_err(|_| bad("MAX_NOISE is not a number"))?;
                Ok(Release::Flood { security_bits: security_bits.unwrap_or(40), releases, max_error, max_noise })
            }
            _ => Err(bad("unknown form")),
        }
    }
}

/// What a release guarantees, in words a reviewer can check.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Guarantee {
    /// Statistical: the releases are within 2^-security_bits of error-free ones.
    Flooded {
        /// λ
        security_bits: u32,
        /// releases the bound covers
        releases: u64,
        /// log2 of the flooding bound B' (coefficient units)
        bound_bits: u32,
        /// standard deviation the noise adds to each released value
        noise_std: f64,
    },
    /// Heuristic: values rounded to multiples of 2^-bits.
    Rounded {
        /// fractional bits kept
        bits: u32,
    },
}

impl fmt::Display for Guarantee {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Guarantee::Flooded { security_bits, releases, noise_std, .. } => write!(
                f,
                "noise flooding: up to {releases} releases together are within statistical distance 2^-{security_bits} \
                 of releases without decryption error (provided the stated error bound holds); each value carries \
                 added noise of standard deviation {noise_std:.3e}"
            ),
            Guarantee::Rounded { bits } => write!(
                f,
                "rounding to multiples of 2^-{bits}: a heuristic without proof (no statistical guarantee against \
                 key-recovery from released values)"
            ),
        }
    }
}

/// Why a release was refused.
#[derive(Debug, Error)]
pub enum ReleaseError {
    #[error("release policy {0}")]
    Policy(String),
    #[error(
        "these parameters cannot release safely at 2^-{security_bits} over {releases} releases: flooding needs noise \
         up to 2^{needed_bits:.1}, beyond {limit} (the ciphertext's modulus at its level is 2^{log_q:.1}); \
         compile with a larger output modulus and scale, release fewer times, or use round:BITS (a heuristic)"
    )]
    Infeasible { security_bits: u32, releases: u64, needed_bits: f64, limit: &'static str, log_q: f64 },
    #[error(
        "flooding at 2^-{security_bits} adds noise of standard deviation {noise_std:.3e} to each value, more than \
         the {max_noise:.3e} asked for; compile with a larger output scale or accept more noise"
    )]
    TooNoisy { security_bits: u32, noise_std: f64, max_noise: f64 },
    #[error(
        "round:{bits} keeps steps of 2^-{bits}, finer than this ciphertext's decryption noise (about N/Δ = {floor:.3e}); \
         a step that fine releases the noise itself: use fewer bits"
    )]
    RoundTooFine { bits: u32, floor: f64 },
    #[error(transparent)]
    Ckks(#[from] ckks::Error),
}

/// The widest flooding noise sampled (128-bit words, with room for m).
const MAX_FLOOD_BITS: f64 = 120.0;

/// Decrypts `ct` and makes its N/2 real slot values safe to release under `policy`.
pub fn decrypt_for_release(
    sk: &SecretKey,
    encoder: &Encoder,
    ct: &Ciphertext,
    policy: &Release,
) -> Result<(Vec<f64>, Guarantee), ReleaseError> {
    let params = ct.params();
    let n = params.n();
    let scale = ct.scale();
    let level = ct.level();
    let pt = Decryptor::new(sk).decrypt(ct)?;
    match *policy {
        Release::Round { bits } => {
            let step = round_step(bits, n, scale)?;
            let values = encoder.decode(&pt)?.into_iter().map(|v| (v / step).round() * step).collect();
            Ok((values, Guarantee::Rounded { bits }))
        }
        Release::Flood { security_bits, releases, max_error, max_noise } => {
            let bound_bits = flood_bits(security_bits, releases, max_error, n, scale, Some(params.log_q_at(level)))?;
            let noise_std = 2f64.powi(bound_bits as i32) * (n as f64 / 6.0).sqrt() / scale;
            if let Some(max_noise) = max_noise {
                if noise_std > max_noise {
                    return Err(ReleaseError::TooNoisy { security_bits, noise_std, max_noise });
                }
            }
            let flooded = flood(&pt, bound_bits)?;
            let values = encoder.decode(&flooded)?;
            Ok((values, Guarantee::Flooded { security_bits, releases, bound_bits, noise_std }))
        }
    }
}

/// The step a `round:BITS` release rounds to: 2^-BITS, refused unless it is at least 16
/// times the decryption error's floor N/Δ (a finer step would release the error's bits).
fn round_step(bits: u32, n: usize, scale: f64) -> Result<f64, ReleaseError> {
    if bits > 60 {
        return Err(ReleaseError::Policy(format!("round:{bits}: at most 60 fractional bits")));
    }
    let floor = n as f64 / scale;
    let step = 2f64.powi(-(bits as i32));
    if step < 16.0 * floor {
        return Err(ReleaseError::RoundTooFine { bits, floor });
    }
    Ok(step)
}

/// [`decrypt_for_release`] for a compact answer (`ckks::CompactAnswer`): its N'/2 slots.
/// The phase is exact integers, so flooding adds u to them directly (no modulus to
/// stay below); the bound uses the answer's own degree N' and scale Δ'.
pub fn decrypt_answer_for_release(
    sk: &SecretKey,
    answer: &ckks::CompactAnswer,
    policy: &Release,
) -> Result<(Vec<f64>, Guarantee), ReleaseError> {
    let mut phase = Decryptor::new(sk).decrypt_answer(answer)?;
    let (n, scale) = (phase.len(), answer.scale());
    let decode = |c: &[f64]| ckks::decode_coefficients(c, scale);
    let out = match *policy {
        Release::Round { bits } => {
            let step = round_step(bits, n, scale)?;
            let coeffs: Vec<f64> = phase.iter().map(|&c| c as f64).collect();
            let values = decode(&coeffs)?.into_iter().map(|v| (v / step).round() * step).collect();
            Ok((values, Guarantee::Rounded { bits }))
        }
        Release::Flood { security_bits, releases, max_error, max_noise } => {
            let bound_bits = flood_bits(security_bits, releases, max_error, n, scale, None)?;
            let noise_std = 2f64.powi(bound_bits as i32) * (n as f64 / 6.0).sqrt() / scale;
            if let Some(max_noise) = max_noise {
                if noise_std > max_noise {
                    return Err(ReleaseError::TooNoisy { security_bits, noise_std, max_noise });
                }
            }
            let mut u = Sampler::os_seeded().uniform_signed(n, bound_bits);
            let coeffs: Vec<f64> = phase.iter().zip(&u).map(|(&c, &v)| (c as i128 + v) as f64).collect();
            u.zeroize();
            let values = decode(&coeffs)?;
            Ok((values, Guarantee::Flooded { security_bits, releases, bound_bits, noise_std }))
        }
    };
    phase.zeroize();
    out
}

/// log2 B' for flooding (see [`Release::Flood`]): checked against the widest noise
/// sampled and, where the flood is added modulo q (`log_q`), a quarter of q.
fn flood_bits(
    security_bits: u32,
    releases: u64,
    max_error: f64,
    n: usize,
    scale: f64,
    log_q: Option<f64>,
) -> Result<u32, ReleaseError> {
    if !(max_error.is_finite() && max_error > 0.0) || releases == 0 || security_bits == 0 {
        return Err(ReleaseError::Policy(format!(
            "flood needs a positive finite error bound (got {max_error}), at least one release (got {releases}) \
             and security bits > 0 (got {security_bits})"
        )));
    }
    // |coefficient error| ≤ Δ · max |slot error|: a coefficient is an average of the N
    // slot values (with their conjugates) times Δ.
    let b = (max_error * scale).ceil().max(1.0);
    // B' = 2^λ·releases·N·B, rounded up to a power of two.
    let needed_bits = (security_bits as f64 + (releases as f64).log2() + (n as f64).log2() + b.log2()).ceil();
    if needed_bits > MAX_FLOOD_BITS {
        return Err(ReleaseError::Infeasible {
            security_bits,
            releases,
            needed_bits,
            limit: "2^120, the widest noise sampled",
            log_q: log_q.unwrap_or(f64::NAN),
        });
    }
    if let Some(log_q) = log_q.filter(|&l| needed_bits + 2.0 > l) {
        return Err(ReleaseError::Infeasible {
            security_bits,
            releases,
            needed_bits,
            limit: "a quarter of the modulus",
            log_q,
        });
    }
    Ok(needed_bits as u32)
}

/// m + e + u with u uniform in [-2^bits, 2^bits)^N, from an OS-seeded ChaCha20 stream.
fn flood(pt: &Plaintext, bits: u32) -> Result<Plaintext, ReleaseError> {
    let params = pt.params();
    let ctx = params.ctx();
    let level = pt.level();
    let moduli: Vec<_> = ctx.moduli[..=level].iter().collect();
    // σ is unused: the flooding noise is uniform, drawn from the OS-seeded stream.
    let mut noise = Sampler::os_seeded().uniform_signed(params.n(), bits);
    let mut poly = Poly::from_signed_wide(&noise, &moduli);
    noise.zeroize();
    poly.ntt(&ctx.ntt[..=level].iter().collect::<Vec<_>>());
    poly.add_assign(pt.poly(), &moduli);
    Ok(Plaintext::new(params, poly, pt.scale())?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policies_parse_and_refuse_what_they_cannot_mean() {
        assert_eq!(Release::parse("round:12").unwrap(), Release::Round { bits: 12 });
        assert_eq!(
            Release::parse("flood:100:1e-6:30:0.5").unwrap(),
            Release::Flood { security_bits: 30, releases: 100, max_error: 1e-6, max_noise: Some(0.5) }
        );
        assert_eq!(Release::parse("flood:1:1e-6").unwrap(), Release::flood(1, 1e-6));
        for bad in ["", "round", "round:x", "flood:1", "flood:x:1", "noise:3", "flood:1:1:1:1:1"] {
            assert!(matches!(Release::parse(bad), Err(ReleaseError::Policy(_))), "{bad}");
        }
    }
}
