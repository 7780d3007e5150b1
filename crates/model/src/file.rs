//! The `model.hem` file, version 1 (little-endian):
//!
//! ```text
//! magic   8 bytes  "HEINFMDL"
//! version u32      1
//! flags   u32      0
//! meta    u64 length, then that many bytes of UTF-8 JSON:
//!                  {name, client (the ClientSpec), layers, nodes, outputs, report,
//!                   public (optional: public features' weights, versioned inside),
//!                   throughput, multi (optional: layouts T and M, `model::multi`)}
//! plains  u32 count, then per plaintext: level u32, scale f64, len u32, len × f64
//!         (layout L's, then layout M's from `multi.first_plain` on)
//! sha256  32 bytes over everything before it
//! ```
//!
//! The reader checks the magic, version and flags, every length against the bytes
//! that remain before allocating, the checksum, and then validates the program
//! (operands, levels, scales, rotation keys) — a bad file is an error, never a panic.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::ir::{Node, PlainVec, ValueId};
use crate::report::Report;
use crate::spec::{ClientSpec, CLIENT_SPEC_VERSION};
use crate::{HeModel, LayerInfo, ModelError};

pub const MAGIC: &[u8; 8] = b"HEINFMDL";
pub const FORMAT_VERSION: u32 = 1;
/// The file version of a Paillier linear model (`linear::PaillierModel`).
pub const LINEAR_FORMAT_VERSION: u32 = 2;
/// Largest model file accepted (plaintexts included).
pub const MAX_FILE_BYTES: usize = 4 << 30;

#[derive(Serialize, Deserialize)]
struct Meta {
    name: String,
    client: ClientSpec,
    layers: Vec<LayerInfo>,
    nodes: Vec<Node>,
    outputs: Vec<ValueId>,
    report: Option<Report>,
    /// Absent in models without public features (and in files written before them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    public: Option<crate::PublicPart>,
    /// Layout T's program (`model::throughput`); absent in models compiled without it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    throughput: Option<crate::ThroughputProgram>,
    /// Layout M's program (`model::multi`), its plaintexts after layout L's; absent in
    /// models compiled without it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    multi: Option<crate::multi::MultiMeta>,
    /// A compact query's first layer applied before packing; absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    first_layer: Option<crate::first_layer::PackedFirstLayer>,
}

