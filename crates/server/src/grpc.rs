//! `inference.GRPCInferenceService` over tonic. Tensors come either as
//! `raw_input_contents` (one entry per input, BYTES serialized with 4-byte length
//! prefixes, as tritonclient sends them) or as `contents.bytes_contents`; outputs go
//! back as `raw_output_contents`, as Triton does.
//!
//! Before tonic decodes a message, [`AdmissionLayer`] reads it against the limits
//! (size, bytes in flight, body deadline) and walks its protobuf fields without
//! decoding them: prost turns each 2-byte empty entry of a repeated field into a
//! 32-byte or larger value, so counts are refused there, before they are allocated.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use http_body_util::StreamBody;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tonic::{Request, Response, Status};

use crate::admission::{human, Acceptor, BodyReader, Reservation};
use crate::infer::{self, split_bytes, InputTensor, RequestError, TensorHeader};
use crate::pb;
use crate::pb::grpc_inference_service_server::{GrpcInferenceService, GrpcInferenceServiceServer};
use crate::AppState;

impl From<RequestError> for Status {
    fn from(e: RequestError) -> Self {
        match e {
            RequestError::BadRequest(m) => Status::invalid_argument(m),
            RequestError::Refused(e) if e.is_budget_exhausted() => Status::resource_exhausted(e.to_string()),
            RequestError::Refused(e) if e.is_transient() => Status::unavailable(e.to_string()),
            RequestError::Refused(e) => Status::invalid_argument(e.to_string()),
            RequestError::NotFound(m) => Status::not_found(m),
            RequestError::Unavailable(m) => Status::unavailable(m),
            RequestError::Internal(m) => Status::internal(m),
            RequestError::TooLarge(m) => Status::resource_exhausted(m),
            RequestError::Timeout(m) | RequestError::Deadline(m) => Status::deadline_exceeded(m),
        }
    }
}

/// Serves gRPC until `stop` says true. Connections are capped as for HTTP; each
/// carries at most `max_streams_per_connection` calls at once.
pub async fn serve(listener: TcpListener, st: Arc<AppState>, stop: watch::Receiver<bool>) -> Result<(), String> {
    let limits = st.admission.limits.clone();
    let max = st.max_request_bytes.saturating_add(FRAME_HEADER);
    let st_agg = st.clone();
    let svc = GrpcInferenceServiceServer::new(Grpc { state: st.clone() })
        .max_decoding_message_size(max)
        .max_encoding_message_size(max);
    // A channel between our accept loop (connection cap, first-bytes deadline) and
    // tonic, which takes a stream of connections.
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<crate::admission::LimitedIo, std::io::Error>>(1);
    let mut acceptor = Acceptor::new(listener, limits.max_connections, limits.header_timeout, stop.clone());
    let accept = tokio::spawn(async move {
        while let Some(io) = acceptor.accept().await {
            if tx.send(Ok(io)).await.is_err() {
                break;
            }
        }
    });
    let r = tonic::transport::Server::builder()
        // Large messages (key bundles, ciphertexts) need more than HTTP/2's 64 KB
        // default windows to stream at memory speed.
        .initial_stream_window_size(Some(8 << 20))
        .initial_connection_window_size(Some(16 << 20))
        .max_concurrent_streams(limits.max_streams_per_connection)
        .concurrency_limit_per_connection(limits.max_streams_per_connection as usize)
        // Peers that vanish without closing are found and their connections freed.
        .http2_keepalive_interval(Some(std::time::Duration::from_secs(30)))
        .http2_keepalive_timeout(Some(std::time::Duration::from_secs(20)))
        .layer(AdmissionLayer { state: st })
        .add_service(svc)
        .add_service(
            crate::pb_aggregate::aggregation_server::AggregationServer::new(
                crate::aggregation_grpc::AggregationService { state: st_agg },
            )
            .max_decoding_message_size(max)
            .max_encoding_message_size(max),
        )
        .serve_with_incoming_shutdown(tokio_stream::wrappers::ReceiverStream::new(rx), crate::stopped(stop))
        .await
        .map_err(|e| e.to_string());
    accept.abort();
    r
}

