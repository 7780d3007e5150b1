//! Circuit privacy for BGV answers (`bgv::circuit`): two networks with different weights
//! and the same outputs on the client's batch. Without the flood the client tells them
//! apart from every answer (the wire's noise bound is a function of the weights) and from
//! the noise it decrypts (a two-sample test); flooded at 2^-40 it cannot, and the outputs
//! still decrypt exactly.

use bgv::throughput::{plan, IntLayer, IntLinear, IntNetwork, Schedule};
use bgv::*;

const LAMBDA: u32 = 40;
const ANSWERS: usize = 12;

/// A linear layer 4 → 2 (a linear model's scores). The twin adds Δ with Δ·x = 0 for the
/// client's x (2·3 + 3·(−2) = 0, 5·1 + (−5)·1 = 0), 40 times over: the same outputs on x,
/// other weights, so another weighted sum of the query's noise in each answer.
fn twins() -> (IntNetwork, IntNetwork, Vec<i64>) {
    let x = vec![3, -2, 1, 1];
    let net = |k: i64| {
        let w = vec![1 + 2 * k, -2 + 3 * k, 3, 1, 2, 1, -1 + 5 * k, 2 - 5 * k];
        IntNetwork::new(4, vec![IntLayer::Linear(IntLinear { inputs: 4, weights: w, bias: vec![5, -3] })]).unwrap()
    };
    (net(0), net(40), x)
}

struct Client {
    params: Parameters,
    sk: SecretKey,
    pk: PublicKey,
    rk: RelinKey,
}

impl Client {
    fn new(params: &Parameters) -> Self {
        let mut kg = KeyGenerator::new(params);
        let sk = kg.secret_key();
        let pk = kg.public_key(&sk);
        let rk = kg.relin_key(&sk);
        Self { params: params.clone(), sk, pk, rk }
    }

    /// x in every slot, one ciphertext per feature.
    fn query(&self, x: &[i64]) -> Vec<Ciphertext> {
        let enc = Encoder::new(&self.params);
        let mut e = Encryptor::new(&self.params, &self.pk).unwrap();
        let top = self.params.max_level();
        x.iter().map(|&v| e.encrypt(&enc.encode(&vec![v; self.params.n()], top).unwrap()).unwrap()).collect()
    }
}

/// The server: the network on the query, then (with `flood`) each answer flooded under
/// the client's public key. Returns the answers as the client reads them off the wire.
fn answer(net: &IntNetwork, c: &Client, schedule: &Schedule, flood: Option<u32>, x: &[i64]) -> Vec<Ciphertext> {
    let eval = Evaluator::new(&c.params);
    let y = net.evaluate(&eval, &c.rk, schedule, c.query(x)).unwrap();
    let y = match flood {
        None => y,
        Some(b) => {
            let mut enc = Encryptor::new(&c.params, &c.pk).unwrap();
            y.iter().map(|ct| circuit::flood(&mut enc, ct, b, LAMBDA).unwrap()).collect()
        }
    };
    y.iter().map(|ct| Ciphertext::from_bytes(&c.params, &ct.to_bytes()).unwrap()).collect()
}

/// Welch's z between two samples.
fn welch(a: &[f64], b: &[f64]) -> f64 {
    let stats = |v: &[f64]| {
        let m = v.iter().sum::<f64>() / v.len() as f64;
        let var = v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (v.len() - 1) as f64;
        (m, var / v.len() as f64)
    };
    let ((ma, va), (mb, vb)) = (stats(a), stats(b));
    (ma - mb) / (va + vb).sqrt().max(1e-12)
}

