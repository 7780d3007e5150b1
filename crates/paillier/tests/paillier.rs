//! The paillier crate against exact integer arithmetic, an independent implementation
//! (fast-paillier) and hostile bytes.

use paillier::{
    Ciphertext, Evaluator, FixedPoint, Integer, KeyId, LinearModel, PaillierError, PublicKey, Rerandomize, SecretKey,
};
use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;
use std::sync::OnceLock;

fn hex(s: &str) -> Vec<u8> {
    let s = s.trim();
    (0..s.len() / 2).map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap()).collect()
}

fn key_a() -> &'static SecretKey {
    static K: OnceLock<SecretKey> = OnceLock::new();
    K.get_or_init(|| SecretKey::from_bytes(&hex(include_str!("fixtures/test-only-secret-key-3072-a.hex"))).unwrap())
}

fn key_b() -> &'static SecretKey {
    static K: OnceLock<SecretKey> = OnceLock::new();
    K.get_or_init(|| SecretKey::from_bytes(&hex(include_str!("fixtures/test-only-secret-key-3072-b.hex"))).unwrap())
}

fn rng(seed: u64) -> ChaCha20Rng {
    ChaCha20Rng::seed_from_u64(seed)
}

#[test]
fn encrypt_decrypt_round_trips_signed_values() {
    let sk = key_a();
    let mut r = rng(1);
    let big: Integer = (Integer::from(1) << 3000) - 12345;
    let values = [
        Integer::from(0),
        Integer::from(1),
        Integer::from(-1),
        Integer::from(i64::MIN),
        Integer::from(u64::MAX) << 40,
        -big.clone(),
        big,
    ];
    for m in &values {
        let c = sk.encrypt(m, &mut r).unwrap();
        assert_eq!(&sk.decrypt(&c).unwrap(), m);
        if m.significant_bits() < 1500 {
            assert_eq!(&sk.decrypt_bounded(&c, 1500).unwrap(), m);
        }
    }
    // Two encryptions of one value differ (fresh randomness) and both decrypt.
    let c1 = sk.encrypt(&Integer::from(42), &mut r).unwrap();
    let c2 = sk.encrypt(&Integer::from(42), &mut r).unwrap();
    assert_ne!(c1, c2);
    // |m| ≥ n/4 is refused rather than wrapped.
    let too_big = Integer::from(1) << 3071;
    assert!(matches!(sk.encrypt(&too_big, &mut r), Err(PaillierError::PlaintextRange { .. })));
    assert!(matches!(sk.decrypt_bounded(&c1, 1535), Err(PaillierError::PlaintextRange { .. })));
}

fn to_fp(x: &Integer) -> fast_paillier::backend::Integer {
    let (bytes, neg) = (x.clone().abs().to_digits::<u8>(rug::integer::Order::Msf), *x < 0);
    let v = fast_paillier::backend::Integer::from_bytes_msf(&bytes);
    if neg {
        -v
    } else {
        v
    }
}

#[test]
fn interoperates_with_fast_paillier() {
    // Same primes, independent code: each side decrypts the other's ciphertexts.
    let sk = key_a();
    let bytes = sk.to_bytes();
    let len = (bytes.len() - 12) / 2;
    let p = Integer::from_digits(&bytes[12..12 + len], rug::integer::Order::Lsf);
    let q = Integer::from_digits(&bytes[12 + len..], rug::integer::Order::Lsf);
    let theirs = fast_paillier::DecryptionKey::from_primes(to_fp(&p), to_fp(&q)).unwrap();
    let mut r = rng(2);
    let pk = sk.public_key();
    for m in [Integer::from(-987654321i64), Integer::from(5) << 200, Integer::from(0)] {
        let ours = sk.encrypt(&m, &mut r).unwrap();
        let wire = pk.write_ciphertexts(&[ours]);
        let c = Integer::from_digits(&wire[44..], rug::integer::Order::Lsf);
        assert_eq!(theirs.decrypt(&to_fp(&c)).unwrap(), to_fp(&m));
        let (their_c, _) = theirs.encryption_key().encrypt_with_random(&mut r, &to_fp(&m)).unwrap();
        let mut wire = wire[..44].to_vec();
        let mut digits = their_c.to_bytes_msf();
        digits.reverse();
        digits.resize(pk.ciphertext_len(), 0);
        wire.extend_from_slice(&digits);
        let back = pk.read_ciphertexts(&wire).unwrap();
        assert_eq!(sk.decrypt(&back[0]).unwrap(), m);
    }
}

