//! The primitives that map operand tensors to one result tensor. Errors are sentences; the
//! evaluator adds the node they happened at.

use super::linalg;
use super::random;
use super::{Elem, Num, Tensor, by_dtype, by_float, by_num, from_fn, row_major};
use crate::ir::composite::{self, Operand};
use crate::ir::{CmpOp, DType, Op};
use ndarray::{ArrayD, ArrayView1, Axis, IxDyn, Slice, Zip};

/// Computes `op` (any op but `input`, `scan` and `get`, which the evaluator runs itself).
pub(crate) fn apply(op: &Op, args: &[&Tensor], threads: usize) -> Result<Tensor, String> {
    let name = op.name();
    Ok(match op {
        Op::Input { .. } | Op::Scan { .. } | Op::Get { .. } => {
            return Err(format!("internal error: `{name}` is not a kernel"));
        }
        Op::Const { value, ty } => by_dtype!(ty.dtype, T => {
            T::wrap(ArrayD::from_elem(IxDyn(&ty.shape), T::from_f64(*value)))
        }),
        Op::Iota { axis, ty } => by_dtype!(ty.dtype, T => {
            T::wrap(ArrayD::from_shape_fn(IxDyn(&ty.shape), |ix| T::from_f64(ix[*axis] as f64)))
        }),
        Op::Rand { dist, stream, ty } => {
            let [key] = operands(args)?;
            let &[seed, counter] = row_major(i32::of(key)?).as_ref() else {
                return Err(format!("the random key must be i32[2], got {}", key.ty()));
            };
            let key = random::node_key(seed, counter, *stream);
            match ty.dtype {
                DType::F32 => Tensor::F32(from_fn(&ty.shape, |i| {
                    random::sample_f32(*dist, key, i as u64)
                })),
                DType::F64 => Tensor::F64(from_fn(&ty.shape, |i| {
                    random::sample_f64(*dist, key, i as u64)
                })),
                d => return Err(format!("random numbers of dtype {}", d.name())),
            }
        }
        Op::Neg => {
            let [x] = operands(args)?;
            by_num!(x.dtype(), name, T => T::wrap(T::of(x)?.mapv(T::negate)))
        }
        Op::Exp | Op::Log | Op::Sin | Op::Cos | Op::Erf => {
            let [x] = operands(args)?;
            let math = op
                .primitive()
                .math
                .ok_or_else(|| format!("internal error: `{name}` has no math function"))?;
            match x.dtype() {
                DType::F32 => Tensor::F32(f32::of(x)?.mapv(|v| (math.f32)(v))),
                DType::F64 => Tensor::F64(f64::of(x)?.mapv(|v| (math.f64)(v))),
                d => return Err(format!("`{name}` of a {} tensor", d.name())),
            }
        }
        Op::Sqrt => {
            let [x] = operands(args)?;
            by_float!(x.dtype(), name, T => T::wrap(T::of(x)?.mapv(T::sqrt)))
        }
        Op::Tanh | Op::Sigmoid => {
            let [x] = operands(args)?;
            composite(op, x, threads)?
        }
        Op::Not => {
            let [x] = operands(args)?;
            Tensor::Bool(bool::of(x)?.mapv(|b| !b))
        }
        Op::Cast { to } => {
            let [x] = operands(args)?;
            by_dtype!(x.dtype(), S => {
                let a = S::of(x)?;
                by_dtype!(*to, T => T::wrap(a.mapv(|v| T::from_f64(v.to_f64()))))
            })
        }
        // In one process there is one shard: its sum is its value. A data-parallel step is cut
        // at every `all_sum` (`ir::stages`), so no kernel sees one with several shards.
        Op::Detach | Op::AllSum => {
            let [x] = operands(args)?;
            x.clone()
        }
        Op::Add | Op::Sub | Op::Mul | Op::Div | Op::Max | Op::Min => {
            let [a, b] = operands(args)?;
            by_num!(a.dtype(), name, T => T::wrap(arithmetic(op, T::of(a)?, T::of(b)?)?))
        }
        Op::Cmp(c) => {
            let [a, b] = operands(args)?;
            by_dtype!(a.dtype(), T => Tensor::Bool(compare(*c, T::of(a)?, T::of(b)?)?))
        }
        Op::And | Op::Or => {
            let [a, b] = operands(args)?;
            let f = if *op == Op::And {
                |x: bool, y: bool| x && y
            } else {
                |x: bool, y: bool| x || y
            };
            Tensor::Bool(zip(bool::of(a)?, bool::of(b)?, f)?)
        }
        Op::Select => {
            let [c, a, b] = operands(args)?;
            let c = bool::of(c)?;
            by_dtype!(a.dtype(), T => {
                let (a, b) = (T::of(a)?, T::of(b)?);
                same_shape(c.shape(), a.shape())?;
                same_shape(a.shape(), b.shape())?;
                T::wrap(Zip::from(c).and(a).and(b).map_collect(|&c, &x, &y| if c { x } else { y }))
            })
        }
        Op::Sum { axes } => {
            let [x] = operands(args)?;
            by_num!(x.dtype(), name, T => {
                T::wrap(reduce(T::of(x)?, axes, T::default(), T::plus)?)
            })
        }
        Op::ReduceMax { axes } => {
            let [x] = operands(args)?;
            by_num!(x.dtype(), name, T => T::wrap(reduce(T::of(x)?, axes, T::LOWEST, max)?))
        }
        Op::Argmax { axis } => {
            let [x] = operands(args)?;
            by_dtype!(x.dtype(), T => {
                let x = T::of(x)?;
                check_axis(*axis, x.ndim())?;
                Tensor::I32(x.map_axis(Axis(*axis), first_max))
            })
        }
        Op::Reshape { shape } => {
            let [x] = operands(args)?;
            by_dtype!(x.dtype(), T => {
                let data = row_major(T::of(x)?).into_owned();
                T::wrap(ArrayD::from_shape_vec(IxDyn(shape), data).map_err(|e| e.to_string())?)
            })
        }
        Op::Permute { perm } => {
            let [x] = operands(args)?;
            by_dtype!(x.dtype(), T => T::wrap(permute(T::of(x)?, perm)?))
        }
        Op::Broadcast { shape } => {
            let [x] = operands(args)?;
            by_dtype!(x.dtype(), T => {
                let x = T::of(x)?;
                let view = x.broadcast(IxDyn(shape)).ok_or_else(|| {
                    format!("cannot broadcast {:?} to {shape:?}", x.shape())
                })?;
                T::wrap(view.to_owned())
            })
        }
        Op::Slice { axis, start, end } => {
            let [x] = operands(args)?;
            by_dtype!(x.dtype(), T => {
                let x = T::of(x)?;
                check_axis(*axis, x.ndim())?;
                if start > end || *end > x.shape()[*axis] {
                    return Err(format!("slice {start}..{end} of axis {axis} of {:?}", x.shape()));
                }
                T::wrap(x.slice_axis(Axis(*axis), Slice::from(*start..*end)).to_owned())
            })
        }
        Op::Pad { axis, lo, hi } => {
            let [x] = operands(args)?;
            by_dtype!(x.dtype(), T => T::wrap(pad(T::of(x)?, *axis, *lo, *hi)?))
        }
        Op::Concat { axis } => {
            let first = args.first().ok_or("`concat` of nothing")?;
            by_dtype!(first.dtype(), T => {
                let views = args
                    .iter()
                    .map(|t| T::of(t).map(|a| a.view()))
                    .collect::<Result<Vec<_>, _>>()?;
                check_axis(*axis, first.shape().len())?;
                T::wrap(ndarray::concatenate(Axis(*axis), &views).map_err(|e| e.to_string())?)
            })
        }
        Op::MatMul => {
            let [a, b] = operands(args)?;
            by_float!(a.dtype(), name, T => {
                T::wrap(linalg::matmul(T::of(a)?, T::of(b)?, threads)?)
            })
        }
        Op::Unfold(window) => {
            let [x] = operands(args)?;
            by_dtype!(x.dtype(), T => T::wrap(linalg::unfold(T::of(x)?, window)?))
        }
        Op::Fold { window, size } => {
            let [x] = operands(args)?;
            by_num!(x.dtype(), name, T => T::wrap(linalg::fold(T::of(x)?, window, *size)?))
        }
        Op::Gather => {
            let [table, ids] = operands(args)?;
            let ids = i32::of(ids)?;
            by_dtype!(table.dtype(), T => T::wrap(linalg::gather(T::of(table)?, ids)?))
        }
        Op::ScatterAdd { rows } => {
            let [ids, updates] = operands(args)?;
            let ids = i32::of(ids)?;
            by_num!(updates.dtype(), name, T => {
                T::wrap(linalg::scatter_add(ids, T::of(updates)?, *rows)?)
            })
        }
    })
}

