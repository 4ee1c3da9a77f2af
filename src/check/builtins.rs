//! The shape rules of operators and builtins: broadcasting, reductions, movement, matmul,
//! windows, indexing and creation. Each rule returns the result type or reports why not.

use super::dim::Dim;
use super::ty::{Callable, Shape, ShapeElem, Ty, same_type};
use super::{ArgVal, Checker, Frame, Slot};
use crate::diag::Diagnostic;
use crate::diag::codes;
use crate::prim::Builtin;
use crate::source::Span;
use crate::syntax::ast::{BinOp, Dtype, UnOp};

fn err(
    code: &'static str,
    msg: impl Into<String>,
    span: Span,
    label: impl Into<String>,
) -> Diagnostic {
    Diagnostic::error(code, msg).with_primary(span, label)
}

/// Broadcasts two shapes numpy-style (aligned right; a 1 stretches).
pub(super) fn broadcast(a: &Shape, b: &Shape) -> Result<Shape, (usize, String, String)> {
    let (la, lb) = (a.0.len(), b.0.len());
    let n = la.max(lb);
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let x = (i < la).then(|| &a.0[la - 1 - i]);
        let y = (i < lb).then(|| &b.0[lb - 1 - i]);
        let e = match (x, y) {
            (Some(x), None) => x.clone(),
            (None, Some(y)) => y.clone(),
            (Some(x), Some(y)) if x == y => x.clone(),
            (Some(ShapeElem::Dim(x)), Some(ShapeElem::Dim(y))) => {
                if x.as_const() == Some(1) {
                    ShapeElem::Dim(y.clone())
                } else if y.as_const() == Some(1) {
                    ShapeElem::Dim(x.clone())
                } else {
                    return Err((i, x.to_string(), y.to_string()));
                }
            }
            (Some(x), Some(y)) => return Err((i, show_elem(x), show_elem(y))),
            (None, None) => unreachable!("i < max len"),
        };
        out.push(e);
    }
    out.reverse();
    // A pack aligned against fixed dimensions hides how many there are.
    Ok(Shape(out))
}

fn show_elem(e: &ShapeElem) -> String {
    match e {
        ShapeElem::Dim(d) => d.to_string(),
        ShapeElem::Pack(s) => format!("..{}", s.name),
    }
}

fn dtype_of(t: &Ty) -> Option<Dtype> {
    match t {
        Ty::Tensor(d, _) => Some(*d),
        Ty::Bool(_) => Some(Dtype::Bool),
        _ => None,
    }
}

/// The dtype of an elementwise result, or a diagnostic.
fn join_dtypes(c: &mut Checker, l: (&Ty, Span), r: (&Ty, Span), op_span: Span) -> Option<Dtype> {
    match (dtype_of(l.0), dtype_of(r.0)) {
        (Some(a), Some(b)) if a == b => Some(a),
        (Some(a), Some(b)) => {
            c.emit(
                err(
                    codes::DTYPE_MISMATCH,
                    format!(
                        "cannot combine {} and {} with `{}`",
                        a.name(),
                        b.name(),
                        c.sources.text(op_span)
                    ),
                    op_span,
                    "dtypes differ",
                )
                .with_secondary(l.1, format!("this is {}", l.0))
                .with_secondary(r.1, format!("this is {}", r.0))
                .with_help(format!("convert one side with `cast(…, {})`", a.name())),
            );
            None
        }
        (Some(d), None) | (None, Some(d)) => {
            let other = if dtype_of(l.0).is_some() { r.0 } else { l.0 };
            if d == Dtype::I32 && matches!(other, Ty::Float(_)) {
                c.emit(
                    err(
                        codes::DTYPE_MISMATCH,
                        "an i32 tensor cannot be combined with a float",
                        op_span,
                        "i32 with a fractional number",
                    )
                    .with_help("convert the tensor first with `cast(…, f32)`"),
                );
                return None;
            }
            Some(d)
        }
        (None, None) => Some(Dtype::F32),
    }
}

pub(super) fn binary(
    c: &mut Checker,
    op: BinOp,
    op_span: Span,
    l: (&Ty, Span),
    r: (&Ty, Span),
) -> Ty {
    use Ty::{Bool, Float, Int, Tensor, Unknown};
    if l.0.is_unknown() || r.0.is_unknown() {
        return Unknown;
    }
    // Compile-time arithmetic on integers, floats and booleans.
    match (l.0, r.0) {
        (Int(a), Int(b)) => return int_op(c, op, op_span, a, b, r.1),
        (Int(_) | Float(_), Int(_) | Float(_)) => return float_op(op, num(l.0), num(r.0)),
        (Bool(a), Bool(b)) => {
            return match op {
                BinOp::And => Bool(a.zip(*b).map(|(x, y)| x && y)),
                BinOp::Or => Bool(a.zip(*b).map(|(x, y)| x || y)),
                BinOp::Eq => Bool(a.zip(*b).map(|(x, y)| x == y)),
                BinOp::Ne => Bool(a.zip(*b).map(|(x, y)| x != y)),
                _ => {
                    c.emit(err(
                        codes::DTYPE_MISMATCH,
                        format!("`{}` does not apply to booleans", op.symbol()),
                        op_span,
                        "on bool values",
                    ));
                    Unknown
                }
            };
        }
        _ => {}
    }
    let (Some(ls), Some(rs)) = (l.0.shape(), r.0.shape()) else {
        let bad = if l.0.shape().is_none() { l } else { r };
        c.emit(
            err(codes::NOT_A_TENSOR, format!("`{}` needs numbers or tensors, found {}", op.symbol(), bad.0), bad.1, format!("this is {}", bad.0))
                .with_help("arithmetic applies to tensors and scalars; layers must be applied to an input first"),
        );
        return Unknown;
    };
    if op == BinOp::MatMul {
        return matmul(c, l, r, op_span);
    }
    let Some(dt) = join_dtypes(c, l, r, op_span) else {
        return Unknown;
    };
    let shape = match broadcast(&ls, &rs) {
        Ok(s) => s,
        Err((i, x, y)) => {
            c.emit(
                err(codes::BROADCAST, format!("cannot broadcast {} with {} in `{}`", show_ty_shape(l.0), show_ty_shape(r.0), op.symbol()), op_span, format!("{x} vs {y}, {} from the right", ordinal(i + 1)))
                    .with_secondary(l.1, format!("this is {}", l.0))
                    .with_secondary(r.1, format!("this is {}", r.0))
                    .with_note("two dimensions broadcast when they are equal or one of them is 1; shapes are aligned from the right")
                    .with_help("reshape one side (e.g. add a size-1 axis) or reduce it so that the shapes line up"),
            );
            return Unknown;
        }
    };
    match op {
        BinOp::Eq | BinOp::Ne | BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge => {
            Tensor(Dtype::Bool, shape)
        }
        BinOp::And | BinOp::Or => {
            if dt != Dtype::Bool {
                c.emit(
                    err(
                        codes::DTYPE_MISMATCH,
                        format!("`{}` needs bool values, found {}", op.symbol(), dt.name()),
                        op_span,
                        "not bool",
                    )
                    .with_help("compare first, e.g. `x > 0 and x < 1`"),
                );
                return Unknown;
            }
            Tensor(Dtype::Bool, shape)
        }
        _ if dt == Dtype::Bool => {
            c.emit(
                err(
                    codes::DTYPE_MISMATCH,
                    format!("arithmetic `{}` on bool tensors", op.symbol()),
                    op_span,
                    "bool values",
                )
                .with_help("convert with `cast(…, f32)` first"),
            );
            Unknown
        }
        _ => Tensor(dt, shape),
    }
}

