//! Each limit of `heinfer serve` against a client that breaks it on purpose, on raw
//! sockets: the server must refuse early (before reading or splitting what it would
//! refuse), answer with the documented status, free what the request held, and
//! serve the next good request.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::*;
use serde_json::json;
use server::pb;
use server::pb::grpc_inference_service_client::GrpcInferenceServiceClient;

fn opts(f: impl FnOnce(&mut server::Options)) -> server::Options {
    let mut o = server::Options::default();
    f(&mut o);
    o
}

/// A registered key and one good request for sample `i`.
struct Client {
    sess: client::Session,
    hex: String,
}

impl Client {
    fn register(a: SocketAddr) -> Client {
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
        let r = post_infer(a, "/v2/models/bc/infer", &body, n);
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        Client { sess, hex }
    }
    fn request(&self, i: usize) -> (Vec<u8>, usize) {
        infer_request(
            &[
                ("ENCRYPTED_INPUT", self.sess.encrypt(fixture().xs.row(i)).unwrap()),
                ("KEY_ID", vec![self.hex.clone().into_bytes()]),
            ],
            json!({}),
        )
    }
    /// A good request is served, and right.
    fn served(&self, a: SocketAddr, i: usize) {
        let (body, n) = self.request(i);
        check_result(&self.sess, i, &outputs_of(&post_infer(a, "/v2/models/bc/infer", &body, n)));
    }
}

/// Sends a request head (and `body_part` of its body) and leaves the connection open.
fn send_head(a: SocketAddr, headers: &[(&str, String)], body_part: &[u8]) -> TcpStream {
    let mut s = TcpStream::connect(a).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut req = format!("POST /v2/models/bc/infer HTTP/1.1\r\nHost: {a}\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    s.write_all(body_part).unwrap();
    s
}

/// Waits until the server closes `s` (EOF or reset), ignoring what it sends first.
fn closed_within(s: &mut TcpStream, limit: Duration) -> Duration {
    let t = Instant::now();
    s.set_read_timeout(Some(limit)).unwrap();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return t.elapsed(),
            Ok(_) => {}
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                panic!("connection still open after {:?}", t.elapsed())
            }
            Err(_) => return t.elapsed(),
        }
    }
}

fn wait_until(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let t = Instant::now();
    while t.elapsed() < limit {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    f()
}

#[test]
fn oversized_json_is_refused_from_the_headers_alone() {
    let s = Running::start(opts(|o| o.limits.max_json_bytes = 4 << 10), None);
    let a = s.http();
    let c = Client::register(a);
    // A binary-data request whose JSON header is over the cap: refused with no body sent.
    let mut conn = send_head(
        a,
        &[("Content-Length", (10 << 20).to_string()), ("Inference-Header-Content-Length", (8 << 10).to_string())],
        b"",
    );
    let r = read_reply(&mut conn);
    assert_eq!(r.status, 413, "{}", String::from_utf8_lossy(&r.body));
    assert!(r.error().contains("--max-json-kb"), "{}", r.error());
    // A JSON body (no binary section) over the cap: the same.
    let mut conn = send_head(a, &[("Content-Length", (30 << 20).to_string())], b"{\"inputs\": [");
    let r = read_reply(&mut conn);
    assert_eq!(r.status, 413);
    assert!(r.error().contains("--max-json-kb"), "{}", r.error());
    // A chunked JSON body is cut off at the cap as it arrives.
    let mut conn = send_head(a, &[("Transfer-Encoding", "chunked".into())], b"");
    let chunk = vec![b' '; 1024];
    let mut refused = false;
    for _ in 0..64 {
        if conn.write_all(format!("{:x}\r\n", chunk.len()).as_bytes()).is_err()
            || conn.write_all(&chunk).is_err()
            || conn.write_all(b"\r\n").is_err()
        {
            refused = true;
            break;
        }
    }
    let r = read_reply(&mut conn);
    assert_eq!(r.status, 413, "refused after at most 4 KB (write failed: {refused})");
    assert_eq!(s.srv.as_ref().unwrap().state().admission.inflight_bytes(), 0, "nothing stays reserved");
    c.served(a, 1);
    // A chunked binary-data request (no Content-Length) is charged as it arrives and served.
    let (body, n) = c.request(2);
    let mut conn = send_head(
        a,
        &[("Transfer-Encoding", "chunked".into()), ("Inference-Header-Content-Length", n.to_string())],
        b"",
    );
    for part in body.chunks(1000) {
        conn.write_all(format!("{:x}\r\n", part.len()).as_bytes()).unwrap();
        conn.write_all(part).unwrap();
        conn.write_all(b"\r\n").unwrap();
    }
    conn.write_all(b"0\r\n\r\n").unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 65536];
    // the reply is kept-alive (no Connection: close sent): read until the whole body is in
    let r = loop {
        let k = conn.read(&mut chunk).unwrap();
        assert!(k > 0, "closed early");
        buf.extend_from_slice(&chunk[..k]);
        if let Some(split) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..split]).to_lowercase();
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .map(|v| v.trim().parse().unwrap())
                .unwrap();
            if buf.len() >= split + 4 + len {
                let headers = head
                    .lines()
                    .skip(1)
                    .filter_map(|l| l.split_once(':').map(|(k, v)| (k.trim().to_string(), v.trim().to_string())))
                    .collect();
                let status = head.split(' ').nth(1).unwrap().parse().unwrap();
                break Reply { status, headers, body: buf[split + 4..split + 4 + len].to_vec() };
            }
        }
    };
    check_result(&c.sess, 2, &outputs_of(&r));
}