const FRAME_HEADER: usize = 5;
const INFER_PATH: &str = "/inference.GRPCInferenceService/ModelInfer";

/// Reads each call's message before tonic does; see the module doc.
#[derive(Clone)]
pub struct AdmissionLayer {
    state: Arc<AppState>,
}

impl<S> tower::Layer<S> for AdmissionLayer {
    type Service = Admitted<S>;
    fn layer(&self, inner: S) -> Admitted<S> {
        Admitted { inner, state: self.state.clone() }
    }
}

#[derive(Clone)]
pub struct Admitted<S> {
    inner: S,
    state: Arc<AppState>,
}

type GrpcRequest = http::Request<tonic::body::Body>;
type GrpcResponse = http::Response<tonic::body::Body>;

impl<S> tower::Service<GrpcRequest> for Admitted<S>
where
    S: tower::Service<GrpcRequest, Response = GrpcResponse> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = GrpcResponse;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<GrpcResponse, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: GrpcRequest) -> Self::Future {
        // The clone is not ready; the one polled ready is taken (tower's rule).
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let st = self.state.clone();
        Box::pin(async move {
            let (parts, body) = req.into_parts();
            match admit(&st, parts.uri.path(), body).await {
                Ok((frames, res)) => {
                    // Header and message as two frames: no copy of the message here.
                    let frames = frames.map(|b| Ok::<_, std::convert::Infallible>(http_body::Frame::data(b)));
                    let body = StreamBody::new(tokio_stream::iter(frames));
                    let mut req = http::Request::from_parts(parts, tonic::body::Body::new(body));
                    req.extensions_mut().insert(res.clone());
                    let r = inner.call(req).await;
                    drop(res);
                    r
                }
                Err(e) => {
                    tracing::warn!(proto = "grpc", path = parts.uri.path(), error = %e, "request refused");
                    Ok(Status::from(e).into_http())
                }
            }
        })
    }
}

/// One unary call's message (frame header included), read under the limits and,
/// for ModelInfer, checked field by field against the model.
async fn admit(st: &AppState, path: &str, body: tonic::body::Body) -> Result<([Bytes; 2], Reservation), RequestError> {
    let adm = &st.admission;
    let is_infer = path == INFER_PATH;
    // Aggregation calls carry ciphertexts: they get the request limit, as inference.
    let is_aggregation = path.starts_with(crate::aggregation_grpc::PATH_PREFIX);
    let (cap, flag) = if is_infer || is_aggregation {
        (st.max_request_bytes, "--max-request-mb")
    } else {
        (adm.limits.max_json_bytes, "--max-json-kb")
    };
    let res = adm.reservation();
    let mut body = BodyReader::new(body, adm.limits.body_timeout, res, true, cap + FRAME_HEADER, flag);
    let head = body.read_exact(FRAME_HEADER, "the gRPC message header").await?;
    if head[0] != 0 {
        return Err(RequestError::bad("compressed gRPC messages are not accepted by heinfer serve"));
    }
    let len = u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
    if len > cap {
        return Err(RequestError::TooLarge(format!(
            "gRPC message of {len} bytes exceeds the server's limit of {} (heinfer serve {flag})",
            human(cap)
        )));
    }
    // The declared message is reserved whole before it is read.
    body.reserve_total(FRAME_HEADER + len)?;
    let msg = body.read_exact(len, "the gRPC message").await?;
    body.expect_end(|n| format!("{n} bytes follow the gRPC message; unary calls carry one")).await?;
    if is_infer {
        let expected =
            |model: &str, tensor: &str| st.repo.models.get(model).and_then(|m| infer::expected_count(m, tensor));
        prescan::infer_request(&msg, expected)?;
    }
    Ok(([head, msg], body.reservation().clone()))
}

pub struct Grpc {
    pub state: Arc<AppState>,
}

fn version(v: &str) -> Option<&str> {
    (!v.is_empty()).then_some(v)
}

