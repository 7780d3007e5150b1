//! `heinfer demo`: the whole story in one command, with nothing set up beyond the
//! build. Compiles a bundled digits CNN (CryptoNets-shaped by default: convolution,
//! x², dense, x², dense — a few hundred digits take about a minute; `--model
//! digits_cnn` for the ReLU CNN, seconds per digit) into a temporary model repository, starts
//! `heinfer serve` in this process on free localhost ports, and plays the client
//! over real HTTP (KServe v2 + binary data, the bytes tritonclient would send):
//! reads the client spec from the model config, generates keys, registers them
//! with the first request, encrypts test digits, infers, decrypts, and compares
//! with the plaintext simulation and the labels. Then shuts the server down.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use client::Session;
use serde_json::{json, Value as Json};

pub struct DemoArgs {
    pub samples: usize,
    pub json: bool,
    pub models: Option<PathBuf>,
    /// a bundled model: `models/<model>.onnx`
    pub model: String,
}

/// The bundled models: `--models`, else `models/` beside an ancestor of the
/// executable (target/release/heinfer → the checkout) or of the working directory.
fn find_models(explicit: Option<PathBuf>, model: &str) -> Result<PathBuf, String> {
    let has = |d: &Path| d.join(format!("{model}.onnx")).is_file() && d.join("data").is_dir();
    if let Some(d) = explicit {
        return if has(&d) {
            Ok(d)
        } else {
            Err(format!("{} has no {model}.onnx and data/ (pass the checkout's models/ directory)", d.display()))
        };
    }
    let mut starts = Vec::new();
    if let Ok(exe) = std::env::current_exe() {
        starts.push(exe.canonicalize().unwrap_or(exe));
    }
    if let Ok(cwd) = std::env::current_dir() {
        starts.push(cwd);
    }
    for s in &starts {
        for a in s.ancestors() {
            let d = a.join("models");
            if has(&d) {
                return Ok(d);
            }
        }
    }
    Err(format!("cannot find the bundled models (models/{model}.onnx) above the executable or the working directory; pass --models DIR"))
}

fn status(json: bool, msg: &str) {
    // Progress goes to stderr so that --json leaves stdout to the summary alone.
    if !json {
        eprintln!("{msg}");
    }
}

/// A KServe v2 inference request with Triton's binary-data extension.
fn infer_body(cts: &[Vec<u8>], key_id: &str, keys: Option<&[u8]>) -> (Vec<u8>, usize) {
    let mut blobs: Vec<Vec<u8>> =
        vec![runtime::tensor::join_bytes(cts), runtime::tensor::join_bytes(&[key_id.as_bytes()])];
    let mut inputs = vec![
        json!({"name": "ENCRYPTED_INPUT", "datatype": "BYTES", "shape": [cts.len()], "parameters": {"binary_data_size": blobs[0].len()}}),
        json!({"name": "KEY_ID", "datatype": "BYTES", "shape": [1], "parameters": {"binary_data_size": blobs[1].len()}}),
    ];
    if let Some(k) = keys {
        blobs.push(runtime::tensor::join_bytes(&[k]));
        inputs.push(json!({"name": "EVALUATION_KEYS", "datatype": "BYTES", "shape": [1], "parameters": {"binary_data_size": blobs[2].len()}}));
    }
    let head =
        json!({"inputs": inputs, "outputs": [{"name": "ENCRYPTED_OUTPUT", "parameters": {"binary_data": true}}]});
    let mut body = serde_json::to_vec(&head).expect("JSON of plain values");
    let head_len = body.len();
    for b in blobs {
        body.extend_from_slice(&b);
    }
    (body, head_len)
}

/// An HTTP failure in words: the server's `error` message when it sent one.
pub(crate) fn http_error(e: ureq::Error) -> String {
    match e {
        ureq::Error::Status(code, r) => {
            let body = r.into_string().unwrap_or_default();
            let msg = serde_json::from_str::<Json>(&body)
                .ok()
                .and_then(|j| j["error"].as_str().map(str::to_owned))
                .unwrap_or(body);
            format!("server answered {code}: {msg}")
        }
        other => format!("HTTP request failed: {other}"),
    }
}

