//! # libtriton_heinfer — heinfer as a Triton Inference Server backend
//!
//! Triton loads this library from `<backend-directory>/heinfer/libtriton_heinfer.so`
//! for every model whose `config.pbtxt` says `backend: "heinfer"` (what `heinfer
//! compile` writes). Each model directory holds `<version>/model.hem`; the backend
//! loads it into a [`runtime::Service`] — the same request path `heinfer serve`
//! uses — and answers each request's `ENCRYPTED_INPUT` with `ENCRYPTED_OUTPUT`.
//!
//! Settings, from the model's `parameters` (or, as a default for every model, from
//! `--backend-config=heinfer,<key>=<value>`):
//!
//! | parameter | meaning | default |
//! |-----------|---------|---------|
//! | `heinfer_key_store_mb` | memory bound of the evaluation-key store (LRU) | 2048 |
//! | `heinfer_key_store_dir` | directory of content-addressed key bundles, shared by replicas | none |
//! | `heinfer_key_store_dir_mb` | bound on that directory (least recently used bundles removed) | none |
//! | `heinfer_max_request_mb` | largest request (all input tensors together) accepted | 256 |
//! | `heinfer_max_inflight_mb` | input bytes of all requests being evaluated (process) | 512 |
//! | `heinfer_max_evaluations` | evaluations running at once (process), past it refused | the instance groups |
//! | `heinfer_eval_timeout_s` | an evaluation running longer is stopped between operations | 600 |
//!
//! (Names and defaults: `runtime::protocol` and [`admission`]; loading:
//! `runtime::loader`, shared with `heinfer-server`.) The key store and the admission
//! bounds are one per process: the first model to load opens them with its settings;
//! set them once, in the backend config. A request over the in-flight or evaluation
//! bound is answered UNAVAILABLE (HTTP 503) at once; one cancelled by its client (a
//! gRPC call that went away) stops between operations.
//!
//! Every entry point catches panics and turns them into a Triton error (for the
//! request that caused it, if any): a bad request never takes the server down and
//! every request gets a response. The panic's text goes to the server log only.

// The entry points take Triton's handles as raw pointers and pass them back to
// Triton's own API; only Triton calls them, with handles it owns.
#![allow(clippy::not_unsafe_ptr_arg_deref)]

mod admission;
mod ffi;
mod glue;
mod merge;

