//! One aggregation round: open (contributions summed as they arrive), then decrypting
//! (the sum published, one decryption share per participant), then done (the sum in the
//! clear) — or failed, with the reason, when too few contributed by the deadline.

use std::collections::{BTreeMap, BTreeSet};

use ckks::{Ciphertext, Encoder, Encryptor, Parameters, ParamsSpec, Plaintext, PublicKey};
use rlwe::multiparty::{ciphertext_digest, combine_decryption_shares, DecryptionShare};
use rlwe::ring::Poly;
use serde::{Deserialize, Serialize};

use crate::auth::{parse_key, verify};
use crate::error::AggregateError;

/// Container magic of a contribution (ciphertexts) and of a member's shares.
pub const CONTRIBUTION_MAGIC: &[u8; 4] = b"HEAC";
/// Container magic of a member's decryption shares, one per ciphertext of the sum.
pub const SHARES_MAGIC: &[u8; 4] = b"HEAS";

/// What the round's creator fixes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RoundConfig {
    /// Letters, digits, `-` and `_`, at most 64.
    pub id: String,
    /// The CKKS parameters of the collective key (checked at 128 bits).
    pub params: ParamsSpec,
    /// Values per contribution.
    pub length: usize,
    /// The scale contributions are encoded at (top level).
    pub scale: f64,
    /// Committee member id (≥ 1, its Shamir point) → its Ed25519 key, hex.
    pub committee: BTreeMap<u32, String>,
    /// Shares needed to decrypt.
    pub threshold: usize,
    /// Contributions needed for the round to decrypt at all.
    pub min_contributors: usize,
    /// After this (Unix seconds) the round closes with what arrived.
    pub deadline_unix_s: u64,
    /// The Ed25519 keys (hex) allowed to contribute, once each.
    pub contributors: Vec<String>,
    /// Exact integer sums: BGV with this plaintext modulus t (values are integers,
    /// coefficient-encoded, summed modulo t and read centered in (−t/2, t/2]); `scale`
    /// is then 1. Absent: CKKS at `scale`, real values.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plaintext_modulus: Option<u64>,
    /// Packed integer rounds: every value is an integer with |v| ≤ this bound, and each
    /// plaintext coefficient carries several values as digits (see [`Packing`]), so a
    /// contribution is several times smaller. Only with `plaintext_modulus`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_bound: Option<u64>,
}

/// How a packed integer round puts several values in one coefficient: value v travels
/// as the digit v + bound ∈ [0, 2·bound], `per_coefficient` digits of `width` bits each.
/// A digit's sum over every allowed contributor stays below 2^width (no carry into the
/// next digit) and the whole coefficient below 2^(width·per_coefficient) ≤ t (no wrap),
/// so digits are read back exactly and the offsets removed with the number of
/// contributions. A client that breaks its bound corrupts the sum — as any dishonest
/// value does — and the client library refuses to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Packing {
    /// Largest |value|.
    pub bound: u64,
    /// Bits per digit.
    pub width: u32,
    /// Digits per coefficient (≥ 1).
    pub per_coefficient: usize,
}

impl Packing {
    /// The digit width for values |v| ≤ `bound` summed over up to `contributors`: the
    /// bits of 2·bound·contributors.
    pub fn width(bound: u64, contributors: usize) -> Option<u32> {
        let top = (2 * bound as u128).checked_mul(contributors.max(1) as u128)?;
        let w = 128 - top.leading_zeros();
        (w <= 52).then_some(w.max(1))
    }

    /// Coefficients of `values` (integers, |v| ≤ bound, consecutive values share a
    /// coefficient; the last coefficient padded with zeros).
    pub fn pack(&self, values: &[i64]) -> Vec<i64> {
        values
            .chunks(self.per_coefficient)
            .map(|c| {
                c.iter()
                    .enumerate()
                    .fold(0i64, |acc, (j, &v)| acc + ((v + self.bound as i64) << (self.width as usize * j)))
            })
            .collect()
    }

