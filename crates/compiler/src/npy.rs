//! Minimal `.npy` reading (float32/float64/int32/int64, C order) and writing (float64).

use crate::CompileError;

pub struct Array {
    pub shape: Vec<usize>,
    pub data: Vec<f64>,
}

impl Array {
    /// Rows along the first axis.
    pub fn rows(&self) -> usize {
        self.shape.first().copied().unwrap_or(1)
    }
    pub fn row(&self, i: usize) -> &[f64] {
        let w = self.data.len() / self.rows().max(1);
        &self.data[i * w..(i + 1) * w]
    }
}

pub fn read(path: &std::path::Path) -> Result<Array, CompileError> {
    let b = std::fs::read(path).map_err(|e| CompileError::Data(format!("cannot read {}: {e}", path.display())))?;
    parse(&b).map_err(|e| CompileError::Data(format!("{}: {e}", path.display())))
}

pub fn parse(b: &[u8]) -> Result<Array, String> {
    if b.len() < 10 || &b[..6] != b"\x93NUMPY" {
        return Err("not a .npy file".into());
    }
    let major = b[6];
    let (hlen, start) = if major == 1 {
        (u16::from_le_bytes([b[8], b[9]]) as usize, 10)
    } else {
        if b.len() < 12 {
            return Err("truncated header".into());
        }
        (u32::from_le_bytes([b[8], b[9], b[10], b[11]]) as usize, 12)
    };
    let header = b.get(start..start + hlen).ok_or("truncated header")?;
    let header = std::str::from_utf8(header).map_err(|_| "header is not text")?;
    let field = |k: &str| -> Option<&str> {
        let i = header.find(&format!("'{k}'"))?;
        Some(header[i + k.len() + 2..].trim_start().trim_start_matches(':').trim_start())
    };
    let descr = field("descr").ok_or("no descr")?;
    let descr = descr.trim_start_matches('\'').split('\'').next().unwrap_or("");
    if field("fortran_order").map(|s| s.starts_with("True")).unwrap_or(false) {
        return Err("Fortran-ordered arrays are not supported (use np.ascontiguousarray)".into());
    }
    let sh = field("shape").ok_or("no shape")?;
    let sh = &sh[1..sh.find(')').ok_or("bad shape")?];
    let shape: Vec<usize> = sh
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse::<usize>().map_err(|_| "bad shape"))
        .collect::<Result<_, _>>()?;
    let count: usize = shape.iter().product();
    let body = &b[start + hlen..];
    let (width, conv): (usize, fn(&[u8]) -> f64) = match descr {
        "<f4" => (4, |c| f32::from_le_bytes(c.try_into().unwrap()) as f64),
        "<f8" => (8, |c| f64::from_le_bytes(c.try_into().unwrap())),
        "<i8" => (8, |c| i64::from_le_bytes(c.try_into().unwrap()) as f64),
        "<i4" => (4, |c| i32::from_le_bytes(c.try_into().unwrap()) as f64),
        d => return Err(format!("dtype {d} is not supported (use float32/float64/int32/int64)")),
    };
    if body.len() != count * width {
        return Err(format!("{} data bytes for shape {shape:?} of {descr} (truncated?)", body.len()));
    }
    Ok(Array { shape, data: body.chunks_exact(width).map(conv).collect() })
}

pub fn write(path: &std::path::Path, shape: &[usize], data: &[f64]) -> std::io::Result<()> {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let sh = if dims.len() == 1 { format!("({},)", dims[0]) } else { format!("({})", dims.join(", ")) };
    let mut h = format!("{{'descr': '<f8', 'fortran_order': False, 'shape': {sh}, }}");
    while (10 + h.len() + 1) % 64 != 0 {
        h.push(' ');
    }
    h.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend_from_slice(&(h.len() as u16).to_le_bytes());
    out.extend_from_slice(h.as_bytes());
    for v in data {
        out.extend_from_slice(&v.to_le_bytes());
    }
    std::fs::write(path, out)
}
