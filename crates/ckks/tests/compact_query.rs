//! Compact queries (`compact_query_coefficients` → seeded LWE → `Evaluator::unpack_query`):
//! the digits MLP's parameter set, 64 pixel values in [0, 16]. The unpacked ciphertext
//! must hold every value in every period of its slots, with no imaginary part left, and
//! the packing's noise (up to about N key-switch roundings) must stay small against the
//! scale the compiler gives compact inputs.
mod common;
use ckks::*;
use common::*;

fn mlp_params() -> Parameters {
    Parameters::builder().log_n(13).q_bits(&[33, 24, 24, 24, 24, 24, 24]).p_bits(&[35]).dnum(7).build().unwrap()
}

#[test]
fn an_unpacked_query_holds_the_values_in_every_period() {
    let k = Kit::new(mlp_params());
    let top = k.params.max_level();
    let mut kg = KeyGenerator::new(&k.params);
    let at: Vec<(u64, usize)> = packing_elements(&k.params).into_iter().map(|g| (g, top)).collect();
    let keys = kg.galois_keys_with(&k.sk, &[], Some(top), &at);
    let period = 64;
    let values: Vec<f64> = rand_vec(64, 7, 8.0).iter().map(|v| v + 8.0).collect();
    for log_scale in [24, 31] {
        let scale = 2f64.powi(log_scale);
        let coeffs = compact_query_coefficients(&values, period, scale).unwrap();
        assert_eq!(coeffs.len(), period);
        let query = Decryptor::new(&k.sk).encrypt_lwe(&coeffs, top, scale).unwrap();
        // One word of 177 bits per value, and the seed.
        assert_eq!(query.to_bytes().len(), k.params.lwe_query_bytes(top, 64));
        assert!(query.to_bytes().len() < 1600, "{} bytes", query.to_bytes().len());
        let t = std::time::Instant::now();
        let ct = k.eval.unpack_query(&query, period, &keys).unwrap();
        println!("unpack: {:.1} ms (not asserted)", t.elapsed().as_secs_f64() * 1e3);
        assert_eq!((ct.level(), ct.scale()), (top, scale));
        let pt = Decryptor::new(&k.sk).decrypt(&ct).unwrap();
        let slots = k.enc.decode_complex(&pt).unwrap();
        let want: Vec<f64> = (0..slots.len()).map(|j| values[j % period]).collect();
        let re: Vec<f64> = slots.iter().map(|z| z.re).collect();
        let im: Vec<f64> = slots.iter().map(|z| z.im).collect();
        let (err, imag) = (max_err(&re, &want), max_err(&im, &vec![0.0; im.len()]));
        println!("scale 2^{log_scale}: max slot error {err:.3e}, max imaginary part {imag:.3e}");
        // A wrong DCT, slot order or position makes errors of the values' size (~8).
        // 2^24 (the set's scale) is too small for the packing's noise, which is why the
        // compiler raises a compact input's scale; 2^31 measured 2.4e-3.
        let bound = if log_scale == 31 { 6e-3 } else { 1.0 };
        assert!(err < bound && imag < bound, "scale 2^{log_scale}: error {err:e}, imaginary {imag:e}");
    }
}