fn get_json(agent: &ureq::Agent, url: &str) -> Result<Json, String> {
    let r = agent.get(url).call().map_err(http_error)?;
    let mut s = String::new();
    r.into_reader().read_to_string(&mut s).map_err(|e| format!("reading {url}: {e}"))?;
    serde_json::from_str(&s).map_err(|e| format!("{url} is not JSON: {e}"))
}

/// Sends one request; returns the elements of ENCRYPTED_OUTPUT.
fn infer(agent: &ureq::Agent, url: &str, body: &[u8], head_len: usize) -> Result<Vec<Vec<u8>>, String> {
    let r = agent
        .post(url)
        .set("Content-Type", "application/octet-stream")
        .set("Inference-Header-Content-Length", &head_len.to_string())
        .send_bytes(body)
        .map_err(http_error)?;
    let head_len: Option<usize> = r.header("Inference-Header-Content-Length").and_then(|v| v.parse().ok());
    let mut buf = Vec::new();
    r.into_reader().read_to_end(&mut buf).map_err(|e| format!("reading the response: {e}"))?;
    let head_len = head_len.ok_or("the response has no binary outputs")?.min(buf.len());
    let head: Json = serde_json::from_slice(&buf[..head_len]).map_err(|e| format!("response header: {e}"))?;
    let out = &head["outputs"][0];
    if out["name"] != "ENCRYPTED_OUTPUT" {
        return Err(format!("unexpected response: {head}"));
    }
    let size = out["parameters"]["binary_data_size"].as_u64().ok_or("ENCRYPTED_OUTPUT is not binary")? as usize;
    let data = buf.get(head_len..head_len + size).ok_or("the response is shorter than its header says")?;
    let parts = runtime::tensor::split_bytes("ENCRYPTED_OUTPUT", data, None).map_err(|e| e.to_string())?;
    Ok(parts.into_iter().map(<[u8]>::to_vec).collect())
}

fn compute_infer(stats: &Json) -> (u64, u64) {
    let s = &stats["model_stats"][0]["inference_stats"]["compute_infer"];
    (s["count"].as_u64().unwrap_or(0), s["ns"].as_u64().unwrap_or(0))
}

