//! A Paillier linear model served by the runtime's `Service` (what Triton and `heinfer
//! serve` both call) to a `PaillierSession`: the decrypted scores equal the fixed-point
//! computation exactly, and keys or ciphertexts of the wrong scheme, size or range are
//! refused with errors that say what to do. Uses a 3072-bit test-only key from the
//! paillier crate's fixtures (generating one takes up to a minute).

use client::PaillierSession;
use model::{LinearInput, LinearOutput, LinearSpec, PaillierModel, Scheme};
use paillier::{FixedPoint, Integer, SecretKey};
use std::sync::Arc;

use runtime::{KeyStore, LinearService, Request, Service, ServiceError};

fn fixture_key() -> SecretKey {
    let hex = include_str!("../../paillier/tests/fixtures/test-only-secret-key-3072-a.hex").trim();
    let bytes: Vec<u8> = (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap()).collect();
    SecretKey::from_bytes(&bytes).unwrap()
}

/// 2 scores of 5 inputs, weights and biases of both signs and breast-cancer-like scales.
fn model() -> PaillierModel {
    let (fi, fw) = (48, 36);
    let w = [[0.5, -1.25, 3e-3, -700.0, 0.0], [-2.0, 1e-4, 9.5, 0.25, -0.125]];
    let b = [-0.75, 12.5];
    let wf = FixedPoint::new(fw).unwrap();
    let sf = FixedPoint::new(fi + fw).unwrap();
    PaillierModel {
        name: "lin".into(),
        client: LinearSpec {
            version: model::linear::LINEAR_SPEC_VERSION,
            scheme: Scheme::Paillier,
            model: "lin".into(),
            min_modulus_bits: 3072,
            input: LinearInput { name: "x".into(), shape: vec![5], frac_bits: fi },
            output: LinearOutput { name: "y".into(), shape: vec![2], frac_bits: fi + fw, final_name: "y".into() },
            lwe: None,
            postprocess: vec![],
        },
        layers: vec![],
        weight_frac_bits: fw,
        weights: w.iter().map(|r| r.iter().map(|&v| wf.encode_i64(v).unwrap()).collect()).collect(),
        bias: b.iter().map(|&v| sf.encode(v).unwrap().to_string()).collect(),
        report: String::new(),
    }
}

/// The error of a request that must be refused (`Response` has no `Debug` for `unwrap_err`).
fn refused(r: Result<runtime::Response, ServiceError>) -> ServiceError {
    match r {
        Ok(_) => panic!("the request was accepted"),
        Err(e) => e,
    }
}

fn service(m: &PaillierModel) -> Service {
    let store = Arc::new(KeyStore::new(1 << 28, None).unwrap());
    Service::Paillier(LinearService::new(m.clone(), store).unwrap())
}

#[test]
fn model_file_round_trip_and_old_readers_refuse_it() {
    let m = model();
    let bytes = m.to_bytes();
    assert_eq!(model::AnyModel::from_bytes(&bytes).unwrap(), model::AnyModel::Paillier(m.clone()));
    let e = model::HeModel::from_bytes(&bytes).unwrap_err().to_string();
    assert!(e.contains("Paillier"), "{e}");
    let spec = model::AnySpec::from_json(&m.client.to_json()).unwrap();
    assert_eq!(spec.scheme(), Scheme::Paillier);
    assert!(model::ClientSpec::from_json(&m.client.to_json()).unwrap_err().to_string().contains("paillier"));
    let mut bad = bytes.clone();
    let last = bad.len() - 40;
    bad[last] ^= 1;
    assert!(model::AnyModel::from_bytes(&bad).is_err());
}

#[test]
fn served_scores_equal_the_fixed_point_computation() {
    let m = model();
    let svc = service(&m);
    let s = PaillierSession::with_key(m.client.clone(), fixture_key()).unwrap();
    let (pk, id) = s.public_key_bytes();
    let hex = id.hex();
    let xs = [[1.5, -2.25, 1000.0, 0.03125, -7.0], [0.0, 0.0, 0.0, 0.0, 0.0], [-3.3, 17.1, -0.001, 2e3, 1e-9]];
    let linear = match &svc {
        Service::Paillier(l) => l.linear().clone(),
        _ => unreachable!(),
    };
    for (i, x) in xs.iter().enumerate() {
        let q = s.encrypt(x).unwrap();
        // The first request registers the public key with the query; the others name it.
        let keys = (i == 0).then_some(&pk[..]);
        let out = svc
            .infer(Request {
                ciphertexts: q.iter().map(|c| &c[..]).collect(),
                key_id: Some(hex.as_bytes()),
                evaluation_keys: keys,
            })
            .unwrap();
        let got = s.decrypt_integers(&out.ciphertexts).unwrap();
        let want = linear.evaluate_plain(&s.encode(x).unwrap()).unwrap();
        assert_eq!(got, want, "sample {i}");
        let y = s.decrypt(&out.ciphertexts).unwrap();
        let f64_ref: Vec<f64> = (0..2)
            .map(|r| {
                let w = &m.weights[r];
                let b: f64 = m.bias[r].parse::<Integer>().unwrap().to_f64() * (-84f64).exp2();
                b + w.iter().zip(x).map(|(&w, &x)| w as f64 * (-36f64).exp2() * x).sum::<f64>()
            })
            .collect();
        for (a, b) in y.iter().zip(&f64_ref) {
            assert!((a - b).abs() < 1e-6 * (1.0 + b.abs()), "{a} vs {b}");
        }
    }
}

