//! The 128-bit security check: the Homomorphic Encryption Security Standard's table of
//! the largest modulus per ring degree, in its 2024 update. Parameter sets beyond it are
//! refused (`params`), except those built for tests and marked insecure.

/// Largest log2(Q·P) for 128-bit classical security with a uniform ternary secret,
/// per the Homomorphic Encryption Security Standard as updated in 2024 (ia.cr/2024/463),
/// indexed by log2(N) from 10 to 16.
const MAX_LOG_QP_2024: [(u32, u32); 7] = [(10, 26), (11, 53), (12, 106), (13, 214), (14, 430), (15, 868), (16, 1747)];

/// Smallest ring degree accepted for use (as log2 N).
pub const MIN_LOG_N: u32 = 12;
/// Largest ring degree accepted (as log2 N).
pub const MAX_LOG_N: u32 = 16;

/// The 128-bit bound on log2(QP) for ring degree 2^log_n, if the standard tabulates it.
pub fn max_log_qp(log_n: u32) -> Option<u32> {
    MAX_LOG_QP_2024.iter().find(|(l, _)| *l == log_n).map(|&(_, b)| b)
}
