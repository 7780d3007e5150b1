//! What the limit tests share with each other: the compiled fixture model, a server
//! started under given limits (optionally over a slow, counting executable), and a
//! raw HTTP/1.1 client that can send exactly the bytes an attacker would.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use ckks::{Ciphertext, EvaluationKeys, Evaluator, Parameters};
use client::Session;
use runtime::{Executable, RunError};
use serde_json::{json, Value as Json};

const MODEL: &str = "bc";

pub fn repo_file(p: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..").join(p)
}

pub struct Fixture {
    pub repo: PathBuf,
    pub model: model::HeModel,
    pub xs: compiler::Array,
}

/// Compiles the model once per test binary into the target's temp dir.
pub fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let onnx = std::fs::read(repo_file("models/breast_cancer_lr.onnx")).unwrap();
        let cal = compiler::npy::read(&repo_file("models/data/breast_cancer_train_x.npy")).unwrap();
        let xs = compiler::npy::read(&repo_file("models/data/breast_cancer_test_x.npy")).unwrap();
        let opts = compiler::Options { name: MODEL.into(), use_onnxruntime: false, ..Default::default() };
        let d = compiler::Data { calibration: &cal, eval: None, labels: None };
        let c = compiler::compile(&onnx, None, &d, &opts, &|_| {}).expect("compiles");
        let repo =
            PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("server-limits-tests-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&repo);
        compiler::write_repository(&repo, &c).unwrap();
        // a model of another backend is skipped, not fatal
        std::fs::create_dir_all(repo.join("other")).unwrap();
        std::fs::write(repo.join("other/config.pbtxt"), "name: \"other\"\nbackend: \"onnxruntime\"\n").unwrap();
        Fixture { repo, model: c.model, xs }
    })
}

pub struct Running {
    pub rt: tokio::runtime::Runtime,
    pub srv: Option<server::Server>,
}

impl Running {
    /// The fixture's repository under `opts`; with `slow`, model bc evaluates through
    /// [`Slow`] (that many 10 ms steps first) on one instance.
    pub fn start(opts: server::Options, slow: Option<&Arc<Slow>>) -> Running {
        let f = fixture();
        let mut repo = server::repo::load(&f.repo, &Default::default()).expect("repository loads");
        if let Some(slow) = slow {
            let m = repo.models.remove(MODEL).unwrap();
            let exe: Arc<dyn Executable> = slow.clone();
            let input = &f.model.client.input;
            let service =
                runtime::Service::new(exe, repo.keys.clone()).with_input_level(input.level as usize, input.scale);
            let m = server::repo::LoadedModel {
                name: m.name.clone(),
                version: m.version.clone(),
                config: m.config.clone(),
                config_json: m.config_json.clone(),
                service,
                stats: Default::default(),
                slots: tokio::sync::Semaphore::new(1),
                merger: None,
            };
            repo.models.insert(MODEL.into(), Arc::new(m));
        }
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let srv = rt.block_on(server::Server::start(repo, &opts)).unwrap();
        Running { rt, srv: Some(srv) }
    }
    pub fn http(&self) -> SocketAddr {
        self.srv.as_ref().unwrap().http_addr()
    }
    pub fn grpc_url(&self) -> String {
        format!("http://{}", self.srv.as_ref().unwrap().grpc_addr())
    }
    pub fn stop(&mut self) {
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

pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
    pub fn json(&self) -> Json {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }
    pub fn error(&self) -> String {
        self.json()["error"].as_str().expect("an error body {\"error\": ...}").to_string()
    }
}

/// One request on a fresh connection (Connection: close), read to EOF.
pub fn raw(addr: SocketAddr, method: &str, path: &str, headers: &[(&str, String)], body: &[u8]) -> Reply {
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

pub fn read_reply(s: &mut TcpStream) -> Reply {
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

pub fn get(addr: SocketAddr, path: &str) -> Reply {
    raw(addr, "GET", path, &[], b"")
}

pub fn bytes_tensor<B: AsRef<[u8]>>(els: &[B]) -> Vec<u8> {
    let mut out = Vec::new();
    for e in els {
        out.extend_from_slice(&(e.as_ref().len() as u32).to_le_bytes());
        out.extend_from_slice(e.as_ref());
    }
    out
}

/// Builds a binary-data infer request: (name, elements) inputs, all as binary.
pub fn infer_request(inputs: &[(&str, Vec<Vec<u8>>)], extra: Json) -> (Vec<u8>, usize) {
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

pub fn post_infer(addr: SocketAddr, path: &str, body: &[u8], head_len: usize) -> Reply {
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
pub fn outputs_of(r: &Reply) -> Vec<Vec<u8>> {
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
pub fn check_result(session: &Session, sample: usize, outs: &[Vec<u8>]) {
    let f = fixture();
    let got = session.decrypt(outs).expect("decrypts");
    let slots = f.model.client.pack_input(f.xs.row(sample)).unwrap();
    let want = f.model.client.unpack_output(&model::simulate(&f.model, &slots).unwrap()).unwrap();
    assert_eq!(got.len(), want.len());
    for (g, w) in got.iter().zip(&want) {
        assert!((g - w).abs() < 1e-2, "encrypted {got:?} vs simulated {want:?}");
    }
}

pub fn session() -> Session {
    Session::generate(fixture().model.client.clone()).unwrap()
}

/// The real model's evaluation after `steps` steps of 10 ms, counted, that stop as
/// soon as the runtime's cancellation flag is set: a request whose work goes on
/// after its client left shows as a count that keeps growing.
pub struct Slow {
    pub inner: Arc<dyn Executable>,
    pub steps: usize,
    pub done: AtomicUsize,
}

impl Slow {
    pub fn new(steps: usize) -> Arc<Slow> {
        let f = fixture();
        let m = model::HeModel::read_file(f.repo.join(MODEL).join("1/model.hem")).unwrap();
        let inner = runtime::CompiledModel::load(m).unwrap().into_executable();
        Arc::new(Slow { inner, steps, done: AtomicUsize::new(0) })
    }
    pub fn done(&self) -> usize {
        self.done.load(Ordering::Relaxed)
    }
}

impl Executable for Slow {
    fn params(&self) -> &Parameters {
        self.inner.params()
    }
    fn input_count(&self) -> usize {
        self.inner.input_count()
    }
    fn rotation_steps(&self) -> &[i64] {
        self.inner.rotation_steps()
    }
    fn needs_relinearization(&self) -> bool {
        self.inner.needs_relinearization()
    }
    fn run(
        &self,
        eval: &Evaluator,
        keys: &EvaluationKeys,
        inputs: Vec<Ciphertext>,
    ) -> Result<Vec<Ciphertext>, RunError> {
        self.run_cancellable(eval, keys, inputs, &AtomicBool::new(false))
    }
    fn run_cancellable(
        &self,
        eval: &Evaluator,
        keys: &EvaluationKeys,
        inputs: Vec<Ciphertext>,
        cancel: &AtomicBool,
    ) -> Result<Vec<Ciphertext>, RunError> {
        for done in 0..self.steps {
            if cancel.load(Ordering::Relaxed) {
                return Err(RunError::Cancelled { done, total: self.steps });
            }
            std::thread::sleep(Duration::from_millis(10));
            self.done.fetch_add(1, Ordering::Relaxed);
        }
        self.inner.run_cancellable(eval, keys, inputs, cancel)
    }
}
