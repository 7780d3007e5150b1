//! Public features end to end in one process: the digits MLP compiled with its top 32
//! pixels public, the ciphertext encrypted from the whole sample (the slot map leaves the
//! public pixels out), `PLAIN_INPUT` from the same sample, evaluated by the runtime's
//! `Service`, decrypted, and compared with the simulation (public share included). A model.hem
//! round trip keeps the public part; a request without `PLAIN_INPUT` is refused.
use std::path::PathBuf;
use std::sync::Arc;

use client::Session;
use compiler::{npy, Data, Options};
use runtime::public::{PlainInput, PLAIN_DATATYPE};
use runtime::{CompiledModel, KeyStore, Request, ServiceError};

fn repo_file(p: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..").join(p)
}

#[test]
fn public_pixels_are_added_in_clear_and_the_answer_matches_the_simulation() {
    let onnx = std::fs::read(repo_file("models/digits_mlp.onnx")).unwrap();
    let calib = npy::read(&repo_file("models/data/digits_train_img.npy")).unwrap();
    let test = npy::read(&repo_file("models/data/digits_test_img.npy")).unwrap();
    let data = Data { calibration: &calib, eval: None, labels: None };
    let opts = Options {
        name: "mlp".into(),
        use_onnxruntime: false,
        public_features: Some("0-31".into()),
        ..Options::default()
    };
    let m = compiler::compile(&onnx, None, &data, &opts, &|_| {}).expect("compiles").model;
    assert_eq!(m.client.public_features, (0..32).collect::<Vec<u32>>());
    assert!(m.client.input.slot_map[0].iter().all(|&i| !(0..32).contains(&i)), "a public pixel is encrypted");
    assert!(m.client.input.slot_map[0].iter().any(|&i| i >= 32));
    // The file keeps the public part (and a reader checks it).
    let m = model::HeModel::from_bytes(&m.to_bytes()).unwrap();
    assert!(m.public.is_some());

    let session = Session::generate(m.client.clone()).unwrap();
    let (bundle, id) = session.evaluation_bundle();
    let service = CompiledModel::load(m.clone()).unwrap().into_service(Arc::new(KeyStore::new(1 << 32, None).unwrap()));
    service.register(&bundle).unwrap();
    let hex = id.hex();
    let samples = 12;
    let (mut agree, mut max_err) = (0, 0f64);
    for i in 0..samples {
        let x = test.row(i);
        let cts = session.encrypt(x).unwrap();
        let req = || Request {
            ciphertexts: cts.iter().map(|c| &c[..]).collect(),
            key_id: Some(hex.as_bytes()),
            evaluation_keys: None,
        };
        let values = client::public::plain_values(&m.client, x).unwrap();
        let plain = PlainInput { datatype: PLAIN_DATATYPE.into(), shape: vec![values.len() as i64], values };
        let out = service.infer_with_plain(req(), Some(plain), &Default::default()).unwrap();
        let y = session.decrypt(&out.ciphertexts).unwrap();
        // The split program with the public share added, on the whole sample: the compiler's
        // verification stage has checked it against the whole, unsplit network.
        let want = compiler::simulate_one(&m, x).unwrap();
        for (a, b) in y.iter().zip(&want) {
            max_err = max_err.max((a - b).abs());
        }
        agree += (model::argmax(&y) == model::argmax(&want)) as usize;
        if i == 0 {
            // Without PLAIN_INPUT the request is refused, naming the tensor.
            let Err(e) = service.infer(req()) else { panic!("a request without PLAIN_INPUT was answered") };
            assert!(matches!(e, ServiceError::PlainInput(_)), "{e}");
            assert!(e.to_string().contains("PLAIN_INPUT"), "{e}");
        }
    }
    assert!(agree >= samples - 1, "top-1 agreement with the simulation {agree}/{samples}");
    assert!(max_err < 0.2, "max output error against the simulation {max_err}");
}
