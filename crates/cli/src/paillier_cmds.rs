//! The client commands (`keygen`, `encrypt`, `decrypt`, `run`) for a Paillier linear
//! model: the same files and tensors as for CKKS — the "evaluation keys" file holds the
//! public key, each query file one ciphertext batch, each result file one batch of scores.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use client::PaillierSession;
use model::LinearSpec;
use runtime::{KeyStore, Request};

use crate::container::{print_linear_results, write_container, KIND_QUERY};
use crate::spinner;

fn session(spec: LinearSpec, secret_key: &Path) -> Result<PaillierSession, String> {
    PaillierSession::load(spec, secret_key).map_err(|e| e.to_string())
}

/// `heinfer keygen` on a Paillier model: a key pair (safe primes: 10–60 s), the secret key
/// to a new 0600 file, the public key to `keys_out`. With `reuse`, the public key of an
/// existing secret key file is written again instead.
pub fn keygen(spec: LinearSpec, secret_key: &Path, keys_out: &Path, reuse: bool, json: bool) -> Result<(), String> {
    if spec.scheme == model::Scheme::Lwe {
        return crate::lwe_cmds::keygen(spec, secret_key, keys_out, reuse, json);
    }
    let t = Instant::now();
    let s = if reuse {
        session(spec, secret_key)?
    } else {
        if secret_key.exists() {
            return Err(format!("{} exists; heinfer never overwrites a secret key", secret_key.display()));
        }
        let pb = spinner();
        pb.set_message(format!(
            "generating a {}-bit Paillier key pair (safe primes; up to a minute)",
            spec.min_modulus_bits
        ));
        let s = PaillierSession::generate(spec).map_err(|e| e.to_string());
        pb.finish_and_clear();
        let s = s?;
        s.save_secret(secret_key).map_err(|e| e.to_string())?;
        s
    };
    let (pk, id) = s.public_key_bytes();
    std::fs::write(keys_out, &pk).map_err(|e| format!("cannot write {}: {e}", keys_out.display()))?;
    if json {
        println!(
            "{}",
            serde_json::json!({"scheme": "paillier", "key_id": id.hex(), "bundle_bytes": pk.len(),
                "seconds": t.elapsed().as_secs_f64(), "secret_key": secret_key, "keys_out": keys_out})
        );
    } else {
        println!("{}", id.hex());
        eprintln!(
            "Paillier secret key: {} (mode 0600, keep it); public key: {} ({} bytes, send once); {:.1} s",
            secret_key.display(),
            keys_out.display(),
            pk.len(),
            t.elapsed().as_secs_f64()
        );
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
    if spec.scheme == model::Scheme::Lwe {
        return crate::lwe_cmds::encrypt(spec, secret_key, xs, count, files);
    }
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
    if spec.scheme == model::Scheme::Lwe {
        return crate::lwe_cmds::decrypt(spec, secret_key, results, postprocess, release, json);
    }
    if release.is_some() {
        return Err("--release applies to CKKS results (it floods approximate noise); Paillier decryption is exact \
                    and leaks nothing about the key: decrypt without --release"
            .into());
    }
    let s = session(spec, secret_key)?;
    print_linear_results(results, postprocess, json, |el| {
        let y = s.decrypt(el).map_err(|e| e.to_string())?;
        let post = s.postprocess(&y);
        Ok((y, post))
    })
}

/// `heinfer run` on a Paillier model: key pair (or `secret_key`), encryption, the runtime's
/// service, decryption, each sample's scores checked equal to the fixed-point computation.
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
    let runtime::Service::Paillier(svc) = &loaded.service else { return Err("not a Paillier model".into()) };
    let spec = svc.model().client.clone();
    let load_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let s = match secret_key {
        Some(p) => session(spec.clone(), p)?,
        None => PaillierSession::generate(spec.clone()).map_err(|e| e.to_string())?,
    };
    let keygen_s = t.elapsed().as_secs_f64();
    let (pk, id) = s.public_key_bytes();
    let t = Instant::now();
    loaded.service.register(&pk).map_err(|e| e.to_string())?;
    let register_s = t.elapsed().as_secs_f64();
    let hex = id.hex();
    let (mut t_enc, mut t_eval, mut t_dec) = (0.0, 0.0, 0.0);
    let (mut exact, mut correct, mut q_bytes, mut r_bytes) = (0usize, 0usize, 0usize, 0usize);
    let n = s.input_len();
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
            .infer(Request {
                ciphertexts: q.iter().map(|c| &c[..]).collect(),
                key_id: Some(hex.as_bytes()),
                evaluation_keys: None,
            })
            .map_err(|e| e.to_string())?;
        t_eval += t.elapsed().as_secs_f64();
        r_bytes = out.ciphertexts.iter().map(Vec::len).sum();
        let t = Instant::now();
        let ints = s.decrypt_integers(&out.ciphertexts).map_err(|e| e.to_string())?;
        let y = s.decode_scores(&ints).map_err(|e| e.to_string())?;
        t_dec += t.elapsed().as_secs_f64();
        let want = svc.linear().evaluate_plain(&s.encode(x).map_err(|e| e.to_string())?).map_err(|e| e.to_string())?;
        exact += (ints == want) as usize;
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
        "model": svc.model().name, "scheme": "paillier", "samples": count,
        "exact_matches": exact, "accuracy": ys.map(|_| correct as f64 / c),
        "ms_per_sample": {"encrypt": t_enc * 1e3 / c, "evaluate": t_eval * 1e3 / c, "decrypt": t_dec * 1e3 / c},
        "seconds": {"load": load_s, "keygen": keygen_s, "register": register_s},
        "bytes": {"query": q_bytes, "result": r_bytes, "evaluation_keys": pk.len()},
        "key_id": hex,
    });
    if json {
        println!("{summary}");
    } else {
        println!(
            "model {} (Paillier) — {count} samples encrypted, evaluated and decrypted in this process",
            svc.model().name
        );
        for (i, (class, post)) in first.iter().enumerate() {
            let v: Vec<String> = post.iter().map(|v| format!("{v:.4}")).collect();
            println!("  sample {i}: class {class}  [{}]", v.join(", "));
        }
        println!("decrypted scores equal to the fixed-point computation: {exact}/{count}");
        if ys.is_some() {
            println!("accuracy against the labels: {:.2}%", 100.0 * correct as f64 / c);
        }
        println!(
            "per sample: encrypt {:.1} ms, evaluate {:.1} ms, decrypt {:.1} ms; query {} B, answer {} B, public key {} B",
            t_enc * 1e3 / c,
            t_eval * 1e3 / c,
            t_dec * 1e3 / c,
            q_bytes,
            r_bytes,
            pk.len()
        );
    }
    if exact != count {
        return Err(format!("{} of {count} decrypted results differ from the fixed-point computation", count - exact));
    }
    Ok(())
}
