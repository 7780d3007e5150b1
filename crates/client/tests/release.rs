//! The Li–Micciancio key-recovery attack (Eurocrypt 2021) against heinfer's CKKS, and
//! the release-safe decryption that defeats it.
//!
//! A released vector z = Decode(c0 + c1·s) gives the attacker, by re-encoding 2z, the
//! polynomial p + κ(p) exactly (p = c0 + c1·s, κ: X ↦ X⁻¹, since only real parts are
//! released). In the NTT domain κ pairs evaluation points j and π(j), so two released
//! ciphertexts give, for every pair, two linear equations mod q in s(j) and s(π(j)):
//! the whole secret key, by Cramer's rule. The attacker is checked the strong way: with
//! what it recovered it decrypts a third ciphertext that was never released.

use ckks::*;
use client::{decrypt_for_release, ClientKeys, Guarantee, Release, ReleaseError};
use ring::Poly;

const N_LOG: u32 = 13;

fn params(q_bits: &[u32]) -> Parameters {
    Parameters::builder().log_n(N_LOG).q_bits(q_bits).build().unwrap()
}

fn random_values(n: usize, seed: u64) -> Vec<f64> {
    // A small LCG: the test needs varied values, not unpredictable ones.
    let mut x = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((x >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0
        })
        .collect()
}

/// A fresh ciphertext of `values` at level 0 (the level a model's output has).
fn encrypt(keys: &ClientKeys, values: &[f64], scale: f64) -> Ciphertext {
    let p = keys.params();
    let pt = Encoder::new(p).encode(values, 0, scale).unwrap();
    Decryptor::new(keys.secret_key()).encrypt_symmetric(&pt).unwrap().expand()
}

/// The attacker: from ciphertexts and their released real slot values, the secret key's
/// coefficients — or None when what was released does not determine a ternary key.
fn recover_key(params: &Parameters, released: &[(&Ciphertext, Vec<f64>)]) -> Option<Vec<i64>> {
    assert_eq!(released.len(), 2);
    let ctx = params.ctx();
    let q = &ctx.moduli[0];
    let n = params.n();
    let kappa = params.ctx().galois_perm_transient(params.conjugation_element());
    let enc = Encoder::new(params);
    // d_k = (p_k + κ(p_k)) − c0_k − κ(c0_k) = c1_k·s + κ(c1_k)·κ(s), pointwise in NTT form.
    let mut d = Vec::new();
    let mut c1s = Vec::new();
    for (ct, z) in released {
        let doubled: Vec<f64> = z.iter().map(|v| 2.0 * v).collect();
        let sym = enc.encode(&doubled, 0, ct.scale()).ok()?;
        let (c0, c1) = ct.parts();
        let mut c0k = vec![0u64; n];
        kappa.apply_into(&mut c0k, c0.limb(0));
        let dk: Vec<u64> = (0..n).map(|j| q.sub(q.sub(sym.poly().limb(0)[j], c0.limb(0)[j]), c0k[j])).collect();
        d.push(dk);
        c1s.push(c1.limb(0).to_vec());
    }
    let mut pair = vec![0u64; n];
    let ids: Vec<u64> = (0..n as u64).collect();
    kappa.apply_into(&mut pair, &ids);
    let mut s = vec![0u64; n];
    for j in 0..n {
        let k = pair[j] as usize;
        if k < j {
            continue;
        }
        // [a1 b1; a2 b2]·[s_j; s_k] = [d1; d2] with a = c1(j), b = c1(k).
        let (a1, b1, a2, b2) = (c1s[0][j], c1s[0][k], c1s[1][j], c1s[1][k]);
        let det = q.sub(q.mul(a1, b2), q.mul(a2, b1));
        if det == 0 {
            return None;
        }
        let inv = q.inv(det);
        s[j] = q.mul(inv, q.sub(q.mul(d[0][j], b2), q.mul(d[1][j], b1)));
        s[k] = q.mul(inv, q.sub(q.mul(a1, d[1][j]), q.mul(a2, d[0][j])));
    }
    let mut poly = Poly::zero(n, 1);
    poly.limb_mut(0).copy_from_slice(&s);
    poly.intt(&[&ctx.ntt[0]]);
    let coeffs: Vec<i64> = poly.limb(0).iter().map(|&c| q.center(c)).collect();
    coeffs.iter().all(|c| c.abs() <= 1).then_some(coeffs)
}

/// Decrypts a level-0 ciphertext with a key the attacker holds.
fn decrypt_with(params: &Parameters, s: &[i64], ct: &Ciphertext) -> Vec<f64> {
    let ctx = params.ctx();
    let q = &ctx.moduli[0];
    let mut sk = Poly::from_signed(s, &[q]);
    sk.ntt(&[&ctx.ntt[0]]);
    let (c0, c1) = ct.parts();
    let mut m = Poly::zero(params.n(), 1);
    for j in 0..params.n() {
        m.limb_mut(0)[j] = q.add(c0.limb(0)[j], q.mul(c1.limb(0)[j], sk.limb(0)[j]));
    }
    Encoder::new(params).decode(&Plaintext::new(params, m, ct.scale()).unwrap()).unwrap()
}

fn max_diff(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f64::max)
}

