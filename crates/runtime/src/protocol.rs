//! The serving protocol's names and defaults, in one place: the tensors of an heinfer
//! model, the `config.pbtxt` parameters both front ends read (the Triton backend and
//! `heinfer-server`), the parameter that publishes the client spec, and the
//! `config.pbtxt` that `heinfer compile` writes. The compiler, both front ends and the
//! Python package read them from here, so a rename cannot leave one of them behind.

use std::fmt;

/// Serialized ciphertexts of one sample (BYTES, dims `[-1]`).
pub const ENCRYPTED_INPUT: &str = "ENCRYPTED_INPUT";
/// Hex SHA-256 of a registered evaluation-key bundle (BYTES, dims `[1]`).
pub const KEY_ID: &str = "KEY_ID";
/// A key bundle to register and use (BYTES, dims `[1]`, optional).
pub const EVALUATION_KEYS: &str = "EVALUATION_KEYS";
/// The public features' values in clear (FP32, dims `[-1]`, optional; models compiled
/// with `--public-features` only).
pub const PLAIN_INPUT: &str = "PLAIN_INPUT";
/// `"<batch id>:<k>/<n>"`: this request is part k of n of one layout-T batch (BYTES,
/// dims `[1]`, optional; models with layout T only): the `assembly` module.
pub const BATCH_PART: &str = "BATCH_PART";
/// The layout-M block (0..B) this request's sample is in (INT32, dims `[1]`; merged
/// models only, [`merged_config_pbtxt`]): same-key requests on distinct blocks are added
/// and answered by one evaluation.
pub const BLOCK: &str = "BLOCK";
/// Serialized result ciphertexts (BYTES, dims `[-1]`).
pub const ENCRYPTED_OUTPUT: &str = "ENCRYPTED_OUTPUT";

/// Every input tensor a model may declare, in the order `config.pbtxt` lists them.
pub const INPUTS: [&str; 5] = [ENCRYPTED_INPUT, KEY_ID, EVALUATION_KEYS, PLAIN_INPUT, BATCH_PART];
/// Inputs a request cannot do without (a key id, or keys sent with it, is checked later).
pub const REQUIRED_INPUTS: [&str; 2] = [ENCRYPTED_INPUT, KEY_ID];

/// `backend:` of an heinfer model's `config.pbtxt`; Triton loads `libtriton_heinfer.so` for it.
pub const BACKEND: &str = "heinfer";
/// The model file inside a version directory.
pub const MODEL_FILE: &str = "model.hem";
/// The model config beside the version directories.
pub const CONFIG_FILE: &str = "config.pbtxt";
/// The version directory `heinfer compile` writes.
pub const MODEL_VERSION: &str = "1";

/// The model-config parameter that holds the client spec (JSON), which clients read
/// with a stock `get_model_config` call.
pub const CLIENT_SPEC_PARAM: &str = "heinfer_client_spec";
/// Memory bound of the evaluation-key store, in MB.
pub const KEY_STORE_MB_PARAM: &str = "heinfer_key_store_mb";
/// Directory of content-addressed key bundles shared by replicas.
pub const KEY_STORE_DIR_PARAM: &str = "heinfer_key_store_dir";
/// Bytes the key directory's bundles may take, in MB (least recently used removed beyond).
pub const KEY_STORE_DIR_MB_PARAM: &str = "heinfer_key_store_dir_mb";
/// Largest request accepted, in MB.
pub const MAX_REQUEST_MB_PARAM: &str = "heinfer_max_request_mb";

/// The ε each key id may spend on a model with output DP (overrides `compile --dp-budget`;
/// `none` lifts the limit, the spending is still counted).
pub const DP_BUDGET_PARAM: &str = "heinfer_dp_budget";
/// Response parameters of a model with output DP (doubles): the ε this answer cost,
/// the ε the key id has spent on the model, its budget and what is left (the last two
/// only when there is a budget).
pub const DP_EPSILON_QUERY: &str = "heinfer_dp_epsilon_query";
pub const DP_EPSILON_SPENT: &str = "heinfer_dp_epsilon_spent";
pub const DP_EPSILON_BUDGET: &str = "heinfer_dp_epsilon_budget";
pub const DP_EPSILON_REMAINING: &str = "heinfer_dp_epsilon_remaining";

/// Reads `heinfer_dp_budget`: Some(None) lifts the limit, Some(Some(ε)) sets it.
pub fn dp_budget(value: &str) -> Result<Option<f64>, SettingError> {
    let v = value.trim();
    if v.eq_ignore_ascii_case("none") || v.eq_ignore_ascii_case("unlimited") {
        return Ok(None);
    }
    match v.parse::<f64>() {
        Ok(e) if e.is_finite() && e > 0.0 => Ok(Some(e)),
        _ => Err(SettingError { param: DP_BUDGET_PARAM, value: value.into() }),
    }
}