pub fn demo(a: DemoArgs) -> Result<(), String> {
    if a.samples == 0 {
        return Err("--samples must be at least 1".into());
    }
    let models = find_models(a.models, &a.model)?;
    let name = a.model.as_str();
    let data = models.join("data");
    let read = |f: &str| compiler::npy::read(&data.join(f)).map_err(|e| format!("{}: {e}", data.join(f).display()));
    let cal = read("digits_train_img.npy")?;
    let xs = read("digits_test_img.npy")?;
    let ys = read("digits_test_y.npy")?;
    let count = a.samples.min(xs.rows());

    // 1. Compile, as `heinfer compile` would, into a temporary model repository.
    status(a.json, &format!("compiling {} ...", models.join(format!("{name}.onnx")).display()));
    let t = Instant::now();
    let onnx_path = models.join(format!("{name}.onnx"));
    let onnx = std::fs::read(&onnx_path).map_err(|e| format!("{}: {e}", onnx_path.display()))?;
    let opts = compiler::Options {
        name: name.into(),
        // The demo needs nothing but the build: heinfer's own f64 interpreter is the reference.
        use_onnxruntime: false,
        ..Default::default()
    };
    let d = compiler::Data { calibration: &cal, eval: Some(&xs), labels: Some(&ys) };
    let compiled = compiler::compile(&onnx, Some(&onnx_path), &d, &opts, &|_| {}).map_err(|e| e.to_string())?;
    let repo_dir = tempfile::tempdir().map_err(|e| format!("cannot create a temporary directory: {e}"))?;
    compiler::write_repository(repo_dir.path(), &compiled).map_err(|e| e.to_string())?;
    let compile_s = t.elapsed().as_secs_f64();
    let report = compiled.model.report.clone();
    let he_model = compiled.model;

    // 2. The server, in this process, on free ports.
    let t = Instant::now();
    let repo =
        server::repo::load(repo_dir.path(), &server::KeyStoreOptions { capacity_mb: Some(1024), ..Default::default() })
            .map_err(|e| e.to_string())?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?;
    let srv = rt.block_on(server::Server::start(repo, &server::Options::default())).map_err(|e| e.to_string())?;
    let load_s = t.elapsed().as_secs_f64();
    status(a.json, &srv.ready_line());
    let base = format!("http://{}/v2/models/{name}", srv.http_addr());
    let agent = ureq::AgentBuilder::new().timeout(Duration::from_secs(600)).build();

    let result = (|| -> Result<Json, String> {
        // 3. The client: spec from the model config, as tritonclient's get_model_config gives it.
        let cfg = get_json(&agent, &format!("{base}/config"))?;
        let spec_json = cfg["parameters"]["heinfer_client_spec"]["string_value"]
            .as_str()
            .ok_or("the model config has no heinfer_client_spec parameter")?;
        let spec = model::ClientSpec::from_json(spec_json).map_err(|e| e.to_string())?;
        let t = Instant::now();
        let session = Session::generate(spec.clone()).map_err(|e| e.to_string())?;
        let (bundle, key_id) = session.evaluation_bundle();
        let keygen_s = t.elapsed().as_secs_f64();
        let hex = key_id.hex();
        let url = format!("{base}/infer");

        // 4. Encrypted inference over HTTP. The first request carries the key bundle
        // (registering it); the rest name it by KEY_ID.
        status(a.json, &format!("{count} encrypted digits over HTTP ..."));
        let (mut t_enc, mut t_rt, mut t_dec) = (0.0f64, 0.0f64, 0.0f64);
        let (mut agree, mut correct, mut query_bytes, mut result_bytes) = (0usize, 0usize, 0usize, 0usize);
        let mut max_err: f64 = 0.0;
        let mut register_s = 0.0;
        let mut before = (0, 0);
        for i in 0..count {
            let x = xs.row(i);
            let t = Instant::now();
            let cts = session.encrypt(x).map_err(|e| e.to_string())?;
            let enc = t.elapsed().as_secs_f64();
            let (body, head_len) = infer_body(&cts, &hex, (i == 0).then_some(&bundle[..]));
            let t = Instant::now();
            let outs = infer(&agent, &url, &body, head_len)?;
            let rt_s = t.elapsed().as_secs_f64();
            let t = Instant::now();
            let logits = session.decrypt(&outs).map_err(|e| e.to_string())?;
            let dec = t.elapsed().as_secs_f64();
            if i == 0 {
                // Key registration is a one-off: keep it out of the per-sample figures.
                register_s = rt_s;
                before = compute_infer(&get_json(&agent, &format!("{base}/stats"))?);
            } else {
                t_enc += enc;
                t_rt += rt_s;
                t_dec += dec;
            }
            query_bytes = runtime::tensor::encoded_len(&cts);
            result_bytes = runtime::tensor::encoded_len(&outs);
            let slots = spec.pack_input(x).map_err(|e| e.to_string())?;
            let sim = spec
                .unpack_output(&model::simulate(&he_model, &slots).map_err(|e| e.to_string())?)
                .map_err(|e| e.to_string())?;
            for (p, q) in logits.iter().zip(&sim) {
                max_err = max_err.max((p - q).abs());
            }
            let pred = model::argmax(&logits);
            agree += (pred == model::argmax(&sim)) as usize;
            correct += (pred == ys.row(i)[0] as usize) as usize;
            if !a.json && (i + 1) % 50 == 0 {
                eprintln!("  {}/{count}", i + 1);
            }
        }
        let after = compute_infer(&get_json(&agent, &format!("{base}/stats"))?);
        let timed = (count - 1).max(1) as f64;
        let eval_ms =
            if after.0 > before.0 { (after.1 - before.1) as f64 / (after.0 - before.0) as f64 / 1e6 } else { 0.0 };
        let n = count as f64;
        let acc = report.as_ref().and_then(|r| r.accuracy.as_ref());
        Ok(json!({
            "model": name,
            "samples": count,
            "server": {"http": srv.http_addr().to_string(), "grpc": srv.grpc_addr().to_string()},
            "parameters": report.as_ref().map(|r| json!({"log_n": r.log_n, "depth": r.depth, "log_scale": r.log_scale})),
            "agreement_with_simulation": agree as f64 / n,
            "accuracy": correct as f64 / n,
            "plaintext_model_accuracy": acc.and_then(|a| a.reference_accuracy),
            "max_logit_error_vs_simulation": max_err,
            "ms_per_sample": {
                "encrypt": t_enc * 1e3 / timed,
                "round_trip": t_rt * 1e3 / timed,
                "server_evaluate": eval_ms,
                "decrypt": t_dec * 1e3 / timed,
            },
            "seconds": {"compile": compile_s, "server_load": load_s, "keygen": keygen_s, "register_keys_and_first_infer": register_s},
            "bytes": {"query": query_bytes, "result": result_bytes, "evaluation_keys": bundle.len()},
            "threads": rayon::current_num_threads(),
        }))
    })();

    // 5. Shut down whatever happened above.
    let stopped = rt.block_on(srv.shutdown()).map_err(|e| e.to_string());
    let s = result?;
    stopped?;
    if a.json {
        println!("{s}");
        return Ok(());
    }
    let ms = &s["ms_per_sample"];
    let f = |v: &Json| v.as_f64().unwrap_or(f64::NAN);
    println!("heinfer demo — {name}, {count} test digits encrypted, served over HTTP (KServe v2), decrypted");
    if let Some(r) = &report {
        println!(
            "model: compiled in {:.1} s; N = 2^{}, depth {}, scale 2^{}",
            f(&s["seconds"]["compile"]),
            r.log_n,
            r.depth,
            r.log_scale
        );
    }
    println!(
        "keys: generated in {:.2} s, {:.1} MB, registered with the first request ({:.2} s including its inference)",
        f(&s["seconds"]["keygen"]),
        f(&s["bytes"]["evaluation_keys"]) / 1e6,
        f(&s["seconds"]["register_keys_and_first_infer"])
    );
    println!("top-1 agreement with the plaintext simulation: {:.2}%", 100.0 * f(&s["agreement_with_simulation"]));
    match s["plaintext_model_accuracy"].as_f64() {
        Some(p) => println!(
            "accuracy against the labels: {:.2}% (the plaintext model: {:.2}% on the whole test set)",
            100.0 * f(&s["accuracy"]),
            100.0 * p
        ),
        None => println!("accuracy against the labels: {:.2}%", 100.0 * f(&s["accuracy"])),
    }
    println!("max |logit error| against the simulation: {:.3e}", f(&s["max_logit_error_vs_simulation"]));
    println!(
        "latency per sample: encrypt {:.1} ms | HTTP round trip {:.1} ms (server evaluate {:.1} ms, the rest transfer and parsing) | decrypt {:.1} ms",
        f(&ms["encrypt"]),
        f(&ms["round_trip"]),
        f(&ms["server_evaluate"]),
        f(&ms["decrypt"])
    );
    println!(
        "sizes: query {:.3} MB, result {:.3} MB; {} threads",
        f(&s["bytes"]["query"]) / 1e6,
        f(&s["bytes"]["result"]) / 1e6,
        s["threads"]
    );
    println!("server stopped");
    Ok(())
}
