//! Weights in: parameters and layer state loaded by name from a safetensors (F32, F16, BF16,
//! F64) or `.npz` file before training (`init …` in a train block, `--init FILE`).
//!
//! A tensor named exactly like an nnl parameter (`LeNet.dense_1.w`) is taken as it is. Other
//! names follow PyTorch's `state_dict`: `<layer path>.<tensor>`, the layer path written as nnl
//! names it without the model (`dense_1.weight`), or as a `map` entry says
//! (`("fc1", "dense_1")`), and each tensor converted to nnl's layout by the layer's kind (the
//! table below): a `Linear`'s `weight [out, in]` transposed, a `Conv2d`'s `[out, in, kh, kw]`
//! flattened to `unfold`'s `[in·kh·kw, out]`, an LSTM's two biases summed. PyTorch's gate orders
//! are nnl's (LSTM i, f, g, o; GRU r, z, n), so no gates move. `num_batches_tracked` is ignored.
//!
//! Strict (the default): a parameter without a tensor, a tensor without a parameter or a shape
//! that does not fit is an error naming both sides; `strict: false` loads what fits and lists
//! the rest.

use crate::diag::Diagnostic;
use crate::ir::TensorType;
use crate::source::Span;
use crate::syntax::finetune::InitFrom;
use crate::tensor::Tensor;
use std::collections::{BTreeSet, HashMap};
use std::path::Path;

#[derive(Debug, Clone, Copy)]
enum Convert {
    Same,
    Transpose,
    /// `[F, C, k, k]` → `[C·k·k, F]`.
    ConvWeight,
    /// Reshaped to nnl's shape (same order).
    Reshape,
    /// The tensors summed.
    Sum,
}

/// (layer kind, nnl parameter, PyTorch tensors, conversion). The kind is the layer instance's
/// name without its number (`conv2d_1` → `conv2d`).
const RULES: &[(&str, &str, &[&str], Convert)] = &[
    ("dense", "w", &["weight"], Convert::Transpose),
    ("dense", "b", &["bias"], Convert::Same),
    ("conv2d", "w", &["weight"], Convert::ConvWeight),
    ("conv2d", "b", &["bias"], Convert::Same),
    ("conv_transpose2d", "w", &["weight"], Convert::Reshape),
    ("conv_transpose2d", "b", &["bias"], Convert::Same),
    ("batch_norm", "gamma", &["weight"], Convert::Same),
    ("batch_norm", "beta", &["bias"], Convert::Same),
    (
        "batch_norm",
        "running_mean",
        &["running_mean"],
        Convert::Same,
    ),
    ("batch_norm", "running_var", &["running_var"], Convert::Same),
    ("batch_norm2d", "gamma", &["weight"], Convert::Same),
    ("batch_norm2d", "beta", &["bias"], Convert::Same),
    (
        "batch_norm2d",
        "running_mean",
        &["running_mean"],
        Convert::Same,
    ),
    (
        "batch_norm2d",
        "running_var",
        &["running_var"],
        Convert::Same,
    ),
    ("layer_norm", "gamma", &["weight"], Convert::Same),
    ("layer_norm", "beta", &["bias"], Convert::Same),
    ("embedding", "table", &["weight"], Convert::Same),
    ("lstm", "w", &["weight_ih_l0"], Convert::Transpose),
    ("lstm", "u", &["weight_hh_l0"], Convert::Transpose),
    ("lstm", "b", &["bias_ih_l0", "bias_hh_l0"], Convert::Sum),
    ("gru", "w", &["weight_ih_l0"], Convert::Transpose),
    ("gru", "u", &["weight_hh_l0"], Convert::Transpose),
    ("gru", "b", &["bias_ih_l0"], Convert::Same),
    ("gru", "bu", &["bias_hh_l0"], Convert::Same),
    ("rnn", "w", &["weight_ih_l0"], Convert::Transpose),
    ("rnn", "u", &["weight_hh_l0"], Convert::Transpose),
    ("rnn", "b", &["bias_ih_l0", "bias_hh_l0"], Convert::Sum),
];

/// Tensors a PyTorch `state_dict` holds that nnl has no use for.
const IGNORED: &[&str] = &["num_batches_tracked"];