use std::borrow::Cow;
use std::ffi::{c_void, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use admission::MAX_INFLIGHT_MB_PARAM as MAX_INFLIGHT;
use admission::{Admission, Limits, Stop};
use admission::{EVAL_TIMEOUT_S_PARAM as EVAL_TIMEOUT, MAX_EVALUATIONS_PARAM as MAX_EVALS};
use ffi::*;
use glue::{check, cstr, entry, log, now_ns, BackendError, Result};
use runtime::protocol::{BATCH_PART, BLOCK, KEY_ID, MAX_REQUEST_MB_PARAM, PLAIN_INPUT};
use runtime::protocol::{
    CLIENT_SPEC_PARAM, ENCRYPTED_INPUT as INPUT, ENCRYPTED_OUTPUT as OUTPUT, EVALUATION_KEYS as KEYS,
};
use runtime::{tensor, Request, Service, ServiceError, Settings};

/// Backend-wide defaults from `--backend-config=heinfer,...`, and the key store every
/// model of this process shares.
#[derive(Default)]
struct BackendState {
    settings: serde_json::Map<String, serde_json::Value>,
    keys: runtime::SharedKeyStore,
    /// opened by the first model to load, like the key store
    admission: Mutex<Option<Arc<Admission>>>,
}

impl BackendState {
    /// The process's admission bounds, opened with `limits` if none are yet (then
    /// `Opened`), else those in force (`Differ` when they are not `limits`).
    fn admission(&self, limits: Limits) -> (Arc<Admission>, Bounds) {
        let mut g = self.admission.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(a) = g.as_ref() {
            let b = if a.limits == limits { Bounds::Same } else { Bounds::Differ };
            return (a.clone(), b);
        }
        let a = Admission::new(limits);
        *g = Some(a.clone());
        (a, Bounds::Opened)
    }
}

/// How a model's admission settings relate to the process's.
#[derive(PartialEq)]
enum Bounds {
    Opened,
    Same,
    Differ,
}

/// One loaded model: its service (model, key store), shared by its instances.
struct ModelState {
    name: String,
    service: Arc<Service>,
    max_request_bytes: usize,
    admission: Arc<Admission>,
    /// a merged model (`max_batch_size` > 0, `merge`): layout M's blocks per ciphertext
    merged: Option<usize>,
}

struct InstanceState {
    name: String,
    model: Arc<ModelState>,
}

// Rust allocations of this library only; memory is never freed across the boundary
// (inputs are copied out of Triton's buffers, outputs into buffers Triton allocates).
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[no_mangle]
pub extern "C" fn TRITONBACKEND_Initialize(backend: *mut TRITONBACKEND_Backend) -> *mut TRITONSERVER_Error {
    entry("TRITONBACKEND_Initialize", || {
        let (mut major, mut minor) = (0u32, 0u32);
        // SAFETY: Triton's API function writing two u32 out-parameters we own.
        check(unsafe { TRITONBACKEND_ApiVersion(&mut major, &mut minor) })?;
        if major != API_VERSION_MAJOR || minor < API_VERSION_MINOR {
            return Err(BackendError::unsupported(format!(
                "heinfer backend needs Triton backend API {API_VERSION_MAJOR}.{API_VERSION_MINOR} or a later 1.x; \
                 this tritonserver has {major}.{minor} (Triton 2.51 or later)"
            )));
        }
        let mut msg = std::ptr::null_mut();
        // SAFETY: `backend` is the handle Triton passed us; `msg` is an out-parameter.
        check(unsafe { TRITONBACKEND_BackendConfig(backend, &mut msg) })?;
        let cfg = glue::message_json(msg, false)?;
        // Backend config arrives as {"cmdline": {"key": "value", ...}}; keys may use - or _.
        let settings = cfg
            .get("cmdline")
            .and_then(|c| c.as_object())
            .map(|m| m.iter().map(|(k, v)| (k.replace('-', "_"), v.clone())).collect())
            .unwrap_or_default();
        let state = Box::new(BackendState { settings, ..Default::default() });
        log(LOG_INFO, &format!("heinfer backend initialized (API {major}.{minor})"));
        // SAFETY: ownership of the box passes to Triton until TRITONBACKEND_Finalize.
        check(unsafe { TRITONBACKEND_BackendSetState(backend, Box::into_raw(state) as *mut c_void) })
    })
}

#[no_mangle]
pub extern "C" fn TRITONBACKEND_Finalize(backend: *mut TRITONBACKEND_Backend) -> *mut TRITONSERVER_Error {
    entry("TRITONBACKEND_Finalize", || {
        let mut p = std::ptr::null_mut();
        // SAFETY: reads back the pointer we stored at initialize.
        check(unsafe { TRITONBACKEND_BackendState(backend, &mut p) })?;
        if !p.is_null() {
            // SAFETY: `p` came from Box::into_raw in TRITONBACKEND_Initialize and is dropped once.
            drop(unsafe { Box::from_raw(p as *mut BackendState) });
        }
        Ok(())
    })
}

/// A setting from the model's parameters, else the backend config.
fn setting(model_cfg: &serde_json::Value, backend: &BackendState, key: &str) -> Option<String> {
    let from_model = model_cfg
        .get("parameters")
        .and_then(|p| p.get(key))
        .and_then(|v| v.get("string_value"))
        .and_then(|v| v.as_str())
        .map(str::to_owned);
    let short = key.trim_start_matches("heinfer_");
    from_model.or_else(|| {
        backend.settings.get(key).or_else(|| backend.settings.get(short)).and_then(|v| v.as_str()).map(str::to_owned)
    })
}

fn load_model(model: *mut TRITONBACKEND_Model) -> Result<ModelState> {
    let mut p = std::ptr::null();
    // SAFETY: `model` is Triton's handle; the name it returns lives as long as the model.
    check(unsafe { TRITONBACKEND_ModelName(model, &mut p) })?;
    let name = cstr(p);
    let mut version = 0u64;
    // SAFETY: out-parameter we own.
    check(unsafe { TRITONBACKEND_ModelVersion(model, &mut version) })?;
    let (mut kind, mut loc) = (0u32, std::ptr::null());
    // SAFETY: out-parameters we own; the location string lives as long as the model.
    check(unsafe { TRITONBACKEND_ModelRepository(model, &mut kind, &mut loc) })?;
    if kind != ARTIFACT_FILESYSTEM {
        return Err(BackendError::unsupported(format!("model {name}: heinfer reads models from a file system only")));
    }
    let dir = PathBuf::from(cstr(loc));
    let mut msg = std::ptr::null_mut();
    // SAFETY: out-parameter; the message is ours to delete (message_json does).
    check(unsafe { TRITONBACKEND_ModelConfig(model, 1, &mut msg) })?;
    let cfg = glue::message_json(msg, true)?;
    let mut backend = std::ptr::null_mut();
    // SAFETY: out-parameters we own; the backend state pointer is ours from initialize.
    check(unsafe { TRITONBACKEND_ModelBackend(model, &mut backend) })?;
    let mut bp = std::ptr::null_mut();
    // SAFETY: as above.
    check(unsafe { TRITONBACKEND_BackendState(backend, &mut bp) })?;
    let fallback = BackendState::default();
    // SAFETY: set at TRITONBACKEND_Initialize to a live BackendState that outlives every model.
    let bstate: &BackendState = if bp.is_null() { &fallback } else { unsafe { &*(bp as *const BackendState) } };

    let file = cfg.get("default_model_filename").and_then(|v| v.as_str());
    let hem = runtime::loader::model_path(&dir, &version.to_string(), file);

    let settings = Settings::from_params(|k| setting(&cfg, bstate, k))
        .map_err(|e| BackendError::invalid(format!("model {name}: {e}")))?;
    let max_request_bytes = settings.max_request_bytes_or_default();
    let limits = Limits::from_params(|k| setting(&cfg, bstate, k))
        .map_err(|e| BackendError::invalid(format!("model {name}: {e}")))?;
    let (admission, bounds) = bstate.admission(limits);
    if bounds != Bounds::Same {
        let l = &admission.limits;
        let (level, note) = match bounds {
            Bounds::Opened => (LOG_INFO, ""),
            _ => (LOG_WARN, "; in force already: this model's own settings differ, set them once"),
        };
        log(
            level,
            &format!(
                "model {name}: heinfer admission (all models{note}): {} MB of requests in flight ({MAX_INFLIGHT}), \
                 {} ({MAX_EVALS}), evaluations stopped after {} s ({EVAL_TIMEOUT})",
                l.max_inflight_bytes >> 20,
                match l.max_evaluations {
                    usize::MAX => "evaluations bounded by the instance groups".to_string(),
                    n => format!("{n} evaluations"),
                },
                l.eval_timeout.as_secs_f64()
            ),
        );
    }
    let (store, opened_with) =
        bstate.keys.get_or_open(&settings).map_err(|e| BackendError::invalid(format!("model {name}: {e}")))?;
    if let Some(o) = opened_with {
        log(
            LOG_WARN,
            &format!(
                "model {name}: its key-store settings differ from those the process's store was opened with \
                 ({} MB{}); that store serves it (set them once, with --backend-config=heinfer,...)",
                o.key_store_bytes_or_default() >> 20,
                o.key_store_dir.map(|d| format!(" at {}", d.display())).unwrap_or_default()
            ),
        );
    }

    // The config's client spec is what clients read; load_model checks it describes this model.hem.
    let client_spec = setting(&cfg, bstate, CLIENT_SPEC_PARAM);
    if client_spec.is_none() {
        log(
            LOG_WARN,
            &format!("model {name}: config has no {CLIENT_SPEC_PARAM} parameter; clients cannot read the spec"),
        );
    }
    let runtime::LoadedModel { mut service, client: spec, weight_bytes: weights } =
        runtime::load_model(&hem, client_spec.as_deref(), store.clone())
            .map_err(|e| BackendError::invalid(format!("model {name}: cannot load {e}")))?;
    // The config may override the privacy budget the model was compiled with.
    if let Some(v) = setting(&cfg, bstate, runtime::protocol::DP_BUDGET_PARAM) {
        let budget =
            runtime::protocol::dp_budget(&v).map_err(|e| BackendError::invalid(format!("model {name}: {e}")))?;
        service.set_dp_budget(budget);
    }
    let batch_limits = runtime::assembly::Limits::from_params(|k| setting(&cfg, bstate, k))
        .map_err(|e| BackendError::invalid(format!("model {name}: {e}")))?;
    service.set_batch_limits(batch_limits);
    // A batched config (the merged twin, `heinfer compile --merged`): Triton hands us
    // several requests at once, which only layout M can answer with one evaluation.
    let max_batch = cfg.get("max_batch_size").and_then(|v| v.as_i64()).unwrap_or(0);
    let merged = match (max_batch, service.merged_blocks()) {
        (0, _) => None,
        (_, Some(b)) => Some(b),
        (_, None) => {
            return Err(BackendError::invalid(format!(
                "model {name}: max_batch_size {max_batch} needs a model with layout M, whose same-key requests \
                 are merged into one evaluation (heinfer compile --merged); set max_batch_size: 0 for this model"
            )))
        }
    };
    let (keys_mb, keys_dir) = (store.capacity() >> 20, store.dir());
    log(
        LOG_INFO,
        &format!(
            "heinfer model {name} v{version} loaded: {}, weights {:.1} MB, key store {} MB{}",
            spec.summary(),
            weights as f64 / 1e6,
            keys_mb,
            keys_dir.map(|d| format!(" at {}", d.display())).unwrap_or_default()
        ),
    );
    if let Some(b) = merged {
        log(LOG_INFO, &format!("model {name}: merges same-key requests on distinct {BLOCK}s 0..{b} (layout M)"));
    }
    Ok(ModelState { name, service: Arc::new(service), max_request_bytes, admission, merged })
}

#[no_mangle]
pub extern "C" fn TRITONBACKEND_ModelInitialize(model: *mut TRITONBACKEND_Model) -> *mut TRITONSERVER_Error {
    entry("TRITONBACKEND_ModelInitialize", || {
        let state = Arc::new(load_model(model)?);
        // SAFETY: ownership passes to Triton until TRITONBACKEND_ModelFinalize.
        check(unsafe { TRITONBACKEND_ModelSetState(model, Arc::into_raw(state) as *mut c_void) })
    })
}

#[no_mangle]
pub extern "C" fn TRITONBACKEND_ModelFinalize(model: *mut TRITONBACKEND_Model) -> *mut TRITONSERVER_Error {
    entry("TRITONBACKEND_ModelFinalize", || {
        let mut p = std::ptr::null_mut();
        // SAFETY: reads back the pointer stored at model initialize.
        check(unsafe { TRITONBACKEND_ModelState(model, &mut p) })?;
        if !p.is_null() {
            // SAFETY: `p` came from Arc::into_raw in TRITONBACKEND_ModelInitialize; released once.
            drop(unsafe { Arc::from_raw(p as *const ModelState) });
        }
        Ok(())
    })
}

#[no_mangle]
pub extern "C" fn TRITONBACKEND_ModelInstanceInitialize(
    instance: *mut TRITONBACKEND_ModelInstance,
) -> *mut TRITONSERVER_Error {
    entry("TRITONBACKEND_ModelInstanceInitialize", || {
        let (mut p, mut kind, mut model) = (std::ptr::null(), 0u32, std::ptr::null_mut());
        // SAFETY: out-parameters we own; `instance` is Triton's handle.
        check(unsafe { TRITONBACKEND_ModelInstanceName(instance, &mut p) })?;
        let name = cstr(p);
        // SAFETY: as above.
        check(unsafe { TRITONBACKEND_ModelInstanceKind(instance, &mut kind) })?;
        if kind != KIND_CPU && kind != KIND_AUTO {
            return Err(BackendError::unsupported(format!(
                "instance {name}: heinfer runs on CPUs; use instance_group [ {{ kind: KIND_CPU }} ]"
            )));
        }
        // SAFETY: as above.
        check(unsafe { TRITONBACKEND_ModelInstanceModel(instance, &mut model) })?;
        let mut mp = std::ptr::null_mut();
        // SAFETY: as above.
        check(unsafe { TRITONBACKEND_ModelState(model, &mut mp) })?;
        if mp.is_null() {
            return Err(BackendError::internal("model state missing at instance initialize".into()));
        }
        // SAFETY: `mp` is the Arc<ModelState> stored at model initialize, alive until model
        // finalize (after every instance's finalize); we take one more strong count.
        let model_state = unsafe {
            Arc::increment_strong_count(mp as *const ModelState);
            Arc::from_raw(mp as *const ModelState)
        };
        let state = Box::new(InstanceState { name, model: model_state });
        // SAFETY: ownership passes to Triton until TRITONBACKEND_ModelInstanceFinalize.
        check(unsafe { TRITONBACKEND_ModelInstanceSetState(instance, Box::into_raw(state) as *mut c_void) })
    })
}

#[no_mangle]
pub extern "C" fn TRITONBACKEND_ModelInstanceFinalize(
    instance: *mut TRITONBACKEND_ModelInstance,
) -> *mut TRITONSERVER_Error {
    entry("TRITONBACKEND_ModelInstanceFinalize", || {
        let mut p = std::ptr::null_mut();
        // SAFETY: reads back the pointer stored at instance initialize.
        check(unsafe { TRITONBACKEND_ModelInstanceState(instance, &mut p) })?;
        if !p.is_null() {
            // SAFETY: `p` came from Box::into_raw in instance initialize; dropped once.
            drop(unsafe { Box::from_raw(p as *mut InstanceState) });
        }
        Ok(())
    })
}

/// One input tensor of a live request, before its bytes are read.
struct InputRef {
    handle: *mut TRITONBACKEND_Input,
    size: usize,
    elements: usize,
    buffers: u32,
}

/// The properties of input `name` (None if the request lacks it): data type and shape
/// are checked here, before a byte of it is read.
fn input_ref(request: *mut TRITONBACKEND_Request, name: &str) -> Result<Option<InputRef>> {
    let cname = CString::new(name).expect("tensor names have no NUL");
    let mut handle = std::ptr::null_mut();
    // SAFETY: `request` is live until we release it; out-parameter we own.
    let err = unsafe { TRITONBACKEND_RequestInput(request, cname.as_ptr(), &mut handle) };
    if !err.is_null() {
        glue::delete_error(err);
        return Ok(None);
    }
    let (mut n, mut dt, mut shape, mut dims, mut size, mut buffers) =
        (std::ptr::null(), 0u32, std::ptr::null(), 0u32, 0u64, 0u32);
    // SAFETY: `handle` belongs to the live request; all out-parameters are ours.
    check(unsafe {
        TRITONBACKEND_InputProperties(handle, &mut n, &mut dt, &mut shape, &mut dims, &mut size, &mut buffers)
    })?;
    // PLAIN_INPUT (public features) is the one FP32 tensor.
    if name == PLAIN_INPUT && dt != TYPE_FP32 {
        return Err(BackendError::invalid(format!("input {name} must be FP32 (TYPE_FP32)")));
    }
    if name == BLOCK && dt != TYPE_INT32 {
        return Err(BackendError::invalid(format!("input {name} must be INT32 (TYPE_INT32)")));
    }
    if dt != TYPE_BYTES && name != PLAIN_INPUT && name != BLOCK {
        return Err(BackendError::invalid(format!("input {name} must be BYTES (TYPE_STRING)")));
    }
    let shape: &[i64] = if dims == 0 || shape.is_null() {
        &[]
    } else {
        // SAFETY: Triton guarantees `shape` points at `dims` values for the life of the request.
        unsafe { std::slice::from_raw_parts(shape, dims as usize) }
    };
    let elements = shape.iter().try_fold(1usize, |a, &d| usize::try_from(d).ok().and_then(|d| a.checked_mul(d)));
    let elements =
        elements.ok_or_else(|| BackendError::invalid(format!("input {name} has an invalid shape {shape:?}")))?;
    Ok(Some(InputRef { handle, size: usize::try_from(size).unwrap_or(usize::MAX), elements, buffers }))
}

/// The bytes of an input as one contiguous slice: Triton's own buffer when it is one
/// (the usual case: no copy), else a copy of its pieces.
fn input_bytes<'r>(name: &str, r: &InputRef) -> Result<Cow<'r, [u8]>> {
    let piece = |i: u32| -> Result<&'r [u8]> {
        let (mut b, mut len, mut mt, mut mid) = (std::ptr::null(), 0u64, MEMORY_CPU, 0i64);
        // SAFETY: index < buffer_count; out-parameters are ours.
        check(unsafe { TRITONBACKEND_InputBuffer(r.handle, i, &mut b, &mut len, &mut mt, &mut mid) })?;
        if mt != MEMORY_CPU && mt != MEMORY_CPU_PINNED {
            return Err(BackendError::invalid(format!("input {name} is in GPU memory; heinfer takes CPU tensors")));
        }
        if len == 0 || b.is_null() {
            return Ok(&[]);
        }
        // SAFETY: Triton guarantees `b` points at `len` readable bytes while the request
        // lives, which is longer than 'r (the request is released after we respond).
        Ok(unsafe { std::slice::from_raw_parts(b as *const u8, len as usize) })
    };
    if r.buffers == 1 {
        let p = piece(0)?;
        if p.len() != r.size {
            return Err(BackendError::internal(format!("input {name}: buffer size differs from the advertised size")));
        }
        return Ok(Cow::Borrowed(p));
    }
    let mut data = Vec::with_capacity(r.size);
    for i in 0..r.buffers {
        let p = piece(i)?;
        if p.len() > r.size - data.len() {
            return Err(BackendError::internal(format!("input {name}: buffers exceed the advertised size")));
        }
        data.extend_from_slice(p);
    }
    Ok(Cow::Owned(data))
}

