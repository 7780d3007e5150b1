//! `heinfer serve` end to end, in process: a compiled model (the bundled breast-cancer
//! logistic regression: N = 2^12, one level, fast) served on free ports, driven by a
//! raw HTTP/1.1 client (so framing errors can be sent on purpose) and a tonic gRPC
//! client generated from our proto. Encrypted results are decrypted and compared
//! with the plaintext simulation, so a server that mangles tensors fails here.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

use client::Session;
use serde_json::{json, Value as Json};
use server::pb;
use server::pb::grpc_inference_service_client::GrpcInferenceServiceClient;

const MODEL: &str = "bc";

fn repo_file(p: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..").join(p)
}

struct Fixture {
    repo: PathBuf,
    model: model::HeModel,
    xs: compiler::Array,
}

/// Compiles the model once per test binary into the target's temp dir.
fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let onnx = std::fs::read(repo_file("models/breast_cancer_lr.onnx")).unwrap();
        let cal = compiler::npy::read(&repo_file("models/data/breast_cancer_train_x.npy")).unwrap();
        let xs = compiler::npy::read(&repo_file("models/data/breast_cancer_test_x.npy")).unwrap();
        let opts = compiler::Options { name: MODEL.into(), use_onnxruntime: false, ..Default::default() };
        let d = compiler::Data { calibration: &cal, eval: None, labels: None };
        let c = compiler::compile(&onnx, None, &d, &opts, &|_| {}).expect("compiles");
        let repo = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("server-tests-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&repo);
        compiler::write_repository(&repo, &c).unwrap();
        // a model of another backend is skipped, not fatal
        std::fs::create_dir_all(repo.join("other")).unwrap();
        std::fs::write(repo.join("other/config.pbtxt"), "name: \"other\"\nbackend: \"onnxruntime\"\n").unwrap();
        Fixture { repo, model: c.model, xs }
    })
}

struct Running {
    rt: tokio::runtime::Runtime,
    srv: Option<server::Server>,
}

impl Running {
    fn start(max_request_bytes: usize) -> Running {
        let f = fixture();
        let repo = server::repo::load(&f.repo, &Default::default()).expect("repository loads");
        assert_eq!(repo.models.keys().collect::<Vec<_>>(), vec![MODEL], "the onnxruntime model is skipped");
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let opts = server::Options { max_request_bytes, ..Default::default() };
        let srv = rt.block_on(server::Server::start(repo, &opts)).unwrap();
        let line = srv.ready_line();
        assert!(line.starts_with("heinfer serve ready http=127.0.0.1:") && line.contains(" grpc=127.0.0.1:"), "{line}");
        Running { rt, srv: Some(srv) }
    }
    fn http(&self) -> SocketAddr {
        self.srv.as_ref().unwrap().http_addr()
    }
    fn grpc_url(&self) -> String {
        format!("http://{}", self.srv.as_ref().unwrap().grpc_addr())
    }
    fn stop(&mut self) {
        if let Some(s) = self.srv.take() {
            self.rt.block_on(s.shutdown()).unwrap();
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stop();
    }
}

struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
    fn json(&self) -> Json {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }
    fn error(&self) -> String {
        self.json()["error"].as_str().expect("an error body {\"error\": ...}").to_string()
    }
}

/// One request on a fresh connection (Connection: close), read to EOF.
fn raw(addr: SocketAddr, method: &str, path: &str, headers: &[(&str, String)], body: &[u8]) -> Reply {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let mut req =
        format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n", body.len());
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    // A server may answer (413, say) and close before the whole body is sent: the
    // write then fails, and the answer is still there to read.
    if let Err(e) = s.write_all(body) {
        assert!(
            matches!(e.kind(), std::io::ErrorKind::BrokenPipe | std::io::ErrorKind::ConnectionReset),
            "writing the body: {e}"
        );
    }
    read_reply(&mut s)
}

