//! The shape rule of every primitive: the result type from the op and its operands' types, or a
//! sentence saying why the node is ill-formed. The operand count is the primitive table's arity;
//! the elementwise primitives share one rule read from their rows (`pointwise`).

use super::{DType, Op, Primitive, TensorType, Type, ValueId, Window};

pub fn infer(op: &Op, args: &[&Type]) -> Result<Type, String> {
    let tensors = args
        .iter()
        .enumerate()
        .map(|(i, t)| match t {
            Type::Tensor(t) => Ok(t),
            Type::Tuple(_) if matches!(op, Op::Get { .. }) => Ok(&UNIT),
            Type::Tuple(_) => Err(format!("operand {i} is a tuple")),
        })
        .collect::<Result<Vec<&TensorType>, String>>()?;
    let row = op.primitive();
    if !row.arity.admits(tensors.len()) {
        return Err(format!(
            "`{}` takes {} operand(s), got {}",
            row.name,
            row.arity,
            tensors.len()
        ));
    }
    let t = |ty: TensorType| Ok(Type::Tensor(ty));
    match op {
        Op::Input { ty, .. } | Op::Const { ty, .. } => t(ty.clone()),
        Op::Iota { axis, ty } => {
            if *axis >= ty.rank() {
                return Err(format!("iota axis {axis} out of range for {ty}"));
            }
            t(ty.clone())
        }
        Op::Rand { ty, .. } => {
            expect_type(
                tensors[0],
                &TensorType::new(DType::I32, vec![2]),
                "the random key",
            )?;
            expect_float(ty)?;
            t(ty.clone())
        }
        Op::Neg
        | Op::Exp
        | Op::Log
        | Op::Sqrt
        | Op::Sin
        | Op::Cos
        | Op::Erf
        | Op::Tanh
        | Op::Sigmoid
        | Op::Not
        | Op::Detach
        | Op::AllSum
        | Op::Add
        | Op::Sub
        | Op::Mul
        | Op::Div
        | Op::Max
        | Op::Min
        | Op::And
        | Op::Or => t(pointwise(row, &tensors)?),
        Op::Cmp(_) => t(pointwise(row, &tensors)?.with_dtype(DType::Bool)),
        Op::Cast { to } => t(pointwise(row, &tensors)?.with_dtype(*to)),
        Op::Select => {
            expect_dtype(tensors[0], DType::Bool)?;
            if tensors[0].shape != tensors[1].shape {
                return Err(format!(
                    "condition {} and branches {} differ in shape",
                    tensors[0], tensors[1]
                ));
            }
            same(tensors[1], tensors[2])?;
            t(tensors[1].clone())
        }
        Op::Sum { axes } | Op::ReduceMax { axes } => {
            let x = tensors[0];
            check_axes(axes, x.rank())?;
            let shape = x
                .shape
                .iter()
                .enumerate()
                .filter(|(i, _)| !axes.contains(i))
                .map(|(_, d)| *d)
                .collect();
            if x.dtype == DType::Bool {
                return Err(format!("`{}` on bool", op.name()));
            }
            t(TensorType::new(x.dtype, shape))
        }
        Op::Argmax { axis } => {
            let x = tensors[0];
            check_axes(&[*axis], x.rank())?;
            if x.shape[*axis] == 0 {
                return Err("argmax over an empty axis".into());
            }
            let mut shape = x.shape.clone();
            shape.remove(*axis);
            t(TensorType::new(DType::I32, shape))
        }
        Op::Reshape { shape } => {
            let n = checked_numel(shape);
            if n.is_none() || n != checked_numel(&tensors[0].shape) {
                return Err(format!(
                    "cannot reshape {} to {shape:?}: the element counts differ",
                    tensors[0]
                ));
            }
            t(TensorType::new(tensors[0].dtype, shape.clone()))
        }
        Op::Permute { perm } => {
            let x = tensors[0];
            let mut seen = vec![false; x.rank()];
            if perm.len() != x.rank() {
                return Err(format!("permutation {perm:?} for rank {}", x.rank()));
            }
            for &p in perm {
                if p >= x.rank() || std::mem::replace(&mut seen[p], true) {
                    return Err(format!("{perm:?} is not a permutation"));
                }
            }
            let shape = perm.iter().map(|&p| x.shape[p]).collect();
            t(TensorType::new(x.dtype, shape))
        }
        Op::Broadcast { shape } => {
            let x = tensors[0];
            if x.rank() > shape.len() {
                return Err(format!("cannot broadcast {x} to fewer axes {shape:?}"));
            }
            let offset = shape.len() - x.rank();
            for (i, &d) in x.shape.iter().enumerate() {
                if d != 1 && d != shape[offset + i] {
                    return Err(format!("cannot broadcast {x} to {shape:?}"));
                }
            }
            t(TensorType::new(x.dtype, shape.clone()))
        }
        Op::Slice { axis, start, end } => {
            let x = tensors[0];
            check_axes(&[*axis], x.rank())?;
            if start > end || *end > x.shape[*axis] {
                return Err(format!("slice {start}..{end} of axis {axis} of {x}"));
            }
            let mut shape = x.shape.clone();
            shape[*axis] = end - start;
            t(TensorType::new(x.dtype, shape))
        }
        Op::Pad { axis, lo, hi } => {
            let x = tensors[0];
            check_axes(&[*axis], x.rank())?;
            let mut shape = x.shape.clone();
            shape[*axis] = lo
                .checked_add(*hi)
                .and_then(|n| n.checked_add(x.shape[*axis]))
                .ok_or_else(|| format!("padding axis {axis} of {x} by {lo}+{hi} overflows"))?;
            t(TensorType::new(x.dtype, shape))
        }
        Op::Concat { axis } => {
            let first = tensors.first().ok_or("`concat` of nothing")?;
            check_axes(&[*axis], first.rank())?;
            let mut total = 0;
            for x in &tensors {
                let mut a = x.shape.clone();
                let mut b = first.shape.clone();
                if a.len() != b.len() || x.dtype != first.dtype {
                    return Err(format!("cannot concatenate {x} and {first}"));
                }
                total = a[*axis]
                    .checked_add(total)
                    .ok_or("the concatenated axis overflows")?;
                a[*axis] = 0;
                b[*axis] = 0;
                if a != b {
                    return Err(format!("cannot concatenate {x} and {first}"));
                }
            }
            let mut shape = first.shape.clone();
            shape[*axis] = total;
            t(TensorType::new(first.dtype, shape))
        }
        Op::MatMul => {
            let (a, b) = (tensors[0], tensors[1]);
            let r = a.rank();
            if r < 2 || b.rank() != r || a.shape[..r - 2] != b.shape[..r - 2] {
                return Err(format!("matmul of {a} and {b}: batch axes must agree"));
            }
            if a.shape[r - 1] != b.shape[r - 2] || a.dtype != b.dtype || !a.dtype.is_float() {
                return Err(format!("matmul of {a} and {b}"));
            }
            let mut shape = a.shape.clone();
            shape[r - 1] = b.shape[r - 1];
            t(TensorType::new(a.dtype, shape))
        }
        Op::Unfold(w) => {
            let x = tensors[0];
            let [b, c, h, wd] = x.shape[..] else {
                return Err(format!("unfold needs [B, C, H, W], got {x}"));
            };
            check_window(w)?;
            let (Some(oh), Some(ow)) = (w.out_len(h), w.out_len(wd)) else {
                return Err(format!("window {w:?} larger than {x}"));
            };
            let ckk = c
                .checked_mul(w.kernel)
                .and_then(|n| n.checked_mul(w.kernel));
            let (Some(ckk), Some(l)) = (ckk, oh.checked_mul(ow)) else {
                return Err(format!("unfold of {x} with {w:?} overflows"));
            };
            t(TensorType::new(x.dtype, vec![b, ckk, l]))
        }
        Op::Fold { window: w, size } => {
            let x = tensors[0];
            if x.dtype == DType::Bool {
                return Err("`fold` sums, so it cannot take bool".into());
            }
            let [b, ckk, l] = x.shape[..] else {
                return Err(format!("fold needs [B, C·k·k, L], got {x}"));
            };
            check_window(w)?;
            let (Some(oh), Some(ow)) = (w.out_len(size[0]), w.out_len(size[1])) else {
                return Err(format!("window {w:?} larger than {size:?}"));
            };
            let kk = w.kernel.checked_mul(w.kernel);
            let (Some(kk), Some(positions)) = (kk, oh.checked_mul(ow)) else {
                return Err(format!("fold of {x} to {size:?} with {w:?} overflows"));
            };
            if ckk % kk != 0 || l != positions {
                return Err(format!("fold of {x} to {size:?} with {w:?}"));
            }
            t(TensorType::new(
                x.dtype,
                vec![b, ckk / kk, size[0], size[1]],
            ))
        }
        Op::Gather => {
            let (table, ids) = (tensors[0], tensors[1]);
            expect_dtype(ids, DType::I32)?;
            if table.rank() == 0 {
                return Err("gather from a scalar".into());
            }
            let mut shape = ids.shape.clone();
            shape.extend_from_slice(&table.shape[1..]);
            t(TensorType::new(table.dtype, shape))
        }
        Op::ScatterAdd { rows } => {
            let (ids, updates) = (tensors[0], tensors[1]);
            expect_dtype(ids, DType::I32)?;
            if updates.dtype == DType::Bool {
                return Err("`scatter_add` sums, so it cannot take bool".into());
            }
            if !updates.shape.starts_with(&ids.shape) {
                return Err(format!("scatter_add of {updates} at ids {ids}"));
            }
            let mut shape = vec![*rows];
            shape.extend_from_slice(&updates.shape[ids.rank()..]);
            t(TensorType::new(updates.dtype, shape))
        }
        Op::Scan {
            body,
            carries,
            seqs,
            ..
        } => infer_scan(body, *carries, *seqs, &tensors),
        Op::Get { index } => match args[0] {
            Type::Tuple(parts) => parts
                .get(*index)
                .cloned()
                .map(Type::Tensor)
                .ok_or_else(|| format!("`get {index}` of a {}-tuple", parts.len())),
            Type::Tensor(_) => Err("`get` of a tensor".into()),
        },
    }
}