#[test]
fn declared_shapes_are_checked_before_the_body_is_read() {
    let s = Running::start(server::Options::default(), None);
    let a = s.http();
    let c = Client::register(a);
    let want = fixture().model.client.input.slot_map.len();
    // 40 MB of binary data declared for a million empty elements: refused from the
    // JSON header alone, while the binary section has not been sent.
    let size = 40usize << 20;
    let head = serde_json::to_vec(&json!({"inputs": [
        {"name": "ENCRYPTED_INPUT", "datatype": "BYTES", "shape": [1_000_000], "parameters": {"binary_data_size": size}},
        {"name": "KEY_ID", "datatype": "BYTES", "shape": [1], "data": [c.hex.clone()]}]}))
    .unwrap();
    let mut conn = send_head(
        a,
        &[
            ("Content-Length", (head.len() + size).to_string()),
            ("Inference-Header-Content-Length", head.len().to_string()),
        ],
        &head,
    );
    let t = Instant::now();
    let r = read_reply(&mut conn);
    assert_eq!(r.status, 400);
    assert!(r.error().contains(&format!("model 'bc' takes {want}")), "{}", r.error());
    assert!(t.elapsed() < Duration::from_secs(5), "answered without waiting for the 40 MB");
    // Wrong datatype, duplicate, unknown and missing tensors: the same, before data.
    for (inputs, needle) in [
        (
            json!([{"name": "ENCRYPTED_INPUT", "datatype": "FP32", "shape": [want], "parameters": {"binary_data_size": size}}]),
            "data-type",
        ),
        (
            json!([{"name": "KEY_ID", "datatype": "BYTES", "shape": [1], "data": ["x"]}, {"name": "KEY_ID", "datatype": "BYTES", "shape": [1], "data": ["x"]}]),
            "twice",
        ),
        (
            json!([{"name": "NOPE", "datatype": "BYTES", "shape": [1], "parameters": {"binary_data_size": size}}]),
            "unexpected inference input",
        ),
        (json!([{"name": "KEY_ID", "datatype": "BYTES", "shape": [1], "data": ["x"]}]), "missing required input"),
        // lists the model bounds stop growing while the JSON is parsed
        (json!([{"name": "ENCRYPTED_INPUT", "datatype": "BYTES", "shape": vec![0; 100_000]}]), "more than 16 elements"),
        (
            json!(vec![json!({"name": "KEY_ID", "datatype": "BYTES", "shape": [1], "data": ["x"]}); 1000]),
            "more than 16 elements",
        ),
    ] {
        let head = serde_json::to_vec(&json!({ "inputs": inputs })).unwrap();
        let mut conn = send_head(
            a,
            &[
                ("Content-Length", (head.len() + size).to_string()),
                ("Inference-Header-Content-Length", head.len().to_string()),
            ],
            &head,
        );
        let r = read_reply(&mut conn);
        assert_eq!(r.status, 400);
        assert!(r.error().contains(needle), "{} should mention {needle}", r.error());
    }
    // Binary sizes that do not add up to Content-Length: refused before reading.
    let (body, n) = c.request(2);
    let mut conn = send_head(
        a,
        &[("Content-Length", (body.len() + (8 << 20)).to_string()), ("Inference-Header-Content-Length", n.to_string())],
        &body[..n],
    );
    let r = read_reply(&mut conn);
    assert_eq!(r.status, 400);
    assert!(r.error().contains("binary data follow"), "{}", r.error());
    assert!(wait_until(Duration::from_secs(2), || s.srv.as_ref().unwrap().state().admission.inflight_bytes() == 0));
    c.served(a, 3);
}