/// Breast-cancer-like data: 30 features of very different scales (radius ~14, area ~650,
/// smoothness ~0.1), a 2-row model with the scaler folded in (weights from 1e-3 to 1e3).
fn data(seed: u64) -> (Vec<Vec<f64>>, Vec<Vec<f64>>, Vec<f64>) {
    let mut r = rng(seed);
    let mut u = move || (r.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
    let scales: Vec<f64> = (0..30).map(|j| [14.0, 650.0, 0.1, 0.02, 1.0][j % 5]).collect();
    let xs = (0..4).map(|_| scales.iter().map(|s| s * (0.5 + u())).collect()).collect();
    let w = (0..2).map(|_| scales.iter().map(|s| (u() - 0.5) * 4.0 / s).collect()).collect();
    let b = vec![(u() - 0.5) * 20.0, -3.25];
    (xs, w, b)
}

#[test]
fn linear_model_is_exact_against_the_integer_computation_in_every_mode() {
    let sk = key_a();
    let pk = sk.public_key().clone();
    let (xs, w, b) = data(3);
    let input = FixedPoint::new(24).unwrap();
    let weight = FixedPoint::new(32).unwrap();
    let model = LinearModel::quantize(&w, &b, input, weight).unwrap();
    assert!(model.row(0).iter().any(|&v| v < 0) && model.row(0).iter().any(|&v| v > 0));
    let mut r = rng(4);
    for mode in [Rerandomize::FixedBase, Rerandomize::Fresh, Rerandomize::Off] {
        let ev = Evaluator::new(pk.clone(), mode, &mut r);
        for x in &xs {
            let enc: Vec<Integer> = x.iter().map(|&v| input.encode(v).unwrap()).collect();
            let cts: Vec<Ciphertext> = enc.iter().map(|m| sk.encrypt(m, &mut r).unwrap()).collect();
            // through the wire both ways, as a server would see them
            let cts = pk.read_ciphertexts(&pk.write_ciphertexts(&cts)).unwrap();
            let out = pk.read_ciphertexts(&pk.write_ciphertexts(&ev.evaluate(&model, &cts, &mut r).unwrap())).unwrap();
            let want = model.evaluate_plain(&enc).unwrap();
            let bound = model.score_bound_bits(input.frac_bits() + 12);
            for (i, c) in out.iter().enumerate() {
                assert_eq!(sk.decrypt(c).unwrap(), want[i], "{mode:?} row {i}");
                assert_eq!(sk.decrypt_bounded(c, bound).unwrap(), want[i]);
                // and the decoded score is the real one up to the stated precision
                let real: f64 = w[i].iter().zip(x).map(|(a, b)| a * b).sum::<f64>() + b[i];
                let got = model.score_encoding().decode(&want[i]);
                let tol = x.iter().sum::<f64>() * weight.precision()
                    + w[i].iter().map(|v| v.abs()).sum::<f64>() * input.precision();
                assert!((got - real).abs() <= tol, "{got} vs {real} (tolerance {tol})");
            }
        }
    }
}

#[test]
fn answers_are_rerandomized() {
    // Same inputs twice: answers differ unless re-randomization is off.
    let sk = key_a();
    let pk = sk.public_key().clone();
    let f = FixedPoint::new(8).unwrap();
    let model = LinearModel::quantize(&[vec![1.5, -2.0]], &[0.5], f, f).unwrap();
    let mut r = rng(5);
    let cts: Vec<Ciphertext> =
        [3.0, -1.0].iter().map(|&v| sk.encrypt(&f.encode(v).unwrap(), &mut r).unwrap()).collect();
    for (mode, differ) in [(Rerandomize::FixedBase, true), (Rerandomize::Fresh, true), (Rerandomize::Off, false)] {
        let ev = Evaluator::new(pk.clone(), mode, &mut r);
        let a = ev.evaluate(&model, &cts, &mut r).unwrap();
        let b = ev.evaluate(&model, &cts, &mut r).unwrap();
        assert_eq!(a != b, differ, "{mode:?}");
        let score = sk.decrypt(&a[0]).unwrap();
        // 1.5·3 + (−2)·(−1) + 0.5 = 7, at 16 fractional bits
        assert_eq!(score, Integer::from(7 << 16));
        assert_eq!(model.score_encoding().decode(&score), 7.0);
    }
}

fn batch_with(pk: &PublicKey, c: &Integer) -> Vec<u8> {
    let mut wire = pk.write_ciphertexts(&[]);
    wire[40..44].copy_from_slice(&1u32.to_le_bytes());
    let mut digits = c.to_digits::<u8>(rug::integer::Order::Lsf);
    digits.resize(pk.ciphertext_len(), 0);
    wire.extend_from_slice(&digits);
    wire
}

#[test]
fn out_of_range_and_non_invertible_ciphertexts_are_rejected() {
    let sk = key_a();
    let pk = sk.public_key();
    let bytes = sk.to_bytes();
    let len = (bytes.len() - 12) / 2;
    let p = Integer::from_digits(&bytes[12..12 + len], rug::integer::Order::Lsf);
    let n = Integer::from_digits(&pk.to_bytes()[12..], rug::integer::Order::Lsf);
    let nn = Integer::from(n.square_ref());
    for c in [nn.clone(), Integer::from(&nn + 1), (Integer::from(1) << (8 * pk.ciphertext_len() as u32)) - 1] {
        assert!(matches!(
            pk.read_ciphertexts(&batch_with(pk, &c)),
            Err(PaillierError::CiphertextOutOfRange { index: 0 })
        ));
    }
    for c in [Integer::from(0), n.clone(), p.clone(), Integer::from(&p * 7u32)] {
        let e = pk.read_ciphertexts(&batch_with(pk, &c));
        assert!(matches!(e, Err(PaillierError::CiphertextNotInvertible { index: 0 })), "{e:?}");
    }
    // the last value below n² that is a unit is accepted
    let ok = Integer::from(&nn - 1);
    assert_eq!(pk.read_ciphertexts(&batch_with(pk, &ok)).unwrap().len(), 1);
}

#[test]
fn truncated_corrupt_and_foreign_bytes_are_rejected() {
    let sk = key_a();
    let pk = sk.public_key();
    let mut r = rng(6);
    let pkb = pk.to_bytes();
    assert_eq!(PublicKey::from_bytes(&pkb).unwrap(), *pk);
    let cts: Vec<Ciphertext> = (0..3).map(|i| sk.encrypt(&Integer::from(i), &mut r).unwrap()).collect();
    let ctb = pk.write_ciphertexts(&cts);
    assert_eq!(ctb.len(), 44 + 3 * 768);
    for cut in 0..pkb.len() {
        assert!(PublicKey::from_bytes(&pkb[..cut]).is_err(), "public key cut at {cut}");
    }
    for cut in (0..ctb.len()).step_by(7) {
        assert!(pk.read_ciphertexts(&ctb[..cut]).is_err(), "batch cut at {cut}");
    }
    let mut longer = ctb.clone();
    longer.push(0);
    assert!(matches!(pk.read_ciphertexts(&longer), Err(PaillierError::TrailingBytes { count: 1, .. })));
    // header fields
    for (at, val) in [(0usize, b'X'), (4, 2), (6, 7), (7, 1)] {
        let mut b = pkb.clone();
        b[at] = val;
        assert!(PublicKey::from_bytes(&b).is_err(), "byte {at}");
    }
    assert!(matches!(PublicKey::from_bytes(&ctb), Err(PaillierError::WrongKind { .. })));
    assert!(matches!(pk.read_ciphertexts(&pkb), Err(PaillierError::WrongKind { .. })));
    // a count that promises more than is there is refused before allocating
    let mut huge = ctb.clone();
    huge[40..44].copy_from_slice(&u32::MAX.to_le_bytes());
    assert!(matches!(pk.read_ciphertexts(&huge), Err(PaillierError::Truncated { .. })));
    // a modulus whose length field disagrees with its bits
    let mut b = pkb.clone();
    let last = b.len() - 1;
    b[last] = 0;
    assert!(PublicKey::from_bytes(&b).is_err());
    // an even modulus
    let mut b = pkb.clone();
    b[12] &= 0xfe;
    assert!(matches!(PublicKey::from_bytes(&b), Err(PaillierError::InvalidKey(_))));
    // ciphertexts of another key
    let other = key_b().public_key();
    assert!(matches!(other.read_ciphertexts(&ctb), Err(PaillierError::KeyMismatch { .. })));
    // secret key bytes: cut or corrupted primes are refused
    let skb = sk.to_bytes();
    assert!(SecretKey::from_bytes(&skb[..skb.len() - 1]).is_err());
    let mut bad = skb.to_vec();
    bad[20] ^= 1;
    assert!(matches!(SecretKey::from_bytes(&bad), Err(PaillierError::InvalidKey(_))));
    assert_eq!(SecretKey::from_bytes(&skb).unwrap().public_key(), pk);
}

#[test]
fn keys_under_3072_bits_are_refused() {
    let mut r = rng(7);
    assert!(matches!(
        SecretKey::generate_with(&mut r, 2048),
        Err(PaillierError::ModulusSize { bits: 2048, min: 3072, .. })
    ));
    let small = SecretKey::generate_insecure(&mut r, 1024).unwrap();
    assert_eq!(small.public_key().modulus_bits(), 1024);
    // it works (tests only) ...
    let c = small.encrypt(&Integer::from(-77), &mut r).unwrap();
    assert_eq!(small.decrypt(&c).unwrap(), -77);
    // ... but no reader takes it
    let e = PublicKey::from_bytes(&small.public_key().to_bytes());
    assert!(matches!(e, Err(PaillierError::ModulusSize { bits: 1024, .. })), "{e:?}");
    assert!(matches!(SecretKey::from_bytes(&small.to_bytes()), Err(PaillierError::ModulusSize { bits: 1024, .. })));
    let msg = e.unwrap_err().to_string();
    assert!(msg.contains("3072"), "{msg}");
}

#[test]
fn a_wrong_key_does_not_decrypt() {
    let (a, b) = (key_a(), key_b());
    let mut r = rng(8);
    let m = Integer::from(123456789);
    let c = a.encrypt(&m, &mut r).unwrap();
    match b.decrypt(&c) {
        Ok(v) => assert_ne!(v, m),
        Err(e) => assert!(matches!(
            e,
            PaillierError::CiphertextOutOfRange { .. } | PaillierError::CiphertextNotInvertible { .. }
        )),
    }
    if let Ok(v) = b.decrypt_bounded(&c, 200) {
        assert_ne!(v, m);
    }
}

#[test]
fn key_ids_follow_the_project_convention() {
    let pk = key_a().public_key();
    let id = pk.key_id();
    let s = id.to_string();
    assert_eq!(s.len(), 64);
    assert!(s.bytes().all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c)));
    use sha2::Digest;
    assert_eq!(id.0, <[u8; 32]>::from(sha2::Sha256::digest(pk.to_bytes())));
    assert_eq!(KeyId::parse(&s).unwrap(), id);
    assert_eq!(KeyId::parse(&s.to_uppercase()).unwrap(), id);
    for bad in [&s[1..], &format!("+{}", &s[1..]), &format!(" {}", &s[1..]), &format!("0x{}", &s[2..])] {
        assert!(KeyId::parse(bad).is_err(), "{bad}");
    }
    assert_ne!(key_b().public_key().key_id(), id);
}

