//! `heinfer._native`: the Rust half of the Python package `heinfer`.
//!
//! Thin bindings over `client::Session` (keys, encryption, decryption) and
//! `compiler::compile` (for model owners). The Python half (`heinfer/__init__.py`)
//! adds numpy conversion, tritonclient glue and the public `Client` class.
//!
//! Rules kept here:
//! - every error becomes an exception of `heinfer.errors` (a `HeinferError`
//!   subclass) carrying the Rust message; panics are caught and reported the same
//!   way, so none reaches Python as `PanicException`;
//! - long work (key generation, encryption, decryption, compilation) runs with the
//!   GIL released.

mod aggregate;
mod lwe_client;
mod schemes;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;

use pyo3::buffer::PyBuffer;
use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::types::{PyByteArray, PyBytes, PyMemoryView};

/// The exception classes live in Python (`heinfer/errors.py`) so that they can
/// also derive from the matching built-ins (`ValueError`, `OSError`).
#[derive(Clone, Copy)]
enum Kind {
    Base,
    Spec,
    KeyFile,
    Input,
    Output,
    Compile,
    Release,
    Aggregation,
}

impl Kind {
    fn class_name(self) -> &'static str {
        match self {
            Kind::Base => "HeinferError",
            Kind::Spec => "SpecError",
            Kind::KeyFile => "KeyFileError",
            Kind::Input => "InputError",
            Kind::Output => "OutputError",
            Kind::Compile => "CompileError",
            Kind::Release => "ReleaseError",
            Kind::Aggregation => "AggregationError",
        }
    }
}

/// An error on its way to Python: which class, and the message.
struct Failure(Kind, String);

impl Failure {
    fn into_py(self, py: Python<'_>) -> PyErr {
        let Failure(kind, msg) = self;
        match py.import("heinfer.errors").and_then(|m| m.getattr(kind.class_name())) {
            Ok(cls) => PyErr::from_type(cls.downcast_into().expect("exception class"), msg),
            Err(_) => PyRuntimeError::new_err(msg),
        }
    }
}

impl From<client::SessionError> for Failure {
    fn from(e: client::SessionError) -> Self {
        use client::SessionError as E;
        let kind = match &e {
            E::Params(_) | E::Spec(_) => Kind::Spec,
            E::Keys(_) => Kind::KeyFile,
            E::Input(_) => Kind::Input,
            E::OutputCount { .. } | E::Output { .. } => Kind::Output,
            E::Release(_) => Kind::Release,
            E::Ckks(_) => Kind::Base,
        };
        Failure(kind, e.to_string())
    }
}

fn panic_message(p: Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic".into()
    }
}

/// Runs `f` without the GIL, catching panics; maps the error into a Python exception.
fn run<T, F>(py: Python<'_>, what: &str, f: F) -> PyResult<T>
where
    T: Send,
    F: FnOnce() -> Result<T, Failure> + Send,
{
    let r = py.allow_threads(|| catch_unwind(AssertUnwindSafe(f)));
    match r {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(f)) => Err(f.into_py(py)),
        Err(p) => Err(Failure(
            Kind::Base,
            format!("internal error in heinfer while {what}: {} (please report this)", panic_message(p)),
        )
        .into_py(py)),
    }
}

fn parse_spec(spec_json: &str) -> Result<model::ClientSpec, Failure> {
    model::ClientSpec::from_json(spec_json).map_err(|e| Failure(Kind::Spec, e.to_string()))
}

