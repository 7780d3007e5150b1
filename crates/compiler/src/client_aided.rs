//! Client-aided refresh (`compile --client-aided`): the network cut at its non-linear
//! activations into SEGMENTS, each linear (affine maps, pooling by averaging, reshapes)
//! and compiled as an ordinary model `<name>__seg<k>`; the activations run exactly, in
//! clear, on the client between segments (`model::client_aided`).
//!
//! The cutting reuses split inference (`split`): the remaining graph is cut at an
//! activation's input (the part before is segment k), then at its output (the part
//! before is the clear step, a standalone ONNX graph the client runs with onnxruntime or
//! tract), and so on. Each segment is calibrated on the exact f64 network's values at
//! its input, so the encrypted part sees what it will see in service.

use model::client_aided::ClientAided;
use model::prefix::Prefix;

use crate::import::{Imported, MaxPoolPolicy};
use crate::npy::Array;
use crate::onnx;
use crate::{CompileError, Compiled, Data, Options};

/// Ops the compiler would otherwise approximate by polynomials (or refuse): here the
/// client computes them exactly. A trailing one (its output is the model's) stays in the
/// last segment, where the compiler moves it to the client's post-processing.
const NON_LINEAR: &[&str] = &[
    "Relu",
    "LeakyRelu",
    "Sigmoid",
    "Tanh",
    "Gelu",
    "Softplus",
    "Clip",
    "Relu6",
    "HardSigmoid",
    "HardSwish",
    "Elu",
    "Selu",
    "Mish",
    "MaxPool",
];

fn refuse(why: &str) -> CompileError {
    CompileError::Shape(format!("--client-aided: {why}"))
}

/// Options `--client-aided` cannot honour, refused before any work.
fn check_options(opts: &Options) -> Result<(), CompileError> {
    let clash = [
        (opts.split_at.is_some(), "--split-at (a client-side prefix is the first clear step already: cut with --client-aided alone)"),
        (opts.public_features.is_some(), "--public-features (they index the first segment's input only; encrypt the whole input)"),
        (opts.output_dp.is_some(), "--output-dp (the client sees every intermediate activation in clear, so noise on the final outputs protects nothing)"),
        (opts.circuit_privacy.is_some(), "--circuit-privacy (the client decrypts the intermediate activations: masking only the last answer's noise would not hide the weights)"),
    ];
    match clash.iter().find(|(on, _)| *on) {
        Some((_, what)) => Err(refuse(&format!("cannot be combined with {what}"))),
        None => Ok(()),
    }
}

/// The compiler's import of one piece of the graph (its shapes and exact f64 function).
fn import_piece(bytes: &[u8], maxpool: MaxPoolPolicy, what: &str) -> Result<Imported, CompileError> {
    let mut m = onnx::parse_model(bytes)?;
    crate::passes::run(&mut m.graph);
    crate::import::import(&m, maxpool).map_err(|e| refuse(&format!("{what} cannot be evaluated by the compiler: {e}")))
}

/// Every row of `a` through `imp`'s exact f64 function.
fn through(imp: &Imported, a: &Array) -> Array {
    let mut shape = vec![a.rows()];
    shape.extend_from_slice(&imp.output_shape);
    Array { shape, data: (0..a.rows()).flat_map(|r| imp.reference(a.row(r))).collect() }
}

/// The graph cut into segments and the clear steps between them (ONNX bytes).
struct Cuts {
    segments: Vec<Vec<u8>>,
    clear: Vec<Prefix>,
    /// The original graph up to each clear step's output, imported: the exact f64 values
    /// the next segment reads (its calibration data). A clear step alone (a lone ReLU) is
    /// no model the compiler imports.
    upto: Vec<Imported>,
}

fn cut(onnx_bytes: &[u8], maxpool: MaxPoolPolicy) -> Result<Cuts, CompileError> {
    let m = onnx::parse_model(onnx_bytes)?;
    let g = &m.graph;
    let acts: Vec<&onnx::Node> = g
        .nodes
        .iter()
        .filter(|n| NON_LINEAR.contains(&n.op_type.as_str()))
        .filter(|n| !n.outputs.iter().any(|o| g.outputs.iter().any(|go| &go.name == o)))
        .collect();
    if acts.is_empty() {
        return Err(refuse(
            "the model has no non-linear activation before its output: nothing to cut; compile without --client-aided",
        ));
    }
    let mut rest = onnx_bytes.to_vec();
    let mut out = Cuts { segments: vec![], clear: vec![], upto: vec![] };
    let mut i = 0;
    while i < acts.len() {
        // A run of activations, each reading the previous one's output, is one clear step.
        let mut j = i;
        while j + 1 < acts.len() && acts[j + 1].inputs.first() == acts[j].outputs.first() {
            j += 1;
        }
        let (Some(pre), Some(post)) = (acts[i].inputs.first(), acts[j].outputs.first()) else {
            return Err(refuse(&format!("{} has no input or output", acts[i].describe())));
        };
        let k = out.segments.len();
        let sp = crate::split::split(&rest, pre).map_err(|e| {
            refuse(&format!(
                "cutting segment {k} before {}: {e} (each activation must read one tensor that carries everything)",
                acts[i].describe()
            ))
        })?;
        let seg_imp = import_piece(&sp.prefix_probe(), maxpool, &format!("segment {k}"))?;
        if !seg_imp.postprocess.is_empty() || seg_imp.output_shape.is_empty() {
            return Err(refuse(&format!("segment {k} ends in an op moved to the client's post-processing")));
        }
        let (seg, after) = sp.finish(&seg_imp.output_shape);
        let sp2 = crate::split::split(&after, post)
            .map_err(|e| refuse(&format!("cutting after {}: {e}", acts[j].describe())))?;
        let upto = crate::split::split(onnx_bytes, post)
            .map_err(|e| refuse(&format!("cutting after {}: {e}", acts[j].describe())))?;
        let upto_imp = import_piece(&upto.prefix_probe(), maxpool, &format!("the graph up to '{post}'"))?;
        let (clear, next) = sp2.finish(&upto_imp.output_shape);
        out.clear.push(Prefix::new(
            pre.clone(),
            seg_imp.output_shape.clone(),
            post.clone(),
            sp2.prefix_nodes.clone(),
            &clear,
        ));
        out.segments.push(seg);
        out.upto.push(upto_imp);
        rest = next;
        i = j + 1;
    }
    out.segments.push(rest);
    Ok(out)
}

