//! Differentially private outputs on the server: integer noise added to the output
//! slots under encryption, and the privacy budget each key id spends per model.
//!
//! The noise: for output element i, z_i from the exact discrete Gaussian (or discrete
//! Laplace) on the OS-seeded CSPRNG (`ring::sampling::Sampler`), in lattice steps of
//! γ = 2^-g output units; the slot holding element i gets z_i·γ / multiplier, encoded
//! at the output ciphertext's level and scale and added as a plaintext. Slots outside
//! the output layout get nothing (the compiler asks for circuit privacy's mask where
//! they must not leak).
//!
//! The budget: basic composition — a key id's ε (and δ) spent on a model is the sum
//! over its answered queries; a query that would take the sum past the budget is
//! refused before it is evaluated, and charged atomically after, so concurrent
//! queries cannot overspend. With a key directory, the ledger is a file per (model,
//! key id) under `<dir>/dp-budget/`, written then renamed before the answer leaves:
//! a restart does not refill anyone's budget. Replicas sharing the directory each
//! keep their own count in memory and read the file only when they first see a key
//! id, so N replicas could together allow up to N budgets — run one server per
//! directory when the budget matters (see docs/privacy.md).

use std::collections::HashMap;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use ckks::{Ciphertext, Encoder, Evaluator, KeyId, Parameters};
use model::{DpMechanism, OutputDp};
use ring::sampling::Sampler;
use thiserror::Error;

/// What a key id has spent on one model.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Spent {
    pub epsilon: f64,
    pub delta: f64,
    pub queries: u64,
}

/// What a client is told with each answer of a DP model.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DpAccount {
    /// ε this answer cost
    pub epsilon_query: f64,
    /// ε this key id has spent on the model, this answer included
    pub epsilon_spent: f64,
    /// δ spent likewise
    pub delta_spent: f64,
    /// the key id's budget on this model (None: unlimited)
    pub epsilon_budget: Option<f64>,
}

impl DpAccount {
    /// ε left (infinite without a budget).
    pub fn epsilon_remaining(&self) -> f64 {
        self.epsilon_budget.map_or(f64::INFINITY, |b| (b - self.epsilon_spent).max(0.0))
    }

    /// The response parameters a front end sends with the answer (`protocol::DP_*`).
    pub fn parameters(&self) -> Vec<(&'static str, f64)> {
        use crate::protocol::{DP_EPSILON_BUDGET, DP_EPSILON_QUERY, DP_EPSILON_REMAINING, DP_EPSILON_SPENT};
        let mut p = vec![(DP_EPSILON_QUERY, self.epsilon_query), (DP_EPSILON_SPENT, self.epsilon_spent)];
        if let Some(b) = self.epsilon_budget {
            p.push((DP_EPSILON_BUDGET, b));
            p.push((DP_EPSILON_REMAINING, self.epsilon_remaining()));
        }
        p
    }
}

#[derive(Debug, Error)]
pub enum BudgetError {
    #[error("privacy budget exhausted: key id {key_id} has spent ε = {spent} of its budget ε = {budget} on model '{model}' and a query costs ε = {epsilon}; the model owner sets the budget (compile --dp-budget, config parameter heinfer_dp_budget)")]
    Exhausted { model: String, key_id: KeyId, spent: f64, budget: f64, epsilon: f64 },
    #[error(
        "privacy-budget ledger {path}: {source}; fix or remove the file (removing it refills that key id's budget)"
    )]
    Ledger { path: PathBuf, source: io::Error },
}

/// Slack for float sums of ε (k × 0.1 is not exactly k/10).
const SLACK: f64 = 1e-9;

/// Every key id's spending, per model; shared by the models of a key store.
pub struct BudgetLedger {
    dir: Option<PathBuf>,
    spent: Mutex<HashMap<(String, KeyId), Spent>>,
}

impl BudgetLedger {
    /// `dir`: where the ledger persists (None: memory only, a restart refills budgets).
    pub fn new(dir: Option<&Path>) -> Self {
        Self { dir: dir.map(Path::to_path_buf), spent: Mutex::new(HashMap::new()) }
    }

    fn path(&self, model: &str, id: KeyId) -> Option<PathBuf> {
        // Model names are directory names in a repository, but keep the path ours.
        let safe = !model.is_empty()
            && model.len() <= 128
            && model.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
            && !model.starts_with('-');
        let m = if safe { model.to_string() } else { format!("x{}", hex(model.as_bytes())) };
        self.dir.as_ref().map(|d| d.join(m).join(format!("{id}.eps")))
    }