/// Copies one element of ENCRYPTED_OUTPUT (bytes, bytearray, memoryview, numpy bytes) out of Python.
fn element_bytes(i: usize, o: &Bound<'_, PyAny>) -> Result<Vec<u8>, Failure> {
    if let Ok(b) = o.downcast::<PyBytes>() {
        return Ok(b.as_bytes().to_vec());
    }
    if let Ok(b) = o.downcast::<PyByteArray>() {
        return Ok(b.to_vec());
    }
    if o.downcast::<PyMemoryView>().is_ok() {
        if let Ok(buf) = PyBuffer::<u8>::get(o) {
            if let Ok(v) = buf.to_vec(o.py()) {
                return Ok(v);
            }
        }
    }
    let ty = o.get_type().name().map(|n| n.to_string()).unwrap_or_else(|_| "?".into());
    Err(Failure(
        Kind::Output,
        format!("ENCRYPTED_OUTPUT[{i}] is a {ty}, not bytes: pass the elements of the ENCRYPTED_OUTPUT tensor (result.as_numpy(\"ENCRYPTED_OUTPUT\"))"),
    ))
}

/// A model's client: its spec and a secret key. See `heinfer.Client`.
#[pyclass(module = "heinfer._native", frozen)]
struct Session {
    inner: client::Session,
    spec_json: String,
}

#[pymethods]
impl Session {
    /// Fresh keys (OS CSPRNG) for the model this client spec (JSON) describes.
    #[staticmethod]
    fn generate(py: Python<'_>, spec_json: &str) -> PyResult<Self> {
        let spec_json = spec_json.to_owned();
        run(py, "generating keys", move || {
            let spec = parse_spec(&spec_json)?;
            let inner = client::Session::generate(spec)?;
            Ok(Session { spec_json: inner.spec().to_json(), inner })
        })
    }

    /// A session over a secret key file written earlier by `save_secret`.
    #[staticmethod]
    fn load(py: Python<'_>, spec_json: &str, path: PathBuf) -> PyResult<Self> {
        let spec_json = spec_json.to_owned();
        run(py, "loading the secret key", move || {
            let spec = parse_spec(&spec_json)?;
            let inner = client::Session::load(spec, &path)?;
            Ok(Session { spec_json: inner.spec().to_json(), inner })
        })
    }

    /// The client spec, as JSON.
    fn spec_json(&self) -> String {
        self.spec_json.clone()
    }

    /// Number of values in one sample.
    fn input_len(&self) -> usize {
        self.inner.input_len()
    }

    /// Writes the secret key to a new file (mode 0600); refuses to overwrite.
    fn save_secret(&self, py: Python<'_>, path: PathBuf) -> PyResult<()> {
        run(py, "saving the secret key", || Ok(self.inner.save_secret(&path)?))
    }

