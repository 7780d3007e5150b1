//! Secure aggregation for Python (`heinfer.aggregate` wraps these): the committee's key
//! ceremony, contributions, decryption shares (`client::aggregate`), and Ed25519
//! signing (`aggregate::Signer`). Rounds are described by their configuration JSON.

use std::path::PathBuf;

use aggregate::{DpConfig, RoundConfig, Signer as RustSigner};
use client::aggregate as agg;
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use super::{run, Failure, Kind};

fn config(json: &str) -> Result<RoundConfig, Failure> {
    serde_json::from_str(json).map_err(|e| Failure(Kind::Aggregation, format!("round configuration: {e}")))
}

fn fail(e: agg::AggregationError) -> Failure {
    Failure(Kind::Aggregation, e.to_string())
}

fn crs(hex: &str) -> Result<[u8; 32], Failure> {
    let bad = || Failure(Kind::Aggregation, "crs: 64 hex digits".into());
    if hex.len() != 64 {
        return Err(bad());
    }
    let mut out = [0u8; 32];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(hex.get(2 * i..2 * i + 2).ok_or_else(bad)?, 16).map_err(|_| bad())?;
    }
    Ok(out)
}

/// An Ed25519 signing key for rounds (a contributor's or a member's identity).
#[pyclass(module = "heinfer._native")]
pub struct Signer(RustSigner);

#[pymethods]
impl Signer {
    /// A fresh key; `seed()` returns it for safekeeping.
    #[staticmethod]
    fn generate() -> Self {
        let seed = agg::new_signer_seed();
        Signer(RustSigner::from_seed(&seed))
    }
    /// The key from its 32-byte seed.
    #[staticmethod]
    fn from_seed(seed: &[u8]) -> PyResult<Self> {
        let s: [u8; 32] =
            seed.try_into().map_err(|_| pyo3::exceptions::PyValueError::new_err("a signing-key seed is 32 bytes"))?;
        Ok(Signer(RustSigner::from_seed(&s)))
    }
    /// The public key, hex (what a round's configuration lists).
    fn public_hex(&self) -> String {
        self.0.public_hex()
    }
    /// The signature (64 bytes) of `payload` as a `kind` ("contribution" or "share") of round `round`.
    fn sign<'py>(&self, py: Python<'py>, kind: &str, round: &str, payload: &[u8]) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.0.sign(kind, round, payload))
    }
}

/// Writes a round configuration JSON from its parts (parameters from prime sizes).
#[pyfunction]
#[allow(clippy::too_many_arguments)]
#[pyo3(signature = (id, length, committee, threshold, contributors, min_contributors, deadline_unix_s, log_n=13, q_bits=vec![60, 60], p_bits=vec![60], scale_bits=80, plaintext_modulus=None, value_bound=None))]
pub fn aggregate_round_config(
    py: Python<'_>,
    id: String,
    length: usize,
    committee: Vec<String>,
    threshold: usize,
    contributors: Vec<String>,
    min_contributors: usize,
    deadline_unix_s: u64,
    log_n: u32,
    q_bits: Vec<u32>,
    p_bits: Vec<u32>,
    scale_bits: u32,
    plaintext_modulus: Option<u64>,
    value_bound: Option<u64>,
) -> PyResult<String> {
    run(py, "writing a round configuration", move || {
        let c = agg::new_round(
            id,
            length,
            (log_n, &q_bits, &p_bits),
            scale_bits,
            committee,
            threshold,
            contributors,
            min_contributors,
            deadline_unix_s,
        )
        .map_err(fail)?;
        let c = agg::with_integers(c, plaintext_modulus, value_bound).map_err(fail)?;
        serde_json::to_string(&c).map_err(|e| Failure(Kind::Aggregation, e.to_string()))
    })
}

/// A public-key share and the Shamir shares, each with its member.
type BeginResult = (Py<PyBytes>, Vec<(u32, Py<PyBytes>)>);

/// Key ceremony, step 1: (public-key share, {member: Shamir share}) — send each Shamir
/// share to its member only.
#[pyfunction]
pub fn aggregate_begin(py: Python<'_>, config_json: &str, crs_hex: &str, member: u32) -> PyResult<BeginResult> {
    let (c, seed) = (config(config_json), crs(crs_hex));
    let begun = run(py, "beginning the key ceremony", move || agg::begin(&c?, &seed?, member).map_err(fail))?;
    let shamir = begun.shamir_shares.iter().map(|(to, b)| (*to, PyBytes::new(py, b).unbind())).collect();
    Ok((PyBytes::new(py, &begun.public_key_share).unbind(), shamir))
}