fn read_reply(s: &mut TcpStream) -> Reply {
    let mut buf = Vec::new();
    // A reset after the answer (the server closed with unread body bytes) keeps what came.
    if let Err(e) = s.read_to_end(&mut buf) {
        assert!(e.kind() == std::io::ErrorKind::ConnectionReset && !buf.is_empty(), "reading the reply: {e}");
    }
    let split = buf.windows(4).position(|w| w == b"\r\n\r\n").expect("a header block");
    let head = String::from_utf8(buf[..split].to_vec()).unwrap();
    let mut lines = head.split("\r\n");
    let status: u16 = lines.next().unwrap().split(' ').nth(1).unwrap().parse().unwrap();
    let headers: Vec<(String, String)> =
        lines.filter_map(|l| l.split_once(':').map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))).collect();
    let r = Reply { status, headers, body: buf[split + 4..].to_vec() };
    assert!(r.header("transfer-encoding").is_none(), "the test client reads Content-Length bodies only");
    r
}

fn get(addr: SocketAddr, path: &str) -> Reply {
    raw(addr, "GET", path, &[], b"")
}

fn bytes_tensor<B: AsRef<[u8]>>(els: &[B]) -> Vec<u8> {
    let mut out = Vec::new();
    for e in els {
        out.extend_from_slice(&(e.as_ref().len() as u32).to_le_bytes());
        out.extend_from_slice(e.as_ref());
    }
    out
}

/// Builds a binary-data infer request: (name, elements) inputs, all as binary.
fn infer_request(inputs: &[(&str, Vec<Vec<u8>>)], extra: Json) -> (Vec<u8>, usize) {
    let mut blobs = Vec::new();
    let mut specs = Vec::new();
    for (name, els) in inputs {
        let b = bytes_tensor(els);
        specs.push(json!({"name": name, "datatype": "BYTES", "shape": [els.len()], "parameters": {"binary_data_size": b.len()}}));
        blobs.push(b);
    }
    let mut head =
        json!({"inputs": specs, "outputs": [{"name": "ENCRYPTED_OUTPUT", "parameters": {"binary_data": true}}]});
    if let Json::Object(m) = extra {
        for (k, v) in m {
            head[k] = v;
        }
    }
    let mut body = serde_json::to_vec(&head).unwrap();
    let n = body.len();
    for b in blobs {
        body.extend_from_slice(&b);
    }
    (body, n)
}

fn post_infer(addr: SocketAddr, path: &str, body: &[u8], head_len: usize) -> Reply {
    raw(
        addr,
        "POST",
        path,
        &[
            ("Content-Type", "application/octet-stream".into()),
            ("Inference-Header-Content-Length", head_len.to_string()),
        ],
        body,
    )
}

/// The ENCRYPTED_OUTPUT elements of a binary response.
fn outputs_of(r: &Reply) -> Vec<Vec<u8>> {
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let n: usize = r.header("Inference-Header-Content-Length").expect("binary response").parse().unwrap();
    let head: Json = serde_json::from_slice(&r.body[..n]).unwrap();
    assert_eq!(head["model_name"], MODEL);
    assert_eq!(head["model_version"], "1");
    let o = &head["outputs"][0];
    assert_eq!(o["name"], "ENCRYPTED_OUTPUT");
    assert_eq!(o["datatype"], "BYTES");
    let size = o["parameters"]["binary_data_size"].as_u64().unwrap() as usize;
    assert_eq!(n + size, r.body.len(), "the binary section is exactly what the header says");
    let parts = runtime::tensor::split_bytes("out", &r.body[n..], None).unwrap();
    assert_eq!(o["shape"], json!([parts.len()]));
    parts.into_iter().map(<[u8]>::to_vec).collect()
}

