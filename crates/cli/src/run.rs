//! `heinfer run`: encrypted evaluation in one process — the quickest way to try a
//! compiled model. The client side (keys, encryption, decryption) and the server side
//! (`runtime::Service`) are the real ones; only the network is missing.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use ckks::{Decryptor, Encoder, Parameters};
use client::ClientKeys;
use indicatif::{ProgressBar, ProgressStyle};
use runtime::{CompiledModel, KeyStore, Request};

pub struct RunArgs<'a> {
    pub hem: &'a Path,
    pub input: &'a Path,
    pub labels: Option<&'a Path>,
    pub samples: Option<usize>,
    pub json: bool,
    /// a Paillier model's secret key to use instead of a new one
    pub secret_key: Option<&'a Path>,
}

pub fn run(a: RunArgs) -> Result<(), String> {
    let m = match model::AnyModel::read_file(a.hem).map_err(|e| e.to_string())? {
        model::AnyModel::Ckks(m) => m,
        model::AnyModel::Paillier(p) => return run_paillier(&a, &p),
        model::AnyModel::Bgv(_) => {
            let xs = compiler::npy::read(a.input).map_err(|e| format!("input file: {e}"))?;
            let ys = a.labels.map(compiler::npy::read).transpose().map_err(|e| format!("labels file: {e}"))?;
            let count = a.samples.unwrap_or(xs.rows());
            return crate::bgv_cmds::run(a.hem, &xs, ys.as_ref(), count, a.secret_key, a.json);
        }
    };
    let xs = compiler::npy::read(a.input).map_err(|e| format!("input file: {e}"))?;
    let xs = crate::prefix_input::through_array(&m.client, xs)?;
    let ys = a.labels.map(compiler::npy::read).transpose().map_err(|e| format!("labels file: {e}"))?;
    let count = a.samples.unwrap_or(xs.rows()).min(xs.rows());
    if count == 0 {
        return Err("the input file holds no samples".into());
    }
    let spec = m.client.clone();
    let params = Parameters::from_spec(&spec.params).map_err(|e| e.to_string())?;

    let t = Instant::now();
    let exe = CompiledModel::load(m.clone()).map_err(|e| e.to_string())?;
    let weights = exe.weight_memory_bytes();
    let load_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let keys = ClientKeys::generate(&params);
    let (bundle, key_id) = keys.evaluation_bundle_for(&spec);
    let keygen_s = t.elapsed().as_secs_f64();
    let service = exe.into_service(Arc::new(KeyStore::new(usize::MAX, None).map_err(|e| e.to_string())?));
    service.register(&bundle).map_err(|e| e.to_string())?;
    let hex = key_id.hex();

    let enc = Encoder::new(&params);
    let mut dec = Decryptor::new(keys.secret_key());
    let pb = ProgressBar::new(count as u64);
    pb.set_style(ProgressStyle::with_template("{bar:30} {pos}/{len} samples, {elapsed} {msg}").unwrap());
    let (mut t_enc, mut t_eval, mut t_dec) = (0.0, 0.0, 0.0);
    let (mut agree, mut correct, mut query_bytes, mut result_bytes) = (0usize, 0usize, 0usize, 0usize);
    let mut max_err: f64 = 0.0;
    let mut first = Vec::new();
    for i in 0..count {
        let x = xs.row(i);
        let t = Instant::now();
        let slots = spec.pack_input(x).map_err(|e| e.to_string())?;
        let cts = client::session::encrypt_slots(&spec, &mut dec, &enc, &slots).map_err(|e| e.to_string())?;
        t_enc += t.elapsed().as_secs_f64();
        query_bytes = cts.iter().map(Vec::len).sum();
        let t = Instant::now();
        let plain = crate::public_input::plain_input(&m, x);
        query_bytes += plain.as_ref().map_or(0, |p| 4 * p.values.len());
        let out = service
            .infer_with_plain(
                Request {
                    ciphertexts: cts.iter().map(|c| &c[..]).collect(),
                    key_id: Some(hex.as_bytes()),
                    evaluation_keys: None,
                },
                plain,
                &Default::default(),
            )
            .map_err(|e| e.to_string())?;
        t_eval += t.elapsed().as_secs_f64();
        result_bytes = out.ciphertexts.iter().map(Vec::len).sum();
        let t = Instant::now();
        let logits = client::session::decrypt_outputs(&spec, keys.secret_key(), &enc, &out.ciphertexts)
            .map_err(|e| e.to_string())?;
        t_dec += t.elapsed().as_secs_f64();
        let sim = crate::public_input::simulate(&m, x)?;
        for (p, q) in logits.iter().zip(&sim) {
            max_err = max_err.max((p - q).abs());
        }
        let pred = model::argmax(&logits);
        agree += (pred == model::argmax(&sim)) as usize;
        if let Some(y) = &ys {
            correct += (pred == y.row(i)[0] as usize) as usize;
        }
        if first.len() < 5 {
            first.push((pred, spec.postprocess(&logits)));
        }
        pb.inc(1);
    }
    pb.finish_and_clear();
    let n = count as f64;
    let summary = serde_json::json!({
        "model": m.name,
        "samples": count,
        "threads": rayon::current_num_threads(),
        "agreement_with_simulation": agree as f64 / n,
        "accuracy": ys.as_ref().map(|_| correct as f64 / n),
        "max_logit_error_vs_simulation": max_err,
        "ms_per_sample": {"encrypt": t_enc * 1e3 / n, "evaluate": t_eval * 1e3 / n, "decrypt": t_dec * 1e3 / n},
        "seconds": {"load": load_s, "keygen": keygen_s},
        "bytes": {"query": query_bytes, "result": result_bytes, "evaluation_keys": bundle.len(), "server_weights": weights},
        "key_id": hex,
    });
    if a.json {
        println!("{summary}");
        return Ok(());
    }
    println!("model {} — {count} samples encrypted, evaluated and decrypted in this process", m.name);
    for (i, (pred, post)) in first.iter().enumerate() {
        let shown: Vec<String> = post.iter().take(10).map(|v| format!("{v:.3}")).collect();
        println!("  sample {i}: class {pred}  [{}]", shown.join(", "));
    }
    println!("top-1 agreement with the plaintext simulation: {:.2}%", 100.0 * agree as f64 / n);
    if ys.is_some() {
        println!("accuracy against the labels: {:.2}%", 100.0 * correct as f64 / n);
    }
    println!("max |logit error| against the simulation: {max_err:.3e}");
    println!(
        "per sample: encrypt {:.1} ms, evaluate {:.1} ms ({} threads), decrypt {:.1} ms",
        t_enc * 1e3 / n,
        t_eval * 1e3 / n,
        rayon::current_num_threads(),
        t_dec * 1e3 / n
    );
    println!(
        "sizes: query {:.3} MB, result {:.3} MB, evaluation keys {:.2} MB, server weights {:.1} MB; key generation {keygen_s:.2} s",
        query_bytes as f64 / 1e6,
        result_bytes as f64 / 1e6,
        bundle.len() as f64 / 1e6,
        weights as f64 / 1e6
    );
    Ok(())
}

fn run_paillier(a: &RunArgs, p: &model::PaillierModel) -> Result<(), String> {
    let xs = compiler::npy::read(a.input).map_err(|e| format!("input file: {e}"))?;
    let ys = a.labels.map(compiler::npy::read).transpose().map_err(|e| format!("labels file: {e}"))?;
    let n = p.client.input_len();
    if xs.data.len() % n != 0 || xs.data.is_empty() {
        return Err(format!("input file has shape {:?}; the model takes samples of {n} values", xs.shape));
    }
    let rows = xs.data.len() / n;
    let count = a.samples.unwrap_or(rows).min(rows);
    if p.client.scheme == model::Scheme::Lwe {
        return crate::lwe_cmds::run(a.hem, &xs, ys.as_ref(), count, a.secret_key, a.json);
    }
    crate::paillier_cmds::run(a.hem, &xs, ys.as_ref(), count, a.secret_key, a.json)
}
