//! The client commands (`keygen`, `encrypt`, `decrypt`, `run`) for a seeded-LWE linear
//! model: the same files and tensors as for the other schemes. The "evaluation keys" file
//! `keygen` writes is the client's seeded RLWE public key (13.6 KB) for a model that
//! re-randomises its answers, and empty for an older key-free one (`evaluate` then
//! registers nothing).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use client::LweSession;
use model::LinearSpec;
use runtime::{KeyStore, Request};

use crate::container::{print_linear_results, write_container, KIND_QUERY};

fn session(spec: LinearSpec, secret_key: &Path) -> Result<LweSession, String> {
    LweSession::load(spec, secret_key).map_err(|e| e.to_string())
}

/// `heinfer keygen` on an LWE model: a 32-byte secret key to a new 0600 file, and the public
/// key to register (empty for a key-free model).
pub fn keygen(spec: LinearSpec, secret_key: &Path, keys_out: &Path, reuse: bool, json: bool) -> Result<(), String> {
    let s = if reuse {
        session(spec, secret_key)?
    } else {
        if secret_key.exists() {
            return Err(format!("{} exists; heinfer never overwrites a secret key", secret_key.display()));
        }
        let s = LweSession::generate(spec).map_err(|e| e.to_string())?;
        s.save_secret(secret_key).map_err(|e| e.to_string())?;
        s
    };
    let pk = s.public_key().map_err(|e| e.to_string())?;
    std::fs::write(keys_out, &pk).map_err(|e| format!("cannot write {}: {e}", keys_out.display()))?;
    let id = s.key_id_hex();
    if json {
        println!(
            "{}",
            serde_json::json!({"scheme": "lwe", "key_id": id, "bundle_bytes": pk.len(),
                "secret_key": secret_key, "keys_out": keys_out})
        );
    } else {
        println!("{id}");
        if pk.is_empty() {
            eprintln!(
                "LWE secret key: {} (mode 0600, keep it); this model is key-free: nothing to send to the server \
                 (its keys file {} is empty)",
                secret_key.display(),
                keys_out.display()
            );
        } else {
            eprintln!(
                "LWE secret key: {} (mode 0600, keep it); public key {} ({} B): register it once in \
                 EVALUATION_KEYS, the server re-randomises every answer under it",
                secret_key.display(),
                keys_out.display(),
                pk.len()
            );
        }
    }
    Ok(())
}

pub fn encrypt(
    spec: LinearSpec,
    secret_key: &Path,
    xs: &compiler::Array,
    count: usize,
    files: &[PathBuf],
) -> Result<(), String> {
    let s = session(spec, secret_key)?;
    let n = s.input_len();
    for (i, f) in files.iter().enumerate().take(count) {
        let el = s.encrypt(&xs.data[i * n..(i + 1) * n]).map_err(|e| format!("sample {i}: {e}"))?;
        std::fs::write(f, write_container(KIND_QUERY, &el))
            .map_err(|e| format!("cannot write {}: {e}", f.display()))?;
        println!("{}", f.display());
    }
    Ok(())
}

pub fn decrypt(
    spec: LinearSpec,
    secret_key: &Path,
    results: &[PathBuf],
    postprocess: bool,
    release: Option<&str>,
    json: bool,
) -> Result<(), String> {
    if release.is_some() {
        return Err("--release applies to CKKS results; decrypt an LWE answer without it".into());
    }
    let s = session(spec, secret_key)?;
    print_linear_results(results, postprocess, json, |el| {
        let y = s.decrypt(el).map_err(|e| e.to_string())?;
        let post = s.postprocess(&y);
        Ok((y, post))
    })
}

