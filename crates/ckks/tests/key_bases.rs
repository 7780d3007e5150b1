//! Key bases (`ParamsSpec::key_bases`, `Parameters::with_key_bases`): keys for a level
//! made with special primes and digits of their own. They must switch as well as the
//! set's own keys at the levels they serve, travel in fewer bytes, refuse what they do
//! not serve with an error, and never pass for keys of another set.
mod common;
use ckks::*;
use common::*;

/// As in `key_levels.rs`: scale 2^30, key-switching noise ~1e-4; a wrong limb is ~1.
const KEYSWITCHED: f64 = 5e-4;

/// N = 2^13 (bound 214 bits): five primes, 160 bits, one 40-bit special prime and a
/// digit per prime. Level 2 (100 bits) leaves room for a 100-bit P of its own: one digit.
fn plain() -> Parameters {
    Parameters::builder().log_n(13).q_bits(&[40, 30, 30, 30, 30]).p_bits(&[40]).dnum(5).build().unwrap()
}

fn kit() -> Kit {
    Kit::new(plain().with_key_bases(&[(1, vec![36, 36], 1), (2, vec![50, 50], 1)]).unwrap())
}

#[test]
fn keys_in_a_basis_rotate_and_multiply_as_well_as_the_sets_own() {
    let k = kit();
    let s = k.params.slots() as i64;
    let basis = k.params.key_basis_at(2).unwrap().clone();
    assert_eq!((basis.q(), basis.dnum()), (&k.params.q()[..3], 1));
    let mut kg = KeyGenerator::new(&k.params);
    let low = kg.galois_keys_at(&k.sk, &[(1, 2), (-3, 1), (5, 3)], None);
    let key = |st: i64| low.get(k.params.galois_element(st)).unwrap();
    assert!(key(1).params().same(&basis) && key(1).digits() == 1 && key(1).max_level() == 2);
    assert!(key(-3).params().same(k.params.key_basis_at(1).unwrap()));
    assert!(key(5).params().same(&k.params), "level 3 has no basis: the set's own key");

    let v = rand_vec(s as usize, 3, 1.0);
    let rotated = |st: i64| -> Vec<f64> { (0..s).map(|j| v[(j + st).rem_euclid(s) as usize]).collect() };
    let full = k.galois(&[1], false);
    let ct = k.eval.drop_level(&k.encrypt(&v), 2).unwrap();
    let e_full = max_err(&k.decrypt(&k.eval.rotate(&ct, 1, &full).unwrap()), &rotated(1));
    let e_basis = max_err(&k.decrypt(&k.eval.rotate(&ct, 1, &low).unwrap()), &rotated(1));
    assert!(e_basis < KEYSWITCHED && e_basis < 4.0 * e_full + 1e-6, "basis key {e_basis:e}, set's key {e_full:e}");
    // Hoisted at a level below the keys', with keys of two bases and of the set mixed:
    // each rotation is raised in its own key's set.
    let ct1 = k.eval.drop_level(&ct, 1).unwrap();
    let dec = k.eval.decompose(&ct1).unwrap();
    for st in [1, -3, 5] {
        let r = k.eval.rotate_decomposed(&ct1, &dec, st, &low).unwrap();
        assert!(max_err(&k.decrypt(&r), &rotated(st)) < KEYSWITCHED, "step {st}");
        let own = k.eval.decompose_for(&ct1, key(st)).unwrap();
        let r = k.eval.rotate_decomposed(&ct1, &own, st, &low).unwrap();
        assert!(max_err(&k.decrypt(&r), &rotated(st)) < KEYSWITCHED, "step {st}, its own basis");
    }
    let hoisted = k.eval.rotate_hoisted(&ct1, &[1, -3, 5], &low).unwrap();
    for (r, st) in hoisted.iter().zip([1, -3, 5]) {
        assert!(max_err(&k.decrypt(r), &rotated(st)) < KEYSWITCHED, "rotate_hoisted step {st}");
    }
    // Above a basis key's level: an error, not a panic (its basis has no tables there).
    let top = k.encrypt(&v);
    assert!(matches!(k.eval.rotate(&top, 1, &low), Err(Error::KeyBelowLevel { key_level: 2, level: 4 })));
    assert!(matches!(k.eval.decompose_for(&top, key(1)), Err(Error::KeyBelowLevel { .. })));

    let rk = kg.relin_key_at(&k.sk, 2);
    assert!(rk.key().params().same(&basis));
    let (a, b) = (rand_vec(s as usize, 5, 1.0), rand_vec(s as usize, 6, 1.0));
    let (ca, cb) = (k.eval.drop_level(&k.encrypt(&a), 2).unwrap(), k.eval.drop_level(&k.encrypt(&b), 2).unwrap());
    let prod = k.eval.rescale(&k.eval.mul_relin(&ca, &cb, &rk).unwrap()).unwrap();
    let want: Vec<f64> = a.iter().zip(&b).map(|(x, y)| x * y).collect();
    assert!(max_err(&k.decrypt(&prod), &want) < 1e-3);
    let sq = k.eval.rescale(&k.eval.square_relin(&ca, &rk).unwrap()).unwrap();
    let want: Vec<f64> = a.iter().map(|x| x * x).collect();
    assert!(max_err(&k.decrypt(&sq), &want) < 1e-3);
}