#[test]
fn fixed_point_encodes_negative_values_and_states_its_precision() {
    let f = FixedPoint::new(20).unwrap();
    assert_eq!(f.precision(), 1.0 / (1 << 20) as f64);
    assert_eq!(f.encode(-1.5).unwrap(), -(3 << 19));
    assert_eq!(f.encode(0.0).unwrap(), 0);
    assert_eq!(f.decode(&f.encode(-2.75).unwrap()), -2.75);
    let x = -0.123456789;
    assert!((f.decode(&f.encode(x).unwrap()) - x).abs() <= f.precision() / 2.0);
    for bad in [f64::NAN, f64::INFINITY, 1e40] {
        assert!(matches!(f.encode(bad), Err(PaillierError::Encoding { .. })));
    }
    assert!(FixedPoint::new(129).is_err());
    let f100 = FixedPoint::new(100).unwrap();
    assert!(matches!(LinearModel::quantize(&[vec![0.0]], &[0.0], f100, f100), Err(PaillierError::Invalid { .. })));
    assert!(matches!(FixedPoint::new(62).unwrap().encode_i64(4.0), Err(PaillierError::Encoding { .. })));
    // model shape errors
    let err = LinearModel::quantize(&[vec![1.0, 2.0], vec![1.0]], &[0.0, 0.0], f, f);
    assert!(matches!(err, Err(PaillierError::Invalid { .. })));
    let m = LinearModel::quantize(&[vec![1.0, 2.0]], &[0.0], f, f).unwrap();
    assert!(matches!(m.evaluate_plain(&[Integer::from(1)]), Err(PaillierError::Dimension { expected: 2, found: 1 })));
}

