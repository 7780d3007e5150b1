//! The secure-aggregation API beside KServe v2, over HTTP (`aggregate` does the work):
//!
//! | method and path | body | answer |
//! |---|---|---|
//! | `POST /v2/aggregate/rounds` | `HEAN` container: the round's JSON configuration, the collective public key | status JSON |
//! | `GET /v2/aggregate/rounds/{id}` | — | status JSON |
//! | `POST /v2/aggregate/rounds/{id}/contributions` | `HEAC` container of ciphertexts; headers `x-heinfer-signer`, `x-heinfer-signature` | status JSON |
//! | `POST /v2/aggregate/rounds/{id}/close` | — | status JSON |
//! | `GET /v2/aggregate/rounds/{id}/sum` | — | `HEAC` container of the sum's ciphertexts |
//! | `POST /v2/aggregate/rounds/{id}/participants` | `{"participants": [..]}` | status JSON |
//! | `POST /v2/aggregate/rounds/{id}/shares/{member}` | `HEAS` container of decryption shares; signature headers | status JSON |
//! | `GET /v2/aggregate/rounds/{id}/result` | — | `{"values": [..]}` |
//! | `DELETE /v2/aggregate/rounds/{id}` | — | 204; finished rounds only |
//!
//! The same operations are served over gRPC (`proto/aggregate.proto`, service
//! `heinfer.aggregate.v1.Aggregation`, in `aggregation_grpc`); bodies and signatures are
//! the same bytes on both.
//!
//! Each round is saved (one file, atomically) after every accepted change when the
//! server has a directory for rounds, and read back at start: a restart loses no round.
//! Rounds in memory are capped; bodies are capped by the server's request limit. A
//! finished round (done or failed) stays until it is deleted or, when the cap is
//! reached, until a new round needs its place (the finished round used least recently
//! goes first); a round still running is never evicted.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use aggregate::round::{join, split, CONTRIBUTION_MAGIC};
use aggregate::{store, AggregateError, Round, RoundConfig, Status};
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde_json::json;

use crate::infer::RequestError;
use crate::AppState;

/// Container magic of a round's creation: configuration JSON, then the public key.
pub const CREATE_MAGIC: &[u8; 4] = b"HEAN";

/// How many rounds a server holds at once.
pub const MAX_ROUNDS: usize = 64;

/// The rounds a server holds, and where it saves them.
pub struct Rounds {
    dir: Option<PathBuf>,
    rounds: Mutex<BTreeMap<String, Entry>>,
    /// A clock of calls: which finished round was used least recently makes way first.
    clock: AtomicU64,
}

struct Entry {
    round: Arc<Mutex<Round>>,
    used: AtomicU64,
}

impl Entry {
    fn new(round: Arc<Mutex<Round>>, now: u64) -> Self {
        Self { round, used: AtomicU64::new(now) }
    }
}

