//! `heinfer keygen`, `encrypt`, `evaluate`, `decrypt`: the client's three steps and the
//! server's one, each as a command over files, so a model can be tried step by step
//! (and each step's bad inputs seen) without a server.
//!
//! Encrypted queries and results are stored as *ciphertext files*:
//!
//! ```text
//! "HECT"  u16 version (1)  u16 kind (1 query, 2 result)  u32 count
//! count × ( u32 length  bytes )        all integers little-endian
//! ```
//!
//! The part after the 12-byte header is exactly the KServe/Triton BYTES tensor of
//! `ENCRYPTED_INPUT` / `ENCRYPTED_OUTPUT` (each element one serialized ciphertext in
//! the `ckks` wire format), so a file's tail can be sent as is.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use client::Session;
use model::{AnyModel, AnySpec, ClientSpec, HeModel};
use runtime::{KeyStore, Request};

use crate::{find_hem, spinner};

pub use crate::container::{read_container, write_container, KIND_QUERY, KIND_RESULT};

/// The client spec, of either scheme, of a model directory, a model.hem, or a client-spec JSON file.
pub fn load_any_spec(path: &Path) -> Result<AnySpec, String> {
    if path.extension().map(|e| e == "json").unwrap_or(false) {
        let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        return AnySpec::from_json(&text).map_err(|e| format!("{}: not a client spec: {e}", path.display()));
    }
    let hem = find_hem(path);
    Ok(AnyModel::read_file(&hem).map_err(|e| format!("{}: {e}", hem.display()))?.spec())
}

/// The client spec of a model directory, a model.hem, or a client-spec JSON file.
pub fn load_spec(path: &Path) -> Result<ClientSpec, String> {
    let is_json = path.extension().map(|e| e == "json").unwrap_or(false);
    if is_json {
        let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        return ClientSpec::from_json(&text).map_err(|e| format!("{}: not a client spec: {e}", path.display()));
    }
    Ok(load_model(path)?.client)
}

pub fn load_model(path: &Path) -> Result<HeModel, String> {
    let hem = find_hem(path);
    HeModel::read_file(&hem).map_err(|e| format!("{}: {e}", hem.display()))
}

fn session(model: &Path, secret_key: &Path) -> Result<Session, String> {
    let spec = load_spec(model)?;
    Session::load(spec, secret_key).map_err(|e| e.to_string())
}

