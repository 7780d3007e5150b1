//! The client commands (`keygen`, `encrypt`, `decrypt`, `run`) for a BGV integer model:
//! the same files and tensors as for CKKS — the evaluation-keys file holds a bundle with a
//! relinearisation key, a query file one batch of up to N samples (one ciphertext per
//! input feature, sample j in slot j), a result file one ciphertext per output.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use client::BgvSession;
use model::BgvSpec;
use runtime::{KeyStore, Request};

use crate::container::{read_container, write_container, KIND_QUERY, KIND_RESULT};

fn session(spec: BgvSpec, secret_key: &Path) -> Result<BgvSession, String> {
    BgvSession::load(spec, secret_key).map_err(|e| e.to_string())
}

fn rows(xs: &compiler::Array, d: usize, count: usize) -> Result<Vec<&[f64]>, String> {
    if xs.data.is_empty() || !xs.data.len().is_multiple_of(d) {
        return Err(format!("the input has shape {:?}; the model takes samples of {d} values", xs.shape));
    }
    Ok(xs.data.chunks(d).take(count).collect())
}

/// `heinfer keygen` on a BGV model: a new secret key (0600) and the relinearisation-key bundle.
pub fn keygen(spec: BgvSpec, secret_key: &Path, keys_out: &Path, reuse: bool, json: bool) -> Result<(), String> {
    let t = Instant::now();
    let s = if reuse {
        session(spec, secret_key)?
    } else {
        if secret_key.exists() {
            return Err(format!("{} exists; heinfer never overwrites a secret key", secret_key.display()));
        }
        let s = BgvSession::generate(spec).map_err(|e| e.to_string())?;
        s.save_secret(secret_key).map_err(|e| e.to_string())?;
        s
    };
    let (bundle, id) = s.key_bundle();
    std::fs::write(keys_out, &bundle).map_err(|e| format!("cannot write {}: {e}", keys_out.display()))?;
    if json {
        println!(
            "{}",
            serde_json::json!({"scheme": "bgv", "key_id": id.hex(), "bundle_bytes": bundle.len(),
                "seconds": t.elapsed().as_secs_f64(), "secret_key": secret_key, "keys_out": keys_out})
        );
    } else {
        println!("{}", id.hex());
        eprintln!(
            "BGV secret key: {} (mode 0600, keep it); relinearisation key: {} ({} bytes, send once)",
            secret_key.display(),
            keys_out.display(),
            bundle.len()
        );
    }
    Ok(())
}

/// `heinfer encrypt` on a BGV model: the first `count` samples as one batch (at most N).
pub fn encrypt(spec: BgvSpec, secret_key: &Path, xs: &compiler::Array, count: usize, out: &Path) -> Result<(), String> {
    let s = session(spec, secret_key)?;
    let x = rows(xs, s.spec().input_len(), count)?;
    let cts = s.encrypt_batch(&x).map_err(|e| e.to_string())?;
    std::fs::write(out, write_container(KIND_QUERY, &cts))
        .map_err(|e| format!("cannot write {}: {e}", out.display()))?;
    println!("{}", out.display());
    eprintln!("{} samples in one batch of {} ciphertexts", x.len(), cts.len());
    Ok(())
}

/// `heinfer decrypt` on a BGV model: every result file's first `samples` samples (all N
/// slots when not given), one line each.
pub fn decrypt(
    spec: BgvSpec,
    secret_key: &Path,
    results: &[PathBuf],
    samples: Option<usize>,
    postprocess: bool,
    json: bool,
) -> Result<(), String> {
    let s = session(spec, secret_key)?;
    let count = samples.unwrap_or(s.params().n());
    for r in results {
        let what = r.display().to_string();
        let bytes = std::fs::read(r).map_err(|e| format!("cannot read {what}: {e}"))?;
        let el = read_container(&what, KIND_RESULT, &bytes)?;
        let ys = s.decrypt_batch(&el, count).map_err(|e| format!("{what}: {e}"))?;
        for (i, y) in ys.iter().enumerate() {
            let class = if y.len() == 1 { (y[0] > 0.0) as usize } else { model::argmax(y) };
            let shown = if postprocess { s.postprocess(y) } else { y.clone() };
            if json {
                println!("{}", serde_json::json!({"file": what, "sample": i, "output": shown, "class": class}));
            } else {
                let v: Vec<String> = shown.iter().map(|v| format!("{v:.6}")).collect();
                println!("{what}[{i}]: class {class} [{}]", v.join(", "));
            }
        }
    }
    Ok(())
}

