//! KServe v2 over HTTP/1.1 with Triton's binary-data extension: a JSON header
//! (length in `Inference-Header-Content-Length`) followed by the binary tensors in
//! the order the header lists them, each BYTES element as a 4-byte little-endian
//! length and its bytes. Errors are `{"error": "..."}`, as Triton sends them.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Path, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use bytes::Bytes;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use serde::de::{IgnoredAny, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::{json, Value as Json};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::admission::{self, Acceptor, BodyReader};
use crate::infer::{self, split_bytes, InputTensor, RequestError, TensorHeader};
use crate::repo::LoadedModel;
use crate::AppState;

pub const HEADER_LENGTH: &str = "inference-header-content-length";

impl IntoResponse for RequestError {
    fn into_response(self) -> Response {
        let status = match &self {
            // A spent privacy budget is a quota: 429, as rate limits answer.
            RequestError::Refused(e) if e.is_budget_exhausted() => StatusCode::TOO_MANY_REQUESTS,
            RequestError::Refused(e) if e.is_transient() => StatusCode::SERVICE_UNAVAILABLE,
            RequestError::BadRequest(_) | RequestError::Refused(_) => StatusCode::BAD_REQUEST,
            RequestError::NotFound(_) => StatusCode::NOT_FOUND,
            RequestError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            RequestError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            RequestError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            RequestError::Timeout(_) => StatusCode::REQUEST_TIMEOUT,
            RequestError::Deadline(_) => StatusCode::GATEWAY_TIMEOUT,
        };
        (status, axum::Json(json!({ "error": self.to_string() }))).into_response()
    }
}

pub fn router(state: Arc<AppState>) -> Router {
    // Infer routes read their bodies themselves, against the request limits; no other
    // route needs more than a JSON-sized body.
    let limit = state.admission.limits.max_json_bytes;
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
        .merge(crate::aggregation::routes(state.max_request_bytes))
        .fallback(|| async { RequestError::NotFound("Not Found".into()) })
        .layer(DefaultBodyLimit::max(limit))
        .layer(middleware::from_fn(log_request))
        .with_state(state)
}

/// Serves HTTP/1.1 until `stop` says true, then lets open requests finish. A
/// connection is accepted only under the connection cap, and closed when a
/// request's header is not complete within the header timeout (the wait for the
/// next request on a kept-alive connection counts too).
pub async fn serve(
    listener: TcpListener,
    app: Router,
    st: Arc<AppState>,
    stop: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let limits = &st.admission.limits;
    let mut acceptor = Acceptor::new(listener, limits.max_connections, limits.header_timeout, stop);
    let graceful = GracefulShutdown::new();
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder.timer(TokioTimer::new()).header_read_timeout(limits.header_timeout).keep_alive(true);
    while let Some(io) = acceptor.accept().await {
        let conn = builder.serve_connection(TokioIo::new(io), TowerToHyperService::new(app.clone()));
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "HTTP connection closed with an error");
            }
        });
    }
    drop(acceptor);
    graceful.shutdown().await;
    Ok(())
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

/// The JSON part of a request. Only what is read is kept: unknown fields and
/// parameters are skipped without allocating, and `data` is read as strings only,
/// so a JSON body of numbers cannot grow into a tree of values many times its size.
#[derive(Deserialize)]
struct InferRequestJson {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    parameters: RequestParams,
    inputs: Bounded<InputJson, { infer::MAX_INPUTS }>,
    #[serde(default)]
    outputs: Option<Bounded<OutputJson, { infer::MAX_INPUTS }>>,
}

#[derive(Deserialize, Default)]
struct RequestParams {
    #[serde(default)]
    binary_data_output: Option<bool>,
}

#[derive(Deserialize, Default)]
struct TensorParams {
    #[serde(default)]
    binary_data_size: Option<u64>,
    #[serde(default)]
    binary_data: Option<bool>,
    #[serde(default)]
    shared_memory_region: Option<IgnoredAny>,
    #[serde(default)]
    classification: Option<IgnoredAny>,
}

#[derive(Deserialize)]
struct InputJson {
    name: String,
    shape: Bounded<i64, { infer::MAX_DIMS }>,
    datatype: String,
    #[serde(default)]
    parameters: TensorParams,
    #[serde(default)]
    data: Option<JsonStrings>,
}

