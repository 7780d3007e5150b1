//! Circuit privacy on the server: the answer's noise flooded under the client's public
//! key, so that what the client decrypts depends on the outputs and not on the weights
//! (`model::circuit` says why the flood is wide enough and what it costs).
//!
//! Each answer ciphertext (already masked outside the output layout by the compiled
//! program) gets ct + Enc_pk(u): a public-key encryption, at the answer's level and
//! scale, of the plaintext polynomial u uniform in [−2^b, 2^b)^N. Enc_pk's own
//! randomness (ternary v, Gaussian e0, e1) and u both come from OS-seeded ChaCha20
//! streams (`ring::Sampler`), fresh per answer; u is exact (b + 1 uniform bits per
//! coefficient), not a float approximation.

use ckks::{Ciphertext, Encryptor, Evaluator, Plaintext, PublicKey};
use model::CircuitPrivacy;
use ring::{Poly, Sampler};

/// Floods every answer ciphertext of a circuit-private model.
pub struct Flooding {
    pub config: CircuitPrivacy,
}

impl Flooding {
    pub fn new(config: CircuitPrivacy) -> Self {
        Self { config }
    }

    /// ct + Enc_pk(u) for each answer ciphertext.
    pub fn flood(&self, eval: &Evaluator, pk: &PublicKey, out: &mut [Ciphertext]) -> Result<(), ckks::Error> {
        let mut enc = Encryptor::new(pk);
        for ct in out.iter_mut() {
            let zero = enc.encrypt(&flood_plaintext(ct, self.config.flood_bits)?)?;
            *ct = eval.add(ct, &zero)?;
        }
        Ok(())
    }
}

/// u uniform in [−2^bits, 2^bits)^N, as a plaintext at `ct`'s level and scale.
fn flood_plaintext(ct: &Ciphertext, bits: u32) -> Result<Plaintext, ckks::Error> {
    let params = ct.params();
    let ctx = params.ctx();
    let level = ct.level();
    let moduli: Vec<_> = ctx.moduli[..=level].iter().collect();
    // The server's own randomness: nothing of the client's, so no wiping is needed.
    let noise = Sampler::os_seeded().uniform_signed(params.n(), bits);
    let mut poly = Poly::from_signed_wide(&noise, &moduli);
    poly.ntt(&ctx.ntt[..=level].iter().collect::<Vec<_>>());
    Plaintext::new(params, poly, ct.scale())
}