/// The rule of the primitives the table's row says all about: operands all of one type (as
/// many as its arity), of a dtype it computes on; the result has their shape and dtype (a
/// comparison or a `cast` then changes the dtype).
fn pointwise(row: &Primitive, x: &[&TensorType]) -> Result<TensorType, String> {
    let first = x[0];
    for other in &x[1..] {
        same(first, other)?;
    }
    if !row.operands.admit(first.dtype) {
        return Err(format!(
            "`{}` takes {}, got {first}",
            row.name,
            row.operands.describe()
        ));
    }
    Ok(first.clone())
}

static UNIT: TensorType = TensorType {
    dtype: DType::Bool,
    shape: Vec::new(),
};

fn infer_scan(
    body: &super::Graph,
    carries: usize,
    seqs: usize,
    args: &[&TensorType],
) -> Result<Type, String> {
    let inputs: Vec<&TensorType> = body
        .inputs()
        .map(|(v, _, _)| body_tensor(body, v))
        .collect::<Result<Vec<_>, _>>()?;
    if inputs.len() != args.len() {
        return Err(format!(
            "scan body takes {} inputs, the scan has {} operands",
            inputs.len(),
            args.len()
        ));
    }
    if carries > args.len() || seqs > args.len() - carries {
        return Err(format!(
            "{carries} carries and {seqs} sequences among {} scan operands",
            args.len()
        ));
    }
    let mut length = None;
    for (i, (arg, input)) in args.iter().zip(&inputs).enumerate() {
        let expected: TensorType = if (carries..carries + seqs).contains(&i) {
            let Some((&n, rest)) = arg.shape.split_first() else {
                return Err(format!("scan sequence {i} is a scalar"));
            };
            if *length.get_or_insert(n) != n {
                return Err("scan sequences differ in length".into());
            }
            TensorType::new(arg.dtype, rest.to_vec())
        } else {
            (*arg).clone()
        };
        if &&expected != input {
            return Err(format!(
                "scan operand {i} is {arg}; the body expects {input}"
            ));
        }
    }
    let length = length.ok_or("a scan needs at least one sequence")?;
    if body.outputs.len() < carries {
        return Err("the scan body returns fewer values than it has carries".into());
    }
    let mut parts = Vec::new();
    for (i, o) in body.outputs.iter().enumerate() {
        let out = body_tensor(body, o.value)?;
        if i < carries {
            if out != args[i] {
                return Err(format!(
                    "scan carry {i} enters as {} but leaves as {out}",
                    args[i]
                ));
            }
            parts.push(out.clone());
        } else {
            let mut shape = vec![length];
            shape.extend_from_slice(&out.shape);
            parts.push(TensorType::new(out.dtype, shape));
        }
    }
    Ok(Type::Tuple(parts))
}