/// The one element of a tensor that must hold exactly one.
fn one<'a>(name: &str, data: &'a [u8]) -> Result<&'a [u8]> {
    let v = tensor::split_bytes(name, data, Some(1)).map_err(|e| BackendError::invalid(e.to_string()))?;
    Ok(v[0])
}

/// A request handle the watchdog thread may ask about cancellation.
struct Cancellable(*mut TRITONBACKEND_Request);
// SAFETY: the watchdog only calls TRITONBACKEND_RequestIsCancelled, which reads an
// atomic flag of the request; the request outlives the watchdog (scoped thread,
// joined before we respond and release the request).
unsafe impl Sync for Cancellable {}

impl Cancellable {
    fn cancelled(&self) -> bool {
        let mut c = false;
        // SAFETY: the request is live (see the Sync note); out-parameter ours.
        let e = unsafe { TRITONBACKEND_RequestIsCancelled(self.0, &mut c) };
        glue::delete_error(e);
        c
    }
}

/// Runs one request; returns the output elements and the compute window.
/// The answer's ciphertexts and, for a model with output DP, what it cost the key id.
type Answer = (Vec<Vec<u8>>, Option<runtime::DpAccount>);

fn process(model: &ModelState, request: *mut TRITONBACKEND_Request) -> Result<(Answer, u64, u64)> {
    let expected = model.service.input_count();
    let input = input_ref(request, INPUT)?.ok_or_else(|| {
        BackendError::invalid(format!("missing input tensor {INPUT}: send the serialized ciphertexts"))
    })?;
    let key_id = input_ref(request, KEY_ID)?;
    let keys = input_ref(request, KEYS)?;
    let part = input_ref(request, BATCH_PART)?;
    if let Some(blocks) = model.merged {
        // Alone (nothing to merge it with), the request runs as layout M with its one block.
        if input.elements != expected {
            return Err(one_sample_each(expected, input.elements));
        }
        merge::block_of(request, blocks)?;
    }
    // Counts against the model before anything is read or split: a shape of a million
    // empty elements costs nothing here.
    if !model.service.accepts_input_count(input.elements, part.is_some()) {
        let e = ServiceError::WrongCount { expected, got: input.elements }.to_string();
        return Err(BackendError::invalid(match model.service.throughput_count() {
            Some(n) => format!("{e} (or {n} in layout T: one per input feature)"),
            None => e,
        }));
    }
    for (name, t) in [(KEY_ID, &key_id), (KEYS, &keys), (BATCH_PART, &part)] {
        if let Some(t) = t.as_ref().filter(|t| t.elements != 1) {
            return Err(BackendError::invalid(format!(
                "input {name} must hold exactly one element, got {}",
                t.elements
            )));
        }
    }
    let plain = input_ref(request, PLAIN_INPUT)?;
    let total = [Some(&input), key_id.as_ref(), keys.as_ref(), plain.as_ref(), part.as_ref()]
        .iter()
        .flatten()
        .map(|t| t.size)
        .sum::<usize>();
    if total > model.max_request_bytes {
        return Err(too_large(model, total));
    }
    // Held until the response is built: the bytes stay with us until then.
    let _permit = model.admission.admit(total).map_err(|b| BackendError::unavailable(b.0))?;
    let data = input_bytes(INPUT, &input)?;
    let cts =
        tensor::split_bytes(INPUT, &data, Some(input.elements)).map_err(|e| BackendError::invalid(e.to_string()))?;
    let key_id_data = key_id.as_ref().map(|t| input_bytes(KEY_ID, t)).transpose()?;
    let keys_data = keys.as_ref().map(|t| input_bytes(KEYS, t)).transpose()?;
    let key_id = key_id_data.as_deref().map(|d| one(KEY_ID, d)).transpose()?;
    let keys = keys_data.as_deref().map(|d| one(KEYS, d)).transpose()?;
    let part_data = part.as_ref().map(|t| input_bytes(BATCH_PART, t)).transpose()?;
    let part = part_data.as_deref().map(|d| one(BATCH_PART, d)).transpose()?;
    // Triton has checked PLAIN_INPUT's datatype and its dims [-1] against the config.
    let plain = match &plain {
        Some(t) => Some(
            runtime::public::PlainInput::from_le_bytes("FP32", &[t.elements as i64], &input_bytes(PLAIN_INPUT, t)?)
                .map_err(|e| BackendError::invalid(e.to_string()))?,
        ),
        None => None,
    };
    let compute_start = now_ns();
    let handle = Cancellable(request);
    let timeout = model.admission.limits.eval_timeout;
    let (resp, stopped) = admission::watched(
        timeout,
        || handle.cancelled(),
        |flag| {
            let req = Request { ciphertexts: cts, key_id, evaluation_keys: keys };
            match model.merged {
                Some(_) => model.service.infer_merged_alone(req, flag),
                None => model.service.infer_parts(req, plain, part, flag),
            }
        },
    );
    let resp = resp.map_err(|e| refused(model, e, stopped))?;
    Ok(((resp.ciphertexts, resp.dp), compute_start, now_ns()))
}

