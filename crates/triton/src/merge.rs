//! Merged requests (DESIGN.md "Layouts and batching": same-key requests may be merged
//! in layout M). A model's merged twin (`heinfer compile --merged`, config
//! `max_batch_size` B with Triton's dynamic batcher) takes one sample per request, in the
//! layout-M block its `BLOCK` names, zeros in the others. Requests under one key id on
//! distinct blocks add up to one layout-M ciphertext: the network runs once for all of
//! them and each reads its own block of the one answer.
//!
//! Requests under different key ids share no HE work, so a batch must hold one key id:
//! the batching strategy below (`TRITONBACKEND_ModelBatch*`, which Triton loads from
//! `batchstrategy.so` in the backend directory, a link to this library) lets Triton put
//! into one batch only requests of the first one's key id, on blocks not yet taken.
//! [`plan`] checks the same again in `execute`, so a batch formed without the strategy
//! is still served right, by more evaluations.

use std::borrow::Cow;
use std::ffi::c_void;
use std::panic::{catch_unwind, AssertUnwindSafe};

use crate::admission::{self, Stop};
use crate::ffi::*;
use crate::glue::{self, check, entry, log, now_ns, BackendError, Result};
use crate::{input_bytes, input_ref, one, Answer, InstanceState, ModelState, INPUT, KEYS};
use runtime::protocol::{BLOCK, KEY_ID};
use runtime::tensor;

/// What `execute` does with one request of a merged model's batch.
pub(crate) enum Job {
    /// served by itself (it registers keys, or has nothing to merge with, or lacks a
    /// key id or block: `process` then says what is wrong)
    Alone(*mut TRITONBACKEND_Request),
    /// requests of one key id on distinct blocks: one evaluation
    Merged { key_id: Vec<u8>, requests: Vec<*mut TRITONBACKEND_Request> },
}

/// The request's `BLOCK`: one INT32 in 0..`blocks`.
pub(crate) fn block_of(request: *mut TRITONBACKEND_Request, blocks: usize) -> Result<usize> {
    let t = input_ref(request, BLOCK)?.ok_or_else(|| {
        BackendError::invalid(format!(
            "missing input tensor {BLOCK}: a merged model takes the layout-M block (0..{blocks}) the sample is in"
        ))
    })?;
    if t.elements != 1 {
        return Err(BackendError::invalid(format!("input {BLOCK} must hold exactly one element, got {}", t.elements)));
    }
    let data = input_bytes(BLOCK, &t)?;
    let raw: [u8; 4] = data[..]
        .try_into()
        .map_err(|_| BackendError::invalid(format!("input {BLOCK} must be one INT32 (4 bytes), got {}", data.len())))?;
    let b = i32::from_le_bytes(raw);
    usize::try_from(b).ok().filter(|&b| b < blocks).ok_or_else(|| {
        BackendError::invalid(format!(
            "{BLOCK} {b} is outside this model's layout-M blocks 0..{blocks}; encrypt the sample in one of them"
        ))
    })
}

/// A request that may be merged: its key id and block. None for one that registers keys
/// (registration runs first, alone) or lacks either.
fn mergeable(request: *mut TRITONBACKEND_Request, blocks: usize) -> Option<(Vec<u8>, usize)> {
    if input_ref(request, KEYS).ok()?.is_some() {
        return None;
    }
    let t = input_ref(request, KEY_ID).ok()??;
    if t.elements != 1 {
        return None;
    }
    let data = input_bytes(KEY_ID, &t).ok()?;
    let key = one(KEY_ID, &data).ok()?.to_vec();
    Some((key, block_of(request, blocks).ok()?))
}

/// Splits a batch into merges: requests of one key id, each block at most once per merge.
pub(crate) fn plan(requests: &[*mut TRITONBACKEND_Request], blocks: usize) -> Vec<Job> {
    let mut jobs = Vec::new();
    let mut merges: Vec<(Vec<u8>, Vec<usize>, Vec<*mut TRITONBACKEND_Request>)> = Vec::new();
    for &r in requests {
        match mergeable(r, blocks) {
            None => jobs.push(Job::Alone(r)),
            Some((key, b)) => match merges.iter_mut().find(|(k, used, _)| *k == key && !used.contains(&b)) {
                Some((_, used, rs)) => {
                    used.push(b);
                    rs.push(r);
                }
                None => merges.push((key, vec![b], vec![r])),
            },
        }
    }
    for (key_id, _, requests) in merges {
        jobs.push(match requests[..] {
            [r] => Job::Alone(r),
            _ => Job::Merged { key_id, requests },
        });
    }
    jobs
}

