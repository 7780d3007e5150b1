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

/// Decrypts each result file of a linear-scheme model (Paillier, LWE) with `decrypt` (its
/// elements → (scores, post-processed scores)) and prints per file the class and the
/// scores, or the post-processed ones: those schemes' `heinfer decrypt`.
pub fn print_linear_results(
    results: &[std::path::PathBuf],
    postprocess: bool,
    json: bool,
    mut decrypt: impl FnMut(&[Vec<u8>]) -> Result<(Vec<f64>, Vec<f64>), String>,
) -> Result<(), String> {
    for r in results {
        let what = r.display().to_string();
        let bytes = std::fs::read(r).map_err(|e| format!("cannot read {what}: {e}"))?;
        let el: Vec<Vec<u8>> = read_container(&what, KIND_RESULT, &bytes)?.into_iter().map(<[u8]>::to_vec).collect();
        let (y, post) = decrypt(&el).map_err(|e| format!("{what}: {e}"))?;
        let class = if y.len() == 1 { (y[0] > 0.0) as usize } else { model::argmax(&y) };
        let shown = if postprocess { post } else { y };
        if json {
            println!("{}", serde_json::json!({"file": what, "output": shown, "class": class, "release": null}));
        } else {
            let v: Vec<String> = shown.iter().map(|v| format!("{v:.6}")).collect();
            println!("{what}: class {class} [{}]", v.join(", "));
        }
    }
    Ok(())
}
