//! BGV end to end: every operation against the exact integer computation modulo t, the
//! slot permutations of rotations, the noise estimate against the measured noise, and
//! refusal past the budget.

use bgv::*;

const T: u64 = 65537;

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn vec(&mut self, n: usize, t: u64) -> Vec<i64> {
        (0..n).map(|_| (self.next() % t) as i64).collect()
    }
}

struct Setup {
    params: Parameters,
    sk: SecretKey,
    pk: PublicKey,
    rk: RelinKey,
    gk: GaloisKeys,
}

/// N = 2^13, t = 65537, a 130-bit chain: secure, and deep enough for two products.
fn setup() -> Setup {
    let params = Parameters::builder().log_n(13).q_bits(&[50, 40, 40]).plaintext_modulus(T).build().unwrap();
    assert!(params.is_secure() && params.has_batching());
    let mut kg = KeyGenerator::new(&params);
    let sk = kg.secret_key();
    let pk = kg.public_key(&sk);
    let rk = kg.relin_key(&sk);
    let gk = kg.galois_keys(&sk, &[1, -3, 5, 2, 4], true);
    Setup { params, sk, pk, rk, gk }
}

fn modt(v: i128) -> u64 {
    v.rem_euclid(T as i128) as u64
}

/// Decrypts, checks the slots and that the estimated budget never exceeds the measured one.
fn check(s: &Setup, ct: &Ciphertext, want: &[u64], what: &str) {
    let enc = Encoder::new(&s.params);
    let dec = Decryptor::new(&s.params, &s.sk).unwrap();
    let got = enc.decode(&dec.decrypt(ct).unwrap()).unwrap();
    assert!(got == want, "{what}: slots differ (first: got {:?}, want {:?})", &got[..4], &want[..4]);
    let measured = dec.measured_noise_budget(ct).unwrap();
    let estimated = ct.noise_budget_bits();
    eprintln!("{what:28} level {} estimated {estimated:6.1} measured {measured:6.1}", ct.level());
    assert!(estimated <= measured, "{what}: estimated budget {estimated:.1} above the measured {measured:.1}");
    assert!(estimated >= 1.0, "{what}: an admitted result has less than a bit of budget ({estimated:.1})");
    // The estimate is an upper bound, not a wild one: within ~40 bits of the truth.
    assert!(measured - estimated < 40.0, "{what}: estimate {estimated:.1} far below measured {measured:.1}");
}

