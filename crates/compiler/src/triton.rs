//! Triton `config.pbtxt` for an heinfer model: the template lives in
//! `runtime::protocol`, beside the names the servers read it with.

use model::HeModel;

/// The model's `config.pbtxt`, its client spec embedded.
pub fn config_pbtxt(m: &HeModel) -> String {
    runtime::protocol::config_pbtxt_with(&m.name, &m.client.to_json(), m.public.is_some(), m.throughput.is_some())
}