    /// The values of a summed coefficient (in [0, t)) of `contributions` contributions.
    pub fn unpack(&self, coefficient: u64, contributions: usize, out: &mut Vec<f64>) {
        let mask = (1u64 << self.width) - 1;
        let offset = self.bound as i128 * contributions as i128;
        for j in 0..self.per_coefficient {
            let digit = (coefficient >> (self.width as usize * j)) & mask;
            out.push((digit as i128 - offset) as f64);
        }
    }
}

impl RoundConfig {
    /// The parameters contributions, keys and shares live under: the CKKS set, or the
    /// BGV set tagged with t (its own fingerprint: one is never read as the other).
    pub fn parameters(&self) -> Result<(Parameters, Option<bgv::Parameters>), AggregateError> {
        let refused = |e: String| AggregateError::Config(format!("parameters refused: {e}"));
        match self.plaintext_modulus {
            None => Ok((Parameters::from_spec(&self.params).map_err(|e| refused(e.to_string()))?, None)),
            Some(t) => {
                let b = bgv::Parameters::from_spec(&self.params, t).map_err(|e| refused(e.to_string()))?;
                Ok((b.rlwe().clone(), Some(b)))
            }
        }
    }

    /// Values one ciphertext holds: N/2 CKKS slots, or N BGV coefficients (times the
    /// digits per coefficient in a packed round).
    pub fn values_per_ciphertext(&self, params: &Parameters) -> usize {
        if self.plaintext_modulus.is_some() {
            params.n() * self.packing().map_or(1, |p| p.per_coefficient)
        } else {
            params.slots()
        }
    }

    /// A packed integer round's digits: `None` for unpacked rounds, and for a bound that
    /// leaves no digit room below t (which [`Round::create`] refuses).
    pub fn packing(&self) -> Option<Packing> {
        let (bound, t) = (self.value_bound?, self.plaintext_modulus?);
        let width = Packing::width(bound, self.contributors.len())?;
        let per_coefficient = (t.ilog2() / width) as usize;
        (per_coefficient >= 1).then_some(Packing { bound, width, per_coefficient })
    }

    /// For an integer round: whether shares smudged for 2^-`security_bits` leave the
    /// sum readable. Their noise u enters t·(c0 + Σh) as t·u, so t times the shares'
    /// total width must stay below Q/2 — else the sum comes out wrong, silently.
    pub fn check_integer_room(&self, params: &Parameters, security_bits: u32) -> Result<(), AggregateError> {
        let Some(t) = self.plaintext_modulus else { return Ok(()) };
        let bound = rlwe::multiparty::sum_noise_bound(params, self.committee.len(), self.contributors.len());
        let shares = security_bits as f64
            + (params.n() as f64).log2()
            + (bound.max(1) as f64).log2()
            + 1.0
            + (self.committee.len().max(1) as f64).log2();
        let need = (t as f64).log2() + shares + 2.0;
        let have = params.log_q_at(params.max_level());
        if need > have {
            return Err(AggregateError::Config(format!(
                "plaintext modulus 2^{:.1} with shares smudged for 2^-{security_bits} needs a modulus of 2^{need:.1}; \
                 these parameters have 2^{have:.1}: use a smaller plaintext_modulus or larger q_bits",
                (t as f64).log2()
            )));
        }
        Ok(())
    }

    /// Bytes of one contribution ciphertext (BGV's carry an 8-byte noise trailer).
    pub fn ciphertext_bytes(&self, params: &Parameters) -> usize {
        let extra = if self.plaintext_modulus.is_some() { bgv::ciphertext::NOISE_TRAILER_LEN } else { 0 };
        params.ciphertext_bytes(params.max_level(), false) + extra
    }
}

/// Where a round stands.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Status {
    /// Accepting contributions.
    Open,
    /// Closed; waiting for one share of the sum from each participant.
    Decrypting {
        /// The members whose shares combine (Lagrange coefficients depend on the set).
        participants: Vec<u32>,
    },
    /// The sum is known.
    Done,
    /// Will never decrypt.
    Failed {
        /// Why.
        reason: String,
    },
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Status::Open => f.write_str("open"),
            Status::Decrypting { participants } => write!(f, "decrypting (participants {participants:?})"),
            Status::Done => f.write_str("done"),
            Status::Failed { reason } => write!(f, "failed ({reason})"),
        }
    }
}

