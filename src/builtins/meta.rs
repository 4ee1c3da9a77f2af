//! Builtins about the program rather than numbers: `shape` (a tensor's dimensions as a value),
//! `params` (a model's parameter set) and `sum_over` (a function summed over such a set, for
//! regularizers).

use super::{BuiltinDef, CheckArgs, LowerArgs, Rule, X};
use crate::check::operators::err;
use crate::check::ty::{Callable, Shape, ShapeElem, Ty};
use crate::check::{ArgVal, Checker, Frame};
use crate::diag::codes;
use crate::ir::TensorType;
use crate::lower::{ArgV, LowerError, Lowerer, Res, Tv, Val};
use crate::prim::PrimParam;
use crate::syntax::ast::{Dtype, Expr, ExprKind, ThinVec};

pub(super) const BUILTINS: &[BuiltinDef] = &[
    BuiltinDef {
        name: "shape",
        params: X,
        doc: "the dimensions of x, as a list",
        rule: &ShapeOf,
    },
    BuiltinDef {
        name: "params",
        params: &[PrimParam::req("model")],
        doc: "every parameter of a model, for regularizers",
        rule: &Params,
    },
    BuiltinDef {
        name: "sum_over",
        params: &[PrimParam::req("params"), PrimParam::req("f")],
        doc: "the sum of a scalar function over a parameter set",
        rule: &SumOver,
    },
];

struct ShapeOf;

impl Rule for ShapeOf {
    fn check(&self, c: &mut Checker, _: &mut Frame, a: &CheckArgs) -> Ty {
        match &a.req(0).ty {
            Ty::Tensor(_, s) => Ty::Shape(s.clone()),
            other => {
                c.emit(err(
                    codes::NOT_A_TENSOR,
                    format!("`shape` needs a tensor, found {other}"),
                    a.req(0).span,
                    "not a tensor",
                ));
                Ty::Unknown
            }
        }
    }

    fn lower(&self, l: &mut Lowerer, a: &LowerArgs) -> Res<Val> {
        let x = a.tensor(l, 0)?;
        let shape = l.ty(x).shape;
        Ok(Val::List(
            shape.iter().map(|&d| Val::Int(d as i64)).collect(),
        ))
    }
}

struct Params;

impl Rule for Params {
    fn check(&self, c: &mut Checker, _: &mut Frame, a: &CheckArgs) -> Ty {
        match &a.req(0).ty {
            Ty::Layer(_) | Ty::Callable(Callable::Def(_)) => Ty::ParamSet,
            other => {
                c.emit(
                    err(
                        codes::NOT_A_PARAMETER_SET,
                        format!("`params` needs a model, found {other}"),
                        a.req(0).span,
                        "not a model",
                    )
                    .with_help("write `params(Mlp)` with the name of a trained model"),
                );
                Ty::Unknown
            }
        }
    }

    fn lower(&self, l: &mut Lowerer, a: &LowerArgs) -> Res<Val> {
        let r = match a.val(0)? {
            Val::Def(r) => *r,
            Val::Layer(layer) => layer.def,
            Val::Params(p) => return Ok(Val::Params(p.clone())),
            _ => return Err(LowerError::new("`params` takes a model", a.span)),
        };
        Ok(Val::Params(l.model_params(r)))
    }
}

struct SumOver;

impl Rule for SumOver {
    fn check(&self, c: &mut Checker, f: &mut Frame, a: &CheckArgs) -> Ty {
        if !matches!(a.req(0).ty, Ty::ParamSet) {
            c.emit(err(
                codes::NOT_A_PARAMETER_SET,
                format!("`sum_over` needs a parameter set, found {}", a.req(0).ty),
                a.req(0).span,
                "not `params(…)`",
            ));
            return Ty::Unknown;
        }
        // The function is checked once, on a parameter of any shape.
        let pack = c.fresh_sym("P");
        let p = ArgVal {
            name: None,
            ty: Ty::Tensor(Dtype::F32, Shape(vec![ShapeElem::Pack(pack)].into())),
            span: a.req(1).span,
        };
        let callee = Expr {
            kind: ExprKind::Tuple(ThinVec::new()),
            span: a.req(1).span,
        };
        let t = c.call(f, a.req(1).ty.clone(), &callee, vec![p], a.req(1).span);
        if !t.is_scalar() && !t.is_unknown() {
            c.emit(
                err(
                    codes::NOT_SCALAR,
                    format!("the function given to `sum_over` must return a scalar, found {t}"),
                    a.req(1).span,
                    "not a scalar",
                )
                .with_help("reduce it, e.g. `|w| sum(w * w)`"),
            );
        }
        Ty::Float(None)
    }

    fn lower(&self, l: &mut Lowerer, a: &LowerArgs) -> Res<Val> {
        let Val::Params(names) = a.val(0)?.clone() else {
            return Err(LowerError::new("`sum_over` takes a parameter set", a.span));
        };
        let f = a.val(1)?.clone();
        let fl = l.float();
        let mut total: Option<Tv> = None;
        for n in names {
            let p = l.param_value(&n).ok_or_else(|| {
                LowerError::new(format!("parameter `{n}` is not used by this graph"), a.span)
            })?;
            let arg = ArgV {
                val: Val::Tensor(p),
                span: a.span,
            };
            // Called where the checker called it: at the function argument.
            let v = l.call(f.clone(), vec![arg], a.span(1))?;
            let t = l.tensor_of(&v, fl, a.span)?;
            total = Some(match total {
                Some(acc) => l.emit(crate::ir::Op::Add, &[acc, t]),
                None => t,
            });
        }
        Ok(match total {
            Some(t) => Val::Tensor(t),
            None => Val::Tensor(l.constant(0.0, TensorType::scalar(fl))),
        })
    }
}
