//! Stage: calibration. Runs the imported network in f64 on the calibration data, with
//! exact activations, recording what each activation sees: the ranges the fits must
//! cover and the reference outputs the approximations are judged against.

use crate::import::{Imported, Stage};
use crate::npy::Array;
use crate::{CompileError, Data};

/// At most this many calibration samples are run through the network.
const MAX_ROWS: usize = 2000;
/// Input values kept per activation to weight its fit (the range uses them all).
const MAX_SAMPLES: usize = 20000;

/// What an activation's input was seen to be on calibration data.
#[derive(Clone, Debug)]
pub(crate) struct Range {
    pub lo: f64,
    pub hi: f64,
    pub samples: Vec<f64>,
}

pub(crate) struct Calibration<'a> {
    pub data: &'a Array,
    /// The samples used (the first `rows` of `data`).
    pub rows: usize,
    /// Per activation, in import order.
    pub ranges: Vec<Range>,
    /// The imported network's output on each sample used.
    pub reference: Vec<Vec<f64>>,
}

/// Checks that every data set fits the model's input (and the labels the evaluation set)
/// before any work is done on them.
pub(crate) fn check_data(imp: &Imported, data: &Data) -> Result<(), CompileError> {
    let numel: usize = imp.input_shape.iter().product();
    let calib = data.calibration;
    if calib.rows() == 0 || calib.data.len() != calib.rows() * numel {
        return Err(CompileError::Data(format!(
            "calibration data has shape {:?}; the model's input '{}' needs rows of {:?} ({numel} values)",
            calib.shape, imp.input_name, imp.input_shape
        )));
    }
    if let Some(e) = data.eval {
        if e.rows() == 0 || e.data.len() != e.rows() * numel {
            return Err(CompileError::Data(format!(
                "evaluation data has shape {:?}; rows of {numel} values needed",
                e.shape
            )));
        }
    }
    if let (Some(l), Some(e)) = (data.labels, data.eval.or(Some(calib))) {
        if l.data.len() != e.rows() {
            return Err(CompileError::Data(format!("{} labels for {} samples", l.data.len(), e.rows())));
        }
    }
    Ok(())
}

pub(crate) fn calibrate<'a>(imp: &Imported, calib: &'a Array) -> Calibration<'a> {
    let n_acts = imp.stages.iter().filter(|s| matches!(s, Stage::Act { .. })).count();
    let mut ranges = vec![Range { lo: f64::INFINITY, hi: f64::NEG_INFINITY, samples: vec![] }; n_acts];
    let rows = calib.rows().min(MAX_ROWS);
    let mut reference: Vec<Vec<f64>> = Vec::with_capacity(rows);
    for r in 0..rows {
        let v = imp.run_with(calib.row(r), &mut |a, f, v| {
            let rg = &mut ranges[a];
            for &t in v {
                rg.lo = rg.lo.min(t);
                rg.hi = rg.hi.max(t);
            }
            if rg.samples.len() < MAX_SAMPLES {
                rg.samples.extend_from_slice(v);
            }
            v.iter().map(|&t| f.eval(t)).collect()
        });
        reference.push(v);
    }
    Calibration { data: calib, rows, ranges, reference }
}