fn operands<'a, const N: usize>(args: &[&'a Tensor]) -> Result<[&'a Tensor; N], String> {
    args.try_into()
        .map_err(|_| format!("expected {N} operand(s), got {}", args.len()))
}

fn same_shape(a: &[usize], b: &[usize]) -> Result<(), String> {
    if a == b {
        Ok(())
    } else {
        Err(format!("operand shapes {a:?} and {b:?} differ"))
    }
}

fn check_axis(axis: usize, rank: usize) -> Result<(), String> {
    if axis < rank {
        Ok(())
    } else {
        Err(format!("axis {axis} out of range for rank {rank}"))
    }
}

fn zip<A: Copy, B: Copy, C>(
    a: &ArrayD<A>,
    b: &ArrayD<B>,
    mut f: impl FnMut(A, B) -> C,
) -> Result<ArrayD<C>, String> {
    same_shape(a.shape(), b.shape())?;
    if let (Some(x), Some(y)) = (a.as_slice(), b.as_slice()) {
        let out: Vec<C> = x.iter().zip(y).map(|(&x, &y)| f(x, y)).collect();
        return Ok(ArrayD::from_shape_vec(a.raw_dim(), out).expect("the operands' shape"));
    }
    Ok(Zip::from(a).and(b).map_collect(|&x, &y| f(x, y)))
}

