//! Secure aggregation, the client and committee sides (the server side is crate
//! `aggregate`; the protocol is `rlwe::multiparty`).
//!
//! A round is described by its [`RoundConfig`] (JSON, published by its creator): the
//! parameters, the vector length and scale, the committee with its Ed25519 keys and
//! threshold, the contributors. Everyone works from that one file.
//!
//! - **Committee, key ceremony** (once per committee): each member runs [`begin`] —
//!   it publishes its public-key share and sends one Shamir share to every member over
//!   a private channel (this module does not carry them) — then [`finish`] with the
//!   Shamir shares it received, which writes its threshold-key file (mode 0600).
//!   Anyone turns the public-key shares into the collective key with [`collective_key`].
//! - **Contributors**: [`contribution`] encrypts a vector (optionally privatized for
//!   distributed DP, `aggregate::privatize`) into the payload a round accepts.
//! - **Committee, per round**: [`decryption_shares`] makes the member's shares of the
//!   published sum. The member's file records each ciphertext it has shared and is
//!   replaced (atomically, synced) *before* the shares are returned: a member that
//!   crashes and restarts still refuses to share a ciphertext twice.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::Path;

use aggregate::round::{join, split, CONTRIBUTION_MAGIC, SHARES_MAGIC};
pub use aggregate::RoundConfig;
use ckks::{Ciphertext, Encoder, Encryptor, Parameters, PublicKey};
use rlwe::multiparty::{
    collective_public_key, sum_noise_bound, Party, PublicKeyShare, ShamirShare, Smudging, ThresholdKey,
};
use thiserror::Error;
use zeroize::Zeroizing;

