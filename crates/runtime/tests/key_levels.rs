//! Bundles whose keys stop at the levels a model uses them at: served when they reach
//! every use, refused at registration (nothing stored) with a message that says which
//! key is too low when they do not. Model: y = x² + rot(x², 1), the product at level 2,
//! the rotation after the rescale at level 1 (three primes, one per digit).
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
    fn key_levels(&self) -> (Vec<(i64, usize)>, Option<usize>) {
        (vec![(1, 1)], Some(2))
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

fn bundle(params: &Parameters, sk: &SecretKey, rot_level: usize, relin_level: usize) -> Vec<u8> {
    let mut kg = KeyGenerator::new(params);
    EvaluationKeys {
        params: params.clone(),
        relin: Some(kg.relin_key_at(sk, relin_level)),
        galois: kg.galois_keys_at(sk, &[(1, rot_level)], None),
        public: None,
        answer: None,
    }
    .to_bytes()
}

#[test]
fn keys_at_the_levels_used_serve_and_lower_ones_are_refused() {
    let params = Parameters::builder().log_n(13).q_bits(&[36, 30, 30]).p_bits(&[36]).build().unwrap();
    let sk = KeyGenerator::new(&params).secret_key();
    let store = Arc::new(KeyStore::new(1 << 30, None).unwrap());
    let service = Service::new(Arc::new(SquareShift { params: params.clone() }), store.clone())
        .with_input_level(2, 2f64.powi(30));

    // The rotation key one level too low, then the relinearization key: refused, named.
    for (rot, relin, what) in
        [(0, 2, "rotation-by-1 Galois key serves levels up to 0"), (1, 1, "relinearization key serves levels up to 1")]
    {
        let e = service.register(&bundle(&params, &sk, rot, relin)).unwrap_err();
        assert!(matches!(e, ServiceError::IncompleteKeys(_)), "{e}");
        assert!(e.to_string().contains(what) && e.to_string().contains("client spec"), "{e}");
    }
    assert!(store.is_empty());

    // Exactly high enough: smaller than a top-level bundle, and right.
    let low = bundle(&params, &sk, 1, 2);
    let full = KeyGenerator::new(&params).evaluation_keys(&sk, &[1], false, true).to_bytes();
    assert!(low.len() < full.len(), "{} vs {}", low.len(), full.len());
    let x: Vec<f64> = (0..params.slots()).map(|i| (i % 7) as f64 / 7.0).collect();
    let enc = Encoder::new(&params);
    let input = Decryptor::new(&sk).encrypt_symmetric(&enc.encode(&x, 2, 2f64.powi(30)).unwrap()).unwrap().to_bytes();
    let n = x.len();
    let want: Vec<f64> = (0..n).map(|j| x[j].powi(2) + x[(j + 1) % n].powi(2)).collect();
    for b in [&low, &full] {
        let r = service.infer(Request { ciphertexts: vec![&input], key_id: None, evaluation_keys: Some(b) }).unwrap();
        let ct = Ciphertext::from_bytes(&params, &r.ciphertexts[0]).unwrap();
        let got = enc.decode(&Decryptor::new(&sk).decrypt(&ct).unwrap()).unwrap();
        let err = got.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
        assert!(err < 1e-3, "error {err}");
    }
    assert_eq!(store.len(), 2);
}