#[test]
fn a_full_inflight_budget_answers_503_and_frees_on_close() {
    let s = Running::start(
        opts(|o| {
            o.max_request_bytes = 1 << 20;
            o.limits.max_inflight_bytes = 1 << 20;
        }),
        None,
    );
    let a = s.http();
    let c = Client::register(a);
    // One client declares all but 1000 bytes of the budget and sends nothing more.
    let (body, n) = c.request(1);
    let held = (1 << 20) - 1000;
    let hold =
        send_head(a, &[("Content-Length", held.to_string()), ("Inference-Header-Content-Length", n.to_string())], b"");
    let st = s.srv.as_ref().unwrap().state().clone();
    assert!(wait_until(Duration::from_secs(2), || st.admission.inflight_bytes() == held));
    let r = post_infer(a, "/v2/models/bc/infer", &body, n);
    assert_eq!(r.status, 503, "{}", String::from_utf8_lossy(&r.body));
    assert!(r.error().contains("--max-inflight-mb"), "{}", r.error());
    drop(hold);
    assert!(
        wait_until(Duration::from_secs(2), || st.admission.inflight_bytes() == 0),
        "a closed client frees its bytes"
    );
    c.served(a, 1);
}

#[test]
fn a_full_queue_answers_503() {
    let slow = Slow::new(150);
    let s = Running::start(opts(|o| o.limits.max_queue = 1), Some(&slow));
    let a = s.http();
    let c = Client::register(a);
    let before = slow.done();
    // One evaluates (1.5 s), one waits, the third is refused at once.
    let reqs: Vec<_> = (0..2).map(|i| c.request(i)).collect();
    let third = c.request(2);
    std::thread::scope(|sc| {
        let running: Vec<_> = reqs
            .iter()
            .map(|(b, n)| {
                let h = sc.spawn(move || post_infer(a, "/v2/models/bc/infer", b, *n));
                std::thread::sleep(Duration::from_millis(200));
                h
            })
            .collect();
        let t = Instant::now();
        let r = post_infer(a, "/v2/models/bc/infer", &third.0, third.1);
        assert_eq!(r.status, 503, "{}", String::from_utf8_lossy(&r.body));
        assert!(r.error().contains("--max-queue"), "{}", r.error());
        assert!(t.elapsed() < Duration::from_secs(1), "refused, not queued");
        for h in running {
            assert_eq!(h.join().unwrap().status, 200);
        }
    });
    assert_eq!(slow.done() - before, 300, "both admitted requests ran to the end");
}

#[test]
fn a_disconnected_client_stops_its_evaluation_and_frees_its_instance() {
    let slow = Slow::new(300);
    let s = Running::start(server::Options::default(), Some(&slow));
    let a = s.http();
    let c = Client::register(a);
    let st = s.srv.as_ref().unwrap().state().clone();
    // Eight clients send a 3 s request and hang up after 300 ms: with one instance,
    // their work would take 24 s if it ran on.
    let start = slow.done();
    for i in 0..8 {
        let (body, n) = c.request(i);
        let conn = send_head(
            a,
            &[("Content-Length", body.len().to_string()), ("Inference-Header-Content-Length", n.to_string())],
            &body,
        );
        std::thread::sleep(Duration::from_millis(300));
        conn.shutdown(std::net::Shutdown::Both).unwrap();
    }
    // Each ran only while its client was there (about 30 steps of its 300); had
    // their work gone on, the one instance would still be busy with the first.
    std::thread::sleep(Duration::from_millis(100));
    let after = slow.done() - start;
    assert!(after < 8 * 40, "{after} steps ran");
    std::thread::sleep(Duration::from_millis(500));
    assert!(slow.done() - start <= after + 1, "work went on after its client left");
    assert!(wait_until(Duration::from_secs(2), || st.admission.inflight_bytes() == 0));
    // The instance is free: a good request takes its own 3 s, not 24 more.
    let t = Instant::now();
    c.served(a, 1);
    assert!(t.elapsed() < Duration::from_secs(8), "{:?}", t.elapsed());
}