#[test]
fn a_basis_of_another_set_is_refused() {
    let k = kit();
    // Same chain, a basis with other special primes: a different set, whose keys the
    // evaluator must not take for this one's.
    let other = plain().with_key_bases(&[(2, vec![51, 49], 1)]).unwrap();
    assert!(!other.same(&k.params));
    let mut kg = KeyGenerator::new(&other);
    let sk = kg.secret_key();
    let foreign = kg.galois_keys_at(&sk, &[(1, 2)], None);
    let ct = k.eval.drop_level(&k.encrypt(&[1.0]), 2).unwrap();
    assert!(matches!(k.eval.rotate(&ct, 1, &foreign), Err(Error::ParamsMismatch)));
}

#[test]
fn bundles_with_bases_round_trip_smaller_and_check_the_basis_byte() {
    let k = kit();
    let p = &k.params;
    let mut kg = KeyGenerator::new(p);
    let keys = EvaluationKeys {
        params: p.clone(),
        relin: Some(kg.relin_key_at(&k.sk, 2)),
        galois: kg.galois_keys_at(&k.sk, &[(1, 2), (2, 4), (4, 1)], None),
        public: None,
        answer: None,
    };
    let bytes = keys.to_bytes();
    assert_eq!(bytes.len(), keys.serialized_len());
    let records = 2 * p.keyswitch_key_bytes_at(2) + p.keyswitch_key_bytes_at(4) + p.keyswitch_key_bytes_at(1);
    assert_eq!(bytes.len(), 40 + 1 + 4 + records);
    // One digit over 3 + 2 primes against three over 3 + 1: less than half.
    let without = plain();
    assert!(2 * p.keyswitch_key_bytes_at(2) < without.keyswitch_key_bytes_at(2) + 2);
    assert_eq!(EvaluationKeys::from_bytes(p, &bytes).unwrap(), keys);
    // The set without bases is another set: its fingerprint differs, the bundle is foreign.
    assert!(matches!(EvaluationKeys::from_bytes(&without, &bytes), Err(WireError::ForeignParameters { .. })));
    // The relinearization record's basis byte sits after the header and the contents byte.
    for i in [3u8, 200] {
        let mut bad = bytes.clone();
        bad[41] = i;
        assert!(matches!(EvaluationKeys::from_bytes(p, &bad), Err(WireError::OutOfRange { field: "key basis", .. })));
    }
    // Naming the set itself instead of the basis: the record is read with the set's
    // digits and primes, so its length or its values no longer fit (an error, no panic).
    let mut bad = bytes.clone();
    bad[41] = 0;
    assert!(EvaluationKeys::from_bytes(p, &bad).map(|b| b != keys).unwrap_or(true));
    for cut in [1, 100, p.keyswitch_key_bytes_at(1) - 1] {
        assert!(EvaluationKeys::from_bytes(p, &bytes[..bytes.len() - cut]).is_err(), "cut {cut}");
    }
}

#[test]
fn bases_enter_the_fingerprint_and_each_must_be_secure() {
    let k = kit();
    let back = Parameters::from_spec(k.params.spec()).unwrap();
    assert!(back.same(&k.params) && back.key_bases().len() == 2);
    assert_ne!(k.params.fingerprint(), plain().fingerprint());
    // 100 + 120 bits is over N = 2^13's 214.
    assert!(matches!(plain().with_key_bases(&[(2, vec![60, 60], 1)]), Err(ParamError::Insecure { .. })));
    // Levels must increase and stay within the chain.
    assert!(matches!(plain().with_key_bases(&[(5, vec![40], 5)]), Err(ParamError::KeyBasis { .. })));
    assert!(matches!(
        plain().with_key_bases(&[(2, vec![50, 50], 1), (1, vec![36, 36], 1)]),
        Err(ParamError::KeyBasis { .. })
    ));
    // BGV's evaluator switches in the set itself: its sets take no bases.
    let bgv = Parameters::builder()
        .log_n(13)
        .q_bits(&[40, 30, 30, 30, 30])
        .p_bits(&[40])
        .dnum(5)
        .scheme(rlwe_scheme_bgv())
        .build()
        .unwrap();
    assert!(matches!(bgv.with_key_bases(&[(2, vec![50, 50], 1)]), Err(ParamError::KeyBasis { .. })));
    // A P too small for its one digit is refused as for any set.
    assert!(matches!(plain().with_key_bases(&[(2, vec![40], 1)]), Err(ParamError::SpecialPrimesTooSmall { .. })));
}

fn rlwe_scheme_bgv() -> ckks::params::Scheme {
    ckks::params::Scheme::Bgv { plaintext_modulus: 65537 }
}