/// Key bundles of a deep model are hundreds of MB; a few clients' worth by default.
pub const DEFAULT_KEY_STORE_MB: usize = 2048;
/// A request carries at most a key bundle (tens of MB) and a sample's ciphertexts.
pub const DEFAULT_MAX_REQUEST_MB: usize = 256;

/// Bytes all pending multi-request layout-T batches of a model may hold, in MB.
pub const PENDING_BATCHES_MB_PARAM: &str = "heinfer_pending_batches_mb";
/// Of those, what the batches of one key id may hold, in MB: one client cannot fill the
/// model's whole allowance and lock the others out.
pub const PENDING_BATCHES_PER_KEY_MB_PARAM: &str = "heinfer_pending_batches_per_key_mb";
/// Seconds a multi-request batch may wait for its parts after its first, before it is
/// dropped and its memory freed.
pub const BATCH_TIMEOUT_S_PARAM: &str = "heinfer_batch_timeout_s";
pub const DEFAULT_PENDING_BATCHES_MB: usize = 1024;
pub const DEFAULT_PENDING_BATCHES_PER_KEY_MB: usize = 256;
pub const DEFAULT_BATCH_TIMEOUT_S: u64 = 60;

/// A configuration value that is not what its parameter takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingError {
    pub param: &'static str,
    pub value: String,
}

impl fmt::Display for SettingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.param == DP_BUDGET_PARAM {
            return write!(f, "parameter {} must be a positive ε or \"none\", got {:?}", self.param, self.value);
        }
        if self.param == BATCH_TIMEOUT_S_PARAM {
            return write!(f, "parameter {} must be a positive number of seconds, got {:?}", self.param, self.value);
        }
        write!(f, "parameter {} must be a positive number of MB, got {:?}", self.param, self.value)
    }
}

impl std::error::Error for SettingError {}

/// Reads a size parameter given in MB (fractions allowed: tests use small stores) as bytes.
pub fn megabytes(param: &'static str, value: &str) -> Result<usize, SettingError> {
    value
        .trim()
        .parse::<f64>()
        .ok()
        .filter(|m| m.is_finite() && *m > 0.0)
        .map(|m| (m * 1048576.0) as usize)
        .ok_or_else(|| SettingError { param, value: value.to_string() })
}

/// A `config.pbtxt` string literal's escaping (the client spec is JSON, full of quotes).
fn pbtxt_escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        match c {
            '\\' => o.push_str("\\\\"),
            '"' => o.push_str("\\\""),
            '\n' => o.push_str("\\n"),
            c => o.push(c),
        }
    }
    o
}

/// Requests Triton lets wait for an instance, per model, before it answers UNAVAILABLE:
/// without it Triton's queue is unbounded and so is the memory of the bodies waiting in
/// it (docs/reliability.md). `heinfer serve` bounds its queue by its own options.
pub const MAX_QUEUE_SIZE: usize = 32;

/// The `config.pbtxt` of an heinfer model named `name` whose clients follow
/// `client_spec_json` (the tensors of DESIGN.md "Serving"). Triton and
/// `heinfer-server` both read it; the layout is what Triton 2.51 accepts.
pub fn config_pbtxt(name: &str, client_spec_json: &str) -> String {
    config_pbtxt_with(name, client_spec_json, false, false)
}

/// Reads a duration parameter given in seconds (fractions allowed).
pub fn seconds(param: &'static str, value: &str) -> Result<std::time::Duration, SettingError> {
    value
        .trim()
        .parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && *s > 0.0 && *s < 1e9)
        .map(std::time::Duration::from_secs_f64)
        .ok_or_else(|| SettingError { param, value: value.to_string() })
}

/// [`config_pbtxt`]; `plain_input`: the model takes public features, and declares the
/// optional `PLAIN_INPUT` (FP32, dims `[-1]`); `batch_parts`: the model has layout T, and
/// declares the optional `BATCH_PART` (BYTES, dims `[1]`).
pub fn config_pbtxt_with(name: &str, client_spec_json: &str, plain_input: bool, batch_parts: bool) -> String {
    let mut extra = String::new();
    if plain_input {
        extra += &format!(",\n  {{ name: \"{PLAIN_INPUT}\" data_type: TYPE_FP32 dims: [ -1 ] optional: true }}");
    }
    if batch_parts {
        extra += &format!(",\n  {{ name: \"{BATCH_PART}\" data_type: TYPE_STRING dims: [ 1 ] optional: true }}");
    }
    render_config(name, client_spec_json, 0, &extra, "")
}

/// The suffix of a model's merged twin (`heinfer compile --merged`): `<name>_merged`.
pub const MERGED_SUFFIX: &str = "_merged";
/// Microseconds Triton's dynamic batcher waits for more same-key requests to merge with
/// the first (what `merged_config_pbtxt` writes; edit the config to change it).
pub const MERGE_DELAY_US: u64 = 2000;