impl Rounds {
    /// The rounds saved in `dir` (created if missing), or none in memory only.
    pub fn open(dir: Option<PathBuf>) -> Result<Self, String> {
        let mut rounds = BTreeMap::new();
        if let Some(d) = &dir {
            std::fs::create_dir_all(d).map_err(|e| format!("aggregation directory {}: {e}", d.display()))?;
            let entries = std::fs::read_dir(d).map_err(|e| format!("aggregation directory {}: {e}", d.display()))?;
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().to_string();
                if let Some(id) = name.strip_suffix(".round") {
                    match store::load(d, id) {
                        Ok(r) => {
                            rounds.insert(id.to_string(), Entry::new(Arc::new(Mutex::new(r)), 0));
                        }
                        Err(err) => tracing::warn!(round = id, error = %err, "a saved round does not read; skipped"),
                    }
                }
            }
        }
        Ok(Self { dir, rounds: Mutex::new(rounds), clock: AtomicU64::new(1) })
    }

    fn get(&self, id: &str) -> Result<Arc<Mutex<Round>>, RequestError> {
        let rounds = self.rounds.lock().expect("rounds lock");
        let e = rounds.get(id).ok_or_else(|| RequestError::NotFound(format!("no aggregation round {id:?}")))?;
        e.used.store(self.clock.fetch_add(1, Ordering::Relaxed), Ordering::Relaxed);
        Ok(e.round.clone())
    }

    fn save(&self, round: &Round) -> Result<(), RequestError> {
        match &self.dir {
            Some(d) => store::save(round, d).map_err(|e| RequestError::Internal(e.to_string())),
            None => Ok(()),
        }
    }

    fn forget(&self, id: &str) -> Result<(), RequestError> {
        match &self.dir {
            Some(d) => store::remove(d, id).map_err(|e| RequestError::Internal(e.to_string())),
            None => Ok(()),
        }
    }

    /// Adds a new round and saves it. The round's own lock is held until its file is
    /// written (a request that finds it meanwhile waits), the map's only while it is
    /// changed, so a slow disk never stalls requests for other rounds.
    fn insert(&self, round: Round) -> Result<RoundView, RequestError> {
        let id = round.config().id.clone();
        let cell = Arc::new(Mutex::new(round));
        let guard = cell.lock().expect("round lock");
        let evicted = {
            let mut rounds = self.rounds.lock().expect("rounds lock");
            if rounds.contains_key(&id) {
                return Err(RequestError::BadRequest(format!("round {id:?} exists already")));
            }
            let mut evicted = None;
            if rounds.len() >= MAX_ROUNDS {
                // The finished round used least recently makes way; try_lock: a round
                // busy right now is not idle.
                let idle = rounds
                    .iter()
                    .filter(|(_, e)| e.round.try_lock().is_ok_and(|r| finished(r.status())))
                    .min_by_key(|(_, e)| e.used.load(Ordering::Relaxed))
                    .map(|(k, _)| k.clone());
                let Some(old) = idle else {
                    return Err(RequestError::Unavailable(format!(
                        "this server holds {MAX_ROUNDS} running rounds; finish or delete one"
                    )));
                };
                rounds.remove(&old);
                evicted = Some(old);
            }
            rounds.insert(id.clone(), Entry::new(cell.clone(), self.clock.fetch_add(1, Ordering::Relaxed)));
            evicted
        };
        if let Some(old) = evicted {
            tracing::info!(round = %old, "a finished round made way for {id:?}");
            self.forget(&old)?;
        }
        if let Err(e) = self.save(&guard) {
            self.rounds.lock().expect("rounds lock").remove(&id);
            return Err(e);
        }
        Ok(RoundView::of(&guard))
    }

    /// Deletes a finished round.
    fn delete(&self, id: &str) -> Result<(), RequestError> {
        let cell = self.get(id)?;
        let r = cell.lock().expect("round lock");
        if !finished(r.status()) {
            return Err(RequestError::BadRequest(format!(
                "round {id:?} is {}; only a done or failed round is deleted",
                r.status()
            )));
        }
        self.rounds.lock().expect("rounds lock").remove(id);
        self.forget(id)
    }
}

fn finished(s: &Status) -> bool {
    matches!(s, Status::Done | Status::Failed { .. })
}

/// What a client is told about a round after each call, on either transport.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RoundView {
    pub round: String,
    pub status: String,
    pub contributions: usize,
    pub ciphertexts: usize,
    pub participants: Vec<u32>,
    pub max_contribution_bytes: usize,
}

impl RoundView {
    fn of(r: &Round) -> Self {
        let participants = match r.status() {
            Status::Decrypting { participants } => participants.clone(),
            _ => Vec::new(),
        };
        Self {
            round: r.config().id.clone(),
            status: r.status().to_string(),
            contributions: r.contributions(),
            ciphertexts: r.ciphertexts(),
            participants,
            max_contribution_bytes: r.max_contribution_bytes(),
        }
    }
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

fn refused(e: AggregateError) -> RequestError {
    match e {
        AggregateError::Io { .. } => RequestError::Internal(e.to_string()),
        e => RequestError::BadRequest(e.to_string()),
    }
}

/// Runs `f` on the round off the async threads (it parses and adds ciphertexts), then
/// saves the round if `f` changed it.
async fn with_round<T: Send + 'static>(
    st: Arc<AppState>,
    id: String,
    f: impl FnOnce(&mut Round) -> Result<(T, bool), AggregateError> + Send + 'static,
) -> Result<T, RequestError> {
    tokio::task::spawn_blocking(move || {
        let round = st.rounds.get(&id)?;
        let mut r = round.lock().expect("round lock");
        let ticked = r.tick(now());
        let outcome = f(&mut r);
        let (value, changed) = match outcome {
            Ok(v) => v,
            Err(e) => {
                if ticked {
                    st.rounds.save(&r)?;
                }
                return Err(refused(e));
            }
        };
        if changed || ticked {
            st.rounds.save(&r)?;
        }
        Ok(value)
    })
    .await
    .map_err(|e| RequestError::Internal(format!("aggregation task failed: {e}")))?
}