fn write_new(path: &Path, bytes: &[u8]) -> Result<(), String> {
    std::fs::write(path, bytes).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

fn read(path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
}

/// `heinfer keygen`: a new secret key (0600, never overwritten) and the evaluation-key bundle.
pub fn keygen(model: &Path, secret_key: &Path, keys_out: &Path, reuse: bool, json: bool) -> Result<(), String> {
    let spec = match load_any_spec(model)? {
        AnySpec::Paillier(spec) => return crate::paillier_cmds::keygen(spec, secret_key, keys_out, reuse, json),
        AnySpec::Bgv(spec) => return crate::bgv_cmds::keygen(spec, secret_key, keys_out, reuse, json),
        AnySpec::Ckks(spec) => spec,
    };
    if reuse {
        return Err("--reuse-secret-key rewrites a Paillier public key; a CKKS model's evaluation keys are made \
                    with a new secret key (run keygen without it)"
            .into());
    }
    if secret_key.exists() {
        return Err(format!("{} exists; heinfer never overwrites a secret key", secret_key.display()));
    }
    let pb = spinner();
    pb.set_message(format!(
        "generating keys: relinearization {} + {} Galois keys at N = 2^{}",
        spec.relinearization,
        spec.rotation_steps.len(),
        spec.params.log_n
    ));
    let t = std::time::Instant::now();
    let s = Session::generate(spec).map_err(|e| e.to_string());
    let s = match s {
        Ok(s) => s,
        Err(e) => {
            pb.finish_and_clear();
            return Err(e);
        }
    };
    let (bundle, id) = s.evaluation_bundle();
    pb.finish_and_clear();
    s.save_secret(secret_key).map_err(|e| e.to_string())?;
    write_new(keys_out, &bundle)?;
    if json {
        println!(
            "{}",
            serde_json::json!({"key_id": id.hex(), "bundle_bytes": bundle.len(), "seconds": t.elapsed().as_secs_f64(),
                "secret_key": secret_key, "keys_out": keys_out})
        );
    } else {
        println!("{}", id.hex());
        eprintln!(
            "secret key: {} (mode 0600, keep it); evaluation keys: {} ({:.2} MB, send once); {:.2} s",
            secret_key.display(),
            keys_out.display(),
            bundle.len() as f64 / 1e6,
            t.elapsed().as_secs_f64()
        );
    }
    Ok(())
}

/// `heinfer encrypt`: one ciphertext file per sample.
pub fn encrypt(
    model: &Path,
    secret_key: &Path,
    input: &Path,
    samples: Option<usize>,
    out: &Path,
) -> Result<(), String> {
    let any = load_any_spec(model)?;
    if let AnySpec::Bgv(spec) = any {
        let xs = compiler::npy::read(input).map_err(|e| format!("input file {}: {e}", input.display()))?;
        return crate::bgv_cmds::encrypt(spec, secret_key, &xs, samples.unwrap_or(usize::MAX), out);
    }
    if let AnySpec::Paillier(spec) = any {
        let xs = compiler::npy::read(input).map_err(|e| format!("input file {}: {e}", input.display()))?;
        let n = spec.input_len();
        if xs.data.len() % n != 0 || xs.data.is_empty() {
            return Err(format!(
                "input file {} has shape {:?}; the model takes samples of shape {:?} ({n} values)",
                input.display(),
                xs.shape,
                spec.input.shape
            ));
        }
        let count = samples.unwrap_or(xs.data.len() / n).min(xs.data.len() / n);
        let files = output_files(count, out)?;
        return crate::paillier_cmds::encrypt(spec, secret_key, &xs, count, &files);
    }
    let s = session(model, secret_key)?;
    let xs = compiler::npy::read(input).map_err(|e| format!("input file {}: {e}", input.display()))?;
    let xs = crate::prefix_input::through_array(s.spec(), xs)?;
    let n = s.input_len();
    if xs.data.len() % n.max(1) != 0 || xs.data.is_empty() {
        return Err(format!(
            "input file {} has shape {:?}; the model takes samples of shape {:?} ({n} values)",
            input.display(),
            xs.shape,
            s.spec().input.shape
        ));
    }
    let rows = xs.data.len() / n;
    let count = samples.unwrap_or(rows).min(rows);
    let files = output_files(count, out)?;
    for (i, f) in files.iter().enumerate() {
        let cts = s.encrypt(&xs.data[i * n..(i + 1) * n]).map_err(|e| format!("sample {i}: {e}"))?;
        write_new(f, &write_container(KIND_QUERY, &cts))?;
        println!("{}", f.display());
    }
    Ok(())
}

/// One query file per sample: `out` itself for one sample, else files in the directory `out`.
fn output_files(count: usize, out: &Path) -> Result<Vec<PathBuf>, String> {
    Ok(if count == 1 && !out.is_dir() {
        vec![out.to_path_buf()]
    } else {
        std::fs::create_dir_all(out).map_err(|e| format!("cannot create {}: {e}", out.display()))?;
        (0..count).map(|i| out.join(format!("query_{i:05}.hect"))).collect()
    })
}

/// `heinfer evaluate`: the server's step, in this process — a result file per query file.
pub fn evaluate(model: &Path, keys: &Path, queries: &[PathBuf], out: &Path) -> Result<(), String> {
    // Malformed query files are refused before the (slower) model and key loading.
    let files: Vec<Vec<u8>> = queries.iter().map(|q| read(q)).collect::<Result<_, _>>()?;
    for (q, bytes) in queries.iter().zip(&files) {
        read_container(&q.display().to_string(), KIND_QUERY, bytes)?;
    }
    let store = KeyStore::new(usize::MAX, None).map_err(|e| e.to_string())?;
    let hem = find_hem(model);
    let service = runtime::load_model(&hem, None, Arc::new(store)).map_err(|e| e.to_string())?.service;
    let bundle = read(keys)?;
    // A key-free LWE model (compiled before re-randomisation) has an empty keys file: nothing to register.
    let hex = if service.scheme() == model::Scheme::Lwe && bundle.is_empty() {
        None
    } else {
        Some(service.register(&bundle).map_err(|e| format!("evaluation keys {}: {e}", keys.display()))?.hex())
    };
    let many = queries.len() > 1 || out.is_dir();
    if many {
        std::fs::create_dir_all(out).map_err(|e| format!("cannot create {}: {e}", out.display()))?;
    }
    let pb = if queries.len() > 1 { Some(indicatif::ProgressBar::new(queries.len() as u64)) } else { None };
    for (q, bytes) in queries.iter().zip(&files) {
        let what = q.display().to_string();
        let cts = read_container(&what, KIND_QUERY, bytes)?;
        let resp = service
            .infer(Request { ciphertexts: cts, key_id: hex.as_deref().map(str::as_bytes), evaluation_keys: None })
            .map_err(|e| format!("{what}: {e}"))?;
        let dest = if many {
            let stem = q.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or("query".into());
            out.join(format!("{}.hect", stem.replace("query", "result")))
        } else {
            out.to_path_buf()
        };
        write_new(&dest, &write_container(KIND_RESULT, &resp.ciphertexts))?;
        if let Some(pb) = &pb {
            pb.inc(1);
        }
        pb.as_ref()
            .map(|p| p.suspend(|| println!("{}", dest.display())))
            .unwrap_or_else(|| println!("{}", dest.display()));
    }
    if let Some(pb) = pb {
        pb.finish_and_clear();
    }
    Ok(())
}

/// `heinfer decrypt`: each result file → its output vector (and class); with
/// `release`, decrypted for release and with the guarantee it gives.
pub fn decrypt(
    model: &Path,
    secret_key: &Path,
    results: &[PathBuf],
    postprocess: bool,
    release: Option<&str>,
    json: bool,
) -> Result<(), String> {
    if let AnySpec::Paillier(spec) = load_any_spec(model)? {
        return crate::paillier_cmds::decrypt(spec, secret_key, results, postprocess, release, json);
    }
    let s = session(model, secret_key)?;
    let release = release.map(client::Release::parse).transpose().map_err(|e| e.to_string())?;
    for r in results {
        let bytes = read(r)?;
        let what = r.display().to_string();
        let cts = read_container(&what, KIND_RESULT, &bytes)?;
        let (y, guarantee) = match &release {
            None => (s.decrypt(&cts).map_err(|e| format!("{what}: {e}"))?, None),
            Some(policy) => {
                let (y, g) = s.decrypt_for_release(&cts, policy).map_err(|e| format!("{what}: {e}"))?;
                (y, Some(g.to_string()))
            }
        };
        let class = model::argmax(&y);
        let shown = if postprocess { s.postprocess(&y) } else { y };
        if json {
            println!("{}", serde_json::json!({"file": what, "output": shown, "class": class, "release": guarantee}));
        } else {
            let v: Vec<String> = shown.iter().map(|v| format!("{v:.4}")).collect();
            println!("{what}: class {class} [{}]", v.join(", "));
            if let Some(g) = guarantee {
                println!("  released with {g}");
            }
        }
    }
    Ok(())
}