fn show_ty_shape(t: &Ty) -> String {
    match t {
        Ty::Tensor(d, s) => format!("{}{s}", d.name()),
        other => other.to_string(),
    }
}

fn ordinal(n: usize) -> String {
    match n {
        1 => "1st".into(),
        2 => "2nd".into(),
        3 => "3rd".into(),
        n => format!("{n}th"),
    }
}

fn num(t: &Ty) -> Option<f64> {
    match t {
        Ty::Int(d) => d.as_const().map(|c| c as f64),
        Ty::Float(v) => *v,
        _ => None,
    }
}

fn float_op(op: BinOp, a: Option<f64>, b: Option<f64>) -> Ty {
    let both = a.zip(b);
    let cmp = |f: fn(f64, f64) -> bool| Ty::Bool(both.map(|(x, y)| f(x, y)));
    match op {
        BinOp::Add => Ty::Float(both.map(|(x, y)| x + y)),
        BinOp::Sub => Ty::Float(both.map(|(x, y)| x - y)),
        BinOp::Mul => Ty::Float(both.map(|(x, y)| x * y)),
        BinOp::Div => Ty::Float(both.map(|(x, y)| x / y)),
        BinOp::FloorDiv => Ty::Float(both.map(|(x, y)| (x / y).floor())),
        BinOp::Rem => Ty::Float(both.map(|(x, y)| x.rem_euclid(y))),
        BinOp::Pow => Ty::Float(both.map(|(x, y)| x.powf(y))),
        BinOp::Eq => cmp(|x, y| x == y),
        BinOp::Ne => cmp(|x, y| x != y),
        BinOp::Lt => cmp(|x, y| x < y),
        BinOp::Le => cmp(|x, y| x <= y),
        BinOp::Gt => cmp(|x, y| x > y),
        BinOp::Ge => cmp(|x, y| x >= y),
        BinOp::MatMul | BinOp::And | BinOp::Or => Ty::Unknown,
    }
}

fn int_op(c: &mut Checker, op: BinOp, op_span: Span, a: &Dim, b: &Dim, rhs_span: Span) -> Ty {
    let decided = |eq: Option<bool>| Ty::Bool(eq);
    let diff = a.sub(b).as_const();
    match op {
        BinOp::Add => Ty::Int(a.add(b)),
        BinOp::Sub => Ty::Int(a.sub(b)),
        BinOp::Mul => Ty::Int(a.mul(b)),
        // `1 / 255` is a fraction when both are numbers; dimension arithmetic stays integral.
        BinOp::Div if a.as_const().is_some() && b.as_const().is_some() => {
            let (x, y) = (a.as_const().expect("const"), b.as_const().expect("const"));
            if y == 0 {
                c.emit(err(
                    codes::ZERO_DIVISOR,
                    "division by zero",
                    rhs_span,
                    "this is 0",
                ));
                return Ty::Unknown;
            }
            // `i64::MIN / -1` does not fit: an overflowed integer, reported by the caller.
            if x.checked_rem(y).is_none_or(|r| r == 0) {
                Ty::Int(Dim::constant(x).div(&Dim::constant(y)).expect("y != 0"))
            } else {
                Ty::Float(Some(x as f64 / y as f64))
            }
        }
        BinOp::Div | BinOp::FloorDiv | BinOp::Rem => {
            let r = if op == BinOp::Rem { a.rem(b) } else { a.div(b) };
            match r {
                Some(d) => Ty::Int(d),
                None => {
                    c.emit(err(
                        codes::ZERO_DIVISOR,
                        "division by zero",
                        rhs_span,
                        "this is 0",
                    ));
                    Ty::Unknown
                }
            }
        }
        BinOp::Pow => match b.as_const() {
            // A number to a whole power is a whole number, or too large (reported by the caller).
            Some(k) if k >= 0 && a.as_const().is_some() => {
                let x = a.as_const().expect("const");
                let power = u32::try_from(k).ok().and_then(|k| x.checked_pow(k));
                Ty::Int(power.map_or_else(Dim::overflowed, Dim::constant))
            }
            Some(k) if (0..=16).contains(&k) => {
                Ty::Int((0..k).fold(Dim::constant(1), |acc, _| acc.mul(a)))
            }
            _ => Ty::Float(
                a.as_const()
                    .zip(b.as_const())
                    .map(|(x, y)| (x as f64).powf(y as f64)),
            ),
        },
        BinOp::Eq => decided(diff.map(|d| d == 0)),
        BinOp::Ne => decided(diff.map(|d| d != 0)),
        BinOp::Lt => decided(diff.map(|d| d < 0)),
        BinOp::Le => decided(diff.map(|d| d <= 0)),
        BinOp::Gt => decided(diff.map(|d| d > 0)),
        BinOp::Ge => decided(diff.map(|d| d >= 0)),
        BinOp::MatMul | BinOp::And | BinOp::Or => {
            c.emit(err(
                codes::OPERATOR_KIND,
                format!("`{}` does not apply to integers", op.symbol()),
                op_span,
                "on integers",
            ));
            Ty::Unknown
        }
    }
}