/// The operations, one per call of either transport.
pub mod ops {
    use super::*;

    /// A new round from its JSON configuration and the collective public key.
    pub async fn create(st: Arc<AppState>, config_json: Bytes, public_key: Bytes) -> Result<RoundView, RequestError> {
        tokio::task::spawn_blocking(move || {
            let config: RoundConfig = serde_json::from_slice(&config_json)
                .map_err(|e| RequestError::BadRequest(format!("round configuration JSON: {e}")))?;
            st.rounds.insert(Round::create(config, &public_key).map_err(refused)?)
        })
        .await
        .map_err(|e| RequestError::Internal(format!("aggregation task failed: {e}")))?
    }

    pub async fn delete(st: Arc<AppState>, id: String) -> Result<(), RequestError> {
        tokio::task::spawn_blocking(move || st.rounds.delete(&id))
            .await
            .map_err(|e| RequestError::Internal(format!("aggregation task failed: {e}")))?
    }

    pub async fn status(st: Arc<AppState>, id: String) -> Result<RoundView, RequestError> {
        with_round(st, id, |r| Ok((RoundView::of(r), false))).await
    }

    pub async fn contribute(
        st: Arc<AppState>,
        id: String,
        signer: String,
        sig: Vec<u8>,
        body: Bytes,
    ) -> Result<RoundView, RequestError> {
        with_round(st, id, move |r| {
            r.contribute(&signer, &sig, &body, now())?;
            Ok((RoundView::of(r), true))
        })
        .await
    }

    pub async fn close(st: Arc<AppState>, id: String) -> Result<RoundView, RequestError> {
        with_round(st, id, |r| {
            r.close()?;
            Ok((RoundView::of(r), true))
        })
        .await
    }

    /// The encrypted sum as an `HEAC` container.
    pub async fn sum(st: Arc<AppState>, id: String) -> Result<Vec<u8>, RequestError> {
        with_round(st, id, |r| Ok((join(CONTRIBUTION_MAGIC, &r.sum_ciphertexts()?), false))).await
    }

    pub async fn participants(st: Arc<AppState>, id: String, who: Vec<u32>) -> Result<RoundView, RequestError> {
        with_round(st, id, move |r| {
            r.reassign(&who)?;
            Ok((RoundView::of(r), true))
        })
        .await
    }

    pub async fn shares(
        st: Arc<AppState>,
        id: String,
        member: u32,
        sig: Vec<u8>,
        body: Bytes,
    ) -> Result<RoundView, RequestError> {
        with_round(st, id, move |r| {
            r.submit_shares(member, &sig, &body)?;
            Ok((RoundView::of(r), true))
        })
        .await
    }

    /// The decrypted sum; NotFound until the round is done.
    pub async fn result(st: Arc<AppState>, id: String) -> Result<Vec<f64>, RequestError> {
        with_round(st, id, |r| match r.result() {
            Some(v) => Ok((Ok(v.to_vec()), false)),
            None => Ok((
                Err(RequestError::NotFound(format!("round {} has no result yet: it is {}", r.config().id, r.status()))),
                false,
            )),
        })
        .await?
    }
}

pub fn routes(max_body: usize) -> Router<Arc<AppState>> {
    Router::new()
        .route("/v2/aggregate/rounds", post(create).layer(DefaultBodyLimit::max(max_body)))
        .route("/v2/aggregate/rounds/{id}", get(status).delete(delete))
        .route("/v2/aggregate/rounds/{id}/contributions", post(contribute).layer(DefaultBodyLimit::max(max_body)))
        .route("/v2/aggregate/rounds/{id}/close", post(close))
        .route("/v2/aggregate/rounds/{id}/sum", get(sum))
        .route("/v2/aggregate/rounds/{id}/participants", post(participants))
        .route("/v2/aggregate/rounds/{id}/shares/{member}", post(shares).layer(DefaultBodyLimit::max(max_body)))
        .route("/v2/aggregate/rounds/{id}/result", get(result))
}

