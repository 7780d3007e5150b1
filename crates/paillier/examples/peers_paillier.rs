//! heinfer's Paillier on a linear model, for `bench/peers.sh paillier`.
//!
//! `peers_paillier MODEL.json` reads `{"weights": [[f64; d]; k], "bias": [f64; k],
//! "x": [[f64; d]; samples], "timed": usize}` (scaler already folded into the weights),
//! makes a 3072-bit key, and per sample encrypts the d inputs, evaluates the k scores
//! (in each re-randomization mode) and decrypts them. Prints one JSON line: per-step
//! median milliseconds over the first `timed` samples, request/answer bytes, and the
//! decoded scores of every sample (for the agreement check against scikit-learn).
//! Set PAILLIER_KEY to a file of `SecretKey::to_bytes` hex to skip key generation, and
//! PAILLIER_KEY_OUT to a file to write the key used (hex) to.

use std::time::Instant;

use paillier::{Ciphertext, Evaluator, FixedPoint, LinearModel, Rerandomize, SecretKey};
use rand_chacha::rand_core::SeedableRng;
use serde::Deserialize;

#[derive(Deserialize)]
struct Input {
    weights: Vec<Vec<f64>>,
    bias: Vec<f64>,
    x: Vec<Vec<f64>>,
    timed: usize,
}

/// Fractional bits of the inputs (raw breast-cancer features reach ~4300: 48 keeps their
/// rounding negligible and costs nothing, inputs are never exponents) and of the weights
/// (the folded scaler makes them span 1e-3 .. 1e3; every weight bit is a squaring per score).
const INPUT_FRAC: u32 = 48;
const WEIGHT_FRAC: u32 = 36;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        return f64::NAN;
    }
    v[v.len() / 2]
}

fn ms(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1e3
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args().nth(1).ok_or("usage: peers_paillier MODEL.json")?;
    let input: Input = serde_json::from_str(&std::fs::read_to_string(path)?)?;
    let mut rng = rand_chacha::ChaCha20Rng::from_rng(rand_core::OsRng).map_err(|e| e.to_string())?;

    let t = Instant::now();
    let sk = match std::env::var("PAILLIER_KEY").ok().filter(|p| !p.is_empty()) {
        Some(p) => {
            let h = std::fs::read_to_string(p)?;
            let h = h.trim();
            let bytes: Vec<u8> =
                (0..h.len() / 2).map(|i| u8::from_str_radix(&h[2 * i..2 * i + 2], 16)).collect::<Result<_, _>>()?;
            SecretKey::from_bytes(&bytes)?
        }
        None => SecretKey::generate()?,
    };
    let keygen_s = t.elapsed().as_secs_f64();
    if let Ok(p) = std::env::var("PAILLIER_KEY_OUT") {
        // the bench's own throwaway key, so that later rounds skip the safe-prime search
        std::fs::write(p, sk.to_bytes().iter().map(|b| format!("{b:02x}")).collect::<String>())?;
    }
    let pk_bytes = sk.public_key().to_bytes();

    let inp = FixedPoint::new(INPUT_FRAC)?;
    let model = LinearModel::quantize(&input.weights, &input.bias, inp, FixedPoint::new(WEIGHT_FRAC)?)?;
    let max_x = input.x.iter().flatten().fold(0.0f64, |m, v| m.max(v.abs()));
    // inputs below 2^(INPUT_FRAC + bits(max |x|) + 1) once encoded: the bound decrypt_bounded is told
    let bound = model.score_bound_bits(INPUT_FRAC + (max_x.log2().ceil().max(0.0) as u32) + 1);

    // The server's side: the key as it arrives on the wire, an evaluator per mode.
    let server_key = paillier::PublicKey::from_bytes(&pk_bytes)?;
    let t = Instant::now();
    let main = Evaluator::new(server_key.clone(), Rerandomize::FixedBase, &mut rng);
    let setup_ms = ms(t);
    let evaluators: Vec<(&str, Evaluator)> = vec![
        ("evaluate", main),
        ("evaluate_fresh_rn", Evaluator::new(server_key.clone(), Rerandomize::Fresh, &mut rng)),
        ("evaluate_no_rerand", Evaluator::new(server_key.clone(), Rerandomize::Off, &mut rng)),
        ("evaluate_precomputed", Evaluator::new(server_key.clone(), Rerandomize::FixedBase, &mut rng)),
    ];
    // The offline half of an offline/online server: re-randomizers made before the requests.
    let t = Instant::now();
    evaluators[3].1.precompute(input.x.len(), &mut rng);
    let precompute_ms_each = ms(t) / input.x.len().max(1) as f64;

    let mut times: std::collections::BTreeMap<&str, Vec<f64>> = Default::default();
    let (mut request, mut answer) = (0usize, 0usize);
    let mut scores = Vec::new();
    let mut exact = true;
    for (s, x) in input.x.iter().enumerate() {
        let timed = s < input.timed;
        let t = Instant::now();
        let enc = x.iter().map(|&v| inp.encode(v)).collect::<Result<Vec<_>, _>>()?;
        let cts = enc.iter().map(|m| sk.encrypt(m, &mut rng)).collect::<Result<Vec<Ciphertext>, _>>()?;
        let req = sk.public_key().write_ciphertexts(&cts);
        if timed {
            times.entry("encrypt").or_default().push(ms(t));
        }
        request = req.len();

        let t = Instant::now();
        let got = server_key.read_ciphertexts(&req)?;
        if timed {
            times.entry("read_request").or_default().push(ms(t));
        }
        let mut ans = Vec::new();
        for (name, ev) in &evaluators {
            let t = Instant::now();
            let out = ev.evaluate(&model, &got, &mut rng)?;
            let bytes = server_key.write_ciphertexts(&out);
            if timed {
                times.entry(name).or_default().push(ms(t));
            }
            if *name == "evaluate" {
                ans = bytes;
            }
        }
        answer = ans.len();

        let t = Instant::now();
        let out = sk.public_key().read_ciphertexts(&ans)?;
        let dec = out.iter().map(|c| sk.decrypt_bounded(c, bound)).collect::<Result<Vec<_>, _>>()?;
        let vals: Vec<f64> = dec.iter().map(|v| model.score_encoding().decode(v)).collect();
        if timed {
            times.entry("decrypt").or_default().push(ms(t));
            let t = Instant::now();
            let full = out.iter().map(|c| sk.decrypt(c)).collect::<Result<Vec<_>, _>>()?;
            times.entry("decrypt_full_crt").or_default().push(ms(t));
            exact &= full == dec;
        }
        exact &= dec == model.evaluate_plain(&enc)?;
        scores.push(vals);
    }
    let med: serde_json::Map<String, serde_json::Value> =
        times.into_iter().map(|(k, v)| (k.to_string(), serde_json::json!((median(v) * 1e4).round() / 1e4))).collect();
    println!(
        "{}",
        serde_json::json!({
            "impl": "heinfer-paillier",
            "version": env!("CARGO_PKG_VERSION"),
            "threads": 1,
            "key_bits": sk.public_key().modulus_bits(),
            "keygen_s": keygen_s,
            "server_setup_ms": setup_ms,
            "precompute_ms_each": precompute_ms_each,
            "input_frac_bits": INPUT_FRAC,
            "weight_frac_bits": WEIGHT_FRAC,
            "score_precision": model.score_encoding().precision(),
            "exact_vs_integer_reference": exact,
            "samples": input.x.len(),
            "timed": input.timed.min(input.x.len()),
            "ms": med,
            "bytes": {"request": request, "answer": answer, "public_key": pk_bytes.len()},
            "scores": scores,
        })
    );
    Ok(())
}
