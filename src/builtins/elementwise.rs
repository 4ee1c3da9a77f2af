//! Elementwise builtins: the math functions, `maximum`/`minimum`, `select`, `cast`, `detach`,
//! `all_sum`.

use super::{BuiltinDef, CheckArgs, LowerArgs, Rule, X};
use crate::check::operators::{binary, broadcast, err, tensor_arg};
use crate::check::ty::{Shape, Ty};
use crate::check::{Checker, Frame};
use crate::diag::codes;
use crate::ir::primitive::Reference;
use crate::ir::{DType, Op};
use crate::lower::operators::number;
use crate::lower::{LowerError, Lowerer, Res, Val};
use crate::prim::PrimParam;
use crate::syntax::ast::{BinOp, Dtype};

pub(super) const BUILTINS: &[BuiltinDef] = &[
    math("exp", "e^x, elementwise", &Math(Op::Exp)),
    math("log", "natural logarithm, elementwise", &Math(Op::Log)),
    math("sqrt", "square root, elementwise", &Math(Op::Sqrt)),
    math("sin", "sine, elementwise", &Math(Op::Sin)),
    math("cos", "cosine, elementwise", &Math(Op::Cos)),
    math(
        "erf",
        "the error function 2/√π ∫₀ˣ e^(−t²) dt, elementwise",
        &Math(Op::Erf),
    ),
    math(
        "tanh",
        "hyperbolic tangent, elementwise; its gradient is 1 − tanh²",
        &Math(Op::Tanh),
    ),
    math(
        "sigmoid",
        "logistic function 1 / (1 + e^−x), elementwise; its gradient is σ (1 − σ)",
        &Math(Op::Sigmoid),
    ),
    BuiltinDef {
        name: "maximum",
        params: AB,
        doc: "elementwise maximum, broadcasting",
        rule: &Extremum(Op::Max),
    },
    BuiltinDef {
        name: "minimum",
        params: AB,
        doc: "elementwise minimum, broadcasting",
        rule: &Extremum(Op::Min),
    },
    BuiltinDef {
        name: "select",
        params: &[
            PrimParam::req("cond"),
            PrimParam::req("a"),
            PrimParam::req("b"),
        ],
        doc: "a where cond is true, else b, broadcasting",
        rule: &Select,
    },
    BuiltinDef {
        name: "cast",
        params: &[PrimParam::req("x"), PrimParam::req("dtype")],
        doc: "converts to another dtype",
        rule: &Cast,
    },
    BuiltinDef {
        name: "detach",
        params: X,
        doc: "the same value, with no gradient flowing back",
        rule: &Detach,
    },
    BuiltinDef {
        name: "all_sum",
        params: X,
        doc: "the sum over the shards of a data-parallel step; the value itself in one process",
        rule: &AllSum,
    },
];

const AB: &[PrimParam] = &[PrimParam::req("a"), PrimParam::req("b")];

const fn math(name: &'static str, doc: &'static str, rule: &'static Math) -> BuiltinDef {
    BuiltinDef {
        name,
        params: X,
        doc,
        rule,
    }
}

/// A float function computed by one primitive; numbers are folded by its reference function.
struct Math(Op);

impl Rule for Math {
    fn check(&self, c: &mut Checker, _: &mut Frame, a: &CheckArgs) -> Ty {
        let x = a.req(0);
        match &x.ty {
            Ty::Tensor(d, _) if d.is_float() => x.ty.clone(),
            Ty::Int(_) | Ty::Float(_) => Ty::Float(None),
            other => {
                c.emit(
                    err(
                        codes::DTYPE_MISMATCH,
                        format!("`{}` needs a float tensor, found {other}", a.name),
                        x.span,
                        "not a float",
                    )
                    .with_help("convert with `cast(…, f32)`"),
                );
                Ty::Unknown
            }
        }
    }

    fn lower(&self, l: &mut Lowerer, a: &LowerArgs) -> Res<Val> {
        let Reference::Unary(f) = self.0.primitive().reference else {
            unreachable!("a unary math primitive has a unary reference")
        };
        match a.val(0)? {
            Val::Int(i) => Ok(Val::Float(f(*i as f64))),
            Val::Float(x) => Ok(Val::Float(f(*x))),
            v => {
                let fl = l.float();
                let t = l.tensor_of(v, fl, a.span)?;
                let t = l.cast(t, fl);
                Ok(Val::Tensor(l.emit(self.0.clone(), &[t])))
            }
        }
    }
}

/// `maximum`/`minimum`: broadcasting like `+`.
struct Extremum(Op);

impl Rule for Extremum {
    fn check(&self, c: &mut Checker, _: &mut Frame, a: &CheckArgs) -> Ty {
        binary(
            c,
            BinOp::Add,
            a.span,
            (&a.req(0).ty, a.req(0).span),
            (&a.req(1).ty, a.req(1).span),
        )
    }

