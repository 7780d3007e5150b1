//! `heinfer serve` with differentially private outputs: every answer carries the ε spent
//! as response parameters (HTTP JSON, gRPC double parameters), a spent budget is HTTP
//! 429 / gRPC RESOURCE_EXHAUSTED with a message naming the budget, and the config's
//! `heinfer_dp_budget` overrides the budget the model was compiled with.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;

use client::Session;
use serde_json::{json, Value as Json};
use server::pb;
use server::pb::grpc_inference_service_client::GrpcInferenceServiceClient;

const MODEL: &str = "bcdp";

fn repo_file(p: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..").join(p)
}

fn tensor<B: AsRef<[u8]>>(els: &[B]) -> Vec<u8> {
    els.iter()
        .flat_map(|e| (e.as_ref().len() as u32).to_le_bytes().into_iter().chain(e.as_ref().iter().copied()))
        .collect()
}

/// One binary-data infer request over a fresh connection: (status, JSON head).
fn infer(addr: SocketAddr, inputs: &[(&str, Vec<Vec<u8>>)]) -> (u16, Json) {
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
    (status, serde_json::from_slice(&rest[..n]).unwrap())
}

#[test]
fn budgets_are_spent_reported_and_refused_on_both_protocols() {
    let onnx = std::fs::read(repo_file("models/breast_cancer_lr.onnx")).unwrap();
    let cal = compiler::npy::read(&repo_file("models/data/breast_cancer_train_x.npy")).unwrap();
    let xs = compiler::npy::read(&repo_file("models/data/breast_cancer_test_x.npy")).unwrap();
    let req = compiler::OutputDpRequest { epsilon: 1.0, delta: 1e-5, clamp: Some(4.0), budget: Some(2.0) };
    let opts =
        compiler::Options { name: MODEL.into(), use_onnxruntime: false, output_dp: Some(req), ..Default::default() };
    let d = compiler::Data { calibration: &cal, eval: None, labels: None };
    let c = compiler::compile(&onnx, None, &d, &opts, &|_| {}).expect("compiles");
    let repo = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("server-dp-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&repo);
    let dir = compiler::write_repository(&repo, &c).unwrap();
    // The serving config raises the compiled budget of 2 to 3.
    let cfg = dir.join("config.pbtxt");
    let mut text = std::fs::read_to_string(&cfg).unwrap();
    text.push_str("parameters {\n  key: \"heinfer_dp_budget\"\n  value: { string_value: \"3\" }\n}\n");
    std::fs::write(&cfg, text).unwrap();

    let loaded = server::repo::load(&repo, &Default::default()).expect("repository loads");
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let srv = rt.block_on(server::Server::start(loaded, &Default::default())).unwrap();
    let (http, grpc) = (srv.http_addr(), format!("http://{}", srv.grpc_addr()));

    // HTTP: three answers, each with what it cost, then 429.
    let sess = Session::generate(c.model.client.clone()).unwrap();
    let (bundle, id) = sess.evaluation_bundle();
    for q in 1..=4 {
        let mut inputs =
            vec![("ENCRYPTED_INPUT", sess.encrypt(xs.row(q)).unwrap()), ("KEY_ID", vec![id.hex().into_bytes()])];
        if q == 1 {
            inputs.push(("EVALUATION_KEYS", vec![bundle.clone()]));
        }
        let (status, head) = infer(http, &inputs);
        if q <= 3 {
            assert_eq!(status, 200, "{head}");
            let p = &head["parameters"];
            assert_eq!(p["heinfer_dp_epsilon_query"], 1.0);
            assert_eq!(p["heinfer_dp_epsilon_spent"], q as f64);
            assert_eq!(p["heinfer_dp_epsilon_budget"], 3.0);
            assert_eq!(p["heinfer_dp_epsilon_remaining"], (3 - q) as f64);
        } else {
            assert_eq!(status, 429, "{head}");
            let e = head["error"].as_str().unwrap();
            assert!(e.contains("privacy budget exhausted") && e.contains(&id.hex()), "{e}");
        }
    }

    // gRPC: another key id, its own budget; RESOURCE_EXHAUSTED when spent.
    let sess2 = Session::generate(c.model.client.clone()).unwrap();
    let (bundle2, id2) = sess2.evaluation_bundle();
    let cts: Vec<Vec<Vec<u8>>> = (0..4).map(|i| sess2.encrypt(xs.row(i)).unwrap()).collect();
    rt.block_on(async move {
        let ch = tonic::transport::Endpoint::from_shared(grpc).unwrap().connect().await.unwrap();
        let mut c =
            GrpcInferenceServiceClient::new(ch).max_encoding_message_size(64 << 20).max_decoding_message_size(64 << 20);
        for (q, ct) in cts.into_iter().enumerate() {
            let mut inputs = vec![("ENCRYPTED_INPUT", ct), ("KEY_ID", vec![id2.hex().into_bytes()])];
            if q == 0 {
                inputs.push(("EVALUATION_KEYS", vec![bundle2.clone()]));
            }
            let req = pb::ModelInferRequest {
                model_name: MODEL.into(),
                inputs: inputs
                    .iter()
                    .map(|(n, e)| pb::model_infer_request::InferInputTensor {
                        name: n.to_string(),
                        datatype: "BYTES".into(),
                        shape: vec![e.len() as i64],
                        ..Default::default()
                    })
                    .collect(),
                raw_input_contents: inputs.iter().map(|(_, e)| tensor(e).into()).collect(),
                ..Default::default()
            };
            let r = c.model_infer(req).await;
            if q < 3 {
                let r = r.unwrap().into_inner();
                let spent = &r.parameters["heinfer_dp_epsilon_spent"].parameter_choice;
                assert_eq!(spent, &Some(pb::infer_parameter::ParameterChoice::DoubleParam((q + 1) as f64)));
            } else {
                let e = r.unwrap_err();
                assert_eq!(e.code(), tonic::Code::ResourceExhausted, "{e:?}");
                assert!(e.message().contains("privacy budget exhausted"), "{}", e.message());
            }
        }
    });
    rt.block_on(srv.shutdown()).unwrap();
}
