//! Every operation against an f64 reference on random vectors, with error bounds.
mod common;
use ckks::*;
use common::*;

/// With scale 2^40, fresh noise is ~2^-30 of a unit value; one product and rescale stays near 2^-20.
const FRESH: f64 = 1e-6;
const AFTER_MUL: f64 = 1e-4;
/// Key switching (rotation) adds ~N·σ·dnum/P-scaled noise: about 2^-20 here.
const KEYSWITCHED: f64 = 1e-5;

#[test]
fn public_key_and_symmetric_encryption_round_trip() {
    let k = Kit::n8192();
    let v = rand_vec(k.params.slots(), 1, 1.0);
    assert!(max_err(&k.decrypt(&k.encrypt(&v)), &v) < FRESH);
    let pt = k.enc.encode(&v, 2, k.params.default_scale()).unwrap();
    let seeded = Decryptor::new(&k.sk).encrypt_symmetric(&pt).unwrap();
    assert!(max_err(&k.decrypt(&seeded.expand()), &v) < FRESH);
    // Under another key the same ciphertext decrypts to noise.
    let other = Kit::new(k.params.clone());
    assert!(max_err(&other.decrypt(&k.encrypt(&v)), &v) > 1.0);
}

#[test]
fn additive_operations_match_the_reference() {
    let k = Kit::n8192();
    let s = k.params.slots();
    let (a, b) = (rand_vec(s, 2, 4.0), rand_vec(s, 3, 4.0));
    let (ca, cb) = (k.encrypt(&a), k.encrypt(&b));
    let sum: Vec<f64> = a.iter().zip(&b).map(|(x, y)| x + y).collect();
    let diff: Vec<f64> = a.iter().zip(&b).map(|(x, y)| x - y).collect();
    assert!(max_err(&k.decrypt(&k.eval.add(&ca, &cb).unwrap()), &sum) < FRESH);
    assert!(max_err(&k.decrypt(&k.eval.sub(&ca, &cb).unwrap()), &diff) < FRESH);
    let neg: Vec<f64> = a.iter().map(|x| -x).collect();
    assert!(max_err(&k.decrypt(&k.eval.neg(&ca).unwrap()), &neg) < FRESH);
    let pb = k.enc.encode(&b, 2, k.params.default_scale()).unwrap();
    assert!(max_err(&k.decrypt(&k.eval.add_plain(&ca, &pb).unwrap()), &sum) < FRESH);
    assert!(max_err(&k.decrypt(&k.eval.sub_plain(&ca, &pb).unwrap()), &diff) < FRESH);
    let plus: Vec<f64> = a.iter().map(|x| x + 2.5).collect();
    assert!(max_err(&k.decrypt(&k.eval.add_const(&ca, 2.5).unwrap()), &plus) < FRESH);
    let times3: Vec<f64> = a.iter().map(|x| x * -3.0).collect();
    let c3 = k.eval.mul_int(&ca, -3).unwrap();
    assert_eq!(c3.scale(), ca.scale());
    assert!(max_err(&k.decrypt(&c3), &times3) < FRESH);
}

#[test]
fn plaintext_constant_and_ciphertext_products_with_rescale() {
    let k = Kit::n8192();
    let s = k.params.slots();
    let (a, b) = (rand_vec(s, 4, 2.0), rand_vec(s, 5, 2.0));
    let prod: Vec<f64> = a.iter().zip(&b).map(|(x, y)| x * y).collect();
    let (ca, cb) = (k.encrypt(&a), k.encrypt(&b));
    let pb = k.enc.encode(&b, 2, k.params.q()[2] as f64).unwrap();
    let r = k.eval.rescale(&k.eval.mul_plain(&ca, &pb).unwrap()).unwrap();
    assert_eq!(r.level(), 1);
    assert!((r.scale() - ca.scale()).abs() / ca.scale() < 1e-12);
    assert!(max_err(&k.decrypt(&r), &prod) < AFTER_MUL);

    let r = k.eval.rescale(&k.eval.mul_const(&ca, -0.375).unwrap()).unwrap();
    assert_eq!(r.scale(), ca.scale(), "mul_const then rescale keeps the scale exactly");
    let want: Vec<f64> = a.iter().map(|x| x * -0.375).collect();
    assert!(max_err(&k.decrypt(&r), &want) < AFTER_MUL);

    let r = k.eval.mul_const_scaled(&ca, 1.5, 2f64.powi(30)).unwrap();
    assert_eq!(r.scale(), ca.scale() * 2f64.powi(30));
    let want: Vec<f64> = a.iter().map(|x| x * 1.5).collect();
    assert!(max_err(&k.decrypt(&k.eval.rescale(&r).unwrap()), &want) < AFTER_MUL);

    let r = k.eval.rescale(&k.eval.mul_relin(&ca, &cb, &k.rk).unwrap()).unwrap();
    assert!(max_err(&k.decrypt(&r), &prod) < AFTER_MUL);
    let sq: Vec<f64> = a.iter().map(|x| x * x).collect();
    let r = k.eval.rescale(&k.eval.square_relin(&ca, &k.rk).unwrap()).unwrap();
    assert!(max_err(&k.decrypt(&r), &sq) < AFTER_MUL);

    let pp = PreparedPlaintext::new(pb.clone());
    let r = k.eval.rescale(&k.eval.mul_prepared(&ca, &pp).unwrap()).unwrap();
    assert!(max_err(&k.decrypt(&r), &prod) < AFTER_MUL);
    let mut acc2 = k.eval.mul_prepared(&ca, &pp).unwrap();
    k.eval.mul_prepared_add_assign(&mut acc2, &ca, &pp).unwrap();
    let twice: Vec<f64> = prod.iter().map(|x| 2.0 * x).collect();
    assert!(max_err(&k.decrypt(&k.eval.rescale(&acc2).unwrap()), &twice) < AFTER_MUL);
    assert!(k.eval.mul_prepared_add_assign(&mut acc2, &cb, &pp).is_ok());
    assert!(matches!(k.eval.mul_prepared_add_assign(&mut acc2, &r, &pp), Err(Error::LevelMismatch { .. })));

    let mut acc = k.eval.mul_plain(&ca, &pb).unwrap();
    k.eval.mul_plain_add_assign(&mut acc, &cb, &k.enc.encode(&a, 2, k.params.q()[2] as f64).unwrap()).unwrap();
    assert!(max_err(&k.decrypt(&k.eval.rescale(&acc).unwrap()), &twice) < AFTER_MUL);
}