/// One structured log line per call, as for HTTP.
fn log<T>(method: &str, started: Instant, r: &Result<T, Status>) {
    let ms = format!("{:.1}", started.elapsed().as_secs_f64() * 1e3);
    match r {
        Ok(_) => tracing::info!(proto = "grpc", method, ms, "request"),
        Err(s) => tracing::warn!(proto = "grpc", method, ms, code = ?s.code(), error = s.message(), "request"),
    }
}

impl Grpc {
    async fn model_infer_inner(
        &self,
        req: pb::ModelInferRequest,
        res: Reservation,
    ) -> Result<pb::ModelInferResponse, Status> {
        let received = Instant::now();
        let m = self.state.model(&req.model_name, version(&req.model_version))?;
        let res = self.infer_checked(&m, req, received, res).await;
        let total = received.elapsed().as_nanos() as u64;
        match res {
            Ok((resp, mut t)) => {
                t.output_ns = total.saturating_sub(t.input_ns + t.queue_ns + t.infer_ns);
                m.stats.record_success(total, &t);
                tracing::info!(model = %m.name, ms = total as f64 / 1e6, evaluate_ms = t.infer_ns as f64 / 1e6, "inference");
                Ok(resp)
            }
            Err(e) => {
                m.stats.record_failure(total);
                tracing::warn!(model = %m.name, error = %e, "inference failed");
                Err(e.into())
            }
        }
    }

    async fn infer_checked(
        &self,
        m: &Arc<crate::repo::LoadedModel>,
        req: pb::ModelInferRequest,
        received: Instant,
        res: Reservation,
    ) -> Result<(pb::ModelInferResponse, crate::repo::Timings), RequestError> {
        let declared: Vec<TensorHeader> =
            req.inputs.iter().map(|i| TensorHeader { name: &i.name, datatype: &i.datatype, shape: &i.shape }).collect();
        let counts = infer::check_headers(m, &declared)?;
        drop(declared);
        let raw = req.raw_input_contents;
        if !raw.is_empty() && raw.len() != req.inputs.len() {
            return Err(RequestError::bad(format!(
                "expected {} raw_input_contents (one per input) but got {}",
                req.inputs.len(),
                raw.len()
            )));
        }
        let mut raw = raw.into_iter();
        let mut inputs = Vec::with_capacity(req.inputs.len());
        for (i, count) in req.inputs.into_iter().zip(counts) {
            if i.parameters.contains_key("shared_memory_region") {
                return Err(RequestError::bad("shared-memory inputs are not supported by heinfer serve"));
            }
            let contents = i.contents.map(|c| c.bytes_contents).unwrap_or_default();
            let elements = match raw.next() {
                Some(r) => {
                    if !contents.is_empty() {
                        return Err(RequestError::bad(format!(
                            "input '{}' has both contents and raw_input_contents",
                            i.name
                        )));
                    }
                    // PLAIN_INPUT (FP32) and BLOCK (INT32) are not BYTES: their raw bytes
                    // are their one element.
                    if i.name == runtime::protocol::PLAIN_INPUT || i.name == runtime::protocol::BLOCK {
                        vec![r]
                    } else {
                        split_bytes(&i.name, r, count)?
                    }
                }
                None if i.name == runtime::protocol::PLAIN_INPUT || i.name == runtime::protocol::BLOCK => {
                    return Err(RequestError::bad(format!(
                        "input '{}': send it in raw_input_contents (little-endian), as tritonclient does",
                        i.name
                    )));
                }
                None => {
                    if contents.len() != count {
                        return Err(RequestError::bad(format!(
                            "input '{}': its shape holds {count} elements but bytes_contents holds {}",
                            i.name,
                            contents.len()
                        )));
                    }
                    contents
                }
            };
            inputs.push(InputTensor { name: i.name, datatype: i.datatype, shape: i.shape, elements });
        }
        for o in &req.outputs {
            if m.config.output(&o.name).is_none() {
                return Err(RequestError::bad(format!(
                    "unexpected inference output '{}' for model '{}'",
                    o.name, m.name
                )));
            }
            if o.parameters.contains_key("shared_memory_region") {
                return Err(RequestError::bad("shared-memory outputs are not supported by heinfer serve"));
            }
        }
        let (outputs, dp, timings) = infer::run(&self.state, m, inputs, received, res).await?;
        let dp_params = dp.map(|a| a.parameters()).unwrap_or_default().into_iter().map(|(k, v)| {
            let choice = pb::infer_parameter::ParameterChoice::DoubleParam(v);
            (k.to_string(), pb::InferParameter { parameter_choice: Some(choice) })
        });
        let resp = pb::ModelInferResponse {
            model_name: m.name.clone(),
            model_version: m.version.clone(),
            id: req.id,
            parameters: dp_params.collect(),
            outputs: vec![pb::model_infer_response::InferOutputTensor {
                name: runtime::protocol::ENCRYPTED_OUTPUT.into(),
                datatype: "BYTES".into(),
                // A merged twin's output has Triton's batch dimension, as its inputs do.
                shape: if m.config.max_batch_size > 0 {
                    vec![1, outputs.len() as i64]
                } else {
                    vec![outputs.len() as i64]
                },
                parameters: Default::default(),
                contents: None,
            }],
            raw_output_contents: vec![infer::join_bytes(&outputs).into()],
        };
        Ok((resp, timings))
    }
}