#[test]
fn every_operation_equals_the_integer_computation_mod_t() {
    let s = setup();
    let n = s.params.n();
    let top = s.params.max_level();
    let enc = Encoder::new(&s.params);
    let eval = Evaluator::new(&s.params);
    let mut encryptor = Encryptor::new(&s.params, &s.pk).unwrap();
    let mut rng = Rng(0x1234_5678_9abc_def1);
    let (a, b, c) = (rng.vec(n, T), rng.vec(n, T), rng.vec(n, T));
    let ca = encryptor.encrypt(&enc.encode(&a, top).unwrap()).unwrap();
    let cb = encryptor.encrypt(&enc.encode(&b, top).unwrap()).unwrap();
    let pc = enc.encode(&c, top).unwrap();
    let z = |f: &dyn Fn(usize) -> i128| -> Vec<u64> { (0..n).map(|i| modt(f(i))).collect() };
    let (ai, bi, ci) = (|i: usize| a[i] as i128, |i: usize| b[i] as i128, |i: usize| c[i] as i128);

    check(&s, &ca, &z(&|i| ai(i)), "fresh");
    check(&s, &eval.add(&ca, &cb).unwrap(), &z(&|i| ai(i) + bi(i)), "add");
    check(&s, &eval.sub(&ca, &cb).unwrap(), &z(&|i| ai(i) - bi(i)), "sub");
    check(&s, &eval.neg(&ca).unwrap(), &z(&|i| -ai(i)), "neg");
    check(&s, &eval.add_plain(&ca, &pc).unwrap(), &z(&|i| ai(i) + ci(i)), "add_plain");
    check(&s, &eval.sub_plain(&ca, &pc).unwrap(), &z(&|i| ai(i) - ci(i)), "sub_plain");
    check(&s, &eval.mul_plain(&ca, &pc).unwrap(), &z(&|i| ai(i) * ci(i)), "mul_plain");
    check(&s, &eval.add_scalar(&ca, -7).unwrap(), &z(&|i| ai(i) - 7), "add_scalar");
    check(&s, &eval.mul_scalar(&ca, 12345).unwrap(), &z(&|i| ai(i) * 12345), "mul_scalar");
    let ab = eval.mul_relin(&ca, &cb, &s.rk).unwrap();
    check(&s, &ab, &z(&|i| ai(i) * bi(i)), "mul_relin");
    check(&s, &eval.square_relin(&ca, &s.rk).unwrap(), &z(&|i| ai(i) * ai(i)), "square_relin");

    // After a modulus switch the factor is q_l⁻¹ mod t: sums with fresh (factor 1)
    // operands, plaintexts and scalars must still be exact.
    let ab1 = eval.mod_switch(&ab).unwrap();
    assert_ne!(ab1.factor(), 1);
    check(&s, &ab1, &z(&|i| ai(i) * bi(i)), "mod_switch");
    let c1 = eval.mod_switch(&ca).unwrap();
    let d1 = eval.drop_level(&cb, top - 1).unwrap();
    check(&s, &d1, &z(&|i| bi(i)), "drop_level");
    check(&s, &eval.add(&ab1, &d1).unwrap(), &z(&|i| ai(i) * bi(i) + bi(i)), "add across factors");
    check(&s, &eval.sub(&d1, &ab1).unwrap(), &z(&|i| bi(i) - ai(i) * bi(i)), "sub across factors");
    check(&s, &eval.add_plain(&ab1, &pc).unwrap(), &z(&|i| ai(i) * bi(i) + ci(i)), "add_plain after switch");
    check(&s, &eval.add_scalar(&ab1, 3).unwrap(), &z(&|i| ai(i) * bi(i) + 3), "add_scalar after switch");
    let abc = eval.mul_relin(&ab1, &c1, &s.rk).unwrap();
    check(&s, &abc, &z(&|i| ai(i) * bi(i) % T as i128 * ai(i)), "mul_relin after switch");
    let abc0 = eval.mod_switch(&abc).unwrap();
    check(&s, &abc0, &z(&|i| ai(i) * bi(i) % T as i128 * ai(i)), "second mod_switch");
    check(
        &s,
        &eval.mul_scalar(&abc0, 3).unwrap(),
        &z(&|i| ai(i) * bi(i) % T as i128 * ai(i) * 3),
        "mul_scalar at level 0",
    );
    // A dense plaintext's product at level 0 could wrap modulo q_0: refused, not wrong.
    let err = eval.mul_plain(&abc0, &pc).unwrap_err();
    assert!(matches!(err, Error::NoiseBudgetExhausted { op: "mul_plain", level: 0, .. }), "{err}");
    assert!(err.to_string().contains("mod_switch"), "{err}");
}

