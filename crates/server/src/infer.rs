//! One inference, as both protocols see it once their framing is undone: named
//! BYTES tensors in, `ENCRYPTED_OUTPUT` out. Checks the declared tensors against the
//! model's config the way Triton does (names, datatypes, shapes, required inputs,
//! element counts) before their data is read, waits for a free model instance in a
//! bounded queue, and runs `runtime::Service::infer_cancellable` on a blocking thread
//! — an evaluation takes the CPU for a long time and must not stall the executor.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use runtime::protocol::{BATCH_PART, BLOCK, ENCRYPTED_INPUT, EVALUATION_KEYS, KEY_ID, PLAIN_INPUT};
use runtime::Request;
use tokio::sync::TryAcquireError;

use crate::admission::Reservation;
pub use crate::error::RequestError;
use crate::repo::{LoadedModel, Timings};
use crate::AppState;

/// One input tensor, its elements already split out of the wire format.
pub struct InputTensor {
    pub name: String,
    pub datatype: String,
    pub shape: Vec<i64>,
    pub elements: Vec<Bytes>,
}

/// Element count of a shape; negative dims are refused.
pub fn element_count(name: &str, shape: &[i64]) -> Result<usize, RequestError> {
    let mut n: usize = 1;
    for &d in shape {
        let d = usize::try_from(d)
            .map_err(|_| RequestError::bad(format!("input '{name}' has a negative dimension in shape {shape:?}")))?;
        n = n
            .checked_mul(d)
            .ok_or_else(|| RequestError::bad(format!("input '{name}': shape {shape:?} is too large")))?;
    }
    Ok(n)
}

/// Splits a BYTES tensor (each element a 4-byte little-endian length, then the
/// bytes) into exactly `expected` elements with the runtime's reader (one
/// implementation for both front ends), as zero-copy views of `raw`.
pub fn split_bytes(name: &str, raw: Bytes, expected: usize) -> Result<Vec<Bytes>, RequestError> {
    let parts =
        runtime::tensor::split_bytes(name, &raw, Some(expected)).map_err(|e| RequestError::bad(e.to_string()))?;
    Ok(parts.into_iter().map(|p| raw.slice_ref(p)).collect())
}

/// Serializes BYTES elements the same way.
pub fn join_bytes(elements: &[Vec<u8>]) -> Vec<u8> {
    runtime::tensor::join_bytes(elements)
}

/// Checks one input's name and datatype before its data is read, so that a
/// wrong tensor is reported as such rather than as undecodable data.
pub fn check_input_header(model: &LoadedModel, name: &str, datatype: &str) -> Result<(), RequestError> {
    let m = &model.name;
    let Some(cfg) = model.config.input(name) else {
        let allowed: Vec<&str> = model.config.inputs.iter().map(|t| t.name.as_str()).collect();
        return Err(RequestError::bad(format!(
            "unexpected inference input '{name}' for model '{m}'; its inputs are {allowed:?}"
        )));
    };
    if datatype != cfg.datatype() {
        return Err(RequestError::bad(format!(
            "inference input '{name}' data-type is '{datatype}', but model '{m}' expects '{}'",
            cfg.datatype()
        )));
    }
    Ok(())
}

/// One input as the request declares it, before any of its data is read.
pub struct TensorHeader<'a> {
    pub name: &'a str,
    pub datatype: &'a str,
    pub shape: &'a [i64],
}

/// Most inputs one request may name: each costs a parse and a check, and the
/// models take three.
pub const MAX_INPUTS: usize = 16;
/// Most dimensions of a declared shape (the models' tensors have one).
pub const MAX_DIMS: usize = 16;

/// How many elements the model takes in input `name`: the ciphertexts of one sample
/// for `ENCRYPTED_INPUT`, otherwise what the config's fixed dims hold.
pub fn expected_count(model: &LoadedModel, name: &str) -> Option<usize> {
    if name == ENCRYPTED_INPUT {
        // The largest count of the model's layouts: gRPC's prescan bounds allocations by it.
        return Some(model.service.input_count().max(model.service.throughput_count().unwrap_or(0)));
    }
    let dims = &model.config.input(name)?.dims;
    dims.iter().try_fold(1usize, |n, &d| usize::try_from(d).ok().and_then(|d| n.checked_mul(d)))
}

