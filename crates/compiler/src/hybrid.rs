//! Public features (`compile --public-features`): the first linear layer split into
//! W_e·x_e (under encryption) + W_p·x_p (computed by the server in clear).
//!
//! The split is made on the approximated network just before packing: the first
//! stage's map loses its public columns, so the first layer is planned on the encrypted
//! features alone (a smaller support: fewer slots per window, fewer diagonal products
//! and rotations) and the client's slot map never names a public feature. The columns
//! taken out become `model::PublicPart`, which the server applies to the first layer's
//! bias plaintext per request. Everything after the first layer is unchanged, and the
//! verification stage checks the program (public part included) against the whole,
//! unsplit network.

use model::{HeModel, PublicPart, PUBLIC_PART_VERSION};

use crate::network::LStage;
use crate::CompileError;

/// The public columns taken out of the first layer.
pub(crate) struct Split {
    pub public: Vec<u32>,
    /// W_p row-major, `n_out` × `public.len()`
    pub weights: Vec<f64>,
    pub n_out: usize,
}

/// Parses `--public-features` against the model's flattened input of `n_in` values:
/// index ranges (`0-9,15,20-29`) and, for a model with several ONNX inputs, input
/// names (each stands for its whole range of the concatenated input).
pub(crate) fn parse(spec: &str, n_in: usize, parts: &[model::InputPart]) -> Result<Vec<u32>, CompileError> {
    let err = |e: String| CompileError::Data(format!("--public-features: {e}"));
    let mut ranges = Vec::new();
    for tok in spec.split(',').map(str::trim).filter(|t| !t.is_empty()) {
        let is_index = tok.chars().all(|c| c.is_ascii_digit() || c == '-' || c.is_whitespace());
        match parts.iter().find(|p| p.name == tok) {
            Some(p) => ranges.push(format!("{}-{}", p.offset, p.offset + p.len - 1)),
            None if is_index => ranges.push(tok.to_string()),
            None if parts.is_empty() => {
                return Err(err(format!(
                    "'{tok}' is not an index range; the model has one input, so name its features by index (0-{})",
                    n_in.saturating_sub(1)
                )))
            }
            None => {
                let names: Vec<String> =
                    parts.iter().map(|p| format!("'{}' ({}-{})", p.name, p.offset, p.offset + p.len - 1)).collect();
                return Err(err(format!("no input is named '{tok}'; the model's inputs are {}", names.join(", "))));
            }
        }
    }
    model::public::parse_ranges(&ranges.join(","), n_in).map_err(err)
}

/// The network with the first stage's public columns removed, and those columns.
pub(crate) fn split_first(stages: &[LStage], public: &[u32]) -> Result<(Vec<LStage>, Split), CompileError> {
    let mut out = stages.to_vec();
    let Some(LStage::Linear { map, src: 0, kind, .. }) = out.first_mut() else {
        return Err(CompileError::Layout(
            "--public-features needs a model that begins with a linear layer (Gemm, MatMul or Conv)".into(),
        ));
    };
    let k = public.len();
    let mut weights = vec![0.0; map.n_out() * k];
    for (o, row) in map.rows.iter_mut().enumerate() {
        row.retain(|&(i, w)| match public.binary_search(&i) {
            Ok(j) => {
                weights[o * k + j] = w;
                false
            }
            Err(_) => true,
        });
    }
    if map.rows.iter().all(|r| r.is_empty()) {
        return Err(CompileError::Data(
            "--public-features: the first layer reads no encrypted feature; nothing would be encrypted".into(),
        ));
    }
    *kind = format!("{kind} ({k} public features added in clear)");
    let n_out = map.n_out();
    Ok((out, Split { public: public.to_vec(), weights, n_out }))
}

/// Attaches the public part to the model built from the split network.
pub(crate) fn attach(
    hem: &mut HeModel,
    split: Split,
    bias_pt: Option<u32>,
    layout: Vec<i32>,
) -> Result<(), CompileError> {
    let bias_pt = bias_pt.ok_or_else(|| CompileError::Internal("the first layer has no bias plaintext".into()))?;
    let mut layout = layout;
    while layout.last().is_some_and(|&o| o < 0) {
        layout.pop();
    }
    hem.client.public_features = split.public.clone();
    hem.public = Some(PublicPart {
        version: PUBLIC_PART_VERSION,
        indices: split.public,
        weights: split.weights,
        n_out: split.n_out as u32,
        bias_pt,
        layout,
    });
    hem.validate().map_err(|e| CompileError::Internal(e.to_string()))
}

/// One line for the report: what the server sees in clear.
pub(crate) fn note(public: &[u32], n_in: usize, parts: &[model::InputPart]) -> String {
    let whole: Vec<&str> = parts
        .iter()
        .filter(|p| (p.offset..p.offset + p.len).all(|i| public.binary_search(&(i as u32)).is_ok()))
        .map(|p| p.name.as_str())
        .collect();
    let named = if whole.is_empty() { String::new() } else { format!(" (inputs {})", whole.join(", ")) };
    format!(
        "public features: the server sees input features {}{named} ({} of {n_in}) in clear (PLAIN_INPUT, sent by the client \
         beside the ciphertext) and computes their share of the first layer in f64; the other {} features are encrypted",
        ranges(public),
        public.len(),
        n_in - public.len()
    )
}

fn ranges(v: &[u32]) -> String {
    let mut parts = vec![];
    let mut i = 0;
    while i < v.len() {
        let mut j = i;
        while j + 1 < v.len() && v[j + 1] == v[j] + 1 {
            j += 1;
        }
        parts.push(if i == j { v[i].to_string() } else { format!("{}-{}", v[i], v[j]) });
        i = j + 1;
    }
    parts.join(",")
}

#[cfg(test)]
mod tests {
    #[test]
    fn ranges_compress() {
        assert_eq!(super::ranges(&[0, 1, 2, 5, 7, 8]), "0-2,5,7-8");
    }
}
