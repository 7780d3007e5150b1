//! Public features in the in-process commands (`run`, `bench`, `evaluate`): the
//! `PLAIN_INPUT` a client would send, and the plaintext simulation with it.

use model::HeModel;
use runtime::public::{PlainInput, PLAIN_DATATYPE};

/// The request's `PLAIN_INPUT` for one whole sample; None for a fully encrypted model.
pub fn plain_input(m: &HeModel, x: &[f64]) -> Option<PlainInput> {
    client::public::plain_values(&m.client, x).map(|values| PlainInput {
        datatype: PLAIN_DATATYPE.into(),
        shape: vec![values.len() as i64],
        values,
    })
}

/// What the answer decrypts to, up to CKKS noise (public features' share included).
pub fn simulate(m: &HeModel, x: &[f64]) -> Result<Vec<f64>, String> {
    let slots = m.client.pack_input(x).map_err(|e| e.to_string())?;
    let x_pub = m.public.as_ref().map(|p| model::public::split_sample(&p.indices, x));
    let out = model::public::simulate_public(m, &slots, x_pub.as_deref()).map_err(|e| e.to_string())?;
    m.client.unpack_output(&out).map_err(|e| e.to_string())
}