/// Checks the declared tensors against the model the way Triton does (names,
/// datatypes, shapes, required inputs) and their element counts against what the
/// model takes — before any data is read or split, so that no request makes the
/// server allocate for elements the model would refuse. Returns each input's
/// element count.
pub fn check_headers(model: &LoadedModel, inputs: &[TensorHeader<'_>]) -> Result<Vec<usize>, RequestError> {
    let m = &model.name;
    if inputs.len() > MAX_INPUTS.max(model.config.inputs.len()) {
        return Err(RequestError::bad(format!(
            "the request names {} inputs; model '{m}' has {}",
            inputs.len(),
            model.config.inputs.len()
        )));
    }
    let mut counts = Vec::with_capacity(inputs.len());
    for (i, t) in inputs.iter().enumerate() {
        check_input_header(model, t.name, t.datatype)?;
        let cfg = model.config.input(t.name).expect("checked above");
        if inputs[..i].iter().any(|o| o.name == t.name) {
            return Err(RequestError::bad(format!("input '{}' appears twice in the request", t.name)));
        }
        // A batched config (a merged twin) puts Triton's batch dimension first: one sample
        // per request, so it must be 1.
        let (batch, dims) = match model.config.max_batch_size {
            ..=0 => (None, t.shape),
            _ => (t.shape.first().copied(), t.shape.get(1..).unwrap_or(&[])),
        };
        if batch.is_some_and(|b| b != 1) {
            return Err(RequestError::bad(format!(
                "input '{}' has shape {:?}: model '{m}' is a merged model and takes one sample per request \
                 (batch dimension 1)",
                t.name, t.shape
            )));
        }
        let fits = dims.len() == cfg.dims.len() && dims.iter().zip(&cfg.dims).all(|(&s, &d)| d < 0 || s == d);
        if !fits {
            return Err(RequestError::bad(format!(
                "unexpected shape for input '{}' for model '{m}'. Expected {:?}, got {:?}",
                t.name, cfg.dims, t.shape
            )));
        }
        let count = element_count(t.name, t.shape)?;
        if let Some(want) = expected_count(model, t.name) {
            let part = inputs.iter().any(|t| t.name == BATCH_PART);
            let fits =
                if t.name == ENCRYPTED_INPUT { model.service.accepts_input_count(count, part) } else { count == want };
            if !fits {
                return Err(if t.name == ENCRYPTED_INPUT {
                    let want = model.service.input_count();
                    let t_note = model.service.throughput_count().map_or(String::new(), |n| {
                        format!(", or {n} in layout T (one per input feature, a batch of samples in each)")
                    });
                    RequestError::bad(format!(
                        "ENCRYPTED_INPUT holds {count} ciphertexts; model '{m}' takes {want} (shape [{want}]){t_note}"
                    ))
                } else {
                    RequestError::bad(format!("input '{}' must hold exactly {want} element(s), not {count}", t.name))
                });
            }
        }
        counts.push(count);
    }
    let missing: Vec<&str> = model
        .config
        .inputs
        .iter()
        .filter(|c| !c.optional && !inputs.iter().any(|t| t.name == c.name))
        .map(|c| c.name.as_str())
        .collect();
    if !missing.is_empty() {
        // Triton's wording, so that one test suite matches both servers.
        let q = |v: Vec<&str>| format!("[{}]", v.iter().map(|s| format!("'{s}'")).collect::<Vec<_>>().join(","));
        let required = model.config.inputs.iter().filter(|c| !c.optional).count();
        let got: Vec<&str> = inputs.iter().map(|t| t.name).collect();
        return Err(RequestError::bad(format!(
            "expected number of inputs between {required} and {} but got {} inputs for model '{m}'. Got input(s) {}, but missing required input(s) {}. Please provide all required input(s).",
            model.config.inputs.len(),
            got.len(),
            q(got),
            q(missing)
        )));
    }
    Ok(counts)
}

fn single<'a>(inputs: &'a [InputTensor], name: &str) -> Option<&'a Bytes> {
    inputs.iter().find(|t| t.name == name).and_then(|t| t.elements.first())
}