#[tonic::async_trait]
impl GrpcInferenceService for Grpc {
    async fn server_live(&self, _: Request<pb::ServerLiveRequest>) -> Result<Response<pb::ServerLiveResponse>, Status> {
        let t = Instant::now();
        let r = Ok(Response::new(pb::ServerLiveResponse { live: true }));
        log("ServerLive", t, &r);
        r
    }

    async fn server_ready(
        &self,
        _: Request<pb::ServerReadyRequest>,
    ) -> Result<Response<pb::ServerReadyResponse>, Status> {
        let t = Instant::now();
        let r = Ok(Response::new(pb::ServerReadyResponse { ready: self.state.ready.load(Ordering::Relaxed) }));
        log("ServerReady", t, &r);
        r
    }

    async fn model_ready(
        &self,
        req: Request<pb::ModelReadyRequest>,
    ) -> Result<Response<pb::ModelReadyResponse>, Status> {
        let t = Instant::now();
        let req = req.into_inner();
        // Triton answers ready=false (not an error) for a model it does not serve.
        let ready =
            self.state.ready.load(Ordering::Relaxed) && self.state.model(&req.name, version(&req.version)).is_ok();
        let r = Ok(Response::new(pb::ModelReadyResponse { ready }));
        log("ModelReady", t, &r);
        r
    }

    async fn server_metadata(
        &self,
        _: Request<pb::ServerMetadataRequest>,
    ) -> Result<Response<pb::ServerMetadataResponse>, Status> {
        let t = Instant::now();
        let r = Ok(Response::new(pb::ServerMetadataResponse {
            name: crate::SERVER_NAME.into(),
            version: env!("CARGO_PKG_VERSION").into(),
            extensions: crate::EXTENSIONS.iter().map(|s| s.to_string()).collect(),
        }));
        log("ServerMetadata", t, &r);
        r
    }

    async fn model_metadata(
        &self,
        req: Request<pb::ModelMetadataRequest>,
    ) -> Result<Response<pb::ModelMetadataResponse>, Status> {
        let t = Instant::now();
        let req = req.into_inner();
        let r = (|| {
            let m = self.state.model(&req.name, version(&req.version))?;
            let tm = |ts: &[crate::config::TensorConfig]| {
                ts.iter()
                    .map(|t| pb::model_metadata_response::TensorMetadata {
                        name: t.name.clone(),
                        datatype: t.datatype(),
                        shape: m.metadata_shape(t),
                    })
                    .collect()
            };
            Ok(Response::new(pb::ModelMetadataResponse {
                name: m.name.clone(),
                versions: vec![m.version.clone()],
                platform: m.platform().to_string(),
                inputs: tm(&m.config.inputs),
                outputs: tm(&m.config.outputs),
            }))
        })();
        log("ModelMetadata", t, &r);
        r
    }

