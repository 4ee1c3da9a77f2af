//! The shape rules of operators (broadcasting, dtype rules, compile-time arithmetic, matmul),
//! the helpers builtins' shape rules share to read their arguments, and the dispatch of a
//! builtin call to its rule in [`crate::builtins`].

use super::dim::Dim;
use super::ty::{Shape, ShapeElem, Ty};
use super::{ArgVal, Checker, Frame, Slot};
use crate::builtins::Builtin;
use crate::diag::Diagnostic;
use crate::diag::codes;
use crate::source::Span;
use crate::syntax::ast::{BinOp, Dtype, UnOp};

pub(crate) fn err(
    code: &'static str,
    msg: impl Into<String>,
    span: Span,
    label: impl Into<String>,
) -> Diagnostic {
    Diagnostic::error(code, msg).with_primary(span, label)
}

/// Broadcasts two shapes numpy-style (aligned right; a 1 stretches).
pub(crate) fn broadcast(a: &Shape, b: &Shape) -> Result<Shape, (usize, String, String)> {
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
    Ok(Shape(out.into()))
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

pub(crate) fn binary(
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
    if matches!(op, BinOp::FloorDiv | BinOp::Rem) {
        let tensor = if matches!(l.0, Tensor(..)) { l } else { r };
        c.emit(
            err(
                codes::OPERATOR_KIND,
                format!(
                    "`{}` works on sizes and numbers, not on tensors",
                    op.symbol()
                ),
                op_span,
                "a tensor operand",
            )
            .with_secondary(tensor.1, format!("this is {}", tensor.0))
            .with_help("divide tensors with `/`; `//` and `%` compute sizes, e.g. `N // 2`"),
        );
        return Unknown;
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

pub(crate) fn unary(c: &mut Checker, op: UnOp, t: &Ty, span: Span) -> Ty {
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

pub(crate) fn matmul(c: &mut Checker, l: (&Ty, Span), r: (&Ty, Span), op_span: Span) -> Ty {
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
            a.0[..na - 2].to_vec().into()
        } else {
            Vec::new().into()
        });
        let batch_b = Shape(b.0[..nb - 2].to_vec().into());
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
        out = std::rc::Rc::unwrap_or_clone(batch.0);
        if na >= 2 {
            out.push(a.0[na - 2].clone());
        }
        out.push(b.0[nb - 1].clone());
    }
    Ty::Tensor(*da, Shape(out.into()))
}

/// A non-negative axis for `shape`, from a possibly negative one.
pub(crate) fn normalize_axis(
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

pub(crate) fn int_arg(
    c: &mut Checker,
    a: Option<&ArgVal>,
    default: i64,
    what: &str,
) -> Option<Dim> {
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

pub(crate) fn const_arg(
    c: &mut Checker,
    a: Option<&ArgVal>,
    default: i64,
    what: &str,
) -> Option<i64> {
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

pub(crate) fn tensor_arg<'a>(
    c: &mut Checker,
    a: &'a ArgVal,
    what: &str,
) -> Option<(Dtype, &'a Shape)> {
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

pub(crate) fn shape_arg(c: &mut Checker, a: &ArgVal, what: &str) -> Option<Shape> {
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

/// Whether the last two axes of `s` are dimensions (two or more, not inside a pack).
pub(crate) fn has_trailing_matrix(s: &Shape) -> bool {
    let n = s.0.len();
    n >= 2 && !matches!(s.0[n - 1], ShapeElem::Pack(_)) && !matches!(s.0[n - 2], ShapeElem::Pack(_))
}

pub(crate) fn check_positive(c: &mut Checker, s: &Shape, span: Span) {
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

/// A builtin call's arguments, bound to the builtin's parameters by [`crate::bind`]: what its
/// shape rule reads.
pub(crate) struct BuiltinArgs {
    /// The builtin's name, for messages.
    pub name: &'static str,
    bound: Vec<Option<ArgVal>>,
    /// The whole call.
    pub span: Span,
}

impl BuiltinArgs {
    /// Parameter `i`'s argument, if given.
    pub fn arg(&self, i: usize) -> Option<&ArgVal> {
        self.bound.get(i).and_then(Option::as_ref)
    }

    /// A required parameter's argument (binding has reported a missing one).
    pub fn req(&self, i: usize) -> &ArgVal {
        self.bound[i].as_ref().expect("required slots are bound")
    }
}

/// Checks a builtin call: binds the arguments (reporting their problems), then runs the
/// builtin's shape rule.
pub(super) fn call(c: &mut Checker, f: &mut Frame, b: Builtin, args: &[ArgVal], span: Span) -> Ty {
    let def = b.def();
    let slots: Vec<Slot> = def
        .params
        .iter()
        .map(|p| Slot {
            name: p.name,
            optional: p.optional,
        })
        .collect();
    let Some(bound) = c.bind_call(&slots, args, def.name, span, super::Callee::Builtin(b)) else {
        return Ty::Unknown;
    };
    let a = BuiltinArgs {
        name: def.name,
        bound,
        span,
    };
    b.rule().check(c, f, &a)
}