/// The request's `PLAIN_INPUT` (public features, FP32 little-endian: both protocols
/// keep its raw bytes as its one element), if it has one.
fn plain_input(inputs: &[InputTensor]) -> Result<Option<runtime::public::PlainInput>, runtime::ServiceError> {
    let Some(t) = inputs.iter().find(|t| t.name == PLAIN_INPUT) else { return Ok(None) };
    let raw = t.elements.first().map(|b| &b[..]).unwrap_or(&[]);
    Ok(Some(runtime::public::PlainInput::from_le_bytes(&t.datatype, &t.shape, raw)?))
}

/// Sets the flag when dropped: the request's future is dropped when its client
/// disconnects, and is left when its deadline passes; either way the evaluation
/// stops at its next operation.
struct CancelOnDrop(Arc<AtomicBool>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// A model instance taken for one evaluation. The blocking work owns it, so the
/// instance is free only when the work has stopped — not when its client left.
struct Slot(Arc<LoadedModel>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.slots.add_permits(1);
    }
}

/// Runs one request whose tensors passed [`check_headers`]. `received` is when the
/// request arrived (for the statistics); `res` holds the request's bytes, and a
/// share of it stays with the evaluation until it ends.
pub async fn run(
    st: &AppState,
    model: &Arc<LoadedModel>,
    inputs: Vec<InputTensor>,
    received: Instant,
    res: Reservation,
) -> Result<(Vec<Vec<u8>>, Option<runtime::DpAccount>, Timings), RequestError> {
    // A merged twin's request joins its key id's group; one that registers keys runs alone.
    if let Some(merger) = model.merger.as_ref().filter(|_| single(&inputs, EVALUATION_KEYS).is_none()) {
        return run_merged(st, model, merger, inputs, received, res).await;
    }
    let input_ns = received.elapsed().as_nanos() as u64;
    let limits = &st.admission.limits;
    let cancel = Arc::new(AtomicBool::new(false));
    let _cancel_on_drop = CancelOnDrop(cancel.clone());
    let shutting_down = || RequestError::Unavailable("the server is shutting down".into());

    let work = async {
        let queued = Instant::now();
        let permit = match model.slots.try_acquire() {
            Ok(p) => p,
            Err(TryAcquireError::Closed) => return Err(shutting_down()),
            Err(TryAcquireError::NoPermits) => {
                let _waiting = st.admission.queue.try_acquire().map_err(|_| st.admission.busy_queue())?;
                model.slots.acquire().await.map_err(|_| shutting_down())?
            }
        };
        permit.forget();
        let slot = Slot(model.clone());
        let queue_ns = queued.elapsed().as_nanos() as u64;

        let started = Instant::now();
        let m = model.clone();
        let flag = cancel.clone();
        let res = tokio::task::spawn_blocking(move || {
            let _slot = slot;
            let _bytes = res;
            let key_id = single(&inputs, KEY_ID).map(|b| &b[..]);
            let evaluation_keys = single(&inputs, EVALUATION_KEYS).map(|b| &b[..]);
            let ciphertexts = inputs
                .iter()
                .find(|t| t.name == ENCRYPTED_INPUT)
                .map(|t| t.elements.iter().map(|b| &b[..]).collect())
                .unwrap_or_default();
            let plain = plain_input(&inputs)?;
            let part = single(&inputs, BATCH_PART).map(|b| &b[..]);
            let req = Request { ciphertexts, key_id, evaluation_keys };
            match m.merger {
                Some(_) => m.service.infer_merged_alone(req, &flag),
                None => m.service.infer_parts(req, plain, part, &flag),
            }
        })
        .await;
        Ok((res, queue_ns, started.elapsed().as_nanos() as u64))
    };
    let (res, queue_ns, infer_ns) = tokio::time::timeout(limits.eval_timeout, work).await.map_err(|_| {
        RequestError::Deadline(format!(
            "model '{}' did not answer within {} s (heinfer serve --eval-timeout-s); its evaluation was stopped",
            model.name,
            limits.eval_timeout.as_secs_f64()
        ))
    })??;
    let out = match res {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => return Err(RequestError::Refused(e)),
        Err(e) => {
            tracing::error!(model = %model.name, error = %e, "evaluation panicked");
            return Err(RequestError::Internal(format!("evaluation of model '{}' failed unexpectedly", model.name)));
        }
    };
    Ok((out.ciphertexts, out.dp, Timings { queue_ns, input_ns, infer_ns, output_ns: 0 }))
}