#[test]
fn twins_are_told_apart_without_the_flood_and_not_with_it() {
    let (a, b, x) = twins();
    assert_eq!(a.reference(&x), b.reference(&x), "the twins agree on the client's input");
    assert_ne!(a.reference(&[1, 0, 0, 0]), b.reference(&[1, 0, 0, 0]), "and differ elsewhere");
    // One chain and schedule for both (the twin with the larger weights'), with room for the
    // flood; one flood for both (the wider need), as a model owner serving a family would.
    let (_, params) = plan(&b, -4, 4, Some(LAMBDA)).unwrap();
    let fresh = throughput::fresh_noise_bits(&params);
    let schedule = b.schedule_with(&params, fresh, Some(LAMBDA)).unwrap();
    assert!(a.check_schedule_with(&params, fresh, &schedule, Some(LAMBDA)).is_ok());
    let nz = |net: &IntNetwork| {
        noise::limit(&params, schedule.last) - net.check_schedule(&params, fresh, &schedule).unwrap()
    };
    let bits = circuit::flood_bits(&params, nz(&a).max(nz(&b)), LAMBDA);
    eprintln!("N = {}, answers at level {}, flood 2^{bits}", params.n(), schedule.last);
    let client = Client::new(&params);
    let dec = Decryptor::new(&params, &client.sk).unwrap();
    let enc = Encoder::new(&params);
    let want = a.reference(&x).unwrap()[0];

    let mut stats = Vec::new();
    for flood in [None, Some(bits)] {
        let (mut bound, mut measured) = ([vec![], vec![]], [vec![], vec![]]);
        for _ in 0..ANSWERS {
            for (i, net) in [&a, &b].into_iter().enumerate() {
                let y = answer(net, &client, &schedule, flood, &x);
                let got = enc.decode_signed(&dec.decrypt(&y[0]).unwrap()).unwrap();
                assert!(got.iter().all(|&v| v as i128 == want), "exact outputs in every slot ({flood:?})");
                bound[i].push(y[0].noise_bound_bits());
                measured[i].push(dec.measured_noise_budget(&y[0]).unwrap());
            }
        }
        let z = welch(&measured[0], &measured[1]);
        eprintln!(
            "flood {flood:?}: wire bounds {:.2} / {:.2} bits, measured budget {:.2} / {:.2}, |z| = {:.1}",
            bound[0][0],
            bound[1][0],
            measured[0].iter().sum::<f64>() / ANSWERS as f64,
            measured[1].iter().sum::<f64>() / ANSWERS as f64,
            z.abs()
        );
        stats.push((bound, z));
    }
    let (bound, z) = &stats[0];
    assert!(bound[0][0] < bound[1][0] - 3.0, "without the flood the wire's bound follows the weights");
    assert!(z.abs() > 8.0, "without the flood the decrypted noise tells the twins apart: |z| = {}", z.abs());
    let (bound, z) = &stats[1];
    assert!(bound.iter().flatten().all(|&v| v == bound[0][0]), "flooded: one public bound for every answer");
    assert!(z.abs() < 4.0, "flooded: the noise does not tell them apart: |z| = {}", z.abs());
}

#[test]
fn a_flood_that_cannot_decrypt_or_hide_the_noise_is_refused() {
    let (_, b, x) = twins();
    let (_, params) = plan(&b, -4, 4, None).unwrap();
    let fresh = throughput::fresh_noise_bits(&params);
    // Without room planned for it, the lowest answer level cannot hold a 2^-40 flood.
    let schedule = b.schedule(&params, fresh).unwrap();
    let client = Client::new(&params);
    let y = answer(&b, &client, &schedule, None, &x);
    let mut enc = Encryptor::new(&params, &client.pk).unwrap();
    let need = circuit::flood_bits(&params, y[0].noise_bound_bits(), LAMBDA);
    let e = circuit::flood(&mut enc, &y[0], need, LAMBDA).unwrap_err();
    assert!(matches!(e, Error::NoiseBudgetExhausted { op: "flood", .. }), "{e}");
    // A flood narrower than the answer's noise needs is refused too, wherever it would fit.
    let e = circuit::flood(&mut enc, &y[0], need - 1, LAMBDA).unwrap_err();
    assert!(matches!(e, Error::NoiseBudgetExhausted { op: "flood", .. }), "{e}");
    // And a schedule that must hold the flood is refused on a chain without room for it.
    let e = b.check_schedule_with(&params, fresh, &schedule, Some(LAMBDA)).unwrap_err();
    assert!(matches!(e, Error::NoiseBudgetExhausted { op: "flood", .. }), "{e}");
}