/// What a load gives: values by nnl name, and notes (what a non-strict load left out).
pub struct Loaded {
    pub values: HashMap<String, Tensor>,
    pub notes: Vec<String>,
}

/// Loads `spec`'s file (relative to `base`) for `targets` (parameters and layer state, with
/// the models' names to strip from layer paths). Errors are diagnostics at `spec.span`.
pub fn load(
    spec: &InitFrom,
    span: Option<Span>,
    base: &Path,
    targets: &[(String, TensorType)],
    models: &[String],
) -> Result<Loaded, Diagnostic> {
    let path = base.join(&spec.path);
    let shown = spec.path.as_str();
    let fail = |message: String| {
        let d = Diagnostic::error(crate::diag::codes::WEIGHTS_MISMATCH, message);
        match span {
            Some(s) => d.with_primary(s, "loading these weights"),
            None => d,
        }
    };
    let read = if spec.path.ends_with(".npz") {
        crate::store::read_npz(&path)
    } else {
        crate::store::read_safetensors(&path).map(|(t, _)| t)
    };
    let source: HashMap<String, Tensor> = read.map_err(fail)?.into_iter().collect();

    let mut values = HashMap::new();
    let mut used = BTreeSet::new();
    let mut missing: Vec<(String, Vec<String>)> = Vec::new();
    let mut misfits: Vec<String> = Vec::new();
    for (name, ty) in targets {
        let (candidates, found) = find(name, &source, spec, models);
        let Some((names, convert)) = found else {
            missing.push((name.clone(), candidates));
            continue;
        };
        let parts: Vec<&Tensor> = names.iter().map(|n| &source[n]).collect();
        match convert_to(&parts, convert, ty) {
            Ok(t) => {
                values.insert(name.clone(), t);
                used.extend(names);
            }
            Err(have) => {
                used.extend(names.iter().cloned());
                misfits.push(format!(
                    "`{name}` is {ty}, but `{}` in `{shown}` is {have}",
                    names.join("` + `")
                ));
            }
        }
    }
    let unexpected: Vec<&String> = source
        .keys()
        .filter(|n| !used.contains(*n) && !IGNORED.iter().any(|i| n.ends_with(i)))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    if spec.strict && (!missing.is_empty() || !unexpected.is_empty() || !misfits.is_empty()) {
        let mut d = match (missing.first(), misfits.first()) {
            (Some((name, candidates)), _) => fail(format!(
                "`{shown}` has no tensor for `{name}` (looked for {})",
                quoted(candidates)
            )),
            (None, Some(m)) => fail(format!("a tensor of `{shown}` does not fit: {m}")),
            (None, None) => fail(format!(
                "`{shown}` has a tensor `{}` that no parameter takes",
                unexpected[0]
            )),
        };
        for (name, candidates) in missing.iter().skip(1) {
            d = d.with_note(format!(
                "no tensor for `{name}` (looked for {})",
                quoted(candidates)
            ));
        }
        for m in misfits.iter().skip(usize::from(missing.is_empty())) {
            d = d.with_note(m.clone());
        }
        if !unexpected.is_empty() {
            d = d.with_note(format!(
                "tensors of `{shown}` that no parameter takes: {}",
                quoted(&unexpected.iter().map(|s| s.to_string()).collect::<Vec<_>>())
            ));
        }
        // The likeliest misspelling: the unused tensor closest to a name that was looked for.
        let looked: Vec<&str> = missing
            .iter()
            .flat_map(|(_, c)| c.iter().map(String::as_str))
            .collect();
        let hint = unexpected
            .iter()
            .find_map(|u| crate::suggest::closest(u, looked.iter().copied()).map(|l| (u, l)));
        d = match hint {
            Some((u, l)) => d.with_help(format!("did you mean `{l}` for the file's `{u}`? rename it, or add `map: [(\"…\", \"…\")]` to `init`")),
            None => d.with_help("add `map: [(\"source prefix\", \"layer path\")]` to `init`, or `strict: false` to load what fits"),
        };
        return Err(d);
    }
    let mut notes = Vec::new();
    if !missing.is_empty() {
        let names: Vec<String> = missing.iter().map(|(n, _)| n.clone()).collect();
        notes.push(format!(
            "not in `{shown}`, left as initialized: {}",
            quoted(&names)
        ));
    }
    notes.extend(misfits.iter().map(|m| format!("not loaded: {m}")));
    if !unexpected.is_empty() {
        let names: Vec<String> = unexpected.iter().map(|s| s.to_string()).collect();
        notes.push(format!("tensors of `{shown}` not used: {}", quoted(&names)));
    }
    Ok(Loaded { values, notes })
}