#[test]
fn an_evaluation_past_its_deadline_is_stopped_with_504() {
    let slow = Slow::new(300);
    let s = Running::start(opts(|o| o.limits.eval_timeout = Duration::from_secs(1)), Some(&slow));
    let a = s.http();
    let sess = session();
    let (bundle, id) = sess.evaluation_bundle();
    let (body, n) = infer_request(
        &[
            ("ENCRYPTED_INPUT", sess.encrypt(fixture().xs.row(0)).unwrap()),
            ("KEY_ID", vec![id.hex().into_bytes()]),
            ("EVALUATION_KEYS", vec![bundle]),
        ],
        json!({}),
    );
    let r = post_infer(a, "/v2/models/bc/infer", &body, n);
    assert_eq!(r.status, 504, "{}", String::from_utf8_lossy(&r.body));
    assert!(r.error().contains("--eval-timeout-s"), "{}", r.error());
    let at = slow.done();
    std::thread::sleep(Duration::from_millis(300));
    assert!(slow.done() <= at + 1 && at < 150, "the evaluation stopped at its deadline ({at} steps)");
}

#[test]
fn slow_headers_bodies_and_silent_connections_are_closed() {
    let s = Running::start(
        opts(|o| {
            o.limits.header_timeout = Duration::from_secs(1);
            o.limits.body_timeout = Duration::from_secs(1);
        }),
        None,
    );
    let a = s.http();
    // Connects and says nothing.
    let mut silent = TcpStream::connect(a).unwrap();
    // Half a header, then nothing.
    let mut slow_head = TcpStream::connect(a).unwrap();
    slow_head.write_all(b"POST /v2/models/bc/infer HTTP/1.1\r\nHost: x\r\nContent-Le").unwrap();
    // A whole header, then 10 of 1000 body bytes.
    let mut slow_body = send_head(
        a,
        &[("Content-Length", "1000".into()), ("Inference-Header-Content-Length", "1000".into())],
        b"{\"inputs\":",
    );
    let limit = Duration::from_secs(4);
    assert!(closed_within(&mut silent, limit) < limit);
    assert!(closed_within(&mut slow_head, limit) < limit);
    let r = read_reply(&mut slow_body);
    assert_eq!(r.status, 408, "{}", String::from_utf8_lossy(&r.body));
    assert!(r.error().contains("--body-timeout-s"), "{}", r.error());
    // An idle kept-alive connection is closed too, after its request was served.
    let mut idle = TcpStream::connect(a).unwrap();
    idle.write_all(format!("GET /v2/health/live HTTP/1.1\r\nHost: {a}\r\n\r\n").as_bytes()).unwrap();
    assert!(closed_within(&mut idle, limit) < limit);
    assert_eq!(get(a, "/v2/health/live").status, 200);
}

#[test]
fn connections_over_the_cap_wait_until_one_closes() {
    let s = Running::start(opts(|o| o.limits.max_connections = 2), None);
    let a = s.http();
    let one = TcpStream::connect(a).unwrap();
    let _two = TcpStream::connect(a).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    // The third is in the kernel's backlog: its request is not read while two are open.
    let mut third = TcpStream::connect(a).unwrap();
    third
        .write_all(format!("GET /v2/health/live HTTP/1.1\r\nHost: {a}\r\nConnection: close\r\n\r\n").as_bytes())
        .unwrap();
    third.set_read_timeout(Some(Duration::from_millis(700))).unwrap();
    let mut buf = [0u8; 64];
    assert!(third.read(&mut buf).is_err(), "a third connection was served while the cap is 2");
    drop(one);
    third.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    assert_eq!(read_reply(&mut third).status, 200);
}

