//! Objects written before the engine was split into ring → rlwe → ckks (by commit
//! 5913a9e, with `examples/make_fixtures.rs`) still load, decrypt and evaluate, and
//! serialize back to the same bytes: the split changed nothing on the wire.

use ckks::*;

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)).unwrap()
}

#[test]
fn objects_from_before_the_split_load_and_round_trip_byte_for_byte() {
    let spec: ParamsSpec = serde_json::from_slice(&fixture("params.json")).unwrap();
    let params = Parameters::from_spec(&spec).unwrap();
    let sk_bytes = fixture("secret_key.bin");
    let sk = SecretKey::from_bytes(&params, &sk_bytes).unwrap();
    let pk_bytes = fixture("public_key.bin");
    let pk = PublicKey::from_bytes(&params, &pk_bytes).unwrap();
    let evk_bytes = fixture("evaluation_keys.hek");
    let evk = EvaluationKeys::from_bytes(&params, &evk_bytes).unwrap();
    let ct_bytes = fixture("ciphertext.bin");
    let ct = Ciphertext::from_bytes(&params, &ct_bytes).unwrap();
    let sct_bytes = fixture("seeded_ciphertext.bin");
    let sct = SeededCiphertext::from_bytes(&params, &sct_bytes).unwrap();

    // The same bytes back: every object's layout is unchanged.
    assert_eq!(&*sk.to_bytes(), &sk_bytes[..]);
    assert_eq!(pk.to_bytes(), pk_bytes);
    assert_eq!(evk.to_bytes(), evk_bytes);
    assert_eq!(ct.to_bytes(), ct_bytes);
    assert_eq!(sct.to_bytes(), sct_bytes);

    // And they still mean the same: the values the old build encrypted.
    let x: Vec<f64> = (0..params.slots()).map(|i| ((i % 17) as f64 - 8.0) / 8.0).collect();
    let enc = Encoder::new(&params);
    let dec = Decryptor::new(&sk);
    let close = |got: &[f64], want: &dyn Fn(usize) -> f64, tol: f64, what: &str| {
        let err = (0..params.slots()).map(|i| (got[i] - want(i)).abs()).fold(0.0, f64::max);
        assert!(err < tol, "{what}: max error {err}");
    };
    for (what, c) in [("public-key ciphertext", ct.clone()), ("seeded ciphertext", sct.expand())] {
        close(&enc.decode(&dec.decrypt(&c).unwrap()).unwrap(), &|i| x[i], 1e-4, what);
    }
    // The old keys still switch keys: a rotation and a relinearised square.
    let eval = Evaluator::new(&params);
    let r = eval.rotate(&ct, 1, &evk.galois).unwrap();
    close(&enc.decode(&dec.decrypt(&r).unwrap()).unwrap(), &|i| x[(i + 1) % x.len()], 1e-3, "rotation");
    let sq = eval.rescale(&eval.square_relin(&ct, evk.relin.as_ref().unwrap()).unwrap()).unwrap();
    close(&enc.decode(&dec.decrypt(&sq).unwrap()).unwrap(), &|i| x[i] * x[i], 1e-3, "square");
    // A fresh encryption under the old public key decrypts with the old secret key.
    let fresh = Encryptor::new(&pk).encrypt(&enc.encode(&x, 1, params.default_scale()).unwrap()).unwrap();
    close(&enc.decode(&dec.decrypt(&fresh).unwrap()).unwrap(), &|i| x[i], 1e-4, "fresh encryption");
}
