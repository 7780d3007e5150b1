//! `heinfer aggregate …`: secure aggregation from the command line — the committee's key
//! ceremony, contributions, decryption shares and the result, against `heinfer serve`'s
//! `/v2/aggregate` API. Every command reads the round's configuration JSON (what its
//! creator publishes); files that hold secrets are written with mode 0600.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

use aggregate::round::join;
use aggregate::{DpConfig, RoundConfig, Signer};
use clap::Subcommand;
use client::aggregate as agg;

use crate::demo::http_error;
use serde_json::{json, Value as Json};

#[derive(Subcommand)]
pub enum AggregateCmd {
    /// Make a signing key (a 0600 file) and print its public key, for the round's configuration
    Signer {
        /// the new key file (never overwritten)
        #[arg(long)]
        out: PathBuf,
    },
    /// Write a round's configuration (members are numbered 1.. in the order of --committee)
    NewRound {
        #[arg(long)]
        id: String,
        /// values per contribution
        #[arg(long)]
        length: usize,
        #[arg(long, default_value_t = 13)]
        log_n: u32,
        #[arg(long, value_delimiter = ',', default_values_t = [60u32, 60])]
        q_bits: Vec<u32>,
        #[arg(long, value_delimiter = ',', default_values_t = [60u32])]
        p_bits: Vec<u32>,
        /// log2 of the scale contributions are encoded at
        #[arg(long, default_value_t = 80)]
        scale_bits: u32,
        /// the members' public signing keys (hex), in order
        #[arg(long, num_args = 1.., required = true)]
        committee: Vec<String>,
        #[arg(long)]
        threshold: usize,
        /// the contributors' public signing keys (hex)
        #[arg(long, num_args = 1.., required = true)]
        contributors: Vec<String>,
        #[arg(long)]
        min_contributors: usize,
        /// the round closes by itself this many seconds from now
        #[arg(long, default_value_t = 86400)]
        deadline_in_s: u64,
        /// sum integers exactly (BGV) with this plaintext modulus t (> twice the largest |sum|);
        /// --scale-bits is then ignored
        #[arg(long, value_name = "T")]
        integers: Option<u64>,
        /// sum integers exactly, packed: every value an integer with |v| ≤ B, several values per
        /// coefficient (contributions several times smaller); t is chosen unless --integers gives it
        #[arg(long, value_name = "B")]
        value_bound: Option<u64>,
        #[arg(long, short = 'o')]
        output: PathBuf,
    },
    /// Committee member, key ceremony step 1: write the public-key share (publish it) and one Shamir share per member (send each privately)
    Begin {
        #[arg(long)]
        round: PathBuf,
        /// the common random seed, 64 hex digits, the same for every member
        #[arg(long)]
        crs: String,
        #[arg(long)]
        member: u32,
        /// directory for pk-share-<member>.bin and shamir-<member>-to-<k>.bin
        #[arg(long)]
        out: PathBuf,
    },
    /// Committee member, step 2: combine the Shamir shares received (one from every member) into a threshold-key file
    Finish {
        #[arg(long)]
        round: PathBuf,
        #[arg(long)]
        member: u32,
        /// the shamir-*-to-<member>.bin files received
        #[arg(long, num_args = 1.., required = true)]
        shares: Vec<PathBuf>,
        /// the new threshold-key file (0600)
        #[arg(long)]
        key: PathBuf,
    },
    /// Anyone: the collective public key from every member's public-key share
    PublicKey {
        #[arg(long)]
        round: PathBuf,
        #[arg(long)]
        crs: String,
        #[arg(long, num_args = 1.., required = true)]
        shares: Vec<PathBuf>,
        #[arg(long, short = 'o')]
        output: PathBuf,
    },
    /// Create the round on a server
    Create {
        #[arg(long)]
        server: String,
        #[arg(long)]
        round: PathBuf,
        #[arg(long)]
        public_key: PathBuf,
    },
    /// Contributor: encrypt a vector (.npy, the round's length) and submit it, signed
    Contribute {
        #[arg(long)]
        server: String,
        #[arg(long)]
        round: PathBuf,
        #[arg(long)]
        public_key: PathBuf,
        /// this contributor's signing-key file
        #[arg(long)]
        signer: PathBuf,
        #[arg(long)]
        values: PathBuf,
        /// distributed DP: clip to this L2 norm, round to a grid, add this client's share of noise
        #[arg(long, requires_all = ["dp_grid", "dp_sigma"])]
        dp_clip: Option<f64>,
        #[arg(long)]
        dp_grid: Option<f64>,
        /// standard deviation of the total noise on the sum (split over the round's min_contributors)
        #[arg(long)]
        dp_sigma: Option<f64>,
    },
    /// Committee member: make this member's decryption shares of a closed round's sum and submit them, signed
    Share {
        #[arg(long)]
        server: String,
        #[arg(long)]
        round: PathBuf,
        /// this member's threshold-key file (updated: it records what it has shared)
        #[arg(long)]
        key: PathBuf,
        #[arg(long)]
        signer: PathBuf,
        /// statistical security of the smudging noise, bits
        #[arg(long, default_value_t = 40)]
        security_bits: u32,
    },
    /// Privacy accounting for distributed DP (Rényi DP): the ε that ROUNDS rounds with these
    /// settings give at DELTA, before running them
    Epsilon {
        /// L2 clipping norm of each client's vector (as `contribute --dp-clip`)
        #[arg(long)]
        clip: f64,
        /// the grid values are rounded to (as `contribute --dp-grid`)
        #[arg(long)]
        grid: f64,
        /// standard deviation of the total noise on the sum (as `contribute --dp-sigma`)
        #[arg(long)]
        sigma: f64,
        /// the round's minimum of contributors (the noise is split over them)
        #[arg(long)]
        min_contributors: usize,
        /// values per contribution
        #[arg(long)]
        length: usize,
        #[arg(long, default_value_t = 1)]
        rounds: usize,
        #[arg(long, default_value_t = 1e-5)]
        delta: f64,
    },
    /// Close a round now (it closes by itself at its deadline)
    Close {
        #[arg(long)]
        server: String,
        #[arg(long)]
        round: PathBuf,
    },
    /// Fetch the result of a finished round
    Result {
        #[arg(long)]
        server: String,
        #[arg(long)]
        round: PathBuf,
        /// write the sum as .npy
        #[arg(long, short = 'o')]
        output: Option<PathBuf>,
    },
}