/// A body value that a scan reads or returns, which must be a tensor defined in the body.
fn body_tensor(body: &super::Graph, v: ValueId) -> Result<&TensorType, String> {
    match body.nodes.get(v.index()).map(|n| &n.ty) {
        Some(Type::Tensor(t)) => Ok(t),
        Some(Type::Tuple(_)) => Err(format!("the scan body's {v} is a tuple")),
        None => Err(format!("the scan body's {v} is not defined")),
    }
}

fn checked_numel(shape: &[usize]) -> Option<usize> {
    shape.iter().try_fold(1usize, |n, &d| n.checked_mul(d))
}

fn check_window(w: &Window) -> Result<(), String> {
    if w.kernel == 0 || w.stride == 0 || w.dilation == 0 {
        return Err(format!("degenerate window {w:?}"));
    }
    Ok(())
}

fn same(a: &TensorType, b: &TensorType) -> Result<(), String> {
    if a == b {
        Ok(())
    } else {
        Err(format!("operands {a} and {b} differ"))
    }
}

fn expect_dtype(x: &TensorType, d: DType) -> Result<(), String> {
    if x.dtype == d {
        Ok(())
    } else {
        Err(format!("expected {}, got {x}", d.name()))
    }
}

fn expect_float(x: &TensorType) -> Result<(), String> {
    if x.dtype.is_float() {
        Ok(())
    } else {
        Err(format!("expected a float tensor, got {x}"))
    }
}