pub(super) fn unary(c: &mut Checker, op: UnOp, t: &Ty, span: Span) -> Ty {
    match (op, t) {
        (_, Ty::Unknown) => Ty::Unknown,
        (UnOp::Neg, Ty::Int(d)) => Ty::Int(d.neg()),
        (UnOp::Neg, Ty::Float(v)) => Ty::Float(v.map(|x| -x)),
        (UnOp::Neg, Ty::Tensor(dt, _)) if *dt != Dtype::Bool => t.clone(),
        (UnOp::Not, Ty::Bool(v)) => Ty::Bool(v.map(|x| !x)),
        (UnOp::Not, Ty::Tensor(Dtype::Bool, _)) => t.clone(),
        _ => {
            let sym = if op == UnOp::Neg { "-" } else { "not" };
            c.emit(err(
                codes::OPERATOR_KIND,
                format!("`{sym}` does not apply to {t}"),
                span,
                format!("this is {t}"),
            ));
            Ty::Unknown
        }
    }
}

fn matmul(c: &mut Checker, l: (&Ty, Span), r: (&Ty, Span), op_span: Span) -> Ty {
    let (Ty::Tensor(da, a), Ty::Tensor(db, b)) = (l.0, r.0) else {
        c.emit(
            err(
                codes::NOT_A_TENSOR,
                "`@` multiplies tensors",
                op_span,
                "a scalar here",
            )
            .with_help("use `*` to scale by a number"),
        );
        return Ty::Unknown;
    };
    if da != db || !da.is_float() {
        c.emit(
            err(
                codes::DTYPE_MISMATCH,
                format!(
                    "`@` needs two float tensors of one dtype, found {} and {}",
                    da.name(),
                    db.name()
                ),
                op_span,
                "dtypes differ",
            )
            .with_help("convert with `cast(…, f32)`"),
        );
        return Ty::Unknown;
    }
    let (na, nb) = (a.0.len(), b.0.len());
    if na == 0 || nb == 0 {
        c.emit(
            err(
                codes::RANK,
                "`@` needs tensors of rank 1 or more",
                op_span,
                "a scalar here",
            )
            .with_help("use `*` to scale by a number"),
        );
        return Ty::Unknown;
    }
    let k_a = &a.0[na - 1];
    let k_b = if nb == 1 { &b.0[0] } else { &b.0[nb - 2] };
    if k_a != k_b {
        c.emit(
            err(codes::MATMUL_INNER_DIM, format!("matrix product of {} and {}: inner dimensions {} and {} differ", show_ty_shape(l.0), show_ty_shape(r.0), show_elem(k_a), show_elem(k_b)), op_span, "inner dimensions must be equal")
                .with_secondary(l.1, format!("the last dimension of this is {}", show_elem(k_a)))
                .with_secondary(r.1, format!("the {} dimension of this is {}", if nb == 1 { "only" } else { "second-to-last" }, show_elem(k_b)))
                .with_help("in `a @ b` the last dimension of `a` must equal the second-to-last of `b`; check the layer widths or transpose one side"),
        );
        return Ty::Unknown;
    }
    let mut out: Vec<ShapeElem>;
    if nb == 1 {
        out = a.0[..na - 1].to_vec();
    } else if nb == 2 {
        out = a.0[..na - 1].to_vec();
        out.push(b.0[1].clone());
    } else {
        let batch_a = Shape(if na >= 2 {
            a.0[..na - 2].to_vec()
        } else {
            Vec::new()
        });
        let batch_b = Shape(b.0[..nb - 2].to_vec());
        let batch = match broadcast(&batch_a, &batch_b) {
            Ok(s) => s,
            Err((_, x, y)) => {
                c.emit(err(
                    codes::BROADCAST,
                    format!("the batch dimensions of `@` do not broadcast: {x} vs {y}"),
                    op_span,
                    "batch dimensions differ",
                ));
                return Ty::Unknown;
            }
        };
        out = batch.0;
        if na >= 2 {
            out.push(a.0[na - 2].clone());
        }
        out.push(b.0[nb - 1].clone());
    }
    Ty::Tensor(*da, Shape(out))
}

/// A non-negative axis for `shape`, from a possibly negative one.
pub(super) fn normalize_axis(
    c: &mut Checker,
    shape: &Shape,
    axis: i64,
    span: Span,
) -> Option<usize> {
    let n = shape.0.len() as i64;
    let pack = shape.0.iter().position(|e| matches!(e, ShapeElem::Pack(_)));
    let idx = if axis < 0 { n + axis } else { axis };
    let hidden = match pack {
        Some(p) => (axis >= 0 && idx >= p as i64) || (axis < 0 && idx <= p as i64),
        None => false,
    };
    if idx < 0 || idx >= n || hidden {
        c.emit(
            err(
                codes::OUT_OF_BOUNDS,
                format!("axis {axis} is out of range for a tensor of shape {shape}"),
                span,
                format!(
                    "this has rank {}",
                    if pack.is_some() {
                        "unknown".to_string()
                    } else {
                        n.to_string()
                    }
                ),
            )
            .with_help(format!(
                "valid axes are 0..{} or -{}..-1",
                n.max(1) - 1,
                n.max(1)
            )),
        );
        return None;
    }
    Some(idx as usize)
}

fn int_arg(c: &mut Checker, a: Option<&ArgVal>, default: i64, what: &str) -> Option<Dim> {
    match a {
        None => Some(Dim::constant(default)),
        Some(ArgVal { ty: Ty::Int(d), .. }) => Some(d.clone()),
        Some(a) => {
            c.emit(err(
                codes::NOT_A_CONSTANT,
                format!("`{what}` must be an integer, found {}", a.ty),
                a.span,
                "not an integer",
            ));
            None
        }
    }
}

fn const_arg(c: &mut Checker, a: Option<&ArgVal>, default: i64, what: &str) -> Option<i64> {
    let d = int_arg(c, a, default, what)?;
    match d.as_const() {
        Some(v) => Some(v),
        None => {
            let span = a.map_or(Span::new(crate::source::FileId(0), 0, 0), |a| a.span);
            c.emit(err(
                codes::NOT_A_CONSTANT,
                format!("`{what}` must be a constant, found {d}"),
                span,
                "not known when the program is compiled",
            ));
            None
        }
    }
}

fn tensor_arg<'a>(c: &mut Checker, a: &'a ArgVal, what: &str) -> Option<(Dtype, &'a Shape)> {
    match &a.ty {
        Ty::Tensor(d, s) => Some((*d, s)),
        other => {
            c.emit(err(
                codes::NOT_A_TENSOR,
                format!("`{what}` must be a tensor, found {other}"),
                a.span,
                "not a tensor",
            ));
            None
        }
    }
}

