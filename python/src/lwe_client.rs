//! Bindings for seeded-LWE linear models (`client::LweSession`): a 32-byte secret key, the
//! public key the server re-randomises answers under, seeded queries, decrypted scores.
//! The Python half is `heinfer.LweClient` in `heinfer/schemes.py`; same rules as there.

use std::path::PathBuf;

use pyo3::prelude::*;
use pyo3::types::PyBytes;

use crate::schemes::{any_spec, elements, py_bytes, rows_of, wrong_scheme};
use crate::{run, Failure, Kind};

impl From<client::LweSessionError> for Failure {
    fn from(e: client::LweSessionError) -> Self {
        use client::LweSessionError as E;
        let kind = match &e {
            E::Spec(_) => Kind::Spec,
            E::Keys(_) | E::KeyFile { .. } => Kind::KeyFile,
            E::Input(_) | E::Lwe(_) => Kind::Input,
            E::OutputCount { .. } | E::Output(_) => Kind::Output,
        };
        Failure(kind, e.to_string())
    }
}

fn lwe_spec(spec_json: &str) -> Result<model::LinearSpec, Failure> {
    match any_spec(spec_json)? {
        model::AnySpec::Paillier(s) if s.scheme == model::Scheme::Lwe => Ok(s),
        other => Err(wrong_scheme("seeded LWE", other.scheme())),
    }
}

/// A seeded-LWE linear model's client. See `heinfer.LweClient`.
#[pyclass(module = "heinfer._native", frozen)]
struct LweSession {
    inner: client::LweSession,
}

#[pymethods]
impl LweSession {
    /// A fresh secret key (32 bytes from the operating system).
    #[staticmethod]
    fn generate(py: Python<'_>, spec_json: &str) -> PyResult<Self> {
        let spec_json = spec_json.to_owned();
        run(py, "generating an LWE key", move || {
            Ok(Self { inner: client::LweSession::generate(lwe_spec(&spec_json)?)? })
        })
    }
    /// A session over a secret key file written by `save_secret` (or `heinfer keygen`).
    #[staticmethod]
    fn load(py: Python<'_>, spec_json: &str, path: PathBuf) -> PyResult<Self> {
        let spec_json = spec_json.to_owned();
        run(py, "loading the LWE secret key", move || {
            Ok(Self { inner: client::LweSession::load(lwe_spec(&spec_json)?, &path)? })
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
    /// (public key bytes = the EVALUATION_KEYS element, empty for a key-free model; key id hex).
    fn evaluation_bundle<'py>(&self, py: Python<'py>) -> PyResult<(Bound<'py, PyBytes>, String)> {
        let pk = run(py, "making the LWE public key", || Ok(self.inner.public_key()?))?;
        Ok((PyBytes::new(py, &pk), self.inner.key_id_hex()))
    }
    /// One list of ENCRYPTED_INPUT elements (one element: the seeded query) per sample.
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
        Ok(out.iter().map(|q| py_bytes(py, q)).collect())
    }
    /// ENCRYPTED_OUTPUT → the scores as reals (before post-processing), each within the
    /// spec's `error_bound` of the fixed-point score.
    fn decrypt(&self, py: Python<'_>, outputs: Vec<Bound<'_, PyAny>>) -> PyResult<Vec<f64>> {
        let b = elements(py, &outputs)?;
        run(py, "decrypting", || Ok(self.inner.decrypt(&b)?))
    }
    fn postprocess(&self, y: Vec<f64>) -> Vec<f64> {
        self.inner.postprocess(&y)
    }
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<LweSession>()
}