/// Key ceremony, step 2: the member's threshold-key file (new, mode 0600) from the
/// Shamir shares it received.
#[pyfunction]
pub fn aggregate_finish(
    py: Python<'_>,
    config_json: &str,
    member: u32,
    received: Vec<Vec<u8>>,
    key_file: PathBuf,
) -> PyResult<()> {
    let c = config(config_json);
    run(py, "finishing the key ceremony", move || {
        let refs: Vec<&[u8]> = received.iter().map(Vec::as_slice).collect();
        agg::finish(&c?, member, &refs, &key_file).map_err(fail)
    })
}

/// The collective public key from every member's public-key share.
#[pyfunction]
pub fn aggregate_public_key(
    py: Python<'_>,
    config_json: &str,
    crs_hex: &str,
    shares: Vec<Vec<u8>>,
) -> PyResult<Py<PyBytes>> {
    let (c, seed) = (config(config_json), crs(crs_hex));
    let pk = run(py, "assembling the collective key", move || {
        let refs: Vec<&[u8]> = shares.iter().map(Vec::as_slice).collect();
        agg::collective_key(&c?, &seed?, &refs).map_err(fail)
    })?;
    Ok(PyBytes::new(py, &pk).unbind())
}

/// A contribution's payload: `values` encrypted under the collective key; with
/// `dp = (clip, grid, sigma)`, clipped, rounded and noised first (distributed DP).
#[pyfunction]
#[pyo3(signature = (config_json, public_key, values, dp=None))]
pub fn aggregate_contribution(
    py: Python<'_>,
    config_json: &str,
    public_key: Vec<u8>,
    values: Vec<f64>,
    dp: Option<(f64, f64, f64)>,
) -> PyResult<Py<PyBytes>> {
    let c = config(config_json);
    let payload = run(py, "encrypting a contribution", move || {
        let c = c?;
        let values = match dp {
            Some((clip, grid, sigma)) => {
                let cfg = DpConfig { clip, grid, sigma, min_contributors: c.min_contributors };
                agg::privatize(&values, &cfg).map_err(fail)?
            }
            None => values,
        };
        agg::contribution(&c, &public_key, &values).map_err(fail)
    })?;
    Ok(PyBytes::new(py, &payload).unbind())
}

/// Distributed DP accounting: ε after `rounds` rounds with these settings and vectors of
/// `length` values, at `delta` (`aggregate::epsilon_after`, Rényi DP).
#[pyfunction]
#[allow(clippy::too_many_arguments)]
pub fn aggregate_dp_epsilon(
    py: Python<'_>,
    clip: f64,
    grid: f64,
    sigma: f64,
    min_contributors: usize,
    length: usize,
    rounds: usize,
    delta: f64,
) -> PyResult<f64> {
    let cfg = DpConfig { clip, grid, sigma, min_contributors };
    run(py, "accounting", move || {
        aggregate::epsilon_after(&cfg, length, rounds, delta).map_err(|e| Failure(Kind::Aggregation, e.to_string()))
    })
}

/// A member's decryption shares of a published sum: (member id, payload). The key file
/// records the ciphertexts before the shares are returned.
#[pyfunction]
#[pyo3(signature = (config_json, key_file, sum, participants, security_bits=40))]
pub fn aggregate_shares(
    py: Python<'_>,
    config_json: &str,
    key_file: PathBuf,
    sum: Vec<u8>,
    participants: Vec<u32>,
    security_bits: u32,
) -> PyResult<(u32, Py<PyBytes>)> {
    let c = config(config_json);
    let (member, payload) = run(py, "making decryption shares", move || {
        agg::decryption_shares(&c?, &key_file, &sum, &participants, security_bits).map_err(fail)
    })?;
    Ok((member, PyBytes::new(py, &payload).unbind()))
}

/// The most bytes a server's answer about this round can rightly have.
#[pyfunction]
pub fn aggregate_max_answer_bytes(py: Python<'_>, config_json: &str) -> PyResult<usize> {
    let c = config(config_json);
    run(py, "sizing answers", move || agg::max_answer_bytes(&c?).map_err(fail))
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(aggregate_max_answer_bytes, m)?)?;
    m.add_class::<Signer>()?;
    m.add_function(wrap_pyfunction!(aggregate_round_config, m)?)?;
    m.add_function(wrap_pyfunction!(aggregate_begin, m)?)?;
    m.add_function(wrap_pyfunction!(aggregate_finish, m)?)?;
    m.add_function(wrap_pyfunction!(aggregate_public_key, m)?)?;
    m.add_function(wrap_pyfunction!(aggregate_contribution, m)?)?;
    m.add_function(wrap_pyfunction!(aggregate_dp_epsilon, m)?)?;
    m.add_function(wrap_pyfunction!(aggregate_shares, m)?)?;
    Ok(())
}
