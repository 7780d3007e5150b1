//! Bindings for the schemes and layouts beside CKKS layout L: Paillier linear models
//! (`client::PaillierSession`), BGV integer models (`client::BgvSession`) and CKKS layout T
//! (`client::BatchSession`), plus the scheme of a spec and the layout choice
//! (`client::choose_layout`). The Python half is `heinfer/schemes.py`.
//!
//! Same rules as `lib.rs`: errors become `heinfer.errors` exceptions, long work runs with
//! the GIL released, and secret keys stay in these Rust objects (only `save_secret`
//! writes one, to a new 0600 file).

use std::path::PathBuf;

use pyo3::buffer::PyBuffer;
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use crate::{element_bytes, run, Failure, Kind};

impl From<client::PaillierSessionError> for Failure {
    fn from(e: client::PaillierSessionError) -> Self {
        use client::PaillierSessionError as E;
        let kind = match &e {
            E::Spec(_) => Kind::Spec,
            E::Keys(_) | E::KeyFile { .. } | E::KeyTooSmall { .. } => Kind::KeyFile,
            E::Input(_) | E::Paillier(_) => Kind::Input,
            E::OutputCount { .. } | E::Output(_) => Kind::Output,
        };
        Failure(kind, e.to_string())
    }
}

impl From<client::BgvSessionError> for Failure {
    fn from(e: client::BgvSessionError) -> Self {
        use client::BgvSessionError as E;
        let kind = match &e {
            E::Params(_) => Kind::Spec,
            E::Key(_) | E::KeyFile(_) => Kind::KeyFile,
            E::Input(_) => Kind::Input,
            E::Answer { .. } => Kind::Output,
        };
        Failure(kind, e.to_string())
    }
}

/// The spec of `scheme`, or a SpecError naming the class for the scheme it is.
pub(crate) fn any_spec(spec_json: &str) -> Result<model::AnySpec, Failure> {
    model::AnySpec::from_json(spec_json).map_err(|e| Failure(Kind::Spec, e.to_string()))
}

pub(crate) fn wrong_scheme(want: &str, got: model::Scheme) -> Failure {
    let class = match got {
        model::Scheme::Ckks => "heinfer.Client (layout L) or heinfer.BatchClient (layout T)",
        model::Scheme::Paillier => "heinfer.PaillierClient",
        model::Scheme::Bgv => "heinfer.BgvClient",
        model::Scheme::Lwe => "heinfer.LweClient",
    };
    Failure(
        Kind::Spec,
        format!("this is a {got} model's client spec, not a {want} one: use {class}, or heinfer.client_for(spec)"),
    )
}

fn paillier_spec(spec_json: &str) -> Result<model::LinearSpec, Failure> {
    match any_spec(spec_json)? {
        model::AnySpec::Paillier(s) if s.scheme == model::Scheme::Paillier => Ok(s),
        other => Err(wrong_scheme("Paillier", other.scheme())),
    }
}

fn bgv_spec(spec_json: &str) -> Result<model::BgvSpec, Failure> {
    match any_spec(spec_json)? {
        model::AnySpec::Bgv(s) => Ok(s),
        other => Err(wrong_scheme("BGV", other.scheme())),
    }
}

fn ckks_spec(spec_json: &str) -> Result<model::ClientSpec, Failure> {
    match any_spec(spec_json)? {
        model::AnySpec::Ckks(s) => Ok(s),
        other => Err(wrong_scheme("CKKS", other.scheme())),
    }
}

/// `rows` samples of `n` values from a float64 buffer.
pub(crate) fn rows_of(py: Python<'_>, x: &Bound<'_, PyAny>, rows: usize, n: usize) -> PyResult<Vec<f64>> {
    let buf = PyBuffer::<f64>::get(x)
        .map_err(|e| Failure(Kind::Input, format!("the input must be a float64 buffer: {e}")).into_py(py))?;
    let data = buf.to_vec(py)?;
    if rows == 0 || data.len() != rows * n {
        let msg =
            format!("input has {} values for {rows} sample(s); this model takes {n} values per sample", data.len());
        return Err(Failure(Kind::Input, msg).into_py(py));
    }
    Ok(data)
}

