//! `heinfer compile --client-aided`: the segments compiled and written as ordinary
//! models, and the whole exchange's report (per segment, then per sample).

use std::path::Path;

/// Compiles and writes every segment; prints the summary (or, with `json`, the reports).
pub fn compile(
    onnx: &[u8],
    data: &compiler::Data,
    opts: &compiler::Options,
    scheme: compiler::SchemeRequest,
    quantize: bool,
    output: &Path,
    json: bool,
) -> Result<(), String> {
    if !matches!(scheme, compiler::SchemeRequest::Ckks) || quantize {
        return Err("--client-aided needs --scheme ckks (the default): the segments' outputs are decrypted, \
                    passed through the activation and re-encrypted as CKKS inputs; drop --scheme/--quantize"
            .into());
    }
    let pb = crate::spinner();
    let res = compiler::compile_client_aided(onnx, data, opts, &|m| pb.set_message(m.to_string()));
    pb.finish_and_clear();
    let segments = res.map_err(|e| e.to_string())?;
    let mut dirs = Vec::new();
    for c in &segments {
        dirs.push(compiler::write_repository(output, c).map_err(|e| e.to_string())?);
    }
    let summary = compiler::client_aided_summary(&segments);
    if json {
        let reports: Vec<_> = segments.iter().map(|c| &c.model.report).collect();
        let v = serde_json::json!({ "client_aided": true, "segments": reports, "summary": summary });
        println!("{}", serde_json::to_string_pretty(&v).map_err(|e| e.to_string())?);
    } else {
        for c in &segments {
            print!("{}", c.model.report.as_ref().map(|r| r.to_text()).unwrap_or_default());
            println!();
        }
        print!("{summary}");
        for d in dirs {
            println!("written: {}", d.display());
        }
    }
    Ok(())
}
