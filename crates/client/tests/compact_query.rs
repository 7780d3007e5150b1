//! Compact queries end to end without a server process: compile the digits MLP with
//! `compact_query`, make the bundle and queries with `client::Session` (one LWE word per
//! pixel), let the runtime's service unpack and evaluate them, decrypt, and compare with
//! the plaintext simulation. Also: the same model still takes an ordinary ciphertext laid
//! out by its slot map, and the compiler's predicted error bounds what is measured.
use std::path::PathBuf;
use std::sync::Arc;

use client::Session;
use compiler::{npy, Data, Options};
use runtime::{CompiledModel, KeyStore, Request};

fn repo_file(p: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..").join(p)
}

#[test]
fn a_compact_query_mlp_agrees_with_the_simulation() {
    let onnx = std::fs::read(repo_file("models/digits_mlp.onnx")).unwrap();
    let calib = npy::read(&repo_file("models/data/digits_train_img.npy")).unwrap();
    let test = npy::read(&repo_file("models/data/digits_test_img.npy")).unwrap();
    let opts = Options { name: "mlp".into(), use_onnxruntime: false, compact_query: true, ..Options::default() };
    let m = compiler::compile(&onnx, None, &Data { calibration: &calib, eval: None, labels: None }, &opts, &|_| {})
        .expect("compiles with a compact query")
        .model;
    let c = m.client.input.compact.clone().expect("the spec says compact");
    assert_eq!((c.period, c.galois_elements.len()), (64, 14));
    let session = Session::generate(m.client.clone()).unwrap();
    let (bundle, _) = session.evaluation_bundle();
    let service = CompiledModel::load(m.clone()).unwrap().into_service(Arc::new(KeyStore::new(1 << 32, None).unwrap()));
    let id = service.register(&bundle).unwrap().hex();
    let infer = |cts: &[Vec<u8>]| -> Vec<f64> {
        let out = service
            .infer(Request {
                ciphertexts: cts.iter().map(|c| &c[..]).collect(),
                key_id: Some(id.as_bytes()),
                evaluation_keys: None,
            })
            .unwrap();
        session.decrypt(&out.ciphertexts).unwrap()
    };
    // 8 digits: a query costs ~4 s in the test profile (debug assertions in the kernels);
    // tests/python/test_compact_query.py and `heinfer run` cover more.
    let samples = 8;
    let mut max_err: f64 = 0.0;
    for i in 0..samples {
        let x = test.row(i);
        let query = session.encrypt(x).unwrap();
        assert_eq!(query.len(), 1);
        assert!(query[0].len() < 1600, "{} bytes", query[0].len());
        let logits = infer(&query);
        let slots = m.client.pack_input(x).unwrap();
        let sim = m.client.unpack_output(&model::simulate(&m, &slots).unwrap()).unwrap();
        assert_eq!(model::argmax(&logits), model::argmax(&sim), "sample {i}: {logits:?} vs {sim:?}");
        for (a, b) in logits.iter().zip(&sim) {
            max_err = max_err.max((a - b).abs());
        }
    }
    // The compiler's noise analysis (with the packing's noise) predicts 0.147 for this model.
    assert!(max_err < 0.3, "max logit error against the simulation {max_err}");
    // An ordinary ciphertext laid out by the slot map is served too.
    let params = ckks::Parameters::from_spec(&m.client.params).unwrap();
    let enc = ckks::Encoder::new(&params);
    let mut dec = ckks::Decryptor::new(session.keys().secret_key());
    let x = test.row(0);
    let slots = m.client.pack_input(x).unwrap();
    let pt = enc.encode(&slots[0], m.client.input.level as usize, m.client.input.scale).unwrap();
    let full = infer(&[dec.encrypt_symmetric(&pt).unwrap().to_bytes()]);
    let sim = m.client.unpack_output(&model::simulate(&m, &slots).unwrap()).unwrap();
    assert_eq!(model::argmax(&full), model::argmax(&sim));
}