/// The block a merged twin's request holds its sample in (`BLOCK`, one INT32 in 0..B).
fn block_of(inputs: &[InputTensor], blocks: usize) -> Result<usize, RequestError> {
    let raw = single(inputs, BLOCK).ok_or_else(|| RequestError::bad(format!("missing input tensor {BLOCK}")))?;
    let b = <[u8; 4]>::try_from(&raw[..])
        .map(i32::from_le_bytes)
        .map_err(|_| RequestError::bad(format!("input {BLOCK} must be one INT32 (4 bytes), got {}", raw.len())))?;
    usize::try_from(b).ok().filter(|&b| b < blocks).ok_or_else(|| {
        RequestError::bad(format!(
            "{BLOCK} {b} is outside this model's layout-M blocks 0..{blocks}; encrypt the sample in one of them"
        ))
    })
}

/// A merged twin's request: joins (or opens) a group of its key id and waits for the
/// group's one evaluation (`crate::merge`).
async fn run_merged(
    st: &AppState,
    model: &Arc<LoadedModel>,
    merger: &crate::merge::Merger,
    inputs: Vec<InputTensor>,
    received: Instant,
    res: Reservation,
) -> Result<(Vec<Vec<u8>>, Option<runtime::DpAccount>, Timings), RequestError> {
    let input_ns = received.elapsed().as_nanos() as u64;
    let limits = &st.admission.limits;
    let key_id = single(&inputs, KEY_ID).ok_or(RequestError::Refused(runtime::ServiceError::MissingInput("KEY_ID")))?;
    let block = block_of(&inputs, merger.blocks())?;
    let ciphertexts = inputs.iter().find(|t| t.name == ENCRYPTED_INPUT).map(|t| t.elements.clone()).unwrap_or_default();
    let (tx, rx) = tokio::sync::oneshot::channel();
    let started = Instant::now();
    if let Some(id) = merger.join(key_id, crate::merge::Member { block, ciphertexts, answer: tx }) {
        // A new group holds an instance, or a place in the server's queue while it waits
        // for one, as a single request does: waiting groups are bounded by --max-queue
        // (and each by B members), whatever the clients send.
        let place = match model.slots.try_acquire() {
            Ok(p) => {
                p.forget();
                Place::Instance(Slot(model.clone()))
            }
            Err(e) => {
                let queued = match e {
                    TryAcquireError::Closed => None,
                    TryAcquireError::NoPermits => st.admission.queue.clone().try_acquire_owned().ok(),
                };
                match queued {
                    Some(q) => Place::Queued(q),
                    None => {
                        // Refused: the group closes now, and whoever joined it since is refused too.
                        let err = || match e {
                            TryAcquireError::Closed => RequestError::Unavailable("the server is shutting down".into()),
                            TryAcquireError::NoPermits => st.admission.busy_queue(),
                        };
                        if let Some((_, members)) = merger.take(id) {
                            for m in members {
                                let _ = m.answer.send(Err(err()));
                            }
                        }
                        // This request's own sender was in the group: its answer is the refusal.
                        return match rx.await {
                            Ok(Err(e)) => Err(e),
                            _ => Err(err()),
                        };
                    }
                }
            }
        };
        // The group runs on its own task: it answers every member, whether or not the
        // request that opened it is still waiting.
        tokio::spawn(run_group(model.clone(), id, limits.eval_timeout, place));
    }
    // The request's bytes stay reserved while it waits: its ciphertexts are in the group.
    let _bytes = res;
    let answer = tokio::time::timeout(limits.eval_timeout, rx).await.map_err(|_| {
        RequestError::Deadline(format!(
            "model '{}' did not answer within {} s (heinfer serve --eval-timeout-s)",
            model.name,
            limits.eval_timeout.as_secs_f64()
        ))
    })?;
    let out = match answer {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => return Err(e),
        Err(_) => {
            return Err(RequestError::Internal(format!("the merged evaluation of model '{}' was lost", model.name)))
        }
    };
    let infer_ns = started.elapsed().as_nanos() as u64;
    Ok((out.ciphertexts, out.dp, Timings { queue_ns: 0, input_ns, infer_ns, output_ns: 0 }))
}