/// Decrypts and checks against the plaintext simulation of the same sample.
fn check_result(session: &Session, sample: usize, outs: &[Vec<u8>]) {
    let f = fixture();
    let got = session.decrypt(outs).expect("decrypts");
    let slots = f.model.client.pack_input(f.xs.row(sample)).unwrap();
    let want = f.model.client.unpack_output(&model::simulate(&f.model, &slots).unwrap()).unwrap();
    assert_eq!(got.len(), want.len());
    for (g, w) in got.iter().zip(&want) {
        assert!((g - w).abs() < 1e-2, "encrypted {got:?} vs simulated {want:?}");
    }
}

fn session() -> Session {
    Session::generate(fixture().model.client.clone()).unwrap()
}

#[test]
fn http_health_metadata_and_config() {
    let s = Running::start(64 << 20);
    let a = s.http();
    assert_eq!(get(a, "/v2/health/live").status, 200);
    assert_eq!(get(a, "/v2/health/ready").status, 200);
    let meta = get(a, "/v2").json();
    assert_eq!(meta["name"], "heinfer");
    assert!(meta["extensions"].as_array().unwrap().contains(&json!("binary_tensor_data")));

    let m = get(a, "/v2/models/bc").json();
    assert_eq!(m["name"], MODEL);
    assert_eq!(m["versions"], json!(["1"]));
    assert_eq!(m["platform"], "heinfer");
    let names: Vec<&str> = m["inputs"].as_array().unwrap().iter().map(|i| i["name"].as_str().unwrap()).collect();
    // BATCH_PART: the model has layout T too (a batch may come in several requests).
    assert_eq!(names, ["ENCRYPTED_INPUT", "KEY_ID", "EVALUATION_KEYS", "BATCH_PART"]);
    assert_eq!(m["inputs"][0]["datatype"], "BYTES");
    assert_eq!(m["inputs"][0]["shape"], json!([-1]));
    assert_eq!(m["outputs"][0], json!({"name": "ENCRYPTED_OUTPUT", "datatype": "BYTES", "shape": [-1]}));
    assert_eq!(get(a, "/v2/models/bc/versions/1").json()["name"], MODEL);
    assert_eq!(get(a, "/v2/models/bc/ready").status, 200);
    assert_eq!(get(a, "/v2/models/bc/versions/1/ready").status, 200);

    let c = get(a, "/v2/models/bc/config").json();
    assert_eq!(c["name"], MODEL);
    assert_eq!(c["backend"], "heinfer");
    assert_eq!(c["max_batch_size"], 0);
    assert_eq!(c["input"][0]["data_type"], "TYPE_STRING");
    assert_eq!(c["input"][0]["dims"], json!([-1]));
    assert_eq!(c["input"][2]["optional"], true);
    assert_eq!(c["output"][0]["data_type"], "TYPE_STRING");
    let spec = c["parameters"]["heinfer_client_spec"]["string_value"].as_str().unwrap();
    let spec = model::ClientSpec::from_json(spec).unwrap();
    assert_eq!(spec.to_json(), fixture().model.client.to_json(), "the client spec survives the config endpoint");

    for path in ["/v2/models/nope", "/v2/models/nope/config", "/v2/models/nope/ready", "/v2/models/nope/stats"] {
        let r = get(a, path);
        assert_eq!(r.status, 404, "{path}");
        assert_eq!(r.error(), "Request for unknown model: 'nope' is not found");
    }
    let r = get(a, "/v2/models/bc/versions/2/config");
    assert_eq!(r.status, 404);
    assert!(r.error().contains("version 2"), "{}", r.error());
    assert_eq!(get(a, "/v2/nothing/here").status, 404);
}

