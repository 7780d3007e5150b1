//! The onnxruntime reference: runs the original ONNX model in a Python that has
//! onnxruntime ($HEINFER_PYTHON, else `python3`), through temporary `.npy` files.

use std::path::Path;
use std::process::Command;

use crate::npy::{self, Array};

pub struct OrtResult {
    pub version: String,
    pub final_out: Vec<Vec<f64>>,
    /// The tensor the HE model computes, when it is a tensor of the graph.
    pub he_out: Option<Vec<Vec<f64>>>,
}

const SCRIPT: &str = r#"
import sys, numpy as np, onnx, onnxruntime as ort
mp, xp, od, final, he = sys.argv[1:6]
m = onnx.load(mp)
outs = [o.name for o in m.graph.output]
names = {o for n in m.graph.node for o in n.output}
want = [final]
if final not in outs and final in names:
    m.graph.output.append(onnx.helper.make_tensor_value_info(final, onnx.TensorProto.FLOAT, None))
if he and he != final and he in names:
    if he not in outs:
        m.graph.output.append(onnx.helper.make_tensor_value_info(he, onnx.TensorProto.FLOAT, None))
    want.append(he)
so = ort.SessionOptions(); so.log_severity_level = 3
s = ort.InferenceSession(m.SerializeToString(), so, providers=["CPUExecutionProvider"])
x = np.load(xp).astype(np.float32)
ins = s.get_inputs()
def feeds(x):
    # Several inputs: x is their concatenation in the graph's order (passes/inputs.rs).
    if len(ins) == 1:
        return {ins[0].name: x}
    x, out, off = x.reshape(len(x), -1), {}, 0
    for i in ins:
        dims = [int(d) for d in i.shape[1:]]
        n = int(np.prod(dims))
        out[i.name] = x[:, off:off + n].reshape([len(x)] + dims)
        off += n
    return out
try:
    res = s.run(want, feeds(x))
except Exception:
    rows = [s.run(want, feeds(x[i:i+1])) for i in range(len(x))]
    res = [np.concatenate([r[k] for r in rows]) for k in range(len(want))]
for k, r in enumerate(res):
    np.save(f"{od}/out{k}.npy", np.asarray(r, dtype=np.float64).reshape(len(x), -1))
print("onnxruntime " + ort.__version__)
"#;

pub fn run(
    python: Option<&Path>,
    model: &Path,
    x: &Array,
    shape: &[usize],
    final_name: &str,
    he_name: &str,
) -> Result<OrtResult, String> {
    let py = python
        .map(|p| p.to_path_buf())
        .or_else(|| std::env::var_os("HEINFER_PYTHON").map(Into::into))
        .unwrap_or_else(|| "python3".into());
    let dir = std::env::temp_dir().join(format!("heinfer-ort-{}-{}", std::process::id(), rand_suffix()));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let _guard = Cleanup(dir.clone());
    let mut full = vec![x.rows()];
    full.extend_from_slice(shape);
    npy::write(&dir.join("x.npy"), &full, &x.data).map_err(|e| e.to_string())?;
    let out = Command::new(&py)
        .arg("-c")
        .arg(SCRIPT)
        .arg(model)
        .arg(dir.join("x.npy"))
        .arg(&dir)
        .arg(final_name)
        .arg(he_name)
        .output()
        .map_err(|e| format!("cannot run {}: {e}", py.display()))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let last = err.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("").to_string();
        return Err(format!("{} failed: {last}", py.display()));
    }
    let version = String::from_utf8_lossy(&out.stdout).trim().lines().last().unwrap_or("onnxruntime").to_string();
    let load = |k: usize| -> Result<Vec<Vec<f64>>, String> {
        let a = npy::read(&dir.join(format!("out{k}.npy"))).map_err(|e| e.to_string())?;
        Ok((0..a.rows()).map(|r| a.row(r).to_vec()).collect())
    };
    let final_out = load(0)?;
    let he_out = if dir.join("out1.npy").exists() { Some(load(1)?) } else { None };
    Ok(OrtResult { version, final_out, he_out })
}

fn rand_suffix() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0)
}

struct Cleanup(std::path::PathBuf);
impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
