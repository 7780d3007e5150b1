//! Split inference end to end in one process: the breast-cancer model cut after its
//! scaler (ONNX-ML `Scaler`, written as `Sub`/`Mul` in the prefix so that tract runs it),
//! the prefix run by `client::prefix` (tract) on the whole sample, its output encrypted,
//! evaluated by the runtime's `Service` (the suffix: an ordinary model), decrypted, and
//! compared with the WHOLE model compiled without a split (its plaintext simulation on the
//! raw sample). Also: an altered prefix is refused before tract reads it; bad split points
//! are refused by the compiler, naming the node.
use std::path::PathBuf;
use std::sync::Arc;

use client::prefix::PrefixRunner;
use client::Session;
use compiler::{npy, Data, Options};
use runtime::{CompiledModel, KeyStore, Request};

fn repo_file(p: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..").join(p)
}

fn compile(onnx: &str, cal: &str, split_at: Option<&str>) -> Result<model::HeModel, compiler::CompileError> {
    let onnx = std::fs::read(repo_file(&format!("models/{onnx}.onnx"))).unwrap();
    let calib = npy::read(&repo_file(&format!("models/data/{cal}.npy"))).unwrap();
    let data = Data { calibration: &calib, eval: None, labels: None };
    let opts =
        Options { name: "m".into(), use_onnxruntime: false, split_at: split_at.map(Into::into), ..Options::default() };
    compiler::compile(&onnx, None, &data, &opts, &|_| {}).map(|c| c.model)
}

#[test]
fn split_breast_cancer_agrees_with_the_whole_model() {
    let m = compile("breast_cancer_lr", "breast_cancer_train_x", Some("Scaler")).expect("compiles");
    let whole = compile("breast_cancer_lr", "breast_cancer_train_x", None).expect("compiles");
    let p = m.client.prefix.clone().expect("the spec carries the prefix");
    assert_eq!((p.cut.as_str(), p.input_shape.as_slice()), ("variable", &[30usize][..]));
    // The model file keeps it.
    let m = model::HeModel::from_bytes(&m.to_bytes()).unwrap();
    assert_eq!(m.client.prefix.as_ref(), Some(&p));

    let runner = PrefixRunner::for_spec(&m.client).unwrap().expect("a prefix");
    let session = Session::generate(m.client.clone()).unwrap();
    let (bundle, id) = session.evaluation_bundle();
    let service = CompiledModel::load(m.clone()).unwrap().into_service(Arc::new(KeyStore::new(1 << 32, None).unwrap()));
    service.register(&bundle).unwrap();
    let hex = id.hex();
    let test = npy::read(&repo_file("models/data/breast_cancer_test_x.npy")).unwrap();
    let samples = 30;
    let mut agree = 0;
    for i in 0..samples {
        let x = test.row(i);
        let scaled = runner.run(x).unwrap();
        assert_ne!(scaled, x, "the prefix (the scaler) changed nothing");
        let cts = session.encrypt(&scaled).unwrap();
        let req = Request {
            ciphertexts: cts.iter().map(|c| &c[..]).collect(),
            key_id: Some(hex.as_bytes()),
            evaluation_keys: None,
        };
        let y = session.decrypt(&service.infer(req).unwrap().ciphertexts).unwrap();
        let want = compiler::simulate_one(&whole, x).unwrap();
        agree += (model::argmax(&session.postprocess(&y)) == model::argmax(&whole.client.postprocess(&want))) as usize;
    }
    assert!(agree >= samples - 1, "top-1 agreement of the split model with the whole one {agree}/{samples}");
    // The wrong number of values (the suffix's instead of the original's) is refused.
    assert!(runner.run(&[0.0; 29]).unwrap_err().to_string().contains("30 values"));

    // A prefix altered in transit is refused before tract reads it.
    let mut bad = m.client.clone();
    let mut pr = bad.prefix.take().unwrap();
    pr.onnx_base64.replace_range(8..12, "AAAA");
    bad.prefix = Some(pr);
    let Err(e) = PrefixRunner::for_spec(&bad) else { panic!("an altered prefix was loaded") };
    assert!(e.to_string().contains("SHA-256"), "{e}");
}

#[test]
fn bad_split_points_are_refused() {
    let cases = [
        ("digits_resmlp", "relu2", "Add node 'skip'"),
        ("digits_cnn", "no_such_node", "no node and no tensor"),
        ("digits_cnn", "logits", "output of the model"),
    ];
    for (onnx, at, says) in cases {
        let Err(e) = compile(onnx, "digits_train_img", Some(at)) else { panic!("{onnx} split at {at} compiled") };
        let e = e.to_string();
        assert!(e.contains(says) && e.contains("--split-at"), "{onnx} at {at}: {e}");
    }
}
