//! Seeded LWE end to end: encryption, the key-free evaluator, the modulus switch, the
//! error bound, and the refusals (insecure or foreign parameters, another key, bad bytes).

use lwe::{evaluate, noise, Answer, LweError, Params, Query, SecretKey};

/// A small deterministic generator for test data (not for keys).
struct Lcg(u64);
impl Lcg {
    fn next(&mut self, range: i64) -> i64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((self.0 >> 33) as i64).rem_euclid(2 * range + 1) - range
    }
}

fn model(k: usize, d: usize, wmax: i64, seed: u64) -> (Vec<Vec<i64>>, Vec<i64>) {
    let mut r = Lcg(seed);
    let w = (0..k).map(|_| (0..d).map(|_| r.next(wmax)).collect()).collect();
    let b = (0..k).map(|_| r.next(1 << 40)).collect();
    (w, b)
}

fn exact(w: &[Vec<i64>], b: &[i64], m: &[i64]) -> Vec<i128> {
    w.iter()
        .zip(b)
        .map(|(r, &b)| r.iter().zip(m).map(|(&w, &x)| w as i128 * x as i128).sum::<i128>() + b as i128)
        .collect()
}

#[test]
fn decryption_is_within_the_bound_at_every_answer_modulus() {
    let p = Params::default_128();
    let sk = SecretKey::generate(p);
    let (w, b) = model(3, 30, 1 << 20, 1);
    let mut r = Lcg(7);
    for trial in 0..4 {
        let m: Vec<i64> = (0..30).map(|_| r.next(1 << 24)).collect();
        let q = Query::from_bytes(&sk.encrypt(p, &m).unwrap().to_bytes()).unwrap();
        let want = exact(&w, &b, &m);
        for log_out in [53u32, 40, 32, 24] {
            let a = evaluate(p, &q, &w, &b, log_out).unwrap();
            let a = Answer::from_bytes(&a.to_bytes()).unwrap();
            let got = sk.decrypt(&a).unwrap();
            let scale = 2f64.powi((53 - log_out) as i32);
            for (j, (&g, &e)) in got.iter().zip(&want).enumerate() {
                let err = (g as f64 * scale - e as f64).abs();
                let bound = noise::score_error_bound(&w[j], p.n(), 53, log_out);
                assert!(err <= bound, "trial {trial}, q' = 2^{log_out}, score {j}: error {err} > bound {bound}");
                // the switch's rounding is real: far from exact at small q', exact-ish at q
                if log_out == 53 {
                    assert!(err <= noise::FRESH_BOUND * w[j].iter().map(|x| x.unsigned_abs() as f64).sum::<f64>());
                }
            }
        }
    }
}

#[test]
fn answer_modulus_is_the_smallest_that_keeps_the_bound() {
    let (w, _) = model(1, 30, 1 << 10, 3);
    let l = noise::answer_log_q(&w, 2048, 53, 1e12).unwrap();
    assert!(noise::score_error_bound(&w[0], 2048, 53, l) <= 1e12);
    assert!(noise::score_error_bound(&w[0], 2048, 53, l - 1) > 1e12);
    assert_eq!(noise::answer_log_q(&w, 2048, 53, 1.0), None);
}

#[test]
fn answer_bytes_shrink_with_the_modulus() {
    let p = Params::default_128();
    let sk = SecretKey::generate(p);
    let q = sk.encrypt(p, &[1; 30]).unwrap();
    assert_eq!(q.to_bytes().len(), 14 + 64 + (30 * 53usize).div_ceil(8));
    let (w, b) = model(1, 30, 100, 5);
    let a32 = evaluate(p, &q, &w, &b, 32).unwrap().to_bytes().len();
    let a53 = evaluate(p, &q, &w, &b, 53).unwrap().to_bytes().len();
    assert_eq!(a32, 14 + 32 + 2049 * 4);
    assert!(a32 < a53);
}