#[test]
fn precomputed_rerandomizers_are_used_once_and_answers_stay_exact() {
    let sk = key_a();
    let pk = sk.public_key().clone();
    let f = FixedPoint::new(16).unwrap();
    let model = LinearModel::quantize(&[vec![-0.5, 2.25, 0.0, -3.0]], &[-1.0], f, f).unwrap();
    let mut r = rng(9);
    let xs = [1.0, -2.0, 7.0, 0.25];
    let enc: Vec<Integer> = xs.iter().map(|&v| f.encode(v).unwrap()).collect();
    let cts: Vec<Ciphertext> = enc.iter().map(|m| sk.encrypt(m, &mut r).unwrap()).collect();
    let ev = Evaluator::new(pk.clone(), Rerandomize::FixedBase, &mut r);
    ev.precompute(2, &mut r);
    assert_eq!(ev.precomputed(), 2);
    let want = model.evaluate_plain(&enc).unwrap();
    let mut seen = Vec::new();
    for left in [1, 0, 0] {
        let a = ev.evaluate(&model, &cts, &mut r).unwrap();
        assert_eq!(ev.precomputed(), left);
        assert_eq!(sk.decrypt(&a[0]).unwrap(), want[0]);
        assert!(!seen.contains(&a[0]), "a re-randomizer was used twice");
        seen.push(a[0].clone());
    }
    // -0.5·1 + 2.25·(−2) − 3·0.25 − 1 = −6.75
    assert_eq!(model.score_encoding().decode(&want[0]), -6.75);
    let off = Evaluator::new(pk, Rerandomize::Off, &mut r);
    off.precompute(3, &mut r);
    assert_eq!(off.precomputed(), 0);
}

