//! The ciphertext files `heinfer encrypt` writes and `evaluate`/`decrypt` read (both
//! schemes): magic `HECT`, version, kind, count, then length-prefixed elements.

pub const MAGIC: &[u8; 4] = b"HECT";
pub const VERSION: u16 = 1;
pub const KIND_QUERY: u16 = 1;
pub const KIND_RESULT: u16 = 2;
const HEADER: usize = 12;

fn kind_name(k: u16) -> &'static str {
    match k {
        KIND_QUERY => "encrypted query",
        KIND_RESULT => "encrypted result",
        _ => "unknown",
    }
}

/// A ciphertext file's bytes.
pub fn write_container(kind: u16, elements: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER + runtime::tensor::encoded_len(elements));
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.extend_from_slice(&kind.to_le_bytes());
    out.extend_from_slice(&(elements.len() as u32).to_le_bytes());
    out.extend_from_slice(&runtime::tensor::join_bytes(elements));
    out
}

/// Parses a ciphertext file of `kind`, checking header, count and every length.
pub fn read_container<'a>(what: &str, kind: u16, bytes: &'a [u8]) -> Result<Vec<&'a [u8]>, String> {
    if bytes.len() < HEADER || &bytes[..4] != MAGIC {
        return Err(format!(
            "{what}: not a heinfer ciphertext file (expected the magic \"HECT\" and a 12-byte header; {} bytes)",
            bytes.len()
        ));
    }
    let version = u16::from_le_bytes([bytes[4], bytes[5]]);
    if version != VERSION {
        return Err(format!("{what}: ciphertext file version {version}; this heinfer reads version {VERSION}"));
    }
    let k = u16::from_le_bytes([bytes[6], bytes[7]]);
    if k != kind {
        return Err(format!("{what}: holds an {} (kind {k}), expected an {}", kind_name(k), kind_name(kind)));
    }
    let count = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize;
    runtime::tensor::split_bytes(what, &bytes[HEADER..], Some(count)).map_err(|e| format!("{what}: {e}"))
}
