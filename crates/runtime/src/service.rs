//! One request, as every front end sees it: registered or inline evaluation keys, a
//! list of serialized ciphertexts in, a list out. The Triton backend and
//! `heinfer serve` both call `Service::infer`, so the protocol's semantics (and its
//! errors) are implemented once. No network code here.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use ckks::wire::peek_header;
use ckks::{read_any_ciphertext_limited, Ciphertext, EvaluationKeys, Evaluator, KeyId, Parameters, WireError};
use thiserror::Error;

use crate::dp::{BudgetError, DpAccount, DpNoise};
use crate::keystore::{KeyStore, KeyStoreError, Requirements};

/// A compiled model the runtime can evaluate on ciphertexts.
pub trait Executable: Send + Sync {
    fn params(&self) -> &Parameters;
    /// How many ciphertexts one request carries.
    fn input_count(&self) -> usize;
    /// Rotation steps the evaluation uses; the key bundle must cover them.
    fn rotation_steps(&self) -> &[i64];
    /// Whether ciphertext products (and so a relinearization key) are needed.
    fn needs_relinearization(&self) -> bool;
    /// The highest level each rotation step, and any product, is used at: keys made for
    /// lower levels are refused at registration. Executables that do not say keep this
    /// default (an under-level key then fails at evaluation, `Error::KeyBelowLevel`).
    fn key_levels(&self) -> (Vec<(i64, usize)>, Option<usize>) {
        (Vec::new(), None)
    }
    fn run(
        &self,
        eval: &Evaluator,
        keys: &EvaluationKeys,
        inputs: Vec<Ciphertext>,
    ) -> Result<Vec<Ciphertext>, RunError>;
    /// [`Executable::run`] that gives up between operations once `cancel` is set (the
    /// client went away or its deadline passed), so abandoned work frees its thread
    /// and memory early. Executables that cannot stop part-way keep this default.
    fn run_cancellable(
        &self,
        eval: &Evaluator,
        keys: &EvaluationKeys,
        inputs: Vec<Ciphertext>,
        _cancel: &AtomicBool,
    ) -> Result<Vec<Ciphertext>, RunError> {
        self.run(eval, keys, inputs)
    }
    /// Public features the model takes in clear (`PLAIN_INPUT`); 0: none.
    fn public_features(&self) -> usize {
        0
    }
    /// The compact query the model also takes in place of its input ciphertext, if any.
    fn compact_input(&self) -> Option<&model::CompactInput> {
        None
    }
    /// A compact ring query's first layer, applied before packing (`model::first_layer`).
    fn first_layer(&self) -> Option<&ckks::LinearLeaves> {
        None
    }
    /// Where each answer is cut before it is sent (`model::answer`); None: whole.
    fn answer(&self) -> Option<ckks::AnswerShape> {
        None
    }
    /// [`Executable::run_cancellable`] with the public features' values.
    fn run_with_plain(
        &self,
        _eval: &Evaluator,
        _keys: &EvaluationKeys,
        _inputs: Vec<Ciphertext>,
        _plain: &[f64],
        _cancel: &AtomicBool,
    ) -> Result<Vec<Ciphertext>, RunError> {
        Err(RunError::Public("this model takes no public features".into()))
    }
}

/// A second layout served beside the program (layout T: the `throughput` module), told
/// apart by the parameters its ciphertexts and keys are made under.
pub trait OtherLayout: Send + Sync {
    fn params(&self) -> &Parameters;
    /// Elements of `ENCRYPTED_INPUT` one request of this layout carries.
    fn input_count(&self) -> usize;
    /// Whether these wire bytes (a ciphertext or a key bundle) are this layout's.
    fn owns(&self, bytes: &[u8]) -> bool;
    /// Registers a bundle of this layout.
    fn register(&self, store: &KeyStore, bundle: &[u8], key_id: Option<KeyId>) -> Result<KeyId, ServiceError>;
    /// One request of this layout, or one part of a batch (`batch_part`: its
    /// `BATCH_PART`, `crate::assembly`); `l_params`: the program's, to name a mismatched key.
    fn infer(
        &self,
        store: &KeyStore,
        l_params: &Parameters,
        req: Request<'_>,
        batch_part: Option<&[u8]>,
        cancel: &AtomicBool,
    ) -> Result<Response, ServiceError>;
    /// Bounds of the batches held for their parts (they are dropped as they stand).
    fn set_batch_limits(&self, limits: crate::assembly::Limits);
}