#[test]
fn rotations_permute_the_slot_matrix() {
    let s = setup();
    let n = s.params.n();
    let half = n / 2;
    let top = s.params.max_level();
    let enc = Encoder::new(&s.params);
    let eval = Evaluator::new(&s.params);
    let mut encryptor = Encryptor::new(&s.params, &s.pk).unwrap();
    let a = Rng(77).vec(n, T);
    let ca = encryptor.encrypt(&enc.encode(&a, top).unwrap()).unwrap();
    let rotated = |k: i64| -> Vec<u64> {
        (0..n)
            .map(|i| {
                let (r, c) = (i / half, i % half);
                a[r * half + (c as i64 + k).rem_euclid(half as i64) as usize] as u64
            })
            .collect()
    };
    for k in [1i64, -3, 5] {
        check(&s, &eval.rotate_columns(&ca, k, &s.gk).unwrap(), &rotated(k), &format!("rotate_columns({k})"));
    }
    let swapped: Vec<u64> = (0..n).map(|i| a[(i + half) % n] as u64).collect();
    check(&s, &eval.rotate_rows(&ca, &s.gk).unwrap(), &swapped, "rotate_rows");
    // Hoisted: one decomposition, the same results as one at a time; and after a switch.
    let steps = [1i64, 2, 4, -3];
    for (k, r) in steps.iter().zip(eval.rotate_columns_hoisted(&ca, &steps, &s.gk).unwrap()) {
        check(&s, &r, &rotated(*k), &format!("hoisted rotation by {k}"));
    }
    let dec = eval.decompose(&ca).unwrap();
    check(&s, &eval.rotate_rows_decomposed(&ca, &dec, &s.gk).unwrap(), &swapped, "hoisted row swap");
    let c1 = eval.mod_switch(&ca).unwrap();
    check(&s, &eval.rotate_columns(&c1, 2, &s.gk).unwrap(), &rotated(2), "rotation after mod_switch");
    // A decomposition of another level is refused.
    assert!(matches!(
        eval.rotate_columns_decomposed(&c1, &dec, 1, &s.gk),
        Err(Error::Rlwe(rlwe::Error::LevelMismatch { .. }))
    ));
    assert!(matches!(eval.rotate_columns(&ca, 7, &s.gk), Err(Error::Rlwe(rlwe::Error::MissingGaloisKey { .. }))));
    // A full turn needs no key.
    check(&s, &eval.rotate_columns(&ca, half as i64, &s.gk).unwrap(), &rotated(0), "full turn");
}

#[test]
fn depth_past_the_budget_is_refused_never_wrong() {
    let s = setup();
    let n = s.params.n();
    let enc = Encoder::new(&s.params);
    let eval = Evaluator::new(&s.params);
    let mut encryptor = Encryptor::new(&s.params, &s.pk).unwrap();
    let a = Rng(5).vec(n, T);
    let mut ct = encryptor.encrypt(&enc.encode(&a, s.params.max_level()).unwrap()).unwrap();
    let mut want: Vec<u64> = a.iter().map(|&v| v as u64).collect();
    let mut squarings = 0;
    let err = loop {
        match eval.square_relin(&ct, &s.rk) {
            Ok(sq) => {
                want = want.iter().map(|&v| (v as u128 * v as u128 % T as u128) as u64).collect();
                check(&s, &sq, &want, &format!("square {}", squarings + 1));
                squarings += 1;
                ct = match eval.mod_switch(&sq) {
                    Ok(c) => c,
                    Err(e) => break e,
                };
                check(&s, &ct, &want, "switched");
            }
            Err(e) => break e,
        }
    };
    assert_eq!(squarings, 2, "the chain [50, 40, 40] holds two products");
    assert!(matches!(err, Error::NoiseBudgetExhausted { .. }), "{err}");
    // Dropping primes without dividing is refused once the noise no longer fits.
    let fresh = encryptor.encrypt(&enc.encode(&a, s.params.max_level()).unwrap()).unwrap();
    let sq = eval.square_relin(&fresh, &s.rk).unwrap();
    assert!(matches!(eval.drop_level(&sq, 0), Err(Error::NoiseBudgetExhausted { op: "drop_level", .. })));
}

#[test]
fn symmetric_encryption_is_seeded_and_exact() {
    let s = setup();
    let n = s.params.n();
    let enc = Encoder::new(&s.params);
    let eval = Evaluator::new(&s.params);
    let mut dec = Decryptor::new(&s.params, &s.sk).unwrap();
    let a = Rng(9).vec(n, T);
    let seeded = dec.encrypt_symmetric(&enc.encode(&a, 1).unwrap()).unwrap();
    let bytes = seeded.to_bytes();
    assert_eq!(bytes.len(), s.params.ciphertext_bytes(1, true));
    assert!(bytes.len() * 10 < s.params.ciphertext_bytes(1, false) * 6, "a seeded ciphertext is about half the size");
    let ct = SeededCiphertext::from_bytes(&s.params, &bytes).unwrap().expand();
    let want: Vec<u64> = a.iter().map(|&v| v as u64).collect();
    check(&s, &ct, &want, "symmetric");
    let sq = eval.square_relin(&ct, &s.rk).unwrap();
    check(&s, &sq, &want.iter().map(|&v| (v * v) % T).collect::<Vec<_>>(), "symmetric squared");
    assert!(
        seeded.noise_bound_bits()
            < Encryptor::new(&s.params, &s.pk)
                .unwrap()
                .encrypt(&enc.encode(&a, 1).unwrap())
                .unwrap()
                .noise_bound_bits()
    );
}