/// The larger of two values; NaN if either is NaN (the first NaN when both are).
fn max<T: Elem>(x: T, y: T) -> T {
    if x > y || x.is_nan() { x } else { y }
}

/// The smaller of two values; NaN if either is NaN (the first NaN when both are).
fn min<T: Elem>(x: T, y: T) -> T {
    if x < y || x.is_nan() { x } else { y }
}

fn arithmetic<T: Num>(op: &Op, a: &ArrayD<T>, b: &ArrayD<T>) -> Result<ArrayD<T>, String> {
    // One `zip` per op rather than a function pointer, so each loop is inlined.
    match op {
        Op::Add => zip(a, b, T::plus),
        Op::Sub => zip(a, b, T::minus),
        Op::Mul => zip(a, b, T::times),
        Op::Max => zip(a, b, max),
        Op::Min => zip(a, b, min),
        Op::Div => {
            let mut failure = None;
            let out = zip(a, b, |x, y| {
                x.divide(y).unwrap_or_else(|e| {
                    failure.get_or_insert(e);
                    T::default()
                })
            });
            match failure {
                Some(e) => Err(e),
                None => out,
            }
        }
        op => Err(format!("internal error: `{}` is not arithmetic", op.name())),
    }
}

fn compare<T: Elem>(c: CmpOp, a: &ArrayD<T>, b: &ArrayD<T>) -> Result<ArrayD<bool>, String> {
    match c {
        CmpOp::Eq => zip(a, b, |x, y| x == y),
        CmpOp::Ne => zip(a, b, |x, y| x != y),
        CmpOp::Lt => zip(a, b, |x, y| x < y),
        CmpOp::Le => zip(a, b, |x, y| x <= y),
        CmpOp::Gt => zip(a, b, |x, y| x > y),
        CmpOp::Ge => zip(a, b, |x, y| x >= y),
    }
}