/// One merge: reads every request's ciphertexts (a request that cannot be read is
/// answered its error and left out), runs them as one evaluation, and answers each.
pub(crate) fn run(
    instance: *mut TRITONBACKEND_ModelInstance,
    state: &InstanceState,
    key_id: &[u8],
    requests: &[*mut TRITONBACKEND_Request],
) {
    let exec_start = now_ns();
    let model = &state.model;
    let outcome = catch_unwind(AssertUnwindSafe(|| evaluate(model, key_id, requests)));
    let (results, compute_start, compute_end) = outcome.unwrap_or_else(|panic| {
        log(
            LOG_ERROR,
            &format!("panic while serving merged requests (the server keeps running): {}", glue::panic_message(&panic)),
        );
        let e = BackendError::internal(glue::PANIC_REPLY.into());
        (requests.iter().map(|_| Err(e.clone())).collect(), exec_start, exec_start)
    });
    let mut merged = 0;
    let mut times = Vec::with_capacity(requests.len());
    for (&request, result) in requests.iter().zip(&results) {
        if let Err(e) = result {
            log(LOG_INFO, &format!("{} ({}): merged request failed: {}", model.name, state.name, e.message));
        }
        let sent = catch_unwind(AssertUnwindSafe(|| crate::respond(request, result))).unwrap_or(false);
        let ok = sent && result.is_ok();
        merged += ok as u64;
        times.push((request, ok));
    }
    let exec_end = now_ns();
    for (request, ok) in times {
        let window = if ok { [exec_start, compute_start, compute_end, exec_end] } else { [exec_start; 4] };
        crate::report(instance, request, ok, window);
        crate::release(request);
    }
    if merged > 0 {
        crate::report_batch(instance, merged, [exec_start, compute_start, compute_end, exec_end]);
    }
}

type Results = (Vec<Result<Answer>>, u64, u64);

fn evaluate(model: &ModelState, key_id: &[u8], requests: &[*mut TRITONBACKEND_Request]) -> Results {
    let expected = model.service.input_count();
    let mut results: Vec<Option<Result<Answer>>> = requests.iter().map(|_| None).collect();
    let mut inputs = Vec::with_capacity(requests.len());
    for (i, &r) in requests.iter().enumerate() {
        let read = input_ref(r, INPUT).and_then(|t| {
            let t = t.ok_or_else(|| BackendError::invalid(format!("missing input tensor {INPUT}")))?;
            if t.elements != expected {
                return Err(crate::one_sample_each(expected, t.elements));
            }
            if t.size > model.max_request_bytes {
                return Err(crate::too_large(model, t.size));
            }
            Ok(t)
        });
        match read {
            Ok(t) => inputs.push((i, t)),
            Err(e) => results[i] = Some(Err(e)),
        }
    }
    let total: usize = inputs.iter().map(|(_, t)| t.size).sum();
    // Held until the answers are built, like a single request's.
    let permit = model.admission.admit(total).map_err(|b| BackendError::unavailable(b.0));
    let mut data: Vec<(usize, Cow<[u8]>)> = Vec::with_capacity(inputs.len());
    if let Err(e) = &permit {
        for (i, _) in &inputs {
            results[*i] = Some(Err(e.clone()));
        }
    } else {
        for (i, t) in &inputs {
            match input_bytes(INPUT, t) {
                Ok(d) => data.push((*i, d)),
                Err(e) => results[*i] = Some(Err(e)),
            }
        }
    }
    let mut parts = Vec::with_capacity(data.len());
    let mut members = Vec::with_capacity(data.len());
    for (i, d) in &data {
        match tensor::split_bytes(INPUT, d, Some(expected)) {
            Ok(cts) => {
                parts.push(cts);
                members.push(*i);
            }
            Err(e) => results[*i] = Some(Err(BackendError::invalid(e.to_string()))),
        }
    }
    let compute_start = now_ns();
    if !parts.is_empty() {
        let timeout = model.admission.limits.eval_timeout;
        // One client going away does not stop the others' evaluation; the deadline does.
        let (answers, stopped) =
            admission::watched(timeout, || false, |flag| model.service.infer_merged(key_id, &parts, flag));
        for (i, a) in members.into_iter().zip(answers) {
            // No client stops a merge: only the deadline does.
            let stopped = stopped.filter(|s| matches!(s, Stop::Deadline));
            results[i] = Some(a.map(|resp| (resp.ciphertexts, resp.dp)).map_err(|e| crate::refused(model, e, stopped)));
        }
    }
    drop(permit);
    let compute_end = now_ns();
    let results = results
        .into_iter()
        .map(|r| r.unwrap_or_else(|| Err(BackendError::internal("a merged request was not answered".into()))))
        .collect();
    (results, compute_start, compute_end)
}

// ---------------------------------------------------------------- the batching strategy

/// Read-only, per model: the blocks of a merged model; None for any other heinfer
/// model, whose batches then hold one request (what `max_batch_size: 0` gives anyway).
struct Batcher {
    blocks: Option<usize>,
}

