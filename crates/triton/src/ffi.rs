//! The part of Triton's C API (tritonserver.h, tritonbackend.h; backend API 1.19)
//! this backend uses. Handles are opaque; enums are passed as their C values.
//! The symbols are left undefined here and resolved against libtritonserver.so
//! when tritonserver loads the backend.

#![allow(non_camel_case_types, non_snake_case, dead_code)]

use std::ffi::{c_char, c_void};

macro_rules! opaque {
    ($($n:ident),*) => { $( #[repr(C)] pub struct $n { _p: [u8; 0] } )* };
}
opaque!(
    TRITONSERVER_Error,
    TRITONSERVER_Message,
    TRITONBACKEND_Backend,
    TRITONBACKEND_Model,
    TRITONBACKEND_ModelInstance,
    TRITONBACKEND_Request,
    TRITONBACKEND_Response,
    TRITONBACKEND_Input,
    TRITONBACKEND_Output,
    TRITONBACKEND_Batcher
);

pub type ErrorCode = u32;
pub const ERROR_UNKNOWN: ErrorCode = 0;
pub const ERROR_INTERNAL: ErrorCode = 1;
pub const ERROR_NOT_FOUND: ErrorCode = 2;
pub const ERROR_INVALID_ARG: ErrorCode = 3;
pub const ERROR_UNAVAILABLE: ErrorCode = 4;
pub const ERROR_UNSUPPORTED: ErrorCode = 5;

pub type DataType = u32;
pub const TYPE_BYTES: DataType = 13;
pub const TYPE_FP32: DataType = 11;
pub const TYPE_INT32: DataType = 8;

pub type MemoryType = u32;
pub const MEMORY_CPU: MemoryType = 0;
pub const MEMORY_CPU_PINNED: MemoryType = 1;

pub type LogLevel = u32;
pub const LOG_INFO: LogLevel = 0;
pub const LOG_WARN: LogLevel = 1;
pub const LOG_ERROR: LogLevel = 2;

pub type InstanceGroupKind = u32;
pub const KIND_AUTO: InstanceGroupKind = 0;
pub const KIND_CPU: InstanceGroupKind = 1;

pub type ArtifactType = u32;
pub const ARTIFACT_FILESYSTEM: ArtifactType = 0;

pub const REQUEST_RELEASE_ALL: u32 = 1;
pub const RESPONSE_COMPLETE_FINAL: u32 = 1;

/// The backend API this crate was written against.
pub const API_VERSION_MAJOR: u32 = 1;
pub const API_VERSION_MINOR: u32 = 19;

type Err = *mut TRITONSERVER_Error;

extern "C" {
    pub fn TRITONSERVER_ErrorNew(code: ErrorCode, msg: *const c_char) -> Err;
    pub fn TRITONSERVER_ErrorDelete(error: Err);
    pub fn TRITONSERVER_ErrorMessage(error: Err) -> *const c_char;
    pub fn TRITONSERVER_MessageSerializeToJson(
        message: *mut TRITONSERVER_Message,
        base: *mut *const c_char,
        byte_size: *mut usize,
    ) -> Err;
    pub fn TRITONSERVER_MessageDelete(message: *mut TRITONSERVER_Message) -> Err;
    pub fn TRITONSERVER_LogIsEnabled(level: LogLevel) -> bool;
    pub fn TRITONSERVER_LogMessage(level: LogLevel, filename: *const c_char, line: i32, msg: *const c_char) -> Err;

    pub fn TRITONBACKEND_ApiVersion(major: *mut u32, minor: *mut u32) -> Err;
    pub fn TRITONBACKEND_BackendConfig(
        backend: *mut TRITONBACKEND_Backend,
        config: *mut *mut TRITONSERVER_Message,
    ) -> Err;
    pub fn TRITONBACKEND_BackendSetState(backend: *mut TRITONBACKEND_Backend, state: *mut c_void) -> Err;
    pub fn TRITONBACKEND_BackendState(backend: *mut TRITONBACKEND_Backend, state: *mut *mut c_void) -> Err;

    pub fn TRITONBACKEND_ModelName(model: *mut TRITONBACKEND_Model, name: *mut *const c_char) -> Err;
    pub fn TRITONBACKEND_ModelVersion(model: *mut TRITONBACKEND_Model, version: *mut u64) -> Err;
    pub fn TRITONBACKEND_ModelRepository(
        model: *mut TRITONBACKEND_Model,
        artifact_type: *mut ArtifactType,
        location: *mut *const c_char,
    ) -> Err;
    pub fn TRITONBACKEND_ModelConfig(
        model: *mut TRITONBACKEND_Model,
        config_version: u32,
        config: *mut *mut TRITONSERVER_Message,
    ) -> Err;
    pub fn TRITONBACKEND_ModelBackend(model: *mut TRITONBACKEND_Model, backend: *mut *mut TRITONBACKEND_Backend)
        -> Err;
    pub fn TRITONBACKEND_ModelSetState(model: *mut TRITONBACKEND_Model, state: *mut c_void) -> Err;
    pub fn TRITONBACKEND_ModelState(model: *mut TRITONBACKEND_Model, state: *mut *mut c_void) -> Err;

    pub fn TRITONBACKEND_ModelInstanceName(instance: *mut TRITONBACKEND_ModelInstance, name: *mut *const c_char)
        -> Err;
    pub fn TRITONBACKEND_ModelInstanceKind(
        instance: *mut TRITONBACKEND_ModelInstance,
        kind: *mut InstanceGroupKind,
    ) -> Err;
    pub fn TRITONBACKEND_ModelInstanceModel(
        instance: *mut TRITONBACKEND_ModelInstance,
        model: *mut *mut TRITONBACKEND_Model,
    ) -> Err;
    pub fn TRITONBACKEND_ModelInstanceSetState(instance: *mut TRITONBACKEND_ModelInstance, state: *mut c_void) -> Err;
    pub fn TRITONBACKEND_ModelInstanceState(instance: *mut TRITONBACKEND_ModelInstance, state: *mut *mut c_void)
        -> Err;
    pub fn TRITONBACKEND_ModelInstanceReportStatistics(
        instance: *mut TRITONBACKEND_ModelInstance,
        request: *mut TRITONBACKEND_Request,
        success: bool,
        exec_start_ns: u64,
        compute_start_ns: u64,
        compute_end_ns: u64,
        exec_end_ns: u64,
    ) -> Err;
    pub fn TRITONBACKEND_ModelInstanceReportBatchStatistics(
        instance: *mut TRITONBACKEND_ModelInstance,
        batch_size: u64,
        exec_start_ns: u64,
        compute_start_ns: u64,
        compute_end_ns: u64,
        exec_end_ns: u64,
    ) -> Err;

    pub fn TRITONBACKEND_RequestId(request: *mut TRITONBACKEND_Request, id: *mut *const c_char) -> Err;
    pub fn TRITONBACKEND_RequestInput(
        request: *mut TRITONBACKEND_Request,
        name: *const c_char,
        input: *mut *mut TRITONBACKEND_Input,
    ) -> Err;
    pub fn TRITONBACKEND_RequestIsCancelled(request: *mut TRITONBACKEND_Request, is_cancelled: *mut bool) -> Err;
    pub fn TRITONBACKEND_RequestRelease(request: *mut TRITONBACKEND_Request, release_flags: u32) -> Err;
    pub fn TRITONBACKEND_InputProperties(
        input: *mut TRITONBACKEND_Input,
        name: *mut *const c_char,
        datatype: *mut DataType,
        shape: *mut *const i64,
        dims_count: *mut u32,
        byte_size: *mut u64,
        buffer_count: *mut u32,
    ) -> Err;
    pub fn TRITONBACKEND_InputBuffer(
        input: *mut TRITONBACKEND_Input,
        index: u32,
        buffer: *mut *const c_void,
        buffer_byte_size: *mut u64,
        memory_type: *mut MemoryType,
        memory_type_id: *mut i64,
    ) -> Err;

    pub fn TRITONBACKEND_ResponseNew(
        response: *mut *mut TRITONBACKEND_Response,
        request: *mut TRITONBACKEND_Request,
    ) -> Err;
    pub fn TRITONBACKEND_ResponseDelete(response: *mut TRITONBACKEND_Response) -> Err;
    pub fn TRITONBACKEND_ResponseOutput(
        response: *mut TRITONBACKEND_Response,
        output: *mut *mut TRITONBACKEND_Output,
        name: *const c_char,
        datatype: DataType,
        shape: *const i64,
        dims_count: u32,
    ) -> Err;
    pub fn TRITONBACKEND_OutputBuffer(
        output: *mut TRITONBACKEND_Output,
        buffer: *mut *mut c_void,
        buffer_byte_size: u64,
        memory_type: *mut MemoryType,
        memory_type_id: *mut i64,
    ) -> Err;
    /// Since backend API 1.14 (Triton 23.x); the symbol is in every Triton this backend loads in (API ≥ 1.19).
    pub fn TRITONBACKEND_ResponseSetDoubleParameter(
        response: *mut TRITONBACKEND_Response,
        name: *const c_char,
        value: f64,
    ) -> Err;
    pub fn TRITONBACKEND_ResponseSend(response: *mut TRITONBACKEND_Response, send_flags: u32, error: Err) -> Err;
}