#[test]
fn random_corruptions_never_panic_and_never_pass_unnoticed() {
    let sk = key_a();
    let pk = sk.public_key();
    let mut r = rng(10);
    let pkb = pk.to_bytes();
    let cts: Vec<Ciphertext> = (0..2).map(|i| sk.encrypt(&Integer::from(i - 1), &mut r).unwrap()).collect();
    let ctb = pk.write_ciphertexts(&cts);
    for _ in 0..300 {
        let mut b = pkb.clone();
        let at = (r.next_u32() as usize) % b.len();
        let flip = 1u8 << (r.next_u32() % 8);
        b[at] ^= flip;
        // a corrupted key either fails to read or is another key (another id)
        if let Ok(k) = PublicKey::from_bytes(&b) {
            assert_ne!(k.key_id(), pk.key_id());
        }
        let mut c = ctb.clone();
        let at = (r.next_u32() as usize) % c.len();
        c[at] ^= flip;
        // a corrupted batch fails, or (a flipped ciphertext bit) decrypts to something else
        if let Ok(v) = pk.read_ciphertexts(&c) {
            let got: Vec<Integer> = v.iter().map(|x| sk.decrypt(x).unwrap()).collect();
            assert_ne!(got, vec![Integer::from(-1), Integer::from(0)], "flip at {at} went unnoticed");
        }
    }
}
