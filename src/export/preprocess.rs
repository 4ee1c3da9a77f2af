//! A data field's fitted transforms in front of the model (`--with-preprocessing`): the ONNX
//! input takes raw samples as `nnlc predict` reads them, in double precision, and the
//! transforms compute in double as the data pipeline does, then cast to the field's dtype.

use super::emit::{Builder, Tv};
use super::proto;
use super::sym::{Dim, SymTensor};
use crate::data::{PrepStep, Preparation};
use crate::ir::DType;

/// The raw input `name` and the transforms that turn it into the model's input `model_input`.
pub fn raw_input(
    b: &mut Builder,
    name: &str,
    p: &Preparation,
    model_input: &SymTensor,
) -> Result<Tv, String> {
    if model_input.shape.first() != Some(&Dim::BATCH) {
        return Err(format!(
            "the model's input `{name}` has no batch axis first"
        ));
    }
    let elem = proto::elem_type(DType::F64);
    let raw_dims: Option<Vec<Dim>> = p.raw_shape.as_ref().map(|s| {
        std::iter::once(Dim::BATCH)
            .chain(s.iter().map(|&d| Dim::fixed(d as i64)))
            .collect()
    });
    b.graph_mut()
        .input
        .push(proto::value_info(name, elem, raw_dims.as_deref()));
    let mut x = name.to_string();
    let stat = |b: &mut Builder, shape: &[usize], values: &[f64]| -> String {
        let dims: Vec<i64> = shape.iter().map(|&d| d as i64).collect();
        let raw = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        b.constant(elem, &dims, raw)
    };
    for (step, shape) in p.steps.iter().zip(&p.stat_shapes) {
        x = match step {
            PrepStep::Reshape(to) => {
                let target: Vec<i64> = std::iter::once(-1)
                    .chain(to.iter().map(|&d| d as i64))
                    .collect();
                let t = b.int64s(&target);
                b.node("Reshape", &[&x, &t], vec![], 1).remove(0)
            }
            PrepStep::Scale(f) => {
                let c = b.scalar(DType::F64, *f);
                b.node("Mul", &[&x, &c.name], vec![], 1).remove(0)
            }
            PrepStep::Standardize { mean, std } => {
                let (m, s) = (stat(b, shape, mean), stat(b, shape, std));
                let d = b.node("Sub", &[&x, &m], vec![], 1).remove(0);
                b.node("Div", &[&d, &s], vec![], 1).remove(0)
            }
            PrepStep::MinMax { min, range } => {
                let (m, r) = (stat(b, shape, min), stat(b, shape, range));
                let d = b.node("Sub", &[&x, &m], vec![], 1).remove(0);
                b.node("Div", &[&d, &r], vec![], 1).remove(0)
            }
            PrepStep::Impute { fill } => {
                let f = stat(b, shape, fill);
                let nan = b.node("IsNaN", &[&x], vec![], 1).remove(0);
                b.node("Where", &[&nan, &f, &x], vec![], 1).remove(0)
            }
            PrepStep::Clip { low, high } => {
                let (lo, hi) = (stat(b, shape, low), stat(b, shape, high));
                let above = b.node("Greater", &[&x, &hi], vec![], 1).remove(0);
                let capped = b.node("Where", &[&above, &hi, &x], vec![], 1).remove(0);
                let below = b.node("Less", &[&x, &lo], vec![], 1).remove(0);
                b.node("Where", &[&below, &lo, &capped], vec![], 1)
                    .remove(0)
            }
            PrepStep::OneHot(k) => {
                let ids = b
                    .node(
                        "Cast",
                        &[&x],
                        vec![proto::int("to", proto::INT64 as i64)],
                        1,
                    )
                    .remove(0);
                let depth = b.int64s(&[*k as i64]);
                let off_on = b.constant(
                    elem,
                    &[2],
                    [0.0f64, 1.0].iter().flat_map(|v| v.to_le_bytes()).collect(),
                );
                b.node(
                    "OneHot",
                    &[&ids, &depth, &off_on],
                    vec![proto::int("axis", -1)],
                    1,
                )
                .remove(0)
            }
        };
    }
    let cast = b
        .node(
            "Cast",
            &[&x],
            vec![proto::int("to", proto::elem_type(p.dtype) as i64)],
            1,
        )
        .remove(0);
    if p.shape.len() + 1 != model_input.shape.len() || p.dtype != model_input.dtype {
        return Err(format!(
            "field `{name}` gives {}[{}] per sample, but the model's input is {}",
            p.dtype.name(),
            p.shape
                .iter()
                .map(usize::to_string)
                .collect::<Vec<_>>()
                .join(", "),
            model_input.dtype.name()
        ));
    }
    Ok(Tv {
        name: cast,
        dtype: p.dtype,
        shape: model_input.shape.clone(),
    })
}
