//! The element-wise activations the compiler knows, with their exact f64 values (the
//! reference the polynomial fits and the GELU pattern match are measured against).

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ActFn {
    Relu,
    LeakyRelu(f64),
    Sigmoid,
    Tanh,
    /// GELU, x·Φ(x) (erf form).
    Gelu,
    /// GELU's tanh approximation, 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))).
    GeluTanh,
    Softplus,
    /// x², kept exact.
    Square,
    /// min(max(x, lo), hi): ReLU6 (0, 6), Hardtanh (−1, 1), PyTorch's `clamp`.
    Clip(f64, f64),
    /// max(0, min(1, αx + β)).
    HardSigmoid(f64, f64),
    /// x·HardSigmoid(x) with α = 1/6, β = 1/2.
    HardSwish,
    /// x·σ(x) (SiLU, Swish).
    Silu,
    /// x·tanh(softplus(x)).
    Mish,
    /// x for x > 0, α(eˣ − 1) below.
    Elu(f64),
    /// γ·(x for x > 0, α(eˣ − 1) below).
    Selu(f64, f64),
    /// |x|/2: the non-linear half of max(a, b) = (a + b)/2 + |a − b|/2 (MaxPool).
    HalfAbs,
}

impl ActFn {
    pub fn eval(&self, x: f64) -> f64 {
        match *self {
            ActFn::Relu => x.max(0.0),
            ActFn::LeakyRelu(a) => {
                if x >= 0.0 {
                    x
                } else {
                    a * x
                }
            }
            ActFn::Sigmoid => 1.0 / (1.0 + (-x).exp()),
            ActFn::Tanh => x.tanh(),
            ActFn::Gelu => 0.5 * x * (1.0 + erf(x / std::f64::consts::SQRT_2)),
            ActFn::GeluTanh => 0.5 * x * (1.0 + (GELU_TANH_C * (x + 0.044715 * x * x * x)).tanh()),
            ActFn::Softplus => {
                if x > 30.0 {
                    x
                } else {
                    x.exp().ln_1p()
                }
            }
            ActFn::Square => x * x,
            ActFn::Clip(lo, hi) => x.max(lo).min(hi),
            ActFn::HardSigmoid(a, b) => (a * x + b).clamp(0.0, 1.0),
            ActFn::HardSwish => x * (x / 6.0 + 0.5).clamp(0.0, 1.0),
            ActFn::Silu => x / (1.0 + (-x).exp()),
            ActFn::Mish => x * ActFn::Softplus.eval(x).tanh(),
            ActFn::Elu(a) => {
                if x > 0.0 {
                    x
                } else {
                    a * x.exp_m1()
                }
            }
            ActFn::Selu(a, g) => g * ActFn::Elu(a).eval(x),
            ActFn::HalfAbs => 0.5 * x.abs(),
        }
    }
    pub fn name(&self) -> String {
        match self {
            ActFn::Relu => "relu".into(),
            ActFn::LeakyRelu(a) => format!("leaky_relu({a})"),
            ActFn::Sigmoid => "sigmoid".into(),
            ActFn::Tanh => "tanh".into(),
            ActFn::Gelu => "gelu".into(),
            ActFn::GeluTanh => "gelu_tanh".into(),
            ActFn::Softplus => "softplus".into(),
            ActFn::Square => "square".into(),
            ActFn::Clip(lo, hi) => format!("clip({lo}, {hi})"),
            ActFn::HardSigmoid(a, b) => format!("hard_sigmoid({a}, {b})"),
            ActFn::HardSwish => "hard_swish".into(),
            ActFn::Silu => "silu".into(),
            ActFn::Mish => "mish".into(),
            ActFn::Elu(a) => format!("elu({a})"),
            ActFn::Selu(..) => "selu".into(),
            ActFn::HalfAbs => "max (|x|/2)".into(),
        }
    }
}

/// √(2/π), the constant of GELU's tanh form.
const GELU_TANH_C: f64 = 0.797_884_560_802_865_4;

/// Abramowitz–Stegun 7.1.26 is too coarse for a reference; use a series / continued fraction.
pub(crate) fn erf(x: f64) -> f64 {
    let t = 1.0 / (1.0 + 0.5 * x.abs());
    let y = 1.0
        - t * (-x * x - 1.26551223
            + t * (1.00002368
                + t * (0.37409196
                    + t * (0.09678418
                        + t * (-0.18628806
                            + t * (0.27886807
                                + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277)))))))))
            .exp();
    if x >= 0.0 {
        y
    } else {
        -y
    }
}