impl HeModel {
    pub fn to_bytes(&self) -> Vec<u8> {
        let meta = Meta {
            name: self.name.clone(),
            client: self.client.clone(),
            layers: self.layers.clone(),
            nodes: self.nodes.clone(),
            outputs: self.outputs.clone(),
            report: self.report.clone(),
            public: self.public.clone(),
            throughput: self.throughput.clone(),
            multi: self.multi.as_ref().map(|m| crate::multi::MultiMeta {
                batch: m.batch,
                nodes: m.nodes.clone(),
                outputs: m.outputs.clone(),
                first_plain: self.plaintexts.len() as u32,
            }),
            first_layer: self.first_layer.clone(),
        };
        let json = serde_json::to_vec(&meta).expect("model metadata serializes");
        let mut out = Vec::with_capacity(
            64 + json.len() + self.plaintexts.iter().map(|p| 16 + 8 * p.values.len()).sum::<usize>() * 2,
        );
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes());
        out.extend_from_slice(&(json.len() as u64).to_le_bytes());
        out.extend_from_slice(&json);
        let multi_plains = self.multi.as_ref().map_or(&[][..], |m| &m.plaintexts[..]);
        out.extend_from_slice(&((self.plaintexts.len() + multi_plains.len()) as u32).to_le_bytes());
        for p in self.plaintexts.iter().chain(multi_plains) {
            out.extend_from_slice(&p.level.to_le_bytes());
            out.extend_from_slice(&p.scale.to_le_bytes());
            out.extend_from_slice(&(p.values.len() as u32).to_le_bytes());
            for v in &p.values {
                out.extend_from_slice(&v.to_le_bytes());
            }
        }
        let digest = Sha256::digest(&out);
        out.extend_from_slice(&digest);
        out
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Self, ModelError> {
        if bytes.len() > MAX_FILE_BYTES {
            return Err(ModelError::Truncated(format!(
                "{} bytes is larger than the {} limit",
                bytes.len(),
                MAX_FILE_BYTES
            )));
        }
        if bytes.len() < 8 || &bytes[..8] != MAGIC {
            return Err(ModelError::Magic);
        }
        if bytes.len() < 8 + 4 + 4 + 8 + 4 + 32 {
            return Err(ModelError::Truncated("shorter than the header".into()));
        }
        let (body, digest) = bytes.split_at(bytes.len() - 32);
        let mut r = Reader { b: body, pos: 8 };
        let version = r.u32()?;
        if version == LINEAR_FORMAT_VERSION {
            return Err(ModelError::Invalid(
                "this model.hem holds a Paillier linear model, not a CKKS program: read it with model::AnyModel".into(),
            ));
        }
        if version != FORMAT_VERSION {
            return Err(ModelError::Version { found: version, supported: FORMAT_VERSION });
        }
        if r.u32()? != 0 {
            return Err(ModelError::Truncated("unknown flags".into()));
        }
        if Sha256::digest(body).as_slice() != digest {
            return Err(ModelError::Checksum);
        }
        let meta_len = r.u64()?;
        let json = r.take(meta_len)?;
        let meta: Meta = serde_json::from_slice(json).map_err(|e| ModelError::Invalid(format!("metadata: {e}")))?;
        if meta.client.version != CLIENT_SPEC_VERSION {
            return Err(ModelError::Version { found: meta.client.version, supported: CLIENT_SPEC_VERSION });
        }
        let count = r.u32()? as usize;
        // Each plaintext takes at least 16 bytes: refuse counts the file cannot hold.
        if count > r.remaining() / 16 {
            return Err(ModelError::Truncated(format!("{count} plaintexts announced, the file cannot hold them")));
        }
        let mut plaintexts = Vec::with_capacity(count);
        for _ in 0..count {
            let level = r.u32()?;
            let scale = f64::from_le_bytes(r.take(8)?.try_into().unwrap());
            let len = r.u32()? as u64;
            let raw = r.take(len.saturating_mul(8))?;
            let values = raw.chunks_exact(8).map(|c| f64::from_le_bytes(c.try_into().unwrap())).collect();
            plaintexts.push(PlainVec { level, scale, values });
        }
        if r.remaining() != 0 {
            return Err(ModelError::Truncated(format!("{} unexpected trailing bytes", r.remaining())));
        }
        let multi = match meta.multi {
            Some(m) if m.first_plain as usize <= plaintexts.len() => {
                let tail = plaintexts.split_off(m.first_plain as usize);
                Some(crate::MultiProgram { batch: m.batch, nodes: m.nodes, outputs: m.outputs, plaintexts: tail })
            }
            Some(_) => return Err(ModelError::Truncated("layout M's plaintexts lie past the file's".into())),
            None => None,
        };
        let m = HeModel {
            name: meta.name,
            client: meta.client,
            layers: meta.layers,
            nodes: meta.nodes,
            plaintexts,
            outputs: meta.outputs,
            report: meta.report,
            public: meta.public,
            throughput: meta.throughput,
            multi,
            first_layer: meta.first_layer,
        };
        m.validate()?;
        Ok(m)
    }

    pub fn write_file(&self, path: impl AsRef<std::path::Path>) -> Result<(), ModelError> {
        let p = path.as_ref();
        std::fs::write(p, self.to_bytes()).map_err(|e| ModelError::Io { path: p.display().to_string(), source: e })
    }

    pub fn read_file(path: impl AsRef<std::path::Path>) -> Result<Self, ModelError> {
        let p = path.as_ref();
        let meta = std::fs::metadata(p).map_err(|e| ModelError::Io { path: p.display().to_string(), source: e })?;
        if meta.len() as usize > MAX_FILE_BYTES {
            return Err(ModelError::Truncated(format!(
                "{} is larger than the {} byte limit",
                p.display(),
                MAX_FILE_BYTES
            )));
        }
        let bytes = std::fs::read(p).map_err(|e| ModelError::Io { path: p.display().to_string(), source: e })?;
        Self::from_bytes(&bytes)
    }
}

struct Reader<'a> {
    b: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn remaining(&self) -> usize {
        self.b.len() - self.pos
    }
    fn take(&mut self, n: u64) -> Result<&'a [u8], ModelError> {
        if n > self.remaining() as u64 {
            return Err(ModelError::Truncated(format!(
                "needs {n} more bytes at offset {}, {} remain",
                self.pos,
                self.remaining()
            )));
        }
        let s = &self.b[self.pos..self.pos + n as usize];
        self.pos += n as usize;
        Ok(s)
    }
    fn u32(&mut self) -> Result<u32, ModelError> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().unwrap()))
    }
    fn u64(&mut self) -> Result<u64, ModelError> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().unwrap()))
    }
}