struct Scene {
    params: Parameters,
    keys: ClientKeys,
    released: [Ciphertext; 2],
    secret: Ciphertext,
    secret_values: Vec<f64>,
}

fn scene(q_bits: &[u32], scale: f64) -> Scene {
    let params = params(q_bits);
    let keys = ClientKeys::generate(&params);
    let slots = params.slots();
    let released = [encrypt(&keys, &random_values(slots, 1), scale), encrypt(&keys, &random_values(slots, 2), scale)];
    let secret_values = random_values(slots, 3);
    let secret = encrypt(&keys, &secret_values, scale);
    Scene { params, keys, released, secret, secret_values }
}

#[test]
fn plain_decryptions_released_give_away_the_secret_key() {
    let sc = scene(&[50, 40], 2f64.powi(30));
    let enc = Encoder::new(&sc.params);
    let dec = Decryptor::new(sc.keys.secret_key());
    let released: Vec<_> = sc.released.iter().map(|ct| (ct, enc.decode(&dec.decrypt(ct).unwrap()).unwrap())).collect();
    let s = recover_key(&sc.params, &released).expect("the attack recovers a ternary key from plain decryptions");
    // Not just some ternary polynomial: the attacker now reads what it was never shown.
    let stolen = decrypt_with(&sc.params, &s, &sc.secret);
    assert!(max_diff(&stolen, &sc.secret_values) < 1e-6, "{}", max_diff(&stolen, &sc.secret_values));
    assert!(s.iter().any(|&c| c != 0));
}

#[test]
fn release_safe_decryptions_do_not() {
    let sc = scene(&[50, 40], 2f64.powi(30));
    let enc = Encoder::new(&sc.params);
    let sk = sc.keys.secret_key();
    // The honest error bound: fresh noise, |e| ≤ 6σ per coefficient, over Δ.
    let max_error = 32.0 / 2f64.powi(30);

    // Rounding: the values stay useful, the key stays hidden.
    let policy = Release::Round { bits: 12 };
    let released: Vec<_> =
        sc.released.iter().map(|ct| (ct, decrypt_for_release(sk, &enc, ct, &policy).unwrap().0)).collect();
    let truth = random_values(sc.params.slots(), 1);
    assert!(max_diff(&released[0].1, &truth) <= 2f64.powi(-13) + 1e-6);
    assert!(recover_key(&sc.params, &released).is_none(), "rounding must not leave the key recoverable");

    // Flooding where these parameters allow it (λ = 20): statistically nothing to solve for.
    let policy = Release::Flood { security_bits: 20, releases: 2, max_error, max_noise: None };
    let released: Vec<_> = sc
        .released
        .iter()
        .map(|ct| {
            let (v, g) = decrypt_for_release(sk, &enc, ct, &policy).unwrap();
            assert!(matches!(g, Guarantee::Flooded { security_bits: 20, releases: 2, .. }));
            (ct, v)
        })
        .collect();
    assert!(recover_key(&sc.params, &released).is_none(), "flooding must not leave the key recoverable");
}

#[test]
fn flooding_refuses_what_the_parameters_cannot_give_and_keeps_values_when_they_can() {
    let sc = scene(&[50, 40], 2f64.powi(30));
    let enc = Encoder::new(&sc.params);
    let sk = sc.keys.secret_key();
    let ct = &sc.released[0];
    // 2^-40 over a thousand releases needs ~2^67 of noise: more than a 50-bit modulus holds.
    let err = decrypt_for_release(sk, &enc, ct, &Release::flood(1000, 1e-8)).unwrap_err();
    assert!(matches!(err, ReleaseError::Infeasible { security_bits: 40, .. }), "{err}");
    assert!(err.to_string().contains("round:BITS"), "{err}");
    // A noise ceiling the flooding would break is refused, not silently exceeded.
    let strict = Release::Flood { security_bits: 20, releases: 1, max_error: 1e-8, max_noise: Some(1e-3) };
    assert!(matches!(decrypt_for_release(sk, &enc, ct, &strict), Err(ReleaseError::TooNoisy { .. })));
    // Rounding finer than the noise would release the noise.
    assert!(matches!(
        decrypt_for_release(sk, &enc, ct, &Release::Round { bits: 24 }),
        Err(ReleaseError::RoundTooFine { .. })
    ));

    // A parameter set that budgets for flooding (Δ = 2^55 on a 60-bit prime): λ = 20
    // costs 2^37 of noise, ~1e-4 on each value, as the guarantee says.
    let wide = scene(&[60], 2f64.powi(55));
    let enc = Encoder::new(&wide.params);
    let policy = Release::Flood { security_bits: 20, releases: 1, max_error: 32.0 / 2f64.powi(55), max_noise: None };
    let (values, g) = decrypt_for_release(wide.keys.secret_key(), &enc, &wide.secret, &policy).unwrap();
    let Guarantee::Flooded { noise_std, .. } = g else { panic!("{g}") };
    assert!(noise_std < 1e-3 && noise_std > 1e-6, "{noise_std}");
    let err = max_diff(&values, &wide.secret_values);
    assert!(err < 8.0 * noise_std && err > noise_std / 10.0, "error {err} against noise std {noise_std}");
    assert!(g.to_string().contains("2^-20"));
}
