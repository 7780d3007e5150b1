//! The request path shared by every front end, with a small model: y = x² + rot(x², 1).
use std::sync::Arc;

use ckks::*;
use runtime::*;

struct SquareShift {
    params: Parameters,
}

impl Executable for SquareShift {
    fn params(&self) -> &Parameters {
        &self.params
    }
    fn input_count(&self) -> usize {
        1
    }
    fn rotation_steps(&self) -> &[i64] {
        &[1]
    }
    fn needs_relinearization(&self) -> bool {
        true
    }
    fn run(
        &self,
        eval: &Evaluator,
        keys: &EvaluationKeys,
        inputs: Vec<Ciphertext>,
    ) -> Result<Vec<Ciphertext>, RunError> {
        let sq = eval.rescale(&eval.square_relin(&inputs[0], keys.relin.as_ref().unwrap())?)?;
        let r = eval.rotate(&sq, 1, &keys.galois)?;
        Ok(vec![eval.add(&sq, &r)?])
    }
}

struct Fixture {
    params: Parameters,
    sk: SecretKey,
    service: Service,
    bundle: Vec<u8>,
    id: KeyId,
    input: Vec<u8>,
    x: Vec<f64>,
}

fn fixture() -> Fixture {
    let params = Parameters::builder().log_n(12).q_bits(&[36, 30]).p_bits(&[36]).build().unwrap();
    let mut kg = KeyGenerator::new(&params);
    let sk = kg.secret_key();
    let bundle = kg.evaluation_keys(&sk, &[1], false, true).to_bytes();
    let id = KeyId::of_bundle(&bundle);
    let x: Vec<f64> = (0..params.slots()).map(|i| (i % 7) as f64 / 7.0).collect();
    let pt = Encoder::new(&params).encode(&x, 1, 2f64.powi(30)).unwrap();
    let input = Decryptor::new(&sk).encrypt_symmetric(&pt).unwrap().to_bytes();
    let store = Arc::new(KeyStore::new(1 << 30, None).unwrap());
    let service =
        Service::new(Arc::new(SquareShift { params: params.clone() }), store).with_input_level(1, 2f64.powi(30));
    Fixture { params, sk, service, bundle, id, input, x }
}

fn decrypt(f: &Fixture, bytes: &[u8]) -> Vec<f64> {
    let ct = Ciphertext::from_bytes(&f.params, bytes).unwrap();
    Encoder::new(&f.params).decode(&Decryptor::new(&f.sk).decrypt(&ct).unwrap()).unwrap()
}

#[test]
fn inline_keys_then_key_id_give_the_right_answer() {
    let f = fixture();
    let r = f
        .service
        .infer(Request { ciphertexts: vec![&f.input], key_id: None, evaluation_keys: Some(&f.bundle) })
        .unwrap();
    assert_eq!(r.key_id, f.id);
    let hex = f.id.hex();
    let r2 = f
        .service
        .infer(Request { ciphertexts: vec![&f.input], key_id: Some(hex.as_bytes()), evaluation_keys: None })
        .unwrap();
    let n = f.x.len();
    let want: Vec<f64> = (0..n).map(|j| f.x[j].powi(2) + f.x[(j + 1) % n].powi(2)).collect();
    for out in [&r.ciphertexts[0], &r2.ciphertexts[0]] {
        let got = decrypt(&f, out);
        let err = got.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
        assert!(err < 1e-3, "error {err}");
    }
}