pub(crate) fn elements(py: Python<'_>, outputs: &[Bound<'_, PyAny>]) -> PyResult<Vec<Vec<u8>>> {
    outputs.iter().enumerate().map(|(i, o)| element_bytes(i, o)).collect::<Result<_, _>>().map_err(|f| f.into_py(py))
}

pub(crate) fn py_bytes<'py>(py: Python<'py>, v: &[Vec<u8>]) -> Vec<Bound<'py, PyBytes>> {
    v.iter().map(|b| PyBytes::new(py, b)).collect()
}

/// The scheme a client spec (JSON) is for: "ckks", "paillier", "bgv" or "lwe".
#[pyfunction]
fn spec_scheme(spec_json: &str) -> PyResult<String> {
    model::spec::scheme_of_json(spec_json)
        .map(|s| s.name().to_string())
        .map_err(|e| Python::with_gil(|py| Failure(Kind::Spec, e.to_string()).into_py(py)))
}

/// The chosen layout, and the estimated seconds of every layout the spec lists.
type LayoutChoice = (String, Vec<(String, f64)>);

/// `client::choose_layout` for a CKKS spec: (layout, estimated seconds per layout) for
/// `samples` samples at `bytes_per_s`; `None` when the spec lists no layouts (L only).
#[pyfunction]
fn choose_layout(py: Python<'_>, spec_json: &str, samples: usize, bytes_per_s: f64) -> PyResult<Option<LayoutChoice>> {
    let spec = ckks_spec(spec_json).map_err(|f| f.into_py(py))?;
    let Some(best) = client::choose_layout(&spec, samples, bytes_per_s) else { return Ok(None) };
    let all = spec.layouts.iter().map(|c| (c.layout.clone(), c.total_s(samples, bytes_per_s))).collect();
    Ok(Some((best.layout.clone(), all)))
}

/// A Paillier linear model's client. See `heinfer.PaillierClient`.
#[pyclass(module = "heinfer._native", frozen)]
struct PaillierSession {
    inner: client::PaillierSession,
}

#[pymethods]
impl PaillierSession {
    /// A fresh key pair of the spec's modulus size (safe primes: seconds to a minute).
    #[staticmethod]
    fn generate(py: Python<'_>, spec_json: &str) -> PyResult<Self> {
        let spec_json = spec_json.to_owned();
        run(py, "generating a Paillier key pair", move || {
            Ok(Self { inner: client::PaillierSession::generate(paillier_spec(&spec_json)?)? })
        })
    }
    /// A session over a secret key file written by `save_secret` (or `heinfer keygen`).
    #[staticmethod]
    fn load(py: Python<'_>, spec_json: &str, path: PathBuf) -> PyResult<Self> {
        let spec_json = spec_json.to_owned();
        run(py, "loading the Paillier secret key", move || {
            Ok(Self { inner: client::PaillierSession::load(paillier_spec(&spec_json)?, &path)? })
        })
    }
    fn spec_json(&self) -> String {
        self.inner.spec().to_json()
    }
    fn input_len(&self) -> usize {
        self.inner.input_len()
    }
    fn save_secret(&self, py: Python<'_>, path: PathBuf) -> PyResult<()> {
        run(py, "saving the secret key", || Ok(self.inner.save_secret(&path)?))
    }
    /// (public key bytes = the EVALUATION_KEYS element, key id hex).
    fn evaluation_bundle<'py>(&self, py: Python<'py>) -> (Bound<'py, PyBytes>, String) {
        let (b, id) = self.inner.public_key_bytes();
        (PyBytes::new(py, &b), id.hex())
    }
    /// One list of ENCRYPTED_INPUT elements (one element: the d ciphertexts) per sample.
    fn encrypt_rows<'py>(
        &self,
        py: Python<'py>,
        x: &Bound<'py, PyAny>,
        rows: usize,
    ) -> PyResult<Vec<Vec<Bound<'py, PyBytes>>>> {
        let n = self.inner.input_len();
        let data = rows_of(py, x, rows, n)?;
        let out = run(py, "encrypting", || {
            data.chunks(n).map(|s| self.inner.encrypt(s).map_err(Failure::from)).collect::<Result<Vec<_>, _>>()
        })?;
        Ok(out.iter().map(|cts| py_bytes(py, cts)).collect())
    }
    /// ENCRYPTED_OUTPUT → the exact integer scores (decimal strings: they exceed 64 bits).
    fn decrypt_integers(&self, py: Python<'_>, outputs: Vec<Bound<'_, PyAny>>) -> PyResult<Vec<String>> {
        let b = elements(py, &outputs)?;
        run(py, "decrypting", || Ok(self.inner.decrypt_integers(&b)?.iter().map(|v| v.to_string()).collect()))
    }
    /// ENCRYPTED_OUTPUT → the scores as reals (before post-processing).
    fn decrypt(&self, py: Python<'_>, outputs: Vec<Bound<'_, PyAny>>) -> PyResult<Vec<f64>> {
        let b = elements(py, &outputs)?;
        run(py, "decrypting", || Ok(self.inner.decrypt(&b)?))
    }
    fn postprocess(&self, y: Vec<f64>) -> Vec<f64> {
        self.inner.postprocess(&y)
    }
}