/// A merged model's request with other than one sample's ciphertexts.
fn one_sample_each(expected: usize, got: usize) -> BackendError {
    BackendError::invalid(format!(
        "{}; a merged model takes one sample per request: shape [1, {expected}]",
        ServiceError::WrongCount { expected, got }
    ))
}

/// A request whose inputs pass the model's byte limit.
fn too_large(model: &ModelState, bytes: usize) -> BackendError {
    BackendError::invalid(format!(
        "request too large: its inputs are {bytes} bytes, more than this model's limit of {} MB \
         (parameter {MAX_REQUEST_MB_PARAM})",
        model.max_request_bytes >> 20
    ))
}

/// What the client hears when the runtime refused or stopped its evaluation: 503 for what
/// may pass later (the deadline, a full bound), 400 for what will not.
fn refused(model: &ModelState, e: ServiceError, stopped: Option<Stop>) -> BackendError {
    match stopped {
        Some(Stop::Deadline) => BackendError::unavailable(format!(
            "model {} did not answer within {} s (parameter {}); its evaluation was stopped",
            model.name,
            model.admission.limits.eval_timeout.as_secs_f64(),
            admission::EVAL_TIMEOUT_S_PARAM
        )),
        Some(Stop::ClientGone) => BackendError::unavailable("the request was cancelled by its client".into()),
        None if e.is_transient() => BackendError::unavailable(e.to_string()),
        None => BackendError::invalid(e.to_string()),
    }
}

