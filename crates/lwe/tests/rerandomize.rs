//! Re-randomisation under a registered public key: the weight-recovery attack that works on
//! a plain answer and fails on a re-randomised one, correctness within the promised bound,
//! and the refusals (another key's public key, other parameters, bad bytes).

use lwe::{evaluate, evaluate_rerandomized, noise, Answer, LweError, Params, PublicKey, SecretKey};

/// A small deterministic generator for test data (not for keys).
struct Lcg(u64);
impl Lcg {
    fn next(&mut self, range: i64) -> i64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((self.0 >> 33) as i64).rem_euclid(2 * range + 1) - range
    }
}

/// The query's public a_i, as the client that made it knows them: the client keeps the seed.
/// (Re-expanded here with the crate's own public stream: a query with d values and seed σ
/// has a_i = the i-th vector of that stream, which is exactly what the server used.)
fn public_a(q: &lwe::Query) -> Vec<Vec<u64>> {
    let mut rng = ring::sampling::Sampler::from_seed(q.seed);
    let n = q.params.n();
    let mask = q.params.mask();
    (0..q.b.len())
        .map(|_| {
            let mut bytes = vec![0u8; n * 8];
            rng.fill_bytes(&mut bytes);
            bytes.chunks_exact(8).map(|c| u64::from_le_bytes(c.try_into().unwrap()) & mask).collect()
        })
        .collect()
}

/// Inverse of an odd number modulo 2^64 (Newton: each step doubles the correct low bits).
fn inv_odd(x: u64) -> u64 {
    let mut y = x;
    for _ in 0..6 {
        y = y.wrapping_mul(2u64.wrapping_sub(x.wrapping_mul(y)));
    }
    y
}

/// The attack: the answer's a-part is a' = Σ_i v_i·a_i (mod q), n equations in the d unknown
/// integer weights. Gaussian elimination modulo q = 2^53 on the coordinates (odd pivots),
/// then the weights read centered. Returns the weights and whether every one of the n
/// equations holds for them (it does for a genuine Σ v_i·a_i).
fn recover_weights(a: &[Vec<u64>], answer_a: &[u64], log_q: u32) -> (Vec<i64>, bool) {
    let (d, n) = (a.len(), answer_a.len());
    let mask = (1u64 << log_q) - 1;
    // rows: coordinate j → [a_0j … a_(d−1)j | a'_j]
    let mut rows: Vec<Vec<u64>> = (0..n).map(|j| (0..d).map(|i| a[i][j]).chain([answer_a[j]]).collect()).collect();
    for c in 0..d {
        let p = (c..n).find(|&r| rows[r][c] & 1 == 1).expect("an odd pivot among 2048 rows");
        rows.swap(c, p);
        let inv = inv_odd(rows[c][c]);
        for x in rows[c].iter_mut() {
            *x = x.wrapping_mul(inv);
        }
        let pivot = rows[c].clone();
        for (r, row) in rows.iter_mut().enumerate() {
            if r != c && row[c] != 0 {
                let f = row[c];
                for (x, &y) in row.iter_mut().zip(&pivot) {
                    *x = x.wrapping_sub(f.wrapping_mul(y));
                }
            }
        }
    }
    let centered = |x: u64| (((x & mask) << (64 - log_q)) as i64) >> (64 - log_q);
    let v: Vec<i64> = (0..d).map(|c| centered(rows[c][d])).collect();
    let consistent = rows[d..].iter().all(|r| r[d] & mask == 0);
    (v, consistent)
}

#[test]
fn one_plain_answer_reveals_the_weights_and_a_rerandomized_one_does_not() {
    let p = Params::default_128();
    let sk = SecretKey::generate(p);
    let pk = PublicKey::from_bytes(&sk.public_key(p).unwrap().to_bytes()).unwrap().expand();
    let mut r = Lcg(11);
    let d = 30;
    let w = vec![(0..d).map(|_| r.next(1 << 20)).collect::<Vec<i64>>()];
    let b = vec![r.next(1 << 40)];
    let m: Vec<i64> = (0..d).map(|_| r.next(1 << 20)).collect();
    let q = sk.encrypt(p, &m).unwrap();
    let a = public_a(&q);
    // q' = q: no modulus-switch rounding, so the attack is an exact linear solve (with
    // rounding it is a bounded-distance decoding problem in dimension d, easy for LLL)
    let plain = evaluate(p, &q, &w, &b, 53).unwrap();
    let (v, consistent) = recover_weights(&a, &plain.cts[0][..p.n()], 53);
    assert_eq!(v, w[0], "the attack recovers the weights from one plain answer");
    assert!(consistent);

    let hidden = evaluate_rerandomized(p, &q, &w, &b, 53, &pk, 0).unwrap();
    let (v, consistent) = recover_weights(&a, &hidden.cts[0][..p.n()], 53);
    assert!(!consistent, "a re-randomised a-part is not a combination of the query's a_i");
    let right = v.iter().zip(&w[0]).filter(|(x, y)| x == y).count();
    assert!(right <= 2, "the attack found {right} of {d} weights in a re-randomised answer");
    // and the score is still there
    let got = sk.decrypt(&hidden).unwrap()[0] as i128;
    let want = w[0].iter().zip(&m).map(|(&x, &y)| x as i128 * y as i128).sum::<i128>() + b[0] as i128;
    assert!(((got - want) as f64).abs() <= noise::rerandomized_error_bound(&w[0], p.n(), 53, 53, 0));
}