fn expect_type(x: &TensorType, want: &TensorType, what: &str) -> Result<(), String> {
    if x == want {
        Ok(())
    } else {
        Err(format!("{what} must be {want}, got {x}"))
    }
}

fn check_axes(axes: &[usize], rank: usize) -> Result<(), String> {
    for (i, &a) in axes.iter().enumerate() {
        if a >= rank || axes[..i].contains(&a) {
            return Err(format!("axes {axes:?} invalid for rank {rank}"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::infer;
    use crate::ir::primitive::{Arity, Class};
    use crate::ir::{DType, Graph, Op, Prim, TensorType, Type, samples};

    fn node_of(g: &Graph, prim: Prim) -> Option<(&Op, Vec<&Type>, &Type)> {
        g.nodes.iter().find_map(|n| {
            if n.op.prim() == prim {
                let args = n.args.iter().map(|a| &g.nodes[a.index()].ty).collect();
                Some((&n.op, args, &n.ty))
            } else if let Op::Scan { body, .. } = &n.op {
                node_of(body, prim)
            } else {
                None
            }
        })
    }

    /// Every primitive has a shape rule, which gives its sample node its type and refuses an
    /// operand count other than the table's arity, naming the primitive.
    #[test]
    fn every_primitive_has_a_shape_rule_and_the_tables_arity() {
        let scalar = Type::Tensor(TensorType::new(DType::F32, Vec::new()));
        for &prim in Prim::ALL {
            let name = prim.info().name;
            let g = samples::sample(prim, DType::F32);
            let (op, args, ty) = node_of(&g, prim).unwrap_or_else(|| panic!("`{name}`'s node"));
            assert_eq!(infer(op, &args).as_ref(), Ok(ty), "`{name}`");
            let wrong: Vec<&Type> = match prim.info().arity {
                Arity::Exactly(_) => args.iter().copied().chain([&scalar]).collect(),
                Arity::AtLeast(k) => args[..k - 1].to_vec(),
            };
            let e = infer(op, &wrong).expect_err(name);
            assert!(
                e.starts_with(&format!("`{name}` takes {} operand(s)", prim.info().arity)),
                "`{name}` with {} operands: {e}",
                wrong.len()
            );
        }
    }

    /// An elementwise primitive's rule admits exactly the operand dtypes its row does, and its
    /// result has its operands' shape.
    #[test]
    fn elementwise_rules_admit_the_tables_dtypes() {
        for &prim in Prim::ALL {
            let row = prim.info();
            if row.class != Class::Elementwise {
                continue;
            }
            let g = samples::sample(prim, DType::F32);
            let (op, args, _) = node_of(&g, prim).expect("the sample's node");
            for dtype in [DType::F32, DType::F64, DType::I32, DType::Bool] {
                // `select`'s row describes its condition; its branches take any dtype.
                let operands: Vec<Type> = (0..args.len())
                    .map(|k| {
                        let d = if prim == Prim::Select && k > 0 {
                            DType::I32
                        } else {
                            dtype
                        };
                        Type::Tensor(TensorType::new(d, vec![2, 3]))
                    })
                    .collect();
                let operands: Vec<&Type> = operands.iter().collect();
                let result = infer(op, &operands);
                assert_eq!(
                    result.is_ok(),
                    row.operands.admit(dtype),
                    "`{}` on {}: {result:?}",
                    row.name,
                    dtype.name()
                );
                if let Ok(Type::Tensor(t)) = result {
                    assert_eq!(t.shape, [2, 3], "`{}`", row.name);
                }
            }
        }
    }
}