fn shape_arg(c: &mut Checker, a: &ArgVal, what: &str) -> Option<Shape> {
    match &a.ty {
        Ty::Shape(s) => Some(s.clone()),
        Ty::Int(d) => Some(Shape::of_dims([d.clone()])),
        Ty::Tuple(_) => {
            c.emit(
                err(
                    codes::NOT_A_CONSTANT,
                    format!("`{what}` is a list in square brackets, not a tuple"),
                    a.span,
                    "write `[…]` instead of `(…)`",
                )
                .with_help(format!(
                    "write `{}`",
                    c.sources
                        .text(a.span)
                        .replacen('(', "[", 1)
                        .trim_end_matches(')')
                        .to_string()
                        + "]"
                )),
            );
            None
        }
        other => {
            c.emit(err(
                codes::NOT_A_CONSTANT,
                format!("`{what}` must be a list of dimensions like `[B, 10]`, found {other}"),
                a.span,
                "not a shape",
            ));
            None
        }
    }
}

fn float_elementwise(c: &mut Checker, name: &str, x: &ArgVal) -> Ty {
    match &x.ty {
        Ty::Tensor(d, _) if d.is_float() => x.ty.clone(),
        Ty::Int(_) | Ty::Float(_) => Ty::Float(None),
        other => {
            c.emit(
                err(
                    codes::DTYPE_MISMATCH,
                    format!("`{name}` needs a float tensor, found {other}"),
                    x.span,
                    "not a float",
                )
                .with_help("convert with `cast(…, f32)`"),
            );
            Ty::Unknown
        }
    }
}

