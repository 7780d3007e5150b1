//! Layouts T and M from the command line: `heinfer batch keygen|encrypt|evaluate|decrypt --layout T|M` (the
//! client's and server's steps over files, so any transport — tritonclient, curl — can
//! carry a batch), and `heinfer run --layout auto|L|T` (in one process, the layout picked
//! from the spec's per-layout costs for the batch held).
//!
//! Request and result files are `heinfer encrypt`'s ciphertext files (`container`): the
//! elements of `ENCRYPTED_INPUT` / `ENCRYPTED_OUTPUT`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use clap::Subcommand;
use client::BatchLayout;
use runtime::{KeyStore, Request};

use crate::client_cmds::load_spec;
use crate::container::{read_container, write_container, KIND_QUERY, KIND_RESULT};
use crate::find_hem;

#[derive(Subcommand)]
pub enum BatchCmd {
    /// Make a secret key (a new 0600 file) and the layout's bundle (T: a relinearisation key only; M: its own
    /// Galois keys too); prints the key id
    Keygen {
        /// a model directory, its model.hem, or a client-spec JSON file
        model: PathBuf,
        /// T (a ciphertext per input feature, thousands of samples) or M (B samples in one ciphertext)
        #[arg(long, default_value = "T")]
        layout: String,
        #[arg(long)]
        secret_key: PathBuf,
        #[arg(long)]
        keys_out: PathBuf,
    },
    /// Encrypt up to one request's batch of samples (.npy, [n, features]) into a request file
    Encrypt {
        model: PathBuf,
        #[arg(long, default_value = "T")]
        layout: String,
        #[arg(long)]
        secret_key: PathBuf,
        #[arg(long)]
        input: PathBuf,
        /// the first sample to take
        #[arg(long, default_value_t = 0)]
        offset: usize,
        /// how many samples (default: the rest, up to the layout's batch)
        #[arg(long)]
        samples: Option<usize>,
        #[arg(long, short = 'o')]
        output: PathBuf,
    },
    /// Evaluate a request file in this process (the server's step) into a result file
    Evaluate {
        /// a model directory or its model.hem
        model: PathBuf,
        #[arg(long)]
        keys: PathBuf,
        request: PathBuf,
        #[arg(long, short = 'o')]
        output: PathBuf,
    },
    /// Decrypt a result file into the outputs of its samples (.npy, [samples, outputs])
    Decrypt {
        model: PathBuf,
        #[arg(long, default_value = "T")]
        layout: String,
        #[arg(long)]
        secret_key: PathBuf,
        /// samples the request held
        #[arg(long)]
        samples: usize,
        result: PathBuf,
        #[arg(long, short = 'o')]
        output: PathBuf,
    },
}

/// The elements of a request (`KIND_QUERY`) or result (`KIND_RESULT`) file.
pub fn read_elements(path: &Path, kind: u16) -> Result<Vec<Vec<u8>>, String> {
    let b = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    Ok(read_container(&path.display().to_string(), kind, &b)?.into_iter().map(<[u8]>::to_vec).collect())
}

