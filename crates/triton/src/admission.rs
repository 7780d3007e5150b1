//! The backend's process-wide bounds (issue 15): bytes of requests being evaluated,
//! evaluations running, and how long one may run. Triton holds a request's bytes
//! while it waits in its scheduler queue (bounded by the model's instance count and,
//! where set, its queue policy); from the moment `execute` hands it to us, these
//! bounds hold across every model and instance of the process, whatever clients send.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use runtime::protocol;

/// Bytes of request inputs held by evaluations at once (all models), in MB.
pub const MAX_INFLIGHT_MB_PARAM: &str = "heinfer_max_inflight_mb";
/// Evaluations running at once (all models and instances).
pub const MAX_EVALUATIONS_PARAM: &str = "heinfer_max_evaluations";
/// Seconds one evaluation may run before it is stopped between operations.
pub const EVAL_TIMEOUT_S_PARAM: &str = "heinfer_eval_timeout_s";

/// As `heinfer serve --max-inflight-mb`: two largest requests at the default limit.
pub const DEFAULT_MAX_INFLIGHT_MB: usize = 512;
/// As `heinfer serve --eval-timeout-s`.
pub const DEFAULT_EVAL_TIMEOUT_S: f64 = 600.0;

/// The bounds, as read from the first model's parameters or the backend config.
#[derive(Clone, Debug, PartialEq)]
pub struct Limits {
    pub max_inflight_bytes: usize,
    pub max_evaluations: usize,
    pub eval_timeout: Duration,
}

impl Limits {
    /// Reads the parameters through `param`; a value that is not a positive number is
    /// an error naming its parameter (the model then fails to load, as for the others).
    pub fn from_params(param: impl Fn(&str) -> Option<String>) -> Result<Self, String> {
        let positive = |key: &str| -> Result<Option<f64>, String> {
            param(key)
                .map(|v| {
                    v.trim()
                        .parse::<f64>()
                        .ok()
                        .filter(|x| x.is_finite() && *x > 0.0)
                        .ok_or_else(|| format!("parameter {key} must be a positive number, got {v:?}"))
                })
                .transpose()
        };
        let max_inflight_bytes = match param(MAX_INFLIGHT_MB_PARAM) {
            Some(v) => protocol::megabytes(MAX_INFLIGHT_MB_PARAM, &v).map_err(|e| e.to_string())?,
            None => DEFAULT_MAX_INFLIGHT_MB << 20,
        };
        // Unset, the models' instance groups alone bound evaluations (Triton queues the
        // rest, as an operator who set those counts expects); set, it caps them across
        // all models, and a request past it is refused rather than queued.
        let max_evaluations = positive(MAX_EVALUATIONS_PARAM)?.map(|x| x.max(1.0) as usize).unwrap_or(usize::MAX);
        let eval_timeout = Duration::from_secs_f64(positive(EVAL_TIMEOUT_S_PARAM)?.unwrap_or(DEFAULT_EVAL_TIMEOUT_S));
        Ok(Self { max_inflight_bytes, max_evaluations, eval_timeout })
    }
}

/// Why a request was not admitted: the client may retry later (UNAVAILABLE).
#[derive(Debug)]
pub struct Busy(pub String);

#[derive(Default)]
struct Used {
    bytes: usize,
    evaluations: usize,
}

/// The counters every instance's execute draws from.
pub struct Admission {
    pub limits: Limits,
    used: Mutex<Used>,
}

/// What one admitted request holds; given back on drop, whatever way the request ends.
pub struct Permit {
    admission: Arc<Admission>,
    bytes: usize,
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut u = self.admission.used.lock().unwrap_or_else(|e| e.into_inner());
        u.bytes -= self.bytes;
        u.evaluations -= 1;
    }
}

impl Admission {
    pub fn new(limits: Limits) -> Arc<Self> {
        Arc::new(Self { limits, used: Mutex::new(Used::default()) })
    }

    /// Admits a request of `bytes` input bytes, or says which bound is full.
    pub fn admit(self: &Arc<Self>, bytes: usize) -> Result<Permit, Busy> {
        let mut u = self.used.lock().unwrap_or_else(|e| e.into_inner());
        if u.evaluations >= self.limits.max_evaluations {
            return Err(Busy(format!(
                "the server is busy: {} evaluations running (parameter {MAX_EVALUATIONS_PARAM}); retry later",
                u.evaluations
            )));
        }
        if u.bytes + bytes > self.limits.max_inflight_bytes {
            return Err(Busy(format!(
                "the server is busy: this request's {bytes} bytes and the {} bytes of requests being evaluated \
                 exceed {} MB (parameter {MAX_INFLIGHT_MB_PARAM}); retry later",
                u.bytes,
                self.limits.max_inflight_bytes >> 20
            )));
        }
        u.bytes += bytes;
        u.evaluations += 1;
        Ok(Permit { admission: self.clone(), bytes })
    }
}

/// Why an evaluation was stopped by its [`Watchdog`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stop {
    Deadline,
    ClientGone,
}

/// Tells the watcher its work is over, when dropped.
struct Done<'a>(&'a AtomicBool, &'a std::thread::Thread);

impl Drop for Done<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Release);
        self.1.unpark();
    }
}

/// Runs `work` with a cancellation flag a watcher thread sets once `deadline` passes or
/// `cancelled()` (Triton's request cancellation: a gRPC client that went away or whose
/// deadline passed) says so; the evaluation then stops between operations and frees
/// its instance. Returns the work's result and the reason it was stopped, if it was.
pub fn watched<T>(
    deadline: Duration,
    cancelled: impl Fn() -> bool + Sync,
    work: impl FnOnce(&AtomicBool) -> T,
) -> (T, Option<Stop>) {
    let flag = AtomicBool::new(false);
    let done = AtomicBool::new(false);
    let why = Mutex::new(None);
    let start = Instant::now();
    let out = std::thread::scope(|s| {
        let watcher = s.spawn(|| {
            while !done.load(Ordering::Acquire) {
                let stop = if start.elapsed() >= deadline {
                    Some(Stop::Deadline)
                } else if cancelled() {
                    Some(Stop::ClientGone)
                } else {
                    None
                };
                if let Some(w) = stop {
                    *why.lock().unwrap_or_else(|e| e.into_inner()) = Some(w);
                    flag.store(true, Ordering::Release);
                    return;
                }
                std::thread::park_timeout(Duration::from_millis(20));
            }
        });
        // Set on every way out of `work`, a panic included: the scope joins the watcher,
        // which must not then wait for the deadline.
        let _done = Done(&done, watcher.thread());
        work(&flag)
    });
    let why = *why.lock().unwrap_or_else(|e| e.into_inner());
    (out, why)
}