/// Checks a builtin call; `args` are positional-then-named as written.
pub(super) fn call(
    c: &mut Checker,
    f: &mut Frame,
    b: Builtin,
    args: &[ArgVal],
    callee_span: Span,
    span: Span,
) -> Ty {
    let info = builtin_info(b);
    let slots: Vec<Slot> = info
        .params
        .iter()
        .map(|p| Slot {
            name: p.name,
            optional: p.optional,
        })
        .collect();
    let Some(bound) = c.bind_slots(&slots, args, info.name, span) else {
        return Ty::Unknown;
    };
    let arg = |i: usize| bound.get(i).and_then(Option::as_ref);
    let req = |i: usize| bound[i].as_ref().expect("required slots are bound");
    let _ = callee_span;
    match b {
        Builtin::Exp
        | Builtin::Log
        | Builtin::Sqrt
        | Builtin::Sin
        | Builtin::Cos
        | Builtin::Erf
        | Builtin::Tanh
        | Builtin::Sigmoid
        | Builtin::AllSum => float_elementwise(c, info.name, req(0)),
        Builtin::Detach => req(0).ty.clone(),
        Builtin::Maximum | Builtin::Minimum => binary(
            c,
            BinOp::Add,
            span,
            (&req(0).ty, req(0).span),
            (&req(1).ty, req(1).span),
        ),
        Builtin::Select => {
            let cond = req(0);
            let cshape = match &cond.ty {
                Ty::Tensor(Dtype::Bool, s) => s.clone(),
                Ty::Bool(_) => Shape::scalar(),
                other => {
                    c.emit(
                        err(
                            codes::DTYPE_MISMATCH,
                            format!("`select` needs a bool condition, found {other}"),
                            cond.span,
                            "not bool",
                        )
                        .with_help("compare to get a condition, e.g. `select(x > 0, x, 0)`"),
                    );
                    return Ty::Unknown;
                }
            };
            let v = binary(
                c,
                BinOp::Add,
                span,
                (&req(1).ty, req(1).span),
                (&req(2).ty, req(2).span),
            );
            match v {
                Ty::Tensor(dt, s) => match broadcast(&s, &cshape) {
                    Ok(s) => Ty::Tensor(dt, s),
                    Err((_, x, y)) => {
                        c.emit(err(codes::BROADCAST, format!("the condition of `select` does not broadcast with its values: {x} vs {y}"), cond.span, format!("this is {}", cond.ty)));
                        Ty::Unknown
                    }
                },
                Ty::Int(_) | Ty::Float(_) => Ty::Tensor(Dtype::F32, cshape),
                other => other,
            }
        }
        Builtin::Cast => {
            let to = match &req(1).ty {
                Ty::Dtype(d) => *d,
                other => {
                    c.emit(err(
                        codes::NOT_A_CONSTANT,
                        format!("`cast` needs a dtype (f32, f64, i32, bool), found {other}"),
                        req(1).span,
                        "not a dtype",
                    ));
                    return Ty::Unknown;
                }
            };
            match req(0).ty.shape() {
                Some(s) => Ty::Tensor(to, s),
                None => {
                    tensor_arg(c, req(0), "x");
                    Ty::Unknown
                }
            }
        }
        Builtin::Sum | Builtin::Mean | Builtin::Max | Builtin::Min | Builtin::Argmax => {
            reduce(c, b, req(0), arg(1), arg(2))
        }
        Builtin::Reshape => {
            let Some((dt, s)) = tensor_arg(c, req(0), "x") else {
                return Ty::Unknown;
            };
            let Some(to) = shape_arg(c, req(1), "shape") else {
                return Ty::Unknown;
            };
            let negative = to.0.iter().find_map(|e| match e {
                ShapeElem::Dim(d) => d.as_const().filter(|v| *v < 1),
                ShapeElem::Pack(_) => None,
            });
            if let Some(v) = negative {
                c.emit(
                    err(
                        codes::RESHAPE_SIZE,
                        format!("`reshape` sizes must be positive, found {v}"),
                        req(1).span,
                        format!("{v} is not a size"),
                    )
                    .with_help("nnl infers no size from `-1`: write every size out (names such as `B` or `H * W` work)"),
                );
                return Ty::Unknown;
            }
            let (from_n, to_n) = (s.numel(), to.numel());
            // Sizes with divisions or packs may be equal without looking equal; those are
            // checked again when the definition is expanded with concrete sizes.
            if from_n != to_n && from_n.is_polynomial() && to_n.is_polynomial() {
                c.emit(
                    err(
                        codes::RESHAPE_SIZE,
                        format!("cannot reshape {from_n} elements into {to} ({to_n} elements)"),
                        req(1).span,
                        format!("{to} holds {to_n} elements"),
                    )
                    .with_secondary(
                        req(0).span,
                        format!("this is {}{s}, {from_n} elements", dt.name()),
                    )
                    .with_help("the number of elements must stay the same"),
                );
                return Ty::Unknown;
            }
            Ty::Tensor(dt, to)
        }
        Builtin::Flatten => {
            let Some((dt, s)) = tensor_arg(c, req(0), "x") else {
                return Ty::Unknown;
            };
            let Some(axis) = const_arg(c, arg(1), 1, "axis") else {
                return Ty::Unknown;
            };
            if s.0.is_empty() {
                return Ty::Tensor(dt, Shape::of_dims([Dim::constant(1)]));
            }
            // Flattening from where a pack starts is fine: nothing inside it is indexed.
            let pack_start = s.0.iter().position(|e| matches!(e, ShapeElem::Pack(_)));
            let ax = if axis >= 0 && pack_start == Some(axis as usize) {
                axis as usize
            } else {
                match normalize_axis(c, s, axis, arg(1).map_or(req(0).span, |a| a.span)) {
                    Some(ax) => ax,
                    None => return Ty::Unknown,
                }
            };
            let mut out = s.0[..ax].to_vec();
            out.push(ShapeElem::Dim(Shape(s.0[ax..].to_vec()).numel()));
            Ty::Tensor(dt, Shape(out))
        }
        Builtin::Permute => {
            let Some((dt, s)) = tensor_arg(c, req(0), "x") else {
                return Ty::Unknown;
            };
            let Some(perm) = shape_arg(c, req(1), "perm") else {
                return Ty::Unknown;
            };
            let Some(p) = perm.concrete() else {
                return Ty::Unknown;
            };
            let n = s.0.len();
            let mut sorted: Vec<i64> = p.clone();
            sorted.sort_unstable();
            if s.has_pack() || sorted != (0..n as i64).collect::<Vec<_>>() {
                c.emit(
                    err(
                        codes::NOT_A_PERMUTATION,
                        format!("{perm} is not a permutation of the {n} axes of {s}"),
                        req(1).span,
                        "invalid permutation",
                    )
                    .with_help(format!("list every axis 0..{} exactly once", n.max(1) - 1)),
                );
                return Ty::Unknown;
            }
            Ty::Tensor(
                dt,
                Shape(p.iter().map(|&i| s.0[i as usize].clone()).collect()),
            )
        }
        Builtin::Transpose => {
            let Some((dt, s)) = tensor_arg(c, req(0), "x") else {
                return Ty::Unknown;
            };
            let n = s.0.len();
            if n < 2
                || matches!(s.0[n - 1], ShapeElem::Pack(_))
                || matches!(s.0[n - 2], ShapeElem::Pack(_))
            {
                c.emit(err(
                    codes::RANK,
                    format!("`transpose` needs at least two axes, found {s}"),
                    req(0).span,
                    "rank too small",
                ));
                return Ty::Unknown;
            }
            let mut out = s.clone();
            out.0.swap(n - 1, n - 2);
            Ty::Tensor(dt, out)
        }
        Builtin::BroadcastTo => {
            let Some((dt, s)) = tensor_arg(c, req(0), "x") else {
                return Ty::Unknown;
            };
            let Some(to) = shape_arg(c, req(1), "shape") else {
                return Ty::Unknown;
            };
            match broadcast(s, &to) {
                Ok(r) if r == to => Ty::Tensor(dt, to),
                _ => {
                    c.emit(
                        err(
                            codes::BROADCAST,
                            format!("cannot broadcast {s} to {to}"),
                            req(0).span,
                            format!("this is {}", req(0).ty),
                        )
                        .with_help("only size-1 and missing leading axes can be stretched"),
                    );
                    Ty::Unknown
                }
            }
        }
        Builtin::Slice => {
            let Some((dt, s)) = tensor_arg(c, req(0), "x") else {
                return Ty::Unknown;
            };
            let Some(axis) = const_arg(c, Some(req(1)), 0, "axis") else {
                return Ty::Unknown;
            };
            let Some(ax) = normalize_axis(c, s, axis, req(1).span) else {
                return Ty::Unknown;
            };
            let (Some(start), Some(end)) = (
                int_arg(c, Some(req(2)), 0, "start"),
                int_arg(c, Some(req(3)), 0, "end"),
            ) else {
                return Ty::Unknown;
            };
            let len = end.sub(&start);
            if let (Some(l), ShapeElem::Dim(full)) = (len.as_const(), &s.0[ax]) {
                let past_end = end.sub(full).as_const().is_some_and(|d| d > 0);
                if l <= 0 || past_end || start.as_const().is_some_and(|v| v < 0) {
                    c.emit(err(codes::OUT_OF_BOUNDS, format!("slice {start}..{end} is empty or outside axis {axis} of size {full}"), req(2).span.to(req(3).span), "bad range").with_help("use 0 ≤ start < end ≤ the axis size"));
                    return Ty::Unknown;
                }
            }
            let mut out = s.clone();
            out.0[ax] = ShapeElem::Dim(len);
            Ty::Tensor(dt, out)
        }
        Builtin::Pad => {
            let Some((dt, s)) = tensor_arg(c, req(0), "x") else {
                return Ty::Unknown;
            };
            let Some(axis) = const_arg(c, Some(req(1)), 0, "axis") else {
                return Ty::Unknown;
            };
            let Some(ax) = normalize_axis(c, s, axis, req(1).span) else {
                return Ty::Unknown;
            };
            let (Some(before), Some(after)) = (
                int_arg(c, Some(req(2)), 0, "before"),
                int_arg(c, Some(req(3)), 0, "after"),
            ) else {
                return Ty::Unknown;
            };
            let mut out = s.clone();
            if let ShapeElem::Dim(d) = &s.0[ax] {
                out.0[ax] = ShapeElem::Dim(d.add(&before).add(&after));
            }
            check_positive(c, &out, span);
            Ty::Tensor(dt, out)
        }
        Builtin::Concat | Builtin::Stack => concat(c, b, req(0), arg(1)),
        Builtin::Split => {
            let Some((dt, s)) = tensor_arg(c, req(0), "x") else {
                return Ty::Unknown;
            };
            let Some(parts) = const_arg(c, Some(req(1)), 1, "parts") else {
                return Ty::Unknown;
            };
            let Some(axis) = const_arg(c, arg(2), -1, "axis") else {
                return Ty::Unknown;
            };
            let Some(ax) = normalize_axis(c, s, axis, arg(2).map_or(req(0).span, |a| a.span))
            else {
                return Ty::Unknown;
            };
            let ShapeElem::Dim(d) = &s.0[ax] else {
                return Ty::Unknown;
            };
            if parts <= 0
                || d.rem(&Dim::constant(parts))
                    .is_some_and(|r| r.as_const().is_some_and(|v| v != 0))
            {
                c.emit(
                    err(
                        codes::SPLIT_NOT_DIVISIBLE,
                        format!("cannot split a dimension of size {d} into {parts} equal parts"),
                        req(1).span,
                        "does not divide",
                    )
                    .with_help("choose a number of parts that divides the axis"),
                );
                return Ty::Unknown;
            }
            let mut part = s.clone();
            part.0[ax] = ShapeElem::Dim(d.div(&Dim::constant(parts)).expect("parts > 0"));
            Ty::Tuple(vec![Ty::Tensor(dt, part); parts as usize])
        }
        Builtin::Matmul => matmul(
            c,
            (&req(0).ty, req(0).span),
            (&req(1).ty, req(1).span),
            span,
        ),
        Builtin::Unfold => unfold(c, req(0), req(1), arg(2), arg(3), arg(4), span),
        Builtin::Fold => {
            let Some((dt, s)) = tensor_arg(c, req(0), "x") else {
                return Ty::Unknown;
            };
            let Some(size) = shape_arg(c, req(1), "size") else {
                return Ty::Unknown;
            };
            let Some(k) = int_arg(c, Some(req(2)), 1, "kernel") else {
                return Ty::Unknown;
            };
            let (Some(bdim), Some(ShapeElem::Dim(ck))) = (s.0.first(), s.0.get(1)) else {
                return Ty::Unknown;
            };
            let Some(ch) = ck.div(&k.mul(&k)) else {
                return Ty::Unknown;
            };
            let mut out = vec![bdim.clone(), ShapeElem::Dim(ch)];
            out.extend(size.0);
            Ty::Tensor(dt, Shape(out))
        }
        Builtin::Gather => {
            let Some((dt, table)) = tensor_arg(c, req(0), "table") else {
                return Ty::Unknown;
            };
            let Some((it, idx)) = tensor_arg(c, req(1), "idx") else {
                return Ty::Unknown;
            };
            if it != Dtype::I32 {
                c.emit(
                    err(
                        codes::DTYPE_MISMATCH,
                        format!("`gather` needs i32 indices, found {}", it.name()),
                        req(1).span,
                        "not i32",
                    )
                    .with_help("convert with `cast(…, i32)`"),
                );
                return Ty::Unknown;
            }
            if table.0.len() != 2 {
                c.emit(err(
                    codes::RANK,
                    format!("`gather` needs a [rows, width] table, found {table}"),
                    req(0).span,
                    "not rank 2",
                ));
                return Ty::Unknown;
            }
            let mut out = idx.clone();
            out.0.push(table.0[1].clone());
            Ty::Tensor(dt, out)
        }
        Builtin::Pick => {
            let Some((dt, x)) = tensor_arg(c, req(0), "x") else {
                return Ty::Unknown;
            };
            let Some((it, idx)) = tensor_arg(c, req(1), "idx") else {
                return Ty::Unknown;
            };
            if it != Dtype::I32 {
                c.emit(
                    err(
                        codes::DTYPE_MISMATCH,
                        format!("`pick` needs i32 indices, found {}", it.name()),
                        req(1).span,
                        "not i32",
                    )
                    .with_help("convert with `cast(…, i32)`"),
                );
                return Ty::Unknown;
            }
            let lead = Shape(x.0[..x.0.len().saturating_sub(1)].to_vec());
            if x.0.is_empty() || lead != *idx {
                c.emit(
                    err(codes::RANK, format!("`pick` needs indices shaped like x without its last axis: x is {x}, so indices {lead}, found {idx}"), req(1).span, format!("this is {}", req(1).ty))
                        .with_secondary(req(0).span, format!("this is {}", req(0).ty)),
                );
                return Ty::Unknown;
            }
            Ty::Tensor(dt, lead)
        }
        Builtin::OneHot => {
            let Some((it, idx)) = tensor_arg(c, req(0), "idx") else {
                return Ty::Unknown;
            };
            if it != Dtype::I32 {
                c.emit(err(
                    codes::DTYPE_MISMATCH,
                    format!("`one_hot` needs i32 class indices, found {}", it.name()),
                    req(0).span,
                    "not i32",
                ));
                return Ty::Unknown;
            }
            let Some(n) = int_arg(c, Some(req(1)), 1, "n") else {
                return Ty::Unknown;
            };
            let mut out = idx.clone();
            out.0.push(ShapeElem::Dim(n));
            Ty::Tensor(Dtype::F32, out)
        }
        Builtin::ScatterAdd => {
            let Some((dt, x)) = tensor_arg(c, req(0), "x") else {
                return Ty::Unknown;
            };
            let Some(rows) = int_arg(c, Some(req(2)), 1, "rows") else {
                return Ty::Unknown;
            };
            let Some(last) = x.0.last() else {
                return Ty::Unknown;
            };
            Ty::Tensor(dt, Shape(vec![ShapeElem::Dim(rows), last.clone()]))
        }
        Builtin::Zeros | Builtin::Ones | Builtin::RandUniform | Builtin::RandNormal => {
            match shape_arg(c, req(0), "shape") {
                Some(s) => {
                    check_positive(c, &s, req(0).span);
                    Ty::Tensor(Dtype::F32, s)
                }
                None => Ty::Unknown,
            }
        }
        Builtin::Full => match shape_arg(c, req(0), "shape") {
            Some(s) => Ty::Tensor(Dtype::F32, s),
            None => Ty::Unknown,
        },
        Builtin::ZerosLike | Builtin::OnesLike => match &req(0).ty {
            t @ Ty::Tensor(..) => t.clone(),
            Ty::Int(_) | Ty::Float(_) => Ty::Float(Some(0.0)),
            other => {
                c.emit(err(
                    codes::NOT_A_TENSOR,
                    format!("`{}` needs a tensor, found {other}", info.name),
                    req(0).span,
                    "not a tensor",
                ));
                Ty::Unknown
            }
        },
        Builtin::Arange => match int_arg(c, Some(req(0)), 1, "n") {
            Some(n) => Ty::Tensor(Dtype::F32, Shape::of_dims([n])),
            None => Ty::Unknown,
        },
        Builtin::Positions => match int_arg(c, Some(req(0)), 1, "n") {
            Some(n) => Ty::Tensor(Dtype::I32, Shape::of_dims([n])),
            None => Ty::Unknown,
        },
        Builtin::Cached => {
            let Some((_, s)) = tensor_arg(c, req(0), "x") else {
                return Ty::Unknown;
            };
            let Some(axis) = const_arg(c, Some(req(1)), 0, "axis") else {
                return Ty::Unknown;
            };
            match normalize_axis(c, s, axis, req(1).span) {
                Some(_) => req(0).ty.clone(),
                None => Ty::Unknown,
            }
        }
        Builtin::CausalMask => {
            let Some((_, s)) = tensor_arg(c, req(0), "scores") else {
                return Ty::Unknown;
            };
            let n = s.0.len();
            if n < 2
                || matches!(s.0[n - 1], ShapeElem::Pack(_))
                || matches!(s.0[n - 2], ShapeElem::Pack(_))
            {
                c.emit(err(
                    codes::RANK,
                    format!("`causal_mask` needs scores [..S, queries, keys], found {s}"),
                    req(0).span,
                    "rank too small",
                ));
                return Ty::Unknown;
            }
            req(0).ty.clone()
        }
        Builtin::Shape => match &req(0).ty {
            Ty::Tensor(_, s) => Ty::Shape(s.clone()),
            other => {
                c.emit(err(
                    codes::NOT_A_TENSOR,
                    format!("`shape` needs a tensor, found {other}"),
                    req(0).span,
                    "not a tensor",
                ));
                Ty::Unknown
            }
        },
        Builtin::Params => match &req(0).ty {
            Ty::Layer(_) | Ty::Callable(Callable::Def(_)) => Ty::ParamSet,
            other => {
                c.emit(
                    err(
                        codes::NOT_A_PARAMETER_SET,
                        format!("`params` needs a model, found {other}"),
                        req(0).span,
                        "not a model",
                    )
                    .with_help("write `params(Mlp)` with the name of a trained model"),
                );
                Ty::Unknown
            }
        },
        Builtin::SumOver => {
            if !matches!(req(0).ty, Ty::ParamSet) {
                c.emit(err(
                    codes::NOT_A_PARAMETER_SET,
                    format!("`sum_over` needs a parameter set, found {}", req(0).ty),
                    req(0).span,
                    "not `params(…)`",
                ));
                return Ty::Unknown;
            }
            let pack = c.fresh_sym("P");
            let p = ArgVal {
                name: None,
                ty: Ty::Tensor(Dtype::F32, Shape(vec![ShapeElem::Pack(pack)])),
                span: req(1).span,
            };
            let callee = crate::syntax::ast::Expr {
                kind: crate::syntax::ast::ExprKind::Tuple(Vec::new()),
                span: req(1).span,
            };
            let t = c.call(f, req(1).ty.clone(), &callee, vec![p], req(1).span);
            if !t.is_scalar() && !t.is_unknown() {
                c.emit(
                    err(
                        codes::NOT_SCALAR,
                        format!("the function given to `sum_over` must return a scalar, found {t}"),
                        req(1).span,
                        "not a scalar",
                    )
                    .with_help("reduce it, e.g. `|w| sum(w * w)`"),
                );
            }
            Ty::Float(None)
        }
    }
}