/// The `config.pbtxt` of a layout-M model's merged twin: `max_batch_size` B and Triton's
/// dynamic batcher, so Triton hands the backend several requests at once; the backend's
/// batching strategy (`TRITONBACKEND_ModelBatch*`, `batchstrategy.so` beside the backend)
/// puts only requests of one `KEY_ID` on distinct `BLOCK`s in one batch, and the backend
/// adds their ciphertexts and runs the network once. Every tensor gains Triton's batch
/// dimension: a request sends `[1, n]` ciphertexts, `[1, 1]` key id and block. The model
/// file is the model's own (`model.hem`): its layout-L and layout-M clients use the
/// model without the suffix unchanged.
pub fn merged_config_pbtxt(name: &str, client_spec_json: &str, blocks: usize) -> String {
    let block = format!(",\n  {{ name: \"{BLOCK}\" data_type: TYPE_INT32 dims: [ 1 ] }}");
    render_config(name, client_spec_json, blocks, &block, &format!("max_queue_delay_microseconds: {MERGE_DELAY_US} "))
}

/// The one `config.pbtxt` template: `extra_inputs` after the three every model has,
/// `batching` inside `dynamic_batching` before its queue policy.
fn render_config(name: &str, client_spec_json: &str, max_batch: usize, extra_inputs: &str, batching: &str) -> String {
    format!(
        r#"name: "{name}"
backend: "{BACKEND}"
max_batch_size: {max_batch}
input [
  {{ name: "{ENCRYPTED_INPUT}" data_type: TYPE_STRING dims: [ -1 ] }},
  {{ name: "{KEY_ID}" data_type: TYPE_STRING dims: [ 1 ] }},
  {{ name: "{EVALUATION_KEYS}" data_type: TYPE_STRING dims: [ 1 ] optional: true }}{extra_inputs}
]
output [
  {{ name: "{ENCRYPTED_OUTPUT}" data_type: TYPE_STRING dims: [ -1 ] }}
]
instance_group [ {{ kind: KIND_CPU count: 1 }} ]
dynamic_batching {{ {batching}default_queue_policy {{ max_queue_size: {MAX_QUEUE_SIZE} }} }}
parameters: {{
  key: "{CLIENT_SPEC_PARAM}"
  value: {{ string_value: "{spec}" }}
}}
"#,
        name = pbtxt_escape(name),
        spec = pbtxt_escape(client_spec_json)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn megabytes_parse_and_refuse() {
        assert_eq!(megabytes(KEY_STORE_MB_PARAM, "2").unwrap(), 2 << 20);
        assert_eq!(megabytes(KEY_STORE_MB_PARAM, " 0.5 ").unwrap(), 1 << 19);
        for bad in ["0", "-1", "lots", "", "NaN", "inf"] {
            let e = megabytes(MAX_REQUEST_MB_PARAM, bad).unwrap_err();
            assert!(e.to_string().contains(MAX_REQUEST_MB_PARAM), "{e}");
        }
    }

    #[test]
    fn template_escapes_and_names_every_tensor() {
        let c = config_pbtxt("m\"x", "{\"a\":\"b\\c\"}\n");
        assert!(c.starts_with("name: \"m\\\"x\"\n"), "{c}");
        assert!(c.contains(r#"string_value: "{\"a\":\"b\\c\"}\n""#), "{c}");
        for t in INPUTS[..3].iter().chain([&ENCRYPTED_OUTPUT]) {
            assert!(c.contains(&format!("name: \"{t}\"")), "{t}");
        }
        assert!(c.contains("backend: \"heinfer\"") && c.contains("key: \"heinfer_client_spec\""));
        assert!(c.contains(&format!("max_queue_size: {MAX_QUEUE_SIZE}")), "{c}");
        assert!(!c.contains(PLAIN_INPUT));
        assert!(!c.contains(BATCH_PART));
        let t = merged_config_pbtxt("m_merged", "{}", 8);
        assert!(t.contains("max_batch_size: 8\n") && t.contains("max_queue_delay_microseconds: 2000 "), "{t}");
        assert!(t.contains(r#"{ name: "BLOCK" data_type: TYPE_INT32 dims: [ 1 ] }"#), "{t}");
        assert!(c.contains("max_batch_size: 0\n") && !c.contains("BLOCK"), "{c}");
        let p = config_pbtxt_with("m", "{}", true, true);
        assert!(p.contains(r#"{ name: "BATCH_PART" data_type: TYPE_STRING dims: [ 1 ] optional: true }"#), "{p}");
        assert!(p.contains(r#"{ name: "PLAIN_INPUT" data_type: TYPE_FP32 dims: [ -1 ] optional: true }"#), "{p}");
    }
}