#[test]
fn coefficient_encoding_multiplies_polynomials_negacyclically() {
    // t = 257 is not ≡ 1 mod 2N: no batching, coefficient encoding only.
    let t = 257u64;
    let params = Parameters::builder().log_n(13).q_bits(&[50, 40, 40]).plaintext_modulus(t).build().unwrap();
    assert!(!params.has_batching());
    let n = params.n();
    let enc = Encoder::new(&params);
    assert!(matches!(enc.encode(&[1, 2], 0), Err(Error::NoBatching { t: 257, .. })));
    let mut kg = KeyGenerator::new(&params);
    let sk = kg.secret_key();
    let pk = kg.public_key(&sk);
    let rk = kg.relin_key(&sk);
    let eval = Evaluator::new(&params);
    let dec = Decryptor::new(&params, &sk).unwrap();
    let mut encryptor = Encryptor::new(&params, &pk).unwrap();
    let mut rng = Rng(31);
    let (a, b) = (rng.vec(n, t), rng.vec(n, t));
    let top = params.max_level();
    let ca = encryptor.encrypt(&enc.encode_coeffs(&a, top).unwrap()).unwrap();
    let cb = encryptor.encrypt(&enc.encode_coeffs(&b, top).unwrap()).unwrap();
    let prod = eval.mod_switch(&eval.mul_relin(&ca, &cb, &rk).unwrap()).unwrap();
    let mut want = vec![0i128; n];
    for i in 0..n {
        for j in 0..n {
            let v = a[i] as i128 * b[j] as i128;
            if i + j < n {
                want[i + j] += v;
            } else {
                want[i + j - n] -= v; // X^N = −1
            }
        }
    }
    let want: Vec<u64> = want.iter().map(|&v| v.rem_euclid(t as i128) as u64).collect();
    assert_eq!(enc.decode_coeffs(&dec.decrypt(&prod).unwrap()).unwrap(), want);
    assert!(prod.noise_budget_bits() <= dec.measured_noise_budget(&prod).unwrap());
}

#[test]
fn parameters_refuse_bad_plaintext_moduli_and_insecure_sets() {
    let b = Parameters::builder().log_n(13).q_bits(&[50, 40, 40]);
    for t in [0u64, 2, 65536, 65539 * 3, 1 << 61] {
        let r = b.clone().plaintext_modulus(t).build();
        assert!(matches!(r, Err(Error::PlaintextModulus { .. })), "t = {t}: {r:?}");
    }
    // t must be below every prime (a 40-bit prime here).
    let big_t = ring::primes::ntt_primes(45, 8192, 1, &[]).unwrap()[0];
    assert!(matches!(b.clone().plaintext_modulus(big_t).build(), Err(Error::PlaintextModulus { .. })));
    let r = Parameters::builder().log_n(13).q_bits(&[60, 60, 60]).p_bits(&[60]).plaintext_modulus(T).build();
    assert!(matches!(r, Err(Error::Rlwe(rlwe::Error::Param(ParamError::Insecure { .. })))), "{r:?}");
    let ckks = rlwe::Parameters::builder().log_n(13).q_bits(&[50, 40, 40]).build().unwrap();
    assert!(matches!(Parameters::new(ckks), Err(Error::NotBgv)));
    let p = b.plaintext_modulus(T).build().unwrap();
    assert!(Parameters::from_spec(p.spec(), T).unwrap().same(&p));
    assert!(!Parameters::from_spec(p.spec(), 40961).unwrap().same(&p));
}
