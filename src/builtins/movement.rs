//! Movement: the same elements in another shape or order, cut, padded or joined — `reshape`,
//! `flatten`, `permute`, `transpose`, `broadcast_to`, `slice`, `pad`, `concat`, `split`, `stack`.

use super::{BuiltinDef, CheckArgs, LowerArgs, Rule, X};
use crate::check::dim::Dim;
use crate::check::operators::{
    broadcast, check_positive, const_arg, err, has_trailing_matrix, int_arg, normalize_axis,
    shape_arg, tensor_arg,
};
use crate::check::ty::{Shape, ShapeElem, Ty, same_type};
use crate::check::{Checker, Frame};
use crate::diag::codes;
use crate::ir::{Op, TensorType};
use crate::lower::operators::number;
use crate::lower::{LowerError, Lowerer, Res, Tv, Val, normalize_axis as axis_of};
use crate::prim::PrimParam;
use crate::syntax::ast::Dtype;

pub(super) const BUILTINS: &[BuiltinDef] = &[
    BuiltinDef {
        name: "reshape",
        params: X_SHAPE,
        doc: "the same elements in another shape",
        rule: &Reshape,
    },
    BuiltinDef {
        name: "flatten",
        params: &[PrimParam::req("x"), PrimParam::opt("axis")],
        doc: "collapses the axes from `axis` (default 1) to the end",
        rule: &Flatten,
    },
    BuiltinDef {
        name: "permute",
        params: &[PrimParam::req("x"), PrimParam::req("perm")],
        doc: "reorders the axes",
        rule: &Permute,
    },
    BuiltinDef {
        name: "transpose",
        params: X,
        doc: "swaps the last two axes",
        rule: &Transpose,
    },
    BuiltinDef {
        name: "broadcast_to",
        params: X_SHAPE,
        doc: "stretches size-1 and missing leading axes",
        rule: &BroadcastTo,
    },
    BuiltinDef {
        name: "slice",
        params: &[
            PrimParam::req("x"),
            PrimParam::req("axis"),
            PrimParam::req("start"),
            PrimParam::req("end"),
        ],
        doc: "the range start..end along an axis",
        rule: &Slice,
    },
    BuiltinDef {
        name: "pad",
        params: &[
            PrimParam::req("x"),
            PrimParam::req("axis"),
            PrimParam::req("before"),
            PrimParam::req("after"),
            PrimParam::opt("value"),
        ],
        doc: "pads an axis with a constant",
        rule: &Pad,
    },
    BuiltinDef {
        name: "concat",
        params: XS_AXIS,
        doc: "joins tensors along an axis",
        rule: &Join::Concat,
    },
    BuiltinDef {
        name: "split",
        params: &[
            PrimParam::req("x"),
            PrimParam::req("parts"),
            PrimParam::opt("axis"),
        ],
        doc: "cuts an axis into equal parts (a tuple)",
        rule: &Split,
    },
    BuiltinDef {
        name: "stack",
        params: XS_AXIS,
        doc: "stacks equal-shaped tensors along a new axis",
        rule: &Join::Stack,
    },
];

const X_SHAPE: &[PrimParam] = &[PrimParam::req("x"), PrimParam::req("shape")];
const XS_AXIS: &[PrimParam] = &[PrimParam::req("xs"), PrimParam::opt("axis")];

struct Reshape;

impl Rule for Reshape {
    fn check(&self, c: &mut Checker, _: &mut Frame, a: &CheckArgs) -> Ty {
        let Some((dt, s)) = tensor_arg(c, a.req(0), "x") else {
            return Ty::Unknown;
        };
        let Some(to) = shape_arg(c, a.req(1), "shape") else {
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
                    a.req(1).span,
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
                    a.req(1).span,
                    format!("{to} holds {to_n} elements"),
                )
                .with_secondary(
                    a.req(0).span,
                    format!("this is {}{s}, {from_n} elements", dt.name()),
                )
                .with_help("the number of elements must stay the same"),
            );
            return Ty::Unknown;
        }
        Ty::Tensor(dt, to)
    }

    fn lower(&self, l: &mut Lowerer, a: &LowerArgs) -> Res<Val> {
        let x = a.tensor(l, 0)?;
        let shape = a.sizes(1)?;
        let from = l.ty(x).shape;
        // A definition's reshape of packs (`[B, ..T]` to `[B, ..S]`) is only known to fit once
        // its sizes are: a call whose sizes do not fit is an error here.
        if from.iter().product::<usize>() != shape.iter().product::<usize>() {
            return Err(LowerError::new(
                format!(
                    "cannot reshape {from:?} into {shape:?}: the number of elements must stay the same"
                ),
                a.span,
            ));
        }
        Ok(Val::Tensor(l.reshape(x, shape)))
    }
}