#[test]
fn http_encrypted_inference_matches_the_simulation_and_counts_in_stats() {
    let s = Running::start(64 << 20);
    let a = s.http();
    let sess = session();
    let (bundle, id) = sess.evaluation_bundle();
    let hex = id.hex();

    // First request: the bundle travels with it (registration), then by KEY_ID only.
    let cts = sess.encrypt(fixture().xs.row(0)).unwrap();
    let (body, n) = infer_request(
        &[
            ("ENCRYPTED_INPUT", cts),
            ("KEY_ID", vec![hex.clone().into_bytes()]),
            ("EVALUATION_KEYS", vec![bundle.clone()]),
        ],
        json!({"id": "first"}),
    );
    let r = post_infer(a, "/v2/models/bc/infer", &body, n);
    let n_head: usize = r.header("Inference-Header-Content-Length").unwrap().parse().unwrap();
    assert_eq!(serde_json::from_slice::<Json>(&r.body[..n_head]).unwrap()["id"], "first");
    check_result(&sess, 0, &outputs_of(&r));

    for i in 1..4 {
        let cts = sess.encrypt(fixture().xs.row(i)).unwrap();
        let (body, n) =
            infer_request(&[("ENCRYPTED_INPUT", cts), ("KEY_ID", vec![hex.clone().into_bytes()])], json!({}));
        let path = if i % 2 == 0 { "/v2/models/bc/infer" } else { "/v2/models/bc/versions/1/infer" };
        check_result(&sess, i, &outputs_of(&post_infer(a, path, &body, n)));
    }

    // KEY_ID as JSON data, no outputs named, binary_data_output: the mixed form tritonclient sends.
    let cts = sess.encrypt(fixture().xs.row(4)).unwrap();
    let blob = bytes_tensor(&cts);
    let head = json!({
        "inputs": [
            {"name": "ENCRYPTED_INPUT", "datatype": "BYTES", "shape": [cts.len()], "parameters": {"binary_data_size": blob.len()}},
            {"name": "KEY_ID", "datatype": "BYTES", "shape": [1], "data": [hex]},
        ],
        "parameters": {"binary_data_output": true},
    });
    let mut body = serde_json::to_vec(&head).unwrap();
    let n = body.len();
    body.extend_from_slice(&blob);
    check_result(&sess, 4, &outputs_of(&post_infer(a, "/v2/models/bc/infer", &body, n)));

    // JSON output asked for: ciphertexts are not text, so they still come back binary.
    let cts = sess.encrypt(fixture().xs.row(5)).unwrap();
    let (body, n) = infer_request(
        &[("ENCRYPTED_INPUT", cts), ("KEY_ID", vec![hex.clone().into_bytes()])],
        json!({"outputs": [{"name": "ENCRYPTED_OUTPUT", "parameters": {"binary_data": false}}]}),
    );
    check_result(&sess, 5, &outputs_of(&post_infer(a, "/v2/models/bc/infer", &body, n)));

    // one failure for the statistics
    let (body, n) =
        infer_request(&[("ENCRYPTED_INPUT", vec![b"junk".to_vec()]), ("KEY_ID", vec![hex.into_bytes()])], json!({}));
    assert_eq!(post_infer(a, "/v2/models/bc/infer", &body, n).status, 400);

    let st = get(a, "/v2/models/bc/stats").json();
    let m = &st["model_stats"][0];
    assert_eq!(m["name"], MODEL);
    assert_eq!(m["version"], "1");
    assert_eq!(m["inference_count"], 6);
    assert_eq!(m["execution_count"], 6);
    assert_eq!(m["inference_stats"]["success"]["count"], 6);
    assert_eq!(m["inference_stats"]["fail"]["count"], 1);
    assert!(m["inference_stats"]["compute_infer"]["ns"].as_u64().unwrap() > 0);
    assert!(m["last_inference"].as_u64().unwrap() > 1_600_000_000_000, "milliseconds since the epoch");
    assert_eq!(get(a, "/v2/models/stats").json()["model_stats"].as_array().unwrap().len(), 1);
}