#[test]
fn insecure_parameters_are_refused() {
    assert!(matches!(Params::new(11, 54), Err(LweError::Insecure { .. })));
    assert!(matches!(Params::new(10, 26), Err(LweError::Insecure { .. })));
    assert!(Params::new(11, 53).is_ok());
    // a query claiming n = 1024 is refused by the reader
    let p = Params::default_128();
    let mut q = SecretKey::generate(p).encrypt(p, &[5; 4]).unwrap().to_bytes();
    q[7] = 10;
    assert!(matches!(Query::from_bytes(&q), Err(LweError::Insecure { log_n: 10, .. })));
}

#[test]
fn other_parameters_and_other_keys_are_refused() {
    let p = Params::default_128();
    let sk = SecretKey::generate(p);
    let (w, b) = model(1, 4, 100, 9);
    let other = Params::new(11, 40).unwrap();
    let q = sk.encrypt(other, &[1, 2, 3, 4]).unwrap();
    assert!(matches!(evaluate(p, &q, &w, &b, 32), Err(LweError::ParamsMismatch { found_log_q: 40, .. })));
    let q = sk.encrypt(p, &[1, 2, 3]).unwrap();
    assert!(matches!(evaluate(p, &q, &w, &b, 32), Err(LweError::Dimension { expected: 4, found: 3 })));
    let q = sk.encrypt(p, &[1, 2, 3, 4]).unwrap();
    let a = evaluate(p, &q, &w, &b, 32).unwrap();
    let stranger = SecretKey::generate(p);
    assert!(matches!(stranger.decrypt(&a), Err(LweError::KeyMismatch { .. })));
    assert_ne!(stranger.key_id(), sk.key_id());
}

#[test]
fn secret_key_round_trips_and_bad_key_files_are_refused() {
    let p = Params::default_128();
    let sk = SecretKey::generate(p);
    let bytes = sk.to_bytes();
    let again = SecretKey::from_bytes(&bytes).unwrap();
    assert_eq!(again.key_id(), sk.key_id());
    let q = sk.encrypt(p, &[42, -7]).unwrap();
    let a = evaluate(p, &q, &[vec![1, 0], vec![0, 1]], &[0, 0], 53).unwrap();
    let got = again.decrypt(&a).unwrap();
    assert!((got[0] - 42).abs() <= 20 && (got[1] + 7).abs() <= 20, "{got:?}");
    assert!(SecretKey::from_bytes(&bytes[..bytes.len() - 1]).is_err());
    assert!(SecretKey::from_bytes(b"HEPA").is_err());
}

#[test]
fn truncated_or_padded_bytes_are_errors_not_panics() {
    let p = Params::default_128();
    let sk = SecretKey::generate(p);
    let q = sk.encrypt(p, &[1; 7]).unwrap().to_bytes();
    for cut in 0..q.len() {
        assert!(Query::from_bytes(&q[..cut]).is_err(), "prefix of {cut} bytes accepted");
    }
    let mut long = q.clone();
    long.push(0);
    assert!(matches!(Query::from_bytes(&long), Err(LweError::TrailingBytes { count: 1, .. })));
    // a count of 2^20 values announced in a short buffer: refused before allocating
    let mut huge = q.clone();
    huge[10..14].copy_from_slice(&(1u32 << 20).to_le_bytes());
    assert!(matches!(Query::from_bytes(&huge), Err(LweError::Truncated { .. })));
    // nonzero padding bits (7 × 53 = 371 bits: 5 spare bits in the last byte)
    let mut pad = q.clone();
    *pad.last_mut().unwrap() |= 0x80;
    assert!(Query::from_bytes(&pad).is_err());
    // an answer read as a query
    let (w, b) = model(1, 7, 10, 2);
    let a = evaluate(p, &Query::from_bytes(&q).unwrap(), &w, &b, 32).unwrap().to_bytes();
    assert!(matches!(Query::from_bytes(&a), Err(LweError::WrongKind { .. })));
    for cut in [0, 13, 45, a.len() - 1] {
        assert!(Answer::from_bytes(&a[..cut]).is_err());
    }
}