fn read_config(p: &Path) -> Result<RoundConfig, String> {
    let s = fs::read(p).map_err(|e| format!("round configuration {}: {e}", p.display()))?;
    serde_json::from_slice(&s).map_err(|e| format!("round configuration {}: {e}", p.display()))
}

fn read(p: &Path) -> Result<Vec<u8>, String> {
    fs::read(p).map_err(|e| format!("{}: {e}", p.display()))
}

fn hex32(s: &str, what: &str) -> Result<[u8; 32], String> {
    let s = s.trim();
    if s.len() != 64 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(format!("{what}: 64 hex digits"));
    }
    let mut out = [0u8; 32];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).map_err(|e| format!("{what}: {e}"))?;
    }
    Ok(out)
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn signer(p: &Path) -> Result<Signer, String> {
    let s = zeroize::Zeroizing::new(fs::read_to_string(p).map_err(|e| format!("signing key {}: {e}", p.display()))?);
    Ok(Signer::from_seed(&zeroize::Zeroizing::new(hex32(&s, "signing key file")?)))
}

fn write_new_private(p: &Path, bytes: &[u8]) -> Result<(), String> {
    use std::io::Write;
    let mut opts = fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(p).map_err(|e| format!("{}: {e}", p.display()))?;
    f.write_all(bytes).and_then(|_| f.sync_all()).map_err(|e| format!("{}: {e}", p.display()))
}

fn agent() -> ureq::Agent {
    ureq::AgentBuilder::new().timeout(Duration::from_secs(600)).build()
}

fn base(server: &str, id: &str) -> String {
    let s = server.trim_end_matches('/');
    let s = if s.starts_with("http://") || s.starts_with("https://") { s.to_string() } else { format!("http://{s}") };
    format!("{s}/v2/aggregate/rounds/{id}")
}