#[test]
fn http_bad_requests_get_kserve_errors_and_the_server_lives_on() {
    let s = Running::start(2 << 20);
    let a = s.http();
    let sess = session();
    let (bundle, id) = sess.evaluation_bundle();
    let hex = id.hex();
    let cts = sess.encrypt(fixture().xs.row(0)).unwrap();
    let key = || ("KEY_ID", vec![hex.clone().into_bytes()]);
    let infer = |body: &[u8], n: usize| post_infer(a, "/v2/models/bc/infer", body, n);
    let expect = |r: Reply, status: u16, needle: &str| {
        assert_eq!(r.status, status, "{}", String::from_utf8_lossy(&r.body));
        let e = r.error();
        assert!(e.contains(needle), "error {e:?} should mention {needle:?}");
    };

    expect(infer(b"{not json", 9), 400, "failed to parse the request JSON");
    expect(infer(b"{}", 2), 400, "failed to parse the request JSON");
    // header length past the body
    expect(infer(b"{\"inputs\": []}", 100), 400, "Inference-Header-Content-Length");
    let r = raw(a, "POST", "/v2/models/bc/infer", &[("Inference-Header-Content-Length", "x".into())], b"{}");
    expect(r, 400, "Inference-Header-Content-Length");

    // binary sizes that do not add up
    let (mut body, n) = infer_request(&[("ENCRYPTED_INPUT", cts.clone()), key()], json!({}));
    expect(infer(&body[..body.len() - 3], n), 400, "binary_data_size");
    body.extend_from_slice(b"tail");
    expect(infer(&body, n), 400, "4 bytes of binary data follow");
    // element framing broken inside a tensor: shape says 2, data holds 1
    let blob = bytes_tensor(&cts);
    let head = json!({"inputs": [
        {"name": "ENCRYPTED_INPUT", "datatype": "BYTES", "shape": [2], "parameters": {"binary_data_size": blob.len()}},
        {"name": "KEY_ID", "datatype": "BYTES", "shape": [1], "data": [hex.clone()]}]});
    let mut body = serde_json::to_vec(&head).unwrap();
    let n = body.len();
    body.extend_from_slice(&blob);
    expect(infer(&body, n), 400, "ENCRYPTED_INPUT");

    // wrong tensors
    let (body, n) = infer_request(&[key()], json!({}));
    expect(infer(&body, n), 400, "ENCRYPTED_INPUT");
    let (body, n) = infer_request(&[("ENCRYPTED_INPUT", cts.clone())], json!({}));
    expect(infer(&body, n), 400, "KEY_ID");
    let (body, n) = infer_request(&[("ENCRYPTED_INPUT", cts.clone()), key(), ("EXTRA", vec![vec![1]])], json!({}));
    expect(infer(&body, n), 400, "unexpected inference input 'EXTRA'");
    let (body, n) = infer_request(&[("ENCRYPTED_INPUT", cts.clone()), key()], json!({"outputs": [{"name": "LOGITS"}]}));
    expect(infer(&body, n), 400, "unexpected inference output 'LOGITS'");
    let head = json!({"inputs": [
        {"name": "ENCRYPTED_INPUT", "datatype": "FP32", "shape": [1], "data": [1.0]},
        {"name": "KEY_ID", "datatype": "BYTES", "shape": [1], "data": [hex.clone()]}]});
    let body = serde_json::to_vec(&head).unwrap();
    expect(infer(&body, body.len()), 400, "data-type");
    let (body, n) =
        infer_request(&[("ENCRYPTED_INPUT", cts.clone()), ("KEY_ID", vec![b"a".to_vec(), b"b".to_vec()])], json!({}));
    expect(infer(&body, n), 400, "KEY_ID");

    // what the runtime refuses: unregistered key, garbage ciphertext, wrong count, bad bundle
    let (body, n) = infer_request(&[("ENCRYPTED_INPUT", cts.clone()), key()], json!({}));
    expect(infer(&body, n), 400, "unknown key id");
    let (body, n) = infer_request(
        &[("ENCRYPTED_INPUT", cts.clone()), key(), ("EVALUATION_KEYS", vec![b"nope".to_vec()])],
        json!({}),
    );
    expect(infer(&body, n), 400, "bundle");
    let (body, n) =
        infer_request(&[("ENCRYPTED_INPUT", cts.clone()), key(), ("EVALUATION_KEYS", vec![bundle.clone()])], json!({}));
    assert_eq!(infer(&body, n).status, 200);
    let (body, n) = infer_request(&[("ENCRYPTED_INPUT", vec![vec![0u8; 100]]), key()], json!({}));
    expect(infer(&body, n), 400, "ENCRYPTED_INPUT[0]");
    let (body, n) = infer_request(&[("ENCRYPTED_INPUT", vec![cts[0].clone(), cts[0].clone()]), key()], json!({}));
    expect(infer(&body, n), 400, "ciphertexts");
    // over the size limit (2 MB here): refused from Content-Length, before the body is read
    let (body, n) = infer_request(&[("ENCRYPTED_INPUT", vec![vec![0u8; 3 << 20]]), key()], json!({}));
    expect(infer(&body, n), 413, "--max-request-mb");
    // unknown model on infer
    let (body, n) = infer_request(&[("ENCRYPTED_INPUT", cts.clone()), key()], json!({}));
    expect(post_infer(a, "/v2/models/nope/infer", &body, n), 404, "unknown model");
    expect(
        raw(a, "POST", "/v2/models/bc/infer", &[("Content-Encoding", "gzip".into())], b"x"),
        400,
        "Content-Encoding",
    );

    // still alive, still right
    assert_eq!(get(a, "/v2/health/live").status, 200);
    let (body, n) = infer_request(&[("ENCRYPTED_INPUT", cts), key()], json!({}));
    check_result(&sess, 0, &outputs_of(&infer(&body, n)));
}