#[test]
fn a_chain_of_multiplications_down_to_the_last_level() {
    // N = 2^14 with 60 + 6×40 bits and two special primes passes the 2024 bound (≤ 430 bits).
    let p = Parameters::builder().log_n(14).q_bits(&[60, 40, 40, 40, 40, 40, 40]).p_bits(&[60, 60]).build().unwrap();
    let k = Kit::new(p);
    let s = k.params.slots();
    let mut want = rand_vec(s, 6, 1.0);
    let factor = rand_vec(s, 7, 1.0).iter().map(|x| 0.9 + 0.2 * x).collect::<Vec<_>>();
    let mut ct = k.encrypt(&want);
    let mut cf = k.encrypt(&factor);
    for step in 0..k.params.max_level() {
        ct = k.eval.rescale(&k.eval.mul_relin(&ct, &cf, &k.rk).unwrap()).unwrap();
        cf = k.eval.drop_level(&cf, ct.level()).unwrap();
        cf.set_scale(ct.scale()).unwrap_or(());
        for (w, f) in want.iter_mut().zip(&factor) {
            *w *= f;
        }
        let err = max_err(&k.decrypt(&ct), &want);
        assert!(err < 1e-4 * (step + 1) as f64, "after {} products: error {err:e}", step + 1);
    }
    assert_eq!(ct.level(), 0);
    assert!(matches!(k.eval.rescale(&ct), Err(Error::LevelExhausted)));
}

#[test]
fn rotation_by_every_power_of_two_both_directions_and_hoisted() {
    let k = Kit::n8192();
    let s = k.params.slots() as i64;
    let mut steps = vec![];
    let mut p = 1;
    while p < s {
        steps.push(p);
        steps.push(-p);
        p *= 2;
    }
    let gk = k.galois(&steps, true);
    let v = rand_vec(s as usize, 8, 1.0);
    let ct = k.encrypt(&v);
    let rotated = |st: i64| -> Vec<f64> { (0..s).map(|j| v[(j + st).rem_euclid(s) as usize]).collect() };
    for &st in &steps {
        let r = k.eval.rotate(&ct, st, &gk).unwrap();
        let e = max_err(&k.decrypt(&r), &rotated(st));
        assert!(e < KEYSWITCHED, "step {st}: error {e:e}");
    }
    let hoisted = k.eval.rotate_hoisted(&ct, &steps[..8], &gk).unwrap();
    for (r, &st) in hoisted.iter().zip(&steps[..8]) {
        assert!(max_err(&k.decrypt(r), &rotated(st)) < KEYSWITCHED, "hoisted step {st}");
    }
    // Rotation after a rescale (a lower level) still works.
    let low = k.eval.rescale(&k.eval.mul_const(&ct, 1.0).unwrap()).unwrap();
    assert!(max_err(&k.decrypt(&k.eval.rotate(&low, 1, &gk).unwrap()), &rotated(1)) < AFTER_MUL);
    let sum: f64 = v.iter().sum();
    let total = k.eval.sum_slots(&ct, &gk).unwrap();
    let worst = k.decrypt(&total).iter().map(|x| (x - sum).abs()).fold(0.0, f64::max);
    assert!(worst < 1e-3, "sum_slots error {worst:e} (sum {sum})");
}