/// An Ed25519 signature's bytes, checked for length: 64.
pub fn signature_bytes(sig: &[u8]) -> Result<Vec<u8>, RequestError> {
    if sig.len() != 64 {
        return Err(RequestError::BadRequest(format!("a signature is 64 bytes (Ed25519), not {}", sig.len())));
    }
    Ok(sig.to_vec())
}

fn signature(headers: &HeaderMap) -> Result<(String, Vec<u8>), RequestError> {
    let h = |n: &str| {
        headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
            .ok_or_else(|| RequestError::BadRequest(format!("header {n} is missing")))
    };
    let signer = h("x-heinfer-signer")?;
    let sig = h("x-heinfer-signature")?;
    if sig.len() != 128 || !sig.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(RequestError::BadRequest("x-heinfer-signature: 128 hex digits (an Ed25519 signature)".into()));
    }
    let bytes = (0..64).map(|i| u8::from_str_radix(&sig[2 * i..2 * i + 2], 16).expect("hex checked")).collect();
    Ok((signer, bytes))
}

fn view_json(v: RoundView) -> Response {
    axum::Json(v).into_response()
}

fn answer<T>(r: Result<T, RequestError>, ok: impl FnOnce(T) -> Response) -> Response {
    match r {
        Ok(v) => ok(v),
        Err(e) => e.into_response(),
    }
}

async fn create(State(st): State<Arc<AppState>>, body: Bytes) -> Response {
    let items = match split(&body, CREATE_MAGIC, 2) {
        Ok(items) => items,
        Err(e) => return refused(e).into_response(),
    };
    let (config, pk) = (body.slice_ref(items[0]), body.slice_ref(items[1]));
    answer(ops::create(st, config, pk).await, |v| (StatusCode::CREATED, view_json(v)).into_response())
}

async fn delete(State(st): State<Arc<AppState>>, Path(id): Path<String>) -> Response {
    answer(ops::delete(st, id).await, |()| StatusCode::NO_CONTENT.into_response())
}

async fn status(State(st): State<Arc<AppState>>, Path(id): Path<String>) -> Response {
    answer(ops::status(st, id).await, view_json)
}

async fn contribute(
    State(st): State<Arc<AppState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (signer, sig) = match signature(&headers) {
        Ok(s) => s,
        Err(e) => return e.into_response(),
    };
    answer(ops::contribute(st, id, signer, sig, body).await, view_json)
}

async fn close(State(st): State<Arc<AppState>>, Path(id): Path<String>) -> Response {
    answer(ops::close(st, id).await, view_json)
}

async fn sum(State(st): State<Arc<AppState>>, Path(id): Path<String>) -> Response {
    answer(ops::sum(st, id).await, |b| ([("content-type", "application/octet-stream")], b).into_response())
}

async fn participants(State(st): State<Arc<AppState>>, Path(id): Path<String>, body: Bytes) -> Response {
    #[derive(serde::Deserialize)]
    struct Body {
        participants: Vec<u32>,
    }
    let b: Body = match serde_json::from_slice(&body) {
        Ok(b) => b,
        Err(e) => {
            return RequestError::BadRequest(format!("expected {{\"participants\": [ids]}}: {e}")).into_response()
        }
    };
    answer(ops::participants(st, id, b.participants).await, view_json)
}

async fn shares(
    State(st): State<Arc<AppState>>,
    Path((id, member)): Path<(String, u32)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (_, sig) = match signature(&headers) {
        Ok(s) => s,
        Err(e) => return e.into_response(),
    };
    answer(ops::shares(st, id, member, sig, body).await, view_json)
}

async fn result(State(st): State<Arc<AppState>>, Path(id): Path<String>) -> Response {
    let round = id.clone();
    answer(ops::result(st, id).await, |v| axum::Json(json!({ "round": round, "values": v })).into_response())
}
