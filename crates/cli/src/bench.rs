//! `heinfer bench`: where the time and the bytes of one encrypted inference go —
//! key generation, encrypt, evaluate, decrypt (median and mean over the samples),
//! query / result / key-bundle sizes, and the server's memory (encoded weights, key
//! store) — as a table and as JSON. Client and server are the real ones
//! (`client::Session`, `runtime::Service`), in one process.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use client::Session;
use runtime::{CompiledModel, KeyStore, Request};

use crate::client_cmds::load_model;

pub struct BenchArgs<'a> {
    pub model: &'a Path,
    pub input: Option<&'a Path>,
    pub samples: usize,
    pub json: bool,
}

fn stats(v: &[f64]) -> (f64, f64) {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let med = if s.is_empty() { 0.0 } else { s[s.len() / 2] };
    (med, s.iter().sum::<f64>() / s.len().max(1) as f64)
}

pub fn bench(a: BenchArgs) -> Result<(), String> {
    let m = load_model(a.model)?;
    let spec = m.client.clone();
    // A split model takes the original input: the client runs the public prefix first.
    let n_in = crate::prefix_input::sample_len(&spec);
    let prefix = crate::prefix_input::runner(&spec)?;
    let count = a.samples.max(1);
    // Inputs: the given file's first rows, or pseudo-random values in [0, 1).
    let xs: Vec<Vec<f64>> = match a.input {
        Some(p) => {
            let arr = compiler::npy::read(p).map_err(|e| format!("input file {}: {e}", p.display()))?;
            if arr.data.len() % n_in.max(1) != 0 || arr.data.is_empty() {
                return Err(format!(
                    "input file {} has shape {:?}; samples of {n_in} values needed",
                    p.display(),
                    arr.shape
                ));
            }
            let rows = arr.data.len() / n_in;
            (0..count).map(|i| arr.data[(i % rows) * n_in..(i % rows + 1) * n_in].to_vec()).collect()
        }
        None => {
            let mut st = 0x2545_f491_4f6c_dd1du64;
            (0..count)
                .map(|_| {
                    (0..n_in)
                        .map(|_| {
                            st ^= st << 13;
                            st ^= st >> 7;
                            st ^= st << 17;
                            (st >> 11) as f64 / (1u64 << 53) as f64
                        })
                        .collect()
                })
                .collect()
        }
    };

    let t = Instant::now();
    let exe = CompiledModel::load(m.clone()).map_err(|e| e.to_string())?;
    let load_s = t.elapsed().as_secs_f64();
    let weights = exe.weight_memory_bytes();
    let store = Arc::new(KeyStore::new(usize::MAX, None).map_err(|e| e.to_string())?);
    let service = exe.into_service(store.clone());

    let pb = crate::spinner();
    pb.set_message("generating keys");
    let t = Instant::now();
    let session = Session::generate(spec.clone()).map_err(|e| e.to_string())?;
    let (bundle, id) = session.evaluation_bundle();
    let keygen_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    service.register(&bundle).map_err(|e| e.to_string())?;
    let register_s = t.elapsed().as_secs_f64();
    let hex = id.hex();

    let (mut te, mut tv, mut td) = (vec![], vec![], vec![]);
    let (mut query, mut result) = (0usize, 0usize);
    let mut max_err: f64 = 0.0;
    for (i, x) in xs.iter().enumerate() {
        pb.set_message(format!("sample {}/{count}", i + 1));
        let t = Instant::now();
        // The prefix in clear counts in the client's encryption time (it is the client's work).
        let x = &crate::prefix_input::through(prefix.as_ref(), x)?;
        let cts = session.encrypt(x).map_err(|e| e.to_string())?;
        te.push(t.elapsed().as_secs_f64() * 1e3);
        query = cts.iter().map(Vec::len).sum();
        let t = Instant::now();
        let plain = crate::public_input::plain_input(&m, x);
        query += plain.as_ref().map_or(0, |p| 4 * p.values.len());
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
        tv.push(t.elapsed().as_secs_f64() * 1e3);
        result = out.ciphertexts.iter().map(Vec::len).sum();
        let t = Instant::now();
        let y = session.decrypt(&out.ciphertexts).map_err(|e| e.to_string())?;
        td.push(t.elapsed().as_secs_f64() * 1e3);
        let sim = crate::public_input::simulate(&m, x)?;
        for (p, q) in y.iter().zip(&sim) {
            max_err = max_err.max((p - q).abs());
        }
    }
    pb.finish_and_clear();
    let ((em, ea), (vm, va), (dm, da)) = (stats(&te), stats(&tv), stats(&td));
    let threads = rayon::current_num_threads();
    let p = &spec.params;
    let summary = serde_json::json!({
        "model": m.name,
        "samples": count,
        "threads": threads,
        "params": {"log_n": p.log_n, "q_primes": p.q.len(), "p_primes": p.p.len(), "dnum": p.dnum, "log_scale": p.log_scale,
                   "galois_keys": spec.rotation_steps.len(), "relinearization": spec.relinearization},
        "ms": {"encrypt": {"median": em, "mean": ea}, "evaluate": {"median": vm, "mean": va}, "decrypt": {"median": dm, "mean": da},
               "total_median": em + vm + dm},
        "seconds": {"model_load": load_s, "keygen": keygen_s, "register_keys": register_s},
        "bytes": {"query": query, "result": result, "evaluation_keys": bundle.len()},
        "memory_bytes": {"server_weights": weights, "key_store": store.memory_bytes()},
        "max_abs_error_vs_simulation": max_err,
    });
    if a.json {
        println!("{summary}");
        return Ok(());
    }
    let mb = |b: usize| b as f64 / 1e6;
    println!(
        "heinfer bench {} — {count} sample(s), {threads} thread(s), N = 2^{}, {} primes + {} special, dnum {}, scale 2^{}",
        m.name,
        p.log_n,
        p.q.len(),
        p.p.len(),
        p.dnum,
        p.log_scale
    );
    println!("{:<28}{:>12}{:>12}", "latency (ms per sample)", "median", "mean");
    println!("{:<28}{:>12.2}{:>12.2}", "  encrypt (client)", em, ea);
    println!("{:<28}{:>12.2}{:>12.2}", "  evaluate (server)", vm, va);
    println!("{:<28}{:>12.2}{:>12.2}", "  decrypt (client)", dm, da);
    println!("{:<28}{:>12.2}", "  total", em + vm + dm);
    println!("{:<28}{:>12}", "one-off (s)", "");
    println!("{:<28}{:>12.3}", "  model load (encode weights)", load_s);
    println!("{:<28}{:>12.3}", "  key generation", keygen_s);
    println!("{:<28}{:>12.3}", "  key registration", register_s);
    println!("{:<28}{:>12}", "sizes (MB)", "");
    println!("{:<28}{:>12.3}", "  query", mb(query));
    println!("{:<28}{:>12.3}", "  result", mb(result));
    println!("{:<28}{:>12.3}", "  evaluation keys", mb(bundle.len()));
    println!("{:<28}{:>12}", "server memory (MB)", "");
    println!("{:<28}{:>12.2}", "  encoded weights", mb(weights));
    println!("{:<28}{:>12.2}", "  key store", mb(store.memory_bytes()));
    println!("max |output error| vs the plaintext simulation: {max_err:.3e}");
    println!("{summary}");
    Ok(())
}