/// A BGV integer model's client. See `heinfer.BgvClient`.
#[pyclass(module = "heinfer._native", frozen)]
struct BgvSession {
    inner: client::BgvSession,
}

#[pymethods]
impl BgvSession {
    #[staticmethod]
    fn generate(py: Python<'_>, spec_json: &str) -> PyResult<Self> {
        let spec_json = spec_json.to_owned();
        run(py, "generating BGV keys", move || Ok(Self { inner: client::BgvSession::generate(bgv_spec(&spec_json)?)? }))
    }
    #[staticmethod]
    fn load(py: Python<'_>, spec_json: &str, path: PathBuf) -> PyResult<Self> {
        let spec_json = spec_json.to_owned();
        run(py, "loading the BGV secret key", move || {
            Ok(Self { inner: client::BgvSession::load(bgv_spec(&spec_json)?, &path)? })
        })
    }
    fn spec_json(&self) -> String {
        self.inner.spec().to_json()
    }
    fn input_len(&self) -> usize {
        self.inner.spec().input_len()
    }
    /// Samples one request holds at most (N: one per slot).
    fn max_batch(&self) -> usize {
        self.inner.params().n()
    }
    fn save_secret(&self, py: Python<'_>, path: PathBuf) -> PyResult<()> {
        run(py, "saving the secret key", || Ok(self.inner.save_secret(&path)?))
    }
    /// (bundle bytes: a relinearisation key, key id hex).
    fn evaluation_bundle<'py>(&self, py: Python<'py>) -> PyResult<(Bound<'py, PyBytes>, String)> {
        let (b, id) = run(py, "generating evaluation keys", || Ok(self.inner.key_bundle()))?;
        Ok((PyBytes::new(py, &b), id.hex()))
    }
    /// `rows` samples (≤ N) → the ENCRYPTED_INPUT elements of one request (one per feature).
    fn encrypt_rows<'py>(
        &self,
        py: Python<'py>,
        x: &Bound<'py, PyAny>,
        rows: usize,
    ) -> PyResult<Vec<Bound<'py, PyBytes>>> {
        let n = self.inner.spec().input_len();
        let data = rows_of(py, x, rows, n)?;
        let out = run(py, "encrypting", || {
            let samples: Vec<&[f64]> = data.chunks(n).collect();
            Ok(self.inner.encrypt_batch(&samples)?)
        })?;
        Ok(py_bytes(py, &out))
    }
    /// ENCRYPTED_OUTPUT → `samples` rows of exact integers (centered mod t, or the CRT of a
    /// residue plan's moduli), row-major.
    fn decrypt_integers(&self, py: Python<'_>, outputs: Vec<Bound<'_, PyAny>>, samples: usize) -> PyResult<Vec<i128>> {
        let b = elements(py, &outputs)?;
        run(py, "decrypting", || {
            let refs: Vec<&[u8]> = b.iter().map(|v| v.as_slice()).collect();
            Ok(self.inner.decrypt_integers(&refs, samples)?.concat())
        })
    }
    /// The integers divided by the output scale: the model's outputs, row-major.
    fn decrypt(&self, py: Python<'_>, outputs: Vec<Bound<'_, PyAny>>, samples: usize) -> PyResult<Vec<f64>> {
        let b = elements(py, &outputs)?;
        run(py, "decrypting", || {
            let refs: Vec<&[u8]> = b.iter().map(|v| v.as_slice()).collect();
            Ok(self.inner.decrypt_batch(&refs, samples)?.concat())
        })
    }
    fn output_len(&self) -> usize {
        self.inner.spec().output_len()
    }
    fn postprocess(&self, y: Vec<f64>) -> Vec<f64> {
        self.inner.postprocess(&y)
    }
}