    /// (bundle bytes, key id hex): the evaluation keys a server needs for this model.
    fn evaluation_bundle<'py>(&self, py: Python<'py>) -> PyResult<(Bound<'py, PyBytes>, String)> {
        let (bytes, id) = run(py, "generating evaluation keys", || {
            let (b, id) = self.inner.evaluation_bundle();
            Ok((b, id.hex()))
        })?;
        Ok((PyBytes::new(py, &bytes), id))
    }

    /// Encrypts `rows` samples given as one C-contiguous float64 buffer of
    /// `rows * input_len` values; returns one list of ciphertext bytes per sample.
    fn encrypt_rows<'py>(
        &self,
        py: Python<'py>,
        x: &Bound<'py, PyAny>,
        rows: usize,
    ) -> PyResult<Vec<Vec<Bound<'py, PyBytes>>>> {
        let buf = PyBuffer::<f64>::get(x)
            .map_err(|e| Failure(Kind::Input, format!("the input must be a float64 buffer: {e}")).into_py(py))?;
        let data = buf.to_vec(py)?;
        let n = self.inner.input_len();
        if rows == 0 || data.len() != rows * n {
            let shape = &self.inner.spec().input.shape;
            return Err(Failure(
                Kind::Input,
                format!(
                    "input has {} values for {rows} sample(s); this model takes {n} values per sample (shape {shape:?})",
                    data.len()
                ),
            )
            .into_py(py));
        }
        let out = run(py, "encrypting", || {
            data.chunks(n).map(|s| self.inner.encrypt(s).map_err(Failure::from)).collect::<Result<Vec<_>, _>>()
        })?;
        Ok(out.iter().map(|cts| cts.iter().map(|c| PyBytes::new(py, c)).collect()).collect())
    }

    /// The elements of ENCRYPTED_OUTPUT → the model's output vector (before post-processing).
    fn decrypt(&self, py: Python<'_>, outputs: Vec<Bound<'_, PyAny>>) -> PyResult<Vec<f64>> {
        let bytes = outputs
            .iter()
            .enumerate()
            .map(|(i, o)| element_bytes(i, o))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|f| f.into_py(py))?;
        run(py, "decrypting", || Ok(self.inner.decrypt(&bytes)?))
    }

    /// Like `decrypt`, for values that leave the client: `policy` is
    /// `flood:RELEASES:MAX_ERROR[:SECURITY_BITS[:MAX_NOISE]]` or `round:BITS`; returns
    /// the values and the guarantee in words.
    fn decrypt_for_release(
        &self,
        py: Python<'_>,
        outputs: Vec<Bound<'_, PyAny>>,
        policy: &str,
    ) -> PyResult<(Vec<f64>, String)> {
        let bytes = outputs
            .iter()
            .enumerate()
            .map(|(i, o)| element_bytes(i, o))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|f| f.into_py(py))?;
        let policy = client::Release::parse(policy).map_err(|e| Failure(Kind::Release, e.to_string()).into_py(py))?;
        run(py, "decrypting for release", || {
            let (y, g) = self.inner.decrypt_for_release(&bytes, &policy)?;
            Ok((y, g.to_string()))
        })
    }

    /// The elements of ENCRYPTED_INPUT (made under this secret key) → the sample
    /// (flattened), read back from the slots. For checking a saved key and debugging.
    fn decrypt_input(&self, py: Python<'_>, inputs: Vec<Bound<'_, PyAny>>) -> PyResult<Vec<f64>> {
        let bytes = inputs
            .iter()
            .enumerate()
            .map(|(i, o)| element_bytes(i, o))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|f| f.into_py(py))?;
        run(py, "decrypting the input", || {
            let spec = self.inner.spec();
            let maps = &spec.input.slot_map;
            if bytes.len() != maps.len() {
                return Err(Failure(
                    Kind::Input,
                    format!("ENCRYPTED_INPUT holds {} ciphertexts; this model takes {}", bytes.len(), maps.len()),
                ));
            }
            let params = self.inner.params();
            let dec = ckks::Decryptor::new(self.inner.keys().secret_key());
            let enc = ckks::Encoder::new(params);
            let mut x = vec![f64::NAN; self.inner.input_len()];
            for (i, (b, map)) in bytes.iter().zip(maps).enumerate() {
                let ct = ckks::read_any_ciphertext(params, b).map_err(|e| {
                    Failure(Kind::Input, format!("ENCRYPTED_INPUT[{i}] is not a ciphertext of this model: {e}"))
                })?;
                let pt = dec.decrypt(&ct).map_err(|e| Failure(Kind::Base, e.to_string()))?;
                let v = enc.decode(&pt).map_err(|e| Failure(Kind::Base, e.to_string()))?;
                for (j, &k) in map.iter().enumerate() {
                    if k >= 0 && x[k as usize].is_nan() {
                        x[k as usize] = v[j];
                    }
                }
            }
            Ok(x)
        })
    }

    /// The client-side post-processing recorded in the spec (softmax, argmax, …).
    fn postprocess(&self, y: Vec<f64>) -> Vec<f64> {
        self.inner.postprocess(&y)
    }
}