#[test]
fn grpc_amplification_and_size_limits() {
    let s = Running::start(opts(|o| o.max_request_bytes = 4 << 20), None);
    let url = s.grpc_url();
    let st = s.srv.as_ref().unwrap().state().clone();
    let sess = session();
    let (bundle, id) = sess.evaluation_bundle();
    let hex = id.hex();
    let cts = sess.encrypt(fixture().xs.row(0)).unwrap();
    s.rt.block_on(async move {
        let ch = tonic::transport::Endpoint::from_shared(url).unwrap().connect().await.unwrap();
        let mut c =
            GrpcInferenceServiceClient::new(ch).max_encoding_message_size(64 << 20).max_decoding_message_size(64 << 20);
        let tensor = |name: &str, n: i64| pb::model_infer_request::InferInputTensor {
            name: name.into(),
            datatype: "BYTES".into(),
            shape: vec![n],
            ..Default::default()
        };
        // A million empty raw_input_contents: 2 MB on the wire, 32 MB once decoded.
        let flood = pb::ModelInferRequest {
            model_name: "bc".into(),
            inputs: vec![tensor("ENCRYPTED_INPUT", 1), tensor("KEY_ID", 1)],
            raw_input_contents: vec![bytes::Bytes::new(); 1_000_000],
            ..Default::default()
        };
        let e = c.model_infer(flood).await.unwrap_err();
        assert_eq!(e.code(), tonic::Code::InvalidArgument, "{}", e.message());
        assert!(e.message().contains("raw_input_contents"), "{}", e.message());
        // The same through bytes_contents.
        let mut flood = pb::ModelInferRequest {
            model_name: "bc".into(),
            inputs: vec![tensor("ENCRYPTED_INPUT", 1), tensor("KEY_ID", 1)],
            ..Default::default()
        };
        flood.inputs[0].contents = Some(pb::InferTensorContents {
            bytes_contents: vec![bytes::Bytes::new(); 1_000_000],
            ..Default::default()
        });
        let e = c.model_infer(flood).await.unwrap_err();
        assert_eq!(e.code(), tonic::Code::InvalidArgument, "{}", e.message());
        assert!(e.message().contains("bytes_contents"), "{}", e.message());
        // Over --max-request-mb: RESOURCE_EXHAUSTED with the flag's name.
        let big = pb::ModelInferRequest {
            model_name: "bc".into(),
            inputs: vec![tensor("ENCRYPTED_INPUT", 1), tensor("KEY_ID", 1), tensor("EVALUATION_KEYS", 1)],
            raw_input_contents: vec![
                bytes_tensor(&cts).into(),
                bytes_tensor(&[hex.as_bytes()]).into(),
                bytes_tensor(&[vec![0u8; 5 << 20]]).into(),
            ],
            ..Default::default()
        };
        let e = c.model_infer(big).await.unwrap_err();
        assert_eq!(e.code(), tonic::Code::ResourceExhausted, "{}", e.message());
        assert!(e.message().contains("--max-request-mb"), "{}", e.message());
        // A shape the model does not take: refused before splitting.
        let wrong = pb::ModelInferRequest {
            model_name: "bc".into(),
            inputs: vec![tensor("ENCRYPTED_INPUT", 100_000), tensor("KEY_ID", 1)],
            raw_input_contents: vec![vec![0u8; 400_000].into(), bytes_tensor(&[hex.as_bytes()]).into()],
            ..Default::default()
        };
        let e = c.model_infer(wrong).await.unwrap_err();
        assert_eq!(e.code(), tonic::Code::InvalidArgument, "{}", e.message());
        assert!(e.message().contains("ciphertexts"), "{}", e.message());
        assert_eq!(st.admission.inflight_bytes(), 0);
        // and a good call is served
        let good = pb::ModelInferRequest {
            model_name: "bc".into(),
            inputs: vec![
                tensor("ENCRYPTED_INPUT", cts.len() as i64),
                tensor("KEY_ID", 1),
                tensor("EVALUATION_KEYS", 1),
            ],
            raw_input_contents: vec![
                bytes_tensor(&cts).into(),
                bytes_tensor(&[hex.as_bytes()]).into(),
                bytes_tensor(&[&bundle]).into(),
            ],
            ..Default::default()
        };
        let r = c.model_infer(good).await.unwrap().into_inner();
        let outs: Vec<Vec<u8>> = runtime::tensor::split_bytes("o", &r.raw_output_contents[0], None)
            .unwrap()
            .into_iter()
            .map(<[u8]>::to_vec)
            .collect();
        check_result(&sess, 0, &outs);
    });
}