    async fn model_infer(
        &self,
        req: Request<pb::ModelInferRequest>,
    ) -> Result<Response<pb::ModelInferResponse>, Status> {
        let t = Instant::now();
        // Reserved by the admission layer; a call that did not pass it (in-process
        // tests of the service alone) starts with an empty reservation.
        let res = req.extensions().get::<Reservation>().cloned().unwrap_or_else(|| self.state.admission.reservation());
        let r = self.model_infer_inner(req.into_inner(), res).await.map(Response::new);
        log("ModelInfer", t, &r);
        r
    }

    async fn model_config(
        &self,
        req: Request<pb::ModelConfigRequest>,
    ) -> Result<Response<pb::ModelConfigResponse>, Status> {
        let t = Instant::now();
        let req = req.into_inner();
        let r = self
            .state
            .model(&req.name, version(&req.version))
            .map(|m| Response::new(pb::ModelConfigResponse { config: Some(m.config.to_proto()) }))
            .map_err(Status::from);
        log("ModelConfig", t, &r);
        r
    }

    async fn model_statistics(
        &self,
        req: Request<pb::ModelStatisticsRequest>,
    ) -> Result<Response<pb::ModelStatisticsResponse>, Status> {
        let t = Instant::now();
        let req = req.into_inner();
        let r = if req.name.is_empty() {
            let s = self.state.repo.models.values().map(|m| m.stats_proto()).collect();
            Ok(Response::new(pb::ModelStatisticsResponse { model_stats: s }))
        } else {
            self.state
                .model(&req.name, version(&req.version))
                .map(|m| Response::new(pb::ModelStatisticsResponse { model_stats: vec![m.stats_proto()] }))
                .map_err(Status::from)
        };
        log("ModelStatistics", t, &r);
        r
    }

    async fn repository_index(
        &self,
        _: Request<pb::RepositoryIndexRequest>,
    ) -> Result<Response<pb::RepositoryIndexResponse>, Status> {
        let t = Instant::now();
        let models = self
            .state
            .repo
            .models
            .values()
            .map(|m| pb::repository_index_response::ModelIndex {
                name: m.name.clone(),
                version: m.version.clone(),
                state: "READY".into(),
                reason: String::new(),
            })
            .collect();
        let r = Ok(Response::new(pb::RepositoryIndexResponse { models }));
        log("RepositoryIndex", t, &r);
        r
    }
}

/// Walks a ModelInferRequest's protobuf fields without decoding them.
mod prescan {
    use super::*;

    /// Parameters in any one map of a request.
    const MAX_PARAMS: usize = 64;
    use crate::infer::MAX_DIMS;
    /// Elements of a tensor of a model this server does not serve (the call will fail
    /// as unknown; until then, it must not cost more than this).
    const MAX_ELEMENTS_UNKNOWN: usize = 16;

    enum Val<'a> {
        Varint,
        Len(&'a [u8]),
    }

    fn malformed(what: &str) -> RequestError {
        RequestError::bad(format!("malformed ModelInferRequest: {what}"))
    }