/// Where a merged group is while it waits: on an instance already, or in the server's queue.
enum Place {
    Instance(Slot),
    Queued(tokio::sync::OwnedSemaphorePermit),
}

/// Runs group `id` of a merged twin: an instance first, then the batching window (requests
/// of its key id on free blocks still join), then one evaluation for all its members.
async fn run_group(model: Arc<LoadedModel>, id: u64, eval_timeout: std::time::Duration, place: Place) {
    let Some(merger) = model.merger.as_ref() else { return };
    let slot = match place {
        Place::Instance(slot) => slot,
        Place::Queued(_queued) => match model.slots.acquire().await {
            Ok(p) => {
                p.forget();
                Slot(model.clone())
            }
            Err(_) => {
                // Shutting down: the members' senders drop with the group, and each request says so.
                drop(merger.take(id));
                return;
            }
        },
    };
    tokio::time::sleep(merger.delay()).await;
    let Some((key_id, members)) = merger.take(id) else { return };
    let (answers, parts): (Vec<_>, Vec<_>) = members.into_iter().map(|m| (m.answer, m.ciphertexts)).unzip();
    let cancel = Arc::new(AtomicBool::new(false));
    let flag = cancel.clone();
    let m = model.clone();
    let work = tokio::task::spawn_blocking(move || {
        let refs: Vec<Vec<&[u8]>> = parts.iter().map(|p| p.iter().map(|b| &b[..]).collect()).collect();
        m.service.infer_merged(&key_id, &refs, &flag)
    });
    // Past the deadline the evaluation stops at its next operation.
    let watchdog = tokio::spawn(async move {
        tokio::time::sleep(eval_timeout).await;
        cancel.store(true, Ordering::Relaxed);
    });
    let results = work.await;
    watchdog.abort();
    drop(slot);
    match results {
        Ok(results) => {
            let ok = results.iter().filter(|r| r.is_ok()).count() as u64;
            model.stats.merged.fetch_add(ok.saturating_sub(1), Ordering::Relaxed);
            for (tx, r) in answers.into_iter().zip(results) {
                let _ = tx.send(r.map_err(RequestError::Refused));
            }
        }
        Err(e) => {
            tracing::error!(model = %model.name, error = %e, "merged evaluation panicked");
            // The senders drop: every member is answered an internal error.
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_round_trip_and_errors() {
        let els = vec![b"ab".to_vec(), vec![], vec![7u8; 300]];
        let raw = Bytes::from(join_bytes(&els));
        let back = split_bytes("X", raw.clone(), 3).unwrap();
        assert_eq!(back.iter().map(|b| b.to_vec()).collect::<Vec<_>>(), els);
        assert!(split_bytes("X", raw.clone(), 2).is_err());
        assert!(split_bytes("X", raw.slice(..raw.len() - 1), 3).is_err());
        assert!(split_bytes("X", Bytes::from_static(&[1, 0]), 1).is_err());
        assert!(split_bytes("X", Bytes::from_static(&[255, 255, 255, 255]), 1).is_err());
        assert_eq!(split_bytes("X", Bytes::new(), 0).unwrap().len(), 0);
        assert!(element_count("X", &[-1]).is_err());
        assert!(element_count("X", &[i64::MAX, i64::MAX]).is_err());
        assert_eq!(element_count("X", &[2, 3]).unwrap(), 6);
    }
}
