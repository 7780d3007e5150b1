//! Error bounds: what the compiler promises about a decrypted score.
//!
//! A score's phase at the answer modulus is 2^-shift·(Σ v_i·m_i + bias + Σ v_i·e_i) plus the
//! modulus switch's rounding, with shift = log q − log q':
//! - fresh errors are cut at 6σ by the sampler, so |Σ v_i e_i| ≤ [`FRESH_BOUND`]·Σ|v_i|, always;
//! - rounding b' adds at most 1/2 and rounding a' adds Σ_j r_j·s_j with |r_j| ≤ 1/2 and
//!   s_j ∈ {−1, 0, 1}: by Hoeffding's inequality |Σ r_j s_j| ≤ √(n·ln(2/p)/2) except with
//!   probability p = 2^-64 per score.
//! - re-randomisation (the public-key module) adds an encryption of zero, whose phase
//!   (e·u)_0 + e0 + (e1·s)_0 is at most 21·n + 20·(n + 1) always (the public key's binomial
//!   error ≤ 21, tail-cut Gaussians ≤ 20, ternary u and s), and a flood of at most 2^flood_bits.

/// Largest |e| the tail-cut sampler draws (6σ = 19.2).
pub const FRESH_BOUND: f64 = 20.0;
/// −log2 of the probability that the switch error exceeds [`switch_bound`].
pub const FAILURE_LOG2: f64 = 64.0;

/// Bound on the modulus switch's error, in units of the answer modulus.
pub fn switch_bound(n: usize) -> f64 {
    0.5 + (n as f64 * ((FAILURE_LOG2 + 1.0) * std::f64::consts::LN_2) / 2.0).sqrt()
}

/// Bound on |decrypted − exact integer score| in units of the query modulus (the score's
/// integer scale) for a row of weights, answered at 2^answer_log_q.
pub fn score_error_bound(row: &[i64], n: usize, log_q: u32, answer_log_q: u32) -> f64 {
    let l1: f64 = row.iter().map(|&w| (w as f64).abs()).sum();
    FRESH_BOUND * l1 + switch_bound(n) * 2f64.powi((log_q - answer_log_q) as i32)
}

/// The smallest answer modulus (log2, ≥ 20) whose bound stays within `max_error` integer
/// units for every row, or `None` if even q itself does not.
pub fn answer_log_q(rows: &[Vec<i64>], n: usize, log_q: u32, max_error: f64) -> Option<u32> {
    (20..=log_q).find(|&l| rows.iter().all(|r| score_error_bound(r, n, log_q, l) <= max_error))
}

/// Bound on the phase of one re-randomising encryption of zero (integer units at q).
pub fn zero_bound(n: usize) -> f64 {
    PK_ERROR_BOUND as f64 * n as f64 + FRESH_BOUND * (n + 1) as f64
}

/// [`score_error_bound`] for a re-randomised answer: plus the encryption of zero and the
/// flood of at most 2^flood_bits.
pub fn rerandomized_error_bound(row: &[i64], n: usize, log_q: u32, answer_log_q: u32, flood_bits: u32) -> f64 {
    score_error_bound(row, n, log_q, answer_log_q) + zero_bound(n) + 2f64.powi(flood_bits as i32)
}

/// [`answer_log_q`] for a re-randomised answer with a flood of 2^flood_bits.
pub fn rerandomized_answer_log_q(
    rows: &[Vec<i64>],
    n: usize,
    log_q: u32,
    max_error: f64,
    flood_bits: u32,
) -> Option<u32> {
    (20..=log_q).find(|&l| rows.iter().all(|r| rerandomized_error_bound(r, n, log_q, l, flood_bits) <= max_error))
}

/// Largest |e| of the public key's error: a centered binomial of 2·21 bits (σ = √10.5 ≈ 3.24).
pub const PK_ERROR_BOUND: i64 = 21;
