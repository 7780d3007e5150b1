//! Safe shims over the C API: errors both ways, strings, logging, timestamps, and
//! the panic guard every entry point runs inside.

use std::any::Any;
use std::ffi::{c_char, CStr, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};

use crate::ffi::*;

/// An error on its way to Triton: a code and a message for the client or the log.
#[derive(Clone, Debug)]
pub struct BackendError {
    pub code: ErrorCode,
    pub message: String,
}

pub type Result<T> = std::result::Result<T, BackendError>;

impl BackendError {
    pub fn invalid(message: String) -> Self {
        Self { code: ERROR_INVALID_ARG, message }
    }
    pub fn unsupported(message: String) -> Self {
        Self { code: ERROR_UNSUPPORTED, message }
    }
    pub fn internal(message: String) -> Self {
        Self { code: ERROR_INTERNAL, message }
    }
    /// A bound is full for now; the client may retry (HTTP 503, gRPC UNAVAILABLE).
    pub fn unavailable(message: String) -> Self {
        Self { code: ERROR_UNAVAILABLE, message }
    }

    /// A new Triton error object; the receiver owns it.
    pub fn into_raw(self) -> *mut TRITONSERVER_Error {
        let msg = CString::new(self.message.replace('\0', " ")).expect("NULs replaced");
        // SAFETY: Triton copies the message; the CString outlives the call.
        unsafe { TRITONSERVER_ErrorNew(self.code, msg.as_ptr()) }
    }
}

/// Turns a Triton error (which we then own and delete) into a Result.
pub fn check(err: *mut TRITONSERVER_Error) -> Result<()> {
    if err.is_null() {
        return Ok(());
    }
    // SAFETY: `err` is a live error object we own; its message lives until we delete it.
    let message = cstr(unsafe { TRITONSERVER_ErrorMessage(err) });
    delete_error(err);
    Err(BackendError { code: ERROR_INTERNAL, message })
}

pub fn delete_error(err: *mut TRITONSERVER_Error) {
    if !err.is_null() {
        // SAFETY: we own `err` and delete it exactly once.
        unsafe { TRITONSERVER_ErrorDelete(err) }
    }
}

pub fn log_error(what: &str, err: *mut TRITONSERVER_Error) {
    if let Err(e) = check(err) {
        log(LOG_ERROR, &format!("{what}: {}", e.message));
    }
}

/// A C string from Triton, copied (lossily if not UTF-8); "" for null.
pub fn cstr(p: *const c_char) -> String {
    if p.is_null() {
        return String::new();
    }
    // SAFETY: Triton's strings are NUL-terminated and live at least for this call.
    unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
}

pub fn log(level: LogLevel, msg: &str) {
    let file = c"heinfer";
    let msg = CString::new(msg.replace('\0', " ")).expect("NULs replaced");
    // SAFETY: both strings outlive the call; the returned error (if any) is deleted.
    unsafe {
        if TRITONSERVER_LogIsEnabled(level) {
            delete_error(TRITONSERVER_LogMessage(level, file.as_ptr(), 0, msg.as_ptr()));
        }
    }
}

/// Parses a Triton message as JSON; deletes it if `owned` (model configs are ours to
/// delete, the backend config is Triton's).
pub fn message_json(msg: *mut TRITONSERVER_Message, owned: bool) -> Result<serde_json::Value> {
    if msg.is_null() {
        return Ok(serde_json::Value::Null);
    }
    let (mut base, mut size) = (std::ptr::null(), 0usize);
    // SAFETY: `msg` is ours; `base` points into it until it is deleted below.
    let r = check(unsafe { TRITONSERVER_MessageSerializeToJson(msg, &mut base, &mut size) }).and_then(|()| {
        let bytes: &[u8] = if base.is_null() {
            &[]
        } else {
            // SAFETY: Triton returns `size` bytes at `base`, valid until the message is deleted.
            unsafe { std::slice::from_raw_parts(base as *const u8, size) }
        };
        serde_json::from_slice(bytes).map_err(|e| BackendError::internal(format!("Triton sent unreadable JSON: {e}")))
    });
    if owned {
        // SAFETY: deleted once, after the last use of `base`.
        delete_error(unsafe { TRITONSERVER_MessageDelete(msg) });
    }
    r
}

/// Nanoseconds on the monotonic clock: Triton's statistics use steady_clock, and
/// compare our timestamps with its own.
pub fn now_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes one timespec we own.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// What a caller is told when the backend panicked. The panic's own text (source
/// paths, values, internal state) goes to the server log only, never to a client.
pub const PANIC_REPLY: &str = "internal error in the heinfer backend (details in the server log)";

pub fn panic_message(p: &Box<dyn Any + Send>) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}

/// Runs an entry point's body, turning an error or a panic into a Triton error:
/// unwinding across the C boundary would abort tritonserver.
pub fn entry(name: &str, f: impl FnOnce() -> Result<()>) -> *mut TRITONSERVER_Error {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(())) => std::ptr::null_mut(),
        Ok(Err(e)) => {
            log(LOG_ERROR, &format!("{name}: {}", e.message));
            e.into_raw()
        }
        Err(p) => {
            log(LOG_ERROR, &format!("{name}: panic: {}", panic_message(&p)));
            BackendError::internal(format!("{name}: {PANIC_REPLY}")).into_raw()
        }
    }
}