/// A round: its configuration, the collective public key, who contributed, the running
/// sum, the shares received and, at the end, the result.
pub struct Round {
    pub(crate) config: RoundConfig,
    pub(crate) params: Parameters,
    /// Set for exact integer rounds.
    pub(crate) bgv: Option<bgv::Parameters>,
    pub(crate) public_key: PublicKey,
    pub(crate) contributed: BTreeSet<String>,
    pub(crate) sum: Option<Vec<Ciphertext>>,
    pub(crate) status: Status,
    pub(crate) shares: BTreeMap<u32, Vec<DecryptionShare>>,
    pub(crate) result: Option<Vec<f64>>,
}

impl Round {
    /// A new open round under the committee's collective public key (wire bytes).
    pub fn create(config: RoundConfig, public_key: &[u8]) -> Result<Self, AggregateError> {
        let bad = |s: String| Err(AggregateError::Config(s));
        if config.id.is_empty()
            || config.id.len() > 64
            || !config.id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return bad(format!("round id {:?}: 1–64 letters, digits, '-' or '_'", config.id));
        }
        let (params, bgv) = config.parameters()?;
        if config.plaintext_modulus.is_some_and(|t| t >= 1 << 53) {
            return bad("plaintext_modulus: below 2^53, so that sums are reported exactly as doubles".into());
        }
        // Members smudge for 2^-40 by default: the round must leave them room.
        config.check_integer_room(&params, 40)?;
        if let Some(b) = config.value_bound {
            if config.plaintext_modulus.is_none() || config.packing().is_none() {
                return bad(format!(
                    "value_bound {b}: a packed round needs a plaintext_modulus t ≥ 2·bound·contributors = {} \
                     (create the round with the bound alone to have t chosen)",
                    2 * b as u128 * config.contributors.len().max(1) as u128
                ));
            }
        }
        if bgv.is_some() && config.scale != 1.0 {
            return bad(format!("scale {}: an integer round (plaintext_modulus) has scale 1", config.scale));
        }
        if config.length == 0 || config.length > MAX_LENGTH {
            return bad(format!("length {} (1..={MAX_LENGTH})", config.length));
        }
        if !(config.scale.is_finite()
            && config.scale >= 1.0
            && config.scale.log2() + 2.0 < params.log_q_at(params.max_level()))
        {
            return bad(format!("scale {} does not fit the modulus", config.scale));
        }
        if config.committee.is_empty() || config.committee.contains_key(&0) {
            return bad("the committee needs members, numbered from 1".into());
        }
        if config.threshold == 0 || config.threshold > config.committee.len() {
            return bad(format!("threshold {} of {} members", config.threshold, config.committee.len()));
        }
        if config.min_contributors == 0 || config.min_contributors > config.contributors.len() {
            return bad(format!(
                "min_contributors {} of {} allowed contributors",
                config.min_contributors,
                config.contributors.len()
            ));
        }
        for k in config.committee.values().chain(&config.contributors) {
            parse_key(k)?;
        }
        let public_key = PublicKey::from_bytes(&params, public_key)?;
        Ok(Self {
            config,
            params,
            bgv,
            public_key,
            contributed: BTreeSet::new(),
            sum: None,
            status: Status::Open,
            shares: BTreeMap::new(),
            result: None,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &RoundConfig {
        &self.config
    }
    /// The status.
    pub fn status(&self) -> &Status {
        &self.status
    }
    /// How many contributions are in the sum.
    pub fn contributions(&self) -> usize {
        self.contributed.len()
    }
    /// The sum in the clear, once done.
    pub fn result(&self) -> Option<&[f64]> {
        self.result.as_deref()
    }
    /// Ciphertexts per contribution: the vector over N/2 slots each.
    pub fn ciphertexts(&self) -> usize {
        self.config.length.div_ceil(self.config.values_per_ciphertext(&self.params))
    }
    /// The largest contribution payload accepted, in bytes (checked before parsing).
    pub fn max_contribution_bytes(&self) -> usize {
        8 + self.ciphertexts() * (4 + self.config.ciphertext_bytes(&self.params))
    }

    /// Adds a signed contribution to the sum. Refused (round unchanged) when the round is
    /// not open, the signer is not an allowed contributor or has contributed, the
    /// signature does not verify, or the ciphertexts do not fit the round.
    pub fn contribute(
        &mut self,
        signer: &str,
        signature: &[u8],
        payload: &[u8],
        now_unix_s: u64,
    ) -> Result<(), AggregateError> {
        self.tick(now_unix_s);
        if self.status != Status::Open {
            return Err(self.state_error("contributions are closed"));
        }
        if !self.config.contributors.iter().any(|c| c == signer) {
            return Err(AggregateError::Auth(format!("{signer} is not a contributor of round {}", self.config.id)));
        }
        if self.contributed.contains(signer) {
            return Err(AggregateError::Duplicate(format!("the contribution of {signer}")));
        }
        if payload.len() > self.max_contribution_bytes() {
            return Err(AggregateError::Payload(format!(
                "{} bytes, more than a contribution of {} values can be ({})",
                payload.len(),
                self.config.length,
                self.max_contribution_bytes()
            )));
        }
        verify(signer, "contribution", &self.config.id, payload, signature)?;
        let parts = split(payload, CONTRIBUTION_MAGIC, self.ciphertexts())?;
        let top = self.params.max_level();
        let cts = parts
            .iter()
            .enumerate()
            .map(|(i, b)| {
                let ct = match &self.bgv {
                    None => Ciphertext::from_bytes(&self.params, b)?,
                    Some(bp) => {
                        let ct = bgv::Ciphertext::from_bytes(bp, b)
                            .map_err(|e| AggregateError::Payload(format!("ciphertext {i}: {e}")))?;
                        if ct.factor() != 1 {
                            return Err(AggregateError::Payload(format!(
                                "ciphertext {i} has factor {}; a fresh encryption (factor 1) is expected",
                                ct.factor()
                            )));
                        }
                        ct.rlwe().clone()
                    }
                };
                if ct.level() != top || ct.scale() != self.config.scale {
                    return Err(AggregateError::Payload(format!(
                        "ciphertext {i} is at level {} and scale 2^{:.2}; this round takes level {top}, scale 2^{:.2}",
                        ct.level(),
                        ct.scale().log2(),
                        self.config.scale.log2()
                    )));
                }
                Ok(ct)
            })
            .collect::<Result<Vec<_>, _>>()?;
        match &mut self.sum {
            None => self.sum = Some(cts),
            Some(sum) => {
                let moduli: Vec<_> = self.params.ctx().moduli[..=top].iter().collect();
                for (s, c) in sum.iter_mut().zip(&cts) {
                    let (s0, s1) = s.parts_mut();
                    let (c0, c1) = c.parts();
                    s0.add_assign(c0, &moduli);
                    s1.add_assign(c1, &moduli);
                }
            }
        }
        self.contributed.insert(signer.to_string());
        Ok(())
    }

    /// Closes an open round past its deadline (with what arrived, or failed under the
    /// minimum). Returns whether the status changed.
    pub fn tick(&mut self, now_unix_s: u64) -> bool {
        if self.status == Status::Open && now_unix_s >= self.config.deadline_unix_s {
            self.close_now();
            return true;
        }
        false
    }

    /// Closes the round now: decrypting by the first `threshold` members, or failed when
    /// fewer than `min_contributors` contributed.
    pub fn close(&mut self) -> Result<(), AggregateError> {
        if self.status != Status::Open {
            return Err(self.state_error("only an open round closes"));
        }
        self.close_now();
        Ok(())
    }

    fn close_now(&mut self) {
        if self.contributed.len() < self.config.min_contributors {
            self.status = Status::Failed {
                reason: format!(
                    "{} contributions by the close, fewer than the {} required",
                    self.contributed.len(),
                    self.config.min_contributors
                ),
            };
            self.sum = None;
            return;
        }
        let participants = self.config.committee.keys().take(self.config.threshold).copied().collect();
        self.status = Status::Decrypting { participants };
    }

    /// The sum's ciphertexts (wire bytes) that members decrypt, once closed.
    pub fn sum_ciphertexts(&self) -> Result<Vec<Vec<u8>>, AggregateError> {
        match (&self.status, &self.sum) {
            (Status::Decrypting { .. }, Some(sum)) => Ok(sum.iter().map(|c| c.to_bytes()).collect()),
            _ => Err(self.state_error("the sum is published only while decrypting")),
        }
    }

    /// New participants (e.g. one dropped out). The sum is re-randomised — plus a fresh
    /// encryption of zero under the collective key — so that members who shared already
    /// share a different ciphertext: a member never shares one ciphertext twice.
    pub fn reassign(&mut self, participants: &[u32]) -> Result<(), AggregateError> {
        if !matches!(self.status, Status::Decrypting { .. }) {
            return Err(self.state_error("participants are chosen while decrypting"));
        }
        let set: BTreeSet<u32> = participants.iter().copied().collect();
        if set.len() != participants.len()
            || set.len() < self.config.threshold
            || !set.iter().all(|m| self.config.committee.contains_key(m))
        {
            return Err(AggregateError::Payload(format!(
                "participants {participants:?}: at least {} distinct committee members",
                self.config.threshold
            )));
        }
        let top = self.params.max_level();
        let ctx = self.params.ctx();
        let moduli: Vec<_> = ctx.moduli[..=top].iter().collect();
        let zero = Plaintext::new(&self.params, Poly::zero(self.params.n(), top + 1), self.config.scale)?;
        let mut enc = Encryptor::new(&self.public_key);
        for s in self.sum.as_mut().expect("decrypting rounds hold their sum") {
            let z = enc.encrypt(&zero)?;
            let (s0, s1) = s.parts_mut();
            s0.add_assign(z.parts().0, &moduli);
            s1.add_assign(z.parts().1, &moduli);
        }
        self.shares.clear();
        self.status = Status::Decrypting { participants: set.into_iter().collect() };
        Ok(())
    }

    /// A participant's signed decryption shares, one per ciphertext of the sum. When the
    /// last participant's arrive, the sum is decrypted and the round is done.
    pub fn submit_shares(&mut self, member: u32, signature: &[u8], payload: &[u8]) -> Result<(), AggregateError> {
        let Status::Decrypting { participants } = &self.status else {
            return Err(self.state_error("shares are taken while decrypting"));
        };
        let key = self
            .config
            .committee
            .get(&member)
            .ok_or_else(|| AggregateError::Auth(format!("member {member} is not in the committee")))?;
        if !participants.contains(&member) {
            return Err(AggregateError::Auth(format!("member {member} is not a participant ({participants:?})")));
        }
        if self.shares.contains_key(&member) {
            return Err(AggregateError::Duplicate(format!("the shares of member {member}")));
        }
        let level = self.params.max_level();
        let max = 8 + self.ciphertexts() * (4 + self.params.decryption_share_bytes(level, participants.len()));
        if payload.len() > max {
            return Err(AggregateError::Payload(format!("{} bytes of shares, more than {max}", payload.len())));
        }
        verify(key, "share", &self.config.id, payload, signature)?;
        let want: BTreeSet<u32> = participants.iter().copied().collect();
        let sum = self.sum.as_ref().expect("decrypting rounds hold their sum");
        let shares = split(payload, SHARES_MAGIC, sum.len())?
            .iter()
            .zip(sum)
            .enumerate()
            .map(|(i, (b, ct))| {
                let s = DecryptionShare::from_bytes(&self.params, b)?;
                if s.member() != member || s.participants().collect::<BTreeSet<_>>() != want {
                    return Err(AggregateError::Payload(format!(
                        "share {i} is by member {} for participants {:?}; expected member {member} for {want:?}",
                        s.member(),
                        s.participants().collect::<Vec<_>>()
                    )));
                }
                if s.ciphertext() != &ciphertext_digest(ct) {
                    return Err(AggregateError::Payload(format!(
                        "share {i} decrypts another ciphertext than the sum's {i}th (a stale sum? fetch it again)"
                    )));
                }
                Ok(s)
            })
            .collect::<Result<Vec<_>, _>>()?;
        self.shares.insert(member, shares);
        if self.shares.len() == want.len() {
            self.finish()?;
        }
        Ok(())
    }

    fn finish(&mut self) -> Result<(), AggregateError> {
        let sum = self.sum.as_ref().expect("decrypting rounds hold their sum");
        let enc = Encoder::new(&self.params);
        let mut values = Vec::with_capacity(self.config.length);
        for (i, ct) in sum.iter().enumerate() {
            let shares: Vec<DecryptionShare> = self.shares.values().map(|v| v[i].clone()).collect();
            let pt = combine_decryption_shares(ct, &shares)?;
            match &self.bgv {
                None => values.extend(enc.decode(&pt)?),
                Some(bp) => {
                    let bad = |e: bgv::Error| AggregateError::Payload(format!("decrypting the integer sum: {e}"));
                    let m = bgv::decrypt_from_phase(bp, &pt, 1).map_err(bad)?;
                    let t = bp.plaintext_modulus();
                    let coeffs = bgv::Encoder::new(bp).decode_coeffs(&m).map_err(bad)?;
                    match self.config.packing() {
                        Some(p) => coeffs.into_iter().for_each(|c| p.unpack(c, self.contributed.len(), &mut values)),
                        // Centered: (−t/2, t/2].
                        None => values.extend(coeffs.into_iter().map(|c| {
                            if c > t / 2 {
                                c as f64 - t as f64
                            } else {
                                c as f64
                            }
                        })),
                    }
                }
            }
        }
        values.truncate(self.config.length);
        self.result = Some(values);
        self.status = Status::Done;
        Ok(())
    }

    fn state_error(&self, what: &str) -> AggregateError {
        AggregateError::State { round: self.config.id.clone(), status: self.status.to_string(), what: what.into() }
    }
}

/// The longest vector a round takes: 2^20 values (a sizeable model update).
pub const MAX_LENGTH: usize = 1 << 20;

/// Packs byte strings in a container: magic, count, then length-prefixed items.
pub fn join(magic: &[u8; 4], items: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + items.iter().map(|i| 4 + i.len()).sum::<usize>());
    out.extend_from_slice(magic);
    out.extend_from_slice(&(items.len() as u32).to_le_bytes());
    for i in items {
        out.extend_from_slice(&(i.len() as u32).to_le_bytes());
        out.extend_from_slice(i);
    }
    out
}

/// Splits a container of exactly `count` items, every length checked against what is there.
pub fn split<'a>(payload: &'a [u8], magic: &[u8; 4], count: usize) -> Result<Vec<&'a [u8]>, AggregateError> {
    let bad = |s: String| AggregateError::Payload(s);
    if payload.len() < 8 || &payload[..4] != magic {
        return Err(bad(format!("not a {} container", String::from_utf8_lossy(magic))));
    }
    let n = u32::from_le_bytes(payload[4..8].try_into().expect("4 bytes")) as usize;
    if n != count {
        return Err(bad(format!("{n} items; this round takes {count}")));
    }
    let mut at = 8;
    let mut out = Vec::with_capacity(count);
    for i in 0..count {
        let len = payload
            .get(at..at + 4)
            .map(|b| u32::from_le_bytes(b.try_into().expect("4 bytes")) as usize)
            .ok_or_else(|| bad(format!("truncated before item {i}")))?;
        at += 4;
        let item = payload.get(at..at + len).ok_or_else(|| bad(format!("item {i} truncated")))?;
        at += len;
        out.push(item);
    }
    if at != payload.len() {
        return Err(bad(format!("{} trailing bytes", payload.len() - at)));
    }
    Ok(out)
}
