//! `heinfer compile --scheme bgv --quantize 8 --circuit-privacy` (λ = 40, the default) on
//! the digits square MLP, served by the runtime's BGV service to a `BgvSession`: the bundle
//! carries the client's public key (one without it is refused by name), every answer is
//! flooded (its wire noise bound is the flood's, the same for every answer) and still
//! decrypts exactly to the integer computation. The twin distinguisher is
//! `crates/bgv/tests/circuit_privacy.rs`.

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use client::BgvSession;
use compiler::scheme::{compile_with_scheme, CompiledAny, SchemeRequest};
use compiler::{npy, Data, Options};
use model::BgvModel;
use runtime::bgv::BgvService;
use runtime::{KeyStore, Request, ServiceError};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn load(p: &str) -> npy::Array {
    npy::read(&root().join(p)).unwrap()
}

fn compile(circuit_privacy: Option<u32>) -> BgvModel {
    compile_costs(circuit_privacy).0
}

fn compile_costs(circuit_privacy: Option<u32>) -> (BgvModel, compiler::BgvCosts) {
    let path = root().join("models/digits_sq_mlp.onnx");
    let bytes = std::fs::read(&path).unwrap();
    let (c, t) = (load("models/data/digits_train_img.npy"), load("models/data/digits_test_img.npy"));
    let opts = Options { name: "m".into(), use_onnxruntime: false, circuit_privacy, ..Default::default() };
    let d = Data { calibration: &c, eval: Some(&t), labels: None };
    let (c, _) = compile_with_scheme(&bytes, Some(&path), &d, &opts, SchemeRequest::Bgv, Some(8), &|_| {}).unwrap();
    let CompiledAny::Bgv(c) = c else { panic!("a BGV model") };
    assert_eq!(BgvModel::from_bytes(&c.model.to_bytes()).unwrap(), c.model, "the file round-trips");
    (c.model, c.costs)
}

/// The key bytes the compile report gives (and `--scheme auto` compares) are the bundle the
/// client uploads, with and without the public key circuit privacy adds.
#[test]
fn the_reported_key_bytes_are_the_bundle() {
    for lambda in [None, Some(model::circuit::DEFAULT_LAMBDA)] {
        let (m, costs) = compile_costs(lambda);
        let (bundle, _) = BgvSession::generate(m.client.clone()).unwrap().key_bundle();
        assert_eq!(costs.key_bytes, bundle.len(), "λ {lambda:?}");
        assert!(m.report.contains(&format!("{} B to upload", bundle.len())), "{}", m.report);
    }
}

fn infer(svc: &BgvService, q: &[Vec<u8>], id: &str, keys: Option<&[u8]>) -> Result<runtime::Response, ServiceError> {
    svc.infer_cancellable(
        Request { ciphertexts: q.iter().map(|c| &c[..]).collect(), key_id: Some(id.as_bytes()), evaluation_keys: keys },
        &AtomicBool::new(false),
    )
}

/// log2 of the noise bound an answer carries on the wire (its last 8 bytes).
fn wire_bound(answer: &[u8]) -> f64 {
    f64::from_le_bytes(answer[answer.len() - 8..].try_into().unwrap())
}

#[test]
fn circuit_private_bgv_answers_are_flooded_and_exact() {
    let m = compile(Some(model::circuit::DEFAULT_LAMBDA));
    let plain = compile(None);
    let cp = m.client.circuit_privacy.clone().expect("the spec says circuit privacy");
    eprintln!("{}", m.report);
    assert_eq!(cp.lambda, 40);
    assert!(m.report.contains("circuit privacy") && m.report.contains("2^-40"), "{}", m.report);
    // The flood costs modulus, not precision: answers stay higher in the chain.
    assert!(m.client.output.level > plain.client.output.level || m.client.params.q.len() > plain.client.params.q.len());

    let svc = BgvService::new(m.clone(), Arc::new(KeyStore::new(1 << 30, None).unwrap())).unwrap();
    let s = BgvSession::generate(m.client.clone()).unwrap();
    let (bundle, id) = s.key_bundle();
    let id = id.hex();
    // A bundle without the public key (the plain model's client would make one) is refused.
    let without = BgvSession::generate(BgvSpec { circuit_privacy: None, ..m.client.clone() }).unwrap().key_bundle();
    let test = load("models/data/digits_test_img.npy");
    let rows: Vec<&[f64]> = (0..40).map(|r| test.row(r)).collect();
    let q = s.encrypt_batch(&rows).unwrap();
    let e = infer(&svc, &q, &without.1.hex(), Some(&without.0)).err().expect("no public key");
    assert!(matches!(e, ServiceError::IncompleteKeys(_)) && e.to_string().contains("no public key"), "{e}");
    // With it: exact outputs, and the wire bound is the flood's, not the weights'.
    let a = infer(&svc, &q, &id, Some(&bundle)).unwrap();
    let b = infer(&svc, &q, &id, None).unwrap();
    assert_ne!(a.ciphertexts, b.ciphertexts, "a fresh flood per answer");
    let bounds: Vec<f64> = a.ciphertexts.iter().chain(&b.ciphertexts).map(|c| wire_bound(c)).collect();
    let params = bgv::Parameters::from_spec(&m.client.params, m.client.plaintext_modulus).unwrap();
    let flooded = bgv::circuit::flooded_noise_bits(&params, cp.flood_bits);
    assert!(bounds.iter().all(|&v| v == flooded), "{bounds:?} vs {flooded}");
    let net_ref = |x: &[f64]| -> Vec<i128> {
        let svc_net = svc.network();
        svc_net.reference(&m.client.encode_sample(x).unwrap()).unwrap()
    };
    let answers: Vec<&[u8]> = a.ciphertexts.iter().map(|c| &c[..]).collect();
    let got = s.decrypt_integers(&answers, rows.len()).unwrap();
    for (i, x) in rows.iter().enumerate() {
        assert_eq!(got[i], net_ref(x), "sample {i}");
    }
}

use model::BgvSpec;
