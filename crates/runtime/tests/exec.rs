//! The interpreter against the plaintext simulator on a hand-built program that uses
//! every kind of op, including a hoisted group of rotations.
use std::sync::Arc;

use ckks::*;
use model::{ClientSpec, HeModel, InputSpec, LayerInfo, Node, Op, OutputSpec, PlainVec};
use runtime::{CompiledModel, Executable, KeyStore, Request, Service};

fn program() -> (HeModel, Parameters) {
    let params = Parameters::builder().log_n(13).q_bits(&[60, 40, 40]).p_bits(&[60]).build().unwrap();
    let slots = params.slots();
    let s0 = params.default_scale();
    let q = params.q().to_vec();
    let w: Vec<f64> = (0..slots).map(|i| ((i * 37) % 11) as f64 / 11.0 - 0.5).collect();
    let b: Vec<f64> = (0..slots).map(|i| (i % 5) as f64 / 10.0).collect();
    let plaintexts =
        vec![PlainVec { level: 2, scale: q[2] as f64, values: w }, PlainVec { level: 1, scale: s0, values: b }];
    let s1 = s0 * q[2] as f64 / q[2] as f64;
    let sq = s1 * s1;
    let s2 = sq / q[1] as f64;
    let node = |op, level, scale| Node { op, level, scale, layer: 0 };
    let nodes = vec![
        node(Op::Input { index: 0 }, 2, s0),                         // 0
        node(Op::MulPlain { a: 0, pt: 0 }, 2, s0 * q[2] as f64),     // 1
        node(Op::Rescale { a: 1 }, 1, s1),                           // 2
        node(Op::Rotate { a: 2, step: 1 }, 1, s1),                   // 3
        node(Op::Rotate { a: 2, step: -3 }, 1, s1),                  // 4
        node(Op::Rotate { a: 2, step: 64 }, 1, s1),                  // 5
        node(Op::Add { a: 3, b: 4 }, 1, s1),                         // 6
        node(Op::Sub { a: 6, b: 5 }, 1, s1),                         // 7
        node(Op::AddPlain { a: 7, pt: 1 }, 1, s1),                   // 8
        node(Op::AddConst { a: 8, c: 0.25 }, 1, s1),                 // 9
        node(Op::Square { a: 9 }, 1, sq),                            // 10
        node(Op::MulRelin { a: 9, b: 2 }, 1, sq),                    // 11
        node(Op::Add { a: 10, b: 11 }, 1, sq),                       // 12
        node(Op::Rescale { a: 12 }, 0, s2),                          // 13
        node(Op::MulConst { a: 13, c: -2.0, pt_scale: 1.0 }, 0, s2), // 14
        node(Op::DropLevel { a: 14, level: 0 }, 0, s2),              // 15
    ];
    let client = ClientSpec {
        version: model::CLIENT_SPEC_VERSION,
        model: "t".into(),
        params: params.spec().clone(),
        input: InputSpec {
            name: "x".into(),
            shape: vec![slots],
            level: 2,
            scale: s0,
            slot_map: vec![(0..slots as i32).collect()],
            layout: "identity".into(),
            parts: vec![],
            compact: None,
        },
        rotation_steps: vec![-3, 1, 64],
        galois_elements: [-3i64, 1, 64].iter().map(|&s| params.galois_element(s)).collect(),
        relinearization: true,
        key_levels: Default::default(),
        output: OutputSpec {
            name: "y".into(),
            shape: vec![4],
            ciphertexts: 1,
            slots: (0..4).map(|i| (0, i)).collect(),
            multiplier: 1.0,
            level: 0,
            scale: s2,
            final_name: "y".into(),
        },
        postprocess: vec![],
        output_dp: None,
        circuit_privacy: None,
        public_features: vec![],
        throughput: None,
        multi: None,
        layouts: vec![],
        prefix: None,
        client_aided: None,
        answer: None,
    };
    let m = HeModel {
        name: "t".into(),
        client,
        layers: vec![LayerInfo { name: "all".into(), kind: "test".into() }],
        nodes,
        plaintexts,
        outputs: vec![15],
        report: None,
        public: None,
        throughput: None,
        multi: None,
        first_layer: None,
    };
    (m, params)
}

