//! A model's `config.pbtxt`, read into the fields Triton reports, and rendered the
//! two ways Triton returns it: JSON (`GET /v2/models/<m>/config`) and the
//! `inference.ModelConfig` protobuf (gRPC `ModelConfig`). The JSON mirrors what
//! Triton 2.x prints (its protobuf-to-JSON with int64 fields turned back into
//! numbers), so `tritonclient`'s `get_model_config` reads the client spec from
//! `parameters.heinfer_client_spec.string_value` on either server.

use std::collections::BTreeMap;

use serde_json::{json, Value as Json};
use thiserror::Error;

use crate::pb;
use crate::pbtxt::{self, PbtxtError, Value};

#[derive(Debug, Error)]
pub enum ConfigError {
    #[error(transparent)]
    Syntax(#[from] PbtxtError),
    #[error("config.pbtxt: field '{field}': {msg}")]
    Field { field: String, msg: String },
}

fn field_err<T>(field: &str, msg: impl Into<String>) -> Result<T, ConfigError> {
    Err(ConfigError::Field { field: field.into(), msg: msg.into() })
}

#[derive(Debug, Clone, PartialEq)]
pub struct TensorConfig {
    pub name: String,
    /// Triton's config enum name, e.g. `TYPE_STRING`
    pub data_type: String,
    pub dims: Vec<i64>,
    pub optional: bool,
}

impl TensorConfig {
    /// The KServe v2 datatype name of this tensor (`TYPE_STRING` → `BYTES`).
    pub fn datatype(&self) -> String {
        v2_datatype(&self.data_type)
    }
}

/// `TYPE_FP32` → `FP32`, `TYPE_STRING` → `BYTES` (as Triton maps them).
pub fn v2_datatype(t: &str) -> String {
    match t.strip_prefix("TYPE_") {
        Some("STRING") => "BYTES".into(),
        Some(rest) => rest.into(),
        None => "INVALID".into(),
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct InstanceGroup {
    pub name: String,
    pub kind: String,
    pub count: i32,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ModelConfig {
    pub name: String,
    pub platform: String,
    pub backend: String,
    pub max_batch_size: i32,
    pub inputs: Vec<TensorConfig>,
    pub outputs: Vec<TensorConfig>,
    pub instance_groups: Vec<InstanceGroup>,
    pub parameters: BTreeMap<String, String>,
}

fn string(field: &str, v: &Value) -> Result<String, ConfigError> {
    match v {
        Value::Str(s) => Ok(s.clone()),
        _ => field_err(field, "expected a string"),
    }
}

fn word(field: &str, v: &Value) -> Result<String, ConfigError> {
    match v {
        Value::Word(s) => Ok(s.clone()),
        _ => field_err(field, "expected a number or enum name"),
    }
}

fn int<T: std::str::FromStr>(field: &str, v: &Value) -> Result<T, ConfigError> {
    let w = word(field, v)?;
    w.parse().or_else(|_| field_err(field, format!("'{w}' is not an integer in range")))
}

fn boolean(field: &str, v: &Value) -> Result<bool, ConfigError> {
    match word(field, v)?.as_str() {
        "true" | "True" | "t" | "1" => Ok(true),
        "false" | "False" | "f" | "0" => Ok(false),
        w => field_err(field, format!("'{w}' is not a boolean")),
    }
}

fn msg<'a>(field: &str, v: &'a Value) -> Result<&'a [(String, Value)], ConfigError> {
    v.as_msg().map_or_else(|| field_err(field, "expected a message { ... }"), Ok)
}

fn tensor(field: &str, fields: &[(String, Value)]) -> Result<TensorConfig, ConfigError> {
    let mut t = TensorConfig { name: String::new(), data_type: "TYPE_INVALID".into(), dims: vec![], optional: false };
    for (k, v) in fields {
        let f = format!("{field}.{k}");
        match k.as_str() {
            "name" => t.name = string(&f, v)?,
            "data_type" => t.data_type = word(&f, v)?,
            "dims" => t.dims.push(int(&f, v)?),
            "optional" => t.optional = boolean(&f, v)?,
            // fields Triton knows that do not change what we report or serve
            _ => {}
        }
    }
    if t.name.is_empty() {
        return field_err(field, "a tensor has no name");
    }
    if !t.data_type.starts_with("TYPE_") {
        return field_err(field, format!("data_type '{}' of '{}' is not a Triton type", t.data_type, t.name));
    }
    Ok(t)
}

impl ModelConfig {
    /// Reads `config.pbtxt`. `dir_name` is the model directory's name: Triton uses it
    /// when the config has no name, and refuses a config whose name differs.
    pub fn parse(src: &str, dir_name: &str) -> Result<Self, ConfigError> {
        let mut c = ModelConfig {
            name: String::new(),
            platform: String::new(),
            backend: String::new(),
            max_batch_size: 0,
            inputs: vec![],
            outputs: vec![],
            instance_groups: vec![],
            parameters: BTreeMap::new(),
        };
        for (k, v) in pbtxt::parse(src)? {
            match k.as_str() {
                "name" => c.name = string(&k, &v)?,
                "platform" => c.platform = string(&k, &v)?,
                "backend" => c.backend = string(&k, &v)?,
                "max_batch_size" => c.max_batch_size = int(&k, &v)?,
                "input" => c.inputs.push(tensor("input", msg(&k, &v)?)?),
                "output" => c.outputs.push(tensor("output", msg(&k, &v)?)?),
                "instance_group" => {
                    let mut g = InstanceGroup { name: String::new(), kind: "KIND_AUTO".into(), count: 1 };
                    for (gk, gv) in msg(&k, &v)? {
                        match gk.as_str() {
                            "name" => g.name = string("instance_group.name", gv)?,
                            "kind" => g.kind = word("instance_group.kind", gv)?,
                            "count" => g.count = int("instance_group.count", gv)?,
                            _ => {}
                        }
                    }
                    if g.count < 1 {
                        return field_err("instance_group.count", "must be at least 1");
                    }
                    c.instance_groups.push(g);
                }
                "parameters" => {
                    let (mut key, mut value) = (None, None);
                    for (pk, pv) in msg(&k, &v)? {
                        match pk.as_str() {
                            "key" => key = Some(string("parameters.key", pv)?),
                            "value" => {
                                for (vk, vv) in msg("parameters.value", pv)? {
                                    if vk == "string_value" {
                                        value = Some(string("parameters.value.string_value", vv)?);
                                    }
                                }
                            }
                            _ => {}
                        }
                    }
                    let Some(key) = key else { return field_err("parameters", "an entry has no key") };
                    c.parameters.insert(key, value.unwrap_or_default());
                }
                _ => {}
            }
        }
        if c.name.is_empty() {
            c.name = dir_name.to_string();
        } else if c.name != dir_name {
            return field_err(
                "name",
                format!("'{}' differs from the model directory's name '{dir_name}' (Triton refuses this too)", c.name),
            );
        }
        if c.instance_groups.is_empty() {
            c.instance_groups.push(InstanceGroup { name: String::new(), kind: "KIND_CPU".into(), count: 1 });
        }
        // Triton names unnamed groups <model>_<index> and runs backends like ours on CPU.
        for (i, g) in c.instance_groups.iter_mut().enumerate() {
            if g.name.is_empty() {
                g.name = format!("{}_{i}", c.name);
            }
            if g.kind == "KIND_AUTO" {
                g.kind = "KIND_CPU".into();
            }
        }
        Ok(c)
    }

    pub fn input(&self, name: &str) -> Option<&TensorConfig> {
        self.inputs.iter().find(|t| t.name == name)
    }

    pub fn output(&self, name: &str) -> Option<&TensorConfig> {
        self.outputs.iter().find(|t| t.name == name)
    }

    /// How many requests may evaluate at once: the instances Triton would create.
    pub fn instance_count(&self) -> usize {
        self.instance_groups.iter().map(|g| g.count.max(1) as usize).sum::<usize>().max(1)
    }

    /// What `GET /v2/models/<m>/config` returns, field for field as Triton prints it.
    pub fn to_json(&self) -> Json {
        let inputs: Vec<Json> = self
            .inputs
            .iter()
            .map(|t| {
                json!({
                    "name": t.name,
                    "data_type": t.data_type,
                    "format": "FORMAT_NONE",
                    "dims": t.dims,
                    "is_shape_tensor": false,
                    "allow_ragged_batch": false,
                    "optional": t.optional,
                    "is_non_linear_format_io": false,
                })
            })
            .collect();
        let outputs: Vec<Json> = self
            .outputs
            .iter()
            .map(|t| {
                json!({
                    "name": t.name,
                    "data_type": t.data_type,
                    "dims": t.dims,
                    "label_filename": "",
                    "is_shape_tensor": false,
                    "is_non_linear_format_io": false,
                })
            })
            .collect();
        let groups: Vec<Json> = self
            .instance_groups
            .iter()
            .map(|g| {
                json!({
                    "name": g.name,
                    "kind": g.kind,
                    "count": g.count,
                    "gpus": [],
                    "secondary_devices": [],
                    "profile": [],
                    "passive": false,
                    "host_policy": "",
                })
            })
            .collect();
        let params: serde_json::Map<String, Json> =
            self.parameters.iter().map(|(k, v)| (k.clone(), json!({ "string_value": v }))).collect();
        json!({
            "name": self.name,
            "platform": self.platform,
            "backend": self.backend,
            "runtime": "",
            "version_policy": { "latest": { "num_versions": 1 } },
            "max_batch_size": self.max_batch_size,
            "input": inputs,
            "output": outputs,
            "batch_input": [],
            "batch_output": [],
            "optimization": {
                "priority": "PRIORITY_DEFAULT",
                "input_pinned_memory": { "enable": true },
                "output_pinned_memory": { "enable": true },
                "gather_kernel_buffer_threshold": 0,
                "eager_batching": false,
            },
            "instance_group": groups,
            "default_model_filename": "",
            "cc_model_filenames": {},
            "metric_tags": {},
            "parameters": params,
            "model_warmup": [],
        })
    }

    /// The same for gRPC `ModelConfig`.
    pub fn to_proto(&self) -> pb::ModelConfig {
        let dt = |s: &str| pb::DataType::from_str_name(s).unwrap_or(pb::DataType::TypeInvalid) as i32;
        pb::ModelConfig {
            name: self.name.clone(),
            platform: self.platform.clone(),
            backend: self.backend.clone(),
            runtime: String::new(),
            version_policy: Some(pb::ModelVersionPolicy {
                policy_choice: Some(pb::model_version_policy::PolicyChoice::Latest(pb::model_version_policy::Latest {
                    num_versions: 1,
                })),
            }),
            max_batch_size: self.max_batch_size,
            input: self
                .inputs
                .iter()
                .map(|t| pb::ModelInput {
                    name: t.name.clone(),
                    data_type: dt(&t.data_type),
                    format: 0,
                    dims: t.dims.clone(),
                    is_shape_tensor: false,
                    allow_ragged_batch: false,
                    optional: t.optional,
                })
                .collect(),
            output: self
                .outputs
                .iter()
                .map(|t| pb::ModelOutput {
                    name: t.name.clone(),
                    data_type: dt(&t.data_type),
                    dims: t.dims.clone(),
                    label_filename: String::new(),
                    is_shape_tensor: false,
                })
                .collect(),
            instance_group: self
                .instance_groups
                .iter()
                .map(|g| pb::ModelInstanceGroup {
                    name: g.name.clone(),
                    kind: pb::model_instance_group::Kind::from_str_name(&g.kind).unwrap_or_default() as i32,
                    count: g.count,
                    gpus: vec![],
                    profile: vec![],
                    passive: false,
                    host_policy: String::new(),
                })
                .collect(),
            default_model_filename: String::new(),
            parameters: self
                .parameters
                .iter()
                .map(|(k, v)| (k.clone(), pb::ModelParameter { string_value: v.clone() }))
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CFG: &str = r#"name: "m"
backend: "heinfer"
max_batch_size: 0
input [
  { name: "ENCRYPTED_INPUT" data_type: TYPE_STRING dims: [ -1 ] },
  { name: "KEY_ID" data_type: TYPE_STRING dims: [ 1 ] },
  { name: "EVALUATION_KEYS" data_type: TYPE_STRING dims: [ 1 ] optional: true }
]
output [
  { name: "ENCRYPTED_OUTPUT" data_type: TYPE_STRING dims: [ -1 ] }
]
instance_group [ { kind: KIND_CPU count: 2 } ]
parameters: { key: "heinfer_client_spec" value: { string_value: "{\"a\":1}" } }
"#;

    #[test]
    fn json_as_triton_prints_it() {
        let c = ModelConfig::parse(CFG, "m").unwrap();
        let j = c.to_json();
        assert_eq!(j["backend"], "heinfer");
        assert_eq!(j["input"][0]["data_type"], "TYPE_STRING");
        assert_eq!(j["input"][0]["dims"], json!([-1]));
        assert_eq!(j["input"][2]["optional"], true);
        assert_eq!(j["output"][0]["name"], "ENCRYPTED_OUTPUT");
        assert_eq!(j["instance_group"][0]["name"], "m_0");
        assert_eq!(j["parameters"]["heinfer_client_spec"]["string_value"], "{\"a\":1}");
        assert_eq!(c.instance_count(), 2);
        let p = c.to_proto();
        assert_eq!(p.input[0].data_type, pb::DataType::TypeString as i32);
        assert_eq!(p.parameters["heinfer_client_spec"].string_value, "{\"a\":1}");
    }

    #[test]
    fn name_must_match_directory() {
        let e = ModelConfig::parse(CFG, "other").unwrap_err().to_string();
        assert!(e.contains("differs from the model directory"), "{e}");
        let c = ModelConfig::parse("backend: \"heinfer\"", "dir").unwrap();
        assert_eq!(c.name, "dir");
        assert!(ModelConfig::parse("max_batch_size: lots", "m").is_err());
    }
}