/// The answer, read up to what the round can rightly send (`agg::max_answer_bytes`).
fn body(r: ureq::Response, cap: usize) -> Result<Vec<u8>, String> {
    let mut v = Vec::new();
    r.into_reader().take(cap as u64 + 1).read_to_end(&mut v).map_err(|e| format!("reading the answer: {e}"))?;
    if v.len() > cap {
        return Err(format!("the server's answer exceeds {cap} bytes, more than this round can need; refused"));
    }
    Ok(v)
}

fn cap(config: &RoundConfig) -> Result<usize, String> {
    agg::max_answer_bytes(config).map_err(|e| e.to_string())
}

fn post(url: &str, payload: &[u8], signed: Option<(&Signer, &str, &str)>, cap: usize) -> Result<Json, String> {
    let mut req = agent().post(url).set("content-type", "application/octet-stream");
    if let Some((s, kind, round)) = signed {
        req = req
            .set("x-heinfer-signer", &s.public_hex())
            .set("x-heinfer-signature", &hex(&s.sign(kind, round, payload)));
    }
    let b = body(req.send_bytes(payload).map_err(http_error)?, cap)?;
    if b.is_empty() {
        return Ok(Json::Null);
    }
    serde_json::from_slice(&b).map_err(|e| format!("{url}: the answer is not JSON: {e}"))
}

fn get(url: &str, cap: usize) -> Result<Vec<u8>, String> {
    body(agent().get(url).call().map_err(http_error)?, cap)
}