/// `compile --client-aided`: the compiled segments, in order, each carrying the manifest.
pub fn compile_client_aided(
    onnx_bytes: &[u8],
    data: &Data,
    opts: &Options,
    progress: &dyn Fn(&str),
) -> Result<Vec<Compiled>, CompileError> {
    check_options(opts)?;
    progress("cutting the graph at its activations");
    let cuts = cut(onnx_bytes, opts.maxpool)?;
    let n = cuts.segments.len();
    let names: Vec<String> = (0..n).map(|k| format!("{}__seg{k}", opts.name)).collect();
    // Segment 0 reads the caller's data; later ones, the exact network's values there.
    let (mut cal_k, mut eval_k): (Option<Array>, Option<Array>) = (None, None);
    let mut compiled = Vec::with_capacity(n);
    for (k, seg) in cuts.segments.iter().enumerate() {
        progress(&format!("segment {k} of {n}"));
        let last = k + 1 == n;
        // onnxruntime checks each segment from a file, as it does a whole model.
        let tmp = std::env::temp_dir().join(format!("heinfer-segment-{}-{k}.onnx", std::process::id()));
        std::fs::write(&tmp, seg).map_err(|e| CompileError::Io(format!("{}: {e}", tmp.display())))?;
        let seg_opts = Options { name: names[k].clone(), ..opts.clone() };
        let cal = cal_k.as_ref().unwrap_or(data.calibration);
        let eval = if k == 0 { data.eval } else { eval_k.as_ref() };
        let res = crate::compile(
            seg,
            Some(&tmp),
            &Data { calibration: cal, eval, labels: if last { data.labels } else { None } },
            &seg_opts,
            progress,
        );
        let _ = std::fs::remove_file(&tmp);
        let mut c = res.map_err(|e| match e {
            CompileError::Params(m) => CompileError::Params(format!("segment {k} ({}): {m}", names[k])),
            e => e,
        })?;
        c.model.client.client_aided =
            Some(ClientAided { index: k as u32, segments: names.clone(), clear: cuts.clear.clone() });
        if let Some(r) = c.model.report.as_mut() {
            r.notes.push(note(k, &names, &cuts.clear));
        }
        compiled.push(c);
        if !last {
            // The next segment's input: the exact network's values there.
            cal_k = Some(through(&cuts.upto[k], data.calibration));
            eval_k = data.eval.map(|a| through(&cuts.upto[k], a));
        }
    }
    Ok(compiled)
}

fn note(k: usize, names: &[String], clear: &[Prefix]) -> String {
    let n = names.len();
    let steps: Vec<String> = clear.iter().map(|c| format!("{} -> {}", c.nodes.join("+"), c.cut)).collect();
    format!(
        "client-aided refresh: segment {k} of {n} ({}); {} round trips per sample; between segments the client \
         decrypts, runs in clear [{}], and re-encrypts with fresh randomness. WARNING: the client sees every \
         intermediate activation in clear (what the model owner gives away: the hidden layers' values, from which \
         weights can be learned); decrypted values never go back to the server in clear (it only ever receives \
         ciphertexts under the client's key)",
        names[k],
        n,
        steps.join(", ")
    )
}

/// Per-segment figures and the whole exchange's, as `compile --client-aided` prints them.
pub fn summary(segments: &[Compiled]) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let (mut up, mut down, mut keys, mut ms) = (0usize, 0usize, 0usize, 0.0f64);
    let _ = writeln!(s, "client-aided refresh: {} segments, {} round trips per sample", segments.len(), segments.len());
    let _ = writeln!(
        s,
        "{:<28} {:>5} {:>6} {:>5} {:>12} {:>12} {:>12} {:>9}",
        "segment", "log N", "levels", "keys", "key bytes", "query B", "answer B", "est ms"
    );
    for c in segments {
        let Some(r) = &c.model.report else { continue };
        let _ = writeln!(
            s,
            "{:<28} {:>5} {:>6} {:>5} {:>12} {:>12} {:>12} {:>9.1}",
            c.model.name,
            r.log_n,
            r.q_bits.len(),
            r.galois_keys + usize::from(r.relinearization),
            r.evaluation_key_bytes,
            r.query_bytes,
            r.response_bytes,
            r.est_latency_ms
        );
        up += r.query_bytes;
        down += r.response_bytes;
        keys += r.evaluation_key_bytes;
        ms += r.est_latency_ms;
    }
    let _ = writeln!(
        s,
        "per sample: {up} B sent + {down} B received over all round trips; keys {keys} B (one bundle per segment, \
         registered once each); estimated server time {ms:.1} ms"
    );
    let _ = writeln!(
        s,
        "WARNING: the client sees the intermediate activations in clear (a leak of the model owner's hidden layers); \
         decrypted values never go to the server in clear: the client re-encrypts them with fresh randomness"
    );
    s
}