fn check_positive(c: &mut Checker, s: &Shape, span: Span) {
    if let Some(d) = s.dims().and_then(|ds| {
        ds.into_iter()
            .find(|d| d.as_const().is_some_and(|v| v <= 0))
    }) {
        c.emit(
            err(
                codes::NONPOSITIVE_DIM,
                format!("a tensor cannot have a dimension of size {d}"),
                span,
                format!("the shape {s}"),
            )
            .with_help("every dimension must be at least 1"),
        );
    }
}

fn builtin_info(b: Builtin) -> &'static crate::prim::BuiltinInfo {
    crate::prim::BUILTINS
        .iter()
        .find(|i| i.builtin == b)
        .expect("every builtin is listed")
}

fn reduce(
    c: &mut Checker,
    b: Builtin,
    x: &ArgVal,
    axis: Option<&ArgVal>,
    keep: Option<&ArgVal>,
) -> Ty {
    let (dt, s) = match &x.ty {
        Ty::Tensor(d, s) => (*d, s.clone()),
        Ty::Int(_) | Ty::Float(_) => return Ty::Float(None),
        other => {
            c.emit(err(
                codes::NOT_A_TENSOR,
                format!("reductions need a tensor, found {other}"),
                x.span,
                "not a tensor",
            ));
            return Ty::Unknown;
        }
    };
    let keep = match keep.map(|k| &k.ty) {
        None => false,
        Some(Ty::Bool(Some(v))) => *v,
        Some(other) => {
            c.emit(err(
                codes::NOT_A_CONSTANT,
                format!("`keep` must be true or false, found {other}"),
                keep.expect("some").span,
                "not a bool",
            ));
            return Ty::Unknown;
        }
    };
    let axes: Vec<usize> = match axis {
        None => (0..s.0.len()).collect(),
        Some(a) => {
            let list: Vec<i64> = match &a.ty {
                Ty::Int(d) => match d.as_const() {
                    Some(v) => vec![v],
                    None => return Ty::Unknown,
                },
                Ty::Shape(sh) => match sh.concrete() {
                    Some(v) => v,
                    None => return Ty::Unknown,
                },
                other => {
                    c.emit(err(
                        codes::NOT_A_CONSTANT,
                        format!("`axis` must be an integer or a list of integers, found {other}"),
                        a.span,
                        "not an axis",
                    ));
                    return Ty::Unknown;
                }
            };
            let mut out = Vec::new();
            for v in list {
                match normalize_axis(c, &s, v, a.span) {
                    Some(ax) => out.push(ax),
                    None => return Ty::Unknown,
                }
            }
            out
        }
    };
    if axis.is_none() && s.has_pack() && !keep {
        let out_dt = if b == Builtin::Argmax { Dtype::I32 } else { dt };
        return Ty::Tensor(out_dt, Shape::scalar());
    }
    let mut out = Vec::new();
    for (i, e) in s.0.iter().enumerate() {
        if axes.contains(&i) {
            if keep {
                out.push(ShapeElem::Dim(Dim::constant(1)));
            }
        } else {
            out.push(e.clone());
        }
    }
    let out_dt = if b == Builtin::Argmax { Dtype::I32 } else { dt };
    if matches!(b, Builtin::Mean) && !dt.is_float() {
        c.emit(
            err(
                codes::DTYPE_MISMATCH,
                format!("`mean` needs a float tensor, found {}", dt.name()),
                x.span,
                "not float",
            )
            .with_help("convert with `cast(…, f32)`"),
        );
        return Ty::Unknown;
    }
    Ty::Tensor(out_dt, Shape(out))
}

