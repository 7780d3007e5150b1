//! KServe v2 over HTTP/1.1 with Triton's binary-data extension: a JSON header
//! (length in `Inference-Header-Content-Length`) followed by the binary tensors in
//! the order the header lists them, each BYTES element as a 4-byte little-endian
//! length and its bytes. Errors are `{"error": "..."}`, as Triton sends them.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use bytes::Bytes;
use serde::Deserialize;
use serde_json::{json, Map, Value as Json};

use crate::infer::{self, element_count, split_bytes, InputTensor, RequestError};
use crate::repo::LoadedModel;
use crate::AppState;

pub const HEADER_LENGTH: &str = "inference-header-content-length";

impl IntoResponse for RequestError {
    fn into_response(self) -> Response {
        let status = match &self {
            RequestError::BadRequest(_) | RequestError::Refused(_) => StatusCode::BAD_REQUEST,
            RequestError::NotFound(_) => StatusCode::NOT_FOUND,
            RequestError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            RequestError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        (status, axum::Json(json!({ "error": self.to_string() }))).into_response()
    }
}

pub fn router(state: Arc<AppState>) -> Router {
    let limit = state.max_request_bytes;
    Router::new()
        .route("/v2/health/live", get(|| async { StatusCode::OK }))
        .route("/v2/health/ready", get(server_ready))
        .route("/v2", get(server_metadata))
        .route("/v2/models/stats", get(all_stats))
        .route("/v2/repository/index", post(repository_index))
        .route("/v2/models/{model}", get(model_metadata))
        .route("/v2/models/{model}/versions/{version}", get(model_metadata_v))
        .route("/v2/models/{model}/ready", get(model_ready))
        .route("/v2/models/{model}/versions/{version}/ready", get(model_ready_v))
        .route("/v2/models/{model}/config", get(model_config))
        .route("/v2/models/{model}/versions/{version}/config", get(model_config_v))
        .route("/v2/models/{model}/stats", get(model_stats))
        .route("/v2/models/{model}/versions/{version}/stats", get(model_stats_v))
        .route("/v2/models/{model}/infer", post(infer_route))
        .route("/v2/models/{model}/versions/{version}/infer", post(infer_route_v))
        .fallback(|| async { RequestError::NotFound("Not Found".into()) })
        .layer(DefaultBodyLimit::max(limit))
        .layer(middleware::from_fn(log_request))
        .with_state(state)
}

/// One structured log line per request.
async fn log_request(req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let res = next.run(req).await;
    let ms = started.elapsed().as_secs_f64() * 1e3;
    let status = res.status().as_u16();
    if res.status().is_success() {
        tracing::info!(proto = "http", %method, %path, status, ms = format!("{ms:.1}"), "request");
    } else {
        tracing::warn!(proto = "http", %method, %path, status, ms = format!("{ms:.1}"), "request");
    }
    res
}

async fn server_ready(State(st): State<Arc<AppState>>) -> StatusCode {
    if st.ready.load(Ordering::Relaxed) {
        StatusCode::OK
    } else {
        StatusCode::BAD_REQUEST
    }
}

async fn server_metadata() -> axum::Json<Json> {
    axum::Json(crate::server_metadata_json())
}

async fn repository_index(State(st): State<Arc<AppState>>) -> axum::Json<Json> {
    let list: Vec<Json> =
        st.repo.models.values().map(|m| json!({"name": m.name, "version": m.version, "state": "READY"})).collect();
    axum::Json(Json::Array(list))
}

fn lookup(st: &AppState, model: &str, version: Option<&str>) -> Result<Arc<LoadedModel>, RequestError> {
    st.model(model, version)
}

async fn model_metadata(State(st): State<Arc<AppState>>, Path(model): Path<String>) -> Response {
    match lookup(&st, &model, None) {
        Ok(m) => axum::Json(m.metadata_json()).into_response(),
        Err(e) => e.into_response(),
    }
}

async fn model_metadata_v(State(st): State<Arc<AppState>>, Path((model, v)): Path<(String, String)>) -> Response {
    match lookup(&st, &model, Some(&v)) {
        Ok(m) => axum::Json(m.metadata_json()).into_response(),
        Err(e) => e.into_response(),
    }
}

async fn model_ready(State(st): State<Arc<AppState>>, Path(model): Path<String>) -> Response {
    ready(&st, &model, None)
}

async fn model_ready_v(State(st): State<Arc<AppState>>, Path((model, v)): Path<(String, String)>) -> Response {
    ready(&st, &model, Some(&v))
}

fn ready(st: &AppState, model: &str, v: Option<&str>) -> Response {
    match lookup(st, model, v) {
        Ok(_) if st.ready.load(Ordering::Relaxed) => StatusCode::OK.into_response(),
        Ok(_) => RequestError::Unavailable("the server is shutting down".into()).into_response(),
        Err(e) => e.into_response(),
    }
}

async fn model_config(State(st): State<Arc<AppState>>, Path(model): Path<String>) -> Response {
    match lookup(&st, &model, None) {
        Ok(m) => axum::Json(m.config_json.clone()).into_response(),
        Err(e) => e.into_response(),
    }
}

async fn model_config_v(State(st): State<Arc<AppState>>, Path((model, v)): Path<(String, String)>) -> Response {
    match lookup(&st, &model, Some(&v)) {
        Ok(m) => axum::Json(m.config_json.clone()).into_response(),
        Err(e) => e.into_response(),
    }
}

async fn all_stats(State(st): State<Arc<AppState>>) -> axum::Json<Json> {
    let s: Vec<Json> = st.repo.models.values().map(|m| m.stats_json()).collect();
    axum::Json(json!({ "model_stats": s }))
}

async fn model_stats(State(st): State<Arc<AppState>>, Path(model): Path<String>) -> Response {
    match lookup(&st, &model, None) {
        Ok(m) => axum::Json(json!({ "model_stats": [m.stats_json()] })).into_response(),
        Err(e) => e.into_response(),
    }
}

async fn model_stats_v(State(st): State<Arc<AppState>>, Path((model, v)): Path<(String, String)>) -> Response {
    match lookup(&st, &model, Some(&v)) {
        Ok(m) => axum::Json(json!({ "model_stats": [m.stats_json()] })).into_response(),
        Err(e) => e.into_response(),
    }
}

#[derive(Deserialize)]
struct InferRequestJson {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    parameters: Map<String, Json>,
    inputs: Vec<InputJson>,
    #[serde(default)]
    outputs: Option<Vec<OutputJson>>,
}

#[derive(Deserialize)]
struct InputJson {
    name: String,
    shape: Vec<i64>,
    datatype: String,
    #[serde(default)]
    parameters: Map<String, Json>,
    #[serde(default)]
    data: Option<Json>,
}

#[derive(Deserialize)]
struct OutputJson {
    name: String,
    #[serde(default)]
    parameters: Map<String, Json>,
}

async fn infer_route(
    State(st): State<Arc<AppState>>,
    Path(model): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    infer_http(st, model, None, headers, body).await
}

async fn infer_route_v(
    State(st): State<Arc<AppState>>,
    Path((model, v)): Path<(String, String)>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    infer_http(st, model, Some(v), headers, body).await
}

async fn infer_http(
    st: Arc<AppState>,
    model: String,
    version: Option<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let received = Instant::now();
    let m = match lookup(&st, &model, version.as_deref()) {
        Ok(m) => m,
        Err(e) => return e.into_response(),
    };
    let res = infer_inner(&st, &m, &headers, body, received).await;
    let total = received.elapsed().as_nanos() as u64;
    match res {
        Ok((resp, mut t)) => {
            t.output_ns = total.saturating_sub(t.input_ns + t.queue_ns + t.infer_ns);
            m.stats.record_success(total, &t);
            tracing::info!(model = %m.name, ms = total as f64 / 1e6, evaluate_ms = t.infer_ns as f64 / 1e6, "inference");
            resp
        }
        Err(e) => {
            m.stats.record_failure(total);
            tracing::warn!(model = %m.name, error = %e, "inference failed");
            e.into_response()
        }
    }
}

fn param_bool(p: &Map<String, Json>, key: &str) -> Result<Option<bool>, RequestError> {
    match p.get(key) {
        None => Ok(None),
        Some(Json::Bool(b)) => Ok(Some(*b)),
        Some(other) => Err(RequestError::bad(format!("parameter '{key}' must be a boolean, not {other}"))),
    }
}

fn flatten_strings(name: &str, v: &Json, out: &mut Vec<Bytes>) -> Result<(), RequestError> {
    match v {
        Json::Array(a) => a.iter().try_for_each(|x| flatten_strings(name, x, out)),
        Json::String(s) => {
            out.push(Bytes::copy_from_slice(s.as_bytes()));
            Ok(())
        }
        other => Err(RequestError::bad(format!(
            "input '{name}': BYTES data in JSON must be strings, found {}",
            match other {
                Json::Number(_) => "a number",
                Json::Bool(_) => "a boolean",
                Json::Null => "null",
                _ => "an object",
            }
        ))),
    }
}

async fn infer_inner(
    st: &AppState,
    m: &Arc<LoadedModel>,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
    received: Instant,
) -> Result<(Response, crate::repo::Timings), RequestError> {
    let body = body.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            RequestError::bad(format!(
                "request body exceeds the server's limit of {} MB (heinfer serve --max-request-mb)",
                st.max_request_bytes >> 20
            ))
        } else {
            RequestError::bad(format!("cannot read the request body: {e}"))
        }
    })?;
    if let Some(enc) = headers.get(header::CONTENT_ENCODING) {
        if enc.as_bytes() != b"identity" {
            return Err(RequestError::bad(format!(
                "Content-Encoding {:?} is not supported by heinfer serve; send the request uncompressed",
                String::from_utf8_lossy(enc.as_bytes())
            )));
        }
    }
    let header_len = match headers.get(HEADER_LENGTH) {
        None => body.len(),
        Some(v) => {
            let n =
                v.to_str().ok().and_then(|s| s.trim().parse::<usize>().ok()).ok_or_else(|| {
                    RequestError::bad("Inference-Header-Content-Length must be a non-negative integer")
                })?;
            if n > body.len() {
                return Err(RequestError::bad(format!(
                    "Inference-Header-Content-Length is {n} but the body holds only {} bytes",
                    body.len()
                )));
            }
            n
        }
    };
    let req: InferRequestJson = serde_json::from_slice(&body[..header_len])
        .map_err(|e| RequestError::bad(format!("failed to parse the request JSON buffer: {e}")))?;
    let mut binary = body.slice(header_len..);

    let mut inputs = Vec::with_capacity(req.inputs.len());
    for i in req.inputs {
        if i.parameters.contains_key("shared_memory_region") {
            return Err(RequestError::bad("shared-memory inputs are not supported by heinfer serve"));
        }
        infer::check_input_header(m, &i.name, &i.datatype)?;
        let count = element_count(&i.name, &i.shape)?;
        let elements = match (i.parameters.get("binary_data_size"), &i.data) {
            (Some(size), _) => {
                let size = size.as_u64().ok_or_else(|| {
                    RequestError::bad(format!("input '{}': binary_data_size must be a non-negative integer", i.name))
                })? as usize;
                if size > binary.len() {
                    return Err(RequestError::bad(format!(
                        "input '{}': binary_data_size is {size} but only {} bytes of binary data remain",
                        i.name,
                        binary.len()
                    )));
                }
                let raw = binary.split_to(size);
                split_bytes(&i.name, raw, count)?
            }
            (None, Some(data)) => {
                let mut out = Vec::new();
                flatten_strings(&i.name, data, &mut out)?;
                if out.len() != count {
                    return Err(RequestError::bad(format!(
                        "input '{}': its shape holds {count} elements but the data holds {}",
                        i.name,
                        out.len()
                    )));
                }
                out
            }
            (None, None) => {
                return Err(RequestError::bad(format!("input '{}' has neither data nor binary_data_size", i.name)))
            }
        };
        inputs.push(InputTensor { name: i.name, datatype: i.datatype, shape: i.shape, elements });
    }
    if !binary.is_empty() {
        return Err(RequestError::bad(format!(
            "{} bytes of binary data follow the inputs that the JSON header accounts for",
            binary.len()
        )));
    }

    // Which outputs, and in which form. Triton: all outputs when none are named;
    // binary when the output asks (`binary_data`) or the request does
    // (`binary_data_output`).
    let default_binary = param_bool(&req.parameters, "binary_data_output")?.unwrap_or(false);
    let mut want_binary = default_binary;
    if let Some(outs) = req.outputs.as_ref().filter(|o| !o.is_empty()) {
        for o in outs {
            if m.config.output(&o.name).is_none() {
                return Err(RequestError::bad(format!(
                    "unexpected inference output '{}' for model '{}'",
                    o.name, m.name
                )));
            }
            if o.parameters.contains_key("shared_memory_region") {
                return Err(RequestError::bad("shared-memory outputs are not supported by heinfer serve"));
            }
            if o.parameters.contains_key("classification") {
                return Err(RequestError::bad("classification outputs are not supported for encrypted tensors"));
            }
            want_binary = param_bool(&o.parameters, "binary_data")?.unwrap_or(default_binary);
        }
    }

    let (outputs, timings) = infer::run(m, inputs, received).await?;
    let name = runtime::protocol::ENCRYPTED_OUTPUT;
    // Ciphertexts are not text: when JSON was asked for but the elements are not
    // UTF-8, they go binary anyway (tritonclient reads either form).
    let as_text: Option<Vec<&str>> =
        if want_binary { None } else { outputs.iter().map(|o| std::str::from_utf8(o).ok()).collect() };
    let mut out = json!({ "name": name, "datatype": "BYTES", "shape": [outputs.len()] });
    let mut head = json!({ "model_name": m.name, "model_version": m.version });
    if let Some(id) = req.id.filter(|s| !s.is_empty()) {
        head["id"] = json!(id);
    }
    let resp = match as_text {
        Some(t) => {
            out["data"] = json!(t);
            head["outputs"] = json!([out]);
            axum::Json(head).into_response()
        }
        None => {
            let blob = infer::join_bytes(&outputs);
            out["parameters"] = json!({ "binary_data_size": blob.len() });
            head["outputs"] = json!([out]);
            let head = serde_json::to_vec(&head).map_err(|e| RequestError::Internal(e.to_string()))?;
            let mut body = Vec::with_capacity(head.len() + blob.len());
            body.extend_from_slice(&head);
            body.extend_from_slice(&blob);
            let mut r = Response::new(Body::from(body));
            r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"));
            r.headers_mut().insert(HEADER_LENGTH, HeaderValue::from(head.len()));
            r
        }
    };
    Ok((resp, timings))
}