#[test]
fn wrong_scheme_size_and_range_are_refused() {
    let m = model();
    let svc = service(&m);
    let s = PaillierSession::with_key(m.client.clone(), fixture_key()).unwrap();
    let (pk, id) = s.public_key_bytes();
    let hex = id.hex();
    let q = s.encrypt(&[1.0; 5]).unwrap();
    let infer = |cts: &[u8], keys: Option<&[u8]>| {
        svc.infer(Request { ciphertexts: vec![cts], key_id: Some(hex.as_bytes()), evaluation_keys: keys })
    };
    // A CKKS bundle sent to a Paillier model.
    let ckks_like = [b"HEIN".as_slice(), &[0u8; 64]].concat();
    let e = refused(infer(&q[0], Some(&ckks_like)));
    assert!(matches!(e, ServiceError::WrongScheme(_)) && e.to_string().contains("CKKS key bundle"), "{e}");
    // A 2048-bit public key: the reader refuses it (128-bit security needs 3072).
    let small = [b"HEPA".as_slice(), &1u16.to_le_bytes(), &[1, 0], &2048u32.to_le_bytes(), &[0xAB; 256]].concat();
    let e = svc.register(&small).unwrap_err().to_string();
    assert!(e.contains("3072"), "{e}");
    // Register properly, then bad ciphertexts.
    svc.register(&pk).unwrap();
    let le_hex = |b: &[u8]| b.iter().rev().map(|x| format!("{x:02x}")).collect::<String>();
    let n = Integer::from_str_radix(&le_hex(&pk[12..]), 16).unwrap();
    let len = pk[12..].len() * 2;
    let batch = |c: &Integer| {
        let mut b = q[0][..44].to_vec();
        let h = format!("{:0>width$}", c.to_string_radix(16), width = 2 * len);
        let mut d: Vec<u8> = (0..h.len()).step_by(2).map(|i| u8::from_str_radix(&h[i..i + 2], 16).unwrap()).collect();
        d.reverse();
        d.resize(len, 0);
        b[40..44].copy_from_slice(&1u32.to_le_bytes());
        b.extend_from_slice(&d);
        b
    };
    let nn = Integer::from(&n * &n);
    let e = refused(infer(&batch(&nn), None));
    assert!(e.to_string().contains("below n²"), "{e}");
    let e = refused(infer(&batch(&n), None));
    assert!(e.to_string().contains("not invertible"), "{e}");
    // A CKKS ciphertext as input.
    let e = refused(infer(&ckks_like, None));
    assert!(e.to_string().contains("CKKS ciphertext"), "{e}");
    // The right batch still works after all that.
    infer(&q[0], None).unwrap();
}

/// The model's refill thread fills each registered key's pool of re-randomizers while no
/// request is evaluated; answers then take theirs from it (one per score), and every one
/// is used once: the same query answered twice gives different ciphertexts, both exact.
#[test]
fn registered_keys_get_a_pool_of_rerandomizers_each_used_once() {
    let m = model();
    let Service::Paillier(svc) = service(&m) else { unreachable!() };
    let s = PaillierSession::with_key(m.client.clone(), fixture_key()).unwrap();
    let (pk, id) = s.public_key_bytes();
    let key_id = svc.register(&pk).unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while svc.pooled(key_id).unwrap() < runtime::linear::POOL {
        assert!(std::time::Instant::now() < deadline, "the pool did not fill: {:?}", svc.pooled(key_id));
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let hex = id.hex();
    let q = s.encrypt(&[1.5, -2.25, 1000.0, 0.03125, -7.0]).unwrap();
    let infer = || {
        svc.infer_cancellable(
            Request {
                ciphertexts: q.iter().map(|c| &c[..]).collect(),
                key_id: Some(hex.as_bytes()),
                evaluation_keys: None,
            },
            &std::sync::atomic::AtomicBool::new(false),
        )
        .unwrap()
    };
    let (a, b) = (infer(), infer());
    // Two scores per answer, each with its own re-randomizer from the pool (the refill
    // thread may already have put some back: at most the two answers' four are missing).
    let left = svc.pooled(key_id).unwrap();
    assert!(left >= runtime::linear::POOL - 4, "{left}");
    assert_ne!(a.ciphertexts, b.ciphertexts, "a re-randomizer was used twice");
    let want = svc.linear().evaluate_plain(&s.encode(&[1.5, -2.25, 1000.0, 0.03125, -7.0]).unwrap()).unwrap();
    assert_eq!(s.decrypt_integers(&a.ciphertexts).unwrap(), want);
    assert_eq!(s.decrypt_integers(&b.ciphertexts).unwrap(), want);
    // Dropping the service ends its refill thread (join in Drop): the test would hang otherwise.
    drop(svc);
}
