//! `heinfer serve` with a circuit-private model (breast-cancer logistic regression,
//! compiled with the largest λ its parameters allow): the client's bundle carries its
//! public key and the flooded answers agree with the model's f64 program; a bundle
//! without the public key is refused with HTTP 400 and a message saying what to do.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;

use client::Session;
use serde_json::{json, Value as Json};

const MODEL: &str = "bccp";

fn repo_file(p: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..").join(p)
}

fn tensor<B: AsRef<[u8]>>(els: &[B]) -> Vec<u8> {
    els.iter()
        .flat_map(|e| (e.as_ref().len() as u32).to_le_bytes().into_iter().chain(e.as_ref().iter().copied()))
        .collect()
}

/// One binary-data infer request: (status, JSON head, the elements of the binary output).
fn infer(addr: SocketAddr, inputs: &[(&str, Vec<Vec<u8>>)]) -> (u16, Json, Vec<Vec<u8>>) {
    let blobs: Vec<Vec<u8>> = inputs.iter().map(|(_, e)| tensor(e)).collect();
    let specs: Vec<Json> = inputs
        .iter()
        .zip(&blobs)
        .map(|((n, e), b)| json!({"name": n, "datatype": "BYTES", "shape": [e.len()], "parameters": {"binary_data_size": b.len()}}))
        .collect();
    let head = serde_json::to_vec(&json!({"inputs": specs, "parameters": {"binary_data_output": true}})).unwrap();
    let body: Vec<u8> = head.iter().copied().chain(blobs.concat()).collect();
    let mut s = TcpStream::connect(addr).unwrap();
    write!(
        s,
        "POST /v2/models/{MODEL}/infer HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/octet-stream\r\nInference-Header-Content-Length: {}\r\nContent-Length: {}\r\n\r\n",
        head.len(),
        body.len()
    )
    .unwrap();
    s.write_all(&body).unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).unwrap();
    let split = buf.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let headers = String::from_utf8_lossy(&buf[..split]).to_string();
    let status: u16 = headers.split(' ').nth(1).unwrap().parse().unwrap();
    let rest = &buf[split + 4..];
    let n = headers
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase().strip_prefix("inference-header-content-length:").map(|v| v.trim().to_string())
        })
        .map_or(rest.len(), |v| v.parse().unwrap());
    let mut els = Vec::new();
    let mut b = &rest[n..];
    while b.len() >= 4 {
        let len = u32::from_le_bytes(b[..4].try_into().unwrap()) as usize;
        els.push(b[4..4 + len].to_vec());
        b = &b[4 + len..];
    }
    (status, serde_json::from_slice(&rest[..n]).unwrap(), els)
}

#[test]
fn circuit_private_model_answers_and_refuses_bundles_without_the_public_key() {
    let onnx = std::fs::read(repo_file("models/breast_cancer_lr.onnx")).unwrap();
    let cal = compiler::npy::read(&repo_file("models/data/breast_cancer_train_x.npy")).unwrap();
    let xs = compiler::npy::read(&repo_file("models/data/breast_cancer_test_x.npy")).unwrap();
    let d = compiler::Data { calibration: &cal, eval: None, labels: None };
    // λ = 7: the largest these parameters allow (crates/client/tests/circuit_privacy.rs
    // checks that λ = 40 is refused and names it).
    let opts = compiler::Options {
        name: MODEL.into(),
        use_onnxruntime: false,
        scale_bits: Some(50),
        circuit_privacy: Some(7),
        ..Default::default()
    };
    let c = compiler::compile(&onnx, None, &d, &opts, &|_| {}).expect("compiles");
    let cp = c.model.client.circuit_privacy.clone().unwrap();
    let repo = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("server-cp-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&repo);
    compiler::write_repository(&repo, &c).unwrap();
    let loaded = server::repo::load(&repo, &Default::default()).expect("repository loads");
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let srv = rt.block_on(server::Server::start(loaded, &Default::default())).unwrap();
    let http = srv.http_addr();

    // The spec the server hands out asks for the public key: the session's bundle has it.
    let sess = Session::generate(c.model.client.clone()).unwrap();
    let (bundle, id) = sess.evaluation_bundle();
    let params = ckks::Parameters::from_spec(&c.model.client.params).unwrap();
    let mut keys = ckks::EvaluationKeys::from_bytes(&params, &bundle).unwrap();
    assert!(keys.public.is_some());

    // Without it: 400, saying why and what to do; nothing registered.
    keys.public = None;
    let no_pk = keys.to_bytes();
    let no_pk_id = ckks::KeyId::of_bundle(&no_pk).hex().into_bytes();
    let (status, head, _) = infer(
        http,
        &[
            ("ENCRYPTED_INPUT", sess.encrypt(xs.row(0)).unwrap()),
            ("KEY_ID", vec![no_pk_id]),
            ("EVALUATION_KEYS", vec![no_pk]),
        ],
    );
    assert_eq!(status, 400, "{head}");
    let e = head["error"].as_str().unwrap();
    assert!(e.contains("no public key") && e.contains("circuit privacy") && e.contains("client spec"), "{e}");

    // With it: answers within the flood's stated noise of the f64 program, same signs.
    let sigma = cp.slot_std * c.model.client.output.multiplier.abs();
    for r in 0..8 {
        let mut inputs =
            vec![("ENCRYPTED_INPUT", sess.encrypt(xs.row(r)).unwrap()), ("KEY_ID", vec![id.hex().into_bytes()])];
        if r == 0 {
            inputs.push(("EVALUATION_KEYS", vec![bundle.clone()]));
        }
        let (status, head, out) = infer(http, &inputs);
        assert_eq!(status, 200, "{head}");
        let y = sess.decrypt(&out).unwrap();
        let spec = &c.model.client;
        let exact =
            spec.unpack_output(&model::simulate(&c.model, &spec.pack_input(xs.row(r)).unwrap()).unwrap()).unwrap();
        assert!((y[0] - exact[0]).abs() < 7.0 * sigma, "{} vs {} (σ = {sigma})", y[0], exact[0]);
        assert_eq!(y[0] > 0.0, exact[0] > 0.0, "sample {r}: {} vs {}", y[0], exact[0]);
    }
    drop(srv);
}
