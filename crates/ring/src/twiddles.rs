//! The twiddle factors of the negacyclic NTT: the tables every backend of
//! the NTT reads (the vector kernels under `x86_64` take them from here, so
//! they need nothing of the dispatch above them).

use crate::arith::{bit_reverse, primitive_root_of_unity, Modulus};

/// The twiddle factors of one prime and one ring degree: what every backend reads.
#[derive(Clone, Debug)]
pub struct Twiddles {
    pub(crate) m: Modulus,
    pub(crate) n: usize,
    pub(crate) log_n: u32,
    /// ψ^{brev(i)}, ψ a primitive 2N-th root of unity, and its Shoup companions.
    pub(crate) fwd: Vec<u64>,
    pub(crate) fwd_shoup: Vec<u64>,
    /// ψ^{-brev(i)}, with Shoup companions.
    pub(crate) inv: Vec<u64>,
    pub(crate) inv_shoup: Vec<u64>,
    pub(crate) n_inv: u64,
    pub(crate) n_inv_shoup: u64,
    /// inv[1] / N: the inverse's last twiddle with the final scaling folded in.
    pub(crate) last_inv: u64,
    pub(crate) last_inv_shoup: u64,
    /// the chosen ψ
    pub(crate) psi: u64,
}

impl Twiddles {
    /// `m` must be a prime ≡ 1 (mod 2N); None otherwise.
    pub fn new(m: Modulus, n: usize) -> Option<Self> {
        let log_n = n.trailing_zeros();
        let psi = primitive_root_of_unity(&m, 2 * n as u64)?;
        // Take the smallest primitive root among the odd powers so the table is canonical.
        let psi2 = m.mul(psi, psi);
        let mut best = psi;
        let mut cur = psi;
        for _ in 0..n {
            if cur < best {
                best = cur;
            }
            cur = m.mul(cur, psi2);
        }
        let psi = best;
        let psi_inv = m.inv(psi);
        let mut fwd = vec![0u64; n];
        let mut inv = vec![0u64; n];
        let mut p = 1u64;
        let mut pi = 1u64;
        for i in 0..n {
            fwd[bit_reverse(i, log_n)] = p;
            inv[bit_reverse(i, log_n)] = pi;
            p = m.mul(p, psi);
            pi = m.mul(pi, psi_inv);
        }
        let fwd_shoup = fwd.iter().map(|&w| m.shoup(w)).collect();
        let inv_shoup = inv.iter().map(|&w| m.shoup(w)).collect();
        let n_inv = m.inv(n as u64);
        let last_inv = m.mul(inv[1], n_inv);
        Some(Twiddles {
            m,
            n,
            log_n,
            fwd,
            fwd_shoup,
            inv,
            inv_shoup,
            n_inv,
            n_inv_shoup: m.shoup(n_inv),
            last_inv,
            last_inv_shoup: m.shoup(last_inv),
            psi,
        })
    }
}