fn quoted(names: &[String]) -> String {
    names
        .iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The source names looked for nnl's `name`, and the ones found with their conversion.
fn find(
    name: &str,
    source: &HashMap<String, Tensor>,
    spec: &InitFrom,
    models: &[String],
) -> (Vec<String>, Option<(Vec<String>, Convert)>) {
    let mut looked = vec![name.to_string()];
    if source.contains_key(name) {
        return (looked, Some((vec![name.to_string()], Convert::Same)));
    }
    let Some((layer, param)) = name.rsplit_once('.') else {
        return (looked, None);
    };
    let relative = models
        .iter()
        .find_map(|m| layer.strip_prefix(&format!("{m}.")))
        .unwrap_or(layer);
    let kind = relative
        .rsplit('.')
        .next()
        .map(|last| {
            last.trim_end_matches(|c: char| c.is_ascii_digit())
                .trim_end_matches('_')
        })
        .unwrap_or_default();
    let Some((_, _, torch, convert)) = RULES.iter().find(|(k, p, _, _)| *k == kind && *p == param)
    else {
        return (looked, None);
    };
    let mapped: Vec<&str> = spec
        .map
        .iter()
        .filter(|(_, to)| to == relative || to == layer)
        .map(|(from, _)| from.as_str())
        .collect();
    let prefixes = if mapped.is_empty() {
        vec![relative, layer]
    } else {
        mapped
    };
    looked.clear();
    for prefix in prefixes {
        let names: Vec<String> = torch
            .iter()
            .map(|t| {
                if prefix.is_empty() {
                    t.to_string()
                } else {
                    format!("{prefix}.{t}")
                }
            })
            .collect();
        if names.iter().all(|n| source.contains_key(n)) {
            return (names.clone(), Some((names, *convert)));
        }
        looked.extend(names);
    }
    looked.dedup();
    (looked, None)
}

/// The source tensors in nnl's layout and dtype, or what they were when they do not fit.
fn convert_to(parts: &[&Tensor], convert: Convert, ty: &TensorType) -> Result<Tensor, String> {
    let shape = parts[0].shape().to_vec();
    let describe = || {
        let s: Vec<String> = shape.iter().map(usize::to_string).collect();
        format!("[{}]", s.join(", "))
    };
    if parts.iter().any(|p| p.shape() != shape.as_slice()) {
        return Err(format!("{} and tensors of other shapes", describe()));
    }
    let mut values = parts[0].to_f64();
    for p in &parts[1..] {
        for (v, w) in values.iter_mut().zip(p.to_f64()) {
            *v += w;
        }
    }
    let (values, out_shape): (Vec<f64>, Vec<usize>) = match (convert, &shape[..]) {
        (Convert::Same | Convert::Sum, _) => (values, shape.clone()),
        (Convert::Reshape, _) => (values, ty.shape.clone()),
        (Convert::Transpose, &[r, c]) => (transpose(&values, r, c), vec![c, r]),
        (Convert::ConvWeight, &[f, c, kh, kw]) => {
            (transpose(&values, f, c * kh * kw), vec![c * kh * kw, f])
        }
        _ => return Err(describe()),
    };
    if out_shape != ty.shape || values.len() != ty.numel() {
        return Err(format!("{} ({} in nnl's layout)", describe(), {
            let s: Vec<String> = out_shape.iter().map(usize::to_string).collect();
            format!("[{}]", s.join(", "))
        }));
    }
    Ok(Tensor::from_f64(ty, values))
}

fn transpose(v: &[f64], rows: usize, cols: usize) -> Vec<f64> {
    let mut out = vec![0.0; v.len()];
    for r in 0..rows {
        for c in 0..cols {
            out[c * rows + r] = v[r * cols + c];
        }
    }
    out
}