pub fn run(cmd: AggregateCmd) -> Result<(), String> {
    match cmd {
        AggregateCmd::Signer { out } => {
            let seed = agg::new_signer_seed();
            let s = Signer::from_seed(&seed);
            write_new_private(&out, hex(&seed[..]).as_bytes())?;
            println!("{}", s.public_hex());
        }
        AggregateCmd::NewRound {
            id,
            length,
            log_n,
            q_bits,
            p_bits,
            scale_bits,
            committee,
            threshold,
            contributors,
            min_contributors,
            deadline_in_s,
            integers,
            value_bound,
            output,
        } => {
            let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
            let config = agg::new_round(
                id,
                length,
                (log_n, &q_bits, &p_bits),
                scale_bits,
                committee,
                threshold,
                contributors,
                min_contributors,
                now.saturating_add(deadline_in_s),
            )
            .map_err(|e| e.to_string())?;
            let config = agg::with_integers(config, integers, value_bound).map_err(|e| e.to_string())?;
            let json = serde_json::to_vec_pretty(&config).map_err(|e| e.to_string())?;
            fs::write(&output, json).map_err(|e| format!("{}: {e}", output.display()))?;
            println!("{}", json!({"round": config.id, "config": output}));
        }
        AggregateCmd::Begin { round, crs, member, out } => {
            let config = read_config(&round)?;
            let crs = hex32(&crs, "--crs")?;
            let begun = agg::begin(&config, &crs, member).map_err(|e| e.to_string())?;
            fs::create_dir_all(&out).map_err(|e| format!("{}: {e}", out.display()))?;
            let pk = out.join(format!("pk-share-{member}.bin"));
            fs::write(&pk, &begun.public_key_share).map_err(|e| format!("{}: {e}", pk.display()))?;
            for (to, bytes) in &begun.shamir_shares {
                write_new_private(&out.join(format!("shamir-{member}-to-{to}.bin")), bytes)?;
            }
            println!(
                "{}",
                json!({"public_key_share": pk, "shamir_shares": begun.shamir_shares.len(),
                       "note": "publish the public-key share; send shamir-<member>-to-<k>.bin to member k only, privately"})
            );
        }
        AggregateCmd::Finish { round, member, shares, key } => {
            let config = read_config(&round)?;
            let bytes: Vec<zeroize::Zeroizing<Vec<u8>>> =
                shares.iter().map(|p| read(p).map(zeroize::Zeroizing::new)).collect::<Result<_, _>>()?;
            let refs: Vec<&[u8]> = bytes.iter().map(|b| b.as_slice()).collect();
            agg::finish(&config, member, &refs, &key).map_err(|e| e.to_string())?;
            println!("{}", json!({"member": member, "key": key}));
        }
        AggregateCmd::PublicKey { round, crs, shares, output } => {
            let config = read_config(&round)?;
            let bytes: Vec<Vec<u8>> = shares.iter().map(|p| read(p)).collect::<Result<_, _>>()?;
            let refs: Vec<&[u8]> = bytes.iter().map(Vec::as_slice).collect();
            let pk = agg::collective_key(&config, &hex32(&crs, "--crs")?, &refs).map_err(|e| e.to_string())?;
            fs::write(&output, &pk).map_err(|e| format!("{}: {e}", output.display()))?;
            println!("{}", json!({"public_key": output, "bytes": pk.len()}));
        }
        AggregateCmd::Create { server, round, public_key } => {
            let raw = read(&round)?;
            let config = read_config(&round)?;
            let url = base(&server, "");
            let payload = join(b"HEAN", &[raw, read(&public_key)?]);
            println!("{}", post(url.trim_end_matches('/'), &payload, None, cap(&config)?)?);
        }
        AggregateCmd::Contribute { server, round, public_key, signer: sp, values, dp_clip, dp_grid, dp_sigma } => {
            let config = read_config(&round)?;
            let v = compiler::npy::read(&values).map_err(|e| format!("{}: {e}", values.display()))?;
            let mut data: Vec<f64> = v.data.clone();
            if let (Some(clip), Some(grid), Some(sigma)) = (dp_clip, dp_grid, dp_sigma) {
                let cfg = DpConfig { clip, grid, sigma, min_contributors: config.min_contributors };
                data = agg::privatize(&data, &cfg).map_err(|e| e.to_string())?;
            }
            let payload = agg::contribution(&config, &read(&public_key)?, &data).map_err(|e| e.to_string())?;
            let s = signer(&sp)?;
            let r = post(
                &format!("{}/contributions", base(&server, &config.id)),
                &payload,
                Some((&s, "contribution", &config.id)),
                cap(&config)?,
            )?;
            println!("{r}");
        }
        AggregateCmd::Share { server, round, key, signer: sp, security_bits } => {
            let config = read_config(&round)?;
            let url = base(&server, &config.id);
            let status: Json = serde_json::from_slice(&get(&url, cap(&config)?)?).map_err(|e| e.to_string())?;
            let participants: Vec<u32> = status["participants"]
                .as_array()
                .map(|a| a.iter().filter_map(|x| x.as_u64().map(|x| x as u32)).collect())
                .unwrap_or_default();
            if participants.is_empty() {
                return Err(format!("round {} is {}: no shares are asked for", config.id, status["status"]));
            }
            let sum = get(&format!("{url}/sum"), cap(&config)?)?;
            let (member, payload) =
                agg::decryption_shares(&config, &key, &sum, &participants, security_bits).map_err(|e| e.to_string())?;
            let s = signer(&sp)?;
            let r = post(&format!("{url}/shares/{member}"), &payload, Some((&s, "share", &config.id)), cap(&config)?)?;
            println!("{r}");
        }
        AggregateCmd::Epsilon { clip, grid, sigma, min_contributors, length, rounds, delta } => {
            let cfg = DpConfig { clip, grid, sigma, min_contributors };
            let eps = aggregate::epsilon_after(&cfg, length, rounds, delta).map_err(|e| e.to_string())?;
            println!(
                "{}",
                json!({"epsilon": eps, "delta": delta, "rounds": rounds, "noise_multiplier":
                    (sigma / grid) / cfg.sensitivity(length)})
            );
        }
        AggregateCmd::Close { server, round } => {
            let config = read_config(&round)?;
            println!("{}", post(&format!("{}/close", base(&server, &config.id)), b"", None, cap(&config)?)?);
        }
        AggregateCmd::Result { server, round, output } => {
            let config = read_config(&round)?;
            let r: Json =
                serde_json::from_slice(&get(&format!("{}/result", base(&server, &config.id)), cap(&config)?)?)
                    .map_err(|e| e.to_string())?;
            let values: Vec<f64> =
                r["values"].as_array().map(|a| a.iter().filter_map(Json::as_f64).collect()).unwrap_or_default();
            match output {
                Some(p) => {
                    compiler::npy::write(&p, &[values.len()], &values).map_err(|e| format!("{}: {e}", p.display()))?;
                    println!("{}", json!({"round": config.id, "values": values.len(), "output": p}));
                }
                None => println!("{r}"),
            }
        }
    }
    Ok(())
}
