//! AVX-512 IFMA butterflies for primes below 2^50.
use crate::arith::Modulus;

#[derive(Clone, Debug)]
pub(crate) struct IfmaTable;

impl IfmaTable {
    pub fn new(_m: &Modulus, _fwd: &[u64], _inv: &[u64], _n_inv: u64) -> Option<Self> {
        None
    }
    pub fn forward(&self, _a: &mut [u64]) {}
    pub fn inverse(&self, _a: &mut [u64]) {}
}