    fn varint(buf: &mut &[u8]) -> Result<u64, RequestError> {
        let mut v = 0u64;
        for i in 0..10 {
            let (&b, rest) = buf.split_first().ok_or_else(|| malformed("truncated varint"))?;
            *buf = rest;
            v |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(malformed("varint longer than 10 bytes"))
    }

    /// Calls `f` with each field's number and value.
    fn fields<'a>(
        mut buf: &'a [u8],
        mut f: impl FnMut(u64, Val<'a>) -> Result<(), RequestError>,
    ) -> Result<(), RequestError> {
        while !buf.is_empty() {
            let key = varint(&mut buf)?;
            let (no, wire) = (key >> 3, key & 7);
            let v = match wire {
                0 => {
                    varint(&mut buf)?;
                    Val::Varint
                }
                1 | 5 => {
                    let n = if wire == 1 { 8 } else { 4 };
                    buf = buf.get(n..).ok_or_else(|| malformed("truncated fixed-width field"))?;
                    Val::Varint
                }
                2 => {
                    let n = usize::try_from(varint(&mut buf)?).map_err(|_| malformed("field length"))?;
                    let b = buf.get(..n).ok_or_else(|| malformed("field longer than the message"))?;
                    buf = &buf[n..];
                    Val::Len(b)
                }
                _ => return Err(malformed("group or unknown wire type")),
            };
            f(no, v)?;
        }
        Ok(())
    }

    fn too_many(what: &str, max: usize) -> RequestError {
        RequestError::bad(format!("the request carries more than {max} {what}"))
    }

    fn count_params(b: &[u8], field: u64) -> Result<(), RequestError> {
        let mut n = 0;
        fields(b, |no, _| {
            if no == field {
                n += 1;
                if n > MAX_PARAMS {
                    return Err(too_many("parameters in one map", MAX_PARAMS));
                }
            }
            Ok(())
        })
    }

    /// `expected(model, tensor)`: how many elements the model takes in that input, if
    /// the server serves such a model.
    pub(super) fn infer_request(
        msg: &[u8],
        expected: impl Fn(&str, &str) -> Option<usize>,
    ) -> Result<(), RequestError> {
        let mut model_name: &[u8] = b"";
        let mut inputs: Vec<&[u8]> = Vec::new();
        let (mut outputs, mut raw, mut params) = (0usize, 0usize, 0usize);
        fields(msg, |no, v| {
            match (no, v) {
                (1, Val::Len(b)) => model_name = b,
                (4, Val::Len(_)) => {
                    params += 1;
                    if params > MAX_PARAMS {
                        return Err(too_many("request parameters", MAX_PARAMS));
                    }
                }
                (5, Val::Len(b)) => {
                    inputs.push(b);
                    if inputs.len() > infer::MAX_INPUTS {
                        return Err(too_many("inputs", infer::MAX_INPUTS));
                    }
                }
                (6, Val::Len(b)) => {
                    outputs += 1;
                    if outputs > infer::MAX_INPUTS {
                        return Err(too_many("requested outputs", infer::MAX_INPUTS));
                    }
                    count_params(b, 2)?;
                }
                (7, Val::Len(_)) => {
                    raw += 1;
                    if raw > infer::MAX_INPUTS {
                        return Err(too_many("raw_input_contents entries", infer::MAX_INPUTS));
                    }
                }
                (1 | 4..=7, Val::Varint) => return Err(malformed(&format!("field {no} has the wrong wire type"))),
                _ => {}
            }
            Ok(())
        })?;
        let model = String::from_utf8_lossy(model_name);
        for b in inputs {
            let mut name: &[u8] = b"";
            let (mut dims, mut elements, mut params) = (0usize, 0usize, 0usize);
            let mut other_contents = false;
            fields(b, |no, v| {
                match (no, v) {
                    (1, Val::Len(n)) => name = n,
                    // packed or not, each dim is at least one byte
                    (3, Val::Len(p)) => dims += p.len(),
                    (3, Val::Varint) => dims += 1,
                    (4, _) => {
                        params += 1;
                        if params > MAX_PARAMS {
                            return Err(too_many("parameters in one map", MAX_PARAMS));
                        }
                    }
                    (5, Val::Len(c)) => fields(c, |cno, cv| {
                        match (cno, cv) {
                            (8, _) => elements += 1,
                            (_, Val::Len(p)) => {
                                other_contents = true;
                                elements += p.len();
                            }
                            (_, Val::Varint) => {
                                other_contents = true;
                                elements += 1;
                            }
                        }
                        Ok(())
                    })?,
                    _ => {}
                }
                Ok(())
            })?;
            let name = String::from_utf8_lossy(name);
            if dims > MAX_DIMS {
                return Err(RequestError::bad(format!("input '{name}' has more than {MAX_DIMS} dimensions")));
            }
            if other_contents {
                return Err(RequestError::bad(format!(
                    "input '{name}': heinfer tensors are BYTES; send raw_input_contents or contents.bytes_contents"
                )));
            }
            let max = expected(&model, &name).unwrap_or(MAX_ELEMENTS_UNKNOWN);
            if elements > max {
                return Err(RequestError::bad(format!(
                    "input '{name}': bytes_contents holds more than the {max} element(s) the model takes"
                )));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::prescan::infer_request;

    fn varint(mut n: u64) -> Vec<u8> {
        let mut out = vec![];
        loop {
            let b = (n & 0x7f) as u8;
            n >>= 7;
            if n == 0 {
                out.push(b);
                return out;
            }
            out.push(b | 0x80);
        }
    }

    fn field(no: u64, payload: &[u8]) -> Vec<u8> {
        let mut out = varint((no << 3) | 2);
        out.extend(varint(payload.len() as u64));
        out.extend_from_slice(payload);
        out
    }

    fn tensor(name: &str, contents: &[u8]) -> Vec<u8> {
        let mut t = field(1, name.as_bytes());
        t.extend(field(2, b"BYTES"));
        t.extend(field(3, &varint(1)));
        if !contents.is_empty() {
            t.extend(field(5, contents));
        }
        t
    }

    fn request(extra: &[u8]) -> Vec<u8> {
        let mut m = field(1, b"m");
        m.extend(field(5, &tensor("ENCRYPTED_INPUT", b"")));
        m.extend_from_slice(extra);
        m
    }

    fn check(msg: &[u8]) -> Result<(), String> {
        let expected = |model: &str, t: &str| (model == "m").then_some(if t == "ENCRYPTED_INPUT" { 2 } else { 1 });
        infer_request(msg, expected).map_err(|e| e.to_string())
    }

    #[test]
    fn counts_are_refused_before_decoding() {
        assert_eq!(check(&request(&[])), Ok(()));
        let raw: Vec<u8> = (0..17).flat_map(|_| [0x3a, 0]).collect();
        assert!(check(&request(&raw)).unwrap_err().contains("raw_input_contents"));
        let inputs: Vec<u8> = (0..17).flat_map(|_| field(5, b"")).collect();
        assert!(check(&request(&inputs)).unwrap_err().contains("inputs"));
        let params: Vec<u8> = (0..65).flat_map(|_| field(4, b"")).collect();
        assert!(check(&request(&params)).unwrap_err().contains("parameters"));
        // bytes_contents: as many as the model takes, not one more
        let two: Vec<u8> = (0..2).flat_map(|_| [0x42, 0]).collect();
        let mut m = field(1, b"m");
        m.extend(field(5, &tensor("ENCRYPTED_INPUT", &two)));
        assert_eq!(check(&m), Ok(()));
        let three: Vec<u8> = (0..3).flat_map(|_| [0x42, 0]).collect();
        let mut m = field(1, b"m");
        m.extend(field(5, &tensor("ENCRYPTED_INPUT", &three)));
        assert!(check(&m).unwrap_err().contains("bytes_contents"));
        // an unknown model gets a small fixed allowance
        let many: Vec<u8> = (0..17).flat_map(|_| [0x42, 0]).collect();
        let mut m = field(1, b"other");
        m.extend(field(5, &tensor("ENCRYPTED_INPUT", &many)));
        assert!(check(&m).unwrap_err().contains("bytes_contents"));
        // typed contents other than bytes
        let mut m = field(1, b"m");
        m.extend(field(5, &tensor("ENCRYPTED_INPUT", &field(6, &[0; 8]))));
        assert!(check(&m).unwrap_err().contains("BYTES"));
    }

    #[test]
    fn malformed_messages_are_refused() {
        for bad in [
            &[0x0a][..],                                                                   // a length missing
            &[0x0a, 5, b'a'][..], // a field longer than the message
            &[0x08, 0x80][..],    // a truncated varint
            &[0x0b][..],          // a group
            &[0x09, 1, 2][..],    // a truncated fixed64
            &[0x28, 1][..],       // inputs as a varint
            &[0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01][..], // 11-byte varint
        ] {
            let e = check(bad).unwrap_err();
            assert!(e.contains("malformed ModelInferRequest"), "{bad:?}: {e}");
        }
    }
}
