//! Triton `config.pbtxt` for an heinfer model (the tensors of DESIGN.md "Serving").

use model::HeModel;

/// Parameter key under which the client spec JSON is stored.
pub const CLIENT_SPEC_KEY: &str = "heinfer_client_spec";

fn pb_escape(s: &str) -> String {
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

pub fn config_pbtxt(m: &HeModel) -> String {
    format!(
        r#"name: "{name}"
backend: "heinfer"
max_batch_size: 0
input [
  {{ name: "ENCRYPTED_INPUT" data_type: TYPE_STRING dims: [ -1 ] }},
  {{ name: "KEY_ID" data_type: TYPE_STRING dims: [ 1 ] }},
  {{ name: "EVALUATION_KEYS" data_type: TYPE_STRING dims: [ 1 ] optional: true }}
]
output [
  {{ name: "ENCRYPTED_OUTPUT" data_type: TYPE_STRING dims: [ -1 ] }}
]
instance_group [ {{ kind: KIND_CPU count: 1 }} ]
parameters: {{
  key: "{key}"
  value: {{ string_value: "{spec}" }}
}}
"#,
        name = pb_escape(&m.name),
        key = CLIENT_SPEC_KEY,
        spec = pb_escape(&m.client.to_json())
    )
}