struct Flatten;

impl Rule for Flatten {
    fn check(&self, c: &mut Checker, _: &mut Frame, a: &CheckArgs) -> Ty {
        let Some((dt, s)) = tensor_arg(c, a.req(0), "x") else {
            return Ty::Unknown;
        };
        let Some(axis) = const_arg(c, a.arg(1), 1, "axis") else {
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
            match normalize_axis(c, s, axis, a.arg(1).map_or(a.req(0).span, |a| a.span)) {
                Some(ax) => ax,
                None => return Ty::Unknown,
            }
        };
        let mut out = s.0[..ax].to_vec();
        out.push(ShapeElem::Dim(Shape(s.0[ax..].to_vec().into()).numel()));
        Ty::Tensor(dt, Shape(out.into()))
    }

    fn lower(&self, l: &mut Lowerer, a: &LowerArgs) -> Res<Val> {
        let x = a.tensor(l, 0)?;
        let shape = l.ty(x).shape;
        let axis = match a.get(1) {
            Some(_) => axis_of(a.int(1)?, shape.len(), a.span)?,
            None => 1.min(shape.len()),
        };
        let mut to = shape[..axis].to_vec();
        to.push(shape[axis..].iter().product());
        Ok(Val::Tensor(l.reshape(x, to)))
    }
}

struct Permute;

impl Rule for Permute {
    fn check(&self, c: &mut Checker, _: &mut Frame, a: &CheckArgs) -> Ty {
        let Some((dt, s)) = tensor_arg(c, a.req(0), "x") else {
            return Ty::Unknown;
        };
        let Some(perm) = shape_arg(c, a.req(1), "perm") else {
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
                    a.req(1).span,
                    "invalid permutation",
                )
                .with_help(format!("list every axis 0..{} exactly once", n.max(1) - 1)),
            );
            return Ty::Unknown;
        }
        Ty::Tensor(
            dt,
            Shape(
                p.iter()
                    .map(|&i| s.0[i as usize].clone())
                    .collect::<Vec<_>>()
                    .into(),
            ),
        )
    }

    fn lower(&self, l: &mut Lowerer, a: &LowerArgs) -> Res<Val> {
        let x = a.tensor(l, 0)?;
        let rank = l.ty(x).rank();
        let perm = a
            .ints(1)?
            .into_iter()
            .map(|p| axis_of(p, rank, a.span))
            .collect::<Res<Vec<_>>>()?;
        Ok(Val::Tensor(l.permute(x, perm)))
    }
}

struct Transpose;

impl Rule for Transpose {
    fn check(&self, c: &mut Checker, _: &mut Frame, a: &CheckArgs) -> Ty {
        let Some((dt, s)) = tensor_arg(c, a.req(0), "x") else {
            return Ty::Unknown;
        };
        let n = s.0.len();
        if !has_trailing_matrix(s) {
            c.emit(err(
                codes::RANK,
                format!("`transpose` needs at least two axes, found {s}"),
                a.req(0).span,
                "rank too small",
            ));
            return Ty::Unknown;
        }
        let mut out = s.clone();
        std::rc::Rc::make_mut(&mut out.0).swap(n - 1, n - 2);
        Ty::Tensor(dt, out)
    }

    fn lower(&self, l: &mut Lowerer, a: &LowerArgs) -> Res<Val> {
        let x = a.tensor(l, 0)?;
        let rank = l.ty(x).rank();
        if rank < 2 {
            // The checker rejects it (E0202); a value of rank 1 is not its own transpose.
            return Err(LowerError::new(
                "`transpose` needs at least two axes",
                a.span,
            ));
        }
        let mut perm: Vec<usize> = (0..rank).collect();
        perm.swap(rank - 2, rank - 1);
        Ok(Val::Tensor(l.permute(x, perm)))
    }
}

struct BroadcastTo;

impl Rule for BroadcastTo {
    fn check(&self, c: &mut Checker, _: &mut Frame, a: &CheckArgs) -> Ty {
        let Some((dt, s)) = tensor_arg(c, a.req(0), "x") else {
            return Ty::Unknown;
        };
        let Some(to) = shape_arg(c, a.req(1), "shape") else {
            return Ty::Unknown;
        };
        match broadcast(s, &to) {
            Ok(r) if r == to => Ty::Tensor(dt, to),
            _ => {
                c.emit(
                    err(
                        codes::BROADCAST,
                        format!("cannot broadcast {s} to {to}"),
                        a.req(0).span,
                        format!("this is {}", a.req(0).ty),
                    )
                    .with_help("only size-1 and missing leading axes can be stretched"),
                );
                Ty::Unknown
            }
        }
    }