#[test]
fn rerandomized_scores_are_within_the_promised_bound() {
    let p = Params::default_128();
    let sk = SecretKey::generate(p);
    let pk = sk.public_key(p).unwrap().expand();
    let mut r = Lcg(5);
    let (k, d) = (3, 30);
    let w: Vec<Vec<i64>> = (0..k).map(|_| (0..d).map(|_| r.next(1 << 16)).collect()).collect();
    let b: Vec<i64> = (0..k).map(|_| r.next(1 << 40)).collect();
    let mut widest = 0.0f64;
    for trial in 0..24 {
        let m: Vec<i64> = (0..d).map(|_| r.next(1 << 24)).collect();
        let q = sk.encrypt(p, &m).unwrap();
        let (log_out, flood) = [(53, 0), (40, 20), (34, 24), (30, 28)][trial % 4];
        let ans =
            Answer::from_bytes(&evaluate_rerandomized(p, &q, &w, &b, log_out, &pk, flood).unwrap().to_bytes()).unwrap();
        let got = sk.decrypt(&ans).unwrap();
        let scale = 2f64.powi((53 - log_out) as i32);
        for j in 0..k {
            let want = w[j].iter().zip(&m).map(|(&x, &y)| x as i128 * y as i128).sum::<i128>() + b[j] as i128;
            let err = (got[j] as f64 * scale - want as f64).abs();
            let bound = noise::rerandomized_error_bound(&w[j], p.n(), 53, log_out, flood);
            assert!(err <= bound, "trial {trial}, q' = 2^{log_out}, flood 2^{flood}, score {j}: {err} > {bound}");
            if flood == 28 {
                widest = widest.max(err);
            }
        }
    }
    // the flood is really added: a 2^28 flood moves scores by far more than the rest (≲ 2^23 here)
    assert!(widest > 2f64.powi(24), "largest error with a 2^28 flood was only {widest}");
}

#[test]
fn every_answer_is_freshly_rerandomized() {
    let p = Params::default_128();
    let sk = SecretKey::generate(p);
    let pk = sk.public_key(p).unwrap().expand();
    let q = sk.encrypt(p, &[3, 1, 4]).unwrap();
    let w = vec![vec![1, 2, 3], vec![-1, 0, 5]];
    let x = evaluate_rerandomized(p, &q, &w, &[0, 0], 40, &pk, 0).unwrap();
    let y = evaluate_rerandomized(p, &q, &w, &[0, 0], 40, &pk, 0).unwrap();
    assert_ne!(x.cts[0], y.cts[0]);
    // two scores of one answer do not share a mask (each has its own u)
    let plain = evaluate(p, &q, &w, &[0, 0], 40).unwrap();
    let mask = |a: &Answer, j: usize| -> Vec<u64> {
        a.cts[j].iter().zip(&plain.cts[j]).map(|(x, y)| x.wrapping_sub(*y) & ((1 << 40) - 1)).collect()
    };
    assert_ne!(mask(&x, 0), mask(&x, 1));
}

#[test]
fn public_keys_of_another_key_or_other_parameters_or_bad_bytes_are_refused() {
    let p = Params::default_128();
    let sk = SecretKey::generate(p);
    let q = sk.encrypt(p, &[1, 2]).unwrap();
    let w = vec![vec![1, 1]];
    let stranger = SecretKey::generate(p).public_key(p).unwrap();
    let e = evaluate_rerandomized(p, &q, &w, &[0], 40, &stranger.expand(), 0).unwrap_err();
    assert!(matches!(e, LweError::KeyMismatch { .. }), "{e}");

    let other = Params::new(11, 40).unwrap();
    let pk40 = sk.public_key(other).unwrap();
    let e = evaluate_rerandomized(p, &q, &w, &[0], 40, &pk40.clone().expand(), 0).unwrap_err();
    assert!(matches!(e, LweError::ParamsMismatch { what: "public key", found_log_q: 40, .. }), "{e}");
    assert!(e.to_string().contains("parameters of the model"), "{e}");

    let good = sk.public_key(p).unwrap();
    let e = evaluate_rerandomized(p, &q, &w, &[0], 40, &good.clone().expand(), 51).unwrap_err();
    assert!(matches!(e, LweError::Invalid { field: "flooding width", .. }));

    // one secret key, one public key: derived from the seed, not drawn afresh
    assert_eq!(sk.public_key(p).unwrap(), good);
    let again = SecretKey::from_bytes(&sk.to_bytes()).unwrap();
    assert_eq!(again.public_key(p).unwrap(), good);
    let bytes = good.to_bytes();
    assert_eq!(bytes.len(), 14 + 64 + 2048 * 53 / 8, "a public key is 13,646 bytes at n = 2048, q = 2^53");
    assert_eq!(PublicKey::from_bytes(&bytes).unwrap(), good);
    for cut in [0, 3, 13, 77, bytes.len() - 1] {
        assert!(PublicKey::from_bytes(&bytes[..cut]).is_err(), "prefix of {cut} bytes accepted");
    }
    let mut long = bytes.clone();
    long.push(0);
    assert!(matches!(PublicKey::from_bytes(&long), Err(LweError::TrailingBytes { .. })));
    // a count other than n
    let mut short_count = bytes.clone();
    short_count[10..14].copy_from_slice(&1024u32.to_le_bytes());
    let e = PublicKey::from_bytes(&short_count).unwrap_err();
    assert!(e.to_string().contains("model's parameters"), "{e}");
    // a query or the secret-key file is not a public key
    assert!(matches!(PublicKey::from_bytes(&q.to_bytes()), Err(LweError::WrongKind { .. })));
    assert!(PublicKey::from_bytes(&sk.to_bytes()).is_err());
}
