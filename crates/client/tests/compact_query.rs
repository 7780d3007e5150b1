//! Compact queries end to end without a server process: compile the digits MLP with
//! `compact_query`, make the bundle and queries with `client::Session` (one word per
//! pixel), let the runtime's service unpack and evaluate them, decrypt, and compare with
//! the plaintext simulation — with the first layer after the packing (an LWE query, the
//! layer in slots) and before it (a ring query, the layer on its coefficients). Also: the
//! first model still takes an ordinary ciphertext laid out by its slot map, the second
//! refuses one, each refuses the other's query, and the compiler's predicted error bounds
//! what is measured.
use std::path::PathBuf;
use std::sync::Arc;

use client::Session;
use compiler::{npy, Data, FirstLayer, Options};
use runtime::{CompiledModel, KeyStore, Request};

fn repo_file(p: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..").join(p)
}

/// Compiles the digits MLP with a compact query and its first layer where `form` says,
/// serves 6 test digits through `Session` and the service, and checks each against the
/// simulation. Returns the model, the session, the service's key id and service, and the
/// largest logit error.
fn serve(form: FirstLayer) -> (model::HeModel, Session, runtime::Service, String, f64) {
    let onnx = std::fs::read(repo_file("models/digits_mlp.onnx")).unwrap();
    let calib = npy::read(&repo_file("models/data/digits_train_img.npy")).unwrap();
    let test = npy::read(&repo_file("models/data/digits_test_img.npy")).unwrap();
    let opts = Options {
        name: "mlp".into(),
        use_onnxruntime: false,
        compact_query: true,
        first_layer: form,
        ..Options::default()
    };
    let m = compiler::compile(&onnx, None, &Data { calibration: &calib, eval: None, labels: None }, &opts, &|_| {})
        .expect("compiles with a compact query")
        .model;
    let session = Session::generate(m.client.clone()).unwrap();
    let (bundle, _) = session.evaluation_bundle();
    let service = CompiledModel::load(m.clone()).unwrap().into_service(Arc::new(KeyStore::new(1 << 32, None).unwrap()));
    let id = service.register(&bundle).unwrap().hex();
    // 6 digits: a query costs seconds in the test profile (debug assertions in the kernels);
    // tests/python/test_compact_query.py and `heinfer run` cover more.
    let mut max_err: f64 = 0.0;
    for i in 0..6 {
        let x = test.row(i);
        let query = session.encrypt(x).unwrap();
        assert_eq!(query.len(), 1);
        assert!(query[0].len() < 1600, "{} bytes", query[0].len());
        let logits = session.decrypt(&infer(&service, &id, &query).unwrap()).unwrap();
        let slots = m.client.pack_input(x).unwrap();
        let sim = m.client.unpack_output(&model::simulate(&m, &slots).unwrap()).unwrap();
        assert_eq!(model::argmax(&logits), model::argmax(&sim), "sample {i}: {logits:?} vs {sim:?}");
        for (a, b) in logits.iter().zip(&sim) {
            max_err = max_err.max((a - b).abs());
        }
    }
    (m, session, service, id, max_err)
}

fn infer(service: &runtime::Service, id: &str, cts: &[Vec<u8>]) -> Result<Vec<Vec<u8>>, runtime::ServiceError> {
    let req = Request {
        ciphertexts: cts.iter().map(|c| &c[..]).collect(),
        key_id: Some(id.as_bytes()),
        evaluation_keys: None,
    };
    service.infer(req).map(|out| out.ciphertexts)
}