fn send_output(response: *mut TRITONBACKEND_Response, elements: &[Vec<u8>]) -> Result<()> {
    let shape = [elements.len() as i64];
    let name = CString::new(OUTPUT).expect("no NUL");
    let mut out = std::ptr::null_mut();
    // SAFETY: `response` is ours until sent; shape and name outlive the call.
    check(unsafe { TRITONBACKEND_ResponseOutput(response, &mut out, name.as_ptr(), TYPE_BYTES, shape.as_ptr(), 1) })?;
    let len = tensor::encoded_len(elements);
    let (mut buf, mut mt, mut mid) = (std::ptr::null_mut(), MEMORY_CPU, 0i64);
    // SAFETY: `out` belongs to the response; we ask for CPU memory of `len` bytes.
    check(unsafe { TRITONBACKEND_OutputBuffer(out, &mut buf, len as u64, &mut mt, &mut mid) })?;
    if mt != MEMORY_CPU && mt != MEMORY_CPU_PINNED {
        return Err(BackendError::internal("Triton gave a GPU output buffer for a CPU model".into()));
    }
    if len > 0 {
        // SAFETY: Triton allocated `len` writable bytes at `buf` (CPU memory, checked above).
        let dst = unsafe { std::slice::from_raw_parts_mut(buf as *mut u8, len) };
        tensor::write_bytes_into(elements, dst);
    }
    Ok(())
}

