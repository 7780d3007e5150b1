//! Triton `config.pbtxt` for an heinfer model: the template lives in
//! `runtime::protocol`, beside the names the servers read it with.

use model::HeModel;

/// Parameter key under which the client spec JSON is stored.
pub const CLIENT_SPEC_KEY: &str = runtime::protocol::CLIENT_SPEC_PARAM;

pub fn config_pbtxt(m: &HeModel) -> String {
    runtime::protocol::config_pbtxt(&m.name, &m.client.to_json())
}