fn write_elements(path: &Path, kind: u16, elems: &[Vec<u8>]) -> Result<(), String> {
    std::fs::write(path, write_container(kind, elems)).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// The batch session of `layout` ("T" or "M") over a saved secret key, or a fresh one.
fn session(model: &Path, layout: &str, secret_key: Option<&Path>) -> Result<Box<dyn BatchLayout>, String> {
    client::batch_session(&load_spec(model)?, layout, secret_key).map_err(|e| e.to_string())
}

pub fn run_cmd(cmd: BatchCmd) -> Result<(), String> {
    match cmd {
        BatchCmd::Keygen { model, layout, secret_key, keys_out } => {
            let s = session(&model, &layout, None)?;
            s.keys().save_secret(&secret_key).map_err(|e| e.to_string())?;
            let (bundle, id) = s.evaluation_bundle();
            std::fs::write(&keys_out, &bundle).map_err(|e| format!("cannot write {}: {e}", keys_out.display()))?;
            println!("{}", id.hex());
            Ok(())
        }
        BatchCmd::Encrypt { model, layout, secret_key, input, offset, samples, output } => {
            let s = session(&model, &layout, Some(&secret_key))?;
            let xs = compiler::npy::read(&input).map_err(|e| format!("input file: {e}"))?;
            let n = samples.unwrap_or(xs.rows().saturating_sub(offset).min(s.max_batch()));
            if offset + n > xs.rows() {
                return Err(format!("{} holds {} samples, not {}", input.display(), xs.rows(), offset + n));
            }
            let x: Vec<f64> = (offset..offset + n).flat_map(|r| xs.row(r).iter().copied()).collect();
            let t = Instant::now();
            let elems = s.encrypt(&x, n).map_err(|e| e.to_string())?;
            let secs = t.elapsed().as_secs_f64();
            write_elements(&output, KIND_QUERY, &elems)?;
            let bytes: usize = elems.iter().map(Vec::len).sum();
            println!(
                "{{\"layout\": \"{}\", \"samples\": {n}, \"ciphertexts\": {}, \"bytes\": {bytes}, \"encrypt_s\": {secs:.3}}}",
                s.layout(),
                elems.len()
            );
            Ok(())
        }
        BatchCmd::Evaluate { model, keys, request, output } => {
            let bundle = std::fs::read(&keys).map_err(|e| format!("cannot read {}: {e}", keys.display()))?;
            let svc = service(&model)?;
            let elems = read_elements(&request, KIND_QUERY)?;
            let t = Instant::now();
            let r = svc
                .infer(Request {
                    ciphertexts: elems.iter().map(Vec::as_slice).collect(),
                    key_id: None,
                    evaluation_keys: Some(&bundle),
                })
                .map_err(|e| e.to_string())?;
            println!("{{\"evaluate_s\": {:.3}}}", t.elapsed().as_secs_f64());
            write_elements(&output, KIND_RESULT, &r.ciphertexts)
        }
        BatchCmd::Decrypt { model, layout, secret_key, samples, result, output } => {
            let s = session(&model, &layout, Some(&secret_key))?;
            let elems = read_elements(&result, KIND_RESULT)?;
            let t = Instant::now();
            let y = s.decrypt(&elems, samples).map_err(|e| e.to_string())?;
            let secs = t.elapsed().as_secs_f64();
            compiler::npy::write(&output, &[samples, s.output_len()], &y)
                .map_err(|e| format!("cannot write {}: {e}", output.display()))?;
            println!("{{\"samples\": {samples}, \"decrypt_s\": {secs:.3}}}");
            Ok(())
        }
    }
}

/// The runtime in this process, for this process's own keys: unbounded, as `heinfer run`'s
/// layout L (a server bounds its store; a deep model's M bundle alone can pass 2 GB).
fn service(model: &Path) -> Result<runtime::Service, String> {
    let keys = Arc::new(KeyStore::new(usize::MAX, None).map_err(|e| e.to_string())?);
    let hem = find_hem(model);
    Ok(runtime::load_model(&hem, None, keys).map_err(|e| e.to_string())?.service)
}

/// `heinfer run --layout`: the layout for `samples` samples of this model — the one
/// asked for, or with `auto` the cheapest by the spec's costs (1 Gbit/s transfer) — and
/// why. None: layout L (the existing `heinfer run`); Some(("T" or "M", why)).
pub fn choose(hem: &Path, layout: &str, samples: usize) -> Result<Option<(&'static str, String)>, String> {
    let spec = match model::AnyModel::read_file(hem).map_err(|e| e.to_string())? {
        model::AnyModel::Ckks(m) => m.client,
        model::AnyModel::Paillier(_) if matches!(layout, "T" | "M") => {
            return Err(format!("a linear-scheme model has no layout {layout}"))
        }
        model::AnyModel::Paillier(_) => return Ok(None),
        // A BGV integer model has one layout, feature-per-ciphertext; `run` takes it there.
        model::AnyModel::Bgv(_) => return Ok(None),
    };
    match layout {
        "L" | "l" => Ok(None),
        "T" | "t" if spec.throughput.is_none() => {
            Err("this model was compiled without layout T (recompile with --layout auto or T)".into())
        }
        "T" | "t" => Ok(Some(("T", format!("layout T (asked for): {samples} samples")))),
        "M" | "m" if spec.multi.is_none() => {
            Err("this model was compiled without layout M (recompile with --layout auto or M)".into())
        }
        "M" | "m" => Ok(Some(("M", format!("layout M (asked for): {samples} samples")))),
        "auto" => {
            let Some(best) = client::choose_layout(&spec, samples, 125e6) else { return Ok(None) };
            let why = spec
                .layouts
                .iter()
                .map(|c| format!("{} ≈ {:.2} s", c.layout, c.total_s(samples, 125e6)))
                .collect::<Vec<_>>()
                .join(", ");
            eprintln!(
                "layout {} for {samples} samples (estimated evaluation + transfer at 1 Gbit/s: {why})",
                best.layout
            );
            Ok(match best.layout.as_str() {
                "T" => Some(("T", format!("layout T (auto: {why})"))),
                "M" => Some(("M", format!("layout M (auto: {why})"))),
                _ => None,
            })
        }
        other => Err(format!("unknown layout {other:?}: choose auto, L, M or T")),
    }
}

/// `heinfer run` in layout T or M: keys, encryption batch by batch, the runtime,
/// decryption; accuracy against the labels if given.
pub fn run_batch(
    hem: &Path,
    layout: &str,
    input: &Path,
    labels: Option<&Path>,
    samples: Option<usize>,
    json: bool,
    why: &str,
) -> Result<(), String> {
    let xs = compiler::npy::read(input).map_err(|e| format!("input file: {e}"))?;
    let ys = labels.map(compiler::npy::read).transpose().map_err(|e| format!("labels file: {e}"))?;
    let n = samples.unwrap_or(xs.rows()).min(xs.rows());
    let svc = service(hem)?;
    let t = Instant::now();
    let s = session(hem, layout, None)?;
    let (bundle, _) = s.evaluation_bundle();
    let keygen_s = t.elapsed().as_secs_f64();
    let (mut enc_s, mut eval_s, mut dec_s, mut req_bytes) = (0.0, 0.0, 0.0, 0usize);
    let mut outputs = Vec::with_capacity(n * s.output_len());
    for start in (0..n).step_by(s.max_batch()) {
        let m = (n - start).min(s.max_batch());
        let x: Vec<f64> = (start..start + m).flat_map(|r| xs.row(r).iter().copied()).collect();
        let t = Instant::now();
        let elems = s.encrypt(&x, m).map_err(|e| e.to_string())?;
        enc_s += t.elapsed().as_secs_f64();
        req_bytes += elems.iter().map(Vec::len).sum::<usize>();
        let t = Instant::now();
        let r = svc
            .infer(Request {
                ciphertexts: elems.iter().map(Vec::as_slice).collect(),
                key_id: None,
                evaluation_keys: Some(&bundle),
            })
            .map_err(|e| e.to_string())?;
        eval_s += t.elapsed().as_secs_f64();
        let t = Instant::now();
        outputs.extend(s.decrypt(&r.ciphertexts, m).map_err(|e| e.to_string())?);
        dec_s += t.elapsed().as_secs_f64();
    }
    let k = s.output_len();
    let classes: Vec<usize> = outputs.chunks(k).map(model::argmax).collect();
    let accuracy =
        ys.map(|y| classes.iter().zip(&y.data).filter(|(c, l)| **c as f64 == **l).count() as f64 / n.max(1) as f64);
    let total = enc_s + eval_s + dec_s;
    // Layout M against its own plaintext simulation, as layout L's run checks: what
    // encryption changed (CKKS noise), apart from what the approximations did.
    let sim = match layout {
        "M" => Some(simulate_m(hem, &xs, n, s.max_batch(), k)?),
        _ => None,
    };
    let (sim_agree, sim_err) = match &sim {
        Some(sim) => {
            let agree =
                outputs.chunks(k).zip(sim.chunks(k)).filter(|(a, b)| model::argmax(a) == model::argmax(b)).count();
            let err = outputs.iter().zip(sim).map(|(a, b)| (a - b).abs()).fold(0.0f64, f64::max);
            (Some(agree as f64 / n.max(1) as f64), Some(err))
        }
        None => (None, None),
    };
    if json {
        let summary = serde_json::json!({
            "layout": layout,
            "samples": n,
            "batch": s.max_batch(),
            "keygen_s": keygen_s,
            "encrypt_s": enc_s,
            "evaluate_s": eval_s,
            "decrypt_s": dec_s,
            "samples_per_s": n as f64 / total,
            "eval_samples_per_s": n as f64 / eval_s,
            "request_bytes": req_bytes,
            "accuracy": accuracy,
            "agreement_with_simulation": sim_agree,
            "max_logit_error_vs_simulation": sim_err,
        });
        println!("{summary}");
    } else {
        println!("{why}");
        println!(
            "{n} samples in layout {layout} (up to {} per request): encrypt {enc_s:.2} s, evaluate {eval_s:.2} s, decrypt {dec_s:.2} s \
             = {:.1} samples/s ({:.1}/s evaluation alone); {:.1} MB sent",
            s.max_batch(),
            n as f64 / total,
            n as f64 / eval_s,
            req_bytes as f64 / 1e6
        );
        if let Some(a) = accuracy {
            println!("accuracy {:.2} %", 100.0 * a);
        }
        if let (Some(a), Some(e)) = (sim_agree, sim_err) {
            println!("top-1 agreement with the plaintext simulation: {:.2} % (max logit error {e:.2e})", 100.0 * a);
        }
    }
    Ok(())
}

/// The outputs of the first `n` samples by the plaintext simulation of the model's layout-M
/// program (f64, no encryption), a full batch of `batch` at a time (the last padded with zeros).
fn simulate_m(hem: &Path, xs: &compiler::npy::Array, n: usize, batch: usize, k: usize) -> Result<Vec<f64>, String> {
    let m = match model::AnyModel::read_file(hem).map_err(|e| e.to_string())? {
        model::AnyModel::Ckks(m) => m,
        _ => return Err("layout M is a CKKS layout".into()),
    };
    let wide = m.multi_model().ok_or("the model has no layout M")?.map_err(|e| e.to_string())?;
    let width = xs.row(0).len();
    let mut out = Vec::with_capacity(n * k);
    for start in (0..n).step_by(batch) {
        let m = (n - start).min(batch);
        let mut x: Vec<f64> = (start..start + m).flat_map(|r| xs.row(r).iter().copied()).collect();
        x.resize(batch * width, 0.0);
        let y = compiler::simulate_one(&wide, &x).map_err(|e| e.to_string())?;
        out.extend_from_slice(&y[..m * k]);
    }
    Ok(out)
}
