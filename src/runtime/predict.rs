//! `nnlc predict`: a trained model applied to new inputs, prepared by the data transforms
//! fitted when it was trained.

use super::checkpoint::Checkpoint;
use super::{Backend, Executable};
use crate::data::{Pipeline, RawInputs};
use crate::ir::{DType, Role, TensorType};
use crate::lower;
use crate::resolve::Program;
use crate::source::SourceMap;
use crate::tensor::Tensor;
use ndarray::{Axis, concatenate};
use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::path::Path;

/// What `predict` writes for each sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputKind {
    /// The model's output as it is.
    Logits,
    /// A softmax over the last axis; for one logit per sample, the sigmoid.
    Probabilities,
    /// The index of the largest output (i32); for one logit per sample, 1 when it is positive.
    Class,
}

/// Outputs, and notes on how the inputs were read (columns ignored).
pub struct Prediction {
    pub outputs: Tensor,
    /// For classes: their names, when the data block's target field has them (`label`).
    pub class_names: Option<Vec<String>>,
    pub notes: Vec<String>,
}

/// The model's outputs for raw inputs (samples first), `raw` naming the model's input each
/// array is for (None: the model's only input). An input named like a data field of the same
/// per-sample type goes through that field's transforms, fitted when the model was trained;
/// other inputs (a decoder's code, a generator's noise) are taken as they are. The model runs
/// alone in evaluation mode, a batch at a time.
pub fn predict(
    program: &Program,
    sources: &SourceMap,
    backend: &dyn Backend,
    saved: &Checkpoint,
    model: Option<&str>,
    raw: &[(Option<String>, RawInputs)],
    kind: OutputKind,
) -> Result<Prediction, String> {
    let model = match model {
        Some(m) => m.to_string(),
        None => model_name(program)?,
    };
    let mut pipeline =
        Pipeline::from_decl(program, super::train_data(program)?).map_err(|e| e.to_string())?;
    pipeline
        .restore_text(&saved.data_text)
        .map_err(|e| e.to_string())?;
    pipeline
        .restore_stats(&saved.data_stats)
        .map_err(|e| e.to_string())?;
    let batch = saved.state.batch.max(1);
    let mut graphs = HashMap::new();
    // The model's inputs, from a graph of one batch.
    let (inputs, _) = prepare(program, sources, backend, &model, 1)?;
    let mut notes = Vec::new();
    let assigned = assign_inputs(&model, &inputs, raw, &pipeline)?;
    let samples = assigned[0].1.values.shape()[0];
    if let Some((name, t)) = assigned
        .iter()
        .find(|(_, t)| t.values.shape()[0] != samples)
    {
        return Err(format!(
            "`{name}` has {} samples, but `{}` has {samples}",
            t.values.shape()[0],
            assigned[0].0
        ));
    }
    let mut prepared_inputs = Vec::new();
    for ((name, ty), (_, t)) in inputs.iter().zip(&assigned) {
        prepared_inputs.push(prepare_input(&pipeline, name, ty, t, &mut notes)?);
    }
    let mut outputs = Vec::new();
    let mut start = 0;
    while start < samples {
        let n = batch.min(samples - start);
        let (_, exe) = match graphs.entry(n) {
            Entry::Occupied(e) => e.into_mut(),
            Entry::Vacant(e) => e.insert(prepare(program, sources, backend, &model, n)?),
        };
        let chunks: Vec<(String, Tensor)> = inputs
            .iter()
            .zip(&prepared_inputs)
            .map(|((name, _), t)| (name.clone(), slice_samples(t, start, start + n)))
            .collect();
        let input = |name: &str| {
            chunks
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, t)| t)
                .or_else(|| saved.values.get(name))
        };
        let out = exe.run(&input, false).map_err(|e| e.to_string())?;
        outputs.push(out.get("out").cloned().ok_or("the model gave no output")?);
        start += n;
    }
    let joined = join_samples(&outputs)?;
    let class_names = match kind {
        OutputKind::Class => target_names(&pipeline, joined.shape()),
        _ => None,
    };
    Ok(Prediction {
        outputs: present(&joined, kind)?,
        class_names,
        notes,
    })
}