#[test]
fn conjugation_of_complex_slots() {
    let k = Kit::n8192();
    let gk = k.galois(&[], true);
    let z: Vec<Complex64> = (0..k.params.slots()).map(|i| Complex64::new((i as f64).sin(), (i as f64).cos())).collect();
    let pt = k.enc.encode_complex(&z, 2, k.params.default_scale()).unwrap();
    let ct = Encryptor::new(&k.pk).encrypt(&pt).unwrap();
    let r = k.eval.conjugate(&ct, &gk).unwrap();
    let back = k.enc.decode_complex(&Decryptor::new(&k.sk).decrypt(&r).unwrap()).unwrap();
    for (a, b) in z.iter().zip(&back) {
        assert!((a.conj() - b).norm() < KEYSWITCHED);
    }
}

#[test]
fn mismatches_are_errors_not_panics() {
    let k = Kit::n8192();
    let v = rand_vec(16, 9, 1.0);
    let ct = k.encrypt(&v);
    let low = k.eval.rescale(&k.eval.mul_const(&ct, 1.0).unwrap()).unwrap();
    assert!(matches!(k.eval.add(&ct, &low), Err(Error::LevelMismatch { left: 2, right: 1 })));
    let dropped = k.eval.drop_level(&ct, 1).unwrap();
    let odd = k.eval.mul_int(&dropped, 1).map(|mut c| {
        c.set_scale(c.scale() * 2.0).unwrap();
        c
    });
    assert!(matches!(k.eval.add(&dropped, &odd.unwrap()), Err(Error::ScaleMismatch { .. })));
    assert!(matches!(k.eval.drop_level(&low, 2), Err(Error::LevelRaise { .. })));
    let gk = k.galois(&[1], false);
    assert!(matches!(k.eval.rotate(&ct, 3, &gk), Err(Error::MissingGaloisKey { .. })));
    assert!(matches!(k.eval.conjugate(&ct, &gk), Err(Error::MissingGaloisKey { .. })));
    let other = Kit::new(Parameters::builder().log_n(13).q_bits(&[60, 40, 40]).p_bits(&[61]).build().unwrap());
    let foreign = other.encrypt(&v);
    assert!(matches!(k.eval.add(&ct, &foreign), Err(Error::ParamsMismatch)));
    assert!(matches!(k.eval.mul_relin(&ct, &ct, &other.rk), Err(Error::ParamsMismatch)));
    assert!(Decryptor::new(&k.sk).decrypt(&foreign).is_err());
    let sq = k.eval.mul_relin(&ct, &ct, &k.rk).unwrap();
    assert!(matches!(k.eval.mul_relin(&sq, &sq, &k.rk), Err(Error::ScaleOverflow { .. })));
}

/// Key-switching noise must be spread over the slots like any other noise. A biased
/// base conversion (unsigned lift, or the fast conversion's excess u·P) puts the same
/// small error in every coefficient, which the canonical embedding piles up in the
/// few slots near the root 1: there the error was ~50× its rms, 13× the rescale's.
/// Measured here in units of the scale, against a rescale at the same level.
#[test]
fn keyswitch_noise_is_not_concentrated_in_a_few_slots() {
    // TenSEAL-like small primes and a small special prime: the case where it showed.
    let params = Parameters::builder()
        .log_n(13)
        .q_bits(&[32, 26, 26, 26, 26, 26])
        .p_bits(&[34])
        .dnum(6)
        .log_scale(26.0)
        .build()
        .unwrap();
    let k = Kit::new(params);
    let s = k.params.slots();
    let v = rand_vec(s, 11, 0.5);
    let ct = k.encrypt(&v);
    let gk = k.galois(&[1], false);
    let stats = |got: &[f64], want: &[f64]| {
        let e: Vec<f64> = got.iter().zip(want).map(|(g, w)| (g - w) * ct.scale()).collect();
        let rms = (e.iter().map(|x| x * x).sum::<f64>() / e.len() as f64).sqrt();
        (rms, e.iter().fold(0.0f64, |m, x| m.max(x.abs())))
    };
    let rotated: Vec<f64> = (0..s).map(|j| v[(j + 1) % s]).collect();
    let (rot_rms, rot_max) = stats(&k.decrypt(&k.eval.rotate(&ct, 1, &gk).unwrap()), &rotated);
    let resc = k.eval.rescale(&k.eval.mul_const_scaled(&ct, 1.0, k.params.q()[5] as f64).unwrap()).unwrap();
    let (_, resc_max) = stats(&k.decrypt(&resc), &v);
    assert!(rot_max < 15.0 * rot_rms, "rotation: max {rot_max:.0} vs rms {rot_rms:.0}");
    assert!(rot_max < 4.0 * resc_max, "rotation max {rot_max:.0} vs rescale max {resc_max:.0}");
}
