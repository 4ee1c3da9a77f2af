//! Reductions over an axis, a list of axes or everything: `sum`, `mean`, `max`, `min`, `argmax`.

use super::{BuiltinDef, CheckArgs, LowerArgs, Rule};
use crate::check::dim::Dim;
use crate::check::operators::{err, normalize_axis};
use crate::check::ty::{Shape, ShapeElem, Ty};
use crate::check::{Checker, Frame};
use crate::diag::codes;
use crate::ir::Op;
use crate::lower::{LowerError, Lowerer, Res, Tv, Val};
use crate::prim::PrimParam;
use crate::syntax::ast::Dtype;

pub(super) const BUILTINS: &[BuiltinDef] = &[
    BuiltinDef {
        name: "sum",
        params: REDUCE,
        doc: "sum over an axis, a list of axes, or everything",
        rule: &Reduce::Sum,
    },
    BuiltinDef {
        name: "mean",
        params: REDUCE,
        doc: "mean over an axis, a list of axes, or everything",
        rule: &Reduce::Mean,
    },
    BuiltinDef {
        name: "max",
        params: REDUCE,
        doc: "maximum over an axis, a list of axes, or everything",
        rule: &Reduce::Max,
    },
    BuiltinDef {
        name: "min",
        params: REDUCE,
        doc: "minimum over an axis, a list of axes, or everything",
        rule: &Reduce::Min,
    },
    BuiltinDef {
        name: "argmax",
        params: &[PrimParam::req("x"), PrimParam::opt("axis")],
        doc: "index of the maximum along an axis (i32)",
        rule: &Reduce::Argmax,
    },
];

const REDUCE: &[PrimParam] = &[
    PrimParam::req("x"),
    PrimParam::opt("axis"),
    PrimParam::opt("keep"),
];

#[derive(Clone, Copy, PartialEq)]
enum Reduce {
    Sum,
    Mean,
    Max,
    Min,
    Argmax,
}

impl Rule for Reduce {
    fn check(&self, c: &mut Checker, _: &mut Frame, a: &CheckArgs) -> Ty {
        let (x, axis, keep) = (a.req(0), a.arg(1), a.arg(2));
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
                            format!(
                                "`axis` must be an integer or a list of integers, found {other}"
                            ),
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
        let out_dt = if *self == Reduce::Argmax {
            Dtype::I32
        } else {
            dt
        };
        if axis.is_none() && s.has_pack() && !keep {
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
        if *self == Reduce::Mean && !dt.is_float() {
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
        Ty::Tensor(out_dt, Shape(out.into()))
    }

    fn lower(&self, l: &mut Lowerer, a: &LowerArgs) -> Res<Val> {
        let x = a.tensor(l, 0)?;
        let rank = l.ty(x).rank();
        if *self == Reduce::Argmax {
            let (x, axis) = match a.axes(1, rank)? {
                Some(axes) if axes.len() == 1 => (x, axes[0]),
                Some(_) => return Err(LowerError::new("argmax takes one axis", a.span)),
                None => {
                    let n = l.ty(x).numel();
                    (l.reshape(x, vec![n]), 0)
                }
            };
            return Ok(Val::Tensor(l.emit(Op::Argmax { axis }, &[x])));
        }
        let axes = a.axes(1, rank)?.unwrap_or_else(|| (0..rank).collect());
        let keep = matches!(a.get(2), Some(Val::Bool(true)));
        Ok(Val::Tensor(self.reduce(l, x, &axes, keep)))
    }
}

impl Reduce {
    fn reduce(self, l: &mut Lowerer, x: Tv, axes: &[usize], keep: bool) -> Tv {
        match self {
            Reduce::Sum => l.sum_axes(x, axes, keep),
            Reduce::Mean => {
                let shape = l.ty(x).shape;
                let n: usize = axes.iter().map(|&a| shape[a]).product();
                let s = l.sum_axes(x, axes, keep);
                let ty = l.ty(s);
                let c = l.constant(n as f64, ty);
                l.emit(Op::Div, &[s, c])
            }
            Reduce::Max => l.max_axes(x, axes, keep),
            Reduce::Min => {
                let neg = l.emit(Op::Neg, &[x]);
                let m = l.max_axes(neg, axes, keep);
                l.emit(Op::Neg, &[m])
            }
            Reduce::Argmax => unreachable!("argmax is lowered apart"),
        }
    }
}