#[test]
fn a_compact_query_mlp_agrees_with_the_simulation_with_its_first_layer_before_or_after_packing() {
    let test = npy::read(&repo_file("models/data/digits_test_img.npy")).unwrap();
    // After the packing: an LWE query of the period's 64 words, the layer in slots.
    let (m, session, service, id, max_err) = serve(FirstLayer::Slots);
    let c = m.client.input.compact.clone().expect("the spec says compact");
    assert_eq!((c.period, c.galois_elements.len(), c.ring_values), (64, 14, None));
    assert!(m.first_layer.is_none());
    // The compiler's noise analysis (with the packing's noise) predicts 0.147 for this model.
    assert!(max_err < 0.3, "max logit error against the simulation {max_err}");
    // An ordinary ciphertext laid out by the slot map is served too.
    let params = ckks::Parameters::from_spec(&m.client.params).unwrap();
    let enc = ckks::Encoder::new(&params);
    let mut dec = ckks::Decryptor::new(session.keys().secret_key());
    let x = test.row(0);
    let slots = m.client.pack_input(x).unwrap();
    let pt = enc.encode(&slots[0], m.client.input.level as usize, m.client.input.scale).unwrap();
    let full =
        session.decrypt(&infer(&service, &id, &[dec.encrypt_symmetric(&pt).unwrap().to_bytes()]).unwrap()).unwrap();
    let sim = m.client.unpack_output(&model::simulate(&m, &slots).unwrap()).unwrap();
    assert_eq!(model::argmax(&full), model::argmax(&sim));
    // A ring query is refused by name: this model packs its inputs.
    let ring: Vec<i128> = x.iter().map(|v| (v * m.client.input.scale) as i128).collect();
    let q = dec.encrypt_ring_query(&ring, m.client.input.level as usize, m.client.input.scale).unwrap();
    let err = infer(&service, &id, &[q.to_bytes()]).unwrap_err().to_string();
    assert!(err.contains("ring query"), "{err}");

    // Before the packing (what `auto` picks for this model): a ring query of the 64
    // values, 32 leaves (the hidden layer's period), no key for the layer.
    let (m, session, service, id, max_err) = serve(FirstLayer::Coefficients);
    let c = m.client.input.compact.clone().expect("the spec says compact");
    assert_eq!((c.period, c.ring_values), (32, Some(64)));
    assert_eq!(m.first_layer.as_ref().map(|f| (f.n_in, f.n_out)), Some((64, 32)));
    // The packing runs at the product's scale: the compiler predicts 0.037 for this model.
    assert!(max_err < 0.1, "max logit error against the simulation {max_err}");
    let auto = Options { name: "mlp".into(), use_onnxruntime: false, compact_query: true, ..Options::default() };
    let calib = npy::read(&repo_file("models/data/digits_train_img.npy")).unwrap();
    let onnx = std::fs::read(repo_file("models/digits_mlp.onnx")).unwrap();
    let picked =
        compiler::compile(&onnx, None, &Data { calibration: &calib, eval: None, labels: None }, &auto, &|_| {});
    assert!(picked.unwrap().model.first_layer.is_some(), "auto packs the layer's 32 outputs, not its 64 inputs");
    // An LWE query, an ordinary ciphertext, or a ring query of too few values: refused by name.
    let mut dec = ckks::Decryptor::new(session.keys().secret_key());
    let (level, scale) = (m.client.input.level as usize, m.client.input.scale);
    let lwe = dec.encrypt_lwe(&[1; 64], level, scale).unwrap();
    let err = infer(&service, &id, &[lwe.to_bytes()]).unwrap_err().to_string();
    assert!(err.contains("ring query"), "{err}");
    let params = ckks::Parameters::from_spec(&m.client.params).unwrap();
    let pt = ckks::Encoder::new(&params).encode(&[1.0; 64], level, scale).unwrap();
    let err = infer(&service, &id, &[dec.encrypt_symmetric(&pt).unwrap().to_bytes()]).unwrap_err().to_string();
    assert!(err.contains("ring query"), "{err}");
    let short = dec.encrypt_ring_query(&[1; 63], level, scale).unwrap();
    let err = infer(&service, &id, &[short.to_bytes()]).unwrap_err().to_string();
    assert!(err.contains("exactly 64"), "{err}");
    // The service still answers.
    let x = test.row(1);
    let logits = session.decrypt(&infer(&service, &id, &session.encrypt(x).unwrap()).unwrap()).unwrap();
    let sim = m.client.unpack_output(&model::simulate(&m, &m.client.pack_input(x).unwrap()).unwrap()).unwrap();
    assert_eq!(model::argmax(&logits), model::argmax(&sim));

    // Compact answers (`auto` with a compact query): the final layer's outputs repeat every
    // 256 slots, so each answer is folded into degree 2^12 and switched to 2^28 — the
    // errors above were measured through them.
    assert_eq!(m.client.answer, Some(model::AnswerSpec { log_n: 12, log_q: 28 }));
    assert_eq!(model::answer::output_period(&m), 256);
    let answer = infer(&service, &id, &session.encrypt(x).unwrap()).unwrap();
    assert_eq!(answer[0].len(), 40 + 10 + 2 * 4096 * 28 / 8);
    assert!(answer[0].len() * 2 < params.ciphertext_bytes(0, false));
    // Released values go through the same cut. Rounding must stay 16 times above the
    // answer's N'/Δ' = 2^12/2^19: 2^-6 is refused, 2^-3 lands within a step of the simulation.
    let round = |bits| session.decrypt_for_release(&answer, &client::Release::Round { bits });
    assert!(round(6).unwrap_err().to_string().contains("finer than"));
    let (released, _) = round(3).unwrap();
    for (a, b) in released.iter().zip(&sim) {
        assert!((a - b).abs() < 0.2, "{released:?} vs {sim:?}");
    }
    // A bundle without the answer key is refused at inference, by name.
    let mut no_answer = m.client.clone();
    no_answer.answer = None;
    let (bundle, _) = session.keys().evaluation_bundle_for(&no_answer);
    let other = service.register(&bundle).unwrap().hex();
    let err = infer(&service, &other, &session.encrypt(x).unwrap()).unwrap_err().to_string();
    assert!(err.contains("no answer key"), "{err}");
    // An answer of another shape, or cut short, is refused by the client.
    let mut bad = answer.clone();
    bad[0][41] = 27; // log_q
    assert!(session.decrypt(&bad).unwrap_err().to_string().contains("shape"));
    bad[0] = answer[0][..answer[0].len() - 1].to_vec();
    assert!(session.decrypt(&bad).unwrap_err().to_string().contains("truncated"));
    // `--answer full` keeps whole ciphertexts. Layout L's ordinary input repeats too (the
    // client replicates it), so its answers fold as well; masked to the outputs they do not
    // repeat, and are only switched to a smaller modulus (no key).
    let full = Options { answer: compiler::AnswerRequest::Full, ..auto.clone() };
    let data = Data { calibration: &calib, eval: None, labels: None };
    assert_eq!(compiler::compile(&onnx, None, &data, &full, &|_| {}).unwrap().model.client.answer, None);
    let plain = Options { answer: compiler::AnswerRequest::Compact, compact_query: false, ..auto };
    let m = compiler::compile(&onnx, None, &data, &plain, &|_| {}).unwrap().model;
    assert_eq!(m.client.answer.map(|a| a.log_n), Some(12));
    let masked = Options { mask_unused_slots: true, ..plain };
    let m = compiler::compile(&onnx, None, &data, &masked, &|_| {}).unwrap().model;
    let a = m.client.answer.expect("compact answers asked for");
    assert_eq!(model::answer::output_period(&m), m.slots());
    assert_eq!(a.log_n, m.client.params.log_n, "{a:?}: a masked output does not repeat");
    assert!(a.log_q < 33);
}
