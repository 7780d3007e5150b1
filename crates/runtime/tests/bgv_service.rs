//! A BGV integer model served through `runtime::Service`: a relinearisation-key bundle
//! registered by key id, one ciphertext per feature in, decrypted outputs equal to the
//! integer reference for every slot; keys and ciphertexts of another scheme or parameter
//! set, and the wrong number of inputs, are refused with errors that say what to do.

use std::sync::Arc;

use bgv::throughput::{fresh_noise_bits, plan, IntLayer, IntLinear, IntNetwork};
use bgv::{Decryptor, Encoder, Encryptor, KeyGenerator, Parameters};
use model::{BgvInput, BgvLayer, BgvModel, BgvOutput, BgvSpec, Scheme};
use runtime::{KeyStore, Request, Service, ServiceError};

fn model_and_params() -> (BgvModel, IntNetwork, Parameters) {
    let w1: Vec<i64> = (0..6 * 4).map(|i| (i * 7 % 11) as i64 - 5).collect();
    let w2: Vec<i64> = (0..4 * 3).map(|i| (i * 5 % 9) as i64 - 4).collect();
    let (b1, b2) = (vec![3, -2, 0, 7], vec![-100, 50, 1]);
    let net = IntNetwork::new(
        6,
        vec![
            IntLayer::Linear(IntLinear { inputs: 6, weights: w1.clone(), bias: b1.clone() }),
            IntLayer::Square,
            IntLayer::Linear(IntLinear { inputs: 4, weights: w2.clone(), bias: b2.clone() }),
        ],
    )
    .unwrap();
    let (lo, hi) = (-31, 31);
    let (p, params) = plan(&net, lo, hi).unwrap();
    let schedule = net.schedule(&params, fresh_noise_bits(&params)).unwrap();
    let client = BgvSpec {
        version: model::bgv_model::BGV_SPEC_VERSION,
        scheme: Scheme::Bgv,
        model: "toy".into(),
        params: params.spec().clone(),
        plaintext_modulus: p.t,
        residues: vec![],
        input: BgvInput { name: "x".into(), shape: vec![6], scale: 1.0, lo, hi },
        output: BgvOutput {
            name: "y".into(),
            shape: vec![3],
            scale: 1.0,
            final_name: "y".into(),
            level: schedule.last,
        },
        postprocess: vec![],
    };
    let layers = vec![
        BgvLayer::Linear { name: "fc1".into(), inputs: 6, weights: w1, bias: b1 },
        BgvLayer::Square { name: "sq".into() },
        BgvLayer::Linear { name: "fc2".into(), inputs: 4, weights: w2, bias: b2 },
    ];
    let m = BgvModel {
        name: "toy".into(),
        client,
        layers,
        levels: schedule.before,
        bound: p.bound.to_string(),
        report: String::new(),
    };
    m.validate().unwrap();
    (m, net, params)
}

#[test]
fn served_outputs_equal_the_integer_reference_and_foreign_inputs_are_refused() {
    let (m, net, params) = model_and_params();
    // The file round-trips through the any-scheme reader the loaders use.
    let any = model::AnyModel::from_bytes(&m.to_bytes()).unwrap();
    assert_eq!(any.scheme(), Scheme::Bgv);
    assert!(matches!(model::AnySpec::from_json(&m.client.to_json()).unwrap(), model::AnySpec::Bgv(_)));
    let store = Arc::new(KeyStore::new(1 << 30, None).unwrap());
    let svc = Service::Bgv(runtime::bgv::BgvService::new(m.clone(), store).unwrap());
    assert_eq!(svc.input_count(), 6);

    let mut kg = KeyGenerator::new(&params);
    let sk = kg.secret_key();
    let pk = kg.public_key(&sk);
    let bundle = kg.evaluation_keys(&sk, &[], false, true).to_bytes();
    let enc = Encoder::new(&params);
    let mut encryptor = Encryptor::new(&params, &pk).unwrap();
    let n = params.n();
    let samples: Vec<Vec<i64>> =
        (0..n).map(|s| (0..6).map(|f| ((s * 31 + f * 17) % 63) as i64 - 31).collect()).collect();
    let cts: Vec<Vec<u8>> = (0..6)
        .map(|f| {
            let col: Vec<i64> = samples.iter().map(|s| s[f]).collect();
            encryptor.encrypt(&enc.encode(&col, params.max_level()).unwrap()).unwrap().to_bytes()
        })
        .collect();
    let refs: Vec<&[u8]> = cts.iter().map(|c| c.as_slice()).collect();
    let r = svc.infer(Request { ciphertexts: refs.clone(), key_id: None, evaluation_keys: Some(&bundle) }).unwrap();
    assert_eq!(r.ciphertexts.len(), 3);
    let dec = Decryptor::new(&params, &sk).unwrap();
    let got: Vec<Vec<i64>> = r
        .ciphertexts
        .iter()
        .map(|b| {
            let c = bgv::Ciphertext::from_bytes(&params, b).unwrap();
            assert_eq!(c.level(), m.client.output.level);
            enc.decode_signed(&dec.decrypt(&c).unwrap()).unwrap()
        })
        .collect();
    for (s, x) in samples.iter().enumerate() {
        for (o, &w) in net.reference(x).unwrap().iter().enumerate() {
            assert_eq!(got[o][s] as i128, w, "sample {s} output {o}");
        }
    }
    // By key id alone, once registered.
    let hex = r.key_id.hex();
    svc.infer(Request { ciphertexts: refs.clone(), key_id: Some(hex.as_bytes()), evaluation_keys: None }).unwrap();

    // Wrong count.
    let e = svc
        .infer(Request { ciphertexts: refs[..5].to_vec(), key_id: Some(hex.as_bytes()), evaluation_keys: None })
        .err()
        .unwrap();
    assert!(matches!(e, ServiceError::WrongCount { expected: 6, got: 5 }), "{e}");
    // A CKKS ciphertext in place of a BGV one.
    let ckks_params = ckks::Parameters::builder().log_n(13).q_bits(&[50, 40]).build().unwrap();
    let mut ckg = ckks::KeyGenerator::new(&ckks_params);
    let csk = ckg.secret_key();
    let cpk = ckg.public_key(&csk);
    let cct = ckks::Encryptor::new(&cpk)
        .encrypt(&ckks::Encoder::new(&ckks_params).encode(&[1.0], 1, 2f64.powi(30)).unwrap())
        .unwrap()
        .to_bytes();
    let mut foreign = refs.clone();
    foreign[2] = &cct;
    let e =
        svc.infer(Request { ciphertexts: foreign, key_id: Some(hex.as_bytes()), evaluation_keys: None }).err().unwrap();
    assert!(matches!(e, ServiceError::WrongScheme(_)) && e.to_string().contains("ENCRYPTED_INPUT[2]"), "{e}");
    assert!(e.to_string().contains("another scheme"), "{e}");
    // CKKS evaluation keys in place of BGV ones.
    let ckeys = ckg.evaluation_keys(&csk, &[], false, true).to_bytes();
    let e = svc.register(&ckeys).err().unwrap();
    assert!(matches!(e, ServiceError::WrongScheme(_)) && e.to_string().contains("heinfer keygen"), "{e}");
    // A bundle without a relinearisation key.
    let e = svc.register(&kg.evaluation_keys(&sk, &[1], false, false).to_bytes()).err().unwrap();
    assert!(matches!(e, ServiceError::IncompleteKeys(_)), "{e}");
}
