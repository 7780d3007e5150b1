//! The wire format: round trips, and every corruption, truncation or foreign object refused.

use bgv::*;

fn setup() -> (Parameters, SecretKey, PublicKey) {
    let params = Parameters::builder().log_n(12).q_bits(&[36, 34]).plaintext_modulus(65537).build().unwrap();
    let mut kg = KeyGenerator::new(&params);
    let sk = kg.secret_key();
    let pk = kg.public_key(&sk);
    (params, sk, pk)
}

#[test]
fn ciphertexts_round_trip_and_corruptions_are_refused() {
    let (params, sk, pk) = setup();
    let enc = Encoder::new(&params);
    let eval = Evaluator::new(&params);
    let dec = Decryptor::new(&params, &sk).unwrap();
    let values: Vec<i64> = (0..params.n() as i64).map(|i| i * 7 - 14000).collect();
    let ct = Encryptor::new(&params, &pk).unwrap().encrypt(&enc.encode(&values, 1).unwrap()).unwrap();
    // A switched ciphertext: a factor other than 1 must survive the trip.
    let ct = eval.mod_switch(&ct).unwrap();
    assert_ne!(ct.factor(), 1);
    let bytes = ct.to_bytes();
    assert_eq!(bytes.len(), params.ciphertext_bytes(0, false));
    let back = Ciphertext::from_bytes(&params, &bytes).unwrap();
    assert_eq!((back.factor(), back.noise_bound_bits(), back.level()), (ct.factor(), ct.noise_bound_bits(), 0));
    assert_eq!(enc.decode_signed(&dec.decrypt(&back).unwrap()).unwrap(), values);
    assert_eq!(bgv::ciphertext::read_any_ciphertext(&params, &bytes).unwrap().to_bytes(), bytes);

    // Every truncation, and a trailing byte.
    for len in [0, 3, 20, 40, 48, 49, 100, bytes.len() / 2, bytes.len() - 9, bytes.len() - 8, bytes.len() - 1] {
        assert!(Ciphertext::from_bytes(&params, &bytes[..len]).is_err(), "truncated to {len}");
    }
    let mut long = bytes.clone();
    long.push(0);
    assert!(Ciphertext::from_bytes(&params, &long).is_err());
    // The factor (the RLWE scale field, after level) must be an integer in [1, t).
    let scale_at = rlwe::wire::HEADER_LEN + 2;
    for bad in [0.5f64, 0.0, 65537.0, 1.5, f64::NAN] {
        let mut b = bytes.clone();
        b[scale_at..scale_at + 8].copy_from_slice(&bad.to_le_bytes());
        assert!(Ciphertext::from_bytes(&params, &b).is_err(), "factor {bad}");
    }
    // The noise bound: finite, non-negative, within the level's limit.
    let tail = bytes.len() - 8;
    for bad in [f64::NAN, f64::INFINITY, -1.0, 1000.0] {
        let mut b = bytes.clone();
        b[tail..].copy_from_slice(&bad.to_le_bytes());
        assert!(Ciphertext::from_bytes(&params, &b).is_err(), "noise {bad}");
    }
    // A residue at or above its prime.
    let mut b = bytes.clone();
    let body = rlwe::wire::HEADER_LEN + rlwe::wire::CIPHERTEXT_META_LEN;
    b[body..body + 5].fill(0xff);
    assert!(matches!(Ciphertext::from_bytes(&params, &b), Err(Error::Rlwe(rlwe::Error::Wire(_)))));
}

