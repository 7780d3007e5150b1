//! Integer networks in layout T: decrypted outputs equal the exact integer computation
//! for every sample of a full batch, the chosen t holds the proven bound, and networks
//! that no t or chain can hold are refused.

use bgv::throughput::{crt_combine, plan, plan_crt, IntLayer, IntLinear, IntNetwork, PlanError};
use bgv::*;

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    /// Uniform in [lo, hi].
    fn range(&mut self, lo: i64, hi: i64) -> i64 {
        lo + (self.next() % (hi - lo + 1) as u64) as i64
    }
    fn linear(&mut self, inputs: usize, outputs: usize, w: i64, b: i64) -> IntLayer {
        IntLayer::Linear(IntLinear {
            inputs,
            weights: (0..inputs * outputs).map(|_| self.range(-w, w)).collect(),
            bias: (0..outputs).map(|_| self.range(-b, b) as i128).collect(),
        })
    }
}

/// 12 → 6 → x² → 4 → x² → 3, 4-bit weights: two squares, as CryptoNets; values near 2^53.
fn two_square_net(rng: &mut Rng) -> IntNetwork {
    let layers = vec![
        rng.linear(12, 6, 7, 50),
        IntLayer::Square,
        rng.linear(6, 4, 7, 1000),
        IntLayer::Square,
        rng.linear(4, 3, 7, 1 << 20),
    ];
    IntNetwork::new(12, layers).unwrap()
}

#[test]
fn a_full_batch_decrypts_to_the_integer_reference_exactly() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let net = two_square_net(&mut rng);
    let (lo, hi) = (-8, 7);
    let (plan, params) = plan(&net, lo, hi, None).unwrap();
    eprintln!("plan: {plan:?}, log Q = {:.0}", params.log_q_at(params.max_level()));
    assert!(params.is_secure() && params.has_batching());
    assert!(plan.t as u128 > 2 * plan.bound, "t must hold ±bound");
    assert!(plan.t < throughput::MAX_PLAN_T);
    let n = params.n();
    // Samples: random, with the corners of the box among them (where bounds are met).
    let samples: Vec<Vec<i64>> = (0..n)
        .map(|s| match s {
            0 => vec![lo; 12],
            1 => vec![hi; 12],
            _ => (0..12).map(|_| rng.range(lo, hi)).collect(),
        })
        .collect();
    let mut kg = KeyGenerator::new(&params);
    let sk = kg.secret_key();
    let pk = kg.public_key(&sk);
    let rk = kg.relin_key(&sk);
    let enc = Encoder::new(&params);
    let mut encryptor = Encryptor::new(&params, &pk).unwrap();
    let x: Vec<Ciphertext> = (0..12)
        .map(|f| {
            let col: Vec<i64> = samples.iter().map(|s| s[f]).collect();
            encryptor.encrypt(&enc.encode(&col, params.max_level()).unwrap()).unwrap()
        })
        .collect();
    let schedule = net.schedule(&params, throughput::fresh_noise_bits(&params)).unwrap();
    eprintln!("schedule: {schedule:?}");
    let eval = Evaluator::new(&params);
    let y = net.evaluate(&eval, &rk, &schedule, x).unwrap();
    assert_eq!(y.len(), 3);
    let dec = Decryptor::new(&params, &sk).unwrap();
    let got: Vec<Vec<i64>> = y.iter().map(|c| enc.decode_signed(&dec.decrypt(c).unwrap()).unwrap()).collect();
    let mut largest = 0u128;
    for (s, sample) in samples.iter().enumerate() {
        let want = net.reference(sample).unwrap();
        for (o, &w) in want.iter().enumerate() {
            largest = largest.max(w.unsigned_abs());
            assert_eq!(got[o][s] as i128, w, "sample {s} output {o}");
        }
    }
    // The values are large (no wrap hides behind small ones) and within the proven bound.
    assert!(largest > 1 << 30 && largest <= plan.bound, "largest {largest}, bound {}", plan.bound);
    for c in &y {
        assert!(dec.measured_noise_budget(c).unwrap() >= c.noise_budget_bits());
    }
}