/// Sends the one response this request gets: the result, or its error.
/// The response parameters of an output-DP answer (ε spent and left).
fn send_dp_parameters(response: *mut TRITONBACKEND_Response, dp: &runtime::DpAccount) -> Result<()> {
    for (k, v) in dp.parameters() {
        let name = CString::new(k).expect("no NUL");
        // SAFETY: `response` is ours until sent; Triton copies the name.
        check(unsafe { TRITONBACKEND_ResponseSetDoubleParameter(response, name.as_ptr(), v) })?;
    }
    Ok(())
}

fn respond(request: *mut TRITONBACKEND_Request, result: &Result<Answer>) -> bool {
    let mut response = std::ptr::null_mut();
    // SAFETY: `request` is live; out-parameter ours.
    if let Err(e) = check(unsafe { TRITONBACKEND_ResponseNew(&mut response, request) }) {
        log(LOG_ERROR, &format!("cannot create a response: {}", e.message));
        return false;
    }
    let outcome = match result {
        Ok((elements, dp)) => send_output(response, elements)
            .and_then(|()| dp.as_ref().map_or(Ok(()), |a| send_dp_parameters(response, a))),
        Err(e) => Err(e.clone()),
    };
    let ok = outcome.is_ok();
    let err = match outcome {
        Ok(()) => std::ptr::null_mut(),
        Err(e) => e.into_raw(),
    };
    // SAFETY: sending transfers `response` to Triton; we keep and then delete `err`.
    let sent = unsafe { TRITONBACKEND_ResponseSend(response, RESPONSE_COMPLETE_FINAL, err) };
    if !err.is_null() {
        glue::delete_error(err);
    }
    if let Err(e) = check(sent) {
        log(LOG_ERROR, &format!("cannot send a response: {}", e.message));
        return false;
    }
    ok
}

