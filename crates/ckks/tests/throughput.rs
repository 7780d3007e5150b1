//! Layout T (one ciphertext per feature, one sample per slot): a small network of the
//! CryptoNets shape — a sparse (conv-like) layer, x², a dense layer relinearised after its
//! sums, x², a dense layer — decrypts to the float64 network's outputs in every slot.
//! 128-bit parameters (N = 2^13, the chain the CryptoNets bench uses).

mod common;

use ckks::throughput::{Batch, Linear, LinearGroup, ThroughputEvaluator};
use ckks::*;
use common::rand_vec;

const Q_BITS: [u32; 6] = [30, 20, 28, 20, 28, 20];

fn params() -> Parameters {
    Parameters::builder().log_n(13).q_bits(&Q_BITS).build().unwrap()
}

/// 12 inputs → 8 outputs in 4 groups of 2, each group reading its own 5 inputs.
fn sparse_layer() -> Linear {
    let w = rand_vec(4 * 2 * 5, 7, 0.5);
    let groups = (0..4)
        .map(|g| LinearGroup {
            outputs: vec![2 * g, 2 * g + 1],
            inputs: (0..5).map(|k| (2 * g + k) % 12).collect(),
            weights: w[g * 10..(g + 1) * 10].to_vec(),
        })
        .collect();
    Linear { inputs: 12, groups, bias: rand_vec(8, 8, 0.2) }
}

fn plain(layer: &Linear, x: &[f64]) -> Vec<f64> {
    let mut y = layer.bias.clone();
    for g in &layer.groups {
        for (r, &o) in g.outputs.iter().enumerate() {
            for (k, &i) in g.inputs.iter().enumerate() {
                y[o] += g.weights[r * g.inputs.len() + k] * x[i];
            }
        }
    }
    y
}

#[test]
fn small_network_decrypts_to_the_plaintext_outputs() {
    let params = params();
    let mut kg = KeyGenerator::new(&params);
    let sk = kg.secret_key();
    let rk = kg.relin_key(&sk);
    let enc = Encoder::new(&params);
    let slots = params.slots();
    let delta = 2f64.powi(28);
    // Feature i of sample s: a different value in every slot.
    let xs: Vec<Vec<f64>> = (0..12).map(|i| rand_vec(slots, 100 + i, 1.0)).collect();
    let mut dec = Decryptor::new(&sk);
    let cts: Vec<Ciphertext> = xs
        .iter()
        .map(|v| dec.encrypt_symmetric(&enc.encode(v, params.max_level(), delta).unwrap()).unwrap().expand())
        .collect();
    let l1 = sparse_layer();
    let l2 = Linear::dense(&rand_vec(5 * 8, 9, 0.3), &rand_vec(5, 10, 0.1), 8);
    let l3 = Linear::dense(&rand_vec(3 * 5, 11, 0.5), &rand_vec(3, 12, 0.1), 5);

    let ev = ThroughputEvaluator::new(&params).unwrap();
    let b = Batch::from_ciphertexts(&params, cts).unwrap();
    let h = ev.linear(&b, &l1, delta).unwrap();
    let h = ev.square(h).unwrap();
    assert_eq!(h.degree(), 2, "a square is left unrelinearised");
    let h = ev.linear_sums(&h, &l2, delta, 2).unwrap();
    assert_eq!(h.degree(), 2, "the layer after a square keeps its three components");
    let h = ev.relinearize(h, &rk).unwrap();
    let h = ev.rescale(ev.rescale(h).unwrap()).unwrap();
    let h = ev.square(h).unwrap();
    // The answer keeps q_1: one rescale (the square's prime) leaves it at 2^23·q_1 ≈ 2^43,
    // where the last rescale's rounding (≈ 2^13) no longer shows.
    let h = ev.linear_sums(&h, &l3, 2f64.powi(23), 2).unwrap();
    let h = ev.relinearize(h, &rk).unwrap();
    let out = ev.rescale(h).unwrap();
    assert_eq!(out.level(), 1);
    let out = out.into_ciphertexts(&params).unwrap();

    let got: Vec<Vec<f64>> = out.iter().map(|c| enc.decode(&dec.decrypt(c).unwrap()).unwrap()).collect();
    let (mut worst, mut top) = (0f64, 0f64);
    for s in 0..slots {
        let x: Vec<f64> = (0..12).map(|i| xs[i][s]).collect();
        let h: Vec<f64> = plain(&l1, &x).iter().map(|v| v * v).collect();
        let h: Vec<f64> = plain(&l2, &h).iter().map(|v| v * v).collect();
        let want = plain(&l3, &h);
        for k in 0..3 {
            worst = worst.max((got[k][s] - want[k]).abs());
            top = top.max(want[k].abs());
        }
    }
    // Noise and rounded weights leave ~1e-4 of the largest output; a wrong scale, bias or
    // component is off by the outputs' own size.
    assert!(top > 0.1 && worst < 1e-3 * top, "layout-T outputs off by {worst} (largest output {top})");
}

#[test]
fn bad_layers_and_parameters_are_refused() {
    let params = params();
    let ev = ThroughputEvaluator::new(&params).unwrap();
    let mut kg = KeyGenerator::new(&params);
    let sk = kg.secret_key();
    let enc = Encoder::new(&params);
    let mut dec = Decryptor::new(&sk);
    let ct = dec.encrypt_symmetric(&enc.encode(&[0.5], params.max_level(), 2f64.powi(28)).unwrap()).unwrap().expand();
    let b = Batch::from_ciphertexts(&params, vec![ct.clone(), ct]).unwrap();
    // Input count, group coverage and weight magnitude.
    assert!(ev.linear(&b, &Linear::dense(&[1.0; 3], &[0.0], 3), 2f64.powi(28)).is_err());
    let uncovered = Linear { inputs: 2, groups: vec![], bias: vec![0.0] };
    assert!(ev.linear(&b, &uncovered, 2f64.powi(28)).is_err());
    assert!(ev.linear(&b, &Linear::dense(&[1e9, 1.0], &[0.0], 2), 2f64.powi(28)).is_err());
    // A square of a degree-2 batch, and primes the 32-bit products cannot take.
    let sq = ev.square(b).unwrap();
    assert!(ev.square(sq.clone()).is_err());
    assert!(sq.into_ciphertexts(&params).is_err(), "degree 2 must be relinearised before decryption");
    let wide = Parameters::builder().log_n(13).q_bits(&[40, 30]).build().unwrap();
    assert!(ThroughputEvaluator::new(&wide).is_err());
}