#[test]
fn limits_that_could_never_admit_a_request_are_refused_at_start() {
    let f = fixture();
    let repo = server::repo::load(&f.repo, &Default::default()).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let o = opts(|o| {
        o.max_request_bytes = 64 << 20;
        o.limits.max_inflight_bytes = 32 << 20;
    });
    let e = rt.block_on(server::Server::start(repo, &o)).err().expect("refused");
    assert!(e.to_string().contains("--max-inflight-mb"), "{e}");
}

#[test]
fn the_runtime_stops_a_cancelled_evaluation_before_its_next_operation() {
    use std::sync::atomic::AtomicBool;
    let f = fixture();
    let m = model::HeModel::read_file(f.repo.join("bc/1/model.hem")).unwrap();
    let keys = std::sync::Arc::new(runtime::KeyStore::new(usize::MAX, None).unwrap());
    let service = runtime::CompiledModel::load(m).unwrap().into_service(keys);
    let sess = session();
    let (bundle, id) = sess.evaluation_bundle();
    service.register(&bundle).unwrap();
    let cts = sess.encrypt(f.xs.row(0)).unwrap();
    let hex = id.hex();
    let req = || runtime::Request {
        ciphertexts: cts.iter().map(|c| &c[..]).collect(),
        key_id: Some(hex.as_bytes()),
        evaluation_keys: None,
    };
    let e = service.infer_cancellable(req(), &AtomicBool::new(true)).err().expect("cancelled");
    assert!(e.to_string().contains("cancelled after 0 of"), "{e}");
    let out = service.infer_cancellable(req(), &AtomicBool::new(false)).unwrap();
    check_result(&sess, 0, &out.ciphertexts);
}

#[test]
fn grpc_calls_past_the_stream_limit_wait_on_their_connection() {
    // One instance, no queue: a second evaluation at once is refused — unless the
    // per-connection stream limit (1) holds it back on its connection until the first ends.
    let slow = Slow::new(50);
    let s = Running::start(
        opts(|o| {
            o.limits.max_queue = 0;
            o.limits.max_streams_per_connection = 1;
        }),
        Some(&slow),
    );
    let url = s.grpc_url();
    let sess = session();
    let (bundle, id) = sess.evaluation_bundle();
    let hex = id.hex();
    let cts = sess.encrypt(fixture().xs.row(0)).unwrap();
    s.rt.block_on(async move {
        let req = |keys: bool| {
            let mut names = vec![("ENCRYPTED_INPUT", cts.clone()), ("KEY_ID", vec![hex.clone().into_bytes()])];
            if keys {
                names.push(("EVALUATION_KEYS", vec![bundle.clone()]));
            }
            pb::ModelInferRequest {
                model_name: "bc".into(),
                inputs: names
                    .iter()
                    .map(|(n, els)| pb::model_infer_request::InferInputTensor {
                        name: n.to_string(),
                        datatype: "BYTES".into(),
                        shape: vec![els.len() as i64],
                        ..Default::default()
                    })
                    .collect(),
                raw_input_contents: names.iter().map(|(_, els)| bytes_tensor(els).into()).collect(),
                ..Default::default()
            }
        };
        let connect = || async {
            let ch = tonic::transport::Endpoint::from_shared(url.clone()).unwrap().connect().await.unwrap();
            GrpcInferenceServiceClient::new(ch).max_encoding_message_size(64 << 20).max_decoding_message_size(64 << 20)
        };
        let mut one = connect().await;
        one.model_infer(req(true)).await.unwrap();
        // Two calls on one connection: the second waits for its stream, then is served.
        let (mut a, mut b) = (one.clone(), one.clone());
        let (ra, rb) = tokio::join!(a.model_infer(req(false)), b.model_infer(req(false)));
        assert!(ra.is_ok() && rb.is_ok(), "{:?} {:?}", ra.err(), rb.err());
        // On two connections the second reaches the full instance and is refused.
        let mut other = connect().await;
        let (ra, rb) = tokio::join!(a.model_infer(req(false)), async {
            tokio::time::sleep(Duration::from_millis(100)).await;
            other.model_infer(req(false)).await
        });
        assert!(ra.is_ok());
        let e = rb.unwrap_err();
        assert_eq!(e.code(), tonic::Code::Unavailable, "{}", e.message());
        assert!(e.message().contains("--max-queue"), "{}", e.message());
    });
}