#[test]
fn every_bad_request_fails_alone_with_a_clear_message() {
    let f = fixture();
    let hex = f.id.hex();
    let call = |cts: Vec<&[u8]>, kid: Option<&[u8]>, keys: Option<&[u8]>| {
        f.service
            .infer(Request { ciphertexts: cts, key_id: kid, evaluation_keys: keys })
            .map(|_| ())
            .unwrap_err()
            .to_string()
    };
    // Unknown key id, before registration.
    let e = call(vec![&f.input], Some(hex.as_bytes()), None);
    assert!(e.contains("unknown key id") && e.contains("EVALUATION_KEYS"), "{e}");
    assert!(call(vec![&f.input], None, None).contains("KEY_ID"));
    assert!(call(vec![&f.input], Some(b"not-hex"), None).contains("64 hexadecimal"));
    // Keys that lack the rotation the model needs.
    let mut kg = KeyGenerator::new(&f.params);
    let partial = kg.evaluation_keys(&f.sk, &[2], false, true).to_bytes();
    let e = call(vec![&f.input], None, Some(&partial));
    assert!(e.contains("rotation steps [1]"), "{e}");
    // Register properly, then the input-side errors.
    f.service.register(&f.bundle).unwrap();
    let wrong_id = KeyId::of_bundle(b"x").hex();
    assert!(call(vec![&f.input], Some(wrong_id.as_bytes()), Some(&f.bundle)).contains("does not name"));
    let kid = Some(hex.as_bytes());
    assert!(call(vec![], kid, None).contains("ENCRYPTED_INPUT"));
    assert!(call(vec![&f.input, &f.input], kid, None).contains("holds 2 ciphertexts; this model takes 1"));
    assert!(call(vec![&f.input[..100]], kid, None).contains("ENCRYPTED_INPUT[0]"));
    let other = Parameters::builder().log_n(12).q_bits(&[36, 30]).p_bits(&[35]).build().unwrap();
    let osk = KeyGenerator::new(&other).secret_key();
    let foreign = Decryptor::new(&osk)
        .encrypt_symmetric(&Encoder::new(&other).encode(&[1.0], 1, 2f64.powi(30)).unwrap())
        .unwrap()
        .to_bytes();
    assert!(call(vec![&foreign], kid, None).contains("other CKKS parameters"));
    let low = Decryptor::new(&f.sk)
        .encrypt_symmetric(&Encoder::new(&f.params).encode(&[1.0], 0, 2f64.powi(30)).unwrap())
        .unwrap()
        .to_bytes();
    assert!(call(vec![&low], kid, None).contains("expects level 1"));
    // And the service still answers a good request.
    assert!(f.service.infer(Request { ciphertexts: vec![&f.input], key_id: kid, evaluation_keys: None }).is_ok());
}

/// An evaluation that fails in the engine: the engine's own error reaches the front
/// end as a value it can match on, not only as text.
struct RescalesTooFar {
    params: Parameters,
}

impl Executable for RescalesTooFar {
    fn params(&self) -> &Parameters {
        &self.params
    }
    fn input_count(&self) -> usize {
        1
    }
    fn rotation_steps(&self) -> &[i64] {
        &[]
    }
    fn needs_relinearization(&self) -> bool {
        false
    }
    fn run(&self, eval: &Evaluator, _: &EvaluationKeys, inputs: Vec<Ciphertext>) -> Result<Vec<Ciphertext>, RunError> {
        let once = eval.rescale(&inputs[0])?;
        Ok(vec![eval.rescale(&once)?])
    }
}

#[test]
fn engine_errors_stay_typed_up_to_the_service() {
    let f = fixture();
    let store = Arc::new(KeyStore::new(1 << 30, None).unwrap());
    let service = Service::new(Arc::new(RescalesTooFar { params: f.params.clone() }), store);
    let bundle = KeyGenerator::new(&f.params).evaluation_keys(&f.sk, &[], false, false).to_bytes();
    let e = service
        .infer(Request { ciphertexts: vec![&f.input], key_id: None, evaluation_keys: Some(&bundle) })
        .map(|_| ())
        .unwrap_err();
    assert!(matches!(e, ServiceError::Run(RunError::Ckks(ckks::Error::LevelExhausted))), "{e:?}");
    assert!(e.to_string().starts_with("evaluation failed: "), "{e}");
    let source = std::error::Error::source(&e).expect("the run error is the cause");
    assert!(source.downcast_ref::<RunError>().is_some());
}

#[test]
fn a_refused_bundle_leaves_nothing_in_the_store() {
    let f = fixture();
    let store = f.service.key_store();
    let wrong_id = KeyId::of_bundle(b"x").hex();
    let e = f
        .service
        .infer(Request {
            ciphertexts: vec![&f.input],
            key_id: Some(wrong_id.as_bytes()),
            evaluation_keys: Some(&f.bundle),
        })
        .map(|_| ())
        .unwrap_err();
    assert!(matches!(e, ServiceError::KeyIdMismatch { .. }), "{e}");
    assert!(store.is_empty());
    let mut kg = KeyGenerator::new(&f.params);
    let extra = kg.evaluation_keys(&f.sk, &[1, 2], false, true).to_bytes();
    assert!(matches!(f.service.register(&extra), Err(ServiceError::Keys(KeyStoreError::ExtraKeys(_)))));
    let partial = kg.evaluation_keys(&f.sk, &[2], false, true).to_bytes();
    assert!(matches!(f.service.register(&partial), Err(ServiceError::IncompleteKeys(_))));
    assert!(store.is_empty());
    assert_eq!(f.service.register(&f.bundle).unwrap(), f.id);
    assert_eq!(store.len(), 1);
}