#[test]
fn the_bound_is_met_by_the_worst_input_and_refused_past_t() {
    // 2 → x → x² on one input: bound (3·hi)² exactly, reached at the box's corner.
    let net = IntNetwork::new(
        2,
        vec![IntLayer::Linear(IntLinear { inputs: 2, weights: vec![2, -1], bias: vec![0] }), IntLayer::Square],
    )
    .unwrap();
    assert_eq!(net.bounds(-10, 10), Some(900));
    assert_eq!(net.reference(&[10, -10]).unwrap(), vec![900]);
    // Square of an interval straddling 0 starts at 0, not at min².
    let sq = IntNetwork::new(1, vec![IntLayer::Square, IntLayer::Square]).unwrap();
    assert_eq!(sq.bounds(-3, 2), Some(81));
    // Values past 2^59: no t below 2^60 holds them.
    let deep = IntNetwork::new(1, vec![IntLayer::Square, IntLayer::Square, IntLayer::Square]).unwrap();
    match plan(&deep, -(1 << 10), 1 << 10, None) {
        Err(e @ PlanError::BoundTooLarge { .. }) => assert!(e.to_string().contains("fewer bits")),
        other => panic!("want BoundTooLarge, got {other:?}"),
    }
}

#[test]
fn a_chain_too_short_is_refused_by_the_schedule() {
    let mut rng = Rng(7);
    let net = two_square_net(&mut rng);
    let params = Parameters::builder().log_n(13).q_bits(&[60, 60]).plaintext_modulus(65537).build().unwrap();
    let err = net.schedule(&params, throughput::fresh_noise_bits(&params)).unwrap_err();
    assert!(matches!(err, Error::NoiseBudgetExhausted { .. }), "{err}");
}

#[test]
fn seeded_encryption_under_a_large_t_decrypts() {
    let t = throughput::plaintext_modulus_for(1 << 56, 1 << 14).unwrap();
    let params = Parameters::builder().log_n(14).q_bits(&[59; 6]).plaintext_modulus(t).build().unwrap();
    let mut kg = KeyGenerator::new(&params);
    let sk = kg.secret_key();
    let pk = kg.public_key(&sk);
    let enc = Encoder::new(&params);
    let vals: Vec<i64> = (0..64).map(|i| i * 3 - 90).collect();
    let pt = enc.encode(&vals, params.max_level()).unwrap();
    let mut dec = Decryptor::new(&params, &sk).unwrap();
    let seeded = dec.encrypt_symmetric(&pt).unwrap();
    let back = SeededCiphertext::from_bytes(&params, &seeded.to_bytes()).unwrap().expand();
    let got = enc.decode_signed(&dec.decrypt(&back).unwrap()).unwrap();
    let public = Encryptor::new(&params, &pk).unwrap().encrypt(&pt).unwrap();
    let got_pk = enc.decode_signed(&dec.decrypt(&public).unwrap()).unwrap();
    assert_eq!(&got_pk[..64], &vals[..], "public-key encryption");
    assert_eq!(&got[..64], &vals[..], "seeded symmetric encryption");
}

/// 12 → 6 → x² → 4 → x² → 3 with 5-bit weights on 4-bit inputs: values near 2^70, past any
/// single t below 2^60 (CryptoNets at 8 bits reaches 2^82 the same way).
fn wide_net(rng: &mut Rng) -> IntNetwork {
    let layers = vec![
        rng.linear(12, 6, 31, 100),
        IntLayer::Square,
        rng.linear(6, 4, 31, 1000),
        IntLayer::Square,
        rng.linear(4, 3, 31, 1 << 20),
    ];
    IntNetwork::new(12, layers).unwrap()
}