/// The client spec JSON stored in a compiled model file (`model.hem`).
#[pyfunction]
fn client_spec_from_model_file(py: Python<'_>, path: PathBuf) -> PyResult<String> {
    run(py, "reading the model file", move || {
        // Any scheme's model (CKKS, Paillier, LWE, BGV): `heinfer.client_for` reads its spec.
        let m =
            model::AnyModel::read_file(&path).map_err(|e| Failure(Kind::Spec, format!("{}: {e}", path.display())))?;
        Ok(m.spec().to_json())
    })
}

/// Compiles an ONNX model into `<output_dir>/<name>/` (config.pbtxt + 1/model.hem);
/// returns (report JSON, model directory).
#[pyfunction]
#[pyo3(signature = (onnx_path, calibration, calibration_shape, output_dir, name, degree, target_agreement,
    max_degree, margin, maxpool_average, scale_bits, min_log_n, key_budget_bytes, python, use_onnxruntime,
    data=None, data_shape=None, labels=None, progress=None, maxpool_approximate=false, public_features=None,
    circuit_privacy=None, output_dp=None, mask_unused_slots=false, split_at=None, rotations="auto", query="ciphertext",
    layout="auto", first_layer="auto", answer="auto", merged=false, galois_radix=None, one_top_key=false, key_bases=true))]