/// Folds `f` over `axes` (which are dropped), starting from `init`, in the order every backend
/// follows (so that they agree bit for bit while a vectorizing one keeps several partial results
/// in flight). Axes of length 1 are ignored. When the last remaining axis is reduced, each run of
/// the trailing reduced axes (their elements in row-major order, element `t` of the run into
/// partial result `t mod 8`, each starting at `init`) is combined as
/// ((p0·p4)·(p1·p5))·((p2·p6)·(p3·p7)), and the runs fold into the result in row-major order of
/// the other reduced axes. When the last axis is kept, the elements fold in row-major order.
fn reduce<T: Num>(
    x: &ArrayD<T>,
    axes: &[usize],
    init: T,
    f: fn(T, T) -> T,
) -> Result<ArrayD<T>, String> {
    for (i, &axis) in axes.iter().enumerate() {
        if axes[..i].contains(&axis) {
            return Err(format!("axis {axis} reduced twice"));
        }
        check_axis(axis, x.ndim())?;
    }
    let shape = x.shape();
    let kept: Vec<usize> = (0..x.ndim()).filter(|a| !axes.contains(a)).collect();
    let reduced: Vec<usize> = (0..x.ndim()).filter(|a| axes.contains(a)).collect();
    let out_shape: Vec<usize> = kept.iter().map(|&a| shape[a]).collect();
    // The trailing run: the reduced axes after the last kept axis of length > 1.
    let last_kept = kept.iter().rev().find(|&&a| shape[a] > 1).copied();
    let run: usize = reduced
        .iter()
        .filter(|&&a| last_kept.is_none_or(|k| a > k))
        .map(|&a| shape[a])
        .product();
    let order: Vec<usize> = kept.iter().chain(&reduced).copied().collect();
    let permuted = x.view().permuted_axes(IxDyn(&order));
    let values: Vec<T> = permuted.iter().copied().collect();
    let row: usize = reduced.iter().map(|&a| shape[a]).product();
    if row == 0 {
        return Ok(ArrayD::from_elem(IxDyn(&out_shape), init));
    }
    let mut out = Vec::with_capacity(out_shape.iter().product());
    const PARTIALS: usize = 8;
    for chunk in values.chunks(row) {
        let mut acc = init;
        if run <= 1 {
            for &v in chunk {
                acc = f(acc, v);
            }
        } else {
            for elements in chunk.chunks(run) {
                let mut p = [init; PARTIALS];
                for (t, &v) in elements.iter().enumerate() {
                    p[t % PARTIALS] = f(p[t % PARTIALS], v);
                }
                let tree = f(
                    f(f(p[0], p[4]), f(p[1], p[5])),
                    f(f(p[2], p[6]), f(p[3], p[7])),
                );
                acc = f(acc, tree);
            }
        }
        out.push(acc);
    }
    ArrayD::from_shape_vec(IxDyn(&out_shape), out).map_err(|e| e.to_string())
}

/// The index of the first maximum of a lane; a NaN counts as larger than any number.
fn first_max<T: Elem>(lane: ArrayView1<'_, T>) -> i32 {
    let mut best: Option<(usize, T)> = None;
    for (i, &v) in lane.iter().enumerate() {
        match best {
            Some((_, b)) if b.is_nan() || !(v > b || v.is_nan()) => {}
            _ => best = Some((i, v)),
        }
    }
    best.map_or(0, |(i, _)| i as i32)
}

fn permute<T: Elem>(x: &ArrayD<T>, perm: &[usize]) -> Result<ArrayD<T>, String> {
    let mut seen = vec![false; x.ndim()];
    for &p in perm {
        if p >= x.ndim() || std::mem::replace(&mut seen[p], true) {
            return Err(format!(
                "{perm:?} is not a permutation of {} axes",
                x.ndim()
            ));
        }
    }
    if perm.len() != x.ndim() {
        return Err(format!(
            "{perm:?} is not a permutation of {} axes",
            x.ndim()
        ));
    }
    let view = x.view().permuted_axes(IxDyn(perm));
    Ok(view.as_standard_layout().into_owned())
}

fn pad<T: Elem>(x: &ArrayD<T>, axis: usize, lo: usize, hi: usize) -> Result<ArrayD<T>, String> {
    check_axis(axis, x.ndim())?;
    let mut shape = x.shape().to_vec();
    let n = shape[axis];
    shape[axis] += lo + hi;
    let mut out = ArrayD::default(IxDyn(&shape));
    out.slice_axis_mut(Axis(axis), Slice::from(lo..lo + n))
        .assign(x);
    Ok(out)
}

/// An op the backends compute by [`composite::recipe`], step by step on whole tensors.
fn composite(op: &Op, x: &Tensor, threads: usize) -> Result<Tensor, String> {
    let steps = composite::recipe(op)
        .ok_or_else(|| format!("internal error: `{}` has no recipe", op.name()))?;
    let mut results: Vec<Tensor> = Vec::with_capacity(steps.len());
    for step in &steps {
        let mut constants = Vec::new();
        for a in &step.args {
            if let Operand::Const(c) = a {
                constants.push(by_float!(x.dtype(), op.name(), T => {
                    T::wrap(ArrayD::from_elem(IxDyn(x.shape()), T::from_f64(*c)))
                }));
            }
        }
        let mut constants = constants.iter();
        let operands: Vec<&Tensor> = step
            .args
            .iter()
            .map(|a| match a {
                Operand::X => x,
                Operand::Step(i) => &results[*i],
                Operand::Const(_) => constants.next().expect("one tensor per constant"),
            })
            .collect();
        let value = apply(&step.op, &operands, threads)?;
        results.push(value);
    }
    Ok(results.pop().expect("a recipe has steps"))
}