/// A Python class over one batch layout of a CKKS model (`client::BatchLayout`): the
/// same methods for T and M, which `heinfer._BatchedClient` calls.
macro_rules! batch_layout_class {
    ($name:ident, $layout:literal, $doc:literal) => {
        #[doc = $doc]
        #[pyclass(module = "heinfer._native", frozen)]
        struct $name {
            inner: Box<dyn client::BatchLayout>,
            spec: model::ClientSpec,
        }

        #[pymethods]
        impl $name {
            #[staticmethod]
            fn generate(py: Python<'_>, spec_json: &str) -> PyResult<Self> {
                let spec_json = spec_json.to_owned();
                run(py, concat!("generating layout-", $layout, " keys"), move || {
                    let spec = ckks_spec(&spec_json)?;
                    Ok(Self { inner: client::batch_session(&spec, $layout, None)?, spec })
                })
            }
            #[staticmethod]
            fn load(py: Python<'_>, spec_json: &str, path: PathBuf) -> PyResult<Self> {
                let spec_json = spec_json.to_owned();
                run(py, "loading the secret key", move || {
                    let spec = ckks_spec(&spec_json)?;
                    Ok(Self { inner: client::batch_session(&spec, $layout, Some(&path))?, spec })
                })
            }
            fn spec_json(&self) -> String {
                self.spec.to_json()
            }
            fn input_len(&self) -> usize {
                self.inner.input_len()
            }
            fn output_len(&self) -> usize {
                self.inner.output_len()
            }
            fn max_batch(&self) -> usize {
                self.inner.max_batch()
            }
            fn save_secret(&self, py: Python<'_>, path: PathBuf) -> PyResult<()> {
                run(py, "saving the secret key", || {
                    Ok(self.inner.keys().save_secret(&path).map_err(client::SessionError::from)?)
                })
            }
            /// (bundle bytes, key id hex).
            fn evaluation_bundle<'py>(&self, py: Python<'py>) -> PyResult<(Bound<'py, PyBytes>, String)> {
                let (b, id) = run(py, "generating evaluation keys", || Ok(self.inner.evaluation_bundle()))?;
                Ok((PyBytes::new(py, &b), id.hex()))
            }
            /// `rows` samples (≤ max_batch) → the ENCRYPTED_INPUT elements.
            fn encrypt_rows<'py>(
                &self,
                py: Python<'py>,
                x: &Bound<'py, PyAny>,
                rows: usize,
            ) -> PyResult<Vec<Bound<'py, PyBytes>>> {
                let data = rows_of(py, x, rows, self.inner.input_len())?;
                let out = run(py, "encrypting", || Ok(self.inner.encrypt(&data, rows)?))?;
                Ok(py_bytes(py, &out))
            }
            /// ENCRYPTED_OUTPUT → `samples` rows of the model's outputs, row-major.
            fn decrypt(&self, py: Python<'_>, outputs: Vec<Bound<'_, PyAny>>, samples: usize) -> PyResult<Vec<f64>> {
                let b = elements(py, &outputs)?;
                run(py, "decrypting", || Ok(self.inner.decrypt(&b, samples)?))
            }
            fn postprocess(&self, y: Vec<f64>) -> Vec<f64> {
                self.spec.postprocess(&y)
            }
        }
    };
}

batch_layout_class!(
    BatchSession,
    "T",
    "A CKKS model's layout T (a ciphertext per input feature, a batch per request). See `heinfer.BatchClient`."
);
batch_layout_class!(
    MultiSession,
    "M",
    "A CKKS model's layout M (B samples in one ciphertext). See `heinfer.MultiClient`."
);

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PaillierSession>()?;
    m.add_class::<BgvSession>()?;
    m.add_class::<BatchSession>()?;
    m.add_class::<MultiSession>()?;
    crate::lwe_client::register(m)?;
    m.add_function(wrap_pyfunction!(spec_scheme, m)?)?;
    m.add_function(wrap_pyfunction!(choose_layout, m)?)?;
    Ok(())
}