#[derive(Deserialize)]
struct OutputJson {
    name: String,
    #[serde(default)]
    parameters: TensorParams,
}

/// A JSON array of at most `N` elements, refused at the element past them: lists
/// the model bounds (inputs, dims) must not grow while the JSON is parsed, when a
/// 2-byte element would become an 8-byte number or a 150-byte tensor.
struct Bounded<T, const N: usize>(Vec<T>);

impl<'de, T: Deserialize<'de>, const N: usize> Deserialize<'de> for Bounded<T, N> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T, const N: usize>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>, const N: usize> Visitor<'de> for V<T, N> {
            type Value = Bounded<T, N>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                write!(f, "an array of at most {N} elements")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut v = Vec::new();
                while let Some(x) = seq.next_element()? {
                    if v.len() == N {
                        return Err(serde::de::Error::custom(format!("an array of more than {N} elements")));
                    }
                    v.push(x);
                }
                Ok(Bounded(v))
            }
        }
        d.deserialize_seq(V(std::marker::PhantomData))
    }
}

/// Most BYTES elements accepted as JSON strings in one tensor. Ciphertexts are not
/// UTF-8 and travel as binary data; JSON carries only a key id.
const MAX_JSON_ELEMENTS: usize = 1024;

/// BYTES `data`: strings in nested arrays, flattened. Other values are noted, not
/// kept (the datatype check reports a wrong datatype first), so a JSON body of
/// numbers costs nothing beyond its own bytes.
#[derive(Default)]
struct JsonStrings {
    elements: Vec<Bytes>,
    other: Option<&'static str>,
}

impl<'de> Deserialize<'de> for JsonStrings {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let mut out = JsonStrings::default();
        d.deserialize_any(StringsVisitor(&mut out))?;
        Ok(out)
    }
}

struct StringsVisitor<'o>(&'o mut JsonStrings);

impl StringsVisitor<'_> {
    fn other(self, kind: &'static str) {
        self.0.other.get_or_insert(kind);
    }
}

impl<'de> serde::de::DeserializeSeed<'de> for StringsVisitor<'_> {
    type Value = ();
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for StringsVisitor<'_> {
    type Value = ();
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("tensor data")
    }
    fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<(), E> {
        if self.0.elements.len() >= MAX_JSON_ELEMENTS {
            return Err(E::custom(format!(
                "more than {MAX_JSON_ELEMENTS} BYTES elements as JSON; send tensors as binary data"
            )));
        }
        self.0.elements.push(Bytes::copy_from_slice(s.as_bytes()));
        Ok(())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(StringsVisitor(&mut *self.0))?.is_some() {}
        Ok(())
    }
    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        self.other("a boolean");
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        self.other("a number");
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        self.other("a number");
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        self.other("a number");
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        self.other("null");
        Ok(())
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        self.other("an object");
        Ok(())
    }
}

async fn infer_route(
    State(st): State<Arc<AppState>>,
    Path(model): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    infer_http(st, model, None, headers, body).await
}

async fn infer_route_v(
    State(st): State<Arc<AppState>>,
    Path((model, v)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    infer_http(st, model, Some(v), headers, body).await
}

async fn infer_http(
    st: Arc<AppState>,
    model: String,
    version: Option<String>,
    headers: HeaderMap,
    body: Body,
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
            let mut r = e.into_response();
            // The body may be partly unread: the connection cannot carry another request.
            r.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
            r
        }
    }
}

fn header_usize(headers: &HeaderMap, name: &str, what: &str) -> Result<Option<usize>, RequestError> {
    headers
        .get(name)
        .map(|v| {
            v.to_str()
                .ok()
                .and_then(|s| s.trim().parse::<usize>().ok())
                .ok_or_else(|| RequestError::bad(format!("{what} must be a non-negative integer")))
        })
        .transpose()
}