fn concat(c: &mut Checker, b: Builtin, xs: &ArgVal, axis: Option<&ArgVal>) -> Ty {
    let items = match &xs.ty {
        Ty::List(items) | Ty::Tuple(items) => items.clone(),
        // `[]` reads as an empty list of dimensions.
        Ty::Shape(s) if s.0.is_empty() => Vec::new(),
        other => {
            c.emit(err(
                codes::NOT_A_TENSOR,
                format!(
                    "`{}` needs a list of tensors like `[a, b]`, found {other}",
                    if b == Builtin::Concat {
                        "concat"
                    } else {
                        "stack"
                    }
                ),
                xs.span,
                "not a list",
            ));
            return Ty::Unknown;
        }
    };
    let Some(first) = items.first() else {
        c.emit(err(
            codes::EMPTY_LIST,
            "nothing to join: the list is empty",
            xs.span,
            "empty list",
        ));
        return Ty::Unknown;
    };
    let Ty::Tensor(dt, s0) = first else {
        return Ty::Unknown;
    };
    let default = if b == Builtin::Concat { -1 } else { 0 };
    let Some(axis) = const_arg(c, axis, default, "axis") else {
        return Ty::Unknown;
    };
    if b == Builtin::Stack {
        for t in &items[1..] {
            if !same_type(first, t) {
                c.emit(err(
                    codes::DECLARATION_MISMATCH,
                    format!("`stack` needs tensors of one shape, found {first} and {t}"),
                    xs.span,
                    "shapes differ",
                ));
                return Ty::Unknown;
            }
        }
        let mut out = s0.clone();
        let n = out.0.len() as i64 + 1;
        let at = if axis < 0 { n + axis } else { axis };
        if !(0..n).contains(&at) {
            c.emit(err(
                codes::OUT_OF_BOUNDS,
                format!("axis {axis} is out of range for stacking"),
                xs.span,
                "bad axis",
            ));
            return Ty::Unknown;
        }
        out.0.insert(
            at as usize,
            ShapeElem::Dim(Dim::constant(items.len() as i64)),
        );
        return Ty::Tensor(*dt, out);
    }
    let Some(ax) = normalize_axis(c, s0, axis, xs.span) else {
        return Ty::Unknown;
    };
    let mut total = Dim::constant(0);
    for t in &items {
        let Ty::Tensor(d, s) = t else {
            return Ty::Unknown;
        };
        let same_elsewhere = s.0.len() == s0.0.len()
            && s.0
                .iter()
                .zip(&s0.0)
                .enumerate()
                .all(|(i, (a, b))| i == ax || a == b);
        if d != dt || !same_elsewhere {
            c.emit(
                err(codes::DECLARATION_MISMATCH, format!("`concat` along axis {axis} needs the other dimensions equal, but {first} and {t} differ"), xs.span, format!("{first} and {t}"))
                    .with_help(format!(
                        "the tensors must agree in every dimension but the one they are joined along{}",
                        if ax + 1 == s0.0.len() { "" } else { "; to join features, use `axis: -1`" }
                    )),
            );
            return Ty::Unknown;
        }
        if let ShapeElem::Dim(d) = &s.0[ax] {
            total = total.add(d);
        }
    }
    let mut out = s0.clone();
    out.0[ax] = ShapeElem::Dim(total);
    Ty::Tensor(*dt, out)
}