#[test]
fn http_requests_are_served_concurrently_and_shutdown_lets_them_finish() {
    let mut s = Running::start(64 << 20);
    let a = s.http();
    let sess = session();
    let (bundle, id) = sess.evaluation_bundle();
    let hex = id.hex();
    let (body, n) = infer_request(
        &[
            ("ENCRYPTED_INPUT", sess.encrypt(fixture().xs.row(0)).unwrap()),
            ("KEY_ID", vec![hex.clone().into_bytes()]),
            ("EVALUATION_KEYS", vec![bundle]),
        ],
        json!({}),
    );
    check_result(&sess, 0, &outputs_of(&post_infer(a, "/v2/models/bc/infer", &body, n)));

    let reqs: Vec<(Vec<u8>, usize)> = (0..6)
        .map(|i| {
            infer_request(
                &[
                    ("ENCRYPTED_INPUT", sess.encrypt(fixture().xs.row(i)).unwrap()),
                    ("KEY_ID", vec![hex.clone().into_bytes()]),
                ],
                json!({}),
            )
        })
        .collect();
    let replies: Vec<Vec<Vec<u8>>> = std::thread::scope(|sc| {
        let hs: Vec<_> = reqs
            .iter()
            .map(|(b, n)| sc.spawn(move || outputs_of(&post_infer(a, "/v2/models/bc/infer", b, *n))))
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for (i, outs) in replies.iter().enumerate() {
        check_result(&sess, i, outs);
    }

    // A request whose body is still arriving when shutdown begins is served to the end.
    let (body, n) = &reqs[1];
    let mut conn = TcpStream::connect(a).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let head = format!(
        "POST /v2/models/bc/infer HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {}\r\nInference-Header-Content-Length: {n}\r\n\r\n",
        body.len()
    );
    conn.write_all(head.as_bytes()).unwrap();
    conn.write_all(&body[..body.len() / 2]).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    let srv = s.srv.take().unwrap();
    let stopping = s.rt.spawn(srv.shutdown());
    std::thread::sleep(Duration::from_millis(200));
    assert!(!stopping.is_finished(), "shutdown waits for the in-flight request");
    conn.write_all(&body[body.len() / 2..]).unwrap();
    let r = read_reply(&mut conn);
    check_result(&sess, 1, &outputs_of(&r));
    s.rt.block_on(stopping).unwrap().unwrap();
    assert!(TcpStream::connect(a).is_err(), "no new connections after shutdown");
}

fn grpc_infer_request(inputs: &[(&str, Vec<Vec<u8>>)]) -> pb::ModelInferRequest {
    pb::ModelInferRequest {
        model_name: MODEL.into(),
        id: "g1".into(),
        inputs: inputs
            .iter()
            .map(|(name, els)| pb::model_infer_request::InferInputTensor {
                name: name.to_string(),
                datatype: "BYTES".into(),
                shape: vec![els.len() as i64],
                ..Default::default()
            })
            .collect(),
        raw_input_contents: inputs.iter().map(|(_, els)| bytes_tensor(els).into()).collect(),
        ..Default::default()
    }
}

#[test]
fn grpc_speaks_the_inference_service() {
    let s = Running::start(64 << 20);
    let url = s.grpc_url();
    let sess = session();
    let (bundle, id) = sess.evaluation_bundle();
    let hex = id.hex();
    let cts0 = sess.encrypt(fixture().xs.row(0)).unwrap();
    let cts1 = sess.encrypt(fixture().xs.row(1)).unwrap();
    s.rt.block_on(async move {
        let ch = tonic::transport::Endpoint::from_shared(url).unwrap().connect().await.unwrap();
        let mut c =
            GrpcInferenceServiceClient::new(ch).max_encoding_message_size(64 << 20).max_decoding_message_size(64 << 20);
        assert!(c.server_live(pb::ServerLiveRequest {}).await.unwrap().into_inner().live);
        assert!(c.server_ready(pb::ServerReadyRequest {}).await.unwrap().into_inner().ready);
        let ready = |name: &str| pb::ModelReadyRequest { name: name.into(), version: String::new() };
        assert!(c.model_ready(ready(MODEL)).await.unwrap().into_inner().ready);
        assert!(!c.model_ready(ready("nope")).await.unwrap().into_inner().ready);
        let meta = c.server_metadata(pb::ServerMetadataRequest {}).await.unwrap().into_inner();
        assert_eq!(meta.name, "heinfer");

        let m = c
            .model_metadata(pb::ModelMetadataRequest { name: MODEL.into(), version: "1".into() })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(m.versions, ["1"]);
        assert_eq!(m.inputs[0].name, "ENCRYPTED_INPUT");
        assert_eq!(m.inputs[0].datatype, "BYTES");
        assert_eq!(m.inputs[0].shape, [-1]);
        let cfg = c
            .model_config(pb::ModelConfigRequest { name: MODEL.into(), version: String::new() })
            .await
            .unwrap()
            .into_inner()
            .config
            .unwrap();
        assert_eq!(cfg.backend, "heinfer");
        assert_eq!(cfg.input[1].name, "KEY_ID");
        assert_eq!(cfg.input[1].data_type, pb::DataType::TypeString as i32);
        assert!(cfg.input[2].optional);
        let spec = model::ClientSpec::from_json(&cfg.parameters["heinfer_client_spec"].string_value).unwrap();
        assert_eq!(spec.to_json(), fixture().model.client.to_json());

        let err =
            c.model_config(pb::ModelConfigRequest { name: "nope".into(), version: String::new() }).await.unwrap_err();
        assert_eq!(err.code(), tonic::Code::NotFound);
        assert_eq!(err.message(), "Request for unknown model: 'nope' is not found");

        // registration with the request, then by key id; raw contents as tritonclient sends them
        let r = c
            .model_infer(grpc_infer_request(&[
                ("ENCRYPTED_INPUT", cts0.clone()),
                ("KEY_ID", vec![hex.clone().into_bytes()]),
                ("EVALUATION_KEYS", vec![bundle.clone()]),
            ]))
            .await
            .unwrap()
            .into_inner();
        assert_eq!((r.model_name.as_str(), r.model_version.as_str(), r.id.as_str()), (MODEL, "1", "g1"));
        assert_eq!(r.outputs[0].name, "ENCRYPTED_OUTPUT");
        assert_eq!(r.raw_output_contents.len(), 1);
        let outs: Vec<Vec<u8>> = runtime::tensor::split_bytes("o", &r.raw_output_contents[0], None)
            .unwrap()
            .into_iter()
            .map(<[u8]>::to_vec)
            .collect();
        assert_eq!(r.outputs[0].shape, [outs.len() as i64]);
        check_result(&sess, 0, &outs);

        // typed contents instead of raw
        let mut req =
            grpc_infer_request(&[("ENCRYPTED_INPUT", cts1.clone()), ("KEY_ID", vec![hex.clone().into_bytes()])]);
        req.raw_input_contents.clear();
        req.inputs[0].contents = Some(pb::InferTensorContents {
            bytes_contents: cts1.iter().map(|c| c.clone().into()).collect(),
            ..Default::default()
        });
        req.inputs[1].contents = Some(pb::InferTensorContents {
            bytes_contents: vec![hex.clone().into_bytes().into()],
            ..Default::default()
        });
        let r = c.model_infer(req).await.unwrap().into_inner();
        let outs: Vec<Vec<u8>> = runtime::tensor::split_bytes("o", &r.raw_output_contents[0], None)
            .unwrap()
            .into_iter()
            .map(<[u8]>::to_vec)
            .collect();
        check_result(&sess, 1, &outs);

        // errors: INVALID_ARGUMENT with the message, NOT_FOUND for unknown models
        let e = c
            .model_infer(grpc_infer_request(&[
                ("ENCRYPTED_INPUT", vec![vec![9u8; 64]]),
                ("KEY_ID", vec![hex.clone().into_bytes()]),
            ]))
            .await
            .unwrap_err();
        assert_eq!(e.code(), tonic::Code::InvalidArgument);
        assert!(e.message().contains("ENCRYPTED_INPUT[0]"), "{}", e.message());
        // a 6 MB bundle is past tonic's 4 MB default: it must reach the runtime (and be refused there)
        let e = c
            .model_infer(grpc_infer_request(&[
                ("ENCRYPTED_INPUT", cts0.clone()),
                ("KEY_ID", vec![hex.clone().into_bytes()]),
                ("EVALUATION_KEYS", vec![vec![0u8; 6 << 20]]),
            ]))
            .await
            .unwrap_err();
        assert_eq!(e.code(), tonic::Code::InvalidArgument, "{}", e.message());
        assert!(e.message().contains("bundle"), "{}", e.message());
        let mut bad =
            grpc_infer_request(&[("ENCRYPTED_INPUT", cts0.clone()), ("KEY_ID", vec![hex.clone().into_bytes()])]);
        bad.raw_input_contents.pop();
        let e = c.model_infer(bad).await.unwrap_err();
        assert_eq!(e.code(), tonic::Code::InvalidArgument);
        assert!(e.message().contains("raw_input_contents"), "{}", e.message());
        let mut unknown = grpc_infer_request(&[("ENCRYPTED_INPUT", cts0.clone())]);
        unknown.model_name = "nope".into();
        assert_eq!(c.model_infer(unknown).await.unwrap_err().code(), tonic::Code::NotFound);

        let st = c
            .model_statistics(pb::ModelStatisticsRequest { name: MODEL.into(), version: String::new() })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(st.model_stats[0].inference_count, 2);
        assert_eq!(st.model_stats[0].inference_stats.as_ref().unwrap().fail.as_ref().unwrap().count, 3);
        // and the process is still serving
        assert!(c.server_live(pb::ServerLiveRequest {}).await.unwrap().into_inner().live);
    });
}