    fn load(&self, model: &str, id: KeyId) -> Result<Spent, BudgetError> {
        let Some(path) = self.path(model, id) else { return Ok(Spent::default()) };
        let text = match std::fs::read(&path) {
            Ok(t) if t.len() <= 256 => t,
            Ok(_) => return Err(BudgetError::Ledger { path, source: io::Error::other("longer than a ledger entry") }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Spent::default()),
            Err(source) => return Err(BudgetError::Ledger { path, source }),
        };
        parse(&text).ok_or_else(|| BudgetError::Ledger { path, source: io::Error::other("not a ledger entry") })
    }

    fn store(&self, model: &str, id: KeyId, s: Spent) -> Result<(), BudgetError> {
        let Some(path) = self.path(model, id) else { return Ok(()) };
        write_atomic(&path, format!("{:e} {:e} {}\n", s.epsilon, s.delta, s.queries).as_bytes())
            .map_err(|source| BudgetError::Ledger { path, source })
    }

    /// What `id` has spent on `model` (from the file the first time).
    pub fn spent(&self, model: &str, id: KeyId) -> Result<Spent, BudgetError> {
        let mut g = self.spent.lock().unwrap_or_else(|e| e.into_inner());
        self.entry(&mut g, model, id).copied()
    }

    fn entry<'a>(
        &self,
        g: &'a mut HashMap<(String, KeyId), Spent>,
        model: &str,
        id: KeyId,
    ) -> Result<&'a mut Spent, BudgetError> {
        let key = (model.to_string(), id);
        if !g.contains_key(&key) {
            let s = self.load(model, id)?;
            g.insert(key.clone(), s);
        }
        Ok(g.get_mut(&key).expect("just inserted"))
    }

    /// Refuses when one more query of `dp` would exceed `budget`.
    pub fn check(&self, model: &str, id: KeyId, dp: &OutputDp, budget: Option<f64>) -> Result<Spent, BudgetError> {
        let s = self.spent(model, id)?;
        match budget {
            Some(b) if s.epsilon + dp.epsilon > b + SLACK => Err(BudgetError::Exhausted {
                model: model.into(),
                key_id: id,
                spent: s.epsilon,
                budget: b,
                epsilon: dp.epsilon,
            }),
            _ => Ok(s),
        }
    }

    /// Charges one query, atomically with the check; persisted before it returns.
    pub fn charge(&self, model: &str, id: KeyId, dp: &OutputDp, budget: Option<f64>) -> Result<DpAccount, BudgetError> {
        let mut g = self.spent.lock().unwrap_or_else(|e| e.into_inner());
        let e = self.entry(&mut g, model, id)?;
        if let Some(b) = budget {
            if e.epsilon + dp.epsilon > b + SLACK {
                return Err(BudgetError::Exhausted {
                    model: model.into(),
                    key_id: id,
                    spent: e.epsilon,
                    budget: b,
                    epsilon: dp.epsilon,
                });
            }
        }
        let next = Spent { epsilon: e.epsilon + dp.epsilon, delta: e.delta + dp.delta, queries: e.queries + 1 };
        // On disk first: an answer never leaves with its cost unrecorded.
        self.store(model, id, next)?;
        *e = next;
        Ok(DpAccount {
            epsilon_query: dp.epsilon,
            epsilon_spent: next.epsilon,
            delta_spent: next.delta,
            epsilon_budget: budget,
        })
    }
}

