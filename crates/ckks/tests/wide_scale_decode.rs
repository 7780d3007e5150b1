//! Answers at a scale wider than one prime (2^90 on two 60-bit limbs, 2^100 on three)
//! decode to full f64 precision: the decoder lifts every coefficient exactly by Garner's
//! mixed radix and rounds once (`encoding::crt_to_f64`). A decoder that read one limb,
//! or summed limbs in floating point before centering, would return garbage or lose the
//! negative values' sign here.
use ckks::{Decryptor, Encoder, KeyGenerator, Parameters};

#[test]
fn multi_limb_answers_at_scales_above_2_pow_64_decode_exactly() {
    let params = Parameters::builder().log_n(14).q_bits(&[60, 60, 60]).p_bits(&[60]).build().unwrap();
    let sk = KeyGenerator::new(&params).secret_key();
    let enc = Encoder::new(&params);
    let x: Vec<f64> = (0..params.slots()).map(|j| ((j * 37 % 101) as f64 - 50.0) / 12.5).collect();
    for (level, scale_bits) in [(1usize, 90), (2, 100)] {
        let scale = 2f64.powi(scale_bits);
        let pt = enc.encode(&x, level, scale).unwrap();
        let plain = enc.decode(&pt).unwrap();
        let ct = Decryptor::new(&sk).encrypt_symmetric(&pt).unwrap().expand();
        assert_eq!(ct.level(), level);
        let dec = enc.decode(&Decryptor::new(&sk).decrypt(&ct).unwrap()).unwrap();
        let worst = |v: &[f64]| v.iter().zip(&x).fold(0.0f64, |m, (a, b)| m.max((a - b).abs()));
        // Encoding and decoding in f64 lose ~2^-52 relative per coefficient; the
        // encryption noise (~2^10 at a 2^90 scale) is far below that.
        assert!(worst(&plain) < 1e-11, "level {level}, 2^{scale_bits}: plaintext round trip off by {}", worst(&plain));
        assert!(worst(&dec) < 1e-11, "level {level}, 2^{scale_bits}: decryption off by {}", worst(&dec));
    }
}
