//! The secure-aggregation API over gRPC (`proto/aggregate.proto`): each call is the
//! HTTP route of the same name in `aggregation`, through the same operations, so the
//! two transports cannot disagree on what a round accepts.

use std::sync::Arc;
use std::time::Instant;

use tonic::{Request, Response, Status};

use crate::aggregation::{ops, signature_bytes, RoundView};
use crate::pb_aggregate::aggregation_server::Aggregation;
use crate::pb_aggregate::{
    ContributeRequest, CreateRoundRequest, DeleteResponse, ParticipantsRequest, ResultResponse, RoundRef, RoundStatus,
    SharesRequest, SumResponse,
};
use crate::AppState;

/// The path prefix of this service's calls (admission gives them the request limit).
pub const PATH_PREFIX: &str = "/heinfer.aggregate.v1.Aggregation/";

pub struct AggregationService {
    pub state: Arc<AppState>,
}

fn status(v: RoundView) -> RoundStatus {
    RoundStatus {
        round: v.round,
        status: v.status,
        contributions: v.contributions as u64,
        ciphertexts: v.ciphertexts as u64,
        participants: v.participants,
        max_contribution_bytes: v.max_contribution_bytes as u64,
    }
}

/// One structured log line per call, as for inference.
fn logged<T>(method: &str, started: Instant, r: Result<T, crate::RequestError>) -> Result<Response<T>, Status> {
    let ms = format!("{:.1}", started.elapsed().as_secs_f64() * 1e3);
    match r {
        Ok(v) => {
            tracing::info!(proto = "grpc", method, ms, "aggregation request");
            Ok(Response::new(v))
        }
        Err(e) => {
            let s = Status::from(e);
            tracing::warn!(proto = "grpc", method, ms, code = ?s.code(), error = s.message(), "aggregation request");
            Err(s)
        }
    }
}

#[tonic::async_trait]
impl Aggregation for AggregationService {
    async fn create_round(&self, req: Request<CreateRoundRequest>) -> Result<Response<RoundStatus>, Status> {
        let t = Instant::now();
        let r = req.into_inner();
        logged("CreateRound", t, ops::create(self.state.clone(), r.config_json, r.public_key).await.map(status))
    }

    async fn get_round(&self, req: Request<RoundRef>) -> Result<Response<RoundStatus>, Status> {
        let t = Instant::now();
        logged("GetRound", t, ops::status(self.state.clone(), req.into_inner().round).await.map(status))
    }

    async fn contribute(&self, req: Request<ContributeRequest>) -> Result<Response<RoundStatus>, Status> {
        let t = Instant::now();
        let r = req.into_inner();
        let done = match signature_bytes(&r.signature) {
            Ok(sig) => ops::contribute(self.state.clone(), r.round, r.signer, sig, r.contribution).await.map(status),
            Err(e) => Err(e),
        };
        logged("Contribute", t, done)
    }

    async fn close_round(&self, req: Request<RoundRef>) -> Result<Response<RoundStatus>, Status> {
        let t = Instant::now();
        logged("CloseRound", t, ops::close(self.state.clone(), req.into_inner().round).await.map(status))
    }

    async fn get_sum(&self, req: Request<RoundRef>) -> Result<Response<SumResponse>, Status> {
        let t = Instant::now();
        let r = ops::sum(self.state.clone(), req.into_inner().round).await;
        logged("GetSum", t, r.map(|b| SumResponse { ciphertexts: b.into() }))
    }

    async fn set_participants(&self, req: Request<ParticipantsRequest>) -> Result<Response<RoundStatus>, Status> {
        let t = Instant::now();
        let r = req.into_inner();
        logged("SetParticipants", t, ops::participants(self.state.clone(), r.round, r.participants).await.map(status))
    }

    async fn submit_shares(&self, req: Request<SharesRequest>) -> Result<Response<RoundStatus>, Status> {
        let t = Instant::now();
        let r = req.into_inner();
        let done = match signature_bytes(&r.signature) {
            Ok(sig) => ops::shares(self.state.clone(), r.round, r.member, sig, r.shares).await.map(status),
            Err(e) => Err(e),
        };
        logged("SubmitShares", t, done)
    }

    async fn get_result(&self, req: Request<RoundRef>) -> Result<Response<ResultResponse>, Status> {
        let t = Instant::now();
        let round = req.into_inner().round;
        let r = ops::result(self.state.clone(), round.clone()).await;
        logged("GetResult", t, r.map(|values| ResultResponse { round, values }))
    }

    async fn delete_round(&self, req: Request<RoundRef>) -> Result<Response<DeleteResponse>, Status> {
        let t = Instant::now();
        logged(
            "DeleteRound",
            t,
            ops::delete(self.state.clone(), req.into_inner().round).await.map(|()| DeleteResponse {}),
        )
    }
}
