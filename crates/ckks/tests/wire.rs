//! The wire format: round trips, sizes, and errors (never panics) on bad input.
mod common;
use ckks::wire::{peek_header, read_any_ciphertext};
use ckks::*;
use common::*;
use proptest::prelude::*;
use std::sync::OnceLock;

fn kit() -> &'static (Kit, EvaluationKeys, Vec<u8>) {
    static K: OnceLock<(Kit, EvaluationKeys, Vec<u8>)> = OnceLock::new();
    K.get_or_init(|| {
        let k = Kit::new(Parameters::builder().log_n(12).q_bits(&[36, 30]).build().unwrap());
        let ek = KeyGenerator::new(&k.params).evaluation_keys(&k.sk, &[1, -1, 5], true, true);
        let ct = k.encrypt(&rand_vec(k.params.slots(), 1, 1.0)).to_bytes();
        (k, ek, ct)
    })
}

#[test]
fn every_object_round_trips_with_the_advertised_size() {
    let (k, ek, ct_bytes) = kit();
    let v = rand_vec(k.params.slots(), 1, 1.0);
    let ct = Ciphertext::from_bytes(&k.params, ct_bytes).unwrap();
    assert_eq!(ct_bytes.len(), k.params.ciphertext_bytes(1, false));
    assert!(max_err(&k.decrypt(&ct), &v) < 1e-3);

    let pt = k.enc.encode(&v, 1, k.params.default_scale()).unwrap();
    let seeded = Decryptor::new(&k.sk).encrypt_symmetric(&pt).unwrap();
    let sb = seeded.to_bytes();
    assert_eq!(sb.len(), k.params.ciphertext_bytes(1, true));
    assert!(sb.len() * 2 < ct_bytes.len() + 200, "seeded form is about half");
    assert!(max_err(&k.decrypt(&read_any_ciphertext(&k.params, &sb).unwrap()), &v) < 1e-3);

    let pk = PublicKey::from_bytes(&k.params, &k.pk.to_bytes()).unwrap();
    let fresh = Encryptor::new(&pk).encrypt(&pt).unwrap();
    assert!(max_err(&k.decrypt(&fresh), &v) < 1e-3);

    let eb = ek.to_bytes();
    assert_eq!(eb.len(), ek.serialized_len());
    let back = EvaluationKeys::from_bytes(&k.params, &eb).unwrap();
    assert_eq!(&back, ek);
    assert_eq!(back.galois.len(), 4);
    let r = k.eval.rotate(&ct, 5, &back.galois).unwrap();
    let want: Vec<f64> = (0..v.len()).map(|j| v[(j + 5) % v.len()]).collect();
    assert!(max_err(&k.decrypt(&r), &want) < 1e-3);
    let rk = RelinKey::from_bytes(&k.params, &back.relin.as_ref().unwrap().to_bytes()).unwrap();
    let gk = GaloisKeys::from_bytes(&k.params, &back.galois.to_bytes(&k.params)).unwrap();
    assert_eq!(gk, ek.galois);
    let sq = k.eval.mul_relin(&ct, &ct, &rk).unwrap();
    let want: Vec<f64> = v.iter().map(|x| x * x).collect();
    assert!(max_err(&k.decrypt(&k.eval.rescale(&sq).unwrap()), &want) < 1e-2);

    let skb = k.sk.to_bytes();
    assert_eq!(skb.len(), wire::HEADER_LEN + k.params.n() / 4);
    let sk2 = SecretKey::from_bytes(&k.params, &skb).unwrap();
    let m = k.enc.decode(&Decryptor::new(&sk2).decrypt(&ct).unwrap()).unwrap();
    assert!(max_err(&m, &v) < 1e-3);
}

#[test]
fn truncated_extended_and_foreign_inputs_are_errors() {
    let (k, ek, ct) = kit();
    for cut in [0, 3, 10, 39, 40, 45, ct.len() / 2, ct.len() - 1] {
        assert!(Ciphertext::from_bytes(&k.params, &ct[..cut]).is_err(), "cut at {cut}");
    }
    let mut long = ct.clone();
    long.push(0);
    assert_eq!(Ciphertext::from_bytes(&k.params, &long), Err(WireError::Trailing { extra: 1 }));
    let other = Parameters::builder().log_n(12).q_bits(&[36, 30]).p_bits(&[35]).build().unwrap();
    assert!(matches!(Ciphertext::from_bytes(&other, ct), Err(WireError::ForeignParameters { .. })));
    assert!(matches!(EvaluationKeys::from_bytes(&k.params, ct), Err(WireError::WrongKind { .. })));
    let mut bad = ct.clone();
    bad[4] = 9;
    assert!(matches!(Ciphertext::from_bytes(&k.params, &bad), Err(WireError::Version { found: 9, .. })));
    bad = ct.clone();
    bad[0] = b'X';
    assert_eq!(peek_header(&bad), Err(WireError::BadMagic));
    // A level above the chain.
    bad = ct.clone();
    bad[40] = 7;
    assert!(matches!(Ciphertext::from_bytes(&k.params, &bad), Err(WireError::OutOfRange { field: "level", .. })));
    // A NaN scale.
    bad = ct.clone();
    bad[42..50].copy_from_slice(&f64::NAN.to_le_bytes());
    assert!(matches!(Ciphertext::from_bytes(&k.params, &bad), Err(WireError::OutOfRange { field: "scale", .. })));
    // A coefficient at or above its modulus: all ones in the first 36 bits.
    bad = ct.clone();
    for b in &mut bad[51..55] {
        *b = 0xff;
    }
    bad[55] |= 0x0f;
    assert!(matches!(Ciphertext::from_bytes(&k.params, &bad), Err(WireError::Coefficient { .. })));
    // A key count that would need gigabytes is refused before allocation.
    let mut eb = ek.to_bytes();
    let rec = k.params.keyswitch_key_bytes();
    let at = wire::HEADER_LEN + 1 + rec;
    eb[at..at + 4].copy_from_slice(&u32::MAX.to_le_bytes());
    assert!(matches!(EvaluationKeys::from_bytes(&k.params, &eb), Err(WireError::Truncated { .. })));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, .. ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let (k, _, _) = kit();
        let p = &k.params;
        let _ = Ciphertext::from_bytes(p, &bytes);
        let _ = SeededCiphertext::from_bytes(p, &bytes);
        let _ = EvaluationKeys::from_bytes(p, &bytes);
        let _ = PublicKey::from_bytes(p, &bytes);
        let _ = SecretKey::from_bytes(p, &bytes);
        let _ = read_any_ciphertext(p, &bytes);
    }

    #[test]
    fn mutated_ciphertexts_never_panic(pos in 0usize..20_000, val in any::<u8>(), cut in 0usize..20_000) {
        let (k, _, ct) = kit();
        let mut b = ct.clone();
        let pos = pos % b.len();
        b[pos] = val;
        b.truncate(cut.max(pos + 1).min(b.len()));
        let _ = read_any_ciphertext(&k.params, &b);
    }

    #[test]
    fn valid_header_with_random_body_is_an_error_or_well_formed(body in proptest::collection::vec(any::<u8>(), 0..4096), kind in 1u8..8) {
        let (k, _, ct) = kit();
        let mut b = ct[..wire::HEADER_LEN].to_vec();
        b[6] = kind;
        b.extend_from_slice(&body);
        prop_assert!(Ciphertext::from_bytes(&k.params, &b).is_err());
        prop_assert!(EvaluationKeys::from_bytes(&k.params, &b).is_err() || kind == 6);
    }
}
