//! Keys made only up to a level (`KeyGenerator::galois_keys_at`, `relin_key_at`): they
//! must switch exactly as well as top-level keys at the levels they serve, refuse higher
//! ones with an error, and travel smaller on the wire.
mod common;
use ckks::*;
use common::*;

/// Scale 2^30: encryption and key-switching noise leave ~1e-4 in the worst of 4096 slots
/// (measured the same for keys of every level); a wrong limb is an error near 1.
const KEYSWITCHED: f64 = 5e-4;

fn kit() -> Kit {
    // Five digits of one prime each, so keys at lower levels have fewer digits and limbs.
    let p = Parameters::builder().log_n(13).q_bits(&[40, 30, 30, 30, 30]).p_bits(&[40]).dnum(5).build().unwrap();
    Kit::new(p)
}

#[test]
fn a_key_made_for_a_level_rotates_there_as_well_as_a_top_level_key() {
    let k = kit();
    let s = k.params.slots() as i64;
    let full = k.galois(&[1, -3], false);
    let low = KeyGenerator::new(&k.params).galois_keys_at(&k.sk, &[(1, 2), (-3, 1)], None);
    assert_eq!(low.get(k.params.galois_element(1)).unwrap().max_level(), 2);
    assert_eq!(low.get(k.params.galois_element(1)).unwrap().digits(), 3);
    let v = rand_vec(s as usize, 3, 1.0);
    let ct = k.eval.drop_level(&k.encrypt(&v), 2).unwrap();
    let rotated = |st: i64| -> Vec<f64> { (0..s).map(|j| v[(j + st).rem_euclid(s) as usize]).collect() };
    let by_full = k.decrypt(&k.eval.rotate(&ct, 1, &full).unwrap());
    let by_low = k.decrypt(&k.eval.rotate(&ct, 1, &low).unwrap());
    let (e_full, e_low) = (max_err(&by_full, &rotated(1)), max_err(&by_low, &rotated(1)));
    assert!(e_low < KEYSWITCHED, "level-2 key: error {e_low:e}");
    // Same noise class as the full key (both are fresh keys; only unused limbs are gone).
    assert!(e_low < 4.0 * e_full + 1e-6, "level-2 key error {e_low:e} vs top-level key {e_full:e}");
    // Hoisted, and at a lower level than the key's.
    let ct1 = k.eval.drop_level(&ct, 1).unwrap();
    for (r, st) in k.eval.rotate_hoisted(&ct1, &[1, -3], &low).unwrap().iter().zip([1, -3]) {
        assert!(max_err(&k.decrypt(r), &rotated(st)) < KEYSWITCHED, "hoisted step {st}");
    }
    // Above the key's level: an error naming both levels, not a panic or garbage.
    let top = k.encrypt(&v);
    match k.eval.rotate(&top, 1, &low) {
        Err(Error::KeyBelowLevel { key_level: 2, level: 4 }) => {}
        other => panic!("expected KeyBelowLevel, got {other:?}"),
    }
    assert!(matches!(k.eval.rotate(&ct, -3, &low), Err(Error::KeyBelowLevel { key_level: 1, level: 2 })));
}

#[test]
fn a_relinearization_key_made_for_a_level_multiplies_there() {
    let k = kit();
    let s = k.params.slots();
    let rk = KeyGenerator::new(&k.params).relin_key_at(&k.sk, 3);
    assert_eq!(rk.key().max_level(), 3);
    let (a, b) = (rand_vec(s, 5, 1.0), rand_vec(s, 6, 1.0));
    let (ca, cb) = (k.eval.drop_level(&k.encrypt(&a), 3).unwrap(), k.eval.drop_level(&k.encrypt(&b), 3).unwrap());
    let prod = k.eval.rescale(&k.eval.mul_relin(&ca, &cb, &rk).unwrap()).unwrap();
    let want: Vec<f64> = a.iter().zip(&b).map(|(x, y)| x * y).collect();
    let e = max_err(&k.decrypt(&prod), &want);
    assert!(e < 1e-3, "product error {e:e}");
    let (ta, tb) = (k.encrypt(&a), k.encrypt(&b));
    assert!(matches!(k.eval.mul_relin(&ta, &tb, &rk), Err(Error::KeyBelowLevel { key_level: 3, level: 4 })));
}

#[test]
fn bundles_of_keys_at_several_levels_round_trip_smaller() {
    let k = kit();
    let mut kg = KeyGenerator::new(&k.params);
    let keys = EvaluationKeys {
        params: k.params.clone(),
        relin: Some(kg.relin_key_at(&k.sk, 3)),
        galois: kg.galois_keys_at(&k.sk, &[(1, 0), (2, 4), (4, 2)], None),
        public: None,
        answer: None,
    };
    let bytes = keys.to_bytes();
    assert_eq!(bytes.len(), keys.serialized_len());
    let p = &k.params;
    let records = p.keyswitch_key_bytes_at(3)
        + p.keyswitch_key_bytes_at(0)
        + p.keyswitch_key_bytes()
        + p.keyswitch_key_bytes_at(2);
    assert_eq!(bytes.len(), 40 + 1 + 4 + records);
    assert!(p.keyswitch_key_bytes_at(0) * 10 < p.keyswitch_key_bytes(), "a one-digit key is a fraction of a full one");
    let back = EvaluationKeys::from_bytes(p, &bytes).unwrap();
    assert_eq!(back, keys);
    // Each record's length is checked before it is read: any cut is an error.
    for cut in [1, 100, p.keyswitch_key_bytes_at(2) - 1] {
        assert!(EvaluationKeys::from_bytes(p, &bytes[..bytes.len() - cut]).is_err(), "cut {cut}");
    }
    let mut extended = bytes.clone();
    extended.push(0);
    assert!(EvaluationKeys::from_bytes(p, &extended).is_err());
    // A digit count of 0 or above the parameters' is refused (the relinearization record's count sits after the header, flag and element).
    for digits in [0u16, 6] {
        let mut bad = bytes.clone();
        bad[41 + 8..41 + 10].copy_from_slice(&digits.to_le_bytes());
        assert!(matches!(EvaluationKeys::from_bytes(p, &bad), Err(WireError::OutOfRange { field: "digits", .. })));
    }
}
