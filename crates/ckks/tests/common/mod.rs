#![allow(dead_code)]
use ckks::*;

pub fn rand_vec(n: usize, seed: u64, amp: f64) -> Vec<f64> {
    let mut x = seed.wrapping_mul(0x9e3779b97f4a7c15) | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            ((x >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0) * amp
        })
        .collect()
}

pub fn max_err(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f64::max)
}

pub struct Kit {
    pub params: Parameters,
    pub sk: SecretKey,
    pub pk: PublicKey,
    pub enc: Encoder,
    pub eval: Evaluator,
    pub rk: RelinKey,
}

impl Kit {
    pub fn new(params: Parameters) -> Self {
        let mut kg = KeyGenerator::new(&params);
        let sk = kg.secret_key();
        let pk = kg.public_key(&sk);
        let rk = kg.relin_key(&sk);
        Self { enc: Encoder::new(&params), eval: Evaluator::new(&params), params, sk, pk, rk }
    }
    pub fn n8192() -> Self {
        Self::new(Parameters::builder().log_n(13).q_bits(&[60, 40, 40]).p_bits(&[60]).build().unwrap())
    }
    pub fn encrypt(&self, v: &[f64]) -> Ciphertext {
        self.encrypt_at(v, self.params.max_level())
    }
    pub fn encrypt_at(&self, v: &[f64], level: usize) -> Ciphertext {
        let pt = self.enc.encode(v, level, self.params.default_scale()).unwrap();
        Encryptor::new(&self.pk).encrypt(&pt).unwrap()
    }
    pub fn decrypt(&self, ct: &Ciphertext) -> Vec<f64> {
        self.enc.decode(&Decryptor::new(&self.sk).decrypt(ct).unwrap()).unwrap()
    }
    pub fn galois(&self, steps: &[i64], conj: bool) -> GaloisKeys {
        KeyGenerator::new(&self.params).galois_keys(&self.sk, steps, conj)
    }
}