fn parse(text: &[u8]) -> Option<Spent> {
    let s = std::str::from_utf8(text).ok()?;
    let mut it = s.split_whitespace();
    let epsilon: f64 = it.next()?.parse().ok()?;
    let delta: f64 = it.next()?.parse().ok()?;
    let queries: u64 = it.next()?.parse().ok()?;
    (it.next().is_none() && epsilon.is_finite() && epsilon >= 0.0 && delta.is_finite() && delta >= 0.0)
        .then_some(Spent { epsilon, delta, queries })
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Write to a temporary file of our own, fsync, rename over the entry, fsync the directory.
fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let dir = path.parent().expect("ledger paths have a directory");
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(".{}.{}.tmp", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed)));
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    drop(f);
    if let Err(e) = std::fs::rename(&tmp, path) {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// The noise a DP model's answers get, and where.
pub struct DpNoise {
    pub config: OutputDp,
    /// the model name the ledger charges
    pub model: String,
    /// the budget in force (the model's, or the serving config's override)
    pub budget: Option<f64>,
    /// for each output element: (ciphertext, slot)
    slots: Vec<(u32, u32)>,
    multiplier: f64,
    slot_count: usize,
    encoder: Encoder,
    sampler: Mutex<Sampler>,
}

impl DpNoise {
    pub fn new(params: &Parameters, model: &str, config: OutputDp, slots: Vec<(u32, u32)>, multiplier: f64) -> Self {
        let budget = config.budget;
        Self {
            config,
            model: model.into(),
            budget,
            slots,
            multiplier,
            slot_count: params.slots(),
            encoder: Encoder::new(params),
            // σ here is the encryption-error width, unused: only the exact samplers are called.
            sampler: Mutex::new(Sampler::new(3.2)),
        }
    }

    pub fn slots(&self) -> &[(u32, u32)] {
        &self.slots
    }

    pub fn multiplier(&self) -> f64 {
        self.multiplier
    }

    /// One integer draw in lattice steps.
    pub fn sample(&self) -> i64 {
        let mut s = self.sampler.lock().unwrap_or_else(|e| e.into_inner());
        match self.config.mechanism {
            DpMechanism::Gaussian => s.discrete_gaussian(self.config.noise_param, 1),
            DpMechanism::Laplace => s.discrete_laplace(self.config.noise_param),
        }
    }

    /// Adds fresh noise to every output element of `outs` (in place).
    pub fn add(&self, eval: &Evaluator, outs: &mut [Ciphertext]) -> Result<(), ckks::Error> {
        let gamma = self.config.granularity();
        let half = self.slot_count;
        let mut per_ct: Vec<Option<Vec<f64>>> = vec![None; outs.len()];
        for &(c, j) in &self.slots {
            let (c, j) = (c as usize, j as usize);
            if c >= outs.len() || j >= half {
                continue;
            }
            let v = per_ct[c].get_or_insert_with(|| vec![0.0; half]);
            v[j] += self.sample() as f64 * gamma / self.multiplier;
        }
        for (ct, noise) in outs.iter_mut().zip(per_ct) {
            let Some(noise) = noise else { continue };
            let pt = self.encoder.encode(&noise, ct.level(), ct.scale())?;
            *ct = eval.add_plain(ct, &pt)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dp(budget: Option<f64>) -> OutputDp {
        OutputDp::calibrate(0.5, 1e-6, 1.0, 1.0, (-2.0, 2.0), 2, budget).unwrap()
    }

    #[test]
    fn budget_refuses_after_k_queries_and_survives_a_restart() {
        let d = tempfile::tempdir().unwrap();
        let id = KeyId([7; 32]);
        let cfg = dp(Some(2.0));
        let ledger = BudgetLedger::new(Some(d.path()));
        for q in 1..=4 {
            let a = ledger.charge("m", id, &cfg, cfg.budget).unwrap();
            assert!((a.epsilon_spent - 0.5 * q as f64).abs() < 1e-12);
            assert!((a.epsilon_remaining() - (2.0 - 0.5 * q as f64)).abs() < 1e-12);
        }
        assert!(matches!(ledger.check("m", id, &cfg, cfg.budget), Err(BudgetError::Exhausted { .. })));
        let e = ledger.charge("m", id, &cfg, cfg.budget).unwrap_err();
        assert!(e.to_string().contains("budget"), "{e}");
        // Another model, another key id: their own budgets.
        assert!(ledger.charge("other", id, &cfg, cfg.budget).is_ok());
        assert!(ledger.charge("m", KeyId([8; 32]), &cfg, cfg.budget).is_ok());
        // A new process reading the same directory remembers.
        let again = BudgetLedger::new(Some(d.path()));
        assert_eq!(again.spent("m", id).unwrap(), Spent { epsilon: 2.0, delta: 4e-6, queries: 4 });
        assert!(again.charge("m", id, &cfg, cfg.budget).is_err());
        // A larger budget (the serving config's override) lets it go on.
        assert!(again.charge("m", id, &cfg, Some(3.0)).is_ok());
        // Memory only: a restart forgets.
        let mem = BudgetLedger::new(None);
        mem.charge("m", id, &cfg, None).unwrap();
        assert_eq!(BudgetLedger::new(None).spent("m", id).unwrap(), Spent::default());
        // A damaged entry fails closed, naming the file.
        std::fs::write(d.path().join("m").join(format!("{id}.eps")), b"garbage").unwrap();
        let e = BudgetLedger::new(Some(d.path())).charge("m", id, &cfg, None).unwrap_err();
        assert!(matches!(e, BudgetError::Ledger { .. }), "{e}");
        // Odd model names stay inside the directory.
        let p = ledger.path("../../etc", id).unwrap();
        assert!(p.starts_with(d.path()) && !p.to_string_lossy().contains(".."));
    }
}
