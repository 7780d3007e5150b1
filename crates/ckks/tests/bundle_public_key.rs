//! The evaluation-key bundle with the client's public key (circuit privacy): it round
//! trips, bundles without one are byte for byte the old format (so their key ids do not
//! change), and truncated or unknown contents are errors, not panics.
use ckks::{EvaluationKeys, KeyGenerator, Parameters, WireError};

#[test]
fn bundles_carry_a_public_key_only_when_asked() {
    let params = Parameters::builder().log_n(12).q_bits(&[36, 30]).p_bits(&[36]).build().unwrap();
    let mut kg = KeyGenerator::new(&params);
    let sk = kg.secret_key();
    let plain = kg.evaluation_keys(&sk, &[1], false, true);
    let old = plain.to_bytes();
    assert_eq!(old[40], 1, "contents byte: relinearization only, as before");
    let with = EvaluationKeys { public: Some(kg.public_key(&sk)), ..plain.clone() };
    let bytes = with.to_bytes();
    assert_eq!(bytes.len(), with.serialized_len());
    assert_eq!(bytes[40], 3);
    assert_eq!(bytes.len(), old.len() + 32 + params.poly_bytes(0..params.q().len()));
    let back = EvaluationKeys::from_bytes(&params, &bytes).unwrap();
    assert_eq!(back.public, with.public);
    assert_eq!(back.to_bytes(), bytes);
    assert!(EvaluationKeys::from_bytes(&params, &old).unwrap().public.is_none());
    assert!(back.memory_bytes() > plain.memory_bytes());

    for cut in [41, 41 + 16, 41 + 32 + 100, bytes.len() - 1] {
        assert!(EvaluationKeys::from_bytes(&params, &bytes[..cut]).is_err(), "cut at {cut}");
    }
    let mut bad = bytes.clone();
    bad[40] = 8; // bit 2 is an answer key (`ckks::tests::compact_answer`); bit 3 means nothing
    assert!(matches!(
        EvaluationKeys::from_bytes(&params, &bad),
        Err(WireError::OutOfRange { field: "bundle contents", .. })
    ));
    bad[40] = 4 | 1; // an answer key where the public key is: its degree byte is refused
    assert!(EvaluationKeys::from_bytes(&params, &bad).is_err());
}