#[no_mangle]
pub extern "C" fn TRITONBACKEND_ModelInstanceExecute(
    instance: *mut TRITONBACKEND_ModelInstance,
    requests: *mut *mut TRITONBACKEND_Request,
    request_count: u32,
) -> *mut TRITONSERVER_Error {
    // Each request's work is guarded inside; this guard keeps anything else from
    // unwinding into tritonserver (which would abort the process).
    if let Err(p) = catch_unwind(AssertUnwindSafe(|| execute(instance, requests, request_count))) {
        log(LOG_ERROR, &format!("panic in execute (the server keeps running): {}", glue::panic_message(&p)));
    }
    std::ptr::null_mut()
}

fn execute(instance: *mut TRITONBACKEND_ModelInstance, requests: *mut *mut TRITONBACKEND_Request, request_count: u32) {
    // Every request is answered and released here, whatever happens: returning an
    // error from execute would leave Triton owning requests nobody answers.
    let requests: Vec<*mut TRITONBACKEND_Request> = if requests.is_null() {
        Vec::new()
    } else {
        // SAFETY: Triton passes `request_count` valid request pointers.
        unsafe { std::slice::from_raw_parts(requests, request_count as usize) }.to_vec()
    };
    let mut p = std::ptr::null_mut();
    // SAFETY: reads back the pointer stored at instance initialize.
    let state = match check(unsafe { TRITONBACKEND_ModelInstanceState(instance, &mut p) }) {
        // SAFETY: the instance state lives until instance finalize, which cannot run during execute.
        Ok(()) if !p.is_null() => Some(unsafe { &*(p as *const InstanceState) }),
        _ => None,
    };
    // A merged model's batch: requests of one key id on distinct blocks, one evaluation.
    if let Some(s) = state.filter(|s| s.model.merged.is_some() && requests.len() > 1) {
        for job in merge::plan(&requests, s.model.merged.unwrap_or(1)) {
            match job {
                merge::Job::Alone(r) => run_alone(instance, Some(s), r),
                merge::Job::Merged { key_id, requests } => merge::run(instance, s, &key_id, &requests),
            }
        }
        return;
    }
    for &request in &requests {
        run_alone(instance, state, request);
    }
}

