//! A round on disk: one file, `<dir>/<round id>.round`, replaced atomically (unique
//! temporary file, fsync, rename, fsync of the directory) after every accepted change.
//! One file, so that the list of contributors and the sum can never disagree after a
//! crash: a contributor listed is in the sum, and one in the sum is listed.
//!
//! Layout: `HEAR`, u32 JSON length, the JSON state (configuration, status, contributors,
//! result), then length-prefixed items: the public key, the sum's ciphertexts, and each
//! member's shares.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use ckks::{Ciphertext, Parameters};
use rlwe::multiparty::DecryptionShare;
use serde::{Deserialize, Serialize};

use crate::error::AggregateError;
use crate::round::{join, split, Round, RoundConfig, Status};

const MAGIC: &[u8; 4] = b"HEAR";
const ITEMS: &[u8; 4] = b"HEAI";

#[derive(Serialize, Deserialize)]
struct State {
    config: RoundConfig,
    status: Status,
    contributed: Vec<String>,
    sum_ciphertexts: usize,
    share_members: Vec<u32>,
    result: Option<Vec<f64>>,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> AggregateError + '_ {
    move |source| AggregateError::Io { path: path.display().to_string(), source }
}

/// The file of round `id` in `dir`.
pub fn path(dir: &Path, id: &str) -> PathBuf {
    dir.join(format!("{id}.round"))
}

/// Writes the round atomically.
pub fn save(round: &Round, dir: &Path) -> Result<(), AggregateError> {
    let sum = round.sum.as_deref().unwrap_or(&[]);
    let state = State {
        config: round.config.clone(),
        status: round.status.clone(),
        contributed: round.contributed.iter().cloned().collect(),
        sum_ciphertexts: sum.len(),
        share_members: round.shares.keys().copied().collect(),
        result: round.result.clone(),
    };
    let json = serde_json::to_vec(&state).expect("the state serializes");
    let mut items = vec![round.public_key.to_bytes()];
    items.extend(sum.iter().map(Ciphertext::to_bytes));
    for shares in round.shares.values() {
        items.extend(shares.iter().map(DecryptionShare::to_bytes));
    }
    let mut out = Vec::new();
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&(json.len() as u32).to_le_bytes());
    out.extend_from_slice(&json);
    out.extend_from_slice(&join(ITEMS, &items));

    static NEXT: AtomicU64 = AtomicU64::new(0);
    let dest = path(dir, &round.config.id);
    let tmp =
        dir.join(format!(".{}.{}.{}.tmp", round.config.id, std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed)));
    let mut f = OpenOptions::new().write(true).create_new(true).open(&tmp).map_err(io(&tmp))?;
    f.write_all(&out).and_then(|_| f.sync_all()).map_err(io(&tmp))?;
    drop(f);
    fs::rename(&tmp, &dest).map_err(io(&dest))?;
    File::open(dir).and_then(|d| d.sync_all()).map_err(io(dir))?;
    Ok(())
}

/// Removes round `id`'s file (a missing file is not an error: it is gone either way).
pub fn remove(dir: &Path, id: &str) -> Result<(), AggregateError> {
    let p = path(dir, id);
    match fs::remove_file(&p) {
        Ok(()) => File::open(dir).and_then(|d| d.sync_all()).map_err(io(dir)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io(&p)(e)),
    }
}

/// Reads round `id` back, checking everything as if it came from the network.
pub fn load(dir: &Path, id: &str) -> Result<Round, AggregateError> {
    let p = path(dir, id);
    let bytes = fs::read(&p).map_err(io(&p))?;
    let bad = |s: &str| AggregateError::Payload(format!("{}: {s}", p.display()));
    if bytes.len() < 8 || &bytes[..4] != MAGIC {
        return Err(bad("not a saved round"));
    }
    let len = u32::from_le_bytes(bytes[4..8].try_into().expect("4 bytes")) as usize;
    let json = bytes.get(8..8 + len).ok_or_else(|| bad("truncated state"))?;
    let state: State = serde_json::from_slice(json).map_err(|e| bad(&format!("state: {e}")))?;
    let count = 1 + state.sum_ciphertexts + state.share_members.len() * state.sum_ciphertexts;
    let items = split(&bytes[8 + len..], ITEMS, count)?;
    let mut round = Round::create(state.config, items[0])?;
    let params: Parameters = round.params.clone();
    let sum: Vec<Ciphertext> = items[1..=state.sum_ciphertexts]
        .iter()
        .map(|b| Ciphertext::from_bytes(&params, b))
        .collect::<Result<_, _>>()?;
    let mut shares = BTreeMap::new();
    let mut rest = items[1 + state.sum_ciphertexts..].chunks(state.sum_ciphertexts.max(1));
    for &m in &state.share_members {
        let chunk = rest.next().ok_or_else(|| bad("missing shares"))?;
        let v = chunk.iter().map(|b| DecryptionShare::from_bytes(&params, b)).collect::<Result<Vec<_>, _>>()?;
        shares.insert(m, v);
    }
    round.contributed = state.contributed.into_iter().collect();
    round.sum = (!sum.is_empty()).then_some(sum);
    round.status = state.status;
    round.shares = shares;
    round.result = state.result;
    Ok(round)
}
