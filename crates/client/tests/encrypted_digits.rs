//! The whole stack on real data: compile the CryptoNets-shaped reference model,
//! encrypt digits under its client spec, evaluate them in the runtime, decrypt, and
//! compare with the plaintext simulation (which the compiler's own tests compare
//! with onnxruntime) and with the labels.
use std::path::PathBuf;
use std::sync::Arc;

use ckks::{Ciphertext, Decryptor, Encoder, KeyGenerator, Parameters};
use compiler::{npy, Data, Options};
use runtime::{CompiledModel, Executable, KeyStore, Request};

fn repo_file(p: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..").join(p)
}

#[test]
fn encrypted_cryptonets_agrees_with_the_simulation_on_real_digits() {
    let onnx = std::fs::read(repo_file("models/digits_cryptonets.onnx")).unwrap();
    let calib = npy::read(&repo_file("models/data/digits_train_img.npy")).unwrap();
    let test = npy::read(&repo_file("models/data/digits_test_img.npy")).unwrap();
    let labels = npy::read(&repo_file("models/data/digits_test_y.npy")).unwrap();
    let opts =
        Options { name: "cryptonets".into(), scale_bits: Some(30), use_onnxruntime: false, ..Options::default() };
    let compiled =
        compiler::compile(&onnx, None, &Data { calibration: &calib, eval: None, labels: None }, &opts, &|_| {})
            .expect("compiles");
    let m = compiled.model;
    let spec = m.client.clone();
    let params = Parameters::from_spec(&spec.params).unwrap();
    let exe = CompiledModel::load(m.clone()).unwrap();
    let mut kg = KeyGenerator::new(&params);
    let sk = kg.secret_key();
    let bundle = kg.evaluation_keys(&sk, exe.rotation_steps(), false, exe.needs_relinearization()).to_bytes();
    let service = exe.into_service(Arc::new(KeyStore::new(1 << 32, None).unwrap()));
    let id = service.register(&bundle).unwrap().hex();
    let enc = Encoder::new(&params);
    let mut dec = Decryptor::new(&sk);

    let samples = 120;
    let (mut agree, mut correct) = (0, 0);
    let mut max_err: f64 = 0.0;
    for i in 0..samples {
        let slots = spec.pack_input(test.row(i)).unwrap();
        let cts: Vec<Vec<u8>> = slots
            .iter()
            .map(|v| {
                let pt = enc.encode(v, spec.input.level as usize, spec.input.scale).unwrap();
                dec.encrypt_symmetric(&pt).unwrap().to_bytes()
            })
            .collect();
        let out = service
            .infer(Request {
                ciphertexts: cts.iter().map(|c| &c[..]).collect(),
                key_id: Some(id.as_bytes()),
                evaluation_keys: None,
            })
            .unwrap();
        let decoded: Vec<Vec<f64>> = out
            .ciphertexts
            .iter()
            .map(|b| enc.decode(&dec.decrypt(&Ciphertext::from_bytes(&params, b).unwrap()).unwrap()).unwrap())
            .collect();
        let logits = spec.unpack_output(&decoded).unwrap();
        let sim = spec.unpack_output(&model::simulate(&m, &slots).unwrap()).unwrap();
        for (a, b) in logits.iter().zip(&sim) {
            max_err = max_err.max((a - b).abs());
        }
        agree += (model::argmax(&logits) == model::argmax(&sim)) as usize;
        correct += (model::argmax(&logits) == labels.row(i)[0] as usize) as usize;
    }
    assert!(agree >= samples - 1, "top-1 agreement with the simulation {agree}/{samples}");
    assert!(max_err < 0.2, "max logit error against the simulation {max_err}");
    assert!(correct as f64 / samples as f64 > 0.9, "accuracy against labels {correct}/{samples}");
}