#[test]
fn objects_of_another_scheme_or_t_are_foreign() {
    let (params, sk, pk) = setup();
    let enc = Encoder::new(&params);
    let ct = Encryptor::new(&params, &pk).unwrap().encrypt(&enc.encode(&[1, 2, 3], 1).unwrap()).unwrap();
    let bytes = ct.to_bytes();
    // The same primes as CKKS, or with another t: other sets.
    let ckks = rlwe::Parameters::from_spec(params.spec()).unwrap();
    let other_t = Parameters::from_spec(params.spec(), 40961).unwrap();
    assert!(matches!(
        Ciphertext::from_bytes(&other_t, &bytes),
        Err(Error::Rlwe(rlwe::Error::Wire(WireError::ForeignParameters { .. })))
    ));
    let body = &bytes[..bytes.len() - bgv::ciphertext::NOISE_TRAILER_LEN];
    assert!(matches!(rlwe::Ciphertext::from_bytes(&ckks, body), Err(WireError::ForeignParameters { .. })));
    assert!(matches!(rlwe::read_any_ciphertext(&ckks, body), Err(WireError::ForeignParameters { .. })));
    // A CKKS ciphertext offered to BGV.
    let mut kg = rlwe::KeyGenerator::new(&ckks);
    let csk = kg.secret_key();
    let cpk = kg.public_key(&csk);
    let poly = ring::Poly::zero(params.n(), 2);
    let cct = rlwe::Encryptor::new(&cpk).encrypt(&rlwe::Plaintext::new(&ckks, poly, 1.0).unwrap()).unwrap();
    let mut cbytes = cct.to_bytes();
    assert!(Ciphertext::from_bytes(&params, &cbytes).is_err());
    cbytes.extend_from_slice(&1u64.to_le_bytes());
    cbytes.extend_from_slice(&10f64.to_le_bytes());
    assert!(matches!(
        Ciphertext::from_bytes(&params, &cbytes),
        Err(Error::Rlwe(rlwe::Error::Wire(WireError::ForeignParameters { .. })))
    ));
    // Keys: BGV's are rlwe's under the BGV fingerprint.
    let mut kg = KeyGenerator::new(&params);
    let keys = kg.evaluation_keys(&sk, &[1, 2], true, true);
    let kb = keys.to_bytes();
    assert_eq!(EvaluationKeys::from_bytes(params.rlwe(), &kb).unwrap(), keys);
    assert!(matches!(EvaluationKeys::from_bytes(&ckks, &kb), Err(WireError::ForeignParameters { .. })));
    assert!(EvaluationKeys::from_bytes(params.rlwe(), &kb[..kb.len() - 1]).is_err());
    // A seeded ciphertext read as a full one, and the other way round.
    let mut dec = Decryptor::new(&params, &sk).unwrap();
    let seeded = dec.encrypt_symmetric(&enc.encode(&[4, 5], 0).unwrap()).unwrap().to_bytes();
    assert!(Ciphertext::from_bytes(&params, &seeded).is_err());
    assert!(SeededCiphertext::from_bytes(&params, &bytes).is_err());
    let expanded = bgv::ciphertext::read_any_ciphertext(&params, &seeded).unwrap();
    assert_eq!(&enc.decode(&dec.decrypt(&expanded).unwrap()).unwrap()[..3], &[4, 5, 0]);
    for len in [0, 40, seeded.len() - 9, seeded.len() - 1] {
        assert!(SeededCiphertext::from_bytes(&params, &seeded[..len]).is_err(), "seeded truncated to {len}");
    }
}

/// A plaintext modulus past 2^53: the factor after a modulus switch is not exact as a
/// double, so it must travel as an integer (the first format decrypted wrong here).
#[test]
fn a_factor_past_2_53_survives_a_switch_and_a_round_trip() {
    let t = bgv::throughput::plaintext_modulus_for(1 << 57, 1 << 14).unwrap();
    assert!(t > 1 << 58);
    let params = Parameters::builder().log_n(14).q_bits(&[60, 60, 60, 60]).plaintext_modulus(t).build().unwrap();
    let mut kg = KeyGenerator::new(&params);
    let sk = kg.secret_key();
    let pk = kg.public_key(&sk);
    let (enc, eval) = (Encoder::new(&params), Evaluator::new(&params));
    let dec = Decryptor::new(&params, &sk).unwrap();
    let big = 1i64 << 56;
    let values: Vec<i64> = (0..params.n() as i64).map(|i| (i - 8192) * 0x1_0000_0001 + big * (i % 3 - 1)).collect();
    let ct = Encryptor::new(&params, &pk).unwrap().encrypt(&enc.encode(&values, params.max_level()).unwrap()).unwrap();
    let ct = eval.mod_switch(&ct).unwrap();
    assert!(ct.factor() as f64 as u64 != ct.factor(), "the test needs a factor a double cannot hold");
    assert_eq!(enc.decode_signed(&dec.decrypt(&ct).unwrap()).unwrap(), values, "before the trip");
    let bytes = ct.to_bytes();
    assert_eq!(bytes.len(), params.ciphertext_bytes(ct.level(), false));
    let back = Ciphertext::from_bytes(&params, &bytes).unwrap();
    assert_eq!(back.factor(), ct.factor());
    assert_eq!(enc.decode_signed(&dec.decrypt(&back).unwrap()).unwrap(), values);

    // The first format (8-byte trailer, factor only in the scale field) is refused by name.
    let n = bytes.len();
    let mut legacy = bytes[..n - 16].to_vec();
    legacy.extend_from_slice(&bytes[n - 8..]);
    let err = Ciphertext::from_bytes(&params, &legacy).unwrap_err().to_string();
    assert!(err.contains("first BGV wire format") && err.contains("re-encrypt"), "{err}");
    // The trailer's factor and the scale field must agree; the factor must be in [1, t).
    for bad in [ct.factor() ^ (1 << 40), 0, t, u64::MAX] {
        let mut b = bytes.clone();
        b[n - 16..n - 8].copy_from_slice(&bad.to_le_bytes());
        assert!(Ciphertext::from_bytes(&params, &b).is_err(), "factor {bad}");
    }
}
