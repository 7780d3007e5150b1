//! A BGV integer model served through `runtime::Service`: a relinearisation-key bundle
//! registered by key id, one ciphertext per feature in, decrypted outputs equal to the
//! integer reference for every slot; keys and ciphertexts of another scheme or parameter
//! set, and the wrong number of inputs, are refused with errors that say what to do.

use std::sync::Arc;

use bgv::throughput::{crt_combine, fresh_noise_bits, plan, plan_crt, IntLayer, IntLinear, IntNetwork};
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
    let (p, params) = plan(&net, lo, hi, None).unwrap();
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
        circuit_privacy: None,
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

/// A residue plan through `Service`: values past any one t (bound past 2^59), the model's
/// moduli listed in the spec; the query holds each feature once per modulus (residue-major,
/// under one secret), the answers recombine by CRT to the integer reference, and a query
/// with its residues swapped is refused by the first ciphertext's fingerprint.
#[test]
fn a_residue_plan_is_served_and_recombines_exactly() {
    let w1: Vec<i64> = (0..8 * 4).map(|i| (i * 13 % 61) as i64 - 30).collect();
    let w2: Vec<i64> = (0..4 * 3).map(|i| (i * 7 % 59) as i64 - 29).collect();
    let w3: Vec<i64> = (0..3 * 2).map(|i| (i * 11 % 57) as i64 - 28).collect();
    let (b1, b2, b3): (Vec<i128>, Vec<i128>, Vec<i128>) = (vec![5, -7, 0, 9], vec![-100, 50, 1], vec![1 << 40, -3]);
    let layers = vec![
        IntLayer::Linear(IntLinear { inputs: 8, weights: w1.clone(), bias: b1.clone() }),
        IntLayer::Square,
        IntLayer::Linear(IntLinear { inputs: 4, weights: w2.clone(), bias: b2.clone() }),
        IntLayer::Square,
        IntLayer::Linear(IntLinear { inputs: 3, weights: w3.clone(), bias: b3.clone() }),
    ];
    let net = IntNetwork::new(8, layers).unwrap();
    let (lo, hi) = (-31, 31);
    assert!(plan(&net, lo, hi, None).is_err(), "one t must not hold it");
    let (p, sets) = plan_crt(&net, lo, hi, None).unwrap();
    assert!(sets.len() >= 2);
    let top = sets.iter().max_by_key(|s| s.plaintext_modulus()).unwrap();
    let schedule = net.schedule(top, fresh_noise_bits(top)).unwrap();
    let client = BgvSpec {
        version: model::bgv_model::BGV_SPEC_VERSION,
        scheme: Scheme::Bgv,
        model: "wide".into(),
        params: sets[0].spec().clone(),
        plaintext_modulus: p.ts[0],
        residues: p.ts[1..].to_vec(),
        input: BgvInput { name: "x".into(), shape: vec![8], scale: 1.0, lo, hi },
        output: BgvOutput {
            name: "y".into(),
            shape: vec![2],
            scale: 1.0,
            final_name: "y".into(),
            level: schedule.last,
        },
        postprocess: vec![],
        circuit_privacy: None,
    };
    let m = BgvModel {
        name: "wide".into(),
        client,
        layers: vec![
            BgvLayer::Linear { name: "fc1".into(), inputs: 8, weights: w1, bias: b1 },
            BgvLayer::Square { name: "sq1".into() },
            BgvLayer::Linear { name: "fc2".into(), inputs: 4, weights: w2, bias: b2 },
            BgvLayer::Square { name: "sq2".into() },
            BgvLayer::Linear { name: "fc3".into(), inputs: 3, weights: w3, bias: b3 },
        ],
        levels: schedule.before,
        bound: p.bound.to_string(),
        report: String::new(),
    };
    // The file (residues, an i128 bias) round-trips.
    let back = BgvModel::from_bytes(&m.to_bytes()).unwrap();
    assert_eq!(back, m);
    let store = Arc::new(KeyStore::new(1 << 30, None).unwrap());
    let svc = Service::Bgv(runtime::bgv::BgvService::new(m, store).unwrap());
    let k = sets.len();
    assert_eq!(svc.input_count(), 8 * k);

    let mut kg = KeyGenerator::new(&sets[0]);
    let sk = kg.secret_key();
    let bundle = kg.evaluation_keys(&sk, &[], false, true).to_bytes();
    let n = sets[0].n();
    let samples: Vec<Vec<i64>> = (0..n)
        .map(|s| (0..8).map(|f| if s < 2 { [lo, hi][s] } else { ((s * 37 + f * 23) % 63) as i64 - 31 }).collect())
        .collect();
    let mut cts = Vec::new();
    for params in &sets {
        let sk = sk.under(params.rlwe()).unwrap();
        let enc = Encoder::new(params);
        let mut dec = Decryptor::new(params, &sk).unwrap();
        for f in 0..8 {
            let col: Vec<i64> = samples.iter().map(|s| s[f]).collect();
            cts.push(dec.encrypt_symmetric(&enc.encode(&col, params.max_level()).unwrap()).unwrap().to_bytes());
        }
    }
    let refs: Vec<&[u8]> = cts.iter().map(|c| c.as_slice()).collect();
    let r = svc.infer(Request { ciphertexts: refs.clone(), key_id: None, evaluation_keys: Some(&bundle) }).unwrap();
    assert_eq!(r.ciphertexts.len(), 2 * k);
    let mut cols: Vec<Vec<i64>> = Vec::new(); // [residue · 2 + output][slot]
    for (res, params) in sets.iter().enumerate() {
        let sk = sk.under(params.rlwe()).unwrap();
        let (enc, dec) = (Encoder::new(params), Decryptor::new(params, &sk).unwrap());
        for b in &r.ciphertexts[res * 2..res * 2 + 2] {
            let c = bgv::Ciphertext::from_bytes(params, b).unwrap();
            cols.push(enc.decode_signed(&dec.decrypt(&c).unwrap()).unwrap());
        }
    }
    let mut largest = 0u128;
    for (s, x) in samples.iter().enumerate() {
        for (o, &w) in net.reference(x).unwrap().iter().enumerate() {
            let residues: Vec<i64> = (0..k).map(|res| cols[res * 2 + o][s]).collect();
            assert_eq!(crt_combine(&residues, &p.ts), Some(w), "sample {s} output {o}");
            largest = largest.max(w.unsigned_abs());
        }
    }
    assert!(largest > 1 << 59, "largest 2^{:.1}: past one t", (largest as f64).log2());
    // Residues swapped: the first ciphertext is under another t's fingerprint.
    let mut swapped = refs[8..].to_vec();
    swapped.extend_from_slice(&refs[..8]);
    let hex = r.key_id.hex();
    let e =
        svc.infer(Request { ciphertexts: swapped, key_id: Some(hex.as_bytes()), evaluation_keys: None }).err().unwrap();
    assert!(e.to_string().contains("ENCRYPTED_INPUT[0]") && e.to_string().contains("residue 0"), "{e}");
    // One residue only: refused by count.
    let e = svc
        .infer(Request { ciphertexts: refs[..8].to_vec(), key_id: Some(hex.as_bytes()), evaluation_keys: None })
        .err()
        .unwrap();
    assert!(matches!(e, ServiceError::WrongCount { expected, got: 8 } if expected == 8 * k), "{e}");
}