/// `heinfer run` on an LWE model: secret key, encryption, the runtime's service, decryption;
/// each sample's scores checked within the spec's error bound of the fixed-point scores.
pub fn run(
    hem: &Path,
    xs: &compiler::Array,
    ys: Option<&compiler::Array>,
    count: usize,
    secret_key: Option<&Path>,
    json: bool,
) -> Result<(), String> {
    let t = Instant::now();
    let store = Arc::new(KeyStore::new(1 << 30, None).map_err(|e| e.to_string())?);
    let loaded = runtime::load_model(hem, None, store).map_err(|e| e.to_string())?;
    let runtime::Service::Lwe(svc) = &loaded.service else { return Err("not an LWE model".into()) };
    let m = svc.model().clone();
    let spec = m.client.clone();
    let lwe = spec.lwe.clone().ok_or("no LWE parameters")?;
    let load_s = t.elapsed().as_secs_f64();
    let s = match secret_key {
        Some(p) => session(spec.clone(), p)?,
        None => LweSession::generate(spec.clone()).map_err(|e| e.to_string())?,
    };
    let pk = s.public_key().map_err(|e| e.to_string())?;
    if !pk.is_empty() {
        loaded.service.register(&pk).map_err(|e| e.to_string())?;
    }
    // the same evaluation without re-randomisation, timed beside it: what re-randomisation
    // costs in time (its cost in answer bits is in the compile report)
    let params = lwe::Params::new(lwe.log_n, lwe.log_q).map_err(|e| e.to_string())?;
    let rows = lwe.answered(m.weights.len());
    let plain_w: Vec<Vec<i64>> = rows.iter().map(|&j| m.weights[j].clone()).collect();
    let plain_b: Vec<i64> =
        rows.iter().map(|&j| m.bias[j].parse::<i64>().map_err(|e| e.to_string())).collect::<Result<_, _>>()?;
    let mut t_plain = 0.0;
    let (mut t_enc, mut t_eval, mut t_dec) = (0.0, 0.0, 0.0);
    let (mut within, mut correct, mut q_bytes, mut r_bytes, mut max_err) = (0usize, 0usize, 0usize, 0usize, 0.0f64);
    let n = s.input_len();
    let scale = 2f64.powi(spec.output.frac_bits as i32);
    let mut first = Vec::new();
    for i in 0..count {
        let x = &xs.data[i * n..(i + 1) * n];
        let t = Instant::now();
        let q = s.encrypt(x).map_err(|e| e.to_string())?;
        t_enc += t.elapsed().as_secs_f64();
        q_bytes = q.iter().map(Vec::len).sum();
        let t = Instant::now();
        let out = loaded
            .service
            .infer(Request { ciphertexts: q.iter().map(|c| &c[..]).collect(), key_id: None, evaluation_keys: None })
            .map_err(|e| e.to_string())?;
        t_eval += t.elapsed().as_secs_f64();
        let query = lwe::Query::from_bytes(&q[0]).map_err(|e| e.to_string())?;
        let t = Instant::now();
        lwe::evaluate(params, &query, &plain_w, &plain_b, lwe.answer_log_q).map_err(|e| e.to_string())?;
        t_plain += t.elapsed().as_secs_f64();
        r_bytes = out.ciphertexts.iter().map(Vec::len).sum();
        let t = Instant::now();
        let y = s.decrypt(&out.ciphertexts).map_err(|e| e.to_string())?;
        t_dec += t.elapsed().as_secs_f64();
        // the fixed-point scores, computed in the clear
        let enc = s.encode(x).map_err(|e| e.to_string())?;
        let mut ok = true;
        for (j, row) in m.weights.iter().enumerate() {
            let b: i128 = m.bias[j].parse::<i64>().map_err(|e| e.to_string())? as i128;
            let want = row.iter().zip(&enc).fold(b, |a, (&w, &v)| a + w as i128 * v as i128) as f64 / scale;
            let err = (y[j] - want).abs();
            max_err = max_err.max(err);
            ok &= err <= lwe.error_bound;
        }
        within += ok as usize;
        let class = if y.len() == 1 { (y[0] > 0.0) as usize } else { model::argmax(&y) };
        if let Some(l) = ys {
            correct += (class == l.data[i] as usize) as usize;
        }
        if first.len() < 5 {
            first.push((class, s.postprocess(&y)));
        }
    }
    let c = count as f64;
    let summary = serde_json::json!({
        "model": m.name, "scheme": "lwe", "samples": count,
        "within_bound": within, "error_bound": lwe.error_bound, "max_error": max_err,
        "accuracy": ys.map(|_| correct as f64 / c),
        "rerandomized": lwe.rerandomize,
        "ms_per_sample": {"encrypt": t_enc * 1e3 / c, "evaluate": t_eval * 1e3 / c, "decrypt": t_dec * 1e3 / c,
            "evaluate_without_rerandomization": t_plain * 1e3 / c},
        "seconds": {"load": load_s},
        "bytes": {"query": q_bytes, "result": r_bytes, "evaluation_keys": pk.len()},
        "key_id": s.key_id_hex(),
    });
    if json {
        println!("{summary}");
    } else {
        println!("model {} (seeded LWE) — {count} samples encrypted, evaluated and decrypted in this process", m.name);
        for (i, (class, post)) in first.iter().enumerate() {
            let v: Vec<String> = post.iter().map(|v| format!("{v:.4}")).collect();
            println!("  sample {i}: class {class}  [{}]", v.join(", "));
        }
        println!(
            "decrypted scores within ±{:.2e} of the fixed-point computation: {within}/{count} (max error {max_err:.2e})",
            lwe.error_bound
        );
        if ys.is_some() {
            println!("accuracy against the labels: {:.2}%", 100.0 * correct as f64 / c);
        }
        println!(
            "per sample: encrypt {:.3} ms, evaluate {:.3} ms ({:.3} ms without re-randomisation), decrypt {:.3} ms; \
             query {q_bytes} B, answer {r_bytes} B, keys {} B{}",
            t_enc * 1e3 / c,
            t_eval * 1e3 / c,
            t_plain * 1e3 / c,
            t_dec * 1e3 / c,
            pk.len(),
            if lwe.rerandomize { " (the public key, once per client)" } else { " (key-free model)" }
        );
    }
    if within != count {
        return Err(format!("{} of {count} decrypted results exceed the error bound", count - within));
    }
    Ok(())
}