/// `heinfer run` on a BGV model: keys, one batch encrypted, the runtime's service,
/// decryption; every sample's outputs checked equal to the integer computation.
pub fn run(
    hem: &Path,
    xs: &compiler::Array,
    ys: Option<&compiler::Array>,
    count: usize,
    secret_key: Option<&Path>,
    json: bool,
) -> Result<(), String> {
    let t = Instant::now();
    let store = Arc::new(KeyStore::new(1 << 31, None).map_err(|e| e.to_string())?);
    let loaded = runtime::load_model(hem, None, store).map_err(|e| e.to_string())?;
    let runtime::Service::Bgv(svc) = &loaded.service else { return Err("not a BGV model".into()) };
    let spec = svc.model().client.clone();
    let load_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let s = match secret_key {
        Some(p) => session(spec.clone(), p)?,
        None => BgvSession::generate(spec.clone()).map_err(|e| e.to_string())?,
    };
    let (bundle, id) = s.key_bundle();
    loaded.service.register(&bundle).map_err(|e| e.to_string())?;
    let keys_s = t.elapsed().as_secs_f64();
    let hex = id.hex();
    let x = rows(xs, spec.input_len(), count.min(s.params().n()))?;
    let c = x.len();
    let t = Instant::now();
    let q = s.encrypt_batch(&x).map_err(|e| e.to_string())?;
    let t_enc = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let out = loaded
        .service
        .infer(Request {
            ciphertexts: q.iter().map(|c| &c[..]).collect(),
            key_id: Some(hex.as_bytes()),
            evaluation_keys: None,
        })
        .map_err(|e| e.to_string())?;
    let t_eval = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let answers: Vec<&[u8]> = out.ciphertexts.iter().map(|c| &c[..]).collect();
    let ints = s.decrypt_integers(&answers, c).map_err(|e| e.to_string())?;
    let t_dec = t.elapsed().as_secs_f64();
    let net = svc.network();
    let (mut exact, mut correct) = (0usize, 0usize);
    for (i, xi) in x.iter().enumerate() {
        let want = net.reference(&spec.encode_sample(xi).map_err(|e| e.to_string())?).ok_or("i128 overflow")?;
        exact += want.iter().zip(&ints[i]).all(|(w, g)| w == g) as usize;
        let y: Vec<f64> = ints[i].iter().map(|&v| v as f64 / spec.output.scale).collect();
        if let Some(l) = ys {
            correct += (model::argmax(&y) == l.data[i] as usize) as usize;
        }
    }
    let (q_bytes, r_bytes) =
        (q.iter().map(Vec::len).sum::<usize>(), out.ciphertexts.iter().map(Vec::len).sum::<usize>());
    let cf = c as f64;
    let summary = serde_json::json!({
        "model": svc.model().name, "scheme": "bgv", "samples": c, "batch": s.params().n(),
        "exact_matches": exact, "accuracy": ys.map(|_| correct as f64 / cf),
        "seconds": {"load": load_s, "keys": keys_s, "encrypt": t_enc, "evaluate": t_eval, "decrypt": t_dec},
        "ms_per_sample": {"encrypt": t_enc * 1e3 / cf, "evaluate": t_eval * 1e3 / cf, "decrypt": t_dec * 1e3 / cf},
        "bytes": {"query": q_bytes, "result": r_bytes, "evaluation_keys": bundle.len()},
        "key_id": hex,
    });
    if json {
        println!("{summary}");
    } else {
        println!("model {} (BGV, exact) — {c} samples in one batch of {}", svc.model().name, s.params().n());
        println!("decrypted outputs equal to the integer computation: {exact}/{c}");
        if ys.is_some() {
            println!("accuracy against the labels: {:.2}%", 100.0 * correct as f64 / cf);
        }
        println!(
            "batch: encrypt {t_enc:.2} s, evaluate {t_eval:.2} s, decrypt {t_dec:.2} s ({:.2} ms per sample in all); \
             query {q_bytes} B, answer {r_bytes} B, relinearisation key {} B",
            (t_enc + t_eval + t_dec) * 1e3 / cf,
            bundle.len()
        );
    }
    if exact != c {
        return Err(format!("{} of {c} decrypted results differ from the integer computation", c - exact));
    }
    Ok(())
}
