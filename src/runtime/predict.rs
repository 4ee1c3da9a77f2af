//! `nnlc predict`: a trained model applied to new inputs, prepared by the data transforms
//! fitted when it was trained.

use super::checkpoint::Checkpoint;
use super::{Backend, Executable};
use crate::data::Pipeline;
use crate::interp::Tensor;
use crate::ir::{DType, Role};
use crate::lower;
use crate::resolve::Program;
use crate::source::SourceMap;
use ndarray::{Axis, concatenate};
use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::path::Path;

/// The model's outputs for raw inputs (samples first): the inputs go through the transforms of
/// the field named like the model's input, then through the model in evaluation mode, a batch
/// at a time.
pub fn predict(
    program: &Program,
    sources: &SourceMap,
    backend: &dyn Backend,
    saved: &Checkpoint,
    raw: &Tensor,
) -> Result<Tensor, String> {
    let model = model_name(program)?;
    let mut pipeline =
        Pipeline::from_decl(program, super::train_data(program)?).map_err(|e| e.to_string())?;
    pipeline
        .restore_stats(&saved.data_stats)
        .map_err(|e| e.to_string())?;
    let samples = raw.shape()[0];
    let values = raw.to_f64();
    let batch = saved.state.batch.max(1);
    let mut graphs = HashMap::new();
    let mut outputs = Vec::new();
    let mut start = 0;
    while start < samples {
        let n = batch.min(samples - start);
        let (field, exe) = match graphs.entry(n) {
            Entry::Occupied(e) => e.into_mut(),
            Entry::Vacant(e) => e.insert(prepare(program, sources, backend, &model, n)?),
        };
        let chunk = slice_samples(&values, raw.shape(), start, start + n);
        let prepared = pipeline
            .transform_inputs(field, &chunk)
            .map_err(|e| e.to_string())?;
        let input = |name: &str| {
            if name == field {
                Some(&prepared)
            } else {
                saved.values.get(name)
            }
        };
        let out = exe.run(&input, false).map_err(|e| e.to_string())?;
        outputs.push(out.get("out").cloned().ok_or("the model gave no output")?);
        start += n;
    }
    join_samples(&outputs)
}

/// The model alone in evaluation mode for `batch` samples, and the field it reads.
fn prepare(
    program: &Program,
    sources: &SourceMap,
    backend: &dyn Backend,
    model: &str,
    batch: usize,
) -> Result<(String, Box<dyn Executable>), String> {
    let opts = lower::Options {
        batch: Some(batch),
        float: DType::F32,
    };
    let graph = lower::lower_model(program, sources, &opts, model, false).map_err(|d| d.message)?;
    let fields: Vec<String> = graph
        .inputs()
        .filter(|(_, _, role)| *role == Role::Data)
        .map(|(_, name, _)| name.to_string())
        .collect();
    let [field] = &fields[..] else {
        return Err(format!(
            "`{model}` takes {} inputs; predict feeds models of one input",
            fields.len()
        ));
    };
    Ok((
        field.clone(),
        backend.prepare(crate::opt::optimize(&graph).0)?,
    ))
}

/// The only model of the root file's train block.
fn model_name(program: &Program) -> Result<String, String> {
    let models = &program.train().ok_or("the file has no `train` block")?;
    match &models.models[..] {
        [m] => Ok(m.name.clone()),
        _ => Err("predict applies one model; this train block trains several".into()),
    }
}

/// Samples `start..end` of row-major `values` of `shape` (samples first).
fn slice_samples(values: &[f64], shape: &[usize], start: usize, end: usize) -> Tensor {
    let per: usize = shape[1..].iter().product();
    let mut shape = shape.to_vec();
    shape[0] = end - start;
    Tensor::from_f64(
        &crate::ir::TensorType::new(DType::F64, shape),
        values[start * per..end * per].to_vec(),
    )
}

fn join_samples(parts: &[Tensor]) -> Result<Tensor, String> {
    let arrays: Vec<ndarray::ArrayD<f64>> = parts
        .iter()
        .map(|t| {
            ndarray::ArrayD::from_shape_vec(t.shape().to_vec(), t.to_f64())
                .expect("a tensor's values fill its shape")
        })
        .collect();
    let views: Vec<_> = arrays.iter().map(|a| a.view()).collect();
    let joined = concatenate(Axis(0), &views).map_err(|e| e.to_string())?;
    Ok(Tensor::F64(joined))
}

/// Writes outputs as `.npy` (float32) or `.csv` (a row per sample, values flattened).
pub fn write_outputs(path: &Path, out: &Tensor) -> Result<(), String> {
    let shown = path.display();
    let values = out.to_f64();
    let bytes = if path.extension().is_some_and(|e| e == "npy") {
        use ndarray_npy::WriteNpyExt;
        let a = ndarray::ArrayD::from_shape_vec(
            out.shape().to_vec(),
            values.iter().map(|&v| v as f32).collect(),
        )
        .map_err(|e| e.to_string())?;
        let mut bytes = Vec::new();
        a.write_npy(&mut bytes).map_err(|e| e.to_string())?;
        bytes
    } else if path.extension().is_some_and(|e| e == "csv") {
        let per = out.shape()[1..].iter().product::<usize>().max(1);
        let mut text = String::new();
        for row in values.chunks(per) {
            let cells: Vec<String> = row.iter().map(|v| format!("{}", *v as f32)).collect();
            text += &cells.join(",");
            text.push('\n');
        }
        text.into_bytes()
    } else {
        return Err(format!("`{shown}`: outputs are written as .npy or .csv"));
    };
    crate::store::write_atomically(path, &bytes)
}