#[test]
fn a_largest_grpc_message_fits_a_budget_of_one_largest_request() {
    // Frames read before the message's length is known are not reserved twice.
    let s = Running::start(
        opts(|o| {
            o.max_request_bytes = 1 << 20;
            o.limits.max_inflight_bytes = 1 << 20;
        }),
        None,
    );
    let url = s.grpc_url();
    s.rt.block_on(async move {
        let ch = tonic::transport::Endpoint::from_shared(url).unwrap().connect().await.unwrap();
        let mut c = GrpcInferenceServiceClient::new(ch).max_encoding_message_size(4 << 20);
        let tensor = |name: &str| pb::model_infer_request::InferInputTensor {
            name: name.into(),
            datatype: "BYTES".into(),
            shape: vec![1],
            ..Default::default()
        };
        let mut req = pb::ModelInferRequest {
            model_name: "bc".into(),
            inputs: vec![tensor("ENCRYPTED_INPUT"), tensor("KEY_ID"), tensor("EVALUATION_KEYS")],
            raw_input_contents: vec![bytes_tensor(&[b"x"]).into(), bytes_tensor(&[b"00"]).into(), vec![].into()],
            ..Default::default()
        };
        let pad = (1 << 20) - prost::Message::encoded_len(&req) - 16;
        req.raw_input_contents[2] = bytes_tensor(&[vec![0u8; pad]]).into();
        assert!(prost::Message::encoded_len(&req) <= 1 << 20);
        let e = c.model_infer(req).await.unwrap_err();
        assert_eq!(e.code(), tonic::Code::InvalidArgument, "admitted, then refused by the runtime: {}", e.message());
        assert!(e.message().contains("bundle"), "{}", e.message());
    });
}

#[test]
fn a_cancelled_grpc_call_stops_its_evaluation() {
    let slow = Slow::new(300);
    let s = Running::start(server::Options::default(), Some(&slow));
    let url = s.grpc_url();
    let sess = session();
    let (bundle, id) = sess.evaluation_bundle();
    let hex = id.hex();
    let cts = sess.encrypt(fixture().xs.row(0)).unwrap();
    let slow2 = slow.clone();
    s.rt.block_on(async move {
        let ch = tonic::transport::Endpoint::from_shared(url).unwrap().connect().await.unwrap();
        let mut c = GrpcInferenceServiceClient::new(ch).max_encoding_message_size(64 << 20);
        let names = [
            ("ENCRYPTED_INPUT", cts.clone()),
            ("KEY_ID", vec![hex.clone().into_bytes()]),
            ("EVALUATION_KEYS", vec![bundle.clone()]),
        ];
        let req = pb::ModelInferRequest {
            model_name: "bc".into(),
            inputs: names
                .iter()
                .map(|(n, els)| pb::model_infer_request::InferInputTensor {
                    name: n.to_string(),
                    datatype: "BYTES".into(),
                    shape: vec![els.len() as i64],
                    ..Default::default()
                })
                .collect(),
            raw_input_contents: names.iter().map(|(_, els)| bytes_tensor(els).into()).collect(),
            ..Default::default()
        };
        // The client gives up after 300 ms of a 3 s evaluation (its future is dropped:
        // the stream is reset).
        let r = tokio::time::timeout(Duration::from_millis(300), c.model_infer(req)).await;
        assert!(r.is_err(), "still running when the client gave up");
        tokio::time::sleep(Duration::from_millis(200)).await;
        let at = slow2.done();
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert!(at < 100 && slow2.done() <= at + 1, "{at} then {} steps: the work went on", slow2.done());
    });
}