/// The first layer applied before packing (a ring query, `Evaluator::unpack_linear`):
/// slot j holds (W·x)_{j mod period} one level down at the query's scale, with no
/// imaginary part, and the packing's noise, added at the product's scale, stays far
/// below a compact query's (no raised input scale needed).
#[test]
fn a_linear_layer_unpacked_holds_its_outputs_in_every_period() {
    let k = Kit::new(mlp_params());
    let top = k.params.max_level();
    let mut kg = KeyGenerator::new(&k.params);
    let mut at: Vec<(u64, usize)> = packing_elements(&k.params).into_iter().map(|g| (g, top)).collect();
    at.push((k.params.conjugation_element(), top));
    let keys = kg.galois_keys_with(&k.sk, &[], None, &at);
    let (n_in, n_out, period) = (64usize, 32usize, 32usize);
    let x: Vec<f64> = rand_vec(n_in, 3, 8.0).iter().map(|v| v + 8.0).collect();
    let w = rand_vec(n_in * n_out, 5, 0.3);
    let q_top = k.params.q()[top] as f64;
    // M = T·W: column i of W through the compact transform, rounded at q_top.
    let mut m = vec![0i64; period * n_in];
    for i in 0..n_in {
        let col: Vec<f64> = (0..n_out).map(|r| w[r * n_in + i]).collect();
        for (r, v) in compact_query_transform(&col, period, q_top).unwrap().into_iter().enumerate() {
            m[r * n_in + i] = v.round() as i64;
        }
    }
    let layer = LinearLeaves::new(&k.params, top, n_in, &m, q_top).unwrap();
    let scale = k.params.default_scale();
    let xs: Vec<i128> = x.iter().map(|v| (v * scale).round() as i128).collect();
    let query = Decryptor::new(&k.sk).encrypt_ring_query(&xs, top, scale).unwrap();
    assert_eq!(query.to_bytes().len(), k.params.lwe_query_bytes(top, n_in));
    let t = std::time::Instant::now();
    let ct = k.eval.unpack_linear(&query, &layer, period, &keys).unwrap();
    println!("unpack_linear: {:.1} ms (not asserted)", t.elapsed().as_secs_f64() * 1e3);
    assert_eq!(ct.level(), top - 1);
    assert!((ct.scale() / scale - 1.0).abs() < 1e-9);
    let pt = Decryptor::new(&k.sk).decrypt(&ct).unwrap();
    let slots = k.enc.decode_complex(&pt).unwrap();
    let y: Vec<f64> = (0..n_out).map(|r| (0..n_in).map(|i| w[r * n_in + i] * x[i]).sum()).collect();
    let want: Vec<f64> = (0..slots.len()).map(|j| y[j % period]).collect();
    let re: Vec<f64> = slots.iter().map(|z| z.re).collect();
    let im: Vec<f64> = slots.iter().map(|z| z.im).collect();
    let (err, imag) = (max_err(&re, &want), max_err(&im, &vec![0.0; im.len()]));
    println!(
        "max slot error {err:.3e}, max imaginary part {imag:.3e} (outputs up to {:.1})",
        y.iter().fold(0f64, |a, v| a.max(v.abs()))
    );
    // A transposed M, a wrong shift or a missing rescale make errors of the outputs' size.
    assert!(err < 1e-3 && imag < 1e-3, "error {err:e}, imaginary {imag:e}");
    // An LWE (not ring) query is refused by shape, as is a period below the outputs.
    let lwe = Decryptor::new(&k.sk).encrypt_lwe(&xs, top, scale).unwrap();
    assert!(k.eval.unpack_linear(&lwe, &layer, period, &keys).is_err());
    assert!(k.eval.unpack_linear(&query, &layer, 16, &keys).is_err());
}

#[test]
fn a_query_longer_than_its_period_is_refused() {
    let k = Kit::new(mlp_params());
    assert!(compact_query_coefficients(&[1.0; 65], 64, 2f64.powi(30)).is_err());
    assert!(compact_query_coefficients(&[1.0; 8], 12, 2f64.powi(30)).is_err());
    assert!(compact_query_coefficients(&[f64::NAN], 8, 2f64.powi(30)).is_err());
    let q = Decryptor::new(&k.sk).encrypt_lwe(&[1; 65], 3, 2f64.powi(30)).unwrap();
    let keys = k.galois(&[1], true);
    assert!(k.eval.unpack_query(&q, 64, &keys).is_err());
    assert!(k.eval.unpack_query(&q, 128, &keys).is_err(), "no packing keys");
}

#[test]
#[ignore]
fn time_one_rotation() {
    let k = Kit::new(mlp_params());
    let keys = k.galois(&[1], false);
    let ct = k.encrypt(&[1.0; 8]);
    let t = std::time::Instant::now();
    for _ in 0..50 {
        let _ = k.eval.rotate(&ct, 1, &keys).unwrap();
    }
    println!("rotation: {:.2} ms", t.elapsed().as_secs_f64() * 1e3 / 50.0);
}

#[test]
#[ignore]
fn time_seed_expansion() {
    let p = mlp_params();
    let moduli: Vec<_> = p.ctx().moduli[..=p.max_level()].iter().collect();
    let t = std::time::Instant::now();
    let mut s = ring::Sampler::from_seed([7; 32]);
    for _ in 0..64 {
        let _ = s.uniform(p.n(), &moduli);
    }
    println!("expansion of 64 polys: {:.1} ms", t.elapsed().as_secs_f64() * 1e3);
}