/// The batch Triton is forming.
struct Pending {
    blocks: Option<usize>,
    count: usize,
    /// the first request cannot be merged: nothing joins it
    alone: bool,
    key_id: Vec<u8>,
    used: Vec<usize>,
}

impl Pending {
    fn include(&mut self, request: *mut TRITONBACKEND_Request) -> bool {
        let Some(blocks) = self.blocks else {
            self.count += 1;
            return self.count == 1;
        };
        let m = mergeable(request, blocks);
        if self.count == 0 {
            self.count = 1;
            match m {
                Some((key, b)) => {
                    self.key_id = key;
                    self.used.push(b);
                }
                None => self.alone = true,
            }
            return true;
        }
        match m {
            Some((key, b)) if !self.alone && key == self.key_id && !self.used.contains(&b) => {
                self.used.push(b);
                self.count += 1;
                true
            }
            _ => false,
        }
    }
}

#[no_mangle]
pub extern "C" fn TRITONBACKEND_ModelBatcherInitialize(
    batcher: *mut *mut TRITONBACKEND_Batcher,
    model: *mut TRITONBACKEND_Model,
) -> *mut TRITONSERVER_Error {
    entry("TRITONBACKEND_ModelBatcherInitialize", || {
        if batcher.is_null() {
            return Err(BackendError::internal("batcher initialize without an out-parameter".into()));
        }
        let mut p = std::ptr::null_mut();
        // SAFETY: `model` is Triton's handle; the state is ours from model initialize.
        check(unsafe { TRITONBACKEND_ModelState(model, &mut p) })?;
        // SAFETY: set at model initialize to an Arc<ModelState> that lives until model
        // finalize, after the batcher's finalize; we only read it here.
        let blocks = if p.is_null() { None } else { unsafe { &*(p as *const ModelState) }.merged };
        // SAFETY: Triton keeps this pointer until TRITONBACKEND_ModelBatcherFinalize.
        unsafe { *batcher = Box::into_raw(Box::new(Batcher { blocks })) as *mut TRITONBACKEND_Batcher };
        Ok(())
    })
}

#[no_mangle]
pub extern "C" fn TRITONBACKEND_ModelBatcherFinalize(batcher: *mut TRITONBACKEND_Batcher) -> *mut TRITONSERVER_Error {
    entry("TRITONBACKEND_ModelBatcherFinalize", || {
        if !batcher.is_null() {
            // SAFETY: made by Box::into_raw in the batcher's initialize; freed once.
            drop(unsafe { Box::from_raw(batcher as *mut Batcher) });
        }
        Ok(())
    })
}

#[no_mangle]
pub extern "C" fn TRITONBACKEND_ModelBatchInitialize(
    batcher: *const TRITONBACKEND_Batcher,
    userp: *mut *mut c_void,
) -> *mut TRITONSERVER_Error {
    entry("TRITONBACKEND_ModelBatchInitialize", || {
        if userp.is_null() {
            return Err(BackendError::internal("batch initialize without an out-parameter".into()));
        }
        // SAFETY: the batcher's initialize made `batcher` (or left it null), alive until its finalize.
        let blocks = if batcher.is_null() { None } else { unsafe { &*(batcher as *const Batcher) }.blocks };
        let pending = Pending { blocks, count: 0, alone: false, key_id: Vec::new(), used: Vec::new() };
        // SAFETY: Triton keeps this pointer until TRITONBACKEND_ModelBatchFinalize.
        unsafe { *userp = Box::into_raw(Box::new(pending)) as *mut c_void };
        Ok(())
    })
}

#[no_mangle]
pub extern "C" fn TRITONBACKEND_ModelBatchIncludeRequest(
    request: *mut TRITONBACKEND_Request,
    userp: *mut c_void,
    should_include: *mut bool,
) -> *mut TRITONSERVER_Error {
    entry("TRITONBACKEND_ModelBatchIncludeRequest", || {
        if userp.is_null() || should_include.is_null() {
            return Err(BackendError::internal("batch include without its batch".into()));
        }
        // SAFETY: Triton's out-parameter; set first, so an error below leaves it false.
        unsafe { *should_include = false };
        // SAFETY: made by the batch's initialize; Triton calls this for one batch at a time.
        let pending = unsafe { &mut *(userp as *mut Pending) };
        let include = pending.include(request);
        // SAFETY: as above.
        unsafe { *should_include = include };
        Ok(())
    })
}

#[no_mangle]
pub extern "C" fn TRITONBACKEND_ModelBatchFinalize(userp: *mut c_void) -> *mut TRITONSERVER_Error {
    entry("TRITONBACKEND_ModelBatchFinalize", || {
        if !userp.is_null() {
            // SAFETY: made by Box::into_raw in the batch's initialize; freed once.
            drop(unsafe { Box::from_raw(userp as *mut Pending) });
        }
        Ok(())
    })
}
