//! `inference.GRPCInferenceService` over tonic. Tensors come either as
//! `raw_input_contents` (one entry per input, BYTES serialized with 4-byte length
//! prefixes, as tritonclient sends them) or as `contents.bytes_contents`; outputs go
//! back as `raw_output_contents`, as Triton does.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use tonic::{Request, Response, Status};

use crate::infer::{self, element_count, split_bytes, InputTensor, RequestError};
use crate::pb;
use crate::pb::grpc_inference_service_server::GrpcInferenceService;
use crate::AppState;

impl From<RequestError> for Status {
    fn from(e: RequestError) -> Self {
        match e {
            RequestError::BadRequest(m) => Status::invalid_argument(m),
            RequestError::Refused(e) => Status::invalid_argument(e.to_string()),
            RequestError::NotFound(m) => Status::not_found(m),
            RequestError::Unavailable(m) => Status::unavailable(m),
            RequestError::Internal(m) => Status::internal(m),
        }
    }
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
    async fn model_infer_inner(&self, req: pb::ModelInferRequest) -> Result<pb::ModelInferResponse, Status> {
        let received = Instant::now();
        let m = self.state.model(&req.model_name, version(&req.model_version))?;
        let res = self.infer_checked(&m, req, received).await;
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
    ) -> Result<(pb::ModelInferResponse, crate::repo::Timings), RequestError> {
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
        for i in req.inputs {
            if i.parameters.contains_key("shared_memory_region") {
                return Err(RequestError::bad("shared-memory inputs are not supported by heinfer serve"));
            }
            infer::check_input_header(m, &i.name, &i.datatype)?;
            let count = element_count(&i.name, &i.shape)?;
            let contents = i.contents.map(|c| c.bytes_contents).unwrap_or_default();
            let elements = match raw.next() {
                Some(r) => {
                    if !contents.is_empty() {
                        return Err(RequestError::bad(format!(
                            "input '{}' has both contents and raw_input_contents",
                            i.name
                        )));
                    }
                    split_bytes(&i.name, r, count)?
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
        let (outputs, timings) = infer::run(m, inputs, received).await?;
        let resp = pb::ModelInferResponse {
            model_name: m.name.clone(),
            model_version: m.version.clone(),
            id: req.id,
            parameters: Default::default(),
            outputs: vec![pb::model_infer_response::InferOutputTensor {
                name: runtime::protocol::ENCRYPTED_OUTPUT.into(),
                datatype: "BYTES".into(),
                shape: vec![outputs.len() as i64],
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
                        shape: t.dims.clone(),
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
        let r = self.model_infer_inner(req.into_inner()).await.map(Response::new);
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
