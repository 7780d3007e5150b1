//! The one instruction-set dispatch: the CPU's features are read once per process
//! (`HEINFER_NO_SIMD=1` turns every vector path off), and everything above asks here.
//!
//! Kernels per instruction set live side by side under `x86_64/` (`avx2`, `fma`,
//! `avx512`); the dispatching modules (`kernels`, `ntt`) pick one
//! with the tokens below. A token is a zero-sized proof that the CPU has a feature set
//! (as `pulp`'s `V3`/`V4` are for tfhe-ntt): it can only be obtained from the detection
//! here, so a kernel taking one needs no further `unsafe` for its target features.

use std::sync::OnceLock;

/// The best vector tier this process uses, from [`isa`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Isa {
    /// The portable code only (no x86-64 vector unit, or `HEINFER_NO_SIMD` set).
    Scalar,
    /// AVX2 integer kernels (four 64-bit lanes).
    Avx2,
    /// AVX2 with FMA: the double-precision kernels serve primes below 2^50.
    Avx2Fma,
    /// AVX-512 F + DQ (eight lanes).
    Avx512,
    /// AVX-512 with IFMA (52-bit multiply-add): primes below 2^50 on the integer multiplier.
    Avx512Ifma,
}

/// The raw features this process may use (all false under `HEINFER_NO_SIMD`).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Features {
    pub avx2: bool,
    pub fma: bool,
    /// AVX-512 F and DQ.
    pub avx512: bool,
    pub ifma: bool,
}

pub(crate) fn features() -> Features {
    static F: OnceLock<Features> = OnceLock::new();
    *F.get_or_init(|| {
        if std::env::var_os("HEINFER_NO_SIMD").is_some() {
            return Features::default();
        }
        detect()
    })
}

#[cfg(target_arch = "x86_64")]
fn detect() -> Features {
    let avx512 = is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx512dq");
    Features {
        avx2: is_x86_feature_detected!("avx2"),
        fma: is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma"),
        avx512,
        ifma: avx512 && is_x86_feature_detected!("avx512ifma"),
    }
}

#[cfg(not(target_arch = "x86_64"))]
fn detect() -> Features {
    Features::default()
}

/// The vector tier chosen for this process.
pub fn isa() -> Isa {
    let f = features();
    match () {
        _ if f.ifma => Isa::Avx512Ifma,
        _ if f.avx512 => Isa::Avx512,
        _ if f.fma => Isa::Avx2Fma,
        _ if f.avx2 => Isa::Avx2,
        _ => Isa::Scalar,
    }
}

macro_rules! token {
    ($(#[$doc:meta])* $name:ident, $feat:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug)]
        pub(crate) struct $name(());

        impl $name {
            /// The proof, where this process uses the features.
            #[inline]
            pub(crate) fn get() -> Option<Self> {
                features().$feat.then_some(Self(()))
            }

            /// The token without the process's policy (`HEINFER_NO_SIMD`, AVX-512
            /// precedence): for tests that call a kernel directly.
            ///
            /// # Safety
            /// The CPU must have the features (the test checked them itself).
            #[cfg(test)]
            #[allow(dead_code)] // not every token has a kernel test calling it directly
            pub(crate) unsafe fn assume() -> Self {
                Self(())
            }
        }
    };
}

token!(
    /// Proof that AVX2 runs here (whatever else the CPU has).
    Avx2,
    avx2
);
token!(
    /// Proof that AVX2 and FMA run here.
    Fma,
    fma
);
token!(
    /// Proof that AVX-512 F and DQ run here.
    Avx512,
    avx512
);
token!(
    /// Proof that AVX-512 F, DQ and IFMA run here.
    Ifma,
    ifma
);

/// The tier's rules, in one place: AVX2 kernels serve where AVX-512 does not, and the
/// double-precision ones where, in addition, the CPU has FMA.
pub(crate) fn avx2_tier() -> Option<Avx2> {
    if features().avx512 {
        None
    } else {
        Avx2::get()
    }
}

/// AVX2 + FMA where AVX-512 does not serve (see [`avx2_tier`]).
pub(crate) fn fma_tier() -> Option<Fma> {
    if features().avx512 {
        None
    } else {
        Fma::get()
    }
}