async fn infer_inner(
    st: &AppState,
    m: &Arc<LoadedModel>,
    headers: &HeaderMap,
    body: Body,
    received: Instant,
) -> Result<(Response, crate::repo::Timings), RequestError> {
    let adm = &st.admission;
    let max_json = adm.limits.max_json_bytes;
    if let Some(enc) = headers.get(header::CONTENT_ENCODING) {
        if enc.as_bytes() != b"identity" {
            return Err(RequestError::bad(format!(
                "Content-Encoding {:?} is not supported by heinfer serve; send the request uncompressed",
                String::from_utf8_lossy(enc.as_bytes())
            )));
        }
    }
    let content_length = header_usize(headers, header::CONTENT_LENGTH.as_str(), "Content-Length")?;
    let header_length = header_usize(headers, HEADER_LENGTH, "Inference-Header-Content-Length")?;
    let too_large = |n: usize, cap: usize, flag: &str, what: &str| {
        RequestError::TooLarge(format!(
            "{what} of {n} bytes exceeds the server's limit of {} (heinfer serve {flag})",
            admission::human(cap)
        ))
    };
    // Everything that can be refused from the headers is refused before a byte of
    // the body is read.
    let (cap, cap_flag) = match header_length {
        Some(_) => (st.max_request_bytes, "--max-request-mb"),
        None => (max_json, "--max-json-kb"),
    };
    if let Some(n) = content_length {
        if n > cap {
            return Err(too_large(n, cap, cap_flag, "request body"));
        }
    }
    if let Some(h) = header_length {
        if h > max_json {
            return Err(too_large(h, max_json, "--max-json-kb", "JSON header (Inference-Header-Content-Length)"));
        }
        if let Some(n) = content_length.filter(|&n| h > n) {
            return Err(RequestError::bad(format!(
                "Inference-Header-Content-Length is {h} but the body holds only {n} bytes"
            )));
        }
    }
    let res = adm.reservation();
    // A declared body is reserved whole before it is read; a chunked one frame by frame.
    if let Some(n) = content_length {
        res.grow(n)?;
    }
    let mut body = BodyReader::new(body, adm.limits.body_timeout, res, content_length.is_none(), cap, cap_flag);
    let json = match header_length {
        Some(h) => body.read_exact(h, "the JSON header").await?,
        None => body.read_to_end().await?,
    };
    let req: InferRequestJson = serde_json::from_slice(&json)
        .map_err(|e| RequestError::bad(format!("failed to parse the request JSON buffer: {e}")))?;
    drop(json);

    let declared: Vec<TensorHeader> =
        req.inputs.0.iter().map(|i| TensorHeader { name: &i.name, datatype: &i.datatype, shape: &i.shape.0 }).collect();
    let counts = infer::check_headers(m, &declared)?;
    drop(declared);
    let mut binary_total: usize = 0;
    for i in &req.inputs.0 {
        if i.parameters.shared_memory_region.is_some() {
            return Err(RequestError::bad("shared-memory inputs are not supported by heinfer serve"));
        }
        match (i.parameters.binary_data_size, &i.data) {
            (Some(size), _) => binary_total = binary_total.saturating_add(size as usize),
            (None, Some(_)) => {}
            (None, None) => {
                return Err(RequestError::bad(format!("input '{}' has neither data nor binary_data_size", i.name)))
            }
        }
    }
    if binary_total > 0 && header_length.is_none() {
        return Err(RequestError::bad(
            "inputs declare binary_data_size but the request has no Inference-Header-Content-Length header",
        ));
    }
    // The binary section must be exactly what the header declares: checked against
    // Content-Length before it is read.
    if let (Some(n), Some(h)) = (content_length, header_length) {
        let rest = n - h;
        if binary_total > rest {
            return Err(RequestError::bad(format!(
                "the inputs' binary_data_size add up to {binary_total} bytes but only {rest} bytes of binary data follow the JSON header"
            )));
        }
        if binary_total < rest {
            return Err(RequestError::bad(format!(
                "{} bytes of binary data follow the inputs that the JSON header accounts for",
                rest - binary_total
            )));
        }
    } else if binary_total > cap {
        return Err(too_large(binary_total, cap, cap_flag, "declared binary data"));
    } else if let Some(h) = header_length {
        body.reserve_total(h + binary_total)?;
    }

    let mut inputs = Vec::with_capacity(req.inputs.0.len());
    for (i, count) in req.inputs.0.into_iter().zip(counts) {
        let elements = match (i.parameters.binary_data_size, i.data) {
            (Some(size), _) => {
                let raw = body.read_exact(size as usize, &format!("input '{}'", i.name)).await?;
                // PLAIN_INPUT (FP32) and BLOCK (INT32) are not BYTES: their raw bytes are
                // their one element.
                if i.name == runtime::protocol::PLAIN_INPUT || i.name == runtime::protocol::BLOCK {
                    vec![raw]
                } else {
                    split_bytes(&i.name, raw, count)?
                }
            }
            (None, Some(_)) if i.name == runtime::protocol::PLAIN_INPUT || i.name == runtime::protocol::BLOCK => {
                return Err(RequestError::bad(format!(
                    "input '{}': send it as binary data (binary_data_size), as tritonclient does by default",
                    i.name
                )));
            }
            (None, Some(JsonStrings { other: Some(kind), .. })) => {
                return Err(RequestError::bad(format!(
                    "input '{}': BYTES data in JSON must be strings, found {kind}",
                    i.name
                )));
            }
            (None, Some(JsonStrings { elements: out, other: None })) => {
                if out.len() != count {
                    return Err(RequestError::bad(format!(
                        "input '{}': its shape holds {count} elements but the data holds {}",
                        i.name,
                        out.len()
                    )));
                }
                out
            }
            (None, None) => unreachable!("refused above"),
        };
        inputs.push(InputTensor { name: i.name, datatype: i.datatype, shape: i.shape.0, elements });
    }
    body.expect_end(|n| format!("{n} bytes of binary data follow the inputs that the JSON header accounts for"))
        .await?;
    let res = body.reservation().clone();
    drop(body);

    // Which outputs, and in which form. Triton: all outputs when none are named;
    // binary when the output asks (`binary_data`) or the request does
    // (`binary_data_output`).
    let default_binary = req.parameters.binary_data_output.unwrap_or(false);
    let mut want_binary = default_binary;
    if let Some(outs) = req.outputs.as_ref().map(|o| &o.0).filter(|o| !o.is_empty()) {
        for o in outs {
            if m.config.output(&o.name).is_none() {
                return Err(RequestError::bad(format!(
                    "unexpected inference output '{}' for model '{}'",
                    o.name, m.name
                )));
            }
            if o.parameters.shared_memory_region.is_some() {
                return Err(RequestError::bad("shared-memory outputs are not supported by heinfer serve"));
            }
            if o.parameters.classification.is_some() {
                return Err(RequestError::bad("classification outputs are not supported for encrypted tensors"));
            }
            want_binary = o.parameters.binary_data.unwrap_or(default_binary);
        }
    }

    let (outputs, dp, timings) = infer::run(st, m, inputs, received, res).await?;
    let name = runtime::protocol::ENCRYPTED_OUTPUT;
    // Ciphertexts are not text: when JSON was asked for but the elements are not
    // UTF-8, they go binary anyway (tritonclient reads either form).
    let as_text: Option<Vec<&str>> =
        if want_binary { None } else { outputs.iter().map(|o| std::str::from_utf8(o).ok()).collect() };
    // A merged twin's output has Triton's batch dimension, as its inputs do.
    let shape = if m.config.max_batch_size > 0 { json!([1, outputs.len()]) } else { json!([outputs.len()]) };
    let mut out = json!({ "name": name, "datatype": "BYTES", "shape": shape });
    let mut head = json!({ "model_name": m.name, "model_version": m.version });
    if let Some(id) = req.id.filter(|s| !s.is_empty()) {
        head["id"] = json!(id);
    }
    if let Some(a) = dp {
        head["parameters"] = a.parameters().into_iter().map(|(k, v)| (k.to_string(), json!(v))).collect();
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

#[cfg(test)]
mod tests {
    use axum::response::IntoResponse;
    use runtime::assembly::AssemblyError;

    use super::*;

    /// A bound that is full for now is a retry-later answer (503), like the server's own
    /// bounds; a batch that cannot be taken at all stays a 400.
    #[test]
    fn a_full_pending_batch_store_answers_503() {
        let full = RequestError::Refused(AssemblyError::Full { would: 2, limit: 1 }.into());
        assert_eq!(full.into_response().status(), StatusCode::SERVICE_UNAVAILABLE);
        let dup = RequestError::Refused(AssemblyError::Duplicate { batch: "b".into(), index: 0 }.into());
        assert_eq!(dup.into_response().status(), StatusCode::BAD_REQUEST);
    }
}