/// A failure inside an evaluation (the inputs passed every check before it). The
/// engine's error is kept whole, so a front end can tell its client which check failed.
#[derive(Debug, Error)]
pub enum RunError {
    #[error(transparent)]
    Ckks(#[from] ckks::Error),
    #[error("no relinearization key")]
    NoRelinKey,
    #[error("input {0} missing or used twice")]
    Input(u32),
    #[error("value {0} is not available (freed or never computed)")]
    Value(u32),
    #[error("output value {0} was not computed")]
    Output(u32),
    /// the caller set the cancellation flag ([`Executable::run_cancellable`])
    #[error("cancelled after {done} of {total} operations")]
    Cancelled { done: usize, total: usize },
    /// the public features' values cannot be used (see [`crate::public`])
    #[error("PLAIN_INPUT: {0}")]
    Public(String),
}

#[derive(Debug, Error)]
pub enum ServiceError {
    #[error("missing input tensor {0}")]
    MissingInput(&'static str),
    #[error("KEY_ID {given} does not name the EVALUATION_KEYS sent with it (their key id is {actual})")]
    KeyIdMismatch { given: KeyId, actual: KeyId },
    #[error(transparent)]
    Keys(#[from] KeyStoreError),
    #[error("the key bundle cannot serve this model: {0}")]
    IncompleteKeys(String),
    #[error("ENCRYPTED_INPUT holds {got} ciphertexts; this model takes {expected}")]
    WrongCount { expected: usize, got: usize },
    #[error("ENCRYPTED_INPUT[{index}] is not a valid ciphertext for this model: {source}")]
    Malformed { index: usize, source: WireError },
    #[error("ENCRYPTED_INPUT[{index}] is at level {level} with scale 2^{log_scale:.2}; this model expects level {want_level} and scale 2^{want_log_scale:.2}")]
    WrongLevel { index: usize, level: usize, log_scale: f64, want_level: usize, want_log_scale: f64 },
    #[error("evaluation failed: {0}")]
    Run(#[from] RunError),
    /// the key id's privacy budget on this model is spent (`Exhausted`: HTTP 429, gRPC
    /// RESOURCE_EXHAUSTED), or its ledger cannot be read or written
    #[error(transparent)]
    Budget(#[from] BudgetError),
    /// a key or ciphertext of another scheme than the model's
    #[error("{0}")]
    WrongScheme(String),
    #[error("EVALUATION_KEYS is not a Paillier public key this model accepts: {0}")]
    PaillierKey(paillier::PaillierError),
    #[error("ENCRYPTED_INPUT[{index}] is not a valid Paillier ciphertext batch for this model and key: {source}")]
    Paillier { index: usize, source: paillier::PaillierError },
    #[error("ENCRYPTED_INPUT is not an LWE query this model accepts: {0}")]
    Lwe(lwe::LweError),
    /// a re-randomising LWE model: the public key sent, or the lack of one
    #[error("{0}")]
    LweKey(String),
    /// `PLAIN_INPUT` missing for a model with public features, sent to one without, or
    /// of the wrong shape or type
    #[error("{0}")]
    PlainInput(#[from] crate::public::PlainInputError),
    /// a `BATCH_PART` that cannot be taken (`crate::assembly`)
    #[error(transparent)]
    Batch(#[from] crate::assembly::AssemblyError),
    /// a request merged with others into one evaluation (layout M) that failed for them
    /// all, or for another request's reason
    #[error("the merged evaluation this request was part of failed: {0}")]
    Merged(String),
}

impl ServiceError {
    /// Whether this is a spent privacy budget (front ends answer 429 / RESOURCE_EXHAUSTED).
    pub fn is_budget_exhausted(&self) -> bool {
        matches!(self, ServiceError::Budget(BudgetError::Exhausted { .. }))
    }
    /// Whether the same request may succeed later: a bound that is full for now (the
    /// pending batches' memory). Front ends answer 503 / UNAVAILABLE, as for their own bounds.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            ServiceError::Batch(
                crate::assembly::AssemblyError::Full { .. } | crate::assembly::AssemblyError::KeyFull { .. }
            )
        )
    }
}

/// What a front end hands over for one request.
#[derive(Default)]
pub struct Request<'a> {
    pub ciphertexts: Vec<&'a [u8]>,
    /// hex SHA-256 of a registered bundle
    pub key_id: Option<&'a [u8]>,
    /// a bundle to register (idempotent) and use
    pub evaluation_keys: Option<&'a [u8]>,
}

pub struct Response {
    pub ciphertexts: Vec<Vec<u8>>,
    pub key_id: KeyId,
    /// for models with differentially private outputs: what this answer cost the key id
    pub dp: Option<DpAccount>,
}

/// A CKKS model being served, with the key store it shares with other models.
pub struct CkksService {
    exe: Arc<dyn Executable>,
    keys: Arc<KeyStore>,
    eval: Evaluator,
    /// level and scale the inputs must have, if the model fixes them
    input_level: Option<(usize, f64)>,
    /// what a bundle registered for this model must hold, exactly
    needs: Requirements,
    /// noise and budget of differentially private outputs, if the model has them
    dp: Option<Arc<DpNoise>>,
    /// circuit privacy: every answer flooded under the client's public key
    flooding: Option<Arc<crate::circuit_privacy::Flooding>>,
    /// layout T (a batch per request), if the model was compiled with it
    throughput: Option<Arc<dyn OtherLayout>>,
    /// layout M (B samples per ciphertext, `model::multi`): a service of its own under
    /// the same parameters, run for requests whose bundle is layout M's
    multi: Option<Arc<CkksService>>,
    /// layout M's samples per ciphertext (B), when it has one
    blocks: usize,
}

impl CkksService {
    pub fn new(exe: Arc<dyn Executable>, keys: Arc<KeyStore>) -> Self {
        let eval = Evaluator::new(exe.params());
        let (rotation_levels, relin_level) = exe.key_levels();
        let mut needs = Requirements::for_rotations(exe.params(), exe.rotation_steps(), exe.needs_relinearization())
            .with_levels(exe.params(), &rotation_levels, relin_level);
        if let Some(c) = exe.compact_input() {
            // Made at the input's level, which is the chain's top.
            needs = needs.with_elements(&c.galois_elements, exe.params().max_level());
        }
        Self {
            exe,
            keys,
            eval,
            input_level: None,
            needs,
            dp: None,
            flooding: None,
            throughput: None,
            multi: None,
            blocks: 0,
        }
    }

    /// Requires inputs at this level and scale (the client spec says which).
    pub fn with_input_level(mut self, level: usize, scale: f64) -> Self {
        self.input_level = Some((level, scale));
        self
    }

    /// Adds differentially private noise to every answer and charges each key id's
    /// budget (the model's client spec says how much and where).
    pub fn with_output_dp(mut self, noise: DpNoise) -> Self {
        self.dp = Some(Arc::new(noise));
        self
    }

    /// Floods every answer's noise under the client's public key (circuit privacy);
    /// bundles without a public key are then refused.
    pub fn with_circuit_privacy(mut self, flooding: crate::circuit_privacy::Flooding) -> Self {
        self.needs.public_key = true;
        self.flooding = Some(Arc::new(flooding));
        self
    }

    /// Serves layout T too: requests whose ciphertexts are under its parameters.
    pub fn with_throughput(mut self, t: Arc<dyn OtherLayout>) -> Self {
        self.throughput = Some(t);
        self
    }

    /// Serves layout M too (`model::multi`): requests whose bundle holds exactly its keys.
    /// Layouts L and M share the parameters; their Galois keys differ (the compiler
    /// sees to it), so a bundle is one layout's and says which program to run.
    pub fn with_multi(mut self, m: CkksService, blocks: usize) -> Self {
        self.multi = Some(Arc::new(m));
        self.blocks = blocks;
        self
    }

    /// Layout M's service, if the model has it.
    pub fn multi(&self) -> Option<&CkksService> {
        self.multi.as_deref()
    }

    /// Layout T, if the model has it.
    pub fn throughput(&self) -> Option<&dyn OtherLayout> {
        self.throughput.as_deref()
    }

    /// The circuit-privacy flooding this service adds, if any.
    pub fn circuit_privacy(&self) -> Option<&crate::circuit_privacy::Flooding> {
        self.flooding.as_deref()
    }

    /// Overrides the model's privacy budget per key id (a serving config's
    /// `heinfer_dp_budget`); no effect on a model without output DP.
    pub fn set_dp_budget(&mut self, budget: Option<f64>) {
        if let Some(dp) = self.dp.take() {
            let mut d = Arc::try_unwrap(dp).unwrap_or_else(|a| {
                DpNoise::new(self.exe.params(), &a.model, a.config.clone(), a.slots().to_vec(), a.multiplier())
            });
            d.budget = budget;
            self.dp = Some(Arc::new(d));
        }
    }

    /// The output-DP noise this service adds, if any.
    pub fn output_dp(&self) -> Option<&DpNoise> {
        self.dp.as_deref()
    }

    pub fn executable(&self) -> &Arc<dyn Executable> {
        &self.exe
    }

    pub fn key_store(&self) -> &Arc<KeyStore> {
        &self.keys
    }

    /// Registers a bundle for this model's parameters. It must hold exactly the keys
    /// the model uses; nothing of a refused bundle is kept.
    pub fn register(&self, bundle: &[u8]) -> Result<KeyId, ServiceError> {
        if bundle.starts_with(&paillier::MAGIC) {
            return Err(paillier_key_sent());
        }
        if let Some(t) = self.throughput.as_ref().filter(|t| t.owns(bundle)) {
            return t.register(&self.keys, bundle, None);
        }
        self.register_l_or_m(bundle, None).map(|(id, _)| id)
    }

    /// Registers a bundle as layout L's or, where the model has one, layout M's (the keys
    /// say which: they differ in their Galois elements), parsing it once. Returns the key id
    /// and layout M's service when the bundle is M's; else why it is neither.
    fn register_l_or_m(
        &self,
        bundle: &[u8],
        given: Option<KeyId>,
    ) -> Result<(KeyId, Option<&CkksService>), ServiceError> {
        let Some(m) = self.multi.as_deref() else {
            return self.register_as(bundle, given).map(|id| (id, None));
        };
        let layouts = [(&self.needs, self.exe.rotation_steps()), (&m.needs, m.exe.rotation_steps())];
        match self.keys.register_for_any(self.exe.params(), bundle, given, &layouts) {
            Ok((id, i)) => Ok((id, (i == 1).then_some(m))),
            Err(mut e) if e.len() == 2 => {
                let (me, le) = (e.pop().unwrap(), e.pop().unwrap());
                Err(neither_layout(service_key_error(le), service_key_error(me)))
            }
            Err(mut e) => Err(service_key_error(e.remove(0))),
        }
    }

    /// Whether `keys` are exactly this layout's (what registration checks).
    fn owns_keys(&self, keys: &EvaluationKeys) -> bool {
        self.needs.check(keys, self.exe.rotation_steps()).is_ok()
    }

    fn register_as(&self, bundle: &[u8], key_id: Option<KeyId>) -> Result<KeyId, ServiceError> {
        let steps = self.exe.rotation_steps();
        self.keys.register_for(self.exe.params(), bundle, key_id, &self.needs, steps).map_err(service_key_error)
    }

    fn check_coverage(&self, keys: &EvaluationKeys) -> Result<(), ServiceError> {
        if self.exe.needs_relinearization() && keys.relin.is_none() {
            return Err(ServiceError::IncompleteKeys("no relinearization key".into()));
        }
        if self.flooding.is_some() && keys.public.is_none() {
            return Err(ServiceError::IncompleteKeys(
                "no public key, and this model is compiled with circuit privacy; register a bundle made from its \
                 client spec"
                    .into(),
            ));
        }
        if let Some(shape) = self.exe.answer().filter(|a| a.folds(self.exe.params())) {
            match &keys.answer {
                Some(k) if k.log_n() == shape.log_n => {}
                Some(k) => {
                    return Err(ServiceError::IncompleteKeys(format!(
                    "the bundle's answer key folds to degree 2^{}, but this model's answers fold to 2^{}; register a \
                         bundle made from its client spec",
                    k.log_n(),
                    shape.log_n
                )))
                }
                None => return Err(ServiceError::IncompleteKeys(
                    "no answer key, and this model sends compact answers folded into a subring (compile --answer); \
                         register a bundle made from its client spec"
                        .into(),
                )),
            }
        }
        let missing: Vec<i64> = self.exe.rotation_steps().iter().copied().filter(|&s| !keys.has_rotation(s)).collect();
        if !missing.is_empty() {
            return Err(ServiceError::IncompleteKeys(format!("no Galois keys for rotation steps {missing:?}")));
        }
        Ok(())
    }

    pub fn infer(&self, req: Request<'_>) -> Result<Response, ServiceError> {
        self.infer_cancellable(req, &AtomicBool::new(false))
    }

    /// [`Service::infer`] whose evaluation stops between operations once `cancel` is
    /// set; the caller knows it cancelled and reads the error that way.
    pub fn infer_cancellable(&self, req: Request<'_>, cancel: &AtomicBool) -> Result<Response, ServiceError> {
        self.infer_parts(req, None, None, cancel)
    }

    /// [`CkksService::infer_cancellable`] with the request's `PLAIN_INPUT` (the public
    /// features' values, already read by the front end: [`crate::public::PlainInput`])
    /// and `BATCH_PART` (a part of a layout-T batch sent in several requests:
    /// `crate::assembly`), where it has them.
    pub fn infer_parts(
        &self,
        req: Request<'_>,
        plain: Option<crate::public::PlainInput>,
        batch_part: Option<&[u8]>,
        cancel: &AtomicBool,
    ) -> Result<Response, ServiceError> {
        if let Some(t) = self.throughput.as_ref().filter(|t| req.ciphertexts.first().is_some_and(|b| t.owns(b))) {
            crate::public::check(plain, 0)?;
            return t.infer(&self.keys, self.exe.params(), req, batch_part, cancel);
        }
        if batch_part.is_some() {
            return Err(crate::assembly::AssemblyError::NotLayoutT(if self.throughput.is_some() {
                "ENCRYPTED_INPUT is not a layout-T batch of this model"
            } else {
                "this model was compiled without layout T"
            })
            .into());
        }
        let plain = crate::public::check(plain, self.exe.public_features())?;
        let params = self.exe.params();
        let id = match (req.evaluation_keys, req.key_id) {
            // A KEY_ID sent with the bundle must name it; checked before the bundle is
            // stored: a mismatch means the client sent something else than it meant.
            (Some(bundle), _) if bundle.starts_with(&paillier::MAGIC) => return Err(paillier_key_sent()),
            (Some(bundle), _) if self.throughput.as_ref().is_some_and(|t| t.owns(bundle)) => {
                return Err(layout_l_with_t_keys())
            }
            (Some(bundle), given) => {
                let given = given.map(parse_key_id).transpose()?;
                match self.register_l_or_m(bundle, given)? {
                    (_, Some(m)) => return m.infer_parts(req, None, None, cancel),
                    (id, None) => id,
                }
            }
            (None, Some(g)) => parse_key_id(g)?,
            (None, None) => return Err(ServiceError::MissingInput("KEY_ID")),
        };
        let keys = l_keys(&self.keys, params, self.throughput.as_deref(), id)?;
        if let Some(m) = self.multi.as_ref().filter(|m| !self.owns_keys(&keys) && m.owns_keys(&keys)) {
            return m.infer_parts(req, None, None, cancel);
        }
        self.check_coverage(&keys)?;
        if let Some(dp) = &self.dp {
            // Refused before any work; charged (atomically, again checked) after.
            self.keys.budgets().check(&dp.model, id, &dp.config, dp.budget)?;
        }
        if req.ciphertexts.is_empty() {
            return Err(ServiceError::MissingInput("ENCRYPTED_INPUT"));
        }
        if req.ciphertexts.len() != self.exe.input_count() {
            return Err(ServiceError::WrongCount { expected: self.exe.input_count(), got: req.ciphertexts.len() });
        }
        let inputs = self.read_inputs(&req.ciphertexts, &keys)?;
        let out = match &plain {
            Some(x) => self.exe.run_with_plain(&self.eval, &keys, inputs, x, cancel)?,
            None => self.exe.run_cancellable(&self.eval, &keys, inputs, cancel)?,
        };
        self.finish(out, id, &keys)
    }

    /// Layout M's samples per ciphertext (B), where the model has layout M: the model
    /// merges same-key requests ([`CkksService::infer_merged`]). Layout M has no output
    /// DP, circuit privacy, public features or compact queries (`model::multi`), so one
    /// evaluation can answer several requests.
    pub fn merged_blocks(&self) -> Option<usize> {
        self.multi.as_ref().map(|_| self.blocks)
    }

    /// Several layout-M requests under ONE key id, each holding its samples in blocks no
    /// other of them uses (zeros elsewhere), run as one evaluation: their ciphertexts are
    /// added and the network runs once. Each request gets the whole answer (every block is
    /// under the same key) and reads its own blocks. A request that cannot be read gets
    /// its own error and is left out of the sum; the others go on.
    ///
    /// The caller keeps the blocks apart (`BLOCK`; the Triton backend's batching strategy):
    /// two requests on one block would add their samples, which no check here can see.
    pub fn infer_merged(
        &self,
        key_id: &[u8],
        requests: &[Vec<&[u8]>],
        cancel: &AtomicBool,
    ) -> Vec<Result<Response, ServiceError>> {
        let all = |e: ServiceError| -> Vec<Result<Response, ServiceError>> {
            let msg = e.to_string();
            std::iter::once(Err(e)).chain((1..requests.len()).map(|_| Err(ServiceError::Merged(msg.clone())))).collect()
        };
        let id = match parse_key_id(key_id) {
            Ok(id) => id,
            Err(e) => return all(e),
        };
        let keys = match l_keys(&self.keys, self.exe.params(), self.throughput.as_deref(), id) {
            Ok(k) => k,
            Err(e) => return all(e),
        };
        let Some(m) = self.multi.as_ref().filter(|m| m.owns_keys(&keys)) else {
            return all(ServiceError::WrongScheme(format!(
                "requests are merged in layout M only, and KEY_ID {id} names a bundle of another layout (or this \
                 model has no layout M); register a layout-M bundle (heinfer.MultiClient)"
            )));
        };
        if let Err(e) = m.check_coverage(&keys) {
            return all(e);
        }
        let mut results: Vec<Option<Result<Response, ServiceError>>> = (0..requests.len()).map(|_| None).collect();
        let mut sum: Option<Vec<Ciphertext>> = None;
        for (r, cts) in requests.iter().enumerate() {
            let read = if cts.len() != m.exe.input_count() {
                Err(ServiceError::WrongCount { expected: m.exe.input_count(), got: cts.len() })
            } else {
                m.read_inputs(cts, &keys)
            };
            match (read, sum.as_mut()) {
                (Err(e), _) => results[r] = Some(Err(e)),
                (Ok(v), None) => sum = Some(v),
                (Ok(v), Some(acc)) => {
                    // Same level and scale (read_inputs checked both): the sum cannot fail.
                    for (a, b) in acc.iter_mut().zip(&v) {
                        if let Err(e) = m.eval.add_assign(a, b) {
                            results[r] = Some(Err(RunError::Ckks(e).into()));
                            break;
                        }
                    }
                }
            }
        }
        let answer = sum.map(|inputs| {
            m.exe
                .run_cancellable(&m.eval, &keys, inputs, cancel)
                .map_err(ServiceError::from)
                .and_then(|out| m.finish(out, id, &keys))
        });
        results
            .into_iter()
            .map(|r| match (r, &answer) {
                (Some(e), _) => e,
                (None, Some(Ok(a))) => Ok(Response { ciphertexts: a.ciphertexts.clone(), key_id: id, dp: None }),
                (None, Some(Err(e))) => Err(ServiceError::Merged(e.to_string())),
                (None, None) => Err(ServiceError::Merged("no request of the merge could be read".into())),
            })
            .collect()
    }

    /// The request's ciphertexts (or compact queries) → the program's inputs, each
    /// checked against the model (kind, layout, level and scale) before it is used.
    fn read_inputs(&self, cts: &[&[u8]], keys: &EvaluationKeys) -> Result<Vec<Ciphertext>, ServiceError> {
        let params = self.exe.params();
        let max_level = self.input_level.map(|(l, _)| l);
        cts.iter()
            .enumerate()
            .map(|(index, b)| {
                if b.starts_with(&paillier::MAGIC) {
                    return Err(ServiceError::WrongScheme(format!(
                        "ENCRYPTED_INPUT[{index}] is a Paillier ciphertext, but this model is CKKS: encrypt \
                         with a key made for its client spec"
                    )));
                }
                if peek_header(b).is_ok_and(|h| h.kind == ckks::wire::Kind::LweQuery as u8) {
                    return self.unpack_compact(index, b, keys);
                }
                if peek_header(b).is_ok_and(|h| h.kind == ckks::wire::Kind::RingQuery as u8) {
                    return self.unpack_ring(index, b, keys);
                }
                if self.exe.first_layer().is_some() {
                    // The program starts after the first layer: a ciphertext of the inputs
                    // is not what it reads.
                    return Err(ServiceError::WrongScheme(format!(
                        "ENCRYPTED_INPUT[{index}] is not a ring query, but this model takes its input only as a \
                         compact ring query (its first layer runs before the packing); make the query from its \
                         client spec"
                    )));
                }
                check_l_ciphertext(params, self.throughput.as_deref(), index, b)?;
                let ct = read_any_ciphertext_limited(params, b, max_level)
                    .map_err(|source| ServiceError::Malformed { index, source })?;
                if let Some((level, scale)) = self.input_level {
                    check_level(index, &ct, level, scale)?;
                }
                Ok(ct)
            })
            .collect()
    }

    /// The program's outputs → the answer: output-DP noise (charged to the key id),
    /// circuit privacy's flood, then the compact cut, in that order.
    fn finish(&self, mut out: Vec<Ciphertext>, id: KeyId, keys: &EvaluationKeys) -> Result<Response, ServiceError> {
        let mut account = None;
        if let Some(dp) = &self.dp {
            account = Some(self.keys.budgets().charge(&dp.model, id, &dp.config, dp.budget)?);
            dp.add(&self.eval, &mut out).map_err(RunError::Ckks)?;
        }
        if let Some(f) = &self.flooding {
            // Last: it hides the noise of everything before it, DP noise included.
            let pk = keys.public.as_ref().ok_or_else(|| ServiceError::IncompleteKeys("no public key".into()))?;
            f.flood(&self.eval, pk, &mut out).map_err(RunError::Ckks)?;
        }
        let ciphertexts = match self.exe.answer() {
            // Last of all: the cut is a public function of the flooded answer.
            Some(shape) => out
                .iter()
                .map(|ct| Ok(ckks::CompactAnswer::from_ciphertext(ct, shape, keys.answer.as_ref())?.to_bytes()))
                .collect::<Result<Vec<_>, ckks::Error>>()
                .map_err(RunError::Ckks)?,
            None => out.iter().map(Ciphertext::to_bytes).collect(),
        };
        Ok(Response { ciphertexts, key_id: id, dp: account })
    }
}

impl CkksService {
    /// A compact query (`model::CompactInput`) → the input ciphertext it packs into.
    fn unpack_compact(&self, index: usize, bytes: &[u8], keys: &EvaluationKeys) -> Result<Ciphertext, ServiceError> {
        let Some(c) = self.exe.compact_input() else {
            return Err(ServiceError::WrongScheme(format!(
                "ENCRYPTED_INPUT[{index}] is a compact query, but this model was compiled without one (compile \
                 --query compact); send the ciphertext its client spec lays out"
            )));
        };
        if c.ring_values.is_some() {
            return Err(ServiceError::WrongScheme(format!(
                "ENCRYPTED_INPUT[{index}] is an LWE query, but this model takes its compact input as a ring query \
                 (its first layer runs before the packing); make the query from its client spec"
            )));
        }
        let period = c.period as usize;
        let q = ckks::LweQuery::from_bytes(self.exe.params(), bytes, period)
            .map_err(|source| ServiceError::Malformed { index, source })?;
        if let Some(want) = self.input_level {
            check_level_scale(index, (q.level(), q.scale()), want)?;
        }
        Ok(self.eval.unpack_query(&q, period, &keys.galois).map_err(RunError::Ckks)?)
    }

    /// A compact ring query (`model::first_layer`) → the first layer's output, packed: the
    /// program's input.
    fn unpack_ring(&self, index: usize, bytes: &[u8], keys: &EvaluationKeys) -> Result<Ciphertext, ServiceError> {
        let (Some(c), Some(layer)) = (self.exe.compact_input(), self.exe.first_layer()) else {
            return Err(ServiceError::WrongScheme(format!(
                "ENCRYPTED_INPUT[{index}] is a ring query, but this model does not apply its first layer before \
                 packing (compile --query compact --first-layer coefficients); send what its client spec lays out"
            )));
        };
        let q = ckks::LweQuery::ring_from_bytes(self.exe.params(), bytes, layer.inputs())
            .map_err(|source| ServiceError::Malformed { index, source })?;
        if q.count() != layer.inputs() {
            return Err(ServiceError::Malformed {
                index,
                source: ckks::WireError::OutOfRange {
                    field: "value count",
                    detail: format!("{} values; this model's first layer takes exactly {}", q.count(), layer.inputs()),
                },
            });
        }
        if let Some(want) = self.input_level {
            check_level_scale(index, (q.level(), q.scale()), want)?;
        }
        Ok(self.eval.unpack_linear(&q, layer, c.period as usize, &keys.galois).map_err(RunError::Ckks)?)
    }
}

/// A key store's refusal as the service reports it.
fn service_key_error(e: KeyStoreError) -> ServiceError {
    match e {
        KeyStoreError::Incomplete(what) => ServiceError::IncompleteKeys(what),
        KeyStoreError::KeyIdMismatch { given, actual } => ServiceError::KeyIdMismatch { given, actual },
        e => ServiceError::Keys(e),
    }
}

/// A bundle that is neither layout L's nor layout M's: both reasons when both are about
/// the keys it holds, else layout L's error.
fn neither_layout(l: ServiceError, m: ServiceError) -> ServiceError {
    match (l, m) {
        (ServiceError::IncompleteKeys(l), ServiceError::IncompleteKeys(m)) => {
            ServiceError::IncompleteKeys(format!("as layout L's bundle: {l}; as layout M's: {m}"))
        }
        (l, _) => l,
    }
}

fn paillier_key_sent() -> ServiceError {
    ServiceError::WrongScheme(
        "EVALUATION_KEYS holds a Paillier public key, but this model is CKKS: make its key bundle with \
         `heinfer keygen` on this model (or heinfer.Client)"
            .into(),
    )
}

/// Refuses an input ciphertext that is not at the level and scale the program expects
/// (both layouts' request paths).
pub(crate) fn check_level(index: usize, ct: &Ciphertext, level: usize, scale: f64) -> Result<(), ServiceError> {
    check_level_scale(index, (ct.level(), ct.scale()), (level, scale))
}

/// [`check_level`] for any input (a ciphertext, a compact query): `got` and `want` are
/// (level, scale).
fn check_level_scale(index: usize, got: (usize, f64), want: (usize, f64)) -> Result<(), ServiceError> {
    if got.0 != want.0 || ((got.1 - want.1) / want.1).abs() > 1e-9 {
        return Err(ServiceError::WrongLevel {
            index,
            level: got.0,
            log_scale: got.1.log2(),
            want_level: want.0,
            want_log_scale: want.1.log2(),
        });
    }
    Ok(())
}

pub(crate) fn parse_key_id(raw: &[u8]) -> Result<KeyId, ServiceError> {
    let s = std::str::from_utf8(raw)
        .map_err(|_| KeyStoreError::BadKeyId(WireError::OutOfRange { field: "key id", detail: "not UTF-8".into() }))?;
    Ok(KeyId::parse(s).map_err(KeyStoreError::BadKeyId)?)
}

/// A layout-T bundle sent with a layout-L request.
fn layout_l_with_t_keys() -> ServiceError {
    ServiceError::WrongScheme(
        "layout mismatch: EVALUATION_KEYS is a layout-T bundle but ENCRYPTED_INPUT is not a layout-T batch; send \
         the layout-L bundle with layout-L ciphertexts (or encrypt the batch in layout T)"
            .into(),
    )
}

/// The layout-L bundle `id`, or a layout-mismatch error when `id` names a layout-T one.
fn l_keys(
    store: &KeyStore,
    params: &Parameters,
    t: Option<&dyn OtherLayout>,
    id: KeyId,
) -> Result<Arc<EvaluationKeys>, ServiceError> {
    match store.get(params, id) {
        Err(KeyStoreError::UnknownKey(_)) if t.is_some_and(|t| store.get(t.params(), id).is_ok()) => {
            Err(ServiceError::WrongScheme(format!(
                "layout mismatch: KEY_ID {id} names this model's layout-T key bundle, but ENCRYPTED_INPUT is not a \
                 layout-T batch; send the layout-L bundle's key id with layout-L ciphertexts"
            )))
        }
        r => Ok(r?),
    }
}

/// Refuses, with the layout named, a layout-T ciphertext in a layout-L request (other
/// foreign objects keep the wire's "other CKKS parameters" error).
fn check_l_ciphertext(
    params: &Parameters,
    t: Option<&dyn OtherLayout>,
    index: usize,
    bytes: &[u8],
) -> Result<(), ServiceError> {
    let Ok(h) = peek_header(bytes) else { return Ok(()) };
    match t {
        Some(t) if &h.fingerprint != params.fingerprint() && t.owns(bytes) => Err(ServiceError::WrongScheme(format!(
            "layout mismatch: ENCRYPTED_INPUT[{index}] is a layout-T ciphertext but ENCRYPTED_INPUT[0] is \
                 layout L; one request holds one layout"
        ))),
        _ => Ok(()),
    }
}