#[test]
fn encrypted_run_matches_the_simulator_and_survives_a_file_round_trip() {
    let (m, params) = program();
    m.validate().unwrap();
    let bytes = m.to_bytes();
    let m = HeModel::from_bytes(&bytes).unwrap();
    let x: Vec<f64> = (0..params.slots()).map(|i| ((i * 13) % 17) as f64 / 17.0 - 0.5).collect();
    let want = model::simulate(&m, std::slice::from_ref(&x)).unwrap();

    let compiled = CompiledModel::load(m).unwrap();
    assert!(compiled.weight_memory_bytes() > 0);
    let mut kg = KeyGenerator::new(&params);
    let sk = kg.secret_key();
    let bundle = kg.evaluation_keys(&sk, compiled.rotation_steps(), false, true).to_bytes();
    let enc = Encoder::new(&params);
    let ct = Decryptor::new(&sk).encrypt_symmetric(&enc.encode(&x, 2, params.default_scale()).unwrap()).unwrap();
    let service = Service::new(compiled.into_executable(), Arc::new(KeyStore::new(1 << 30, None).unwrap()))
        .with_input_level(2, params.default_scale());
    let ct_bytes = ct.to_bytes();
    let out =
        service.infer(Request { ciphertexts: vec![&ct_bytes], key_id: None, evaluation_keys: Some(&bundle) }).unwrap();
    let result = Ciphertext::from_bytes(&params, &out.ciphertexts[0]).unwrap();
    assert_eq!(result.level(), 0);
    let got = enc.decode(&Decryptor::new(&sk).decrypt(&result).unwrap()).unwrap();
    let err = got.iter().zip(&want[0]).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
    let scale = want[0].iter().map(|v| v.abs()).fold(0.0, f64::max);
    assert!(scale > 0.1, "the program computes something non-trivial");
    assert!(err < 1e-3, "encrypted vs simulated: max error {err:e}");
}

#[test]
fn insecure_or_inconsistent_models_are_refused_at_load() {
    let (mut m, _) = program();
    m.client.rotation_steps.push(5);
    assert!(CompiledModel::load(m).is_err());
    let (mut m, _) = program();
    m.nodes[2].level = 2;
    assert!(CompiledModel::load(m).is_err());
}

/// Both servers publish the config's client spec to clients; it must be the model's own.
#[test]
fn a_config_client_spec_is_checked_against_the_model() {
    let (m, _) = program();
    let own = m.client.to_json();
    let mut other = m.client.clone();
    other.input.scale *= 2.0;
    let compiled = CompiledModel::load(m).unwrap();
    assert!(compiled.check_client_spec(&own).is_ok());
    let e = compiled.check_client_spec(&other.to_json()).unwrap_err();
    assert!(matches!(e, runtime::SpecError::Differs), "{e}");
    assert!(e.to_string().contains("heinfer compile"), "{e}");
    let e = compiled.check_client_spec("{\"not\": \"a spec\"}").unwrap_err();
    assert!(matches!(e, runtime::SpecError::Malformed(_)), "{e}");
}

#[test]
fn a_ckks_model_refuses_paillier_keys_and_ciphertexts_by_name() {
    let (m, params) = program();
    let compiled = CompiledModel::load(m).unwrap();
    let service = Service::new(compiled.into_executable(), Arc::new(KeyStore::new(1 << 30, None).unwrap()))
        .with_input_level(2, params.default_scale());
    // A Paillier public key's header (magic, version, kind 1), then anything.
    let paillier_key = [b"HEPA".as_slice(), &[1, 0, 1, 0], &3072u32.to_le_bytes(), &[7; 384]].concat();
    let e = service.register(&paillier_key).unwrap_err();
    assert!(matches!(e, runtime::ServiceError::WrongScheme(_)) && e.to_string().contains("Paillier public key"), "{e}");
    let Err(e) =
        service.infer(Request { ciphertexts: vec![&paillier_key], key_id: None, evaluation_keys: Some(&paillier_key) })
    else {
        panic!("a Paillier key was accepted by a CKKS model")
    };
    assert!(e.to_string().contains("this model is CKKS"), "{e}");
    assert_eq!(service.input_count(), 1);
    assert_eq!(service.scheme(), model::Scheme::Ckks);
}