#[allow(clippy::too_many_arguments)]
fn compile(
    py: Python<'_>,
    onnx_path: PathBuf,
    calibration: &Bound<'_, PyAny>,
    calibration_shape: Vec<usize>,
    output_dir: PathBuf,
    name: String,
    degree: Option<usize>,
    target_agreement: f64,
    max_degree: usize,
    margin: f64,
    maxpool_average: bool,
    scale_bits: Option<u32>,
    min_log_n: u32,
    key_budget_bytes: Option<usize>,
    python: Option<PathBuf>,
    use_onnxruntime: bool,
    data: Option<&Bound<'_, PyAny>>,
    data_shape: Option<Vec<usize>>,
    labels: Option<&Bound<'_, PyAny>>,
    progress: Option<PyObject>,
    maxpool_approximate: bool,
    public_features: Option<String>,
    circuit_privacy: Option<u32>,
    output_dp: Option<(f64, f64, Option<f64>, Option<f64>)>,
    mask_unused_slots: bool,
    split_at: Option<String>,
    rotations: &str,
    query: &str,
    layout: &str,
    first_layer: &str,
    answer: &str,
    merged: bool,
    galois_radix: Option<u32>,
    one_top_key: bool,
    key_bases: bool,
) -> PyResult<(String, String)> {
    let first_layer: compiler::FirstLayer =
        first_layer.parse().map_err(|e: String| Failure(Kind::Compile, e).into_py(py))?;
    let answer: compiler::AnswerRequest = answer.parse().map_err(|e: String| Failure(Kind::Compile, e).into_py(py))?;
    let layout: compiler::LayoutRequest = layout.parse().map_err(|e: String| Failure(Kind::Compile, e).into_py(py))?;
    let rotations: compiler::RotationPolicy =
        rotations.parse().map_err(|e: String| Failure(Kind::Compile, e).into_py(py))?;
    let compact_query = match query {
        "ciphertext" => false,
        "compact" => true,
        other => {
            let msg = format!("query must be 'ciphertext' or 'compact', not '{other}'");
            return Err(Failure(Kind::Compile, msg).into_py(py));
        }
    };
    let array = |what: &str, o: &Bound<'_, PyAny>, shape: Vec<usize>| -> PyResult<compiler::Array> {
        let buf = PyBuffer::<f64>::get(o)
            .map_err(|e| Failure(Kind::Compile, format!("{what} must be a float64 array: {e}")).into_py(py))?;
        let data = buf.to_vec(py)?;
        if data.len() != shape.iter().product::<usize>() {
            return Err(
                Failure(Kind::Compile, format!("{what}: {} values for shape {shape:?}", data.len())).into_py(py)
            );
        }
        Ok(compiler::Array { shape, data })
    };
    let cal = array("calibration", calibration, calibration_shape)?;
    let ev = match data {
        Some(d) => Some(array("data", d, data_shape.unwrap_or_default())?),
        None => None,
    };
    let lab = match labels {
        Some(l) => {
            let n = PyBuffer::<f64>::get(l).map(|b| b.item_count()).unwrap_or(0);
            Some(array("labels", l, vec![n])?)
        }
        None => None,
    };
    let opts = compiler::Options {
        name,
        degree,
        target_agreement,
        max_degree,
        margin,
        maxpool: match (maxpool_approximate, maxpool_average) {
            (true, _) => compiler::MaxPoolPolicy::Approximate,
            (false, true) => compiler::MaxPoolPolicy::Average,
            (false, false) => compiler::MaxPoolPolicy::Refuse,
        },
        scale_bits,
        min_log_n,
        key_budget_bytes,
        python,
        use_onnxruntime,
        output_dp: output_dp.map(|(epsilon, delta, clamp, budget)| compiler::OutputDpRequest {
            epsilon,
            delta,
            clamp,
            budget,
        }),
        mask_unused_slots,
        circuit_privacy,
        public_features,
        split_at,
        rotations,
        compact_query,
        first_layer,
        answer,
        layout,
        galois_radix,
        one_top_key,
        key_bases,
        ..Default::default()
    };
    run(py, "compiling", move || {
        let bytes = std::fs::read(&onnx_path)
            .map_err(|e| Failure(Kind::Compile, format!("cannot read {}: {e}", onnx_path.display())))?;
        let d = compiler::Data { calibration: &cal, eval: ev.as_ref(), labels: lab.as_ref() };
        let report_progress = |msg: &str| {
            if let Some(cb) = &progress {
                Python::with_gil(|py| {
                    if let Err(e) = cb.call1(py, (msg,)) {
                        e.write_unraisable(py, None);
                    }
                });
            }
        };
        let c = compiler::compile(&bytes, Some(&onnx_path), &d, &opts, &report_progress)
            .map_err(|e| Failure(Kind::Compile, e.to_string()))?;
        let dir = compiler::write_repository(&output_dir, &c).map_err(|e| Failure(Kind::Compile, e.to_string()))?;
        if merged {
            compiler::write_merged_twin(&output_dir, &c).map_err(|e| Failure(Kind::Compile, e.to_string()))?;
        }
        let report = c
            .model
            .report
            .as_ref()
            .map(|r| serde_json::to_string(r).expect("report serializes"))
            .unwrap_or_else(|| "{}".into());
        Ok((report, dir.to_string_lossy().into_owned()))
    })
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Session>()?;
    m.add_function(wrap_pyfunction!(client_spec_from_model_file, m)?)?;
    m.add_function(wrap_pyfunction!(compile, m)?)?;
    aggregate::register(m)?;
    schemes::register(m)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    // The protocol's names come from the servers' own definitions (runtime::protocol), so
    // the Python client cannot drift from what Triton and heinfer-server read.
    use runtime::protocol as p;
    m.add("CLIENT_SPEC_PARAM", p::CLIENT_SPEC_PARAM)?;
    m.add("ENCRYPTED_INPUT", p::ENCRYPTED_INPUT)?;
    m.add("KEY_ID", p::KEY_ID)?;
    m.add("EVALUATION_KEYS", p::EVALUATION_KEYS)?;
    m.add("ENCRYPTED_OUTPUT", p::ENCRYPTED_OUTPUT)?;
    m.add("BACKEND", p::BACKEND)?;
    m.add("DP_EPSILON_QUERY", p::DP_EPSILON_QUERY)?;
    m.add("DP_EPSILON_SPENT", p::DP_EPSILON_SPENT)?;
    m.add("DP_EPSILON_BUDGET", p::DP_EPSILON_BUDGET)?;
    m.add("DP_EPSILON_REMAINING", p::DP_EPSILON_REMAINING)?;
    Ok(())
}