    fn lower(&self, l: &mut Lowerer, a: &LowerArgs) -> Res<Val> {
        let x = a.tensor(l, 0)?;
        let shape = a.sizes(1)?;
        Ok(Val::Tensor(l.broadcast(x, &shape)))
    }
}

/// The arguments of `slice` and `pad`: `x`, the axis as given and normalized, and the two
/// integers after it.
type AlongAxis<'a> = (Dtype, &'a Shape, i64, usize, Dim, Dim);

fn along_axis<'a>(c: &mut Checker, a: &'a CheckArgs, names: [&str; 2]) -> Option<AlongAxis<'a>> {
    let (dt, s) = tensor_arg(c, a.req(0), "x")?;
    let axis = const_arg(c, Some(a.req(1)), 0, "axis")?;
    let ax = normalize_axis(c, s, axis, a.req(1).span)?;
    let first = int_arg(c, Some(a.req(2)), 0, names[0]);
    let second = int_arg(c, Some(a.req(3)), 0, names[1]);
    Some((dt, s, axis, ax, first?, second?))
}

struct Slice;

impl Rule for Slice {
    fn check(&self, c: &mut Checker, _: &mut Frame, a: &CheckArgs) -> Ty {
        let Some((dt, s, axis, ax, start, end)) = along_axis(c, a, ["start", "end"]) else {
            return Ty::Unknown;
        };
        let len = end.sub(&start);
        if let (Some(n), ShapeElem::Dim(full)) = (len.as_const(), &s.0[ax]) {
            let past_end = end.sub(full).as_const().is_some_and(|d| d > 0);
            if n <= 0 || past_end || start.as_const().is_some_and(|v| v < 0) {
                c.emit(
                    err(
                        codes::OUT_OF_BOUNDS,
                        format!(
                            "slice {start}..{end} is empty or outside axis {axis} of size {full}"
                        ),
                        a.req(2).span.to(a.req(3).span),
                        "bad range",
                    )
                    .with_help("use 0 ≤ start < end ≤ the axis size"),
                );
                return Ty::Unknown;
            }
        }
        let mut out = s.clone();
        std::rc::Rc::make_mut(&mut out.0)[ax] = ShapeElem::Dim(len);
        Ty::Tensor(dt, out)
    }

    fn lower(&self, l: &mut Lowerer, a: &LowerArgs) -> Res<Val> {
        let x = a.tensor(l, 0)?;
        let shape = l.ty(x).shape;
        let axis = axis_of(a.int(1)?, shape.len(), a.span)?;
        let n = shape[axis] as i64;
        let clamp = |v: i64| (if v < 0 { v + n } else { v }).clamp(0, n) as usize;
        let (start, end) = (clamp(a.int(2)?), clamp(a.int(3)?));
        if start > end {
            return Err(LowerError::new("empty slice", a.span));
        }
        if start == 0 && end == shape[axis] {
            return Ok(Val::Tensor(x));
        }
        Ok(Val::Tensor(l.emit(Op::Slice { axis, start, end }, &[x])))
    }
}

struct Pad;

impl Rule for Pad {
    fn check(&self, c: &mut Checker, _: &mut Frame, a: &CheckArgs) -> Ty {
        let Some((dt, s, _, ax, before, after)) = along_axis(c, a, ["before", "after"]) else {
            return Ty::Unknown;
        };
        let mut out = s.clone();
        if let ShapeElem::Dim(d) = &s.0[ax] {
            std::rc::Rc::make_mut(&mut out.0)[ax] = ShapeElem::Dim(d.add(&before).add(&after));
        }
        check_positive(c, &out, a.span);
        Ty::Tensor(dt, out)
    }

    fn lower(&self, l: &mut Lowerer, a: &LowerArgs) -> Res<Val> {
        let x = a.tensor(l, 0)?;
        let ty = l.ty(x);
        let axis = axis_of(a.int(1)?, ty.rank(), a.span)?;
        let (lo, hi) = (a.size(2)?, a.size(3)?);
        let value = a.get(4).and_then(number).unwrap_or(0.0);
        if value == 0.0 {
            return Ok(Val::Tensor(l.emit(Op::Pad { axis, lo, hi }, &[x])));
        }
        let mut parts = Vec::new();
        for (n, is_x) in [(lo, false), (0, true), (hi, false)] {
            if is_x {
                parts.push(x);
            } else if n > 0 {
                let mut s = ty.shape.clone();
                s[axis] = n;
                parts.push(l.constant(value, TensorType::new(ty.dtype, s)));
            }
        }
        Ok(Val::Tensor(l.emit(Op::Concat { axis }, &parts)))
    }
}

/// `concat` joins along an existing axis, `stack` along a new one.
#[derive(PartialEq)]
enum Join {
    Concat,
    Stack,
}