/// What the client side of aggregation refuses, in words the user can act on.
#[derive(Debug, Error)]
pub enum AggregationError {
    /// The round configuration cannot be used.
    #[error("round configuration: {0}")]
    Config(String),
    /// A vector that does not fit the round (length, non-finite values).
    #[error("values: {0}")]
    Values(String),
    /// The engine refused (parameters, protocol — e.g. a second share of one ciphertext).
    #[error(transparent)]
    Engine(#[from] rlwe::Error),
    /// Bytes that do not read as what they should be under the round's parameters.
    #[error("{what}: {source}")]
    Wire {
        /// What was being read.
        what: String,
        /// Why it does not read.
        source: rlwe::WireError,
    },
    /// A container or vector that does not fit the round.
    #[error(transparent)]
    Round(#[from] aggregate::AggregateError),
    /// A member's key file.
    #[error("threshold key file {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
}

fn wire(what: impl Into<String>) -> impl FnOnce(rlwe::WireError) -> AggregationError {
    move |source| AggregationError::Wire { what: what.into(), source }
}

/// A fresh Ed25519 signing-key seed from the operating system's generator (wiped on
/// drop): a contributor's or a member's identity for rounds (`aggregate::Signer`).
pub fn new_signer_seed() -> Zeroizing<[u8; 32]> {
    let mut seed = Zeroizing::new([0u8; 32]);
    ring::Sampler::os_seeded().fill_bytes(&mut seed[..]);
    seed
}

/// Distributed DP for one contribution: `values` clipped, rounded stochastically to the
/// grid and noised with this client's share of the round's Gaussian noise
/// (`aggregate::privatize`), as values ready for [`contribution`].
pub fn privatize(values: &[f64], dp: &aggregate::DpConfig) -> Result<Vec<f64>, AggregationError> {
    let mut sampler = ring::Sampler::os_seeded();
    Ok(aggregate::privatize(values, dp, &mut sampler)?.into_iter().map(|k| k as f64 * dp.grid).collect())
}

/// A round's configuration from its parts: CKKS parameters from prime sizes (checked
/// at 128 bits), the scale as 2^`scale_bits`, members numbered 1.. in the order of
/// `committee` (their public signing keys, hex).
#[allow(clippy::too_many_arguments)]
pub fn new_round(
    id: String,
    length: usize,
    (log_n, q_bits, p_bits): (u32, &[u32], &[u32]),
    scale_bits: u32,
    committee: Vec<String>,
    threshold: usize,
    contributors: Vec<String>,
    min_contributors: usize,
    deadline_unix_s: u64,
) -> Result<RoundConfig, AggregationError> {
    let params = Parameters::builder()
        .log_n(log_n)
        .q_bits(q_bits)
        .p_bits(p_bits)
        .build()
        .map_err(|e| AggregationError::Config(format!("parameters refused: {e}")))?;
    Ok(RoundConfig {
        id,
        params: params.spec().clone(),
        length,
        scale: 2f64.powi(scale_bits as i32),
        committee: committee.into_iter().enumerate().map(|(i, k)| (i as u32 + 1, k)).collect(),
        threshold,
        min_contributors,
        deadline_unix_s,
        contributors,
        plaintext_modulus: None,
        value_bound: None,
    })
}

/// The same round summing integers exactly: BGV with plaintext modulus `t` (any t ≥ 2
/// below 2^53; sums are read centered in (−t/2, t/2], so t must exceed twice the largest
/// |sum|), scale 1.
pub fn integer_round(mut config: RoundConfig, t: u64) -> Result<RoundConfig, AggregationError> {
    config.plaintext_modulus = Some(t);
    config.scale = 1.0;
    config.parameters().map_err(|e| AggregationError::Config(e.to_string()))?;
    if t >= 1 << 53 {
        return Err(AggregationError::Config("plaintext modulus: below 2^53".into()));
    }
    Ok(config)
}

/// The same round summing integers exactly and packed: every value an integer with
/// |v| ≤ `bound`, several values per coefficient (`aggregate::Packing`). The plaintext
/// modulus is chosen: the smallest prime above 2^(width·k) for the largest number k of
/// digits per coefficient that still leaves the committee's smudged shares room below
/// Q (the same check the server makes), so a contribution is up to k times smaller.
pub fn packed_integer_round(config: RoundConfig, bound: u64) -> Result<RoundConfig, AggregationError> {
    let width = aggregate::Packing::width(bound, config.contributors.len()).ok_or_else(|| {
        AggregationError::Config(format!("value bound {bound}: 2·bound·contributors must stay below 2^52"))
    })?;
    // The room depends on the ring (N, Q) and t alone: the ring is built once, and only
    // the chosen t's BGV set (in `integer_round`).
    let real = RoundConfig { plaintext_modulus: None, value_bound: None, ..config.clone() };
    let (params, _) = real.parameters().map_err(|e| AggregationError::Config(e.to_string()))?;
    let mut last = None;
    for k in (1..=52 / width).rev() {
        let t = (1u64 << (width * k)..).find(|&t| ring::arith::is_prime(t)).expect("primes are dense");
        let candidate = RoundConfig { plaintext_modulus: Some(t), value_bound: Some(bound), ..config.clone() };
        match candidate.check_integer_room(&params, 40) {
            Ok(()) => return Ok(RoundConfig { value_bound: Some(bound), ..integer_round(config, t)? }),
            Err(e) => last = Some(e),
        }
    }
    Err(AggregationError::Config(format!(
        "value bound {bound} with {} contributors: not even one {width}-bit digit per coefficient fits ({})",
        config.contributors.len(),
        last.map_or_else(String::new, |e| e.to_string())
    )))
}

/// A round as the CLI and the SDK ask for it: real-valued (neither given), integer with
/// modulus t, packed with t chosen from the value bound, or packed under a given t.
pub fn with_integers(
    config: RoundConfig,
    plaintext_modulus: Option<u64>,
    value_bound: Option<u64>,
) -> Result<RoundConfig, AggregationError> {
    match (plaintext_modulus, value_bound) {
        (None, None) => Ok(config),
        (Some(t), None) => integer_round(config, t),
        (None, Some(b)) => packed_integer_round(config, b),
        (Some(t), Some(b)) => {
            let c = RoundConfig { value_bound: Some(b), ..integer_round(config, t)? };
            match c.packing() {
                Some(_) => Ok(c),
                None => Err(AggregationError::Config(format!(
                    "value bound {b}: t = {t} holds no digit of 2·bound·contributors; give a larger t or none (then it is chosen)"
                ))),
            }
        }
    }
}

/// The round's parameters, checked at 128 bits: the CKKS set, or for an integer round
/// the BGV set tagged with its plaintext modulus (the ceremony's keys live under it).
pub fn parameters(config: &RoundConfig) -> Result<Parameters, AggregationError> {
    config.parameters().map(|(p, _)| p).map_err(|e| AggregationError::Config(e.to_string()))
}

/// The most bytes a server's answer about this round can rightly have: the encrypted
/// sum (every ciphertext at the top level) or the decrypted values as JSON, with room
/// for a status or an error. Clients read no more, whatever a server sends.
pub fn max_answer_bytes(config: &RoundConfig) -> Result<usize, AggregationError> {
    let params = parameters(config)?;
    let ciphertexts = config.length.div_ceil(config.values_per_ciphertext(&params));
    let sum = 8 + ciphertexts * (4 + config.ciphertext_bytes(&params));
    let values = 32 * config.length + 256;
    Ok(sum.max(values) + (64 << 10))
}

fn committee(config: &RoundConfig) -> Vec<u32> {
    config.committee.keys().copied().collect()
}

/// What a member publishes and sends when the ceremony begins.
pub struct Begun {
    /// Its public-key share (public: to whoever assembles the collective key).
    pub public_key_share: Vec<u8>,
    /// (recipient, Shamir share): each to that member only, over a private channel —
    /// its own included. Wiped on drop.
    pub shamir_shares: Vec<(u32, Zeroizing<Vec<u8>>)>,
}

/// Member `member` begins the ceremony under the common random seed `crs`: a fresh
/// secret, which exists only inside this call and in the shares it returns.
pub fn begin(config: &RoundConfig, crs: &[u8; 32], member: u32) -> Result<Begun, AggregationError> {
    let params = parameters(config)?;
    let members = committee(config);
    if !members.contains(&member) {
        return Err(AggregationError::Config(format!("member {member} is not in the committee {members:?}")));
    }
    let mut party = Party::new(&params, member)?;
    let public_key_share = party.public_key_share(crs).to_bytes();
    let shamir_shares =
        party.shamir_shares(&members, config.threshold)?.iter().map(|s| (s.to(), s.to_bytes())).collect();
    Ok(Begun { public_key_share, shamir_shares })
}

/// Member `member` ends the ceremony with the Shamir shares it received (one from every
/// member) and writes its threshold key to a new file `key_file` (mode 0600; an
/// existing file is never overwritten).
pub fn finish(config: &RoundConfig, member: u32, received: &[&[u8]], key_file: &Path) -> Result<(), AggregationError> {
    let params = parameters(config)?;
    let members = committee(config);
    let shares = received
        .iter()
        .enumerate()
        .map(|(i, b)| ShamirShare::from_bytes(&params, b).map_err(wire(format!("Shamir share {i}"))))
        .collect::<Result<Vec<_>, _>>()?;
    if shares.len() != members.len() {
        return Err(AggregationError::Config(format!(
            "{} Shamir shares received; the committee has {} members and each sends one",
            shares.len(),
            members.len()
        )));
    }
    let key = ThresholdKey::combine(&params, member, &members, config.threshold, &shares)?;
    write_private(key_file, &key.to_bytes(), false)
}

/// The collective public key (wire bytes) from every member's public-key share.
pub fn collective_key(config: &RoundConfig, crs: &[u8; 32], shares: &[&[u8]]) -> Result<Vec<u8>, AggregationError> {
    let params = parameters(config)?;
    let shares = shares
        .iter()
        .enumerate()
        .map(|(i, b)| PublicKeyShare::from_bytes(&params, b).map_err(wire(format!("public-key share {i}"))))
        .collect::<Result<Vec<_>, _>>()?;
    let members = committee(config);
    let mut from: Vec<u32> = shares.iter().map(PublicKeyShare::party).collect();
    from.sort_unstable();
    if from != members {
        return Err(AggregationError::Config(format!(
            "public-key shares from {from:?}; the committee is {members:?} and each member sends one"
        )));
    }
    Ok(collective_public_key(&params, crs, &shares)?.to_bytes())
}

/// A contribution to a round: `values` (the round's length) encrypted under the
/// collective key at the round's scale, in the container the server accepts. Sign it
/// with `aggregate::Signer::sign("contribution", round id, payload)`.
pub fn contribution(config: &RoundConfig, public_key: &[u8], values: &[f64]) -> Result<Vec<u8>, AggregationError> {
    // Built once: a parameter set's tables are the costly part.
    let (params, integer) = config.parameters().map_err(|e| AggregationError::Config(e.to_string()))?;
    if values.len() != config.length {
        return Err(AggregationError::Values(format!(
            "{} values; round {} takes vectors of {}",
            values.len(),
            config.id,
            config.length
        )));
    }
    if let Some(i) = values.iter().position(|x| !x.is_finite()) {
        return Err(AggregationError::Values(format!("value {i} is not finite")));
    }
    let pk = PublicKey::from_bytes(&params, public_key).map_err(wire("collective public key"))?;
    if let Some(bp) = integer {
        return integer_contribution(&bp, &pk, values, config.packing());
    }
    let enc = Encoder::new(&params);
    let mut encryptor = Encryptor::new(&pk);
    let level = params.max_level();
    let cts = values
        .chunks(params.slots())
        .map(|chunk| {
            let pt = enc.encode(chunk, level, config.scale)?;
            Ok(encryptor.encrypt(&pt)?.to_bytes())
        })
        .collect::<Result<Vec<_>, rlwe::Error>>()?;
    Ok(join(CONTRIBUTION_MAGIC, &cts))
}

/// An integer round's contribution: each value an integer with |v| < t/2 (so that a
/// sum is read back exactly while it stays in that range), coefficient-encoded, N per
/// BGV ciphertext.
fn integer_contribution(
    bp: &bgv::Parameters,
    pk: &PublicKey,
    values: &[f64],
    packing: Option<aggregate::Packing>,
) -> Result<Vec<u8>, AggregationError> {
    let half = (bp.plaintext_modulus() / 2) as f64;
    let (fits, what): (Box<dyn Fn(f64) -> bool>, String) = match packing {
        // A value past the bound would carry into its neighbour's digit: refused here.
        Some(p) => {
            (Box::new(move |x: f64| x.abs() <= p.bound as f64), format!("at most the round's value bound {}", p.bound))
        }
        None => (Box::new(move |x: f64| x.abs() < half), format!("below t/2 = {half}")),
    };
    if let Some(i) = values.iter().position(|&x| x.fract() != 0.0 || !fits(x)) {
        return Err(AggregationError::Values(format!(
            "value {i} ({}) is not an integer of magnitude {what}; this round sums integers exactly",
            values[i]
        )));
    }
    let ints: Vec<i64> = values.iter().map(|&v| v as i64).collect();
    let coeffs = match packing {
        Some(p) => p.pack(&ints),
        None => ints,
    };
    let bgv_err = |e: bgv::Error| AggregationError::Values(format!("encrypting: {e}"));
    let enc = bgv::Encoder::new(bp);
    let mut encryptor = bgv::Encryptor::new(bp, pk).map_err(bgv_err)?;
    let cts = coeffs
        .chunks(bp.n())
        .map(|chunk| {
            let pt = enc.encode_coeffs(chunk, bp.max_level()).map_err(bgv_err)?;
            Ok(encryptor.encrypt(&pt).map_err(bgv_err)?.to_bytes())
        })
        .collect::<Result<Vec<_>, AggregationError>>()?;
    Ok(join(CONTRIBUTION_MAGIC, &cts))
}

/// Member `key_file`'s decryption shares of a round's published sum (the body of
/// `GET …/sum`) for the participants the server named, smudged for 2^-`security_bits`
/// statistical security against the noise of a sum of every allowed contribution.
/// The key file is rewritten with the ciphertexts recorded before the shares are
/// returned, with the member's id. Sign them with `Signer::sign("share", round id,
/// payload)` and send them to `…/shares/{member}`.
pub fn decryption_shares(
    config: &RoundConfig,
    key_file: &Path,
    sum: &[u8],
    participants: &[u32],
    security_bits: u32,
) -> Result<(u32, Vec<u8>), AggregationError> {
    let params = parameters(config)?;
    // Held from the read to the rename: two processes sharing for one member would each
    // read the file before the other's record and release two shares of one ciphertext.
    let _lock = KeyFileLock::take(key_file)?;
    let io = |source| AggregationError::Io { path: key_file.display().to_string(), source };
    let bytes = Zeroizing::new(fs::read(key_file).map_err(io)?);
    let mut key = ThresholdKey::from_bytes(&params, &bytes).map_err(wire("threshold key file"))?;
    if !participants.contains(&key.id()) {
        return Err(AggregationError::Config(format!(
            "member {} is not among the participants {participants:?} the round asks shares of; none is needed",
            key.id()
        )));
    }
    config.check_integer_room(&params, security_bits).map_err(|e| AggregationError::Config(e.to_string()))?;
    let count = config.length.div_ceil(config.values_per_ciphertext(&params));
    let cts = split(sum, CONTRIBUTION_MAGIC, count)?
        .iter()
        .enumerate()
        .map(|(i, b)| Ciphertext::from_bytes(&params, b).map_err(wire(format!("sum ciphertext {i}"))))
        .collect::<Result<Vec<_>, _>>()?;
    let smudging = Smudging {
        security_bits,
        noise_bound: sum_noise_bound(&params, config.committee.len(), config.contributors.len()),
    };
    let shares = cts
        .iter()
        .map(|ct| Ok(key.decryption_share(ct, participants, &smudging)?.to_bytes()))
        .collect::<Result<Vec<_>, AggregationError>>()?;
    write_private(key_file, &key.to_bytes(), true)?;
    Ok((key.id(), join(SHARES_MAGIC, &shares)))
}

/// `<key file>.lock`, created exclusively and removed on drop.
struct KeyFileLock(std::path::PathBuf);

impl KeyFileLock {
    fn take(key_file: &Path) -> Result<Self, AggregationError> {
        let path = sibling(key_file, "lock");
        match OpenOptions::new().write(true).create_new(true).open(&path) {
            Ok(_) => Ok(Self(path)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Err(AggregationError::Io {
                path: path.display().to_string(),
                source: std::io::Error::new(
                    e.kind(),
                    "another process is making shares with this key; if none is (a crash), remove this file",
                ),
            }),
            Err(source) => Err(AggregationError::Io { path: path.display().to_string(), source }),
        }
    }
}

impl Drop for KeyFileLock {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.0);
    }
}

/// `<file>.<suffix>` beside `file` (the whole name kept: `m1.key` → `m1.key.lock`).
fn sibling(file: &Path, suffix: &str) -> std::path::PathBuf {
    let mut name = file.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(format!(".{suffix}"));
    file.with_file_name(name)
}

/// Writes a private file (0600): a new one, or — `replace` — a temporary file synced and
/// renamed over the old one, so a crash leaves the old file or the new, never half.
fn write_private(path: &Path, bytes: &[u8], replace: bool) -> Result<(), AggregationError> {
    let io = |p: &Path| {
        let p = p.display().to_string();
        move |source| AggregationError::Io { path: p, source }
    };
    let target = if replace { sibling(path, "tmp") } else { path.to_path_buf() };
    if replace {
        let _ = fs::remove_file(&target);
    }
    let mut opts = OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(&target).map_err(io(&target))?;
    f.write_all(bytes).and_then(|_| f.sync_all()).map_err(io(&target))?;
    drop(f);
    if replace {
        fs::rename(&target, path).map_err(io(path))?;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            File::open(dir).and_then(|d| d.sync_all()).map_err(io(dir))?;
        }
    }
    Ok(())
}