/// The class names of the field the model's classes are for: the one field that `label`
/// encodes with as many classes as the output has (two for one logit per sample).
fn target_names(pipeline: &Pipeline, out_shape: &[usize]) -> Option<Vec<String>> {
    let classes = match out_shape {
        [_] | [_, 1] => 2,
        [_, .., k] => *k,
        [] => return None,
    };
    let mut found = pipeline
        .labels()
        .into_iter()
        .filter(|(_, names)| names.len() == classes);
    match (found.next(), found.next()) {
        (Some((_, names)), None) => Some(names),
        _ => None,
    }
}

/// Pairs the model's inputs with the arrays given for them. One table with a header feeds
/// every input that is a data field selecting its columns by name (the training file's layout).
fn assign_inputs(
    model: &str,
    inputs: &[(String, TensorType)],
    raw: &[(Option<String>, RawInputs)],
    pipeline: &Pipeline,
) -> Result<Vec<(String, RawInputs)>, String> {
    let names: Vec<&str> = inputs.iter().map(|(n, _)| n.as_str()).collect();
    let listed = || {
        names
            .iter()
            .map(|n| format!("`{n}`"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    if let [(None, t)] = raw {
        let from_table = t.has_header()
            && inputs
                .iter()
                .all(|(name, _)| pipeline.reads_raw_table(name));
        return match inputs {
            [(name, _)] => Ok(vec![(name.clone(), t.clone())]),
            _ if from_table => Ok(inputs
                .iter()
                .map(|(name, _)| (name.clone(), t.clone()))
                .collect()),
            _ => Err(format!(
                "`{model}` takes {} inputs ({}): give each with --input NAME=FILE",
                inputs.len(),
                listed()
            )),
        };
    }
    let mut by_name = HashMap::new();
    for (name, t) in raw {
        let Some(name) = name else {
            return Err("with several inputs, name each: --input NAME=FILE".into());
        };
        if !names.contains(&name.as_str()) {
            return Err(format!(
                "`{model}` has no input `{name}`; its inputs are {}",
                listed()
            ));
        }
        if by_name.insert(name.clone(), t.clone()).is_some() {
            return Err(format!("input `{name}` is given twice"));
        }
    }
    names
        .iter()
        .map(|n| {
            by_name
                .remove(*n)
                .map(|t| (n.to_string(), t))
                .ok_or_else(|| format!("no --input {n}=FILE for `{model}`'s input `{n}`"))
        })
        .collect()
}

/// One input for the model: a data field's transforms when the input is that field, else the
/// values as they are, in the input's dtype and per-sample shape.
fn prepare_input(
    pipeline: &Pipeline,
    name: &str,
    ty: &TensorType,
    inputs: &RawInputs,
    notes: &mut Vec<String>,
) -> Result<Tensor, String> {
    let per_sample = &ty.shape[1..];
    let is_field = pipeline
        .fields()
        .iter()
        .any(|(f, t)| f == name && t.dtype == ty.dtype && t.shape == per_sample);
    let raw = &inputs.values;
    let samples = raw.shape()[0];
    if is_field && pipeline.reads_raw_table(name) {
        return pipeline
            .transform_raw(name, inputs)
            .map_err(|e| e.to_string());
    }
    if is_field {
        let (raw, columns) = select_columns(pipeline, name, raw, notes);
        inputs
            .first_text(columns.as_deref())
            .map_err(|e| e.to_string())?;
        return pipeline
            .transform_inputs(name, &raw)
            .map_err(|e| e.to_string());
    }
    inputs.first_text(None).map_err(|e| e.to_string())?;
    let have: usize = raw.shape()[1..].iter().product();
    let want: usize = per_sample.iter().product();
    if have != want {
        return Err(format!(
            "input `{name}` needs {want} values per sample ({}), but the file has {have}",
            TensorType::new(ty.dtype, per_sample.to_vec())
        ));
    }
    let mut shape = vec![samples];
    shape.extend_from_slice(per_sample);
    Ok(Tensor::from_f64(
        &TensorType::new(ty.dtype, shape),
        raw.to_f64(),
    ))
}

/// A table with more columns than a field reads (the training file's layout, label included):
/// the field's columns, and a note naming the columns left out; with the columns of the table
/// that were kept (None: all of them).
fn select_columns(
    pipeline: &Pipeline,
    field: &str,
    raw: &Tensor,
    notes: &mut Vec<String>,
) -> (Tensor, Option<Vec<usize>>) {
    let columns = pipeline.table_columns();
    let Some((_, cols)) = columns.iter().find(|(f, _)| f == field) else {
        return (raw.clone(), None);
    };
    let &[rows, width] = raw.shape() else {
        return (raw.clone(), None);
    };
    let scalar = pipeline
        .fields()
        .iter()
        .any(|(f, t)| f == field && t.shape.is_empty() && cols.len() == 1);
    if width <= cols.len() && !(scalar && width == 1) || cols.iter().any(|&c| c >= width) {
        return (raw.clone(), None);
    }
    if width == cols.len() {
        return (raw.clone(), None);
    }
    let ignored: Vec<String> = (0..width)
        .filter(|c| !cols.contains(c))
        .map(|c| match columns.iter().find(|(_, cs)| cs.contains(&c)) {
            Some((f, _)) => format!("{c} (field `{f}`)"),
            None => c.to_string(),
        })
        .collect();
    notes.push(format!(
        "the inputs have {width} columns; field `{field}` reads {}, so column{} {} {} ignored",
        cols.len(),
        if ignored.len() == 1 { "" } else { "s" },
        ignored.join(", "),
        if ignored.len() == 1 { "is" } else { "are" }
    ));
    let values = raw.to_f64();
    let mut out = Vec::with_capacity(rows * cols.len());
    for r in 0..rows {
        out.extend(cols.iter().map(|&c| values[r * width + c]));
    }
    let shape = if scalar {
        vec![rows]
    } else {
        vec![rows, cols.len()]
    };
    (
        Tensor::from_f64(&TensorType::new(DType::F64, shape), out),
        Some(cols.clone()),
    )
}

/// The model's outputs as logits, probabilities or classes.
fn present(out: &Tensor, kind: OutputKind) -> Result<Tensor, String> {
    let shape = out.shape().to_vec();
    let values = out.to_f64();
    let last = shape.last().copied().unwrap_or(1);
    // One logit per sample: [N] or [N, 1].
    let binary = shape.len() == 1 || (shape.len() == 2 && last == 1);
    match kind {
        OutputKind::Logits => Ok(out.clone()),
        OutputKind::Probabilities if binary => Ok(Tensor::from_f64(
            &TensorType::new(DType::F64, shape),
            values.iter().map(|&z| 1.0 / (1.0 + (-z).exp())).collect(),
        )),
        OutputKind::Probabilities => {
            let mut p = Vec::with_capacity(values.len());
            for row in values.chunks(last.max(1)) {
                let m = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                let e: Vec<f64> = row.iter().map(|&z| (z - m).exp()).collect();
                let s: f64 = e.iter().sum();
                p.extend(e.iter().map(|v| v / s));
            }
            Ok(Tensor::from_f64(&TensorType::new(DType::F64, shape), p))
        }
        OutputKind::Class if binary => Ok(Tensor::from_f64(
            &TensorType::new(DType::I32, vec![shape[0]]),
            values
                .iter()
                .map(|&z| f64::from(u8::from(z > 0.0)))
                .collect(),
        )),
        OutputKind::Class => {
            let classes: Vec<f64> = values
                .chunks(last.max(1))
                .map(|row| {
                    let mut best = 0;
                    for (i, v) in row.iter().enumerate() {
                        if *v > row[best] {
                            best = i;
                        }
                    }
                    best as f64
                })
                .collect();
            let mut s = shape.clone();
            s.pop();
            Ok(Tensor::from_f64(&TensorType::new(DType::I32, s), classes))
        }
    }
}

/// A name as a CSV cell: quoted when it holds a comma, a quote or a line break.
fn csv_cell(name: &str) -> String {
    if name.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", name.replace('"', "\"\""))
    } else {
        name.to_string()
    }
}

/// A model ready to run, and the inputs it reads (names and batched types).
type Prepared = (Vec<(String, TensorType)>, Box<dyn Executable>);

/// The model alone in evaluation mode for `batch` samples, and the inputs it reads.
pub(super) fn prepare(
    program: &Program,
    sources: &SourceMap,
    backend: &dyn Backend,
    model: &str,
    batch: usize,
) -> Result<Prepared, String> {
    let opts = lower::Options {
        batch: Some(batch),
        float: DType::F32,
    };
    let graph = lower::lower_model(program, sources, &opts, model, false).map_err(|d| d.message)?;
    let inputs: Vec<(String, TensorType)> = graph
        .inputs()
        .filter(|(_, _, role)| *role == Role::Data)
        .map(|(v, name, _)| (name.to_string(), graph.ty(v).clone()))
        .collect();
    if inputs.is_empty() {
        return Err(format!("`{model}` reads no inputs"));
    }
    Ok((inputs, backend.prepare(crate::opt::optimize(&graph).0)?))
}

/// The only model of the root file's train block.
pub(super) fn model_name(program: &Program) -> Result<String, String> {
    let models = &program.train().ok_or("the file has no `train` block")?;
    match &models.models[..] {
        [m] => Ok(m.name.to_string()),
        ms => {
            let names: Vec<&str> = ms.iter().map(|m| m.name.as_str()).collect();
            Err(format!(
                "this train block trains {}: pick one with --model",
                names.join(", ")
            ))
        }
    }
}

/// Samples `start..end` of a tensor (samples first).
fn slice_samples(t: &Tensor, start: usize, end: usize) -> Tensor {
    let rows = ndarray::Slice::from(start..end);
    match t {
        Tensor::F32(a) => Tensor::F32(a.slice_axis(Axis(0), rows).to_owned()),
        Tensor::F64(a) => Tensor::F64(a.slice_axis(Axis(0), rows).to_owned()),
        Tensor::I32(a) => Tensor::I32(a.slice_axis(Axis(0), rows).to_owned()),
        Tensor::Bool(a) => Tensor::Bool(a.slice_axis(Axis(0), rows).to_owned()),
    }
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

/// Writes outputs as `.npy` (float32, or int32 for classes) or `.csv` (a row per sample,
/// values flattened; classes by name when `class_names` has them); `None` writes CSV to stdout.
pub fn write_outputs(
    path: Option<&Path>,
    out: &Tensor,
    class_names: Option<&[String]>,
) -> Result<(), String> {
    let values = out.to_f64();
    let cell = |v: f64| match class_names {
        Some(names) if out.dtype() == DType::I32 => names
            .get(v as usize)
            .map_or_else(|| format!("{v}"), |n| csv_cell(n)),
        _ => format!("{}", v as f32),
    };
    let csv = || {
        let per = out.shape()[1..].iter().product::<usize>().max(1);
        let mut text = String::new();
        for row in values.chunks(per) {
            let cells: Vec<String> = row.iter().map(|&v| cell(v)).collect();
            text += &cells.join(",");
            text.push('\n');
        }
        text.into_bytes()
    };
    let Some(path) = path else {
        use std::io::Write;
        return std::io::stdout()
            .write_all(&csv())
            .map_err(|e| format!("cannot write to stdout: {e}"));
    };
    let bytes = if path.extension().is_some_and(|e| e == "npy") {
        use ndarray_npy::WriteNpyExt;
        let mut bytes = Vec::new();
        let shape = out.shape().to_vec();
        let written = if out.dtype() == DType::I32 {
            ndarray::ArrayD::from_shape_vec(shape, values.iter().map(|&v| v as i32).collect())
                .map_err(|e| e.to_string())?
                .write_npy(&mut bytes)
        } else {
            ndarray::ArrayD::from_shape_vec(shape, values.iter().map(|&v| v as f32).collect())
                .map_err(|e| e.to_string())?
                .write_npy(&mut bytes)
        };
        written.map_err(|e| e.to_string())?;
        bytes
    } else if path.extension().is_some_and(|e| e == "csv") {
        csv()
    } else {
        return Err(format!(
            "`{}`: outputs are written as .npy or .csv (or `-o -` for CSV on stdout)",
            path.display()
        ));
    };
    crate::store::write_atomically(path, &bytes)
}