impl Rule for Join {
    fn check(&self, c: &mut Checker, _: &mut Frame, a: &CheckArgs) -> Ty {
        let (xs, axis) = (a.req(0), a.arg(1));
        let items = match &xs.ty {
            Ty::List(items) | Ty::Tuple(items) => items.clone(),
            // `[]` reads as an empty list of dimensions.
            Ty::Shape(s) if s.0.is_empty() => Vec::new(),
            other => {
                c.emit(err(
                    codes::NOT_A_TENSOR,
                    format!(
                        "`{}` needs a list of tensors like `[a, b]`, found {other}",
                        a.name
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
        let default = if *self == Join::Concat { -1 } else { 0 };
        let Some(axis) = const_arg(c, axis, default, "axis") else {
            return Ty::Unknown;
        };
        if *self == Join::Stack {
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
            std::rc::Rc::make_mut(&mut out.0).insert(
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
                    .zip(s0.0.iter())
                    .enumerate()
                    .all(|(i, (a, b))| i == ax || a == b);
            if d != dt || !same_elsewhere {
                c.emit(
                    err(
                        codes::DECLARATION_MISMATCH,
                        format!(
                            "`concat` along axis {axis} needs the other dimensions equal, but {first} and {t} differ"
                        ),
                        xs.span,
                        format!("{first} and {t}"),
                    )
                    .with_help(format!(
                        "the tensors must agree in every dimension but the one they are joined along{}",
                        if ax + 1 == s0.0.len() {
                            ""
                        } else {
                            "; to join features, use `axis: -1`"
                        }
                    )),
                );
                return Ty::Unknown;
            }
            if let ShapeElem::Dim(d) = &s.0[ax] {
                total = total.add(d);
            }
        }
        let mut out = s0.clone();
        std::rc::Rc::make_mut(&mut out.0)[ax] = ShapeElem::Dim(total);
        Ty::Tensor(*dt, out)
    }

    fn lower(&self, l: &mut Lowerer, a: &LowerArgs) -> Res<Val> {
        let Val::List(items) = a.val(0)?.clone() else {
            return Err(LowerError::new("expected a list of tensors", a.span));
        };
        let fl = l.float();
        let ts = items
            .iter()
            .map(|i| l.tensor_of(i, fl, a.span))
            .collect::<Res<Vec<_>>>()?;
        let first = l.ty(ts[0]).shape;
        if *self == Join::Concat {
            let axis = axis_of(a.int_or(1, -1)?, first.len(), a.span)?;
            return Ok(Val::Tensor(l.emit(Op::Concat { axis }, &ts)));
        }
        let axis = axis_of(a.int_or(1, 0)?, first.len() + 1, a.span)?;
        let mut shape = first.clone();
        shape.insert(axis, 1);
        let parts: Vec<Tv> = ts.iter().map(|t| l.reshape(*t, shape.clone())).collect();
        Ok(Val::Tensor(l.emit(Op::Concat { axis }, &parts)))
    }
}

struct Split;

impl Rule for Split {
    fn check(&self, c: &mut Checker, _: &mut Frame, a: &CheckArgs) -> Ty {
        let Some((dt, s)) = tensor_arg(c, a.req(0), "x") else {
            return Ty::Unknown;
        };
        let Some(parts) = const_arg(c, Some(a.req(1)), 1, "parts") else {
            return Ty::Unknown;
        };
        let Some(axis) = const_arg(c, a.arg(2), -1, "axis") else {
            return Ty::Unknown;
        };
        let Some(ax) = normalize_axis(c, s, axis, a.arg(2).map_or(a.req(0).span, |a| a.span))
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
                    a.req(1).span,
                    "does not divide",
                )
                .with_help("choose a number of parts that divides the axis"),
            );
            return Ty::Unknown;
        }
        let mut part = s.clone();
        std::rc::Rc::make_mut(&mut part.0)[ax] =
            ShapeElem::Dim(d.div(&Dim::constant(parts)).expect("parts > 0"));
        Ty::Tuple(vec![Ty::Tensor(dt, part); parts as usize])
    }

    fn lower(&self, l: &mut Lowerer, a: &LowerArgs) -> Res<Val> {
        let x = a.tensor(l, 0)?;
        let shape = l.ty(x).shape;
        let parts = a.size(1)?;
        let axis = axis_of(a.int_or(2, -1)?, shape.len(), a.span)?;
        if parts == 0 || !shape[axis].is_multiple_of(parts) {
            return Err(LowerError::new("the parts do not divide the axis", a.span));
        }
        let w = shape[axis] / parts;
        let pieces = (0..parts)
            .map(|i| {
                let s = Op::Slice {
                    axis,
                    start: i * w,
                    end: (i + 1) * w,
                };
                Val::Tensor(l.emit(s, &[x]))
            })
            .collect();
        Ok(Val::Tuple(pieces))
    }
}
