//! Compact answers (`rlwe::answer`): a level-0 answer folded into the subring of degree
//! N' = 2^12 and switched to 2^28, on the digits MLP's parameter set (N = 2^13, a 33-bit
//! last prime, scale 2^24). What decrypts must be the answer's first N'/2 slots when they
//! repeat (and, when they do not, a fold must visibly mix them: the test of the test);
//! unfolded answers must decrypt whole; bad shapes and bytes are refused.
mod common;
use ckks::*;
use common::*;

fn mlp_params() -> Parameters {
    Parameters::builder().log_n(13).q_bits(&[33, 24, 24, 24, 24, 24, 24]).p_bits(&[32]).dnum(7).build().unwrap()
}

/// A fresh encryption of `values` at level `level`, scale 2^24.
fn answer_of(k: &Kit, values: &[f64], level: usize) -> Ciphertext {
    let pt = k.enc.encode(values, level, 2f64.powi(24)).unwrap();
    Encryptor::new(&KeyGenerator::new(&k.params).public_key(&k.sk)).encrypt(&pt).unwrap()
}

fn decrypt(k: &Kit, a: &CompactAnswer) -> Vec<f64> {
    let phase = Decryptor::new(&k.sk).decrypt_answer(a).unwrap();
    let coeffs: Vec<f64> = phase.iter().map(|&c| c as f64).collect();
    decode_coefficients(&coeffs, a.scale()).unwrap()
}

#[test]
fn a_periodic_answer_folds_to_its_first_period() {
    let k = Kit::new(mlp_params());
    let mut kg = KeyGenerator::new(&k.params);
    let shape = AnswerShape { log_n: 12, log_q: 28 };
    shape.check(&k.params).unwrap();
    assert_eq!(AnswerShape::min_log_n(&k.params), 12, "q0·P = 65 bits: 2^11 holds only 53");
    let key = kg.answer_key(&k.sk, 12).unwrap();
    let period = 16;
    let logits = rand_vec(10, 3, 12.0);
    let values: Vec<f64> =
        (0..k.params.slots()).map(|j| if j % period < 10 { logits[j % period] } else { 0.0 }).collect();
    for level in [0, 2] {
        let ct = answer_of(&k, &values, level);
        let a = CompactAnswer::from_ciphertext(&ct, shape, Some(&key)).unwrap();
        let bytes = a.to_bytes();
        assert_eq!(bytes.len(), shape.bytes());
        // 2 × 4096 × 28 bits and a 50-byte header, against 2 × 8192 × 33 bits.
        assert_eq!(bytes.len(), 40 + 10 + 2 * 4096 * 28 / 8);
        assert!(bytes.len() * 2 < k.params.ciphertext_bytes(0, false));
        let back = CompactAnswer::from_bytes(&k.params, &bytes, shape).unwrap();
        assert_eq!(back, a);
        let got = decrypt(&k, &back);
        assert_eq!(got.len(), 2048);
        let want: Vec<f64> = values[..2048].to_vec();
        let err = max_err(&got, &want);
        println!("level {level}: folded answer {} B, max slot error {err:.3e}", bytes.len());
        // Measured 8.6e-3: mostly the modulus switch's rounding at Δ' = 2^19 (slot std
        // about 1.3e-3); a wrong subring, coefficient stride, rounding or sign makes
        // errors of the logits' size (~12).
        assert!(err < 3e-2, "level {level}: error {err:e}");
    }
}

#[test]
fn a_fold_of_slots_that_do_not_repeat_mixes_them() {
    // The reason the compiler proves periodicity first: an answer with values in one
    // period only decrypts to its average over the d = 2 copies, not to itself.
    let k = Kit::new(mlp_params());
    let key = KeyGenerator::new(&k.params).answer_key(&k.sk, 12).unwrap();
    let values = rand_vec(10, 5, 12.0);
    let ct = answer_of(&k, &values, 0);
    let a = CompactAnswer::from_ciphertext(&ct, AnswerShape { log_n: 12, log_q: 28 }, Some(&key)).unwrap();
    let got = decrypt(&k, &a);
    let halved: Vec<f64> = values.iter().map(|v| v / 2.0).collect();
    assert!(max_err(&got[..10], &halved) < 3e-2);
    assert!(max_err(&got[..10], &values) > 1.0);
}

#[test]
fn an_unfolded_answer_switches_its_modulus_only() {
    let k = Kit::new(mlp_params());
    let values = rand_vec(k.params.slots(), 9, 12.0);
    let ct = answer_of(&k, &values, 1);
    let shape = AnswerShape { log_n: 13, log_q: 26 };
    let a = CompactAnswer::from_ciphertext(&ct, shape, None).unwrap();
    assert!(!shape.folds(&k.params));
    assert_eq!(a.scale(), 2f64.powi(24) * 2f64.powi(26) / k.params.q()[0] as f64);
    let got = decrypt(&k, &CompactAnswer::from_bytes(&k.params, &a.to_bytes(), shape).unwrap());
    let err = max_err(&got, &values);
    println!("unfolded, 2^26: max slot error {err:.3e}");
    // Measured 5e-2 to 9e-2 over 4096 slots (rounding at Δ' = 2^17: slot std about 1e-2).
    assert!(err < 0.25, "{err:e}");
}

#[test]
fn bad_shapes_keys_and_bytes_are_refused() {
    let k = Kit::new(mlp_params());
    let mut kg = KeyGenerator::new(&k.params);
    // Degree 2^11 cannot hold the key's 65-bit modulus; the answer's modulus must stay below q0.
    assert!(kg.answer_key(&k.sk, 11).unwrap_err().to_string().contains("128-bit"));
    assert!(AnswerShape { log_n: 12, log_q: 33 }.check(&k.params).is_err());
    assert!(AnswerShape { log_n: 14, log_q: 20 }.check(&k.params).is_err());
    let ct = answer_of(&k, &[1.0], 0);
    let shape = AnswerShape { log_n: 12, log_q: 28 };
    let e = CompactAnswer::from_ciphertext(&ct, shape, None).unwrap_err();
    assert!(e.to_string().contains("answer key"), "{e}");
    let key = kg.answer_key(&k.sk, 12).unwrap();
    let bytes = CompactAnswer::from_ciphertext(&ct, shape, Some(&key)).unwrap().to_bytes();
    let other = AnswerShape { log_n: 12, log_q: 27 };
    assert!(CompactAnswer::from_bytes(&k.params, &bytes, other).unwrap_err().to_string().contains("shape"));
    assert!(CompactAnswer::from_bytes(&k.params, &bytes[..bytes.len() - 1], shape).is_err());
    let mut longer = bytes.clone();
    longer.push(0);
    assert!(CompactAnswer::from_bytes(&k.params, &longer, shape).is_err());
    // The bundle carries the key and reads it back; a degree the parameters cannot fold to is refused.
    let keys = EvaluationKeys {
        params: k.params.clone(),
        relin: None,
        galois: Default::default(),
        public: None,
        answer: Some(key),
    };
    let b = keys.to_bytes();
    assert_eq!(b.len(), keys.serialized_len());
    assert_eq!(EvaluationKeys::from_bytes(&k.params, &b).unwrap(), keys);
    let mut bad = b.clone();
    bad[40 + 1] = 11; // the key's log2 N'
    assert!(EvaluationKeys::from_bytes(&k.params, &bad).unwrap_err().to_string().contains("answer key degree"));
}