/// Serves one request by itself: evaluates, responds, reports, releases.
fn run_alone(
    instance: *mut TRITONBACKEND_ModelInstance,
    state: Option<&InstanceState>,
    request: *mut TRITONBACKEND_Request,
) {
    let exec_start = now_ns();
    let result = match state {
        None => Err(BackendError::internal("model instance state missing".into())),
        Some(s) => match catch_unwind(AssertUnwindSafe(|| process(&s.model, request))) {
            Ok(r) => r,
            Err(panic) => {
                let what = glue::panic_message(&panic);
                log(LOG_ERROR, &format!("panic while serving a request (the server keeps running): {what}"));
                Err(BackendError::internal(glue::PANIC_REPLY.into()))
            }
        },
    };
    let (compute_start, compute_end) = match &result {
        Ok((_, a, b)) => (*a, *b),
        Err(_) => (exec_start, exec_start),
    };
    if let (Err(e), Some(s)) = (&result, state) {
        log(LOG_INFO, &format!("{} ({}): request failed: {}", s.model.name, s.name, e.message));
    }
    let result = result.map(|(out, _, _)| out);
    let sent = catch_unwind(AssertUnwindSafe(|| respond(request, &result))).unwrap_or(false);
    let exec_end = now_ns();
    let success = sent && result.is_ok();
    if state.is_some() {
        report(instance, request, success, [exec_start, compute_start, compute_end, exec_end]);
        if success {
            report_batch(instance, 1, [exec_start, compute_start, compute_end, exec_end]);
        }
    }
    release(request);
}

/// Triton's per-request statistics: exec start, compute start, compute end, exec end.
fn report(instance: *mut TRITONBACKEND_ModelInstance, request: *mut TRITONBACKEND_Request, success: bool, t: [u64; 4]) {
    // SAFETY: statistics must be reported before the request is released, as here.
    let e = unsafe { TRITONBACKEND_ModelInstanceReportStatistics(instance, request, success, t[0], t[1], t[2], t[3]) };
    glue::log_error("report statistics", e);
}

/// Triton's statistics of one execution of `size` requests.
fn report_batch(instance: *mut TRITONBACKEND_ModelInstance, size: u64, t: [u64; 4]) {
    // SAFETY: plain call with scalars on the live instance.
    let e = unsafe { TRITONBACKEND_ModelInstanceReportBatchStatistics(instance, size, t[0], t[1], t[2], t[3]) };
    glue::log_error("report batch statistics", e);
}

fn release(request: *mut TRITONBACKEND_Request) {
    // SAFETY: we are done with the request and every pointer into it.
    let e = unsafe { TRITONBACKEND_RequestRelease(request, REQUEST_RELEASE_ALL) };
    glue::log_error("release request", e);
}