    fn lower(&self, l: &mut Lowerer, a: &LowerArgs) -> Res<Val> {
        let (x, y) = (a.val(0)?.clone(), a.val(1)?.clone());
        if let (Some(p), Some(q)) = (number(&x), number(&y)) {
            return Ok(Val::Float(if self.0 == Op::Max {
                p.max(q)
            } else {
                p.min(q)
            }));
        }
        l.elementwise(self.0.clone(), &x, &y, a.span)
            .map(Val::Tensor)
    }
}

struct Select;

impl Rule for Select {
    fn check(&self, c: &mut Checker, _: &mut Frame, a: &CheckArgs) -> Ty {
        let cond = a.req(0);
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
            a.span,
            (&a.req(1).ty, a.req(1).span),
            (&a.req(2).ty, a.req(2).span),
        );
        match v {
            Ty::Tensor(dt, s) => match broadcast(&s, &cshape) {
                Ok(s) => Ty::Tensor(dt, s),
                Err((_, x, y)) => {
                    c.emit(err(
                        codes::BROADCAST,
                        format!(
                            "the condition of `select` does not broadcast with its values: {x} vs {y}"
                        ),
                        cond.span,
                        format!("this is {}", cond.ty),
                    ));
                    Ty::Unknown
                }
            },
            Ty::Int(_) | Ty::Float(_) => Ty::Tensor(Dtype::F32, cshape),
            other => other,
        }
    }

    fn lower(&self, l: &mut Lowerer, a: &LowerArgs) -> Res<Val> {
        let (c, x, y) = (a.val(0)?.clone(), a.val(1)?.clone(), a.val(2)?.clone());
        let dtype = match (&x, &y) {
            (Val::Tensor(t), _) | (_, Val::Tensor(t)) => l.ty(*t).dtype,
            _ => l.float(),
        };
        let v = l.common_shape(&[(&c, DType::Bool), (&x, dtype), (&y, dtype)], a.span)?;
        Ok(Val::Tensor(l.emit(Op::Select, &v)))
    }
}

struct Cast;

impl Rule for Cast {
    fn check(&self, c: &mut Checker, _: &mut Frame, a: &CheckArgs) -> Ty {
        let to = match &a.req(1).ty {
            Ty::Dtype(d) => *d,
            other => {
                c.emit(err(
                    codes::NOT_A_CONSTANT,
                    format!("`cast` needs a dtype (f32, f64, i32, bool), found {other}"),
                    a.req(1).span,
                    "not a dtype",
                ));
                return Ty::Unknown;
            }
        };
        match a.req(0).ty.shape() {
            Some(s) => Ty::Tensor(to, s),
            None => {
                tensor_arg(c, a.req(0), "x");
                Ty::Unknown
            }
        }
    }

    fn lower(&self, l: &mut Lowerer, a: &LowerArgs) -> Res<Val> {
        let to = match a.val(1)? {
            Val::Dtype(d) => *d,
            _ => return Err(LowerError::new("expected a dtype", a.span)),
        };
        let to = if to.is_float() { l.float() } else { to };
        match a.val(0)? {
            Val::Int(i) if to.is_float() => Ok(Val::Float(*i as f64)),
            Val::Int(i) => Ok(Val::Int(*i)),
            Val::Float(x) if to == DType::I32 => Ok(Val::Int(x.trunc() as i64)),
            Val::Float(x) => Ok(Val::Float(*x)),
            v => {
                let t = l.tensor_of(v, to, a.span)?;
                Ok(Val::Tensor(l.cast(t, to)))
            }
        }
    }
}

struct Detach;

impl Rule for Detach {
    fn check(&self, _: &mut Checker, _: &mut Frame, a: &CheckArgs) -> Ty {
        a.req(0).ty.clone()
    }

    fn lower(&self, l: &mut Lowerer, a: &LowerArgs) -> Res<Val> {
        match a.val(0)? {
            Val::Tensor(t) => Ok(Val::Tensor(l.emit(Op::Detach, &[*t]))),
            v => Ok(v.clone()),
        }
    }
}

/// `all_sum`: checked as a float function; a number becomes a tensor, so that shards can add
/// up their sizes.
struct AllSum;

impl Rule for AllSum {
    fn check(&self, c: &mut Checker, f: &mut Frame, a: &CheckArgs) -> Ty {
        Math(Op::AllSum).check(c, f, a)
    }

    fn lower(&self, l: &mut Lowerer, a: &LowerArgs) -> Res<Val> {
        let fl = l.float();
        let t = l.tensor_of(a.val(0)?, fl, a.span)?;
        let t = l.cast(t, fl);
        Ok(Val::Tensor(l.emit(Op::AllSum, &[t])))
    }
}