#[test]
fn values_past_one_t_are_exact_through_residues_under_one_key() {
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let net = wide_net(&mut rng);
    let (lo, hi) = (-15, 15);
    // One t cannot hold it ...
    assert!(matches!(plan(&net, lo, hi, None), Err(PlanError::BoundTooLarge { .. })));
    // ... several can.
    let (plan, sets) = plan_crt(&net, lo, hi, None).unwrap();
    eprintln!("crt plan: {plan:?}");
    assert!(plan.bound > 1 << 60, "bound {}", plan.bound);
    assert!(plan.ts.len() >= 2 && plan.ts.len() == sets.len());
    let product = plan.ts.iter().fold(1u128, |p, &t| p * t as u128);
    assert!(product > 2 * plan.bound);
    for (p, &t) in sets.iter().zip(&plan.ts) {
        assert!(p.is_secure() && p.has_batching() && p.plaintext_modulus() == t);
        assert!(p.rlwe().same_ring(sets[0].rlwe()));
        assert_eq!(p.same(&sets[0]), t == plan.ts[0], "t is in the fingerprint");
    }
    let n = sets[0].n();
    let samples: Vec<Vec<i64>> = (0..n)
        .map(|s| match s {
            0 => vec![lo; 12],
            1 => vec![hi; 12],
            _ => (0..12).map(|_| rng.range(lo, hi)).collect(),
        })
        .collect();
    // One secret, public and relinearisation key, made under the first residue's set.
    let mut kg = KeyGenerator::new(&sets[0]);
    let sk = kg.secret_key();
    let pk = kg.public_key(&sk);
    let rk = kg.relin_key(&sk);
    let mut residues: Vec<Vec<Vec<i64>>> = Vec::new(); // [residue][output][sample]
    for p in &sets {
        let (sk, pk, rk) = (sk.under(p.rlwe()).unwrap(), pk.under(p.rlwe()).unwrap(), rk.under(p.rlwe()).unwrap());
        let enc = Encoder::new(p);
        let mut encryptor = Encryptor::new(p, &pk).unwrap();
        let x: Vec<Ciphertext> = (0..12)
            .map(|f| {
                let col: Vec<i64> = samples.iter().map(|s| s[f]).collect();
                encryptor.encrypt(&enc.encode(&col, p.max_level()).unwrap()).unwrap()
            })
            .collect();
        let schedule = net.schedule(p, throughput::fresh_noise_bits(p)).unwrap();
        let y = net.evaluate(&Evaluator::new(p), &rk, &schedule, x).unwrap();
        let dec = Decryptor::new(p, &sk).unwrap();
        residues.push(y.iter().map(|c| enc.decode_signed(&dec.decrypt(c).unwrap()).unwrap()).collect());
    }
    let mut largest = 0u128;
    for (s, sample) in samples.iter().enumerate() {
        let want = net.reference(sample).unwrap();
        for (o, &w) in want.iter().enumerate() {
            let r: Vec<i64> = residues.iter().map(|res| res[o][s]).collect();
            assert_eq!(crt_combine(&r, &plan.ts), Some(w), "sample {s} output {o}");
            largest = largest.max(w.unsigned_abs());
        }
    }
    // Past 2^59 (no t below 2^60 holds it centered), so a wrong residue or a wrong recombination would show.
    assert!(largest > 1 << 59 && largest <= plan.bound, "largest {largest}, bound {}", plan.bound);
    // A key of another ring is refused, not silently reinterpreted.
    let other = Parameters::builder().log_n(13).q_bits(&[50, 50]).plaintext_modulus(65537).build().unwrap();
    assert!(rk.under(other.rlwe()).is_err() && sk.under(other.rlwe()).is_err());
}

#[test]
fn crt_combine_is_exact_and_refuses_bad_moduli() {
    let ts = [1_099_511_922_689u64, 1_099_512_004_609, 1_099_512_266_753];
    assert!(ts.iter().all(|&t| ring::arith::is_prime(t)), "test moduli must be primes");
    let product = ts.iter().fold(1i128, |p, &t| p * t as i128);
    let mut rng = Rng(99);
    for i in 0..1000 {
        let x: i128 = match i {
            0 => 0,
            1 => product / 2,
            2 => -(product / 2) + 1,
            _ => ((rng.next() as i128) << 60 ^ rng.next() as i128) % (product / 2),
        };
        // Centered and non-negative residues both recombine to x.
        let centered: Vec<i64> = ts
            .iter()
            .map(|&t| {
                let r = x.rem_euclid(t as i128) as i64;
                if r > (t / 2) as i64 {
                    r - t as i64
                } else {
                    r
                }
            })
            .collect();
        let plain: Vec<i64> = ts.iter().map(|&t| x.rem_euclid(t as i128) as i64).collect();
        assert_eq!(crt_combine(&centered, &ts), Some(x), "{x}");
        assert_eq!(crt_combine(&plain, &ts), Some(x), "{x}");
    }
    assert_eq!(crt_combine(&[1, 2], &[ts[0], ts[0]]), None, "repeated modulus");
    assert_eq!(crt_combine(&[1, 2], &[ts[0], 1 << 40]), None, "not a prime");
    assert_eq!(crt_combine(&[1], &ts), None, "lengths differ");
}