fn unfold(
    c: &mut Checker,
    x: &ArgVal,
    k: &ArgVal,
    stride: Option<&ArgVal>,
    padding: Option<&ArgVal>,
    dilation: Option<&ArgVal>,
    span: Span,
) -> Ty {
    let Some((dt, s)) = tensor_arg(c, x, "x") else {
        return Ty::Unknown;
    };
    let Some(dims) = s.dims().filter(|d| d.len() == 4) else {
        c.emit(
            err(
                codes::RANK,
                format!("`unfold` needs an image batch [B, C, H, W], found {s}"),
                x.span,
                "not rank 4",
            )
            .with_help("reshape the input to [B, C, H, W]"),
        );
        return Ty::Unknown;
    };
    let (Some(k), Some(st), Some(p), Some(dl)) = (
        int_arg(c, Some(k), 1, "kernel"),
        int_arg(c, stride, 1, "stride"),
        int_arg(c, padding, 0, "padding"),
        int_arg(c, dilation, 1, "dilation"),
    ) else {
        return Ty::Unknown;
    };
    let one = Dim::constant(1);
    let out_size = |n: &Dim| -> Option<Dim> {
        let span_k = dl.mul(&k.sub(&one));
        n.add(&Dim::constant(2).mul(&p))
            .sub(&span_k)
            .sub(&one)
            .div(&st)
            .map(|q| q.add(&one))
    };
    let (Some(oh), Some(ow)) = (out_size(&dims[2]), out_size(&dims[3])) else {
        c.emit(err(
            codes::ZERO_DIVISOR,
            "`unfold` stride must not be zero",
            span,
            "stride 0",
        ));
        return Ty::Unknown;
    };
    for (name, o, n) in [("height", &oh, &dims[2]), ("width", &ow, &dims[3])] {
        if let Some(v) = o.as_const().filter(|v| *v <= 0) {
            c.emit(
                err(codes::NONPOSITIVE_DIM, format!("the window does not fit: the output {name} would be {v}"), span, format!("a {k}×{k} window (dilation {dl}, stride {st}, padding {p}) over {name} {n}"))
                    .with_note(format!("output size = (size + 2·padding − dilation·(kernel − 1) − 1) / stride + 1 = ({n} + 2·{p} − {dl}·({k} − 1) − 1) / {st} + 1 = {v}"))
                    .with_help("use a smaller kernel or stride, add padding, or remove a pooling layer before this one"),
            );
            return Ty::Unknown;
        }
    }
    Ty::Tensor(
        dt,
        Shape::of_dims([dims[0].clone(), dims[1].mul(&k).mul(&k), oh.mul(&ow)]),
    )
}
